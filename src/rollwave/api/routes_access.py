"""REST API for access: who am I, log in and out, users and their roles, API tokens.

Users and other people's tokens are managed by admins. Anyone may create, list and revoke
their own API tokens (a token carries its owner's roles, never more); the secret is returned
once and only a hash is stored. Every change appends an event naming who made it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from rollwave.api.auth import (
    DOCUMENTED_SECURITY,
    SESSION_COOKIE,
    acting_app,
    app_of,
    clear_session_cookie,
    require,
    set_session_cookie,
)
from rollwave.api.common import PREFIX, error_responses
from rollwave.errors import Conflict, NotFound
from rollwave.services import access
from rollwave.services.access import PERMISSIONS, Principal, UserRecord

Role = Literal["viewer", "deployer", "approver", "admin"]
Reader = Annotated[Principal, Depends(require("read"))]
Admin = Annotated[Principal, Depends(require("admin"))]


class Whoami(BaseModel):
    username: str
    roles: list[str]
    permissions: list[str] = Field(description="What the roles allow: read, deploy, approve, "
                                   "flags, admin.")
    via: str = Field(description="`token` or `session`.")
    csrf_token: str | None = Field(default=None, description="For session callers: send it "
                                   "as `X-CSRF-Token` on every state change.")


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1_000)


class User(BaseModel):
    username: str
    roles: list[str]
    created_at: datetime
    disabled: bool
    has_password: bool = Field(description="False for token-only (automation) accounts.")


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=100)
    roles: list[Role] = Field(min_length=1, max_length=4)
    password: str | None = Field(default=None, max_length=1_000, description="At least 12 "
                                 "characters; omit for a token-only account.")


class RolesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: list[Role] = Field(min_length=1, max_length=4)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="What it is for, e.g. `ci`.")
    days: int | None = Field(default=None, ge=1, le=3650,
                             description="Expires after this many days (default: never).")
    username: str | None = Field(default=None, max_length=100, description="Owner (default: "
                                 "you; someone else needs `admin`).")


class IssuedToken(BaseModel):
    secret: str = Field(description="Shown once, never stored: keep it now.")
    prefix: str
    name: str
    username: str
    expires_at: datetime | None


class TokenInfo(BaseModel):
    name: str
    prefix: str
    username: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


def _whoami(principal: Principal) -> dict[str, Any]:
    return {"username": principal.username, "roles": sorted(principal.roles),
            "permissions": [p for p in PERMISSIONS if principal.can(p)], "via": principal.via,
            "csrf_token": principal.csrf_token}


def _user(record: UserRecord) -> dict[str, Any]:
    return {"username": record.username, "roles": list(record.roles),
            "created_at": record.created_at, "disabled": record.disabled,
            "has_password": record.has_password}


def _one_user(request: Request, username: str) -> UserRecord:
    for record in access.list_users(app_of(request)):
        if record.username == username:
            return record
    raise NotFound(f"no user '{username}'", hint="list users with GET /api/v1/users")


def _not_yourself(principal: Principal, username: str, what: str) -> None:
    if principal.username == username:
        raise Conflict(f"you cannot {what} yourself",
                       hint="ask another admin, so nobody locks the last admin out")


def router(ctx: Any) -> APIRouter:
    """Access routes under ``/api/v1``."""
    api = APIRouter(prefix=PREFIX, tags=["access"])

    @api.post("/session", summary="Log in: open a dashboard session (sets an HttpOnly cookie)",
              description="The only route that takes a password. The response carries the "
                          "CSRF token to send as `X-CSRF-Token` on state changes.",
              response_model=Whoami, responses=error_responses())
    async def login(request: Request, response: Response, body: Login) -> dict[str, Any]:
        cookie, principal = await run_in_threadpool(access.login, app_of(request),
                                                    body.username, body.password)
        set_session_cookie(request, response, cookie)
        return _whoami(principal)

    secured = APIRouter(dependencies=DOCUMENTED_SECURITY)

    @secured.delete("/session", status_code=204, summary="Log out: end this session",
                    responses=error_responses())
    def logout(request: Request, _: Reader) -> Response:
        response = Response(status_code=204)
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            access.logout(app_of(request), cookie)
            clear_session_cookie(request, response)
        return response

    @secured.get("/whoami", summary="The caller: user name, roles and what they allow",
                 response_model=Whoami, responses=error_responses())
    def whoami(principal: Reader) -> dict[str, Any]:
        return _whoami(principal)

    @secured.get("/users", summary="List users (admin)", response_model=list[User],
                 responses=error_responses())
    def list_users(request: Request, _: Admin) -> list[dict[str, Any]]:
        return [_user(u) for u in access.list_users(app_of(request))]

    @secured.post("/users", status_code=201, summary="Create a user (admin)",
                  response_model=User, responses=error_responses(409))
    def create_user(request: Request, principal: Admin, body: UserCreate) -> dict[str, Any]:
        record = access.create_user(acting_app(request, principal), body.username, body.roles,
                                    password=body.password)
        return _user(record)

    @secured.put("/users/{username}/roles", summary="Set a user's roles (admin)",
                 response_model=User, responses=error_responses(404, 409))
    def set_roles(request: Request, principal: Admin, username: str,
                  body: RolesUpdate) -> dict[str, Any]:
        _not_yourself(principal, username, "change the roles of")
        return _user(access.set_roles(acting_app(request, principal), username, body.roles))

    def add_disable_route(disabled: bool) -> None:
        verb = "disable" if disabled else "enable"

        def change(request: Request, principal: Admin, username: str) -> dict[str, Any]:
            _not_yourself(principal, username, verb)
            access.set_disabled(acting_app(request, principal), username, disabled)
            return _user(_one_user(request, username))

        change.__name__ = f"{verb}_user"
        secured.post(f"/users/{{username}}/{verb}", response_model=User,
                     summary=f"{verb.capitalize()} a user (admin)" + (
                         ": ends their sessions; their tokens stop working" if disabled
                         else ""), responses=error_responses(404, 409))(change)

    add_disable_route(True)
    add_disable_route(False)

    @secured.get("/tokens", summary="List API tokens (yours; every user's for an admin)",
                 response_model=list[TokenInfo], responses=error_responses())
    def list_tokens(request: Request, principal: Reader,
                    user: Annotated[str | None, Query(
                        max_length=100, description="Only this user's (admin).")] = None,
                    ) -> list[dict[str, Any]]:
        rows = access.list_tokens(app_of(request))
        if not principal.can("admin"):
            user = principal.username
        return [r for r in rows if user is None or r["username"] == user]

    @secured.post("/tokens", status_code=201, response_model=IssuedToken,
                  summary="Create an API token (the secret is shown once)",
                  responses=error_responses(404))
    def create_token(request: Request, principal: Reader, body: TokenCreate) -> dict[str, Any]:
        owner = body.username or principal.username
        if owner != principal.username:
            principal.require("admin")
        issued = access.create_token(acting_app(request, principal), owner, body.name,
                                     days=body.days)
        return {"secret": issued.secret, "prefix": issued.prefix, "name": issued.name,
                "username": issued.username, "expires_at": issued.expires_at}

    @secured.delete("/tokens/{prefix}", status_code=204,
                    summary="Revoke an API token by its prefix (yours, or any as admin)",
                    responses=error_responses(404))
    def revoke_token(request: Request, principal: Reader, prefix: str) -> Response:
        rows = [r for r in access.list_tokens(app_of(request))
                if r["prefix"] == prefix and not r["revoked"]
                and (r["username"] == principal.username or principal.can("admin"))]
        if not rows:  # someone else's token is "not found" too: no probing for prefixes
            raise NotFound(f"you have no active token starting with '{prefix}'",
                           hint="list tokens with GET /api/v1/tokens")
        access.revoke_token(acting_app(request, principal), prefix)
        return Response(status_code=204)

    api.include_router(secured)
    return api

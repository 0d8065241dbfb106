"""Authentication and authorization as FastAPI dependencies.

Every route but ``/healthz`` needs a principal: an ``Authorization: Bearer`` API token, or a
dashboard session cookie. Cookie-authenticated requests that change state must carry the
session's CSRF token in the ``X-CSRF-Token`` header (htmx sends it) or a ``csrf_token`` form
field; bearer-token requests are not exposed to CSRF and need none.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Depends, Request, Response
from fastapi.security import APIKeyCookie, HTTPBearer
from starlette.concurrency import run_in_threadpool

from rollwave.errors import AuthError, PermissionDenied
from rollwave.services import access
from rollwave.services.access import Principal
from rollwave.services.context import App

SESSION_COOKIE = "rollwave_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def app_of(request: Request) -> App:
    ctx: App = request.app.state.rollwave
    return ctx


async def _csrf_from_form(request: Request) -> str | None:
    content_type = request.headers.get("content-type", "")
    if "form" not in content_type:
        return None
    form = await request.form()
    value = form.get("csrf_token")
    return value if isinstance(value, str) else None


async def current_principal(request: Request) -> Principal:
    """The caller, from a bearer token or a session cookie; AuthError when neither is valid."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    ctx = app_of(request)
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        principal = await run_in_threadpool(access.authenticate_token, ctx, header[7:].strip())
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise AuthError("authentication required")
        principal = await run_in_threadpool(access.session_principal, ctx, cookie)
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER) or await _csrf_from_form(request)
            if not sent or not principal.csrf_token or not hmac.compare_digest(
                    sent, principal.csrf_token):
                raise PermissionDenied("missing or wrong CSRF token",
                                       hint="reload the page and try again")
    request.state.principal = principal
    return principal


def require(permission: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that demands ``permission`` (see rollwave.services.access.PERMISSIONS)."""

    async def dependency(request: Request) -> Principal:
        principal = await current_principal(request)
        principal.require(permission)
        return principal

    dependency.__name__ = f"require_{permission}"
    return dependency


def acting_app(request: Request, principal: Principal) -> App:
    """The App bound to the caller, so events name who acted."""
    base = app_of(request)
    return App(root=base.root, database_url=base.database_url, actor=principal.username,
               _workspace=base._workspace, _db=base.db())  # one engine per process


# --- OpenAPI documentation of the two ways in, and the session cookie --------------------------

bearer_scheme = HTTPBearer(auto_error=False, scheme_name="token",
                           description="An API token: `Authorization: Bearer rw_…` "
                                       "(`rollwave token create`).")
cookie_scheme = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, scheme_name="session",
                             description="A dashboard session (log in with POST "
                                         "/api/v1/session); state changes also need the "
                                         f"`{CSRF_HEADER}` header.")
DOCUMENTED_SECURITY = [Depends(bearer_scheme), Depends(cookie_scheme)]
"""Router dependencies that only document the security schemes in OpenAPI (they check
nothing: ``require`` does)."""


def set_session_cookie(request: Request, response: Response, value: str) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, Secure over https or ``--secure-cookies``."""
    secure = bool(getattr(request.app.state, "secure_cookies", False)) or \
        request.url.scheme == "https"
    response.set_cookie(SESSION_COOKIE, value, max_age=access.SESSION_HOURS * 3600, path="/",
                        httponly=True, samesite="lax", secure=secure)


def clear_session_cookie(request: Request, response: Response) -> None:
    secure = bool(getattr(request.app.state, "secure_cookies", False)) or \
        request.url.scheme == "https"
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=secure)

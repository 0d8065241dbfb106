"""Authentication and authorization as FastAPI dependencies.

Every route but ``/healthz`` needs a principal: an ``Authorization: Bearer`` API token, or a
dashboard session cookie. Cookie-authenticated requests that change state must carry the
session's CSRF token in the ``X-CSRF-Token`` header (htmx sends it) or a ``csrf_token`` form
field; bearer-token requests are not exposed to CSRF and need none.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Request
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
               _workspace=base._workspace, _db=base._db)

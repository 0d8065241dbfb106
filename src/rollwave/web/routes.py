"""The dashboard: server-rendered pages (Jinja2 + htmx), live rollouts over server-sent events.

``router(ctx)`` is mounted by :func:`rollwave.api.app.create_app`. Pages:

=============================  =====================================================
``/``                          overview: running rollouts, approvals, outcomes, metrics
``/login`` ``/logout``         password login (session cookie), logout
``/rollouts``                  history, searchable and paged
``/rollouts/{id}``             waves, instances (live over SSE), evidence, controls
``/fleet``                     customers × services matrix: filters, search, paging
``/customers/{id}``            instances, config provenance, deployments, notes
``/releases`` ``/releases/{id}``  contents, per-customer config diff
``/flags`` ``/flags/{key}``    flags: targeting, rollout steps, history
``/audit``                     the event log, searchable and paged
``/static/…``                  CSS, JS and the vendored htmx (see static/vendor)
=============================  =====================================================
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from rollwave.api.auth import SESSION_COOKIE, clear_session_cookie, set_session_cookie
from rollwave.core.states import RolloutState
from rollwave.errors import AuthError, NotFound
from rollwave.services import access, fleet_views
from rollwave.services.context import App
from rollwave.storage import rollouts as repo
from rollwave.web import delivery
from rollwave.web.common import STATE_CLASS, STATIC, PageRoute, User, ctx_of, render

LOGIN_CSRF_COOKIE = "rollwave_login_csrf"
STATE_ORDER = ("succeeded", "rolled_back", "rollback_failed", "held", "verifying", "deploying",
               "rolling_back", "waiting_window", "pending", "skipped")
ACTIVE = [s for s in RolloutState if s.active]
TERMINAL = [s for s in RolloutState if s.terminal]

STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml",
                ".txt": "text/plain", "": "text/plain"}


def _safe_next(target: str | None) -> str:
    """Only same-site paths: ``/x`` but never ``//host`` or ``/\\host`` or a scheme."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def _warm(ctx: App) -> None:
    """Build the fleet index in the background so the first matrix page is fast."""
    def work() -> None:
        with contextlib.suppress(Exception):  # best effort; the page reports real errors
            fleet_views.fleet_index(ctx)

    threading.Thread(target=work, name="rollwave-web-warm", daemon=True).start()


def router(ctx: App) -> APIRouter:
    """Every dashboard route."""
    from rollwave.web import fleet_pages, misc_pages, rollout_pages

    api = APIRouter(include_in_schema=False, route_class=PageRoute)
    _warm(ctx)

    @api.get("/static/{path:path}")
    async def static(path: str) -> Response:
        base = STATIC.resolve()
        target = (base / path).resolve()
        if not target.is_relative_to(base) or not target.is_file():
            raise NotFound(f"no static file '{path}'")
        return FileResponse(target, media_type=STATIC_TYPES.get(target.suffix, "text/plain"),
                            headers={"Cache-Control": "public, max-age=3600",
                                     "X-Content-Type-Options": "nosniff"})

    @api.get("/login")
    async def login_form(request: Request, next: str = "/") -> Response:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            try:
                await run_in_threadpool(access.session_principal, ctx_of(request), cookie)
                return RedirectResponse(_safe_next(next), status_code=303)
            except AuthError:
                pass
        return _login_page(request, next)

    @api.post("/login")
    async def login_submit(request: Request, username: str = Form(""),
                           password: str = Form(""), next: str = Form("/"),
                           csrf_token: str = Form("")) -> Response:
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(expected, csrf_token):
            return _login_page(request, next, error="The login form expired; please try again.",
                               status_code=403)
        try:
            cookie, _ = await run_in_threadpool(access.login, ctx_of(request), username.strip(),
                                                password)
        except AuthError as exc:
            return _login_page(request, next, error=exc.message, status_code=401,
                               username=username)
        response = RedirectResponse(_safe_next(next), status_code=303)
        set_session_cookie(request, response, cookie)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    @api.post("/logout")
    async def logout(request: Request, user: User) -> Response:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            await run_in_threadpool(access.logout, ctx_of(request), cookie)
        response = RedirectResponse("/login", status_code=303)
        clear_session_cookie(request, response)
        return response

    @api.get("/")
    async def overview(request: Request, user: User) -> Response:
        data = await run_in_threadpool(overview_data, ctx_of(request))
        return render(request, "overview.html", user, **data)

    api.include_router(rollout_pages.router())
    api.include_router(fleet_pages.router())
    api.include_router(misc_pages.router())
    return api


def _https(request: Request) -> bool:
    """Like the session cookie: Secure over https or behind ``serve --secure-cookies``."""
    return request.url.scheme == "https" or \
        bool(getattr(request.app.state, "secure_cookies", False))


def _login_page(request: Request, next_url: str, *, error: str = "", status_code: int = 200,
                username: str = "") -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", None, status_code=status_code, error=error,
                      next_url=_safe_next(next_url), login_csrf=token, username=username)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True,
                        samesite="strict", secure=_https(request), path="/login")
    return response


def overview_data(app: App) -> dict[str, Any]:
    """Everything the overview shows, read in one go."""
    now = datetime.now(UTC)
    with app.db().read() as conn:
        active = repo.find_rollouts(conn, states=ACTIVE, limit=50)
        recent = repo.find_rollouts(conn, states=TERMINAL, limit=12)
    counts = fleet_views.target_counts(app, [r.id for r in active + recent])
    approvals = [r for r in active if r.state == RolloutState.WAITING
                 and "approv" in r.waiting_for.lower()]
    facts = [delivery.RolloutFacts(**row) for row in
             fleet_views.rollout_facts(app, now - timedelta(days=120))]
    metrics = delivery.delivery_metrics(facts, now, days=30)
    _, health = fleet_views.version_counts(app)
    return {"active": active, "recent": recent, "approvals": approvals, "counts": counts,
            "metrics": metrics, "health": health, "state_order": STATE_ORDER,
            "state_classes": STATE_CLASS}

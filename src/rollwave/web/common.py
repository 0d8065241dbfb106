"""What every dashboard page shares: templates, the caller, CSRF, formatting filters.

Templates are Jinja2 with autoescaping on for everything, so customer names, notes and event
messages always render as text. Pages that need a logged-in user depend on :func:`page_user`;
the app turns its AuthError into a redirect to ``/login?next=…`` for browsers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from markupsafe import Markup

import rollwave
from rollwave.api.auth import app_of, current_principal
from rollwave.core.durations import format_duration
from rollwave.errors import AuthError, RollwaveError
from rollwave.services.access import Principal
from rollwave.services.context import App

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

STATE_CLASS = {
    "pending": "muted", "waiting_window": "info", "deploying": "active", "verifying": "active",
    "succeeded": "ok", "held": "warn", "rolling_back": "bad", "rolled_back": "bad",
    "rollback_failed": "bad", "skipped": "muted", "running": "active", "waiting": "info",
    "baking": "info", "paused": "warn", "aborted": "warn", "failed": "bad",
    "healthy": "ok", "unverified": "warn", "unhealthy": "bad", "unknown": "muted",
    "absent": "muted", "successful": "ok", "inconclusive": "warn", "error": "warn",
}


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "–"
    seconds = (datetime.now(UTC) - moment).total_seconds()
    if seconds < 0:
        return "in " + format_duration(-seconds)
    return format_duration(seconds) + " ago"


def _when(moment: datetime | None) -> str:
    return "–" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _duration(seconds: float | None) -> str:
    return "–" if seconds is None else format_duration(seconds)


def _change_text(changes: Any) -> str:
    parts = []
    for c in changes or []:
        if not isinstance(c, dict):
            continue
        before, after = c.get("from_version"), c.get("to_version")
        if before == after:
            text = f"{c.get('service')} {after} (config only)"
        else:
            text = f"{c.get('service')} {before or '∅'} → {after}"
            if c.get("to_config") and c.get("from_config") and \
                    c["to_config"] != c["from_config"]:
                text += " + config"
        parts.append(text)
    return ", ".join(parts)


def _num(value: Any, unit: str = "") -> str:
    """A measured value for people: ratios as percentages, others to 3 significant digits."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "–"
    if unit == "ratio":
        return f"{value * 100:.3g}%"
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{text} {unit}" if unit else text


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=2, default=str)


def _short(value: Any, width: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           default=str)
    return text if len(text) <= width else text[:width - 1] + "…"


def _query(params: dict[str, Any], **changes: Any) -> str:
    merged = {**params, **changes}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "", False)})


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(num=_num, ago=_ago, when=_when, duration=_duration, changes=_change_text,
                       pretty=_pretty, short=_short,
                       state_class=lambda s: STATE_CLASS.get(str(s), "muted"),
                       words=lambda s: str(s).replace("_", " "))
    env.globals.update(query=_query, version=rollwave.__version__)
    return env


ENV = _environment()


async def page_user(request: Request) -> Principal:
    """The logged-in caller (session cookie or bearer token)."""
    return await current_principal(request)


User = Annotated[Principal, Depends(page_user)]
"""A route parameter: the logged-in caller."""


def ctx_of(request: Request) -> App:
    return app_of(request)


def acting(request: Request, principal: Principal) -> App:
    """The workspace handle acting as ``principal`` (events name who acted)."""
    from rollwave.api.auth import acting_app

    return acting_app(request, principal)


def render(request: Request, template: str, principal: Principal | None = None, *,
           status_code: int = 200, **values: Any) -> HTMLResponse:
    """Render ``template`` with the caller, CSRF token and navigation state."""
    html = render_text(request, template, principal, **values)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def render_text(request: Request, template: str, principal: Principal | None = None,
                **values: Any) -> str:
    csrf = principal.csrf_token if principal is not None else None
    return ENV.get_template(template).render(
        request=request, user=principal, csrf=csrf or "", path=request.url.path,
        htmx=request.headers.get("hx-request") == "true", **values)


def markup(text: str) -> Markup:
    """Trusted HTML built by our own code (e.g. server-drawn SVG charts)."""
    return Markup(text)  # noqa: S704 - callers pass only markup they escaped themselves


class PageRoute(APIRoute):
    """Routes whose RollwaveErrors render as an HTML error page for browsers (AuthError still
    goes to the app's handler, which redirects to the login page)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RollwaveError as exc:
                if type(exc) is AuthError or "text/html" not in request.headers.get("accept", ""):
                    raise
                principal = getattr(request.state, "principal", None)
                problems = [p.message + (f" ({p.hint})" if p.hint else "")
                            for p in getattr(exc, "problems", [])]
                return render(request, "error.html", principal, status_code=exc.http_status,
                              message=exc.message, hint=exc.hint or "", problems=problems)

        return route

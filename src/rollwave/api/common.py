"""What the REST routers share: the error body and its OpenAPI responses, and an App over the
workspace as it is on disk now.

Every error is JSON ``{"code", "message", "hint", "problems"?}`` (``RollwaveError.to_dict``,
mapped by the handler in ``rollwave.api.app``); request-shape errors FastAPI raises itself are
``{"detail": …}``. :func:`error_responses` documents both, so clients and schemathesis know every
status a route can answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from rollwave.api.auth import acting_app, app_of
from rollwave.services.access import Principal
from rollwave.services.context import App

PREFIX = "/api/v1"


class ProblemBody(BaseModel):
    """One thing wrong with the input, located as precisely as possible."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    path: str | None = None
    hint: str | None = None
    code: str = "workspace.invalid"
    severity: str = "error"


class ErrorBody(BaseModel):
    """Every error: a stable ``code`` to match on, a message, and what to do next."""

    code: str = Field(description="Stable error code, e.g. `rollout.not_found`.")
    message: str
    hint: str | None = None
    problems: list[ProblemBody] | None = Field(
        default=None, description="Every problem at once (for `*.invalid` errors).")


class FieldError(BaseModel):
    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str
    type: str


class RequestInvalidBody(BaseModel):
    """The request does not match the documented parameters or body."""

    detail: list[FieldError]


class UnreadableBody(BaseModel):
    """The body is not JSON (or not UTF-8) at all."""

    detail: str


_ERROR_TEXT = {
    400: "The request cannot be carried out as asked (see `message` and `hint`), or its body "
         "cannot be parsed.",
    401: "No valid credentials: send `Authorization: Bearer TOKEN` or log in.",
    403: "Authenticated, but not allowed: the role lacks the permission, the CSRF token is "
         "missing, or separation of duties forbids it.",
    404: "Not found.",
    409: "Conflicts with the current state.",
    422: "Invalid input; every problem is listed.",
    503: "The database is unavailable.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route can return (400, 401, 403, 422 and
    503 always: every route is authenticated and validates its input)."""
    special: dict[int, Any] = {400: ErrorBody | UnreadableBody, 422: ErrorBody | RequestInvalidBody}
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted({400, 401, 403, 422, 503, *codes}):
        out[code] = {"model": special.get(code, ErrorBody), "description": _ERROR_TEXT[code]}
    return out




def _fingerprint(root: Path) -> tuple[tuple[str, int, int], ...]:
    from rollwave.workspace.loader import HASHED_DIRS, PROJECT_FILE

    files = [root / PROJECT_FILE]
    for sub in HASHED_DIRS:
        base = root / sub
        if base.is_dir():
            files.extend(p for p in base.rglob("*") if not p.name.startswith("."))
    out = []
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            continue
        out.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(out))


def fresh_app(request: Request, principal: Principal) -> App:
    """The caller's App over the workspace as it is on disk now (reloaded when files changed),
    for actions that read the workspace: cutting releases, planning, starting rollouts."""
    base = app_of(request)
    seen = getattr(request.app.state, "workspace_fingerprint", None)
    now = _fingerprint(base.root)
    if seen != now or base._workspace is None:
        base.workspace(reload=True)
        request.app.state.workspace_fingerprint = now
    return acting_app(request, principal)



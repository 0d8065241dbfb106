"""Feature flags in ``rollwave serve``: the flag API and OFREP over the database store.

Mounted by :func:`rollwave.api.app.create_app`. Everything of :func:`rollwave.flags.http.
flags_router` (management REST, snapshot with ETag, SSE stream, OFREP single and bulk) over
:func:`rollwave.flags.store_for` — so writes made by the CLI or another server process reach
SSE clients within about a tenth of a second — plus:

=================================================  ===========================================
``GET /api/v1/flag-rollouts[?active=&flag=]``      guarded flag rollouts, newest first
``GET /api/v1/flag-rollouts/{id}``                 one rollout (id, or a flag key: its latest)
``POST /api/v1/flags/{key}/rollouts``              start one (body: a rollout plan, or empty
                                                   for the flag's ``rollout_plan``)
``POST /api/v1/flag-rollouts/{id}/pause|resume``   control it
``POST /api/v1/flag-rollouts/{id}/abort``          end it (``?revert=true``: back to the start)
``GET /api/v1/flags/{key}/drift``                  the flag against the workspace's flag file
``POST /api/v1/flags/sync``                        import the workspace's flag files
                                                   (``?dry_run&force&prune``)
=================================================  ===========================================

Auth: reads, the snapshot, the stream and OFREP need the ``read`` permission (an SDK uses an
API token of a ``viewer``); writes need ``flags`` (deployer or admin). Evaluation traffic is
hot, so verified bearer tokens are remembered for :data:`TOKEN_CACHE_SECONDS` in this process
(an async dependency: no thread-pool hop on a hit) — a revoked token can keep *reading* flags
for that long; writes always check the database.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from rollwave.api.auth import acting_app, current_principal, require
from rollwave.errors import Problem, RollwaveError, ValidationFailed
from rollwave.flags import rollouts
from rollwave.flags.dbstore import store_for
from rollwave.flags.http import flags_router
from rollwave.flags.model import RolloutPlan
from rollwave.flags.sync import drift, sync_flags
from rollwave.services.access import Principal
from rollwave.services.context import App

TOKEN_CACHE_SECONDS = 5.0
_CACHE_LIMIT = 10_000
ENVIRONMENT_VARIABLE = "ROLLWAVE_FLAGS_ENVIRONMENT"


def cached_reader(ttl: float = TOKEN_CACHE_SECONDS) -> Callable[[Request], Awaitable[Principal]]:
    """A ``read`` dependency that remembers verified bearer tokens for ``ttl`` seconds."""
    cache: dict[str, tuple[float, Principal]] = {}

    async def require_read(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or ttl <= 0:
            principal = await current_principal(request)
        else:
            key = hashlib.sha256(header[7:].strip().encode()).hexdigest()
            hit = cache.get(key)
            now = time.monotonic()
            if hit is not None and hit[0] > now:
                principal = hit[1]
            else:
                principal = await current_principal(request)
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[key] = (now + ttl, principal)
        principal.require("read")
        return principal

    return require_read


def _error(exc: RollwaveError) -> JSONResponse:
    return JSONResponse(exc.to_dict() | ({"problems": [p.to_dict() for p in exc.problems]}
                                         if isinstance(exc, ValidationFailed) else {}),
                        status_code=exc.http_status)


def router(ctx: App) -> APIRouter:
    """The flag routes for one workspace and database."""
    store = store_for(ctx)
    reader = cached_reader()
    writer = require("flags")
    api = APIRouter()
    api.include_router(flags_router(store, auth=writer, read_auth=reader,
                                    default_environment=os.environ.get(ENVIRONMENT_VARIABLE)))
    read_dep = Depends(reader)
    write_dep = Depends(writer)

    def reason_of(request: Request) -> str:
        return request.headers.get("X-Change-Reason", "")

    @api.get("/api/v1/flag-rollouts", tags=["flag rollouts"])
    def list_flag_rollouts(active: bool = False, flag: str | None = None,
                           limit: int = Query(default=50, ge=1, le=500),
                           _principal: Principal = read_dep) -> dict[str, Any]:
        items = rollouts.list_rollouts(ctx, active_only=active, flag_key=flag, limit=limit)
        return {"rollouts": [r.to_dict() for r in items]}

    @api.get("/api/v1/flag-rollouts/{ident}", tags=["flag rollouts"])
    def get_flag_rollout(ident: str, _principal: Principal = read_dep) -> Response:
        try:
            return JSONResponse(rollouts.get(ctx, ident).to_dict())
        except RollwaveError as exc:
            return _error(exc)

    @api.post("/api/v1/flags/{key}/rollouts", tags=["flag rollouts"], status_code=201)
    async def start_flag_rollout(key: str, request: Request,
                                 principal: Principal = write_dep) -> Response:
        body = await request.body()
        plan: RolloutPlan | None = None
        if body.strip():
            try:
                plan = RolloutPlan.model_validate_json(body)
            except ValueError as exc:
                return _error(ValidationFailed([Problem(message=str(exc).splitlines()[0] if
                                                        str(exc) else "invalid plan",
                                                        code="flag.rollout")],
                                               what="rollout plan"))
        app = acting_app(request, principal)
        try:
            record = await run_in_threadpool(rollouts.start, app, key, plan=plan,
                                             reason=reason_of(request))
        except RollwaveError as exc:
            return _error(exc)
        return JSONResponse(record.to_dict(), status_code=201)

    def _control(action: str) -> Callable[..., Any]:
        def control(ident: str, request: Request, revert: bool = False,
                    principal: Principal = write_dep) -> Response:
            app = acting_app(request, principal)
            reason = reason_of(request)
            try:
                if action == "pause":
                    record = rollouts.pause(app, ident, reason=reason)
                elif action == "resume":
                    record = rollouts.resume(app, ident, reason=reason)
                else:
                    record = rollouts.abort(app, ident, reason=reason, revert=revert)
            except RollwaveError as exc:
                return _error(exc)
            return JSONResponse(record.to_dict())
        control.__name__ = f"{action}_flag_rollout"
        return control

    for action in ("pause", "resume", "abort"):
        api.add_api_route(f"/api/v1/flag-rollouts/{{ident}}/{action}", _control(action),
                          methods=["POST"], tags=["flag rollouts"])

    @api.get("/api/v1/flags/{key}/drift", tags=["flags"])
    def flag_drift(key: str, _principal: Principal = read_dep) -> Response:
        try:
            item = drift(store, key, ctx.root)
        except RollwaveError as exc:
            return _error(exc)
        if item is None:
            return JSONResponse({"key": key, "state": "api-only",
                                 "detail": "not managed in git"})
        return JSONResponse(item.to_dict())

    @api.post("/api/v1/flags/sync", tags=["flags"])
    def sync(request: Request, dry_run: bool = False, force: bool = False,
             prune: bool = False, principal: Principal = write_dep) -> Response:
        try:
            report = sync_flags(store, ctx.root, actor=principal.username,
                                reason=reason_of(request), force=force, prune=prune,
                                dry_run=dry_run)
        except RollwaveError as exc:
            return _error(exc)
        return JSONResponse(report.to_dict(), status_code=200 if not report.refused else 409)

    return api

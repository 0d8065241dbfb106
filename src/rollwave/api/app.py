"""The FastAPI application: REST API, flags/OFREP, dashboard, health.

``create_app(ctx)`` builds it; ``rollwave serve`` runs it with uvicorn next to the orchestrator.
Routers are contributed by modules that each expose ``router(ctx) -> APIRouter``.
"""

from __future__ import annotations

import importlib
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

import rollwave
from rollwave.errors import AuthError, RollwaveError
from rollwave.services.context import App

#: Modules that contribute routers, mounted in this order when they exist.
ROUTER_MODULES = (
    "rollwave.api.routes_rollouts",
    "rollwave.api.routes_fleet",
    "rollwave.api.routes_access",
    "rollwave.api.routes_notes",
    "rollwave.api.routes_flags",
    "rollwave.web.routes",
)


def create_app(ctx: App) -> FastAPI:
    """The whole HTTP surface for one workspace and database."""
    api = FastAPI(
        title="Rollwave",
        version=rollwave.__version__,
        description="Releases to a fleet of customized customer instances: rollouts, fleet, "
                    "flags (and OFREP). Authenticate with `Authorization: Bearer <token>` "
                    "(create one with `rollwave token create`).",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    api.state.rollwave = ctx

    @api.exception_handler(RollwaveError)
    async def _rollwave_error(request: Request, exc: RollwaveError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if type(exc) is AuthError else None
        if type(exc) is AuthError and _wants_html(request):
            from urllib.parse import quote

            from fastapi.responses import RedirectResponse

            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)

    @api.get("/healthz", tags=["health"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": rollwave.__version__}

    for name in ROUTER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
                continue  # that part of the surface is not installed yet
            raise
        api.include_router(module.router(ctx))
    return api


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return request.method == "GET" and "text/html" in accept and \
        not request.url.path.startswith(("/api/", "/ofrep/"))

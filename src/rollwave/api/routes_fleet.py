"""REST: the fleet matrix (paged, filtered, searchable) and one customer's state."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from rollwave.api.auth import app_of, require
from rollwave.services import fleet_views
from rollwave.services.access import Principal
from rollwave.services.context import App

Reader = Annotated[Principal, Depends(require("read"))]


def router(ctx: App) -> APIRouter:
    """``/api/v1/fleet`` and ``/api/v1/customers/{customer}`` (any authenticated reader)."""
    api = APIRouter(prefix="/api/v1", tags=["fleet"])

    @api.get("/fleet", summary="The customer × service matrix, one page at a time")
    async def fleet(
        request: Request, user: Reader,
        q: Annotated[str, Query(max_length=200, description="words that must all appear in "
                                "the instance key, customer name, tier, region or tags")] = "",
        match: Annotated[str, Query(max_length=500, description="a tag expression, e.g. "
                                    "`tier == enterprise and not internal`")] = "",
        tier: Annotated[str, Query(max_length=100)] = "",
        region: Annotated[str, Query(max_length=100)] = "",
        tag: Annotated[str, Query(max_length=100)] = "",
        environment: Annotated[str, Query(max_length=100)] = "",
        health: Annotated[str, Query(pattern="^(|attention|healthy|unverified|unhealthy|"
                                     "unknown|absent)$", description="a health value, or "
                                     "`attention` for anything but healthy")] = "",
        drift: Annotated[bool, Query(description="only instances with a service off the "
                                     "reference version")] = False,
        service: Annotated[str, Query(max_length=100, description="limit health/drift "
                                      "filters to one service")] = "",
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        per_page: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        query = fleet_views.MatrixQuery(q=q, match=match, tier=tier, region=region, tag=tag,
                                        environment=environment, health=health, drift=drift,
                                        service=service, page=page, per_page=per_page)
        result = await run_in_threadpool(fleet_views.matrix, app_of(request), query)
        return result.to_dict()

    @api.get("/customers/{customer}", summary="A customer's instances, state, deployments, "
                                              "notes and recent events")
    async def customer(request: Request, user: Reader, customer: str) -> dict[str, Any]:
        view = await run_in_threadpool(fleet_views.customer_view, app_of(request), customer)
        body: dict[str, Any] = _jsonable(view.to_dict())
        return body

    return api


def _jsonable(value: Any) -> Any:
    """Datetimes to ISO strings, recursively (rows read straight from the database)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value

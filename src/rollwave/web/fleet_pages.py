"""Fleet pages: the customer × service matrix and each customer's page."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from rollwave.errors import PermissionDenied, RollwaveError
from rollwave.services import fleet_views
from rollwave.services.context import App
from rollwave.web.common import PageRoute, User, acting, ctx_of, render
from rollwave.workspace.loader import Workspace

PER_PAGE = 100

_loading: dict[int, threading.Thread] = {}
_errors: dict[int, RollwaveError] = {}
_lock = threading.Lock()


def workspace_when_ready(app: App, wait: float) -> Workspace | None:
    """The loaded workspace; starts loading it in the background and waits up to ``wait``
    seconds (a 10,000-customer workspace takes a while). Raises what loading raised."""
    if app._workspace is not None:
        return app._workspace
    key = id(app)
    with _lock:
        if key in _errors:
            raise _errors.pop(key)
        thread = _loading.get(key)
        if thread is None or not thread.is_alive():
            def load() -> None:
                try:
                    app.workspace()
                except RollwaveError as exc:
                    with _lock:
                        _errors[key] = exc

            thread = threading.Thread(target=load, name="rollwave-web-workspace", daemon=True)
            _loading[key] = thread
            thread.start()
    thread.join(wait)
    with _lock:
        if key in _errors:
            raise _errors.pop(key)
    return app._workspace


def config_data(app: App, customer: str, wait: float = 3.0) -> dict[str, Any]:
    """Every instance × service config of ``customer`` with each key's provenance."""
    from rollwave.config import explain

    try:
        workspace = workspace_when_ready(app, wait)
    except RollwaveError as exc:
        return {"ready": True, "error": exc.message, "explanations": []}
    if workspace is None:
        return {"ready": False, "error": "", "explanations": []}
    explanations = []
    fleet = workspace.fleet
    with app.db().read() as conn:
        from rollwave.storage.fleet_state import service_states

        running = {(s.instance, s.service): s.version
                   for s in service_states(conn, customer=customer)}
    for inst in fleet.instances:
        if inst.customer != customer:
            continue
        for service in inst.services:
            try:
                explanations.append({"instance": inst.key, "service": service, "error": "",
                                     "explanation": explain(
                                         workspace, inst.key, service,
                                         version=running.get((inst.key, service)))})
            except RollwaveError as exc:
                explanations.append({"instance": inst.key, "service": service,
                                     "error": exc.message, "explanation": None})
    return {"ready": True, "error": "", "explanations": explanations}


def router() -> APIRouter:
    api = APIRouter(include_in_schema=False, route_class=PageRoute)

    @api.get("/fleet")
    async def matrix(request: Request, user: User, q: str = "", match: str = "", tier: str = "",
                     region: str = "", tag: str = "", environment: str = "", health: str = "",
                     drift: str = "", service: str = "", page: int = 1,
                     per_page: int = PER_PAGE) -> Response:
        query = fleet_views.MatrixQuery(q=q, match=match, tier=tier, region=region, tag=tag,
                                        environment=environment, health=health,
                                        drift=drift in ("1", "on", "true", "yes"),
                                        service=service, page=page, per_page=per_page)
        error = ""
        try:
            result = await run_in_threadpool(fleet_views.matrix, ctx_of(request), query)
        except RollwaveError as exc:
            error = "; ".join([exc.message, *[p.message for p in getattr(exc, "problems", [])]])
            query = fleet_views.MatrixQuery(q=q, per_page=PER_PAGE)
            result = await run_in_threadpool(fleet_views.matrix, ctx_of(request), query)
        params = {"q": q, "match": match, "tier": tier, "region": region, "tag": tag,
                  "environment": environment, "health": health,
                  "drift": "1" if query.drift else "", "service": service,
                  "per_page": per_page if per_page != PER_PAGE else ""}
        template = "_matrix.html" if request.headers.get("hx-target") == "matrix" \
            else "fleet.html"
        return render(request, template, user, m=result, params=params, error=error)

    @api.get("/customers/{customer}")
    async def customer_page(request: Request, user: User, customer: str) -> Response:
        view = await run_in_threadpool(fleet_views.customer_view, ctx_of(request), customer)
        return render(request, "customer.html", user, c=view,
                      can_note=user.can("deploy") or user.can("approve"))

    @api.get("/customers/{customer}/config")
    async def customer_config(request: Request, user: User, customer: str) -> Response:
        data = await run_in_threadpool(config_data, ctx_of(request), customer)
        return render(request, "_config.html", user, customer=customer, **data)

    @api.post("/customers/{customer}/notes")
    async def add_note(request: Request, user: User, customer: str, body: str = Form(""),
                       instance: str = Form("")) -> Response:
        if not (user.can("deploy") or user.can("approve")):
            raise PermissionDenied(f"{user.username} may not add notes: needs role deployer, "
                                   "approver or admin")
        from rollwave.services import notes

        await run_in_threadpool(workspace_when_ready, ctx_of(request), 300.0)
        app = acting(request, user)
        await run_in_threadpool(lambda: notes.add_note(app, customer, body,
                                                       instance=instance or None))
        return RedirectResponse(f"/customers/{customer}#notes", status_code=303)

    return api

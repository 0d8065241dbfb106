"""Release, flag and audit-log pages."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from rollwave.errors import NotFound, RollwaveError
from rollwave.flags.store import FlagStore
from rollwave.services import releases as release_service
from rollwave.services.context import App
from rollwave.storage import rollouts as repo
from rollwave.storage.events import list_events
from rollwave.web.common import PageRoute, User, ctx_of, render

PAGE = 100

StoreProvider = Callable[[App], FlagStore | None]
provider: StoreProvider | None = None
"""Tests (or an embedding app) set this to serve flags from another store."""


def flag_store(app: App) -> tuple[FlagStore | None, str]:
    """The flag store of ``app`` and, when there is none, why (for a clear message)."""
    if provider is not None:
        return provider(app), "no flag store is configured for this dashboard"
    try:
        module = importlib.import_module("rollwave.flags.dbstore")
    except ImportError:
        return None, "this installation has no flag store (rollwave.flags.dbstore is missing)"
    try:
        store: FlagStore = module.store_for(app)
    except RollwaveError as exc:
        return None, f"the flag store cannot be opened: {exc.message}"
    return store, ""


def _history(store: FlagStore, key: str) -> list[dict[str, Any]]:
    """A flag's changes newest first, from whichever history the store keeps."""
    entries: list[dict[str, Any]] = []
    history = getattr(store, "history", None)
    if callable(history):
        return [{"at": e.at, "actor": e.actor, "action": e.action, "reason": e.reason,
                 "version": e.version, "changes": e.changes()} for e in history(key, limit=100)]
    changes = getattr(store, "list_changes", None)
    if callable(changes):
        for change in reversed(changes(key)):
            action = "created" if change.before is None else (
                "deleted" if change.after is None else "updated")
            entries.append({"at": change.at, "actor": change.actor, "action": action,
                            "reason": change.reason, "version": change.version,
                            "changes": []})
    return entries


def release_data(app: App, release_id: str) -> dict[str, Any]:
    release = release_service.get_release(app, release_id)
    with app.db().read() as conn:
        runs = repo.find_rollouts(conn, release_id=release.id, limit=50)
    from rollwave.services.fleet_views import target_counts

    return {"release": release, "rollouts": runs,
            "counts": target_counts(app, [r.id for r in runs])}


def preview_data(app: App, release_id: str) -> dict[str, Any]:
    """The plan and grouped config diff of a release now, with simple risk indicators."""
    from rollwave.services import plans
    from rollwave.web.fleet_pages import workspace_when_ready

    try:
        if workspace_when_ready(app, 3.0) is None:
            return {"ready": False, "error": "", "preview": None, "risk": []}
        preview = plans.preview(app, release_id)
    except RollwaveError as exc:
        return {"ready": True, "error": exc.message, "preview": None, "risk": []}
    plan = preview.plan
    targets = [t for w in plan.waves for t in w.targets]
    config_changes = sum(1 for t in targets if any(
        c.to_config and c.to_config != c.from_config for c in t.changes))
    groups = len(preview.config.groups) if preview.config is not None and \
        hasattr(preview.config, "groups") else 0
    risk = [("instances that change", f"{len(targets):,}"),
            ("of them with a config change", f"{config_changes:,}"),
            ("distinct config changes", f"{groups:,}"),
            ("already up to date", f"{len(plan.unchanged):,}"),
            ("in no wave", f"{len(plan.excluded):,}"),
            ("freezes in force", "; ".join(plan.freezes) or "none")]
    return {"ready": True, "error": "", "preview": preview, "risk": risk}


def router() -> APIRouter:
    api = APIRouter(include_in_schema=False, route_class=PageRoute)

    @api.get("/releases")
    async def release_list(request: Request, user: User) -> Response:
        rows = await run_in_threadpool(release_service.list_releases, ctx_of(request), 200)
        return render(request, "releases.html", user, rows=rows)

    @api.get("/releases/{release_id}")
    async def release_page(request: Request, user: User, release_id: str) -> Response:
        data = await run_in_threadpool(release_data, ctx_of(request), release_id)
        return render(request, "release.html", user, **data)

    @api.get("/releases/{release_id}/preview")
    async def release_preview(request: Request, user: User, release_id: str) -> Response:
        data = await run_in_threadpool(preview_data, ctx_of(request), release_id)
        return render(request, "_preview.html", user, release_id=release_id, **data)

    @api.get("/flags")
    async def flag_list(request: Request, user: User, q: str = "") -> Response:
        store, why = await run_in_threadpool(flag_store, ctx_of(request))
        flags: list[Any] = []
        error = ""
        if store is not None:
            try:
                flagset, _ = await run_in_threadpool(store.flagset)
                flags = sorted(flagset.flags.values(), key=lambda f: f.key)
            except RollwaveError as exc:
                error = exc.message
        needle = q.strip().lower()
        if needle:
            flags = [f for f in flags if needle in f.key.lower() or
                     needle in f.description.lower() or
                     any(needle in t.lower() for t in f.tags)]
        return render(request, "flags.html", user, flags=flags, no_store=why if store is None
                      else "", error=error, q=q)

    @api.get("/flags/{key}")
    async def flag_page(request: Request, user: User, key: str) -> Response:
        store, why = await run_in_threadpool(flag_store, ctx_of(request))
        if store is None:
            return render(request, "flags.html", user, flags=[], no_store=why, error="", q="")
        current = await run_in_threadpool(store.get_flag, key)
        if current is None:
            raise NotFound(f"no flag '{key}'", hint="see the flag list")
        history = await run_in_threadpool(_history, store, key)
        return render(request, "flag.html", user, flag=current.value, versioned=current,
                      history=history)

    @api.get("/audit")
    async def audit_log(request: Request, user: User, q: str = "", kind: str = "",
                        instance: str = "",
                        before: int | None = None) -> Response:
        ctx = ctx_of(request)

        def read() -> list[Any]:
            with ctx.db().read() as conn:
                return list_events(conn, search=q.strip() or None, kind_prefix=kind or None,
                                   instance=instance or None, before=before, limit=PAGE + 1,
                                   newest_first=True)

        rows = await run_in_threadpool(read)
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        return render(request, "audit.html", user, rows=rows, q=q, kind=kind,
                      instance=instance, next_before=rows[-1].seq if more and rows else None)

    return api

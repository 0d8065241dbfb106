"""The flag server's HTTP surface: management REST, snapshot, SSE stream and OFREP.

Build it with :func:`flags_router` and include it in any FastAPI app::

    store = InMemoryFlagStore()
    app.include_router(flags_router(store, auth=require_token))

``auth`` is a FastAPI dependency that returns the acting user (a string, or an object with
``username`` or ``name``); it guards writes. Make it ``async def`` if it does no blocking I/O:
FastAPI runs a plain ``def`` dependency in a thread pool, which costs more than the evaluation
itself.
``read_auth`` (default: ``auth``) guards reads, the snapshot, the stream and OFREP.

Routes (JSON bodies use the flag format of ``docs/flags.md``):

==========================================  =============================================
``GET /api/v1/flags``                       list flags (with versions)
``GET /api/v1/flags/snapshot?environment``  snapshot document; ETag / If-None-Match → 304
``GET /api/v1/flags/stream?environment``    SSE: ``event: snapshot`` on connect and change
``GET|PUT|PATCH|DELETE /api/v1/flags/{k}``  one flag; PUT/PATCH/DELETE honour If-Match
``POST /api/v1/flags/{k}/kill|unkill``      kill switch (``?environment=`` for one env)
``GET /api/v1/flags/{k}/history``           changes, newest first (stores with history)
``POST /api/v1/flags/{k}/revert``           undo the last change (``?to_version=N``)
``GET|PUT|DELETE /api/v1/segments[/{k}]``   segments
``POST /ofrep/v1/evaluate/flags[/{k}]``     OFREP, see :mod:`rollwave.flags.ofrep`
==========================================  =============================================

Writes take an optional ``X-Change-Reason`` header, recorded with the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, runtime_checkable

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from rollwave.errors import Problem, RollwaveError, ValidationFailed
from rollwave.flags.errors import FlagNotFound, SegmentNotFound
from rollwave.flags.files import flag_to_data, parse_flag, parse_segment
from rollwave.flags.model import FlagSet
from rollwave.flags.ofrep import ENVIRONMENT_HEADER, ofrep_router
from rollwave.flags.snapshots import CompiledEnvironment, SnapshotCache
from rollwave.flags.store import Change, FlagStore, Versioned, set_killed

RESERVED_KEYS = frozenset({"snapshot", "stream"})
REASON_HEADER = "X-Change-Reason"


def _actor_name(actor: Any) -> str:
    if isinstance(actor, str):
        return actor
    return str(getattr(actor, "username", None) or getattr(actor, "name", None) or actor
               or "anonymous")


def _error(exc: RollwaveError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.http_status)


def _json_body_error(message: str) -> JSONResponse:
    return _error(ValidationFailed([Problem(message=message, code="flag.invalid")],
                                   what="request body"))


async def _json(request: Request) -> tuple[Any, JSONResponse | None]:
    try:
        return json.loads(await request.body()), None
    except ValueError as exc:
        return None, _json_body_error(f"body is not JSON: {exc}")


def _if_match(request: Request) -> int | None:
    header = request.headers.get("if-match")
    if not header:
        return None
    try:
        return int(header.strip().removeprefix("W/").strip('"'))
    except ValueError:
        return -1


def _flag_item(item: Versioned[Any]) -> dict[str, Any]:
    return {**flag_to_data(item.value), "version": item.version,
            "updated_at": item.updated_at.isoformat(), "updated_by": item.updated_by,
            **item.meta}


def _drift_warnings(item: Versioned[Any] | None) -> list[str]:
    if item is None or not item.meta.get("drifted"):
        return []
    return [f"flag '{item.value.key}' is managed in git ({item.meta.get('git_path')}) and now "
            "differs from it: `rollwave flags sync` will report it as drifted (and refuse to "
            "overwrite it without --force) until the file is updated"]


@runtime_checkable
class AuditedStore(Protocol):
    """A store with history and revert (the database store)."""

    def history(self, key: str | None = None, *, kind: Any = "flag", limit: int = 100,
                newest_first: bool = True) -> list[Any]:
        """Changes of one item, newest first."""
        ...

    def revert(self, key: str, *, actor: str, reason: str = "", to_version: int | None = None,
               kind: Any = "flag", expected_version: int | None = None) -> Change:
        """Undo the last change (or go back to a version)."""
        ...


def _change_body(change: Change) -> dict[str, Any]:
    def dump(value: Any) -> Any:
        return None if value is None else value.model_dump(mode="json", exclude_defaults=True)
    return {"kind": change.kind, "key": change.key, "revision": change.revision,
            "version": change.version, "actor": change.actor, "reason": change.reason,
            "at": change.at.isoformat(), "before": dump(change.before),
            "after": dump(change.after)}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class _Notifier:
    """Wakes SSE connections (on their event loops) when the store's revision changes."""

    def __init__(self, store: FlagStore) -> None:
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        store.subscribe(self._changed)

    def _changed(self, revision: int) -> None:
        for loop, event in list(self._waiters):
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # loop closed
                self._waiters.discard((loop, event))

    def register(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        entry = (asyncio.get_running_loop(), asyncio.Event())
        self._waiters.add(entry)
        return entry

    def unregister(self, entry: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        self._waiters.discard(entry)


def flags_router(  # noqa: PLR0915
    store: FlagStore,
    auth: Callable[..., Any],
    *,
    read_auth: Callable[..., Any] | None = None,
    default_environment: str | None = None,
    poll_interval: float = 2.0,
    keepalive_interval: float = 15.0,
) -> APIRouter:
    """The flag API router over ``store``; see the module docstring for the routes.

    ``poll_interval`` bounds how long an SSE client waits for a change made through another
    process (a store that cannot push); changes through this store are pushed at once.
    """
    reader = read_auth or auth
    cache = SnapshotCache(store.flagset)
    notifier = _Notifier(store)
    router = APIRouter()
    read_dep = Depends(reader)
    write_dep = Depends(auth)
    env_query = Query(default=None)

    def current(environment: str | None) -> CompiledEnvironment:
        return cache.get(environment if environment is not None else default_environment,
                         store.revision())

    def environment_of(request: Request) -> str | None:
        return (request.query_params.get("environment")
                or request.headers.get(ENVIRONMENT_HEADER) or default_environment)

    def reason_of(request: Request) -> str:
        return request.headers.get(REASON_HEADER, "")

    router.include_router(ofrep_router(current, environment_of, reader))

    @router.get("/api/v1/flags/snapshot", tags=["flags"])
    def snapshot(request: Request, environment: str | None = env_query,
                 _actor: Any = read_dep) -> Response:
        compiled = current(environment or environment_of(request))
        inm = request.headers.get("if-none-match", "")
        if compiled.etag in {t.strip().removeprefix("W/") for t in inm.split(",")}:
            return Response(status_code=304, headers={"ETag": compiled.etag})
        return JSONResponse(compiled.document, headers={"ETag": compiled.etag,
                                                        "Cache-Control": "no-cache"})

    @router.get("/api/v1/flags/stream", tags=["flags"])
    async def stream(request: Request, environment: str | None = env_query,
                     _actor: Any = read_dep) -> StreamingResponse:
        env = environment or environment_of(request)

        async def events() -> AsyncIterator[bytes]:
            entry = notifier.register()
            sent = None
            last_write = time.monotonic()
            try:
                yield b"retry: 1000\n\n"
                while True:
                    compiled = current(env)
                    if compiled.etag != sent:
                        sent = compiled.etag
                        data = json.dumps(compiled.document, separators=(",", ":"))
                        yield (f"id: {compiled.revision}\nevent: snapshot\n"
                               f"data: {data}\n\n").encode()
                        last_write = time.monotonic()
                    entry[1].clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(entry[1].wait(), timeout=poll_interval)
                    if await request.is_disconnected():
                        return
                    if time.monotonic() - last_write >= keepalive_interval:
                        yield b": keepalive\n\n"
                        last_write = time.monotonic()
            finally:
                notifier.unregister(entry)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    @router.get("/api/v1/flags", tags=["flags"])
    def list_flags(_actor: Any = read_dep) -> dict[str, Any]:
        revision = store.revision()
        records = getattr(store, "records", None)
        if records is not None:  # the database store lists in one query
            return {"flags": [{**r.data, "version": r.version,
                               "updated_at": r.updated_at.isoformat(),
                               "updated_by": r.updated_by, **r.meta()} for r in records()],
                    "revision": revision}
        flagset, revision = store.flagset()
        items = []
        for key in sorted(flagset.flags):
            item = store.get_flag(key)
            if item is not None:
                items.append(_flag_item(item))
        return {"flags": items, "revision": revision}

    @router.get("/api/v1/flags/{key}", tags=["flags"])
    def get_flag(key: str, _actor: Any = read_dep) -> Response:
        item = store.get_flag(key)
        if item is None:
            return _error(FlagNotFound(f"flag '{key}' does not exist"))
        return JSONResponse(_flag_item(item), headers={"ETag": f'"{item.version}"'})

    async def _store_flag(request: Request, key: str, data: Any, actor: Any) -> Response:
        if key in RESERVED_KEYS:
            return _json_body_error(f"'{key}' is reserved; choose another flag key")
        try:
            flagset, _ = store.flagset()
            flag = parse_flag(data, key=key, flagset=flagset)
            change = store.put_flag(flag, actor=_actor_name(actor), reason=reason_of(request),
                                    expected_version=_if_match(request))
        except RollwaveError as exc:
            return _error(exc)
        item = store.get_flag(key)
        body: dict[str, Any] = {"flag": _flag_item(item) if item else None,
                                "change": _change_body(change)}
        headers = {"ETag": f'"{change.version}"'}
        warnings = _drift_warnings(item)
        if warnings:
            body["warnings"] = warnings
            headers["X-Rollwave-Warning"] = "drifted-from-git"
        return JSONResponse(body, status_code=201 if change.before is None else 200,
                            headers=headers)

    @router.put("/api/v1/flags/{key}", tags=["flags"])
    async def put_flag(key: str, request: Request, actor: Any = write_dep) -> Response:
        data, problem = await _json(request)
        if problem:
            return problem
        return await _store_flag(request, key, data, actor)

    @router.patch("/api/v1/flags/{key}", tags=["flags"])
    async def patch_flag(key: str, request: Request, actor: Any = write_dep) -> Response:
        item = store.get_flag(key)
        if item is None:
            return _error(FlagNotFound(f"flag '{key}' does not exist"))
        patch, problem = await _json(request)
        if problem:
            return problem
        data = merge_patch(item.value.model_dump(mode="json", exclude_defaults=True), patch)
        return await _store_flag(request, key, data, actor)

    @router.delete("/api/v1/flags/{key}", tags=["flags"])
    def delete_flag(key: str, request: Request, actor: Any = write_dep) -> Response:
        try:
            change = store.delete_flag(key, actor=_actor_name(actor), reason=reason_of(request),
                                       expected_version=_if_match(request))
        except RollwaveError as exc:
            return _error(exc)
        return JSONResponse({"change": _change_body(change)})

    def _kill(key: str, request: Request, actor: Any, killed: bool,
              environment: str | None) -> Response:
        try:
            change = set_killed(store, key, killed, actor=_actor_name(actor),
                                reason=reason_of(request), environment=environment)
        except RollwaveError as exc:
            return _error(exc)
        return JSONResponse({"change": _change_body(change)})

    if isinstance(store, AuditedStore):
        audited = store

        @router.get("/api/v1/flags/{key}/history", tags=["flags"])
        def flag_history(key: str, limit: int = Query(default=100, ge=1, le=1000),
                         full: bool = False, _actor: Any = read_dep) -> dict[str, Any]:
            entries = audited.history(key, limit=limit)
            return {"key": key, "history": [e.to_dict(full=full) for e in entries]}

        @router.post("/api/v1/flags/{key}/revert", tags=["flags"])
        def revert_flag(key: str, request: Request,
                        to_version: int | None = Query(default=None, ge=1),
                        actor: Any = write_dep) -> Response:
            try:
                change = audited.revert(key, actor=_actor_name(actor),
                                        reason=reason_of(request), to_version=to_version,
                                        expected_version=_if_match(request))
            except RollwaveError as exc:
                return _error(exc)
            return JSONResponse({"change": _change_body(change)})

    @router.post("/api/v1/flags/{key}/kill", tags=["flags"])
    def kill(key: str, request: Request, environment: str | None = env_query,
             actor: Any = write_dep) -> Response:
        return _kill(key, request, actor, True, environment)

    @router.post("/api/v1/flags/{key}/unkill", tags=["flags"])
    def unkill(key: str, request: Request, environment: str | None = env_query,
               actor: Any = write_dep) -> Response:
        return _kill(key, request, actor, False, environment)

    @router.get("/api/v1/segments", tags=["segments"])
    def list_segments(_actor: Any = read_dep) -> dict[str, Any]:
        flagset, revision = store.flagset()
        return {"segments": [s.model_dump(mode="json", exclude_defaults=True) | {"key": k}
                             for k, s in sorted(flagset.segments.items())],
                "revision": revision}

    @router.get("/api/v1/segments/{key}", tags=["segments"])
    def get_segment(key: str, _actor: Any = read_dep) -> Response:
        item = store.get_segment(key)
        if item is None:
            return _error(SegmentNotFound(f"segment '{key}' does not exist"))
        body = item.value.model_dump(mode="json", exclude_defaults=True) | {
            "key": key, "version": item.version}
        return JSONResponse(body, headers={"ETag": f'"{item.version}"'})

    @router.put("/api/v1/segments/{key}", tags=["segments"])
    async def put_segment(key: str, request: Request, actor: Any = write_dep) -> Response:
        data, problem = await _json(request)
        if problem:
            return problem
        try:
            segment = parse_segment(data, key=key)
            change = store.put_segment(segment, actor=_actor_name(actor),
                                       reason=reason_of(request),
                                       expected_version=_if_match(request))
        except RollwaveError as exc:
            return _error(exc)
        return JSONResponse({"change": _change_body(change)},
                            status_code=201 if change.before is None else 200)

    @router.delete("/api/v1/segments/{key}", tags=["segments"])
    def delete_segment(key: str, request: Request, actor: Any = write_dep) -> Response:
        flagset, _ = store.flagset()
        users = sorted(k for k, f in flagset.flags.items() if key in f.segment_refs())
        if users:
            return _error(ValidationFailed([Problem(
                message=f"segment '{key}' is used by flags: {', '.join(users)}",
                code="segment.in_use", hint="remove it from those flags first")],
                what=f"segment '{key}'"))
        try:
            change = store.delete_segment(key, actor=_actor_name(actor),
                                          reason=reason_of(request))
        except RollwaveError as exc:
            return _error(exc)
        return JSONResponse({"change": _change_body(change)})

    return router


def flags_app(store: FlagStore | None = None, *, auth: Callable[..., Any] | None = None,
              default_environment: str | None = None, **options: Any) -> Any:
    """A standalone FastAPI app serving only the flag API (tests, benchmarks, demos)."""
    from fastapi import FastAPI

    async def anonymous() -> str:  # async: FastAPI would run a sync one in a thread pool
        return "anonymous"
    app = FastAPI(title="Rollwave flags")
    app.include_router(flags_router(store or InMemoryStoreFactory(), auth or anonymous,
                                    default_environment=default_environment, **options))
    return app


def InMemoryStoreFactory() -> FlagStore:  # noqa: N802 - reads as a constructor
    """A fresh empty in-memory store."""
    from rollwave.flags.store import InMemoryFlagStore
    return InMemoryFlagStore(FlagSet())

"""REST API for releases, plan previews, rollouts, the audit log and deployment logs.

Every route needs a principal (``rollwave.api.auth``): ``read`` to look, ``deploy`` to cut
releases and start, pause, resume, abort or roll back rollouts, ``approve`` to approve a wave.
Actions go through the application services with the caller as the actor, so the audit log
names who did what. Approving a rollout that touches a production environment enforces
separation of duties: whoever requested it cannot approve it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from rollwave.api.auth import DOCUMENTED_SECURITY, acting_app, app_of, require
from rollwave.api.common import PREFIX, error_responses, fresh_app
from rollwave.core.states import ControlAction, RolloutState, TargetState
from rollwave.errors import RolloutNotFound
from rollwave.services import audit, plans, releases, rollouts
from rollwave.services.access import Principal
from rollwave.services.context import App
from rollwave.storage import rollouts as repo
from rollwave.storage.events import Event, list_events
from rollwave.storage.releases import ReleaseRecord
from rollwave.storage.tables import events as t_events
from rollwave.storage.tables import rollouts as t_rollouts

Reader = Annotated[Principal, Depends(require("read"))]
Deployer = Annotated[Principal, Depends(require("deploy"))]
Approver = Annotated[Principal, Depends(require("approve"))]


# --- models --------------------------------------------------------------------------------------


class Release(BaseModel):
    """An immutable release: service versions plus a snapshot of every instance's config."""

    id: str
    created_at: datetime
    created_by: str
    notes: str
    workspace_hash: str
    versions: dict[str, str] = Field(description="service → version (`=` keeps the version)")
    config_digest: str | None


class ReleaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    versions: dict[str, Annotated[str, Field(max_length=100)]] = Field(
        default_factory=dict, max_length=200, description="service → version, e.g. "
        '`{"web": "1.1"}`; may be empty with `config_only`.')
    name: str | None = Field(default=None, max_length=100,
                             description="Release name (default: DATE-N).")
    notes: str = Field(default="", max_length=20_000)
    config_only: bool = Field(default=False, description="Ship the current configuration "
                              "without changing versions.")


class ServiceChangeBody(BaseModel):
    service: str
    from_version: str | None = None
    to_version: str
    from_config: str | None = None
    to_config: str | None = None


class PlanTarget(BaseModel):
    instance: str
    customer: str
    window_open: bool
    next_window: datetime | None = None
    window_note: str = ""
    changes: list[ServiceChangeBody]


class PlanWave(BaseModel):
    index: int
    name: str
    parallelism: int
    bake: float = Field(description="Seconds to wait after the wave before the next one.")
    failure_budget: int
    gates: list[dict[str, Any]]
    targets: list[PlanTarget]


class PlanBody(BaseModel):
    release: str
    policy: str
    emergency: bool
    created_at: datetime
    unchanged: list[str]
    excluded: list[str]
    freezes: list[str]
    freezes_overridden: list[str] = []
    waves: list[PlanWave]


class ConfigChange(BaseModel):
    service: str
    change: str


class ConfigGroup(BaseModel):
    count: int = Field(description="Instances that get exactly these changes.")
    examples: list[str]
    changes: list[ConfigChange]


class ConfigChanges(BaseModel):
    """The per-instance config diff, grouped: instances with identical changes together."""

    total: int
    changed: int
    unchanged: int
    groups: list[ConfigGroup]


class PlanPreview(BaseModel):
    release: Release
    plan: PlanBody
    config_changes: ConfigChanges | None = None


class Rollout(BaseModel):
    id: str
    release_id: str
    kind: str = Field(description="`deploy`, or `rollback` (of `parent_id`).")
    policy: str
    state: RolloutState
    emergency: bool
    reason: str
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    current_wave: int = Field(description="Index of the wave in progress (0-based).")
    outcome: str | None
    summary: str
    waiting_for: str
    parent_id: str | None
    duration_seconds: float | None
    target_count: int


class Target(BaseModel):
    instance: str
    wave: int
    state: TargetState
    changes: list[dict[str, Any]]
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str | None
    explanation: str
    verdict: dict[str, Any] | None
    next_window: datetime | None


class WaveStatus(BaseModel):
    index: int
    name: str
    parallelism: int
    bake: float
    failure_budget: int
    gates: list[dict[str, Any]]
    total: int
    counts: dict[str, int] = Field(description="target state → number of instances")
    current: bool


class EventBody(BaseModel):
    seq: int
    at: datetime
    actor: str
    kind: str
    rollout_id: str | None
    instance: str | None
    message: str
    data: dict[str, Any]


class RolloutStatus(BaseModel):
    """A rollout with its waves, its instances and its most recent events (oldest first)."""

    rollout: Rollout
    production: bool = Field(description="Touches a production environment: approvals "
                             "enforce separation of duties.")
    counts: dict[str, int]
    waves: list[WaveStatus]
    targets: list[Target]
    events: list[EventBody]


class RolloutStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release: str = Field(max_length=100)
    policy: str | None = Field(default=None, max_length=100)
    reason: str = Field(default="", max_length=2_000)
    emergency: bool = False


class ControlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2_000, description="Why, for the audit log.")


class ApproveRequest(ControlRequest):
    wave: int | None = Field(default=None, ge=0, le=10_000,
                             description="Index of the wave to approve (default: current).")


class ControlResult(BaseModel):
    action: ControlAction
    message: str
    rollout: Rollout = Field(description="The rollout acted on; for a rollback of a rollout "
                             "that already ended, the new rollback rollout.")
    created: bool = Field(description="A new (rollback) rollout was created.")


class EventPage(BaseModel):
    events: list[EventBody] = Field(description="Newest first.")
    next_before: int | None = Field(description="Pass as `before` for the next (older) page; "
                                    "null on the last page.")


class DeployLog(BaseModel):
    id: int
    rollout_id: str
    instance: str
    attempt: int
    purpose: str
    at: datetime
    ok: bool
    text: str


# --- conversions ---------------------------------------------------------------------------------


def release_body(record: ReleaseRecord) -> dict[str, Any]:
    return {"id": record.id, "created_at": record.created_at, "created_by": record.created_by,
            "notes": record.notes, "workspace_hash": record.workspace_hash,
            "versions": dict(record.versions), "config_digest": record.config_digest}


def rollout_body(record: repo.RolloutRecord) -> dict[str, Any]:
    return {
        "id": record.id, "release_id": record.release_id, "kind": record.kind,
        "policy": record.policy, "state": record.state, "emergency": record.emergency,
        "reason": record.reason, "requested_by": record.requested_by,
        "created_at": record.created_at, "started_at": record.started_at,
        "finished_at": record.finished_at, "current_wave": record.current_wave,
        "outcome": record.outcome, "summary": record.summary,
        "waiting_for": record.waiting_for, "parent_id": record.parent_id,
        "duration_seconds": record.duration,
        "target_count": sum(len(w.get("targets", ())) for w in record.plan.get("waves", ())),
    }


def _target_body(t: repo.TargetRecord) -> dict[str, Any]:
    return {"instance": t.instance, "wave": t.wave, "state": t.state, "changes": t.changes,
            "attempts": t.attempts, "started_at": t.started_at, "finished_at": t.finished_at,
            "outcome": t.outcome, "explanation": t.explanation,
            "verdict": dict(t.verdict) if t.verdict else None, "next_window": t.next_window}


def event_body(e: Event) -> dict[str, Any]:
    return {"seq": e.seq, "at": e.at, "actor": e.actor, "kind": e.kind,
            "rollout_id": e.rollout_id, "instance": e.instance, "message": e.message,
            "data": dict(e.data)}


def _wave_bodies(record: repo.RolloutRecord,
                 targets: Iterable[repo.TargetRecord]) -> list[dict[str, Any]]:
    counts: dict[int, dict[str, int]] = {}
    for t in targets:
        per = counts.setdefault(t.wave, {})
        per[t.state.value] = per.get(t.state.value, 0) + 1
    out = []
    for wave in record.plan.get("waves", ()):
        index = int(wave["index"])
        per = counts.get(index, {})
        out.append({"index": index, "name": wave["name"], "parallelism": wave["parallelism"],
                    "bake": wave["bake"], "failure_budget": wave["failure_budget"],
                    "gates": wave.get("gates", []), "total": sum(per.values()), "counts": per,
                    "current": index == record.current_wave and not record.state.terminal})
    return out


def touches_production(app: App, plan: Mapping[str, Any]) -> bool:
    """True when any planned instance runs in a production environment (or is unknown now)."""
    workspace = app.workspace()
    environments = workspace.project.environments
    for wave in plan.get("waves", ()):
        for target in wave.get("targets", ()):
            instance = workspace.fleet.get(target["instance"])
            if instance is None:
                return True  # removed from the fleet since: assume the strict case
            environment = environments.get(instance.environment)
            if environment is None or environment.production:
                return True
    return False


# --- rollout status, cached per version ---------------------------------------------------------


def _status_response(app: App, ref: str, events: int, wave: int | None,
                     target_state: TargetState | None) -> Response:
    version = _status_version(app, ref)
    rollout_id = ref
    if version is None:  # a prefix or `latest`: resolve it to the id first
        rollout_id = rollouts.resolve(app, ref).id
        version = _status_version(app, rollout_id)
        if version is None:
            raise RolloutNotFound(f"rollout '{rollout_id}' disappeared")
    key = (rollout_id, events, wave, target_state, id(app._workspace))
    cached = _STATUS_CACHE.get(key, version)
    if cached is None:
        cached = _status(app, rollout_id, events, wave, target_state)
        _STATUS_CACHE.put(key, version, cached)
    return Response(cached.body(), media_type="application/json")


def _status(app: App, rollout_id: str, events: int, wave: int | None,
            target_state: TargetState | None) -> _CachedStatus:
    view = rollouts.status(app, rollout_id, event_limit=events)
    shown = [t for t in view.targets
             if (wave is None or t.wave == wave)
             and (target_state is None or t.state == target_state)]
    model = RolloutStatus.model_validate({
        "rollout": rollout_body(view.rollout),
        "production": touches_production(app, view.rollout.plan),
        "counts": view.counts, "waves": _wave_bodies(view.rollout, view.targets),
        "targets": [_target_body(t) for t in shown],
        "events": [event_body(e) for e in view.events]})
    return _CachedStatus(model, view.rollout)


def _status_version(app: App, rollout_id: str) -> tuple[Any, ...] | None:
    """What a status view depends on, in one cheap query; None when there is no such id.

    The rollout row's ``updated_at`` moves with every change of the rollout, and every change
    of one of its targets appends an event naming the rollout (the rule that every state change
    appends an event), so an equal (updated_at, newest event) means an equal view — except
    ``duration_seconds`` of a running rollout, which is recomputed on each hit.
    """
    newest_event = sa.select(sa.func.max(t_events.c.seq)).where(
        t_events.c.rollout_id == rollout_id).scalar_subquery()
    with app.db().read() as conn:
        row = conn.execute(sa.select(t_rollouts.c.updated_at, newest_event).where(
            t_rollouts.c.id == rollout_id)).first()
    return None if row is None else tuple(row)


class _CachedStatus:
    """A status view as JSON; only a running rollout's own (small) part is rendered per hit,
    because its ``duration_seconds`` moves with the clock."""

    def __init__(self, model: RolloutStatus, record: repo.RolloutRecord) -> None:
        self.rollout = model.rollout
        self.record = record
        self._rest = model.model_dump_json(exclude={"rollout"}).encode()  # {"production":…}
        self._json = self._render(self.rollout) if record.state.terminal else None

    def _render(self, rollout: Rollout) -> bytes:
        return b'{"rollout":' + rollout.model_dump_json().encode() + b"," + self._rest[1:]

    def body(self) -> bytes:
        if self._json is not None:
            return self._json
        return self._render(self.rollout.model_copy(
            update={"duration_seconds": self.record.duration}))


class _StatusCache:
    """The newest views of recently asked-for rollouts, per process (a small LRU)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], tuple[tuple[Any, ...], _CachedStatus]] = \
            OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], version: tuple[Any, ...]) -> _CachedStatus | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None or hit[0] != version:
                return None
            self._items.move_to_end(key)
            return hit[1]

    def put(self, key: tuple[Any, ...], version: tuple[Any, ...], view: _CachedStatus) -> None:
        with self._lock:
            self._items[key] = (version, view)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


_STATUS_CACHE = _StatusCache()


# --- routes --------------------------------------------------------------------------------------


def router(ctx: App) -> APIRouter:
    """Releases, plans, rollouts, audit log and deployment logs under ``/api/v1``."""
    api = APIRouter(prefix=PREFIX, dependencies=DOCUMENTED_SECURITY)

    @api.get("/releases", tags=["releases"], summary="List releases, newest first",
             response_model=list[Release], responses=error_responses())
    def list_releases(request: Request, _: Reader,
                      limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
        return [release_body(r) for r in releases.list_releases(app_of(request), limit)]

    @api.post("/releases", tags=["releases"], status_code=201, response_model=Release,
              summary="Cut an immutable release from the workspace as it is now",
              description="Records the versions and renders (and snapshots) the config of "
                          "every instance. Needs `deploy`.",
              responses=error_responses(409))
    def create_release(request: Request, principal: Deployer,
                       body: ReleaseCreate) -> dict[str, Any]:
        app = fresh_app(request, principal)
        record = releases.create_release(app, body.versions, name=body.name, notes=body.notes,
                                         config_only=body.config_only)
        return release_body(record)

    @api.get("/releases/{release_id}", tags=["releases"], summary="One release",
             response_model=Release, responses=error_responses(404))
    def get_release(request: Request, _: Reader, release_id: str) -> dict[str, Any]:
        return release_body(releases.get_release(app_of(request), release_id))

    @api.get("/releases/{release_id}/plan", tags=["plans"], response_model=PlanPreview,
             summary="Preview the rollout plan of a release, with the grouped config diff",
             description="Waves, the instances in each and what changes on them, maintenance "
                         "windows and freezes, and the per-instance config changes grouped by "
                         "identical change sets. Nothing is recorded.",
             responses=error_responses(404))
    def preview_plan(request: Request, principal: Reader, release_id: str,
                     policy: Annotated[str | None, Query(max_length=100)] = None,
                     emergency: bool = False) -> dict[str, Any]:
        app = fresh_app(request, principal)
        return plans.preview(app, release_id, policy=policy, emergency=emergency).to_dict()

    @api.get("/rollouts", tags=["rollouts"], response_model=list[Rollout],
             summary="Rollout history, newest first, optionally filtered",
             responses=error_responses())
    def list_rollouts(request: Request, _: Reader,
                      limit: Annotated[int, Query(ge=1, le=500)] = 30,
                      state: Annotated[list[RolloutState] | None, Query()] = None,
                      active: Annotated[bool | None, Query(
                          description="Only active (true) or finished (false) rollouts.")]
                      = None,
                      release: Annotated[str | None, Query(max_length=100)] = None,
                      ) -> list[dict[str, Any]]:
        wanted = set(state or RolloutState)
        if active is not None:
            wanted = {s for s in wanted if s.active == active}
        if not wanted:
            return []
        with app_of(request).db().read() as conn:
            found = repo.find_rollouts(conn, states=sorted(wanted), limit=limit,
                                       release_id=release)
        return [rollout_body(r) for r in found]

    @api.post("/rollouts", tags=["rollouts"], status_code=201, response_model=Rollout,
              summary="Start rolling a release out in waves",
              description="Records the rollout; the orchestrator carries it out. Needs "
                          "`deploy`. An emergency needs a `reason`.",
              responses=error_responses(404, 409))
    def start_rollout(request: Request, principal: Deployer,
                      body: RolloutStart) -> dict[str, Any]:
        app = fresh_app(request, principal)
        record = rollouts.start(app, body.release, policy=body.policy, reason=body.reason,
                                emergency=body.emergency)
        return rollout_body(record)

    @api.get("/rollouts/{rollout_id}", tags=["rollouts"], response_model=RolloutStatus,
             summary="Status of a rollout: waves, instances, recent events",
             description="`rollout_id` is an id, a unique prefix, or `latest`.",
             responses=error_responses(404))
    def rollout_status(request: Request, _: Reader, rollout_id: str,
                       events: Annotated[int, Query(ge=0, le=500, description="How many of "
                                                    "the most recent events.")] = 20,
                       wave: Annotated[int | None, Query(ge=0, description="Only the "
                                                         "instances of this wave.")] = None,
                       target_state: Annotated[TargetState | None, Query(
                           description="Only instances in this state.")] = None,
                       ) -> Response:
        return _status_response(app_of(request), rollout_id, events, wave, target_state)

    def control(request: Request, principal: Principal, rollout_id: str,
                action: ControlAction, reason: str, wave: int | None = None) -> dict[str, Any]:
        app = acting_app(request, principal)
        record = rollouts.resolve(app, rollout_id)
        separation = action == ControlAction.APPROVE and touches_production(app, record.plan)
        acted = rollouts.control(app, record.id, action, reason=reason, wave=wave,
                                 enforce_separation=separation)
        created = acted.id != record.id
        message = (f"rollback rollout {acted.id} started for rollout {record.id}"
                   if created else f"recorded: {action.value} rollout {acted.id}; the "
                   "orchestrator acts on it within a second")
        return {"action": action, "message": message, "rollout": rollout_body(acted),
                "created": created}

    @api.post("/rollouts/{rollout_id}/approve", tags=["rollouts"], status_code=202,
              response_model=ControlResult, summary="Approve the wave a rollout waits on",
              description="Needs `approve`. For a rollout that touches production, the person "
                          "who requested it cannot approve it (separation of duties).",
              responses=error_responses(404, 409))
    def approve(request: Request, principal: Approver, rollout_id: str,
                body: ApproveRequest) -> dict[str, Any]:
        return control(request, principal, rollout_id, ControlAction.APPROVE, body.reason,
                       body.wave)

    def add_control_route(action: ControlAction, summary: str) -> None:
        def act(request: Request, principal: Deployer, rollout_id: str,
                body: ControlRequest) -> dict[str, Any]:
            return control(request, principal, rollout_id, action, body.reason)

        act.__name__ = f"{action.value}_rollout"
        api.post(f"/rollouts/{{rollout_id}}/{action.value}", tags=["rollouts"],
                 status_code=202, response_model=ControlResult, summary=summary,
                 description="Needs `deploy`. Recorded with who and why; the orchestrator "
                             "acts on it.", responses=error_responses(404, 409))(act)

    add_control_route(ControlAction.PAUSE,
                      "Pause a rollout after the instances in flight finish")
    add_control_route(ControlAction.RESUME, "Resume a paused rollout")
    add_control_route(ControlAction.ABORT, "Stop a rollout; instances stay as they are")
    add_control_route(ControlAction.ROLLBACK,
                      "Roll a rollout's release back everywhere it went (running or finished)")

    @api.get("/rollouts/{rollout_id}/logs", tags=["audit"], response_model=list[DeployLog],
             summary="Deployment logs of a rollout (deployer output, secrets redacted)",
             responses=error_responses(404))
    def deploy_logs(request: Request, _: Reader, rollout_id: str,
                    instance: Annotated[str | None, Query(
                        max_length=200, description="Only this CUSTOMER/INSTANCE.")] = None,
                    ) -> list[dict[str, Any]]:
        return audit.deploy_logs(app_of(request), rollout_id, instance)

    @api.get("/events", tags=["audit"], response_model=EventPage,
             summary="Search the audit log (every change, who made it, when and why)",
             description="Newest first. Page back with `before` = the previous page's "
                         "`next_before`; poll for new events with `after`.",
             responses=error_responses(404))
    def search_events(request: Request, _: Reader,
                      rollout: Annotated[str | None, Query(
                          max_length=100, description="Rollout id or prefix.")] = None,
                      instance: Annotated[str | None, Query(max_length=200)] = None,
                      kind: Annotated[str | None, Query(
                          max_length=60, description="Kind prefix, e.g. `rollout.` or "
                                                     "`user.`")] = None,
                      search: Annotated[str | None, Query(
                          max_length=200, description="Text in message, actor, instance or "
                                                      "kind.")] = None,
                      before: Annotated[int | None, Query(ge=0)] = None,
                      after: Annotated[int | None, Query(ge=0)] = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        app = app_of(request)
        rollout_id = rollouts.resolve(app, rollout).id if rollout else None
        with app.db().read() as conn:
            rows = list_events(conn, rollout_id=rollout_id, instance=instance or None,
                               kind_prefix=kind or None, search=search or None,
                               before=before, after=after, limit=limit + 1,
                               newest_first=True)
        more = len(rows) > limit
        rows = rows[:limit]
        return {"events": [event_body(e) for e in rows],
                "next_before": rows[-1].seq if more and rows else None}

    return api

"""Rollouts as use cases: plan, start, control (approve/pause/resume/abort/rollback), inspect.

Shells call these; they only record requests. The orchestrator (``rollwave worker``) acts on
them, as Argo Rollouts' CLI does.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rollwave.core.planning import Plan, ReleaseSpec, plan_release
from rollwave.core.states import ControlAction, RolloutState, TargetState
from rollwave.errors import (
    InvalidTransition,
    PlanError,
    Problem,
    RolloutNotFound,
    ValidationFailed,
)
from rollwave.services.context import App
from rollwave.services.releases import get_release
from rollwave.storage import fleet_state
from rollwave.storage import releases as release_repo
from rollwave.storage import rollouts as repo
from rollwave.storage.events import Event, list_events

ACTIVE = [s for s in RolloutState if s.active]


def plan(app: App, release_id: str, *, policy: str | None = None, emergency: bool = False,
         now: datetime | None = None) -> Plan:
    """The plan ``release_id`` would follow now under ``policy`` (nothing is recorded)."""
    workspace = app.workspace()
    workspace.policy(policy)  # a clear error for an unknown policy
    release = get_release(app, release_id)
    with app.db().read() as conn:
        hashes = release_repo.release_config_hashes(conn, release.id)
        current = fleet_state.current_states(conn)
    spec = ReleaseSpec(name=release.id, versions=release.versions, config_hashes=hashes)
    return plan_release(workspace.fleet, spec, current, policy or workspace.project.default_policy,
                        now or datetime.now(UTC), emergency=emergency)


def start(app: App, release_id: str, *, policy: str | None = None, reason: str = "",
          emergency: bool = False, now: datetime | None = None) -> repo.RolloutRecord:
    """Record a rollout of ``release_id``; the orchestrator picks it up.

    Refuses (with what to do) when an emergency has no reason, a freeze is in force, nothing
    would change, or another active rollout already touches the same instances.
    """
    workspace = app.workspace()
    policy_name = policy or workspace.project.default_policy
    chosen = workspace.policy(policy_name)
    is_emergency = emergency or chosen.emergency
    if is_emergency and not reason.strip():
        raise ValidationFailed([Problem(
            message="an emergency rollout needs a recorded reason", path="--reason",
            hint='add --reason "why this cannot wait", e.g. the incident id')], what="rollout")
    the_plan = plan(app, release_id, policy=policy_name, emergency=is_emergency, now=now)
    if the_plan.freezes:
        raise PlanError(f"deploys are frozen: {'; '.join(the_plan.freezes)}",
                        hint="wait for the freeze to end, or use an emergency policy "
                             "(e.g. --policy hotfix --reason ...)")
    if the_plan.target_count == 0:
        raise PlanError(f"release {release_id} changes nothing: every instance already runs it",
                        hint="see `rollwave plan` and `rollwave status`")
    the_plan, drift_note = _apply_drift_policy(app, the_plan, chosen.drift)
    rollout_id = "ro-" + secrets.token_hex(4)
    wanted = {t.instance for w in the_plan.waves for t in w.targets}
    with app.db().begin() as conn:
        for other in repo.find_rollouts(conn, states=ACTIVE):
            busy = {t.instance for t in repo.targets(conn, other.id) if not t.state.terminal}
            overlap = sorted(busy & wanted)
            if overlap:
                raise InvalidTransition(
                    f"rollout {other.id} is still working on {len(overlap)} of these instances "
                    f"(e.g. {', '.join(overlap[:3])})",
                    hint=f"wait for it, or stop it: `rollwave abort {other.id}`")
        repo.insert_rollout(conn, rollout_id=rollout_id, release_id=release_id, kind="deploy",
                            policy=policy_name, emergency=is_emergency, reason=reason,
                            requested_by=app.actor, plan=the_plan.to_dict())
        from rollwave.storage.events import append_event

        append_event(conn, "rollout.created",
                     f"{app.actor} started rollout {rollout_id} of release {release_id} with "
                     f"policy {policy_name}: {the_plan.target_count} instances in "
                     f"{len(the_plan.waves)} waves" + (f" (emergency: {reason})"
                                                       if is_emergency else ""),
                     actor=app.actor, rollout_id=rollout_id,
                     data={"release": release_id, "policy": policy_name,
                           "emergency": is_emergency, "targets": the_plan.target_count})
        if drift_note:
            append_event(conn, "rollout.drift", drift_note, actor=app.actor,
                         rollout_id=rollout_id)
        record = repo.get_rollout(conn, rollout_id)
    assert record is not None
    app.db().work_added.set()
    return record


def _apply_drift_policy(app: App, the_plan: Plan, policy: str) -> tuple[Plan, str]:
    """Refuse, skip or repair instances that drifted from their last deployment."""
    from dataclasses import replace

    from rollwave.services.drift import find_drift

    keys = [t.instance for w in the_plan.waves for t in w.targets]
    drifted = find_drift(app, keys)
    if not drifted:
        return the_plan, ""
    names = sorted({d.instance for d in drifted})
    listing = "; ".join(d.message for d in drifted[:5]) + (" …" if len(drifted) > 5 else "")
    if policy == "refuse":
        raise PlanError(f"{len(names)} instances drifted from their last deployment: {listing}",
                        hint="inspect with `rollwave drift`; fix them, or use a policy with "
                             "drift: skip (leave them out) or drift: repair (redeploy them)")
    if policy == "repair":
        return the_plan, (f"{len(names)} drifted instances will be repaired by this rollout: "
                          f"{listing}")
    skip = set(names)
    waves = tuple(replace(w, targets=tuple(t for t in w.targets if t.instance not in skip))
                  for w in the_plan.waves)
    return replace(the_plan, waves=waves, excluded=(*the_plan.excluded, *names)), \
        f"{len(names)} drifted instances left out of this rollout: {listing}"


def resolve(app: App, ref: str | None) -> repo.RolloutRecord:
    """A rollout by id, unique id prefix, ``latest``, or (no ref) the one active rollout."""
    with app.db().read() as conn:
        if ref in (None, ""):
            active = repo.find_rollouts(conn, states=ACTIVE)
            if len(active) == 1:
                return active[0]
            if not active:
                raise RolloutNotFound("no rollout is active", hint="name one: see `rollwave "
                                      "history`")
            ids = ", ".join(r.id for r in active)
            raise RolloutNotFound(f"several rollouts are active ({ids})",
                                  hint="name the one you mean")
        if ref == "latest":
            latest = repo.find_rollouts(conn, limit=1)
            if latest:
                return latest[0]
            raise RolloutNotFound("there are no rollouts yet")
        assert ref is not None
        exact = repo.get_rollout(conn, ref)
        if exact is not None:
            return exact
        matches = repo.find_rollouts(conn, prefix=ref, limit=3)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RolloutNotFound(f"no rollout '{ref}'")
    raise RolloutNotFound(f"'{ref}' matches several rollouts", hint="give more of the id")


_ALLOWED: dict[ControlAction, set[RolloutState]] = {
    ControlAction.APPROVE: {RolloutState.PENDING, RolloutState.RUNNING, RolloutState.WAITING,
                            RolloutState.BAKING, RolloutState.PAUSED},
    ControlAction.PAUSE: {RolloutState.PENDING, RolloutState.RUNNING, RolloutState.WAITING,
                          RolloutState.BAKING},
    ControlAction.RESUME: {RolloutState.PAUSED},
    ControlAction.ABORT: {RolloutState.PENDING, RolloutState.RUNNING, RolloutState.WAITING,
                          RolloutState.BAKING, RolloutState.PAUSED},
    ControlAction.ROLLBACK: {RolloutState.PENDING, RolloutState.RUNNING, RolloutState.WAITING,
                             RolloutState.BAKING, RolloutState.PAUSED},
}


def allowed_actions(record: repo.RolloutRecord) -> set[ControlAction]:
    """What a person may ask of this rollout now (rollback also works once it has ended)."""
    allowed = {action for action, states in _ALLOWED.items() if record.state in states}
    if record.kind == "deploy" and record.state in (RolloutState.SUCCEEDED,
                                                    RolloutState.ABORTED, RolloutState.FAILED):
        allowed.add(ControlAction.ROLLBACK)
    return allowed


def control(app: App, ref: str | None, action: ControlAction, *, reason: str = "",
            wave: int | None = None, enforce_separation: bool = False) -> repo.RolloutRecord:
    """Record ``action`` on a rollout for the orchestrator to carry out.

    ``rollback`` of a rollout that already ended starts a new rollback rollout instead.
    ``enforce_separation`` (used by the API for production) refuses an approval by the person
    who requested the rollout.
    """
    record = resolve(app, ref)
    if action == ControlAction.ROLLBACK and record.state.terminal:
        return start_rollback(app, record, reason=reason)
    if record.state not in _ALLOWED[action]:
        raise InvalidTransition(
            f"cannot {action.value} rollout {record.id}: it is {record.state.value}")
    if action == ControlAction.APPROVE:
        if enforce_separation and app.actor == record.requested_by:
            from rollwave.errors import PermissionDenied

            raise PermissionDenied(
                f"{app.actor} requested rollout {record.id} and so cannot approve it",
                hint="separation of duties: ask another approver")
        if wave is None:
            wave = record.current_wave
    with app.db().begin() as conn:
        repo.add_control(conn, record.id, action, app.actor, reason, wave)
    return record


def start_rollback(app: App, original: repo.RolloutRecord, *,
                   reason: str = "") -> repo.RolloutRecord:
    """Undo a finished rollout: every instance it changed goes back to what it ran before."""
    with app.db().read() as conn:
        done = [t for t in repo.targets(conn, original.id)
                if t.state in (TargetState.SUCCEEDED, TargetState.HELD)]
    if not done:
        raise InvalidTransition(f"rollout {original.id} left no instance on its release",
                                hint="nothing to roll back")
    changes: list[dict[str, Any]] = []
    for target in done:
        inverted = []
        for change in target.changes:
            if change.get("from_version") is None:
                continue  # first install: nothing earlier to go back to
            inverted.append({"service": change["service"], "from_version": change["to_version"],
                             "to_version": change["from_version"],
                             "from_config": change.get("to_config"),
                             "to_config": change.get("from_config")})
        if inverted:
            changes.append({"instance": target.instance, "customer": target.instance.split("/")[0],
                            "window_open": True, "next_window": None,
                            "window_note": "rollback: maintenance window overridden",
                            "changes": inverted})
    if not changes:
        raise InvalidTransition(f"rollout {original.id} only made first installs",
                                hint="there is no previous version to go back to")
    parallelism = max((w["parallelism"] for w in original.plan["waves"]), default=1)
    plan_doc = {"release": original.release_id, "policy": original.policy, "emergency": True,
                "created_at": datetime.now(UTC).isoformat(), "unchanged": [], "excluded": [],
                "freezes": [], "waves": [{"index": 0, "name": "rollback",
                                          "parallelism": parallelism, "bake": 0,
                                          "failure_budget": len(changes), "gates": [],
                                          "targets": changes}]}
    rollout_id = "rb-" + secrets.token_hex(4)
    with app.db().begin() as conn:
        repo.insert_rollout(conn, rollout_id=rollout_id, release_id=original.release_id,
                            kind="rollback", policy=original.policy, emergency=True,
                            reason=reason, requested_by=app.actor, plan=plan_doc,
                            parent_id=original.id)
        from rollwave.storage.events import append_event

        append_event(conn, "rollout.created",
                     f"{app.actor} rolls back rollout {original.id}: {len(changes)} instances "
                     "return to their previous version and config" +
                     (f" ({reason})" if reason else ""),
                     actor=app.actor, rollout_id=rollout_id,
                     data={"rollback_of": original.id, "targets": len(changes)})
        record = repo.get_rollout(conn, rollout_id)
    assert record is not None
    app.db().work_added.set()
    return record


@dataclass(frozen=True)
class RolloutStatus:
    """Everything a status view shows about one rollout."""

    rollout: repo.RolloutRecord
    targets: list[repo.TargetRecord]
    counts: dict[str, int]
    events: list[Event]

    def to_dict(self) -> dict[str, Any]:
        return {"rollout": self.rollout.to_dict(), "counts": self.counts,
                "targets": [t.to_dict() for t in self.targets],
                "events": [e.to_dict() for e in self.events]}


def status(app: App, ref: str | None, *, event_limit: int = 20) -> RolloutStatus:
    """The rollout, its targets and newest events, all read at the same moment.

    (One snapshot: a page showing the rollout as running next to the event that ended it
    would wait for a live update that never comes.)
    """
    record = resolve(app, ref)
    with app.db().read() as conn:
        record = repo.get_rollout(conn, record.id) or record
        rows = repo.targets(conn, record.id)
        events = list_events(conn, rollout_id=record.id, limit=event_limit, newest_first=True)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state.value] = counts.get(row.state.value, 0) + 1
    return RolloutStatus(rollout=record, targets=rows, counts=counts,
                         events=list(reversed(events)))


def history(app: App, limit: int = 30) -> list[repo.RolloutRecord]:
    with app.db().read() as conn:
        return repo.find_rollouts(conn, limit=limit)

"""Rollouts, their targets, controls and deploy logs.

State changes go through :func:`set_rollout_state` and :func:`transition_target`, which check
the expected current state (``UPDATE ... WHERE state = :old``) and append an event in the same
transaction, so a repeated step after a crash cannot apply a change twice.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rollwave.core.states import ControlAction, RolloutState, TargetState
from rollwave.storage import fleet_state
from rollwave.storage.events import append_event, append_events
from rollwave.storage.tables import controls, deploy_logs, rollout_targets, rollouts


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    id: str
    release_id: str
    kind: str
    policy: str
    state: RolloutState
    emergency: bool
    reason: str
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    plan: Mapping[str, Any]
    current_wave: int
    outcome: str | None
    summary: str
    waiting_for: str
    parent_id: str | None
    updated_at: datetime

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or datetime.now(UTC)
        return (end - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "release_id": self.release_id, "kind": self.kind,
            "policy": self.policy, "state": self.state.value, "emergency": self.emergency,
            "reason": self.reason, "requested_by": self.requested_by,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "current_wave": self.current_wave, "outcome": self.outcome, "summary": self.summary,
            "waiting_for": self.waiting_for, "parent_id": self.parent_id,
            "duration_seconds": self.duration,
        }


@dataclass(frozen=True, slots=True)
class TargetRecord:
    rollout_id: str
    instance: str
    wave: int
    position: int
    state: TargetState
    changes: list[dict[str, Any]]
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str | None
    explanation: str
    verdict: Mapping[str, Any] | None
    next_window: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance, "wave": self.wave, "state": self.state.value,
            "changes": self.changes, "attempts": self.attempts,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "outcome": self.outcome, "explanation": self.explanation,
            "verdict": dict(self.verdict) if self.verdict else None,
            "next_window": self.next_window.isoformat() if self.next_window else None,
        }


def _rollout(row: Any) -> RolloutRecord:
    return RolloutRecord(
        id=row.id, release_id=row.release_id, kind=row.kind, policy=row.policy,
        state=RolloutState(row.state), emergency=bool(row.emergency), reason=row.reason,
        requested_by=row.requested_by, created_at=row.created_at, started_at=row.started_at,
        finished_at=row.finished_at, plan=row.plan, current_wave=row.current_wave,
        outcome=row.outcome, summary=row.summary, waiting_for=row.waiting_for,
        parent_id=row.parent_id, updated_at=row.updated_at)


def _target(row: Any) -> TargetRecord:
    return TargetRecord(
        rollout_id=row.rollout_id, instance=row.instance, wave=row.wave, position=row.position,
        state=TargetState(row.state), changes=list(row.changes), attempts=row.attempts,
        started_at=row.started_at, finished_at=row.finished_at, outcome=row.outcome,
        explanation=row.explanation, verdict=row.verdict, next_window=row.next_window)


def insert_rollout(conn: Connection, *, rollout_id: str, release_id: str, kind: str,
                   policy: str, emergency: bool, reason: str, requested_by: str,
                   plan: Mapping[str, Any], parent_id: str | None = None) -> None:
    """Insert a rollout and one target row per planned instance."""
    now = datetime.now(UTC)
    conn.execute(rollouts.insert().values(
        id=rollout_id, release_id=release_id, kind=kind, policy=policy,
        state=RolloutState.PENDING.value, emergency=emergency, reason=reason,
        requested_by=requested_by, created_at=now, plan=dict(plan), current_wave=0,
        summary="", waiting_for="", parent_id=parent_id, updated_at=now))
    rows = []
    for wave in plan["waves"]:
        for position, target in enumerate(wave["targets"]):
            rows.append({
                "rollout_id": rollout_id, "instance": target["instance"], "wave": wave["index"],
                "position": position, "state": TargetState.PENDING.value,
                "changes": target["changes"], "attempts": 0, "explanation": "",
                "updated_at": now,
            })
    for start in range(0, len(rows), 1000):
        conn.execute(rollout_targets.insert(), rows[start:start + 1000])


def get_rollout(conn: Connection, rollout_id: str) -> RolloutRecord | None:
    row = conn.execute(sa.select(rollouts).where(rollouts.c.id == rollout_id)).first()
    return _rollout(row) if row else None


def find_rollouts(conn: Connection, *, states: Sequence[RolloutState] | None = None,
                  prefix: str | None = None, limit: int = 100,
                  release_id: str | None = None) -> list[RolloutRecord]:
    query = sa.select(rollouts)
    if states:
        query = query.where(rollouts.c.state.in_([s.value for s in states]))
    if prefix:
        query = query.where(rollouts.c.id.startswith(prefix))
    if release_id:
        query = query.where(rollouts.c.release_id == release_id)
    query = query.order_by(rollouts.c.created_at.desc()).limit(limit)
    return [_rollout(row) for row in conn.execute(query)]


def set_rollout_state(conn: Connection, rollout_id: str, new: RolloutState, message: str, *,
                      actor: str = "rollwave", expect: Sequence[RolloutState] | None = None,
                      data: Mapping[str, Any] | None = None, **fields: Any) -> bool:
    """Move a rollout to ``new`` (if in one of ``expect``) and log why. False if not moved."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {"state": new.value, "updated_at": now, **fields}
    if new == RolloutState.RUNNING:
        values.setdefault("waiting_for", "")
    if new.terminal:
        values.setdefault("finished_at", now)
    query = rollouts.update().where(rollouts.c.id == rollout_id).values(**values)
    if expect is not None:
        query = query.where(rollouts.c.state.in_([s.value for s in expect]))
    if conn.execute(query).rowcount == 0:
        return False
    append_event(conn, f"rollout.{new.value}", message, actor=actor, rollout_id=rollout_id,
                 data=data)
    return True


def update_rollout(conn: Connection, rollout_id: str, **fields: Any) -> None:
    """Change bookkeeping fields that are not a state change (no event)."""
    conn.execute(rollouts.update().where(rollouts.c.id == rollout_id)
                 .values(updated_at=datetime.now(UTC), **fields))


def targets(conn: Connection, rollout_id: str, wave: int | None = None) -> list[TargetRecord]:
    query = sa.select(rollout_targets).where(rollout_targets.c.rollout_id == rollout_id)
    if wave is not None:
        query = query.where(rollout_targets.c.wave == wave)
    query = query.order_by(rollout_targets.c.wave, rollout_targets.c.position)
    return [_target(row) for row in conn.execute(query)]


def get_target(conn: Connection, rollout_id: str, instance: str) -> TargetRecord | None:
    row = conn.execute(sa.select(rollout_targets).where(
        rollout_targets.c.rollout_id == rollout_id,
        rollout_targets.c.instance == instance)).first()
    return _target(row) if row else None


@functools.cache
def _transition_statement(columns: tuple[str, ...]) -> sa.Update:
    # Built once per set of columns: thousands of transitions per rollout reuse the statement
    # (and its cached compiled form) instead of building and hashing a new one each time.
    return rollout_targets.update().where(
        rollout_targets.c.rollout_id == sa.bindparam("w_rollout"),
        rollout_targets.c.instance == sa.bindparam("w_instance"),
        rollout_targets.c.state == sa.bindparam("w_state"),
    ).values({name: sa.bindparam(f"v_{name}") for name in columns})


def transition_target(conn: Connection, rollout_id: str, instance: str, old: TargetState,
                      new: TargetState, message: str, *, kind: str | None = None,
                      data: Mapping[str, Any] | None = None, at: datetime | None = None,
                      **fields: Any) -> bool:
    """Move one target from ``old`` to ``new`` with an event; False if it was not in ``old``.

    ``at`` is when it happened (default: now), for a change recorded a moment after the fact.
    """
    now = at or datetime.now(UTC)
    values: dict[str, Any] = {"state": new.value, "updated_at": now, **fields}
    if new == TargetState.DEPLOYING:
        values.setdefault("started_at", now)
    if new.terminal:
        values.setdefault("finished_at", now)
    columns = tuple(sorted(values))
    params = {f"v_{name}": values[name] for name in columns}
    params.update(w_rollout=rollout_id, w_instance=instance, w_state=old.value)
    result = conn.execute(_transition_statement(columns), params)
    if result.rowcount == 0:
        return False
    append_event(conn, kind or f"instance.{new.value}", message, rollout_id=rollout_id,
                 instance=instance, data=data, at=now)
    return True


@dataclass(frozen=True, slots=True)
class Claim:
    """A target about to be deployed: the state it must still be in, and the event's text."""

    instance: str
    old: TargetState
    attempts: int
    message: str


_CLAIM_COLUMNS = ("attempts", "started_at", "state", "updated_at")


def _locked_states(conn: Connection, rollout_id: str, instances: list[str]) -> dict[str, str]:
    """instance → state, read so that no other writer changes them before the commit."""
    query = sa.select(rollout_targets.c.instance, rollout_targets.c.state).where(
        rollout_targets.c.rollout_id == rollout_id, rollout_targets.c.instance.in_(instances))
    if conn.dialect.name != "sqlite":  # SQLite: the write transaction already excludes writers
        query = query.with_for_update()
    return {row.instance: row.state for row in conn.execute(query)}


def claim_targets(conn: Connection, rollout_id: str, claims: Sequence[Claim], *,
                  at: datetime | None = None) -> list[str]:
    """Move several targets to DEPLOYING, each with its event, in a few statements.

    Only targets still in the state their claim expects move; returns their names. The
    states are read inside the caller's write transaction (which holds SQLite's write lock;
    on PostgreSQL the rows are locked), so the guarded updates that follow all apply.
    """
    if not claims:
        return []
    now = at or datetime.now(UTC)
    current = _locked_states(conn, rollout_id, [c.instance for c in claims])
    chosen = [c for c in claims if current.get(c.instance) == c.old.value]
    if not chosen:
        return []
    conn.execute(_transition_statement(_CLAIM_COLUMNS), [
        {"w_rollout": rollout_id, "w_instance": c.instance, "w_state": c.old.value,
         "v_attempts": c.attempts, "v_started_at": now, "v_state": TargetState.DEPLOYING.value,
         "v_updated_at": now} for c in chosen])
    append_events(conn, [{"kind": "instance.deploying", "message": c.message, "at": now,
                          "rollout_id": rollout_id, "instance": c.instance} for c in chosen])
    return [c.instance for c in chosen]


@dataclass(frozen=True, slots=True)
class Finished:
    """A target whose deploy succeeded and that needs no checks: deployed, then succeeded."""

    instance: str
    customer: str
    at: datetime
    deployed: str  # the two events' messages
    succeeded: str
    outcome: str
    explanation: str
    attempt: int
    log: str  # the deployment log
    versions: Mapping[str, str]
    config_versions: Mapping[str, str]


_FINISH_COLUMNS = ("explanation", "finished_at", "outcome", "state", "updated_at")


def finish_targets(conn: Connection, rollout_id: str, release_id: str,
                   finished: Sequence[Finished]) -> list[str]:
    """Record several deployed-and-succeeded targets (events, logs, fleet state) in bulk.

    Only targets still DEPLOYING move (read inside the caller's write transaction, as in
    :func:`claim_targets`); returns their names.
    """
    if not finished:
        return []
    current = _locked_states(conn, rollout_id, [f.instance for f in finished])
    chosen = [f for f in finished if current.get(f.instance) == TargetState.DEPLOYING.value]
    if not chosen:
        return []
    conn.execute(_transition_statement(_FINISH_COLUMNS), [
        {"w_rollout": rollout_id, "w_instance": f.instance,
         "w_state": TargetState.DEPLOYING.value, "v_explanation": f.explanation,
         "v_finished_at": f.at, "v_outcome": f.outcome,
         "v_state": TargetState.SUCCEEDED.value, "v_updated_at": f.at} for f in chosen])
    append_events(conn, [event for f in chosen for event in (
        {"kind": "instance.deployed", "message": f.deployed, "at": f.at,
         "rollout_id": rollout_id, "instance": f.instance},
        {"kind": "instance.succeeded", "message": f.succeeded, "at": f.at,
         "rollout_id": rollout_id, "instance": f.instance})])
    conn.execute(_DEPLOY_LOG_INSERT, [
        {"rollout_id": rollout_id, "instance": f.instance, "attempt": f.attempt,
         "purpose": "deploy", "at": f.at, "ok": True, "text": f.log[-20000:]} for f in chosen])
    fleet_state.record_deployed_many(conn, [fleet_state.Deployed(
        instance=f.instance, customer=f.customer, versions=f.versions,
        config_hashes=dict(f.config_versions), health="healthy", release_id=release_id,
        rollout_id=rollout_id, at=f.at) for f in chosen])
    return [f.instance for f in chosen]


def target_counts(conn: Connection, rollout_id: str) -> dict[str, int]:
    query = (sa.select(rollout_targets.c.state, sa.func.count())
             .where(rollout_targets.c.rollout_id == rollout_id)
             .group_by(rollout_targets.c.state))
    return {state: int(count) for state, count in conn.execute(query)}


# --- controls ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ControlRecord:
    id: int
    rollout_id: str
    action: ControlAction
    actor: str
    reason: str
    wave: int | None
    at: datetime
    consumed_at: datetime | None


def _control(row: Any) -> ControlRecord:
    return ControlRecord(id=row.id, rollout_id=row.rollout_id, action=ControlAction(row.action),
                         actor=row.actor, reason=row.reason, wave=row.wave, at=row.at,
                         consumed_at=row.consumed_at)


def add_control(conn: Connection, rollout_id: str, action: ControlAction, actor: str,
                reason: str, wave: int | None = None) -> int:
    """Record a person's request; the orchestrator acts on it."""
    result = conn.execute(controls.insert().values(
        rollout_id=rollout_id, action=action.value, actor=actor, reason=reason, wave=wave,
        at=datetime.now(UTC)))
    wave_text = f" for wave {wave + 1}" if wave is not None else ""
    append_event(conn, f"control.{action.value}",
                 f"{actor} asked to {action.value}{wave_text}" + (f": {reason}" if reason else ""),
                 actor=actor, rollout_id=rollout_id, data={"wave": wave})
    key = result.inserted_primary_key
    return int(key[0]) if key else 0


def pending_controls(conn: Connection, rollout_id: str) -> list[ControlRecord]:
    query = (sa.select(controls).where(controls.c.rollout_id == rollout_id,
                                       controls.c.consumed_at.is_(None))
             .order_by(controls.c.id))
    return [_control(row) for row in conn.execute(query)]


def consume_controls(conn: Connection, ids: Sequence[int]) -> None:
    if ids:
        conn.execute(controls.update().where(controls.c.id.in_(list(ids)))
                     .values(consumed_at=datetime.now(UTC)))


def approvals(conn: Connection, rollout_id: str, wave: int) -> list[ControlRecord]:
    query = (sa.select(controls).where(controls.c.rollout_id == rollout_id,
                                       controls.c.action == ControlAction.APPROVE.value,
                                       controls.c.wave == wave).order_by(controls.c.id))
    return [_control(row) for row in conn.execute(query)]


def rollouts_with_pending_controls(conn: Connection) -> list[str]:
    query = sa.select(controls.c.rollout_id).where(controls.c.consumed_at.is_(None)).distinct()
    return list(conn.execute(query).scalars())


# --- deploy logs -----------------------------------------------------------------------------


_DEPLOY_LOG_INSERT = deploy_logs.insert()


def add_deploy_log(conn: Connection, rollout_id: str, instance: str, attempt: int, purpose: str,
                   ok: bool, text: str, *, at: datetime | None = None) -> None:
    # values as execute parameters: one statement compiled once, not a new cache key per log
    conn.execute(_DEPLOY_LOG_INSERT, {
        "rollout_id": rollout_id, "instance": instance, "attempt": attempt, "purpose": purpose,
        "at": at or datetime.now(UTC), "ok": ok, "text": text[-20000:]})


def deploy_log_entries(conn: Connection, rollout_id: str,
                       instance: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(deploy_logs).where(deploy_logs.c.rollout_id == rollout_id)
    if instance:
        query = query.where(deploy_logs.c.instance == instance)
    return [dict(row._mapping) for row in conn.execute(query.order_by(deploy_logs.c.id))]

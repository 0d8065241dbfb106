"""Guarded progressive flag rollouts: start, pause, resume, abort, read.

A rollout moves one flag's variant through the steps of a :class:`RolloutPlan` (the flag's own
``rollout_plan``, or one given at start). Its state lives in ``flag_rollouts`` and the worker
drives it level-triggered on every tick (:mod:`rollwave.flags.scheduler`): apply the next step
when it is due and the current step's guards have passed; measure the guards; revert to the
last safe step when one fails. Every transition is one transaction with the flag change it
makes, its history row, its event and (for reverts) its notifications.

States: ``running`` → ``completed`` | ``reverted`` | ``aborted``; ``running`` ⇄ ``paused``. A
paused rollout changes nothing (no steps, no guard windows, no automatic revert); resuming
accepts the flag as it is then and re-measures the current step before moving on.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from rollwave.errors import Conflict, NotFound, Problem, ValidationFailed
from rollwave.flags.dbstore import DatabaseFlagStore, FlagTransaction, store_for
from rollwave.flags.errors import FlagNotFound
from rollwave.flags.model import RolloutPlan
from rollwave.flags.progressive import (
    baseline_settings,
    baseline_variant,
    describe_step,
    restore_baseline,
)
from rollwave.storage.events import append_event
from rollwave.storage.flag_tables import flag_rollouts

if TYPE_CHECKING:
    from rollwave.services.context import App


class RolloutState(StrEnum):
    """Where a flag rollout stands."""

    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    REVERTED = "reverted"
    ABORTED = "aborted"

    @property
    def active(self) -> bool:
        """Running or paused."""
        return self in (RolloutState.RUNNING, RolloutState.PAUSED)


class FlagRolloutNotFound(NotFound):
    """No flag rollout with this id (or none for this flag)."""

    code = "flag_rollout.not_found"
    default_hint = "list them with `rollwave flags rollout status`"


@dataclass(frozen=True, slots=True)
class FlagRollout:
    """One flag rollout as stored."""

    id: str
    flag_key: str
    environment: str | None
    plan: RolloutPlan
    baseline: dict[str, Any]
    state: RolloutState
    step: int
    safe_step: int
    step_at: datetime | None
    passed_at: datetime | None
    next_guard_at: datetime | None
    flag_version: int
    lease_owner: str | None
    lease_until: datetime | None
    verdict: dict[str, Any] | None
    held: str
    summary: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def percentage(self) -> float:
        """The share served now (0 before the first step)."""
        return 0.0 if self.step < 0 else self.plan.steps[self.step].percentage

    @property
    def baseline_variant(self) -> str:
        """The variant the rest of the traffic gets."""
        return str(self.baseline["variant"])

    def describe(self) -> str:
        """One line in words."""
        where = f" in {self.environment}" if self.environment else ""
        text = (f"{self.flag_key}{where}: {self.state.value} at "
                f"{describe_step(self.plan, self.step)} of '{self.plan.variant}'")
        if self.held:
            text += f" — {self.held}"
        if self.summary:
            text += f" — {self.summary}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None
        return {"id": self.id, "flag": self.flag_key, "environment": self.environment,
                "state": self.state.value, "step": self.step + 1,
                "steps": len(self.plan.steps), "percentage": self.percentage,
                "safe_step": self.safe_step + 1, "variant": self.plan.variant,
                "baseline_variant": self.baseline_variant,
                "plan": self.plan.model_dump(mode="json", exclude_defaults=True),
                "step_at": iso(self.step_at), "passed_at": iso(self.passed_at),
                "verdict": self.verdict, "held": self.held, "summary": self.summary,
                "created_by": self.created_by, "created_at": iso(self.created_at),
                "updated_at": iso(self.updated_at), "finished_at": iso(self.finished_at),
                "description": self.describe()}


def rollout_from_row(row: Any) -> FlagRollout:
    """A :class:`FlagRollout` from a ``flag_rollouts`` row."""
    return FlagRollout(
        id=row.id, flag_key=row.flag_key, environment=row.environment,
        plan=RolloutPlan.model_validate(row.plan), baseline=dict(row.baseline),
        state=RolloutState(row.state), step=row.step, safe_step=row.safe_step,
        step_at=row.step_at, passed_at=row.passed_at, next_guard_at=row.next_guard_at,
        flag_version=row.flag_version, lease_owner=row.lease_owner,
        lease_until=row.lease_until, verdict=row.verdict, held=row.held, summary=row.summary,
        created_by=row.created_by, created_at=row.created_at, updated_at=row.updated_at,
        finished_at=row.finished_at)


def active_key(flag_key: str, environment: str | None) -> str:
    """The unique marker of an active rollout (one per flag and environment)."""
    return f"{flag_key}@{environment or '*'}"


def load(conn: Connection, rollout_id: str, *, lock: bool = False) -> FlagRollout | None:
    """One rollout by id inside a transaction (row-locked on PostgreSQL with ``lock``)."""
    query = sa.select(flag_rollouts).where(flag_rollouts.c.id == rollout_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else rollout_from_row(row)


def update(conn: Connection, rollout_id: str, now: datetime, **fields: Any) -> None:
    """Change fields of one rollout (``updated_at`` is set)."""
    conn.execute(flag_rollouts.update().where(flag_rollouts.c.id == rollout_id)
                 .values(updated_at=now, **fields))


def event(conn: Connection, rollout: FlagRollout, kind: str, message: str, *, actor: str,
          at: datetime, **data: Any) -> int:
    """Append a ``flag.rollout.*`` event naming the flag and rollout."""
    return append_event(conn, f"flag.rollout.{kind}", message, actor=actor, at=at, data={
        "key": rollout.flag_key, "rollout": rollout.id, "environment": rollout.environment,
        **data})


def guard_problems(app: App, plan: RolloutPlan) -> list[Problem]:
    """Guard names a plan's steps use that neither the plan nor rollwave.yaml defines."""
    profiles: set[str] = set()
    with contextlib.suppress(ValidationFailed):
        profiles = set(app.workspace().project.verification)
    problems = []
    for index, step in enumerate(plan.steps):
        for name in step.guards:
            if name not in plan.guards and name not in profiles:
                known = sorted(set(plan.guards) | profiles)
                problems.append(Problem(
                    message=f"step {index + 1} names guard '{name}', which is neither a guard "
                            "of the plan nor a verification profile of rollwave.yaml",
                    path=f"rollout_plan.steps[{index}].guards", code="flag.rollout",
                    hint=f"known: {', '.join(known) or 'none'}"))
    for name, guard in plan.guards.items():
        if guard.profile is not None and guard.profile not in profiles:
            problems.append(Problem(
                message=f"guard '{name}' uses verification profile '{guard.profile}', which "
                        "rollwave.yaml does not define", path=f"rollout_plan.guards.{name}",
                code="flag.rollout",
                hint=f"profiles: {', '.join(sorted(profiles)) or 'none'}"))
    return problems


def start(app: App, key: str, *, plan: RolloutPlan | None = None, reason: str = "",
          now: datetime | None = None, store: DatabaseFlagStore | None = None) -> FlagRollout:
    """Record a new guarded rollout of flag ``key``; the worker carries it out.

    ``plan`` defaults to the flag's ``rollout_plan``. Raises ValidationFailed for unknown
    guards or a missing plan, Conflict when the flag already has an active rollout in that
    environment.
    """
    store = store or store_for(app)
    moment = now or datetime.now(UTC)
    current = store.get_flag(key)
    if current is None:
        raise FlagNotFound(f"flag '{key}' does not exist")
    flag = current.value
    plan = plan or flag.rollout_plan
    if plan is None:
        raise ValidationFailed([Problem(
            message=f"flag '{key}' has no rollout_plan", code="flag.rollout",
            hint="add rollout_plan: to the flag, or give the steps: `rollwave flags rollout "
                 f"start {key} --steps 1,5,25,100 --every 1h`")], what=f"flag '{key}'")
    names = {v.name for v in flag.variants}
    problems = guard_problems(app, plan)
    for what, variant in (("variant", plan.variant), ("baseline", plan.baseline)):
        if variant is not None and variant not in names:
            problems.append(Problem(message=f"the plan's {what} '{variant}' is not a variant "
                                    f"of flag '{key}' ({', '.join(sorted(names))})",
                                    path=f"rollout_plan.{what}", code="flag.rollout"))
    if problems:
        raise ValidationFailed(problems, what=f"rollout plan of flag '{key}'")
    baseline = {"variant": baseline_variant(flag, plan),
                "settings": baseline_settings(flag, plan)}
    rollout_id = f"fr-{moment:%Y%m%d}-{secrets.token_hex(3)}"
    try:
        with store.transaction() as tx:
            existing = tx.conn.execute(sa.select(flag_rollouts.c.id).where(
                flag_rollouts.c.active_key == active_key(key, plan.environment))).scalar()
            if existing:
                raise Conflict(f"flag '{key}' already has an active rollout ({existing})",
                               hint=f"see `rollwave flags rollout status {key}`; pause or abort "
                                    "it first")
            tx.conn.execute(flag_rollouts.insert().values(
                id=rollout_id, flag_key=key, environment=plan.environment,
                active_key=active_key(key, plan.environment),
                plan=plan.model_dump(mode="json", exclude_defaults=True), baseline=baseline,
                state=RolloutState.RUNNING.value, step=-1, safe_step=-1, step_at=None,
                passed_at=None, next_guard_at=None, flag_version=current.version,
                lease_owner=None, lease_until=None, verdict=None, held="", summary=reason,
                created_by=app.actor, created_at=moment, updated_at=moment, finished_at=None))
            record = load(tx.conn, rollout_id)
            assert record is not None
            steps = " → ".join(f"{s.percentage:g} %" for s in plan.steps)
            guards = sorted(plan.guard_names())
            event(tx.conn, record, "started",
                  f"{app.actor} started guarded rollout {rollout_id} of flag {key}"
                  f"{' in ' + plan.environment if plan.environment else ''}: '{plan.variant}' "
                  f"{steps} (rest '{baseline['variant']}')"
                  + (f", guarded by {', '.join(guards)}" if guards else ", unguarded")
                  + (f" — {reason}" if reason else ""), actor=app.actor, at=moment,
                  steps=[s.percentage for s in plan.steps], guards=guards)
    except IntegrityError:
        raise Conflict(f"flag '{key}' already has an active rollout",
                       hint=f"see `rollwave flags rollout status {key}`") from None
    return record


def get(app: App, ident: str) -> FlagRollout:
    """A rollout by id, or the active (else latest) rollout of the flag named ``ident``."""
    db = app.db()
    with db.read() as conn:
        record = load(conn, ident)
        if record is not None:
            return record
        rows = conn.execute(sa.select(flag_rollouts).where(flag_rollouts.c.flag_key == ident)
                            .order_by(flag_rollouts.c.active_key.is_(None),
                                      flag_rollouts.c.created_at.desc()).limit(1)).all()
    if not rows:
        raise FlagRolloutNotFound(f"no flag rollout '{ident}' (by id or flag key)")
    return rollout_from_row(rows[0])


def list_rollouts(app: App, *, active_only: bool = False, flag_key: str | None = None,
                  limit: int = 50) -> list[FlagRollout]:
    """Rollouts, newest first."""
    query = sa.select(flag_rollouts)
    if active_only:
        query = query.where(flag_rollouts.c.active_key.is_not(None))
    if flag_key is not None:
        query = query.where(flag_rollouts.c.flag_key == flag_key)
    with app.db().read() as conn:
        rows = conn.execute(query.order_by(flag_rollouts.c.created_at.desc())
                            .limit(limit)).all()
    return [rollout_from_row(r) for r in rows]


def _controlled(app: App, ident: str) -> tuple[DatabaseFlagStore, FlagRollout]:
    return store_for(app), get(app, ident)


def pause(app: App, ident: str, *, reason: str = "", now: datetime | None = None) -> FlagRollout:
    """Stop a running rollout where it is: no more steps, guard windows or automatic reverts."""
    store, record = _controlled(app, ident)
    moment = now or datetime.now(UTC)
    with store.transaction() as tx:
        current = _locked(tx, record.id)
        if current.state is not RolloutState.RUNNING:
            raise Conflict(f"rollout {current.id} is {current.state.value}, not running")
        update(tx.conn, current.id, moment, state=RolloutState.PAUSED.value,
               held=f"paused by {app.actor}" + (f": {reason}" if reason else ""),
               lease_owner=None, lease_until=None)
        event(tx.conn, current, "paused", f"{app.actor} paused guarded rollout {current.id} of "
              f"flag {current.flag_key} at {describe_step(current.plan, current.step)}"
              + (f" — {reason}" if reason else ""), actor=app.actor, at=moment)
    return get(app, record.id)


def resume(app: App, ident: str, *, reason: str = "", now: datetime | None = None) -> FlagRollout:
    """Continue a paused rollout from the flag as it is now; the current step is re-measured."""
    store, record = _controlled(app, ident)
    moment = now or datetime.now(UTC)
    with store.transaction() as tx:
        current = _locked(tx, record.id)
        if current.state is not RolloutState.PAUSED:
            raise Conflict(f"rollout {current.id} is {current.state.value}, not paused")
        flag = tx.get_flag(current.flag_key)
        if flag is None:
            raise FlagNotFound(f"flag '{current.flag_key}' was deleted; abort the rollout")
        update(tx.conn, current.id, moment, state=RolloutState.RUNNING.value, held="",
               flag_version=flag.version, passed_at=None, next_guard_at=None)
        event(tx.conn, current, "resumed", f"{app.actor} resumed guarded rollout {current.id} "
              f"of flag {current.flag_key} at {describe_step(current.plan, current.step)} "
              f"(flag version {flag.version})" + (f" — {reason}" if reason else ""),
              actor=app.actor, at=moment)
    return get(app, record.id)


def abort(app: App, ident: str, *, reason: str = "", revert: bool = False,
          now: datetime | None = None) -> FlagRollout:
    """End an active rollout; the flag stays as it is unless ``revert`` (back to the start)."""
    store, record = _controlled(app, ident)
    moment = now or datetime.now(UTC)
    with store.transaction() as tx:
        current = _locked(tx, record.id)
        if not current.state.active:
            raise Conflict(f"rollout {current.id} already ended ({current.state.value})")
        note = ""
        if revert:
            flag = tx.get_flag(current.flag_key)
            if flag is not None:
                tx.write("flag", current.flag_key,
                         restore_baseline(flag.value, current.baseline["settings"]),
                         actor=app.actor, action="rollout", rollout_id=current.id,
                         reason=f"rollout {current.id} aborted: back to the start"
                                + (f" — {reason}" if reason else ""))
                note = "; the flag is back to what it served before the rollout"
        update(tx.conn, current.id, moment, state=RolloutState.ABORTED.value, active_key=None,
               finished_at=moment, lease_owner=None, lease_until=None,
               summary=f"aborted by {app.actor}" + (f": {reason}" if reason else "") + note)
        event(tx.conn, current, "aborted", f"{app.actor} aborted guarded rollout {current.id} "
              f"of flag {current.flag_key} at {describe_step(current.plan, current.step)}"
              + note + (f" — {reason}" if reason else ""), actor=app.actor, at=moment)
    return get(app, record.id)


def _locked(tx: FlagTransaction, rollout_id: str) -> FlagRollout:
    current = load(tx.conn, rollout_id, lock=True)
    if current is None:
        raise FlagRolloutNotFound(f"no flag rollout '{rollout_id}'")
    return current

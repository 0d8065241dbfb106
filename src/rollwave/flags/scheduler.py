"""Driving guarded flag rollouts from the worker's tick: level-triggered, state in the database.

:func:`flag_rollout_tick` is registered in :data:`rollwave.orchestration.worker.TICK_HOOKS`.
On every tick it reads the running rollouts and, for each one, does whatever its recorded
state calls for *now*:

1. the next step is due (its ``after``/``at`` has come) and the current step is safe (its
   guards passed in the latest window, or it has none) → apply it: one transaction writes the
   flag, the rollout row, the history row and the event; the last step done → ``completed``;
2. the current step has guards and no live measurement → claim a lease on the rollout and
   measure its guards on a background thread; the result is recorded in one transaction:
   *passed* marks the step safe (windows then repeat every :data:`WATCH_GAP_SECONDS`,
   watching, until the next step is due); *failed* reverts the flag to the last safe step
   (or to what it served before the rollout), ends the rollout as ``reverted`` with the
   reason in words, and enqueues the notifications; *error/inconclusive* holds the step and
   measures again later.

Why level-triggered rather than a DBOS workflow: a flag rollout lasts hours or days, longer
than a Rollwave release stays deployed, and DBOS recovers a workflow only in a process of the
same application version; here any worker of any version continues from the row. The state is
tiny and every transition is idempotent (guarded by the row's ``step`` and lease), so a crash
at any point loses at most a guard window in flight: its lease expires (at once when the dead
worker was on this host, else after :data:`LEASE_SECONDS`) and the window is measured again.
Pause/resume/abort are plain row updates the next tick obeys. Notifications are delivered
from the outbox by the same tick (on a background thread).
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from rollwave.analysis.results import Outcome, Verdict
from rollwave.errors import RollwaveError
from rollwave.flags import guards
from rollwave.flags.dbstore import DatabaseFlagStore, FlagTransaction, store_for
from rollwave.flags.model import RolloutPlan
from rollwave.flags.progressive import (
    describe_step,
    due_at,
    restore_baseline,
    with_percentage,
)
from rollwave.flags.rollouts import FlagRollout, RolloutState, event, load, rollout_from_row
from rollwave.flags.rollouts import update as update_row
from rollwave.ports.notify import Notification
from rollwave.storage.flag_tables import flag_rollouts

if TYPE_CHECKING:
    from rollwave.adapters.notify import Channel, NotifierEnvironment
    from rollwave.orchestration.runtime import Runtime

log = logging.getLogger("rollwave.flags.rollouts")

LEASE_SECONDS = 30.0
RENEW_SECONDS = 5.0
CHECK_SECONDS = 0.5
HOLD_RETRY_SECONDS = 30.0
WATCH_GAP_SECONDS = 5.0

_shutdown = threading.Event()
atexit.register(_shutdown.set)
_jobs: dict[str, threading.Thread] = {}
_jobs_lock = threading.Lock()
_delivery: list[threading.Thread] = []
_owner: dict[int, str] = {}


def owner_id() -> str:
    """This process's lease owner id: ``host:pid:random`` (new after a fork)."""
    pid = os.getpid()
    if pid not in _owner:
        _owner[pid] = f"{socket.gethostname()}:{pid}:{secrets.token_hex(3)}"
    return _owner[pid]


def _wall() -> datetime:
    return datetime.now(UTC)


def _owner_dead(owner: str | None) -> bool:
    """True when ``owner`` is a process of this host that no longer exists."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    if int(pid_text) == os.getpid():
        return owner != owner_id()
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _lease_free(record: FlagRollout, now: datetime) -> bool:
    """No live measurement holds the rollout (called when this process runs none for it)."""
    return (record.lease_owner is None or record.lease_until is None
            or record.lease_until < now or record.lease_owner == owner_id()
            or _owner_dead(record.lease_owner))


# --- the tick ----------------------------------------------------------------------------------


def flag_rollout_tick(rt: Runtime) -> None:
    """Advance every running flag rollout as far as its state allows now; deliver notices."""
    store = store_for(rt.app)
    with rt.db.read() as conn:
        rows = conn.execute(sa.select(flag_rollouts).where(
            flag_rollouts.c.state == RolloutState.RUNNING.value)).all()
    for row in rows:
        record = rollout_from_row(row)
        try:
            _drive(rt, store, record)
        except RollwaveError as exc:
            log.warning("flag rollout %s: %s", record.id, exc.message)
    _deliver_notifications(rt)


def _drive(rt: Runtime, store: DatabaseFlagStore, record: FlagRollout) -> None:
    job = _jobs.get(record.id)
    if job is not None and job.is_alive():
        return
    if not _lease_free(record, _wall()):
        return
    now = rt.clock()
    plan = record.plan
    current = record.step
    guarded = current >= 0 and bool(plan.steps[current].guards)
    safe = current < 0 or not guarded or record.passed_at is not None
    if safe:
        if current == len(plan.steps) - 1:
            _complete(store, record, now)
            return
        step = plan.steps[current + 1]
        if now >= due_at(step, record.step_at or record.created_at):
            _apply_step(store, record, current + 1, now)
            return
    if guarded and (record.next_guard_at is None or now >= record.next_guard_at):
        _launch_guard(rt, store, record)


def _locked_running(tx: FlagTransaction, record: FlagRollout) -> FlagRollout | None:
    """The rollout re-read in the transaction, if it is still running at the same step."""
    fresh = load(tx.conn, record.id, lock=True)
    if fresh is None or fresh.state is not RolloutState.RUNNING or fresh.step != record.step:
        return None
    return fresh


def _apply_step(store: DatabaseFlagStore, record: FlagRollout, index: int,
                now: datetime) -> None:
    plan = record.plan
    with store.transaction() as tx:
        fresh = _locked_running(tx, record)
        if fresh is None:
            return
        flag = tx.get_flag(fresh.flag_key)
        if flag is None:
            _finish(tx, fresh, RolloutState.ABORTED, now,
                    f"flag {fresh.flag_key} was deleted; rollout ended")
            return
        if flag.version != fresh.flag_version:
            held = (f"the flag was changed outside this rollout (version {flag.version} by "
                    f"{flag.updated_by}); paused so the rollout does not overwrite it — "
                    f"check it, then `rollwave flags rollout resume {fresh.id}`")
            update_row(tx.conn, fresh.id, now, state=RolloutState.PAUSED.value, held=held)
            event(tx.conn, fresh, "paused", f"guarded rollout {fresh.id} of flag "
                  f"{fresh.flag_key} paused: {held}", actor="rollwave", at=now)
            return
        percentage = plan.steps[index].percentage
        updated = with_percentage(flag.value, plan, percentage, fresh.baseline_variant)
        where = describe_step(plan, index)
        change = tx.write("flag", fresh.flag_key, updated, actor=fresh.created_by,
                          action="rollout", rollout_id=fresh.id,
                          reason=f"guarded rollout {fresh.id}: {where}")
        guarded = bool(plan.steps[index].guards)
        update_row(tx.conn, fresh.id, now, step=index, step_at=now,
                   passed_at=None if guarded else now, next_guard_at=None, held="",
                   safe_step=fresh.safe_step if guarded else index,
                   flag_version=change.version)
        guards_text = (f"; measuring {', '.join(plan.steps[index].guards)} before moving on"
                       if guarded else "")
        event(tx.conn, fresh, "step", f"flag {fresh.flag_key}: guarded rollout {fresh.id} "
              f"moved to {where} of '{plan.variant}'"
              f"{' in ' + fresh.environment if fresh.environment else ''}{guards_text}",
              actor=fresh.created_by, at=now, step=index + 1, percentage=percentage,
              version=change.version)


def _complete(store: DatabaseFlagStore, record: FlagRollout, now: datetime) -> None:
    with store.transaction() as tx:
        fresh = _locked_running(tx, record)
        if fresh is None:
            return
        _finish(tx, fresh, RolloutState.COMPLETED, now,
                f"'{fresh.plan.variant}' serves 100 % of the fallthrough"
                f"{' in ' + fresh.environment if fresh.environment else ''}; every step's "
                "guards passed")


def _finish(tx: FlagTransaction, record: FlagRollout, state: RolloutState, now: datetime,
            summary: str, **fields: object) -> None:
    update_row(tx.conn, record.id, now, state=state.value, active_key=None, finished_at=now,
               lease_owner=None, lease_until=None, summary=summary, held="", **fields)
    event(tx.conn, record, state.value, f"guarded rollout {record.id} of flag "
          f"{record.flag_key} {state.value}: {summary}", actor="rollwave", at=now)


# --- guard windows -----------------------------------------------------------------------------


def _launch_guard(rt: Runtime, store: DatabaseFlagStore, record: FlagRollout) -> None:
    wall = _wall()
    previous = record.lease_owner
    with rt.db.begin() as conn:
        claimed = conn.execute(flag_rollouts.update().where(
            flag_rollouts.c.id == record.id,
            flag_rollouts.c.state == RolloutState.RUNNING.value,
            flag_rollouts.c.step == record.step,
            (flag_rollouts.c.lease_owner.is_(None) if previous is None
             else flag_rollouts.c.lease_owner == previous))
            .values(lease_owner=owner_id(),
                    lease_until=wall + timedelta(seconds=LEASE_SECONDS))).rowcount
        if not claimed:
            return
        if previous is not None and previous != owner_id():
            event(conn, record, "resumed", f"guarded rollout {record.id} of flag "
                  f"{record.flag_key}: measuring {describe_step(record.plan, record.step)} "
                  f"again (the worker {previous} stopped before its guard window ended)",
                  actor="rollwave", at=rt.clock(), previous_owner=previous)
    thread = threading.Thread(target=_guard_job, args=(rt, store, record), daemon=True,
                              name=f"flag-rollout-{record.id}")
    with _jobs_lock:
        _jobs[record.id] = thread
    thread.start()


class _Lease:
    """``should_stop`` for a guard window: renews the lease, notices pause/abort/shutdown."""

    def __init__(self, rt: Runtime, record: FlagRollout) -> None:
        self.rt = rt
        self.record = record
        self.lost = False
        self._checked = 0.0
        self._renewed = time.monotonic()

    def __call__(self) -> bool:
        if _shutdown.is_set() or self.lost:
            return True
        if time.monotonic() - self._checked < CHECK_SECONDS:
            return False
        self._checked = time.monotonic()
        renew = time.monotonic() - self._renewed >= RENEW_SECONDS
        try:
            with self.rt.db.begin() as conn:
                query = flag_rollouts.update().where(
                    flag_rollouts.c.id == self.record.id,
                    flag_rollouts.c.state == RolloutState.RUNNING.value,
                    flag_rollouts.c.step == self.record.step,
                    flag_rollouts.c.lease_owner == owner_id())
                values = {"lease_until": _wall() + timedelta(seconds=LEASE_SECONDS)} \
                    if renew else {"lease_owner": owner_id()}
                still = conn.execute(query.values(**values)).rowcount
        except RollwaveError:
            return False  # the database hiccupped; the lease has time left
        if renew:
            self._renewed = time.monotonic()
        self.lost = not still
        return self.lost


def _guard_job(rt: Runtime, store: DatabaseFlagStore, record: FlagRollout) -> None:
    lease = _Lease(rt, record)
    try:
        verdict = guards.measure(rt, record.plan, record.step, lease,
                                 lambda message: log.debug("%s: %s", record.id, message))
        if not lease.lost and not _shutdown.is_set():
            _record_verdict(rt, store, record, verdict)
    except Exception:
        log.exception("guard window of flag rollout %s failed", record.id)
        _release(rt, record)
    finally:
        with _jobs_lock:
            if _jobs.get(record.id) is threading.current_thread():
                del _jobs[record.id]


def _release(rt: Runtime, record: FlagRollout) -> None:
    try:
        with rt.db.begin() as conn:
            conn.execute(flag_rollouts.update().where(
                flag_rollouts.c.id == record.id, flag_rollouts.c.lease_owner == owner_id())
                .values(lease_owner=None, lease_until=None))
    except RollwaveError as exc:
        log.warning("cannot release the lease of %s: %s", record.id, exc.message)


def _record_verdict(rt: Runtime, store: DatabaseFlagStore, record: FlagRollout,
                    verdict: Verdict) -> None:
    now = rt.clock()
    plan = record.plan
    where = describe_step(plan, record.step)
    names = ", ".join(plan.steps[record.step].guards)
    with store.transaction() as tx:
        fresh = load(tx.conn, record.id, lock=True)
        if fresh is None or fresh.state is not RolloutState.RUNNING \
                or fresh.step != record.step or fresh.lease_owner != owner_id():
            return  # paused, aborted or taken over meanwhile: this window does not count
        lease: dict[str, Any] = {"lease_owner": None, "lease_until": None,
                                 "verdict": verdict.to_dict()}
        if verdict.outcome is Outcome.SUCCESSFUL:
            if fresh.passed_at is None:
                event(tx.conn, fresh, "guards_passed", f"flag {fresh.flag_key}: guards "
                      f"{names} passed at {where}: {verdict.summary}", actor="rollwave",
                      at=now, step=fresh.step + 1)
            update_row(tx.conn, fresh.id, now, passed_at=now, safe_step=fresh.step,
                       next_guard_at=now + timedelta(seconds=WATCH_GAP_SECONDS), held="",
                       **lease)
            return
        if verdict.outcome is Outcome.FAILED:
            _revert(tx, rt, fresh, verdict, now, lease)
            return
        held = (f"guards {names} {verdict.outcome.value} at {where}: {verdict.summary}; "
                "holding this step and measuring again")
        if held != fresh.held:
            event(tx.conn, fresh, "held", f"flag {fresh.flag_key}: {held}", actor="rollwave",
                  at=now, outcome=verdict.outcome.value)
        update_row(tx.conn, fresh.id, now, held=held, passed_at=None,
                   next_guard_at=now + timedelta(seconds=HOLD_RETRY_SECONDS), **lease)


def _revert(tx: FlagTransaction, rt: Runtime, record: FlagRollout, verdict: Verdict,
            now: datetime, lease: dict[str, Any]) -> None:
    plan: RolloutPlan = record.plan
    failed = [c for c in verdict.checks if c.outcome is Outcome.FAILED]
    why = "; ".join(f"{c.name}: {c.explanation}" for c in failed) or verdict.summary
    where = describe_step(plan, record.step)
    target = record.safe_step if record.safe_step < record.step else record.step - 1
    back = describe_step(plan, target)
    env = f" in {record.environment}" if record.environment else ""
    summary = (f"guard failed at {where}: {why}. Reverted to {back}"
               + (" (what it served before the rollout)" if target < 0 else
                  " (the last step whose guards passed)"))
    flag = tx.get_flag(record.flag_key)
    if flag is not None:
        value = restore_baseline(flag.value, record.baseline["settings"]) if target < 0 else \
            with_percentage(flag.value, plan, plan.steps[target].percentage,
                            record.baseline_variant)
        tx.write("flag", record.flag_key, value, actor="rollwave", action="rollout",
                 rollout_id=record.id, reason=f"automatic revert of guarded rollout "
                                              f"{record.id}: {summary}")
    update_row(tx.conn, record.id, now, state=RolloutState.REVERTED.value, active_key=None,
               finished_at=now, summary=summary, held="", **lease)
    subject = (f"Flag {record.flag_key}{env}: guarded rollout reverted to "
               f"{plan.steps[target].percentage if target >= 0 else 0:g} %")
    event(tx.conn, record, "reverted", f"flag {record.flag_key}{env}: guarded rollout "
          f"{record.id} reverted — {summary}", actor="rollwave", at=now,
          step=record.step + 1, reverted_to=target + 1, outcome=verdict.outcome.value)
    notification = Notification(
        event="flag.rollout.reverted", subject=subject, message=summary, at=now,
        severity="critical", data={
            "flag": record.flag_key, "environment": record.environment, "rollout": record.id,
            "variant": plan.variant, "failed_step": record.step + 1,
            "failed_percentage": plan.steps[record.step].percentage,
            "reverted_to_step": target + 1,
            "reverted_to_percentage": plan.steps[target].percentage if target >= 0 else 0.0,
            "checks": [{"name": c.name, "outcome": c.outcome.value,
                        "explanation": c.explanation, "value": c.value,
                        "threshold": c.threshold} for c in verdict.checks]})
    from rollwave.adapters.notify.outbox import enqueue

    enqueue(tx.conn, channels(rt), notification)


# --- notifications -----------------------------------------------------------------------------


def channels(rt: Runtime) -> list[Channel]:
    """The workspace's notification channels (the ``log`` channel when none is configured)."""
    from rollwave.adapters.notify import channels_from_settings

    try:
        settings = rt.workspace().project.notifications
    except RollwaveError as exc:
        log.warning("notifications: cannot read the workspace (%s); using the log channel",
                    exc.message)
        settings = {}
    try:
        return channels_from_settings(settings or None)
    except RollwaveError as exc:
        log.warning("%s; using the log channel", exc.message)
        return channels_from_settings(None)


def notifier_environment(rt: Runtime) -> NotifierEnvironment:
    """Secrets for notifiers, from the workspace's ``secrets:`` settings."""
    from rollwave.adapters.notify import NotifierEnvironment
    from rollwave.adapters.secrets import SecretEnvironment, build_resolvers

    def secret(reference: str) -> str:
        resolvers = build_resolvers(rt.workspace().project.secrets,
                                    SecretEnvironment(base_dir=rt.app.root))
        return resolvers.resolve(reference)
    return NotifierEnvironment(secret=secret)


def _deliver_notifications(rt: Runtime) -> None:
    from rollwave.adapters.notify.outbox import deliver_due
    from rollwave.storage.flag_tables import notification_outbox as outbox

    if _delivery and _delivery[0].is_alive():
        return
    with rt.db.read() as conn:
        due = conn.execute(sa.select(outbox.c.id).where(
            outbox.c.sent_at.is_(None), outbox.c.failed_at.is_(None),
            outbox.c.next_attempt_at <= _wall()).limit(1)).first()
    if due is None:
        return

    def deliver() -> None:
        try:
            deliver_due(rt.db, channels(rt), environment=notifier_environment(rt))
        except Exception:
            log.exception("notification delivery failed")
    thread = threading.Thread(target=deliver, daemon=True, name="rollwave-notify")
    _delivery[:] = [thread]
    thread.start()


def wait_idle(timeout: float = 30.0, *, now: Callable[[], float] = time.monotonic) -> bool:
    """Wait until no guard window or delivery of this process is running (tests, shutdown)."""
    deadline = now() + timeout
    while now() < deadline:
        with _jobs_lock:
            busy = [t for t in _jobs.values() if t.is_alive()]
        busy += [t for t in _delivery if t.is_alive()]
        if not busy:
            return True
        busy[0].join(0.05)
    return False

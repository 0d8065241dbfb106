"""Run one wave: its instances in bounded parallel, inside their windows, within its budget.

:func:`run_wave` is called as one durable step of the rollout workflow. It is safe to call
again after a crash or after a pause: it reads every target's recorded state and continues
only what is unfinished. It stops launching new instances as soon as a person asks to pause,
abort or roll back, or when failures exceed the wave's failure budget, and always waits for
the instances already in flight.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from rollwave.core.model import Verification
from rollwave.core.states import TargetState
from rollwave.core.windows import window_status
from rollwave.orchestration.carry import Carry
from rollwave.orchestration.instance import TargetContext, claim_message, drive_target
from rollwave.orchestration.runtime import Runtime
from rollwave.storage import rollouts as repo

INTERRUPTING = {"pause", "abort", "rollback"}


@dataclass(frozen=True)
class WaveResult:
    """How a pass over a wave ended (returned to the workflow as a plain dict)."""

    status: str  # done | waiting_window | interrupted | halted | held
    detail: str
    until: float | None = None  # epoch seconds of the next maintenance window, if waiting
    failures: int = 0
    budget: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "detail": self.detail, "until": self.until,
                "failures": self.failures, "budget": self.budget}


def verification_profile(rt: Runtime, policy_name: str) -> Verification:
    project = rt.workspace().project
    policy = project.policies.get(policy_name)
    name = policy.verification if policy else "default"
    return project.verification.get(name) or Verification()


def target_context(rt: Runtime, rollout: repo.RolloutRecord) -> TargetContext:
    project = rt.workspace().project
    policy = project.policies.get(rollout.policy)
    profile = verification_profile(rt, rollout.policy)
    trivial = (profile.health is None and not profile.smoke and not profile.metrics
               and getattr(profile, "fleet", None) is None)
    return TargetContext(
        rollout_id=rollout.id, release_id=rollout.release_id, kind=rollout.kind,
        verification=profile, trivial=trivial,
        on_inconclusive=policy.on_inconclusive if policy else "pause",
        should_stop=lambda: bool(rt.pending_actions(rollout.id) & {"abort", "rollback"}),
        carry=Carry(lambda conn, done: repo.finish_targets(conn, rollout.id, rollout.release_id,
                                                           done)),
    )


def run_wave(rt: Runtime, rollout_id: str, wave_index: int) -> WaveResult:
    """Drive every unfinished target of one wave; see the module docstring."""
    with rt.db.read() as conn:
        rollout = repo.get_rollout(conn, rollout_id)
        assert rollout is not None
        rows = repo.targets(conn, rollout_id, wave_index)
    wave = rollout.plan["waves"][wave_index]
    budget = int(wave["failure_budget"])
    parallelism = max(1, int(wave["parallelism"]))
    ctx = target_context(rt, rollout)
    emergency = rollout.emergency or rollout.kind == "rollback"
    launcher = _Launcher(rt, ctx, parallelism, failures=sum(1 for t in rows if t.state.failed))
    next_window: list[datetime] = []

    # instances already in flight when a previous pass stopped go first
    order = deque(sorted((t for t in rows if not t.state.terminal and t.state != TargetState.HELD),
                         key=lambda t: (t.state in (TargetState.PENDING,
                                                    TargetState.WAITING_WINDOW), t.position)))
    interrupted = False
    with ThreadPoolExecutor(max_workers=parallelism,
                            thread_name_prefix=f"rollwave-{rollout_id}") as pool:
        try:
            while order:
                if rt.stopping.is_set() or rt.pending_actions(rollout_id) & INTERRUPTING:
                    interrupted = True
                    break
                if launcher.failures > budget:
                    break
                batch = launcher.take(order, lambda t: not emergency and _outside_window(
                    rt, rollout_id, t, next_window))
                launcher.launch(pool, batch)
        finally:
            # nothing more is launched: what finished instances carried is written now, and
            # the instances still in flight write their own outcome
            launcher.carry.close(rt.db)
    # The instances in flight have finished; a stopping worker leaves the wave unrecorded, so
    # the next worker continues it from the targets' recorded states.
    rt.halt_if_stopping()
    return _summarize(rt, rollout_id, wave_index, budget, interrupted, next_window)


class _Launcher:
    """Starts a wave's instances in bounded parallel, claiming them in batches.

    Whenever slots are free, the instances that fill them are claimed (PENDING → DEPLOYING,
    before anything is deployed) together in one write, which also carries the outcomes of
    the instances that just finished (see :mod:`rollwave.orchestration.carry`): the
    instances whose slots are free at that moment start after one transaction, not one each.
    """

    def __init__(self, rt: Runtime, ctx: TargetContext, parallelism: int, failures: int) -> None:
        assert ctx.carry is not None
        self.rt, self.ctx, self.carry = rt, ctx, ctx.carry
        self.slots = threading.Semaphore(parallelism)
        self._lock = threading.Lock()
        self._failures = failures

    @property
    def failures(self) -> int:
        with self._lock:
            return self._failures

    def take(self, order: deque[repo.TargetRecord],
             waits: Callable[[repo.TargetRecord], bool]) -> list[repo.TargetRecord]:
        """The next targets to start: one per free slot (waiting for the first slot)."""
        self.slots.acquire()
        held = 1
        batch: list[repo.TargetRecord] = []
        while order and len(batch) < held:
            target = order.popleft()
            if waits(target):  # outside its maintenance window: recorded as waiting
                continue
            batch.append(target)
            if len(batch) == held and order and self.slots.acquire(blocking=False):
                held += 1
        for _ in range(held - len(batch)):
            self.slots.release()
        return batch

    def launch(self, pool: ThreadPoolExecutor, batch: list[repo.TargetRecord]) -> None:
        """Claim the batch's new targets in one write and drive every target on the pool."""
        fleet = self.rt.workspace().fleet
        claims = [repo.Claim(t.instance, t.state, t.attempts + 1, claim_message(self.ctx, t))
                  for t in batch if t.state in (TargetState.PENDING, TargetState.WAITING_WINDOW)
                  and fleet.get(t.instance) is not None]
        claimed: set[str] = set()
        if claims:
            rollout_id = self.ctx.rollout_id
            claimed = set(self.carry.write(
                self.rt.db, lambda conn: repo.claim_targets(conn, rollout_id, claims)))
        claiming = {c.instance for c in claims}
        for target in batch:
            if target.instance in claiming:
                if target.instance not in claimed:  # moved meanwhile by someone else
                    self.slots.release()
                    continue
                # attempts stays as read: the deploy step numbers this attempt attempts + 1
                target = replace(target, state=TargetState.DEPLOYING)
            future = pool.submit(_safe_drive, self.rt, self.ctx, target,
                                 target.instance in claimed)
            future.add_done_callback(self._done)

    def _done(self, future: Future[TargetState]) -> None:
        self.slots.release()
        try:
            state = future.result()
        except Exception:
            return
        if state.failed:
            with self._lock:
                self._failures += 1


def _safe_drive(rt: Runtime, ctx: TargetContext, target: repo.TargetRecord,
                claimed: bool = False) -> TargetState:
    try:
        return drive_target(rt, ctx, target, claimed=claimed)
    except Exception as exc:
        # An unexpected error is a bug, but the instance must not be left half-done in silence.
        from rollwave.storage.events import append_event

        with rt.db.begin() as conn:
            append_event(conn, "instance.error", f"{target.instance}: internal error "
                         f"{type(exc).__name__}: {exc}; it will be retried on the next pass",
                         rollout_id=ctx.rollout_id, instance=target.instance)
        raise


def _outside_window(rt: Runtime, rollout_id: str, target: repo.TargetRecord,
                    next_window: list[datetime]) -> bool:
    """True (and recorded as waiting) when a target not yet started is outside its window."""
    if target.state not in (TargetState.PENDING, TargetState.WAITING_WINDOW):
        return False
    inst = rt.workspace().fleet.get(target.instance)
    if inst is None:
        return False
    status = window_status(inst.windows, rt.clock())
    if status.open_now:
        return False
    _mark_waiting(rt, rollout_id, target, status.next_open, status.describe())
    if status.next_open:
        next_window.append(status.next_open)
    return True


def _mark_waiting(rt: Runtime, rollout_id: str, target: repo.TargetRecord,
                  next_open: datetime | None, note: str) -> None:
    if target.state == TargetState.WAITING_WINDOW and target.next_window == next_open:
        return
    with rt.db.begin() as conn:
        repo.transition_target(conn, rollout_id, target.instance, target.state,
                               TargetState.WAITING_WINDOW,
                               f"{target.instance} is outside its maintenance window; {note}",
                               next_window=next_open)


def _summarize(rt: Runtime, rollout_id: str, wave_index: int, budget: int, interrupted: bool,
               next_window: list[datetime]) -> WaveResult:
    with rt.db.read() as conn:
        rows = repo.targets(conn, rollout_id, wave_index)
    failed = [t for t in rows if t.state.failed]
    held = [t for t in rows if t.state == TargetState.HELD]
    open_rows = [t for t in rows if not t.state.terminal and t.state != TargetState.HELD]
    counts = f"{len(failed)} failed of {len(rows)}, budget {budget}"
    if len(failed) > budget:
        names = ", ".join(t.instance for t in failed[:5])
        return WaveResult("halted", f"failures exceed the wave's budget ({counts}): {names}",
                          failures=len(failed), budget=budget)
    if interrupted or rt.pending_actions(rollout_id) & INTERRUPTING:
        return WaveResult("interrupted", "a person asked to stop", failures=len(failed),
                          budget=budget)
    waiting = [t for t in open_rows if t.state == TargetState.WAITING_WINDOW]
    if waiting:
        soonest = min(next_window) if next_window else None
        when = f"{soonest:%Y-%m-%d %H:%M} UTC" if soonest else "later"
        return WaveResult("waiting_window",
                          f"{len(waiting)} instances wait for their maintenance window "
                          f"(next opens {when})",
                          until=soonest.timestamp() if soonest else None,
                          failures=len(failed), budget=budget)
    if open_rows:
        return WaveResult("interrupted", f"{len(open_rows)} instances unfinished",
                          failures=len(failed), budget=budget)
    if held:
        names = ", ".join(t.instance for t in held[:5])
        return WaveResult("held", f"{len(held)} instances could not be verified ({names}); "
                          "a person must resume (accept) or roll back", failures=len(failed),
                          budget=budget)
    return WaveResult("done", f"wave {wave_index + 1} finished: {counts}",
                      failures=len(failed), budget=budget)

"""The rollout as a durable DBOS workflow: gates → wave → bake, wave after wave.

Every call below marked ``@DBOS.step`` is checkpointed: after a crash, DBOS replays the
workflow, returns recorded results for finished steps and re-runs the step that was cut
short. Steps are idempotent (the wave step is level-triggered), so the rollout reaches the same
end state. Waits (approvals, bake times, maintenance windows, pauses) are ``DBOS.recv`` with a
timeout: durable timers that a control message wakes early. Time is read through a step so a
replay takes the same branches.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from dbos import DBOS

from rollwave.core.durations import format_duration
from rollwave.core.states import ControlAction, RolloutState, TargetState
from rollwave.orchestration import runtime
from rollwave.orchestration.gates import check_gates
from rollwave.orchestration.instance import drive_target
from rollwave.orchestration.wave import run_wave, target_context
from rollwave.storage import rollouts as repo
from rollwave.storage.events import append_event

CONTROL_TOPIC = "control"
WORKFLOW_NAME = "rollwave.rollout"

# --- steps -----------------------------------------------------------------------------------


@DBOS.step(name="rollwave.now")
def step_now() -> float:
    return runtime.get().clock().timestamp()


@DBOS.step(name="rollwave.begin")
def step_begin(rollout_id: str) -> dict[str, Any]:
    rt = runtime.get()
    rt.reload_workspace()
    with rt.db.begin() as conn:
        rollout = repo.get_rollout(conn, rollout_id)
        if rollout is None:
            return {"missing": True}
        if rollout.state == RolloutState.PENDING:
            repo.set_rollout_state(conn, rollout_id, RolloutState.RUNNING,
                                   f"orchestrator picked up rollout {rollout_id}",
                                   expect=[RolloutState.PENDING], started_at=datetime.now(UTC))
        rollout = repo.get_rollout(conn, rollout_id)
    assert rollout is not None
    return {"missing": False, "terminal": rollout.state.terminal, "state": rollout.state.value,
            "wave": rollout.current_wave, "waves": len(rollout.plan["waves"]),
            "kind": rollout.kind, "on_failure": _on_failure(rollout)}


def _on_failure(rollout: repo.RolloutRecord) -> str:
    if rollout.kind == "rollback":
        return "pause"
    policy = runtime.get().workspace().project.policies.get(rollout.policy)
    return policy.on_failure if policy else "pause"


@DBOS.step(name="rollwave.controls")
def step_controls(rollout_id: str) -> list[str]:
    """Consume pending control requests; return their actions in order."""
    rt = runtime.get()
    with rt.db.begin() as conn:
        pending = repo.pending_controls(conn, rollout_id)
        repo.consume_controls(conn, [c.id for c in pending])
    rt.forget_controls(rollout_id)
    return [c.action.value for c in pending]


@DBOS.step(name="rollwave.set_state")
def step_set_state(rollout_id: str, state: str, message: str, waiting_for: str = "") -> None:
    rt = runtime.get()
    with rt.db.begin() as conn:
        rollout = repo.get_rollout(conn, rollout_id)
        if rollout is None or rollout.state.terminal:
            return
        if rollout.state.value == state and rollout.waiting_for == waiting_for:
            return
        if rollout.state.value == state:
            repo.update_rollout(conn, rollout_id, waiting_for=waiting_for)
            return
        repo.set_rollout_state(conn, rollout_id, RolloutState(state), message,
                               waiting_for=waiting_for)


@DBOS.step(name="rollwave.gates", retries_allowed=True, max_attempts=5, interval_seconds=2.0)
def step_gates(rollout_id: str, wave: int) -> dict[str, Any]:
    return check_gates(runtime.get(), rollout_id, wave).to_dict()


@DBOS.step(name="rollwave.wave", retries_allowed=True, max_attempts=5, interval_seconds=2.0)
def step_wave(rollout_id: str, wave: int) -> dict[str, Any]:
    return run_wave(runtime.get(), rollout_id, wave).to_dict()


@DBOS.step(name="rollwave.accept_held")
def step_accept_held(rollout_id: str, wave: int) -> int:
    """A person resumed past inconclusive verification: the held instances are accepted."""
    rt = runtime.get()
    accepted = 0
    with rt.db.begin() as conn:
        for target in repo.targets(conn, rollout_id, wave):
            if target.state == TargetState.HELD and repo.transition_target(
                    conn, rollout_id, target.instance, TargetState.HELD, TargetState.SUCCEEDED,
                    f"{target.instance} accepted by a person despite unverified checks",
                    kind="instance.accepted"):
                accepted += 1
    return accepted


@DBOS.step(name="rollwave.accept_failures")
def step_accept_failures(rollout_id: str, wave: int, failures: int) -> None:
    """A person resumed a halted wave: its budget now tolerates the failures seen so far."""
    rt = runtime.get()
    with rt.db.begin() as conn:
        rollout = repo.get_rollout(conn, rollout_id)
        assert rollout is not None
        plan = dict(rollout.plan)
        waves = [dict(w) for w in plan["waves"]]
        old = waves[wave]["failure_budget"]
        waves[wave]["failure_budget"] = max(int(old), failures)
        plan["waves"] = waves
        repo.update_rollout(conn, rollout_id, plan=plan)
        append_event(conn, "wave.budget_raised",
                     f"wave {wave + 1} resumed past its failure budget: {failures} failures "
                     f"accepted (budget was {old})", rollout_id=rollout_id,
                     data={"wave": wave, "failures": failures, "old_budget": old})


@DBOS.step(name="rollwave.advance")
def step_advance(rollout_id: str, wave: int, message: str) -> None:
    rt = runtime.get()
    with rt.db.begin() as conn:
        repo.update_rollout(conn, rollout_id, current_wave=wave)
        append_event(conn, "wave.completed", message, rollout_id=rollout_id,
                     data={"next_wave": wave})


@DBOS.step(name="rollwave.rollback_all", retries_allowed=True, max_attempts=5,
           interval_seconds=2.0)
def step_rollback_all(rollout_id: str) -> dict[str, int]:
    """Undo the release everywhere this rollout put it (newest first)."""
    rt = runtime.get()
    with rt.db.read() as conn:
        rollout = repo.get_rollout(conn, rollout_id)
        rows = repo.targets(conn, rollout_id)
    assert rollout is not None
    ctx = dataclasses.replace(target_context(rt, rollout), should_stop=lambda: False)
    undo_states = {TargetState.SUCCEEDED, TargetState.HELD, TargetState.DEPLOYING,
                   TargetState.VERIFYING, TargetState.ROLLING_BACK}
    restored = failed = skipped = 0
    for target in sorted(rows, key=lambda t: (t.wave, t.position), reverse=True):
        if target.state in (TargetState.PENDING, TargetState.WAITING_WINDOW):
            with rt.db.begin() as conn:
                repo.transition_target(conn, rollout_id, target.instance, target.state,
                                       TargetState.SKIPPED, f"{target.instance} never started; "
                                       "left on its current version")
            skipped += 1
            continue
        if target.state not in undo_states:
            continue
        if target.state in (TargetState.SUCCEEDED, TargetState.HELD, TargetState.VERIFYING):
            with rt.db.begin() as conn:
                repo.transition_target(conn, rollout_id, target.instance, target.state,
                                       TargetState.ROLLING_BACK,
                                       f"rolling {target.instance} back with the release")
            target = repo_target(rollout_id, target.instance)
        if target.state == TargetState.DEPLOYING:
            target = _finish_deploy_then_undo(rollout_id, target)
        final = drive_target(rt, ctx, target)
        if final == TargetState.ROLLED_BACK:
            restored += 1
        else:
            failed += 1
    return {"restored": restored, "failed": failed, "skipped": skipped}


def repo_target(rollout_id: str, instance: str) -> repo.TargetRecord:
    with runtime.get().db.read() as conn:
        row = repo.get_target(conn, rollout_id, instance)
    assert row is not None
    return row


def _finish_deploy_then_undo(rollout_id: str, target: repo.TargetRecord) -> repo.TargetRecord:
    with runtime.get().db.begin() as conn:
        repo.transition_target(conn, rollout_id, target.instance, TargetState.DEPLOYING,
                               TargetState.ROLLING_BACK,
                               f"{target.instance} was mid-deploy; restoring it")
    return repo_target(rollout_id, target.instance)


@DBOS.step(name="rollwave.finish")
def step_finish(rollout_id: str, how: str, detail: str = "") -> str:
    """End the rollout: succeeded, aborted, rolled_back or failed, with a summary in words."""
    rt = runtime.get()
    with rt.db.begin() as conn:
        rollout = repo.get_rollout(conn, rollout_id)
        if rollout is None or rollout.state.terminal:
            return rollout.state.value if rollout else "missing"
        counts = repo.target_counts(conn, rollout_id)
        if how == "aborted":
            for target in repo.targets(conn, rollout_id):
                if target.state in (TargetState.PENDING, TargetState.WAITING_WINDOW):
                    repo.transition_target(conn, rollout_id, target.instance, target.state,
                                           TargetState.SKIPPED,
                                           f"{target.instance} not started: rollout aborted")
            counts = repo.target_counts(conn, rollout_id)
        summary = _summary(counts, detail)
        state = RolloutState(how)
        repo.set_rollout_state(conn, rollout_id, state, f"rollout {rollout_id} {how}: {summary}",
                               outcome=how, summary=summary, waiting_for="",
                               data={"counts": counts})
    return how


def _summary(counts: dict[str, int], detail: str) -> str:
    order = ["succeeded", "rolled_back", "rollback_failed", "held", "skipped", "pending"]
    parts = [f"{counts[k]} {k.replace('_', ' ')}" for k in order if counts.get(k)]
    text = ", ".join(parts) or "no instances"
    return f"{text}. {detail}".strip() if detail else text


@DBOS.step(name="rollwave.fail")
def step_fail(rollout_id: str, error: str) -> None:
    rt = runtime.get()
    with rt.db.begin() as conn:
        rollout = repo.get_rollout(conn, rollout_id)
        if rollout is not None and not rollout.state.terminal:
            repo.set_rollout_state(conn, rollout_id, RolloutState.FAILED,
                                   f"rollout {rollout_id} stopped on an internal error: {error}",
                                   outcome="failed", summary=error)


# --- the workflow ------------------------------------------------------------------------------


def _wait(rollout_id: str, seconds: float, interrupt_on: set[str]) -> str | None:
    """Durably wait ``seconds``; return early with the first control action in ``interrupt_on``."""
    rt = runtime.get()
    deadline = step_now() + seconds
    while True:
        rt.halt_if_stopping()
        for action in step_controls(rollout_id):
            if action in interrupt_on:
                return action
        now = step_now()
        if now >= deadline:
            return None
        DBOS.recv(CONTROL_TOPIC, timeout_seconds=min(deadline - now, rt.max_wait))


def _paused(rollout_id: str, why: str) -> str:
    """Stay paused until a person resumes, aborts or rolls back; return that action."""
    rt = runtime.get()
    step_set_state(rollout_id, RolloutState.PAUSED.value, f"rollout paused: {why}", why)
    while True:
        rt.halt_if_stopping()
        for action in step_controls(rollout_id):
            if action in ("resume", "abort", "rollback"):
                if action == "resume":
                    step_set_state(rollout_id, RolloutState.RUNNING.value, "rollout resumed")
                return action
        # bounded, so that even a wake-up that never arrives leaves a stopping worker soon
        DBOS.recv(CONTROL_TOPIC, timeout_seconds=min(3600.0, rt.max_wait))


STOPPING = {ControlAction.ABORT.value, ControlAction.ROLLBACK.value, ControlAction.PAUSE.value}


def _end(rollout_id: str, action: str, detail: str = "") -> str:
    if action == "abort":
        return step_finish(rollout_id, "aborted", detail)
    step_set_state(rollout_id, RolloutState.ROLLING_BACK.value,
                   "rolling the release back everywhere it went" + (f": {detail}" if detail
                                                                    else ""))
    result = step_rollback_all(rollout_id)
    if result["failed"]:
        return step_finish(rollout_id, "failed",
                           f"{result['failed']} instances could not be restored; look now")
    return step_finish(rollout_id, "rolled_back", detail)


@DBOS.workflow(name=WORKFLOW_NAME)
def rollout_workflow(rollout_id: str) -> str:
    """Carry a rollout to its end; see the module docstring."""
    rt = runtime.get()
    rt.active_workflows.add(rollout_id)
    try:
        return _run(rollout_id)
    except Exception as exc:  # an internal error must leave the rollout visibly failed
        step_fail(rollout_id, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        rt.active_workflows.discard(rollout_id)


def _run(rollout_id: str) -> str:
    info = step_begin(rollout_id)
    if info.get("missing") or info.get("terminal"):
        return str(info.get("state", "missing"))
    wave, waves = int(info["wave"]), int(info["waves"])
    while wave < waves:
        decision = _pass_gates(rollout_id, wave)
        if decision:
            return _end(rollout_id, decision, "stopped at a gate")
        decision = _run_wave(rollout_id, wave, str(info["on_failure"]))
        if decision == "halt-rollback":
            return _end(rollout_id, "rollback", "failures exceeded the budget")
        if decision:
            return _end(rollout_id, decision)
        decision = _bake(rollout_id, wave, waves) or _fleet_gate(rollout_id, wave)
        if decision:
            return _end(rollout_id, decision)
        wave += 1
        step_advance(rollout_id, wave, f"wave {wave} of {waves} complete")
    return step_finish(rollout_id, "succeeded")


def _bake(rollout_id: str, wave: int, waves: int) -> str | None:
    """Let a finished wave bake (not the last one); return abort/rollback if asked to."""
    bake = float(_wave_doc(rollout_id, wave)["bake"])
    if bake <= 0 or wave >= waves - 1:
        return None
    step_set_state(rollout_id, RolloutState.BAKING.value,
                   f"wave {wave + 1} baking for {format_duration(bake)}",
                   f"bake of wave {wave + 1} ({format_duration(bake)})")
    action = _wait(rollout_id, bake, STOPPING)
    if action == "pause":
        action = _paused(rollout_id, "paused by a person during bake")
    if action in ("abort", "rollback"):
        return action
    step_set_state(rollout_id, RolloutState.RUNNING.value, "bake finished")
    return None


@DBOS.step(name="rollwave.fleet_gate")
def step_fleet_gate(rollout_id: str, since: float) -> dict[str, Any]:
    """Whether fleet verification lets the rollout go on (promote, nothing held)."""
    from rollwave.analysis.blame import Action
    from rollwave.orchestration.monitor import watch_for

    monitor = watch_for(runtime.get()).ensure(rollout_id)
    if monitor is None:
        return {"open": True, "waiting_for": "", "retry_in": 0.0}
    interval = float(monitor.policy.interval)
    judged = monitor.latest
    if judged is None or judged.at < since:
        return {"open": False, "waiting_for": "fleet verification: the next analysis",
                "retry_in": interval}
    verdict = judged.verdict
    if verdict.action is Action.PROMOTE and not verdict.hold_waves:
        return {"open": True, "waiting_for": "", "retry_in": 0.0}
    held = " (waves held: a rolled-back instance's blame is pending)" if verdict.hold_waves \
        else ""
    return {"open": False, "retry_in": interval,
            "waiting_for": f"fleet verification: {verdict.action.value}{held}; "
                           "see `rollwave verify explain`"}


def _fleet_gate(rollout_id: str, wave: int) -> str | None:
    """Wait until every updated instance has baked and fleet verification promotes them."""
    since = step_now()
    while True:
        gate = step_fleet_gate(rollout_id, since)
        if gate["open"]:
            return None
        step_set_state(rollout_id, RolloutState.WAITING.value, gate["waiting_for"],
                       gate["waiting_for"])
        action = _wait(rollout_id, max(0.5, float(gate["retry_in"])), STOPPING)
        if action == "pause":
            action = _paused(rollout_id, "paused during fleet verification")
            if action == "resume":
                continue
        if action in ("abort", "rollback"):
            return action


@DBOS.step(name="rollwave.wave_doc")
def _wave_doc(rollout_id: str, wave: int) -> dict[str, Any]:
    with runtime.get().db.read() as conn:
        rollout = repo.get_rollout(conn, rollout_id)
    assert rollout is not None
    return dict(rollout.plan["waves"][wave])


def _pass_gates(rollout_id: str, wave: int) -> str | None:
    while True:
        gate = step_gates(rollout_id, wave)
        if gate["open"]:
            step_set_state(rollout_id, RolloutState.RUNNING.value, f"wave {wave + 1} starting")
            return None
        step_set_state(rollout_id, RolloutState.WAITING.value,
                       f"waiting for {gate['waiting_for']}", gate["waiting_for"])
        action = _wait(rollout_id, float(gate["retry_in"]), STOPPING | {"approve"})
        if action == "pause":
            action = _paused(rollout_id, "paused by a person at a gate")
        if action in ("abort", "rollback"):
            return action


def _run_wave(rollout_id: str, wave: int, on_failure: str) -> str | None:
    while True:
        result = step_wave(rollout_id, wave)
        status = result["status"]
        if status == "done":
            return None
        if status == "waiting_window":
            step_set_state(rollout_id, RolloutState.WAITING.value, result["detail"],
                           result["detail"])
            until = result.get("until")
            seconds = max(1.0, until - step_now()) if until else 3600.0
            action = _wait(rollout_id, seconds, STOPPING)
            if action == "pause":
                action = _paused(rollout_id, "paused by a person")
            if action in ("abort", "rollback"):
                return action
            step_set_state(rollout_id, RolloutState.RUNNING.value, "maintenance window open")
            continue
        if status == "halted" and on_failure == "rollback":
            return "halt-rollback"
        actions = step_controls(rollout_id)
        for action in ("rollback", "abort"):
            if action in actions:
                return action
        why = result["detail"] if status in ("halted", "held") else "paused by a person"
        action = _paused(rollout_id, why)
        if action in ("abort", "rollback"):
            return action
        if status == "held":
            step_accept_held(rollout_id, wave)
        if status == "halted":
            step_accept_failures(rollout_id, wave, int(result["failures"]))

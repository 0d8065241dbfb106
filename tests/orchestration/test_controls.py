"""Controls and timers while a rollout runs: windows, emergency, pause/resume/abort, rollback,
held instances and approvals (in-process worker, memory deployer, movable clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.orchestration.helpers import (
    Orchestrator,
    ScriptedVerifier,
    make_workspace,
    run_until_done,
    wait_for,
)

from rollwave.analysis.results import Outcome
from rollwave.core.states import ControlAction, RolloutState, TargetState
from rollwave.errors import InvalidTransition, PermissionDenied, ValidationFailed
from rollwave.services import releases, rollouts
from rollwave.services.context import App
from rollwave.storage import fleet_state

NIGHT = [{"days": "daily", "start": "02:00", "end": "03:00", "timezone": "UTC"}]


def _policies(**extra: object) -> dict[str, object]:
    return {
        "standard": {"waves": [{"name": "all", "select": "rest", "parallelism": 2,
                                "failure_budget": 1, **extra}]},
        "hotfix": {"emergency": True, "waves": [{"name": "all", "select": "rest",
                                                 "parallelism": 4}]},
        "slow": {"waves": [{"name": "one-by-one", "select": "rest", "parallelism": 1}]},
    }


def _state(app: App, rollout_id: str) -> RolloutState:
    return rollouts.status(app, rollout_id).rollout.state


def _targets(app: App, rollout_id: str) -> dict[str, TargetState]:
    return {t.instance: t.state for t in rollouts.status(app, rollout_id).targets}


def _steps(workflow_id: str) -> list[tuple[str, str]]:
    """The last durable steps of a workflow, to diagnose a stuck wait."""
    from dbos import DBOS

    steps = DBOS.list_workflow_steps(workflow_id)
    return [(s["function_name"], str(s["output"])[:60]) for s in steps][-14:]


class Clock:
    """Real time shifted by an offset the test can move forward (time never stands still)."""

    def __init__(self, start: datetime) -> None:
        self.offset = start - datetime.now(UTC)

    @property
    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta

    def __call__(self) -> datetime:
        return self.now


def test_instance_waits_durably_for_its_window_and_plan_says_when(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", customers=4, policies=_policies(),
                          windows={"c01": NIGHT})
    app = App.open(root)
    clock = Clock(datetime(2026, 11, 27, 1, 0, tzinfo=UTC))
    release = releases.create_release(app, {"web": "1.0"})
    plan = rollouts.plan(app, release.id, now=clock.now)
    target = next(t for w in plan.waves for t in w.targets if t.instance == "c01/prod")
    assert not target.window_open
    assert target.next_window == datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    rollout = rollouts.start(app, release.id, now=clock.now)
    with Orchestrator(app, ScriptedVerifier(), clock=clock):
        wait_for(lambda: _state(app, rollout.id) == RolloutState.WAITING, what="window wait")
        assert _targets(app, rollout.id)["c01/prod"] == TargetState.WAITING_WINDOW
        assert "maintenance window" in rollouts.status(app, rollout.id).rollout.waiting_for
        assert sum(s == TargetState.SUCCEEDED for s in _targets(app, rollout.id).values()) == 3
        clock.advance(timedelta(hours=1, minutes=1))
        wait_for(lambda: _state(app, rollout.id) == RolloutState.SUCCEEDED, what="completion",
                 describe=lambda: _steps(rollout.id))
    assert _targets(app, rollout.id)["c01/prod"] == TargetState.SUCCEEDED


def test_emergency_ignores_windows_but_needs_a_reason(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", customers=3, policies=_policies(),
                          windows={"c00": NIGHT, "c01": NIGHT})
    app = App.open(root)
    release = releases.create_release(app, {"web": "1.0"})
    with pytest.raises(ValidationFailed) as refused:
        rollouts.start(app, release.id, policy="hotfix")
    assert "reason" in refused.value.problems[0].message
    rollout = rollouts.start(app, release.id, policy="hotfix", reason="INC-42 outage")
    assert rollout.emergency
    run_until_done(app, ScriptedVerifier())
    assert set(_targets(app, rollout.id).values()) == {TargetState.SUCCEEDED}


def test_pause_resume_and_abort(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", customers=8, policies=_policies())
    text = (root / "rollwave.yaml").read_text()
    text = text.replace("kind: memory", "kind: memory\n    delay: 0.3")
    (root / "rollwave.yaml").write_text(text)
    app = App.open(root)
    rollout = rollouts.start(app, releases.create_release(app, {"web": "1.0"}).id,
                             policy="slow")
    with Orchestrator(app, ScriptedVerifier()):
        wait_for(lambda: TargetState.SUCCEEDED in _targets(app, rollout.id).values())
        rollouts.control(app, rollout.id, ControlAction.PAUSE, reason="lunch")
        wait_for(lambda: _state(app, rollout.id) == RolloutState.PAUSED, what="pause")
        frozen = _targets(app, rollout.id)
        with pytest.raises(InvalidTransition):
            rollouts.control(app, rollout.id, ControlAction.PAUSE)
        import time

        time.sleep(0.8)
        assert _targets(app, rollout.id) == frozen  # nothing moves while paused
        rollouts.control(app, rollout.id, ControlAction.RESUME)
        wait_for(lambda: sum(s == TargetState.SUCCEEDED for s in
                             _targets(app, rollout.id).values()) > sum(
            s == TargetState.SUCCEEDED for s in frozen.values()), what="progress after resume")
        rollouts.control(app, rollout.id, ControlAction.ABORT, reason="enough")
        wait_for(lambda: _state(app, rollout.id) == RolloutState.ABORTED, what="abort")
    states = set(_targets(app, rollout.id).values())
    assert TargetState.SKIPPED in states
    assert states <= {TargetState.SUCCEEDED, TargetState.SKIPPED}


def test_rollback_of_a_finished_rollout_restores_previous_versions(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", customers=4, policies=_policies())
    app = App.open(root)
    rollouts.start(app, releases.create_release(app, {"web": "1.0"}).id)
    run_until_done(app, ScriptedVerifier())
    second = rollouts.start(app, releases.create_release(app, {"web": "1.1"}).id)
    run_until_done(app, ScriptedVerifier())
    back = rollouts.control(app, second.id, ControlAction.ROLLBACK, reason="customer calls")
    assert back.kind == "rollback"
    assert back.parent_id == second.id
    run_until_done(app, ScriptedVerifier())
    assert _state(app, back.id) == RolloutState.SUCCEEDED
    with app.db().read() as conn:
        states = fleet_state.current_states(conn)
    assert {s.versions["web"] for s in states.values()} == {"1.0"}


def test_inconclusive_verification_holds_until_a_person_decides(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", customers=3, policies=_policies())
    app = App.open(root)
    rollout = rollouts.start(app, releases.create_release(app, {"web": "1.0"}).id)
    verifier = ScriptedVerifier()
    verifier.failing = {"c00/prod": Outcome.ERROR}
    with Orchestrator(app, verifier):
        wait_for(lambda: _state(app, rollout.id) == RolloutState.PAUSED, what="hold")
        assert _targets(app, rollout.id)["c00/prod"] == TargetState.HELD
        with app.db().read() as conn:
            health = {s.instance: s.health for s in fleet_state.service_states(conn)}
        assert health["c00/prod"] == "unverified"  # neither promoted nor rolled back
        rollouts.control(app, rollout.id, ControlAction.RESUME, reason="metrics were down")
        wait_for(lambda: _state(app, rollout.id) == RolloutState.SUCCEEDED, what="resume")
    assert _targets(app, rollout.id)["c00/prod"] == TargetState.SUCCEEDED


def test_approval_gate_and_separation_of_duties(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", customers=3,
                          policies=_policies(gates=[{"kind": "approval"}]))
    requester = App.open(root, actor="alice")
    approver = App.open(root, actor="bob")
    rollout = rollouts.start(requester, releases.create_release(requester, {"web": "1.0"}).id)
    with Orchestrator(requester, ScriptedVerifier()):
        wait_for(lambda: _state(requester, rollout.id) == RolloutState.WAITING, what="gate")
        assert "approval" in rollouts.status(requester, rollout.id).rollout.waiting_for
        with pytest.raises(PermissionDenied):
            rollouts.control(requester, rollout.id, ControlAction.APPROVE,
                             enforce_separation=True)
        rollouts.control(approver, rollout.id, ControlAction.APPROVE, enforce_separation=True)
        wait_for(lambda: _state(requester, rollout.id) == RolloutState.SUCCEEDED, what="done")

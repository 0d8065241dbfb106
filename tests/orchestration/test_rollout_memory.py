"""End-to-end rollouts in-process with the memory deployer and a scripted verifier."""

from __future__ import annotations

from pathlib import Path

from tests.orchestration.helpers import ScriptedVerifier, make_workspace, run_until_done

from rollwave.analysis.results import Outcome
from rollwave.core.states import RolloutState, TargetState
from rollwave.services import releases, rollouts
from rollwave.services.context import App
from rollwave.storage import fleet_state
from rollwave.storage.events import list_events


def test_rollout_completes_and_records_state(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", customers=6)
    app = App.open(root)
    release = releases.create_release(app, {"web": "1.0"})
    record = rollouts.start(app, release.id)
    rollouts.control(app, record.id, rollouts.ControlAction.APPROVE, wave=1)
    run_until_done(app, ScriptedVerifier())
    status = rollouts.status(app, record.id)
    assert status.rollout.state == RolloutState.SUCCEEDED
    assert status.counts == {"succeeded": 6}
    with app.db().read() as conn:
        states = fleet_state.current_states(conn)
        kinds = [e.kind for e in list_events(conn, rollout_id=record.id, limit=1000)]
    assert {s.versions["web"] for s in states.values()} == {"1.0"}
    assert kinds.count("instance.succeeded") == 6
    assert kinds[-1] == "rollout.succeeded"


def _policy(budget: int | str, on_failure: str = "pause") -> dict[str, object]:
    return {"standard": {"on_failure": on_failure, "waves": [
        {"name": "internal", "select": {"match": "internal"}},
        {"name": "rest", "select": "rest", "parallelism": 2, "failure_budget": budget}]}}


def test_failed_instance_is_rolled_back_and_rest_continues(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", customers=6, policies=_policy(1))
    app = App.open(root)
    first = releases.create_release(app, {"web": "1.0"})
    rollouts.start(app, first.id)
    verifier = ScriptedVerifier()
    run_until_done(app, verifier)
    second = releases.create_release(app, {"web": "1.1"})
    r2 = rollouts.start(app, second.id)
    verifier.failing = {"c03/prod": Outcome.FAILED}
    verifier.bad_versions = {"1.1"}
    run_until_done(app, verifier)
    status = rollouts.status(app, r2.id)
    by_instance = {t.instance: t.state for t in status.targets}
    assert by_instance["c03/prod"] == TargetState.ROLLED_BACK
    assert status.rollout.state == RolloutState.SUCCEEDED
    with app.db().read() as conn:
        states = fleet_state.current_states(conn)
    assert states["c03/prod"].versions["web"] == "1.0"
    assert states["c04/prod"].versions["web"] == "1.1"


def test_over_budget_with_rollback_policy_rolls_release_back(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", customers=6, policies=_policy(0, "rollback"))
    app = App.open(root)
    rollouts.start(app, releases.create_release(app, {"web": "1.0"}).id)
    verifier = ScriptedVerifier()
    run_until_done(app, verifier)
    r2 = rollouts.start(app, releases.create_release(app, {"web": "1.1"}).id)
    verifier.failing = {"c02/prod": Outcome.FAILED}
    verifier.bad_versions = {"1.1"}
    run_until_done(app, verifier)
    status = rollouts.status(app, r2.id)
    assert status.rollout.state == RolloutState.ROLLED_BACK
    assert all(t.state in (TargetState.ROLLED_BACK, TargetState.SKIPPED) for t in status.targets)
    with app.db().read() as conn:
        states = fleet_state.current_states(conn)
    assert {s.versions["web"] for s in states.values()} == {"1.0"}

"""A wave claims the instances of free slots together and records finished ones in bulk."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.orchestration.helpers import ScriptedVerifier, make_workspace, run_until_done

from rollwave.core.states import ControlAction, RolloutState, TargetState
from rollwave.orchestration.carry import Carry
from rollwave.orchestration.runtime import Runtime
from rollwave.orchestration.worker import Worker
from rollwave.services import releases, rollouts
from rollwave.services.context import App
from rollwave.storage import fleet_state
from rollwave.storage import rollouts as repo
from rollwave.storage.db import Database
from rollwave.storage.events import list_events

NO_CHECKS = {"default": {"duration": "1s", "interval": "1s", "health": None}}


def _workspace(tmp_path: Path, customers: int, parallelism: int, *, delay: float = 0.0,
               fail: list[str] | None = None) -> App:
    root = make_workspace(tmp_path / "ws", customers=customers, policies={"all": {
        "verification": "default", "on_failure": "pause",
        "waves": [{"name": "all", "select": "rest", "parallelism": parallelism, "bake": 0,
                   "failure_budget": customers, "gates": []}]}})
    text = (root / "rollwave.yaml").read_text()
    import yaml

    project = yaml.safe_load(text)
    project["verification"] = NO_CHECKS
    project["default_policy"] = "all"
    project["deployers"]["local"] = {"kind": "memory", "delay": delay,
                                     "fail_versions": fail or []}
    (root / "rollwave.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    return App.open(root, actor="tester")


def test_a_rollout_without_checks_records_every_instance_fully(tmp_path: Path) -> None:
    app = _workspace(tmp_path, customers=24, parallelism=5, delay=0.01)
    release = releases.create_release(app, {"web": "2.0"})
    record = rollouts.start(app, release.id)
    run_until_done(app, ScriptedVerifier())
    with app.db().read() as conn:
        final = repo.get_rollout(conn, record.id)
        targets = repo.targets(conn, record.id)
        events = list_events(conn, rollout_id=record.id, limit=10_000)
        states = {s.instance: s for s in fleet_state.service_states(conn)}
        logs = repo.deploy_log_entries(conn, record.id)
    assert final is not None
    assert final.state == RolloutState.SUCCEEDED
    assert {t.state for t in targets} == {TargetState.SUCCEEDED}
    assert all(t.attempts == 1 and t.finished_at and t.started_at for t in targets)
    for target in targets:  # each instance's own story, in order, with its log and fleet state
        kinds = [e.kind for e in events if e.instance == target.instance]
        assert kinds == ["instance.deploying", "instance.deployed", "instance.succeeded"]
        assert states[target.instance].version == "2.0"
        assert states[target.instance].release_id == release.id
    assert len(logs) == len(targets)
    assert all(entry["ok"] for entry in logs)
    # the first free slots were claimed together: one transaction, one timestamp
    first = [e for e in events if e.kind == "instance.deploying"][:5]
    assert len({e.at for e in first}) == 1


def test_failed_deploys_are_not_carried_and_roll_back(tmp_path: Path) -> None:
    app = _workspace(tmp_path, customers=8, parallelism=3, fail=["2.0"])
    good = releases.create_release(app, {"web": "1.0"})
    first = rollouts.start(app, good.id)
    run_until_done(app, ScriptedVerifier())
    bad = releases.create_release(app, {"web": "2.0"})
    record = rollouts.start(app, bad.id)
    run_until_done(app, ScriptedVerifier())
    with app.db().read() as conn:
        targets = repo.targets(conn, record.id)
        before = repo.get_rollout(conn, first.id)
    assert before is not None
    assert before.state == RolloutState.SUCCEEDED
    assert {t.state for t in targets} == {TargetState.ROLLED_BACK}


# --- storage: guarded bulk claims and finishes ---------------------------------------------


@pytest.fixture
def db_with_targets(tmp_path: Path) -> Any:
    app = _workspace(tmp_path, customers=6, parallelism=6)
    release = releases.create_release(app, {"web": "2.0"})
    record = rollouts.start(app, release.id)
    return app.db(), record


def test_claims_move_only_targets_still_in_the_expected_state(db_with_targets: Any) -> None:
    db, record = db_with_targets
    with db.read() as conn:
        rows = repo.targets(conn, record.id)
    moved_away = rows[0]
    with db.begin() as conn:
        repo.transition_target(conn, record.id, moved_away.instance, TargetState.PENDING,
                               TargetState.SKIPPED, "skipped by someone else")
    claims = [repo.Claim(t.instance, TargetState.PENDING, t.attempts + 1, f"deploying {t.instance}")
              for t in rows[:3]]
    claimed = db.write(lambda conn: repo.claim_targets(conn, record.id, claims))
    assert claimed == [t.instance for t in rows[1:3]]
    with db.read() as conn:
        after = {t.instance: t for t in repo.targets(conn, record.id)}
        events = list_events(conn, rollout_id=record.id, kinds=["instance.deploying"])
    assert after[moved_away.instance].state == TargetState.SKIPPED
    assert all(after[name].state == TargetState.DEPLOYING and after[name].attempts == 1
               for name in claimed)
    assert [e.instance for e in events] == claimed


def test_finishing_records_events_logs_and_fleet_state_for_deploying_targets_only(
        db_with_targets: Any) -> None:
    db, record = db_with_targets
    with db.read() as conn:
        rows = repo.targets(conn, record.id)
    claims = [repo.Claim(t.instance, TargetState.PENDING, 1, "deploying") for t in rows[:2]]
    db.write(lambda conn: repo.claim_targets(conn, record.id, claims))
    at = datetime.now(UTC)
    finished = [repo.Finished(instance=t.instance, customer=t.instance.split("/")[0], at=at,
                              deployed=f"{t.instance} deployed", succeeded=f"{t.instance} ok",
                              outcome="successful", explanation="no checks", attempt=1,
                              log="$ deploy", versions={"web": "2.0"},
                              config_versions={"web": "h"})
                for t in rows[:3]]  # the third was never claimed: it must not be finished
    done = db.write(lambda conn: repo.finish_targets(conn, record.id, record.release_id,
                                                      finished))
    assert done == [t.instance for t in rows[:2]]
    with db.read() as conn:
        after = {t.instance: t for t in repo.targets(conn, record.id)}
        kinds = [(e.instance, e.kind) for e in list_events(conn, rollout_id=record.id)
                 if e.kind in ("instance.deployed", "instance.succeeded")]
        fleet = {s.instance: s for s in fleet_state.service_states(conn)}
        logs = repo.deploy_log_entries(conn, record.id)
    assert [after[t.instance].state for t in rows[:3]] == [
        TargetState.SUCCEEDED, TargetState.SUCCEEDED, TargetState.PENDING]
    assert after[rows[0].instance].finished_at == at
    assert kinds == [(rows[0].instance, "instance.deployed"),
                     (rows[0].instance, "instance.succeeded"),
                     (rows[1].instance, "instance.deployed"),
                     (rows[1].instance, "instance.succeeded")]
    assert set(fleet) == {rows[0].instance, rows[1].instance}
    assert fleet[rows[0].instance].config_hash == "h"
    assert [entry["instance"] for entry in logs] == [rows[0].instance, rows[1].instance]


def test_record_deployed_many_updates_known_rows_and_inserts_new_ones(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'rw.db'}")
    at = datetime.now(UTC)
    with db.begin() as conn:
        fleet_state.record_deployed(conn, "a/prod", "a", {"web": "1.0"}, {"web": "c1"},
                                    health="healthy", release_id=None, rollout_id=None)
    with db.begin() as conn:
        fleet_state.record_deployed_many(conn, [
            fleet_state.Deployed("a/prod", "a", {"web": "1.1"}, {"web": "c2"}, "healthy",
                                 "r2", "ro-2", at),
            fleet_state.Deployed("b/prod", "b", {"web": "1.1", "api": "3"}, {"web": "c2"},
                                 "healthy", "r2", "ro-2", at)])
    with db.read() as conn:
        states = {(s.instance, s.service): s for s in fleet_state.service_states(conn)}
    assert set(states) == {("a/prod", "web"), ("b/prod", "web"), ("b/prod", "api")}
    assert (states["a/prod", "web"].version, states["a/prod", "web"].previous_version) == (
        "1.1", "1.0")
    assert states["b/prod", "api"].config_hash is None
    db.dispose()


# --- the carry --------------------------------------------------------------------------------


def test_carried_writes_ride_with_the_next_write_and_survive_its_failure(
        tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'rw.db'}")
    bulk: list[list[str]] = []
    carry: Carry[str] = Carry(lambda conn, items: bulk.append(list(items)))
    order: list[str] = []
    assert carry.defer(lambda conn: order.append("deferred"))
    assert carry.add("item-1")

    def failing(conn: Any) -> None:
        order.append("failing")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        carry.write(db, failing)
    assert carry.write(db, lambda conn: order.append("next") or "result") == "result"
    # a failed transaction keeps the carried writes for the next one
    assert order == ["deferred", "failing", "deferred", "next"]
    assert bulk == [["item-1"], ["item-1"]]
    assert carry.add("item-2")
    carry.close(db)
    assert bulk[-1] == ["item-2"]
    assert not carry.defer(lambda conn: None)
    assert not carry.add("late")
    db.dispose()


# --- the worker starts a rollout recorded in its own process at once ------------------------


def test_a_rollout_recorded_in_process_starts_without_waiting_for_the_poll(
        tmp_path: Path) -> None:
    app = _workspace(tmp_path, customers=3, parallelism=3)
    release = releases.create_release(app, {"web": "2.0"})
    worker = Worker(Runtime(app=app, verifier=ScriptedVerifier()), tick=30.0)
    worker.start()
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        time.sleep(0.3)  # the worker is now in its 30-second wait
        record = rollouts.start(app, release.id)
        deadline = time.monotonic() + 10
        state = record.state
        while time.monotonic() < deadline and not state.terminal:
            with app.db().read() as conn:
                current = repo.get_rollout(conn, record.id)
            assert current is not None
            state = current.state
            time.sleep(0.05)
        assert state == RolloutState.SUCCEEDED
    finally:
        stop.set()
        app.db().work_added.set()
        thread.join(timeout=10)
        worker.close()


def test_status_reads_the_rollout_at_the_same_moment_as_its_events(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stale rollout next to newer events left a dashboard page waiting forever."""
    app = _workspace(tmp_path, customers=3, parallelism=3)
    release = releases.create_release(app, {"web": "2.0"})
    stale = rollouts.start(app, release.id)  # PENDING, as resolved before the change below
    rollouts.control(app, stale.id, ControlAction.ABORT, reason="INC-1")
    run_until_done(app, ScriptedVerifier())
    monkeypatch.setattr(rollouts, "resolve", lambda app_, ref: stale)
    view = rollouts.status(app, stale.id, event_limit=200)
    assert view.events[-1].kind == "rollout.aborted"
    assert view.rollout.state == RolloutState.ABORTED  # not the stale PENDING

"""Guarded progressive flag rollouts driven by the worker tick (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollwave.analysis.results import CheckResult, Outcome, Verdict
from rollwave.core.fleet import FleetInstance
from rollwave.core.model import Verification
from rollwave.errors import Conflict, ValidationFailed
from rollwave.flags import rollouts, scheduler
from rollwave.flags.dbstore import DatabaseFlagStore, store_for
from rollwave.flags.engine import compile_snapshot
from rollwave.flags.model import RolloutPlan
from rollwave.flags.rollouts import RolloutState
from rollwave.flags.store import set_killed
from rollwave.flags.sync import sync_flags
from rollwave.orchestration.runtime import Runtime, default_verifier
from rollwave.services.context import App
from rollwave.storage.db import Database
from rollwave.storage.events import list_events
from rollwave.storage.flag_tables import flag_rollouts
from tests.flags.helpers import MetricsServer, WebhookReceiver, eventually, make_workspace

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PLAN = {"variant": True, "environment": "production", "steps": [
    {"percentage": 1, "guards": ["default"]},
    {"percentage": 25, "after": "1h", "guards": ["default"]},
    {"percentage": 100, "after": "1h", "guards": ["default"]}]}


class Verifier:
    """Answers every guard with ``outcome`` (with numbers in words when it fails)."""

    def __init__(self) -> None:
        self.outcome = Outcome.SUCCESSFUL
        self.calls: list[str] = []

    def __call__(self, instance: FleetInstance, profile: Verification,
                 endpoints: Mapping[str, str], should_stop: Callable[[], bool],
                 progress: Callable[[str], None]) -> Verdict:
        self.calls.append(instance.key)
        words = {Outcome.SUCCESSFUL: "error ratio 0.2% (1 of 500 requests) is within the 5% "
                                     "limit",
                 Outcome.FAILED: "error ratio 12% (60 of 500 requests) over 30s is above "
                                 "the 5% limit",
                 Outcome.INCONCLUSIVE: "only 3 requests, fewer than the 20 needed"}
        return Verdict.of([CheckResult("web/errors", self.outcome,
                                       words.get(self.outcome, "source unreadable"))])


class Driver:
    """The worker's tick with a movable clock."""

    def __init__(self, app: App, verifier: Any = None) -> None:
        self.now = T0
        self.verifier = verifier or Verifier()
        self.rt = Runtime(app=app, verifier=self.verifier, clock=lambda: self.now)

    def tick(self, times: int = 1) -> None:
        for _ in range(times):
            scheduler.flag_rollout_tick(self.rt)
            assert scheduler.wait_idle(30)

    def later(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def synced(app: App, store: DatabaseFlagStore) -> DatabaseFlagStore:
    sync_flags(store, app.root, actor="ci")
    return store


@pytest.fixture
def driver(app: App) -> Iterator[Driver]:
    yield Driver(app)
    assert scheduler.wait_idle(30)


def _start(app: App, plan: dict[str, Any] = PLAN, now: datetime = T0) -> rollouts.FlagRollout:
    return rollouts.start(app, "new-checkout", plan=RolloutPlan.model_validate(plan), now=now,
                          reason="PAY-12")


def _share(store: DatabaseFlagStore, contexts: int = 2000) -> float:
    flagset, _ = store.flagset()
    snapshot = compile_snapshot(flagset, "production")
    hits = sum(bool(snapshot.evaluate("new-checkout", {"targetingKey": f"u{i}"}).value)
               for i in range(contexts))
    return hits / contexts


def _events(app: App, prefix: str = "flag.rollout.") -> list[str]:
    with app.db().read() as conn:
        return [e.kind.removeprefix(prefix) for e in list_events(conn, kind_prefix=prefix)]


def test_steps_go_live_on_schedule_once_their_guards_pass(
        app: App, synced: DatabaseFlagStore, driver: Driver) -> None:
    record = _start(app)
    assert _share(synced) == 0.0
    driver.tick()
    assert rollouts.get(app, record.id).percentage == 1
    included_at_1 = {i for i in range(2000) if compile_snapshot(
        synced.flagset()[0], "production").evaluate(
        "new-checkout", {"targetingKey": f"u{i}"}).value}
    driver.tick(3)  # guards pass, but step 2 is not due for an hour
    current = rollouts.get(app, record.id)
    assert (current.step, current.safe_step) == (0, 0)
    assert current.passed_at == T0
    driver.later(hours=1)
    driver.tick()
    assert rollouts.get(app, record.id).percentage == 25
    assert 0.2 < _share(synced) < 0.3
    snapshot = compile_snapshot(synced.flagset()[0], "production")
    assert all(snapshot.evaluate("new-checkout", {"targetingKey": f"u{i}"}).value
               for i in included_at_1)  # raising the share never removes anyone
    driver.tick(2)
    driver.later(hours=1)
    driver.tick(4)
    done = rollouts.get(app, record.id)
    assert done.state is RolloutState.COMPLETED
    assert done.finished_at is not None
    assert _share(synced) == 1.0
    assert snapshot.evaluate("new-checkout", {"customer": "acme"}).value is True
    assert _events(app) == ["started", "step", "guards_passed", "step", "guards_passed",
                            "step", "guards_passed", "completed"]
    history = synced.history("new-checkout")
    assert [h.action for h in history[:3]] == ["rollout"] * 3
    assert history[0].actor == "alice"
    assert history[0].rollout_id == record.id
    assert synced.record("new-checkout").drifted  # type: ignore[union-attr]


def test_a_failing_guard_reverts_to_the_last_safe_step_and_notifies(
        app: App, store: DatabaseFlagStore, tmp_path: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLWAVE_TEST_SIGNING", "s3cret")
    with WebhookReceiver() as hook:
        ws = make_workspace(tmp_path / "hooked", webhook=f"{hook.url}/rollwave",
                            flags={"new-checkout": (app.root / "flags" / "new-checkout.yaml")
                                   .read_text()})
        hooked = App(root=ws, database_url=app.database_url, actor="alice", _db=app.db())
        sync_flags(store, hooked.root, actor="ci")
        driver = Driver(hooked)
        record = _start(hooked)
        driver.tick(2)
        driver.later(hours=1)
        driver.tick()
        assert rollouts.get(hooked, record.id).percentage == 25
        driver.verifier.outcome = Outcome.FAILED
        driver.tick()
        reverted = rollouts.get(hooked, record.id)
        assert reverted.state is RolloutState.REVERTED
        assert "error ratio 12% (60 of 500 requests)" in reverted.summary
        assert "above the 5% limit" in reverted.summary
        assert "Reverted to step 1 of 3 (1 %)" in reverted.summary
        assert 0.005 < _share(store) < 0.02
        last = store.history("new-checkout")[0]
        assert last.actor == "rollwave"
        assert "automatic revert" in last.reason
        driver.tick()  # delivers the outbox
        assert scheduler.wait_idle(30)
        body = eventually(hook.delivered, 10, "the webhook")[0]
        assert body["event"] == "flag.rollout.reverted"
        assert body["severity"] == "critical"
        assert body["data"]["flag"] == "new-checkout"
        assert body["data"]["reverted_to_percentage"] == 1.0
        assert body["data"]["failed_percentage"] == 25.0
        assert "60 of 500 requests" in body["message"]
        request = hook.requests[0]
        expected = hmac.new(b"s3cret", request["raw"], hashlib.sha256).hexdigest()
        assert request["headers"]["X-Rollwave-Signature"] == f"sha256={expected}"
        kinds = _events(hooked, "")
        assert kinds.count("notify.sent") == 2  # the webhook and the log channel
        assert "flag.rollout.reverted" in kinds


def test_a_failure_at_the_first_step_restores_what_was_served_before(
        app: App, synced: DatabaseFlagStore, driver: Driver) -> None:
    set_killed(synced, "new-checkout", False, actor="alice", environment="staging")
    before = synced.get_flag("new-checkout")
    assert before is not None
    record = _start(app)
    driver.verifier.outcome = Outcome.FAILED
    driver.tick(2)
    assert rollouts.get(app, record.id).state is RolloutState.REVERTED
    after = synced.get_flag("new-checkout")
    assert after is not None
    assert after.value == before.value
    assert "what it served before the rollout" in rollouts.get(app, record.id).summary


def test_an_inconclusive_guard_holds_the_step(app: App, synced: DatabaseFlagStore,
                                              driver: Driver) -> None:
    record = _start(app)
    driver.verifier.outcome = Outcome.INCONCLUSIVE
    driver.tick(2)
    driver.later(hours=2)
    driver.tick(2)
    held = rollouts.get(app, record.id)
    assert (held.state, held.step) == (RolloutState.RUNNING, 0)
    assert "fewer than the 20 needed" in held.held
    driver.verifier.outcome = Outcome.SUCCESSFUL
    driver.later(minutes=1)
    driver.tick(2)
    assert rollouts.get(app, record.id).step == 1
    assert _events(app).count("held") == 1


def test_pause_resume_and_abort(app: App, synced: DatabaseFlagStore, driver: Driver) -> None:
    record = _start(app)
    driver.tick(2)
    rollouts.pause(app, record.id, reason="holiday")
    driver.later(hours=5)
    driver.tick(2)
    paused = rollouts.get(app, record.id)
    assert (paused.state, paused.step) == (RolloutState.PAUSED, 0)
    with pytest.raises(Conflict):
        rollouts.pause(app, record.id)
    rollouts.resume(app, "new-checkout")  # by flag key
    driver.tick(3)
    assert rollouts.get(app, record.id).step == 1
    aborted = rollouts.abort(app, record.id, reason="changed our mind", revert=True)
    assert aborted.state is RolloutState.ABORTED
    assert _share(synced) == 0.0
    assert not synced.record("new-checkout").drifted  # type: ignore[union-attr]
    assert _events(app)[-1] == "aborted"


def test_a_change_made_outside_the_rollout_pauses_it(app: App, synced: DatabaseFlagStore,
                                                     driver: Driver) -> None:
    record = _start(app)
    driver.tick(2)
    set_killed(synced, "new-checkout", True, actor="oncall", environment="production")
    driver.later(hours=1)
    driver.tick()
    paused = rollouts.get(app, record.id)
    assert paused.state is RolloutState.PAUSED
    assert "changed outside this rollout" in paused.held
    assert "oncall" in paused.held
    assert paused.step == 0


def test_start_checks_the_plan_and_allows_one_active_rollout(app: App,
                                                              synced: DatabaseFlagStore) -> None:
    bad = {**PLAN, "steps": [{"percentage": 5, "guards": ["no-such-guard"]}]}
    with pytest.raises(ValidationFailed) as caught:
        _start(app, bad)
    assert "no-such-guard" in caught.value.problems[0].message
    with pytest.raises(ValidationFailed) as missing:
        rollouts.start(app, "new-checkout")
    assert "has no rollout_plan" in missing.value.problems[0].message
    _start(app)
    with pytest.raises(Conflict, match="already has an active rollout"):
        _start(app)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_guard_window_cut_short_by_a_dead_worker_is_measured_again(
        app: App, synced: DatabaseFlagStore, driver: Driver) -> None:
    import socket

    record = _start(app)
    driver.tick()  # step 1 applied
    dead = f"{socket.gethostname()}:{_dead_pid()}:abcdef"
    with app.db().begin() as conn:  # as if that worker died mid-window
        conn.execute(flag_rollouts.update().where(flag_rollouts.c.id == record.id).values(
            lease_owner=dead, lease_until=datetime.now(UTC) + timedelta(hours=1)))
    driver.tick(2)
    resumed = rollouts.get(app, record.id)
    assert resumed.passed_at is not None
    assert resumed.lease_owner is None
    assert "resumed" in _events(app)
    with app.db().read() as conn:
        message = next(e.message for e in list_events(conn, kind_prefix="flag.rollout.resumed"))
    assert dead in message


def test_a_live_lease_of_another_host_is_respected(app: App, synced: DatabaseFlagStore,
                                                  driver: Driver) -> None:
    record = _start(app)
    driver.tick()
    with app.db().begin() as conn:
        conn.execute(flag_rollouts.update().where(flag_rollouts.c.id == record.id).values(
            lease_owner="other-host:123:abc",
            lease_until=datetime.now(UTC) + timedelta(hours=1)))
    calls = len(driver.verifier.calls)
    driver.tick(2)
    assert len(driver.verifier.calls) == calls
    assert rollouts.get(app, record.id).passed_at is None


def test_guards_measure_real_metrics(tmp_path: Any) -> None:
    """The verification checks against an instance's /metrics: pass at 0 %, fail at 30 %."""
    with MetricsServer() as metrics:
        root = make_workspace(tmp_path / "ws", metrics_url=metrics.url,
                              flags={"new-checkout": "environments: {production: {}}\n"})
        app = App(root=root, database_url=f"sqlite:///{tmp_path / 'rw.db'}", actor="alice")
        store = store_for(app)
        sync_flags(store, root, actor="ci")
        plan = {"variant": True, "environment": "production",
                "guards": {"error-rate": {"profile": "errors", "instances": "tier == enterprise"}},
                "steps": [{"percentage": 10, "guards": ["error-rate"]},
                          {"percentage": 50, "guards": ["error-rate"]}]}
        driver = Driver(app, default_verifier())
        record = _start(app, plan)
        driver.tick(3)  # step 1, its guard window passes, step 2
        current = rollouts.get(app, record.id)
        assert current.step == 1, current.held
        assert "error-rate on acme/prod: web/errors: error ratio 0%" in \
            current.verdict["summary"]  # type: ignore[index]
        metrics.error_ratio = 0.3
        driver.tick()
        failed = rollouts.get(app, record.id)
        assert failed.state is RolloutState.REVERTED
        assert "error-rate on acme/prod" in failed.summary
        assert "above the 5% limit" in failed.summary
        assert "Reverted to step 1 of 2 (10 %)" in failed.summary
        store.close()
        app.close()


def test_notifications_survive_in_the_outbox(app: App, synced: DatabaseFlagStore) -> None:
    db: Database = app.db()
    driver = Driver(app)
    record = _start(app)
    driver.verifier.outcome = Outcome.FAILED
    for _ in range(2):  # apply step 1, then measure it (the revert enqueues)
        scheduler.flag_rollout_tick(driver.rt)
        assert scheduler.wait_idle(30)
    from rollwave.adapters.notify.outbox import pending

    rows = pending(db)
    assert [r["channel"] for r in rows] == ["log"]  # no notifications: section → log
    assert rows[0]["payload"]["data"]["rollout"] == record.id

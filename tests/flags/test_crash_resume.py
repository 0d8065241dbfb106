"""SIGKILL the worker in the middle of a flag rollout's guard window; a restarted worker measures
the step again and finishes the rollout (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rollwave.flags import rollouts
from rollwave.flags.dbstore import store_for
from rollwave.flags.model import RolloutPlan
from rollwave.flags.rollouts import RolloutState
from rollwave.flags.sync import sync_flags
from rollwave.services.context import App
from rollwave.storage.events import list_events
from tests.flags.helpers import MetricsServer, eventually, make_workspace, postgres_url

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

PLAN = {"variant": True, "environment": "production",
        "guards": {"error-rate": {"profile": "errors", "instances": ["acme"]}},
        "steps": [{"percentage": 10, "guards": ["error-rate"]},
                  {"percentage": 100, "guards": ["error-rate"]}]}


def _worker(app: App, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "rollwave", "-w", str(app.root), "--database",
               str(app.database_url), "worker", "--quiet"]
    return subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _crash_and_resume(app: App, log: Path) -> None:
    store = store_for(app)
    sync_flags(store, app.root, actor="ci")
    record = rollouts.start(app, "new-checkout", plan=RolloutPlan.model_validate(PLAN))
    first = _worker(app, log)
    try:
        owner = eventually(lambda: rollouts.get(app, record.id).lease_owner, 60,
                           "a guard window to start")
        assert str(first.pid) in owner
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    mid = rollouts.get(app, record.id)
    assert (mid.state, mid.step, mid.passed_at) == (RolloutState.RUNNING, 0, None)
    assert mid.lease_owner == owner  # the dead worker's lease is still recorded
    second = _worker(app, log)
    try:
        eventually(lambda: rollouts.get(app, record.id).state is not RolloutState.RUNNING, 90,
                   "the rollout to finish")
    finally:
        second.terminate()
        second.wait(20)
    done = rollouts.get(app, record.id)
    assert done.state is RolloutState.COMPLETED, (done.summary, log.read_text()[-2000:])
    with app.db().read() as conn:
        events = list_events(conn, kind_prefix="flag.rollout.")
    kinds = [e.kind.removeprefix("flag.rollout.") for e in events]
    assert kinds.count("step") == 2  # each step applied exactly once
    resumed = [e for e in events if e.kind == "flag.rollout.resumed"]
    assert resumed
    assert owner in resumed[0].message
    flag = store.get_flag("new-checkout")
    assert flag is not None
    assert flag.value.environments["production"].fallthrough.variant == "true"  # type: ignore[union-attr]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_killed_worker_does_not_lose_a_flag_rollout(backend: str, tmp_path: Path) -> None:
    with MetricsServer() as metrics:
        root = make_workspace(tmp_path / "ws", metrics_url=metrics.url, duration="4s",
                              interval="1s",
                              flags={"new-checkout": "environments: {production: {}}\n"})
        if backend == "sqlite":
            app = App(root=root, database_url=f"sqlite:///{tmp_path / 'rw.db'}", actor="ci")
            _crash_and_resume(app, tmp_path / "worker.log")
        else:
            with postgres_url("rw_flag_crash") as url:
                app = App(root=root, database_url=url, actor="ci")
                try:
                    _crash_and_resume(app, tmp_path / "worker.log")
                finally:
                    store_for(app).close()
                    app.close()

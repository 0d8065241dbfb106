"""Two ``rollwave serve`` processes on one PostgreSQL: SIGKILL the one running a rollout.

The fleet is driven by the ``command`` deployer (each deploy sleeps, then appends to a ledger
and writes the instance's state file, which ``status`` reads back). A rollout is started through
the API of the first process; whichever process's orchestrator runs it is SIGKILLed mid-rollout;
the survivor notices the missing heartbeat, takes the workflow over, and its API shows the
rollout finishing with every instance on the new version.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from rollwave.services import access
from rollwave.services.context import App
from rollwave.workspace.scaffold import CustomerSeed, customer_document, write_workspace
from tests.serve.helpers import Served, start_serve
from tests.services import need_postgres

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.service]

INSTANCES = 12


def _workspace(root: Path) -> Path:
    fleet = root / "fleet"
    fleet.mkdir(parents=True)
    deploy = (f"sleep 0.6; echo {{key}} {{version}} >> {fleet}/ledger; "
              f"mkdir -p {fleet}/state/{{customer}}; "
              f"echo {{version}} {{config_hash}} > {fleet}/state/{{key}}")
    status = f"cat {fleet}/state/{{key}} 2>/dev/null || true"
    project = {
        "project": "two-workers",
        "environments": {"production": {}},
        "services": {"web": {"deployer": "shell"}},
        "deployers": {"shell": {"kind": "command", "deploy": deploy, "status": status,
                                "timeout": 30}},
        "verification": {"default": {"health": None}},
        "policies": {"standard": {"waves": [
            {"name": "internal", "select": {"match": "internal"}, "bake": "1s"},
            {"name": "rest", "select": "rest", "parallelism": 2},
        ]}},
    }
    seeds = [CustomerSeed("internal", "Internal", tags=["internal"])]
    seeds += [CustomerSeed(f"c{i:02d}", f"Customer {i}") for i in range(INSTANCES - 1)]
    write_workspace(root, project, [customer_document(s) for s in seeds])
    return root


@pytest.fixture
def database() -> Iterator[str]:
    base = need_postgres()
    name = f"rw_serve_{os.getpid()}_{random.randrange(10**6)}"
    admin = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://") + "/postgres",
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _executor_pid(app: App, rollout_id: str) -> int | None:
    """The pid of the serve process whose orchestrator runs the rollout's workflow."""
    with app.db().read() as conn:
        executor = conn.execute(sa.text(
            "SELECT executor_id FROM dbos.workflow_status WHERE workflow_uuid = :id"),
            {"id": rollout_id}).scalar()
    if not executor:
        return None
    return int(str(executor).split("-")[-2])  # Worker.id is HOST-PID-HEX


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_rollout_survives_killing_the_serve_process_that_runs_it(tmp_path: Path,
                                                                  database: str) -> None:
    root = _workspace(tmp_path / "ws")
    setup = App.open(root, database, actor="setup")
    access.create_user(setup, "rel", ["deployer"], password=None)
    token = access.create_token(setup, "rel", "test").secret

    served: list[Served] = []
    try:
        for name in ("a", "b"):
            one = start_serve(root, "--database", database, name=name)
            one.wait_ready()
            assert "running in this process" in one.output(), one.output()
            served.append(one)
        first = served[0]
        with first.client(token) as api:
            release = api.post("/api/v1/releases", json={"versions": {"web": "2.0"}})
            assert release.status_code == 201, release.text
            started = api.post("/api/v1/rollouts", json={"release": release.json()["id"]})
            assert started.status_code == 201, started.text
        rollout_id = started.json()["id"]

        def progressed() -> int | None:
            with first.client(token) as api:
                counts = api.get(f"/api/v1/rollouts/{rollout_id}").json()["counts"]
            if counts.get("succeeded", 0) >= 2:
                return _executor_pid(setup, rollout_id)
            return None

        pid = _wait(progressed, 120, "the rollout to make progress")
        victim = next(s for s in served if s.proc.pid == pid)
        survivor = next(s for s in served if s is not victim)
        with first.client(token) as api:
            before = api.get(f"/api/v1/rollouts/{rollout_id}").json()["counts"]
        victim.kill()  # SIGKILL mid-rollout: no shutdown, no goodbye heartbeat
        assert before.get("succeeded", 0) < INSTANCES, "killed too late to mean anything"
        print(f"\nkilled pid {pid} ({victim.url}) at {before}; survivor {survivor.url}")

        def finished() -> dict[str, Any] | None:
            with survivor.client(token) as api:
                body: dict[str, Any] = api.get(f"/api/v1/rollouts/{rollout_id}").json()
            return body if body["rollout"]["state"] not in {
                "pending", "running", "waiting", "baking"} else None

        status = _wait(finished, 180, "the survivor to finish the rollout")
        assert status["rollout"]["state"] == "succeeded", status["rollout"]
        assert status["counts"] == {"succeeded": INSTANCES}
        assert _executor_pid(setup, rollout_id) == survivor.proc.pid
        with survivor.client(token) as api:
            recovered = api.get("/api/v1/events", params={"kind": "worker.recovered"}).json()
        assert recovered["events"], "the survivor took the rollout over"

        ledger = Counter(line.split()[0] for line in
                         (root / "fleet" / "ledger").read_text().splitlines())
        assert len(ledger) == INSTANCES
        assert max(ledger.values()) == 1, f"deployed twice: {ledger.most_common(3)}"
        for key in ledger:
            assert (root / "fleet" / "state" / key).read_text().split()[0] == "2.0"
        assert survivor.terminate() == 0
    finally:
        for one in served:
            one.kill()
        setup.close()

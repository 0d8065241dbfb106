"""SIGKILL the orchestrator at random moments; a restarted one reaches the same end state.

The fleet is driven by the ``command`` deployer: each deploy appends a line to a ledger after
its sleep and writes the instance's state file (version and config hash), which the ``status``
command reads back — so
``actual()`` is level-triggered from the instance, and the ledger counts every deploy that
really completed. After the chaos: every instance runs the release, none was deployed twice,
and the event log holds exactly one success per instance and one end of the rollout.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.services import need_postgres

from rollwave.core.states import RolloutState, TargetState
from rollwave.services import releases, rollouts
from rollwave.services.context import App
from rollwave.storage.events import list_events
from rollwave.workspace.scaffold import CustomerSeed, customer_document, write_workspace

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

INSTANCES = 16


def _workspace(root: Path) -> Path:
    fleet = root / "fleet"
    fleet.mkdir(parents=True)
    deploy = (f"sleep 0.4; echo {{key}} {{version}} >> {fleet}/ledger; "
              f"mkdir -p {fleet}/state/{{customer}}; "
              f"echo {{version}} {{config_hash}} > {fleet}/state/{{key}}")
    status = f"cat {fleet}/state/{{key}} 2>/dev/null || true"
    project = {
        "project": "chaos",
        "environments": {"production": {}},
        "services": {"web": {"deployer": "shell"}},
        "deployers": {"shell": {"kind": "command", "deploy": deploy, "status": status,
                                "timeout": 30}},
        "verification": {"default": {"health": None}},
        "policies": {"standard": {"waves": [
            {"name": "internal", "select": {"match": "internal"}, "bake": "1s"},
            {"name": "canary", "select": {"limit": 3}, "parallelism": 2, "bake": "1s",
             "gates": ["approval"]},
            {"name": "rest", "select": "rest", "parallelism": 4},
        ]}},
    }
    seeds = [CustomerSeed("internal", "Internal", tags=["internal"])]
    seeds += [CustomerSeed(f"c{i:02d}", f"Customer {i}") for i in range(INSTANCES - 1)]
    write_workspace(root, project, [customer_document(s) for s in seeds])
    return root


def _start_worker(root: Path, database: str | None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "rollwave", "-w", str(root)]
    if database:
        command += ["--database", database]
    command += ["worker", "--quiet"]
    log = root / "worker.log"
    return subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _await_progress(app: App, rollout_id: str, deadline: float) -> None:
    """Wait until the (new) worker has appended an event, so kills land during real work."""
    with app.db().read() as conn:
        start = max((e.seq for e in list_events(conn, rollout_id=rollout_id, limit=100_000)),
                    default=0)
    while time.monotonic() < deadline:
        with app.db().read() as conn:
            if list_events(conn, rollout_id=rollout_id, after=start, limit=1):
                return
            if rollouts.status(app, rollout_id).rollout.state == RolloutState.WAITING:
                return
        time.sleep(0.05)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    base = need_postgres()
    name = f"rw_chaos_{os.getpid()}_{random.randrange(10**6)}"
    import sqlalchemy as sa

    admin = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://") + "/postgres",
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_sigkill_at_random_points_reaches_the_same_end_state(tmp_path: Path,
                                                             database: str | None) -> None:
    root = _workspace(tmp_path / "ws")
    app = App.open(root, database)
    release = releases.create_release(app, {"web": "2.0"})
    rollout = rollouts.start(app, release.id)
    rng = random.Random(20261127)
    kills = 0
    approved = False
    worker = _start_worker(root, database)
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline:
            _await_progress(app, rollout.id, deadline)
            time.sleep(rng.uniform(0.0, 1.5))  # then kill at a random point of real work
            view = rollouts.status(app, rollout.id)
            if view.rollout.state.terminal:
                break
            if not approved and view.rollout.state == RolloutState.WAITING:
                rollouts.control(app, rollout.id, rollouts.ControlAction.APPROVE)
                approved = True
            if kills < 6:
                _kill(worker)
                kills += 1
                worker = _start_worker(root, database)
        else:
            pytest.fail(f"rollout did not finish: {rollouts.status(app, rollout.id).to_dict()}")
    finally:
        if worker.poll() is None:
            worker.terminate()
            worker.wait(timeout=20)

    assert kills >= 3
    view = rollouts.status(app, rollout.id)
    assert view.rollout.state == RolloutState.SUCCEEDED, view.to_dict()
    assert all(t.state == TargetState.SUCCEEDED for t in view.targets)
    ledger = Counter(line.split()[0] for line in
                     (root / "fleet" / "ledger").read_text().splitlines())
    assert len(ledger) == INSTANCES
    assert max(ledger.values()) == 1, f"deployed twice: {ledger.most_common(3)}"
    for key in ledger:
        assert (root / "fleet" / "state" / key).read_text().split()[0] == "2.0"
    with app.db().read() as conn:
        events = list_events(conn, rollout_id=rollout.id, limit=100_000)
    kinds = Counter(e.kind for e in events)
    assert kinds["instance.succeeded"] == INSTANCES
    assert kinds["rollout.succeeded"] == 1
    assert kinds["instance.error"] == 0
    per_instance = Counter(e.instance for e in events if e.kind == "instance.succeeded")
    assert set(per_instance.values()) == {1}
    if database is not None:  # a new worker took over the killed workers' rollouts
        with app.db().read() as conn:
            assert list_events(conn, kinds=["worker.recovered"])
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    app.close()

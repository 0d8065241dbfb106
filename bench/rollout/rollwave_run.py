"""One measured Rollwave rollout of the benchmark fleet through the real path.

services (``releases.create_release``, ``rollouts.start``) + the orchestrator
(``Worker`` with the default verifier and the workspace's secret resolver, exactly as
``rollwave worker`` builds it) + DBOS + SQLite (default) or PostgreSQL (``--database``).

Untimed set-up: fresh state (``.rollwave/`` removed, or the PostgreSQL database dropped and
created), the release created, the orchestrator started (DBOS launched) and ticking in a
thread, the loopback health server up. Timed: from the call of ``rollouts.start`` until the
rollout's recorded state is terminal (or paused, which a held wave leads to). Prints one JSON
object: the wall time and a breakdown from the event log.

Usage: python bench/rollout/rollwave_run.py WORKSPACE [--database postgresql://...]
           [--health-dir DIR --port 18999] [--timeout 300] [--what-if shared-ssl]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

#: Where earlier runs' state goes (``bench.py`` deletes it once all rounds are done).
TRASH = Path(__file__).resolve().parents[1] / "out" / "rollout" / "trash"


def reset_state(workspace: Path, database: str | None, *, delete: bool = False) -> None:
    """Fresh state: the previous run's ``.rollwave/`` moved into TRASH (or deleted).

    Moving, not deleting, keeps the set-up out of the measured window: deleting the previous
    run's thousands of files just before a run made ext4 without a journal (as on the
    benchmark machines) scan the recently freed inodes at every file the run creates, which
    cost the run about 0.4 s of system CPU (``--reset delete`` shows it).
    """
    old = workspace / ".rollwave"
    if delete:
        shutil.rmtree(old, ignore_errors=True)
    elif old.exists():
        TRASH.mkdir(parents=True, exist_ok=True)
        old.rename(TRASH / f"{workspace.name}-{time.time_ns()}")
    if database:
        url = sa.engine.make_url(database.replace("postgresql://", "postgresql+psycopg://", 1))
        name = url.database
        admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()


def start_health_server(directory: Path, port: int) -> subprocess.Popen[bytes]:
    """``python -m http.server`` in its own process: GET /health answers 200 from a file."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"health server did not start on port {port}")


def shared_ssl() -> None:
    """What-if (NOT the real path): every verification client shares one SSL context.

    ``rollwave.verification.http.client`` builds an ``httpx.Client`` per verified instance, and
    each builds a new SSL context (loading the CA bundle) even for a plain-http endpoint. This
    swaps in the same client built with one context created once, to measure that cost.
    """
    import ssl

    import httpx

    from rollwave.verification import http

    context = ssl.create_default_context()

    def client(base_url: str) -> httpx.Client:
        return httpx.Client(trust_env=not http.is_loopback(base_url), follow_redirects=False,
                            headers={"User-Agent": http.USER_AGENT}, verify=context)

    http.client = client  # type: ignore[assignment]


def run(workspace: Path, database: str | None, timeout: float,
        reset: str = "move") -> dict[str, Any]:
    from dbos import DBOS

    from rollwave.core.states import RolloutState
    from rollwave.orchestration.runtime import Runtime, default_verifier
    from rollwave.orchestration.secrets import workspace_secret_resolver
    from rollwave.orchestration.worker import Worker
    from rollwave.services import releases, rollouts
    from rollwave.services.context import App
    from rollwave.storage import rollouts as repo
    from rollwave.storage.events import list_events
    from rollwave.storage.tables import rollouts as rollouts_table

    reset_state(workspace, database, delete=reset == "delete")
    timings: dict[str, float] = {}
    t = time.perf_counter()
    app = App.open(workspace, database=database, actor="bench")
    app.workspace()
    app.db()
    timings["open_workspace_and_db_s"] = time.perf_counter() - t
    t = time.perf_counter()
    release = releases.create_release(app, {"web": "1.0"})
    timings["create_release_s"] = time.perf_counter() - t

    t = time.perf_counter()
    rt = Runtime(app=app, verifier=default_verifier(),
                 resolve_secrets=workspace_secret_resolver(app))
    worker = Worker(rt)  # the default tick (0.2 s), as `rollwave worker` runs it
    worker.start()
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True, name="bench-worker")
    thread.start()
    timings["worker_start_s"] = time.perf_counter() - t

    cpu0 = os.times()
    t0 = time.perf_counter()
    record = rollouts.start(app, release.id)
    timings["rollouts_start_call_s"] = time.perf_counter() - t0
    deadline = t0 + timeout
    state = record.state
    # Poll only the state column: decoding the whole rollout row (its plan is a JSON document
    # of every target) every 10 ms would itself cost a large share of the process's CPU.
    query = sa.select(rollouts_table.c.state).where(rollouts_table.c.id == record.id)
    while time.perf_counter() < deadline:
        with app.db().read() as conn:
            state = RolloutState(conn.execute(query).scalar_one())
        if state.terminal or state == RolloutState.PAUSED:
            break
        time.sleep(0.01)
    t1 = time.perf_counter()
    cpu1 = os.times()
    timings["wall_s"] = t1 - t0
    if state.terminal:
        # The rollout's state is recorded by its last step; DBOS then records the workflow's
        # outcome. Let it finish before shutting DBOS down (not part of the timed figure).
        DBOS.retrieve_workflow(record.id).get_result()
        timings["workflow_done_s"] = time.perf_counter() - t0

    stop.set()
    thread.join(timeout=30)
    worker.close()

    with app.db().read() as conn:
        final = repo.get_rollout(conn, record.id)
        events = list_events(conn, rollout_id=record.id, limit=100_000)
        targets = repo.targets(conn, record.id)
    assert final is not None
    counts: dict[str, int] = {}
    for target in targets:
        counts[target.state.value] = counts.get(target.state.value, 0) + 1
    created = next(e.at for e in events if e.kind == "rollout.created")

    def first(kind: str) -> float | None:
        at = next((e.at for e in events if e.kind == kind), None)
        return (at - created).total_seconds() if at else None

    def last(kind: str) -> float | None:
        at = next((e.at for e in reversed(events) if e.kind == kind), None)
        return (at - created).total_seconds() if at else None

    kinds: dict[str, int] = {}
    for event in events:
        kinds[event.kind] = kinds.get(event.kind, 0) + 1
    result = {
        "database": "postgresql" if database else "sqlite",
        "rollout": record.id,
        "state": final.state.value,
        "waiting_for": final.waiting_for,
        "summary": final.summary,
        "targets": counts,
        "events": kinds,
        "timeline_s": {  # from the rollout.created event
            "picked_up": first("rollout.running"),
            "first_deploying": first("instance.deploying"),
            "last_deploying": last("instance.deploying"),
            "last_succeeded": last("instance.succeeded"),
            "last_held": last("instance.held"),
            "end": (final.finished_at - created).total_seconds() if final.finished_at else None,
        },
        "cpu_s": {"user": cpu1.user - cpu0.user, "system": cpu1.system - cpu0.system,
                  "children_user": cpu1.children_user - cpu0.children_user,
                  "children_system": cpu1.children_system - cpu0.children_system},
        **{k: round(v, 4) for k, v in timings.items()},
    }
    app.close()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--database", default=None, help="postgresql://... (default: SQLite)")
    parser.add_argument("--health-dir", type=Path, default=None,
                        help="serve this directory on --port while the rollout runs")
    parser.add_argument("--port", type=int, default=18999)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--reset", choices=["move", "delete"], default="move",
                        help="how the previous run's state is cleared (see reset_state)")
    parser.add_argument("--what-if", choices=["shared-ssl"], default=None,
                        help="NOT the real path: patch one known cost away (see shared_ssl)")
    args = parser.parse_args(argv)
    os.environ.setdefault("ROLLWAVE_DBOS_LOG_LEVEL", "ERROR")
    if args.what_if == "shared-ssl":
        shared_ssl()
    server = start_health_server(args.health_dir, args.port) if args.health_dir else None
    try:
        result = run(args.workspace.resolve(), args.database, args.timeout, args.reset)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
    result["what_if"] = args.what_if
    print(json.dumps(result))


if __name__ == "__main__":
    main()

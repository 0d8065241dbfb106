"""Phase 2: the flag server as ``rollwave serve`` mounts it — database store, Rollwave auth.

    .venv/bin/python bench/flags/bench_db.py [--duration 10] [--writes 100] [--postgres URL]

For the in-memory store (phase 1's router, no auth) and for the database store on SQLite (and
PostgreSQL when ``--postgres postgresql://…`` is given; a fresh database is created), each
served by ``bench/flags/serve_db.py`` (one uvicorn worker) in its own process:

1. OFREP single-flag evaluations under load: ``wrk -t1 -c32`` over 10,000 rotating contexts,
   with a viewer's API token on every request for the database mounts;
2. change propagation to the Python SDK connected over the SSE stream, timed from just before
   each write until the SDK's next evaluation returns the new answer:
   *API* — ``PUT /api/v1/flags/…`` on the server; *other process* — a write through a
   separate ``DatabaseFlagStore`` in this benchmark process (as ``rollwave flags set`` makes
   it), which the server only learns about through its revision watcher (SQLite: polling every
   0.1 s; PostgreSQL: LISTEN/NOTIFY).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import peers  # noqa: E402
from bench_server import free_port, run_wrk  # noqa: E402

from rollwave.flags.dbstore import DatabaseFlagStore  # noqa: E402
from rollwave.flags.model import Flag  # noqa: E402
from rollwave.sdk.client import RollwaveClient  # noqa: E402
from rollwave.services import access  # noqa: E402
from rollwave.services.context import App  # noqa: E402
from rollwave.workspace.scaffold import write_workspace  # noqa: E402


def flag_body(targeted: bool) -> dict[str, Any]:
    body = {**peers.rollwave_flag(), "enabled": False, "environments": {"prod": {}}}
    body["rules"] = [dict(body["rules"][0])]
    body["rules"][0]["when"] = [{"attribute": "customer", "op": "in",
                                 "values": peers.TARGETED + (["initech"] if targeted else [])}]
    return body


def start(args: list[str], port: int, headers: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(HERE / "serve_db.py"), "--port", str(port),
                             *args])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/flags", headers=headers,
                         timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:  # open SSE streams hold a graceful shutdown
        server.kill()
        server.wait(10)


def wrk_script(token: str | None) -> Path:
    script = Path("bench/out/ofrep-auth.lua")
    script.parent.mkdir(parents=True, exist_ok=True)
    header = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
    script.write_text(header + (HERE / "ofrep.lua").read_text())
    return script


def propagation(base: str, token: str | None, write: Any, writes: int) -> list[float]:
    client = RollwaveClient(base, environment="prod", token=token)
    assert client.wait_until_ready(20), "SDK did not load the snapshot"
    changed = threading.Event()
    client.on_change(lambda snapshot: changed.set())
    context = {"targetingKey": "user-x", "customer": "initech"}
    samples = []
    for i in range(writes):
        targeted = client.boolean(peers.KEY, context) is False
        changed.clear()
        began = time.perf_counter()
        write(targeted)
        while client.boolean(peers.KEY, context) is not targeted:
            changed.wait(0.5)
            changed.clear()
        samples.append((time.perf_counter() - began) * 1000)
        time.sleep(0.02 + random.random() * 0.05)  # writes do not line up with polls
        if i % 25 == 24:
            print(f"#   {i + 1} writes", file=sys.stderr, flush=True)
    client.close()
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"n": len(ordered), "p50": statistics.median(ordered),
            "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
            "max": ordered[-1]}


def database_case(name: str, url: str, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    app = App(root=root, database_url=url, actor="bench")
    access.create_user(app, "sdk", ["viewer"])
    access.create_user(app, "ops", ["deployer"])
    reader = access.create_token(app, "sdk", "bench").secret
    writer = access.create_token(app, "ops", "bench").secret
    store = DatabaseFlagStore(app.db())
    store.put_flag(Flag.model_validate(flag_body(False)), actor="bench")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {reader}"}
    server = start(["--workspace", str(root), "--database", url], port, headers)
    try:
        load = run_wrk(f"{base}/ofrep/v1/evaluate/flags/{peers.KEY}?environment=prod",
                       args.duration, wrk_script(reader))
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {writer}"}) as http:
            def api_write(targeted: bool) -> None:
                http.put(f"/api/v1/flags/{peers.KEY}", json=flag_body(targeted)) \
                    .raise_for_status()
            api = propagation(base, reader, api_write, args.writes)

        def other_process(targeted: bool) -> None:
            store.put_flag(Flag.model_validate(flag_body(targeted)), actor="cli")
        other = propagation(base, reader, other_process, args.writes)
    finally:
        stop(server)
        app.close()
    return {"name": name, "ofrep": {k: v for k, v in load.items() if k != "raw"},
            "api_ms": summary(api), "other_process_ms": summary(other)}


def memory_case(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start(["--memory"], port, {})
    try:
        load = run_wrk(f"{base}/ofrep/v1/evaluate/flags/{peers.KEY}", args.duration,
                       wrk_script(None))
        with httpx.Client(base_url=base) as http:
            def api_write(targeted: bool) -> None:
                http.put(f"/api/v1/flags/{peers.KEY}", json=flag_body(targeted)) \
                    .raise_for_status()
            api = propagation(base, None, api_write, args.writes)
    finally:
        stop(server)
    return {"name": "in-memory store, no auth (phase 1)",
            "ofrep": {k: v for k, v in load.items() if k != "raw"}, "api_ms": summary(api)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--writes", type=int, default=100)
    parser.add_argument("--postgres", default=os.environ.get("ROLLWAVE_BENCH_POSTGRES"))
    args = parser.parse_args()
    results = [memory_case(args)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        write_workspace(root, {"project": "bench", "environments": {"prod": {}},
                               "services": {"web": {"deployer": "local"}},
                               "deployers": {"local": {"kind": "memory"}},
                               "policies": {"standard": {"waves": [
                                   {"name": "all", "select": "rest"}]}}}, [])
        results.append(database_case("database store, SQLite, token auth",
                                     f"sqlite:///{Path(tmp) / 'rw.db'}", root, args))
        if args.postgres:
            import sqlalchemy as sa

            name = f"rw_bench_{os.getpid()}"
            admin = sa.create_engine(args.postgres.replace("postgresql://",
                                                           "postgresql+psycopg://")
                                     + "/postgres", isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            try:
                results.append(database_case("database store, PostgreSQL, token auth",
                                             f"{args.postgres}/{name}", root, args))
            finally:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print("\n| server | OFREP req/s (wrk -c32) | p50 | p99 | API write → SDK p50 / p99 / max "
          "| other-process write → SDK p50 / p99 / max |")
    print("|---|---:|---:|---:|---|---|")
    for r in results:
        lat = r["ofrep"]["latency"]
        other = r.get("other_process_ms")
        api = r["api_ms"]
        print(f"| {r['name']} | {r['ofrep']['rps']:,.0f} | {lat.get('50')} | {lat.get('99')} "
              f"| {api['p50']:.1f} / {api['p99']:.1f} / {api['max']:.1f} ms | "
              + (f"{other['p50']:.1f} / {other['p99']:.1f} / {other['max']:.1f} ms"
                 if other else "—") + " |")
    out = Path("bench/out/flags-db.json")
    out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

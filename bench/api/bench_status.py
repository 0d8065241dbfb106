"""Requests/s and latency of GET /api/v1/rollouts/{id} under load, on loopback.

Builds a workspace whose rollout of ``--instances`` instances has finished (``fleet.py``), then
for each ``--workers`` count starts ``rollwave serve --workers N --no-access-log`` (orchestrator
included, idle) and drives the status endpoint with ``wrk`` (Debian's; one untimed warm-up run,
then ``--runs`` timed runs of ``--duration`` seconds). With ``--running`` it also measures a
rollout that is in progress (memory deployer with a delay), where the view changes under the
load and the per-version cache of the endpoint is invalidated continuously.

Results: a Markdown table on stdout and ``bench/out/api/results.json``.

    .venv/bin/python bench/api/bench_status.py [--instances 300] [--workers 1,2]
        [--connections 16] [--threads 2] [--duration 15] [--runs 3] [--running]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OUT = REPO / "bench" / "out" / "api"
sys.path.insert(0, str(HERE))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(root: Path, workers: int, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    import httpx

    port = _free_port()
    command = [sys.executable, "-m", "rollwave", "-w", str(root), "serve", "--port", str(port),
               "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"serve did not start:\n{log.read_text()}")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def _wrk(url: str, token: str, threads: int, connections: int, duration: int) -> dict[str, Any]:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
               "-H", f"Authorization: Bearer {token}", url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = {p: _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": pct.get("50"), "p90_ms": pct.get("90"),
            "p99_ms": pct.get("99"), "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else None, "raw": out}


def _cpu_seconds(pgid: int) -> float:
    """User + system CPU of every process in the serve process group (uvicorn workers too)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 of stat: the process group
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def measure(root: Path, rollout_id: str, token: str, workers: int, args: argparse.Namespace,
            label: str) -> dict[str, Any]:
    log = OUT / f"serve-{label}-{workers}.log"
    proc, port = _serve(root, workers, log)
    url = f"http://127.0.0.1:{port}/api/v1/rollouts/{rollout_id}"
    try:
        import httpx

        body = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        body.raise_for_status()
        size = len(body.content)
        targets = len(body.json()["targets"])
        _wrk(url, token, args.threads, args.connections, 5)  # warm-up
        runs = []
        for _ in range(args.runs):
            before = _load()
            cpu = _cpu_seconds(proc.pid)
            result = _wrk(url, token, args.threads, args.connections, args.duration)
            requests = result["rps"] * args.duration
            result["server_cpu_ms_per_request"] = (_cpu_seconds(proc.pid) - cpu) * 1000 / max(
                requests, 1)
            result["load_before"] = before
            runs.append(result)
            print(f"  {label} workers={workers}: {result['rps']:.0f} req/s, "
                  f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, server CPU "
                  f"{result['server_cpu_ms_per_request']:.2f} ms/request "
                  f"(load {before})", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    med = statistics.median
    return {"label": label, "workers": workers, "bytes": size, "targets": targets,
            "rps": med(r["rps"] for r in runs), "p50_ms": med(r["p50_ms"] for r in runs),
            "p99_ms": med(r["p99_ms"] for r in runs),
            "cpu_ms": med(r["server_cpu_ms_per_request"] for r in runs),
            "non_2xx": sum(r["non_2xx"] for r in runs), "runs": runs}


def _running_rollout(root: Path, instances: int) -> tuple[str, str]:
    """A second release to the same fleet, in progress under a slow memory deployer."""
    from rollwave.services import access, releases, rollouts
    from rollwave.services.context import App

    text = (root / "rollwave.yaml").read_text()
    (root / "rollwave.yaml").write_text(text.replace("kind: memory", "kind: memory\n    delay: 30"))
    app = App.open(root, actor="bench")
    release = releases.create_release(app, {"web": "2.1", "api": "1.5"})
    record = rollouts.start(app, release.id)
    token = access.create_token(app, "bench", "running").secret
    app.close()
    return record.id, token


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--running", action="store_true")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install -y wrk")
    from fleet import build

    OUT.mkdir(parents=True, exist_ok=True)
    root = OUT / "ws"
    rollout_id, token = build(root, args.instances)
    results = [measure(root, rollout_id, token, int(w), args, "finished")
               for w in args.workers.split(",")]
    if args.running:
        running_id, token2 = _running_rollout(root, args.instances)
        results += [measure(root, running_id, token2, int(w), args, "running")
                    for w in args.workers.split(",")]
    meta = {"instances": args.instances, "connections": args.connections,
            "threads": args.threads, "duration": args.duration, "runs": args.runs,
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "command": " ".join([".venv/bin/python", "bench/api/bench_status.py",
                                 *sys.argv[1:]])}
    (OUT / "results.json").write_text(json.dumps({"meta": meta, "results": [
        {k: v for k, v in r.items() if k != "runs"} | {"runs": [
            {k: v for k, v in run.items() if k != "raw"} for run in r["runs"]]}
        for r in results]}, indent=2))
    print("\n| rollout | uvicorn workers | response | req/s (median) | p50 ms | p99 ms | "
          "server CPU ms/request | non-2xx |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['label']} ({r['targets']} instances) | {r['workers']} | "
              f"{r['bytes'] / 1024:.0f} KiB | {r['rps']:.0f} | {r['p50_ms']:.1f} | "
              f"{r['p99_ms']:.1f} | {r['cpu_ms']:.2f} | {r['non_2xx']} |")


if __name__ == "__main__":
    main()

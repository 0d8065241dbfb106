"""OFREP server throughput/latency under load, and change propagation to the SDK.

    bench/.venv-flags/bin/python bench/flags/bench_server.py [--duration 10] [--writes 200]

1. Starts ``bench/flags/serve.py`` (one uvicorn worker) in its own process on a free loopback
   port and loads it with ``wrk`` (one thread, 32 connections, 10,000 rotating contexts) on
   ``POST /ofrep/v1/evaluate/flags/new-checkout``, then on the bulk endpoint. Reports
   requests/s and latency percentiles as wrk measures them.
2. Connects the Python SDK (SSE stream) and makes ``--writes`` flag changes through the REST
   API, timing from just before each write until the SDK's next evaluation returns the new
   answer; reports p50/p99/max.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import peers  # noqa: E402

from rollwave.sdk.client import RollwaveClient  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(HERE / "serve.py"), "--port", str(port)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/v1/flags", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def run_wrk(url: str, duration: int, lua: Path | None, body: str | None = None,
            connections: int = 32) -> dict:  # type: ignore[type-arg]
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    script = lua
    if body is not None:
        script = Path("bench/out/ofrep-bulk.lua")
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = '
                          f'"application/json"\nwrk.body = {json.dumps(body)}\n')
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    print(out, file=sys.stderr)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = {p: m.group(1) for p in ("50", "90", "99")
               if (m := re.search(rf"\s{p}(?:\.000)?%\s+(\S+)", out))}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "latency": latency, "non_2xx": int(errors.group(1)) if errors else 0,
            "raw": out}


def propagation(base: str, writes: int) -> list[float]:
    client = RollwaveClient(base, environment="prod")
    assert client.wait_until_ready(10), "SDK did not load the snapshot"
    changed = threading.Event()
    client.on_change(lambda snapshot: changed.set())
    context = {"targetingKey": "user-x", "customer": "initech"}
    flag = {**peers.rollwave_flag(), "enabled": False, "environments": {"prod": {}}}
    samples = []
    with httpx.Client(base_url=base) as http:
        for i in range(writes):
            targeted = i % 2 == 0
            flag["rules"][0]["when"][0]["values"] = peers.TARGETED + (["initech"] if targeted
                                                                      else [])
            changed.clear()
            start = time.perf_counter()
            http.put(f"/api/v1/flags/{peers.KEY}", json=flag).raise_for_status()
            while client.boolean(peers.KEY, context) is not targeted:
                changed.wait(0.5)
                changed.clear()
            samples.append((time.perf_counter() - start) * 1000)
            time.sleep(0.01)
    client.close()
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--writes", type=int, default=200)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(port)
    results: dict = {}  # type: ignore[type-arg]
    try:
        light = run_wrk(f"{base}/ofrep/v1/evaluate/flags/{peers.KEY}", args.duration,
                        HERE / "ofrep.lua", connections=4)
        single = run_wrk(f"{base}/ofrep/v1/evaluate/flags/{peers.KEY}", args.duration,
                         HERE / "ofrep.lua")
        bulk = run_wrk(f"{base}/ofrep/v1/evaluate/flags", args.duration, None,
                       body=json.dumps({"context": {"targetingKey": "user-1",
                                                    "customer": "initech"}}))
        samples = propagation(base, args.writes)
    finally:
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    results = {"ofrep_single_c4": {k: v for k, v in light.items() if k != "raw"},
               "ofrep_single": {k: v for k, v in single.items() if k != "raw"},
               "ofrep_bulk": {k: v for k, v in bulk.items() if k != "raw"},
               "propagation_ms": {"n": len(samples), "p50": statistics.median(samples),
                                  "p99": p99, "max": samples[-1]}}
    print("## OFREP (wrk -t1, one uvicorn worker with uvloop+httptools, loopback)")
    print("| endpoint | connections | requests/s | p50 | p90 | p99 | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in (("single flag | 4", light), ("single flag | 32", single),
                    ("bulk (1 flag) | 32", bulk)):
        lat = r["latency"]
        print(f"| {name} | {r['rps']:,.0f} | {lat.get('50')} | {lat.get('90')} | "
              f"{lat.get('99')} | {r['non_2xx']} |")
    prop = results["propagation_ms"]
    print(f"\n## Change propagation, API write → SDK evaluation ({prop['n']} writes)")
    print(f"p50 {prop['p50']:.1f} ms, p99 {prop['p99']:.1f} ms, max {prop['max']:.1f} ms "
          f"(target p99 ≤ 100 ms: {'met' if prop['p99'] <= 100 else 'MISSED'})")
    out = Path("bench/out/flags-server.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

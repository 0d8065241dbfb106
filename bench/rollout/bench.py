"""Rollout benchmark: 1,000 instances at parallelism 50, Rollwave vs ansible-core, alternately.

Each round runs, one after the other (never at the same time):

1. Rollwave on SQLite     (``rollwave_run.py``: from ``rollouts.start`` to the terminal state),
   verification profile with no checks
2. Rollwave on PostgreSQL (same, ``--database``; skipped with ``--no-postgres``)
3. both again with one HTTP health check per instance (``+health``; skipped with ``--no-health``)
4. optionally Rollwave on SQLite+health with ``--what-if shared-ssl`` (NOT the real path)
5. ansible-core           (``ansible-playbook`` wall time, ``serial``/``forks`` = parallelism)

and the order of the systems rotates from round to round. Reports min / median / max per
system, the ideal (batches x sleep), Rollwave's median against the ideal, and ansible's median
against Rollwave's (plus the median of the per-round ratios). Everything lands in
``bench/out/rollout/`` (git-ignored): the generated fleet, logs, and ``results.json``.

Usage (from the repo root; see run.sh):
    .venv/bin/python bench/rollout/bench.py [--runs 5] [--instances 1000] [--parallelism 50]
        [--sleep 0.1] [--postgres URL | --no-postgres] [--no-health] [--what-if]
        [--no-ansible]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OUT = REPO / "bench" / "out" / "rollout"
ANSIBLE_VENV = REPO / "bench" / ".venv-ansible"
DELETE_ROW = "rollwave-sqlite, previous state deleted just before"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/rollwave_bench_rollout"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    ansible = ""
    if (ANSIBLE_VENV / "bin" / "ansible-playbook").exists():
        out = subprocess.run([str(ANSIBLE_VENV / "bin" / "ansible-playbook"), "--version"],
                             capture_output=True, text=True, check=False).stdout
        ansible = out.splitlines()[0] if out else ""
    from importlib.metadata import version

    import dbos  # noqa: F401  (version below)

    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                          text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=REPO,
                           capture_output=True, text=True, check=False).stdout.split("\n")
    return {"git_head": head, "src_files_modified": len([d for d in dirty if d.strip()]),
            "cpus": os.cpu_count(), "cpu": cpu, "memory": mem, "python": platform.python_version(),
            "kernel": platform.release(), "dbos": version("dbos"),
            "sqlalchemy": version("sqlalchemy"), "ansible": ansible,
            "sqlite": __import__("sqlite3").sqlite_version}


def run_rollwave(fleet: Path, workspace: str, database: str | None, what_if: bool,
                 log: Path, reset: str = "move") -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "rollwave_run.py"), str(fleet / workspace),
           "--health-dir", str(fleet / "health"), "--reset", reset]
    if database:
        cmd += ["--database", database]
    if what_if:
        cmd += ["--what-if", "shared-ssl"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    whole = time.perf_counter() - started
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        raise SystemExit(f"rollwave run failed ({proc.returncode}); see {log}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = whole
    if result["state"] != "succeeded":
        print(f"  warning: rollout ended {result['state']}: {result['summary'] or ''}",
              file=sys.stderr)
    return result


def run_ansible(fleet: Path, log: Path, instances: int) -> dict[str, Any]:
    play_dir = fleet / "ansible"
    env = {**os.environ, "ANSIBLE_CONFIG": str(play_dir / "ansible.cfg"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(OUT / "ansible-tmp"),
           "ANSIBLE_HOME": str(OUT / "ansible-home")}
    cmd = [str(ANSIBLE_VENV / "bin" / "ansible-playbook"), "-i", "inventory.yml",
           "playbook.yml"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(cmd, cwd=play_dir, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, check=False)
        wall = time.perf_counter() - started
        fh.write(proc.stdout[-20000:] + "\n")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    changed = len(re.findall(r"^\S+\s+: ok=1\s+changed=1\s+unreachable=0\s+failed=0",
                             proc.stdout, flags=re.M))
    if proc.returncode != 0 or changed != instances:
        raise SystemExit(f"ansible-playbook failed (exit {proc.returncode}, {changed} of "
                         f"{instances} hosts changed); see {log}")
    return {"wall_s": wall, "hosts_changed": changed,
            "cpu_s": {"user": after.ru_utime - before.ru_utime,
                      "system": after.ru_stime - before.ru_stime}}


def summary(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--per-customer", type=int, default=1)
    parser.add_argument("--parallelism", type=int, default=50)
    parser.add_argument("--sleep", type=float, default=0.1)
    parser.add_argument("--postgres", default=DEFAULT_PG)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-ansible", action="store_true")
    parser.add_argument("--no-health", action="store_true",
                        help="skip the rows with one HTTP health check per instance")
    parser.add_argument("--reset", choices=["move", "delete"], default="move",
                        help="clear the previous run's state by moving it aside (default; "
                             "deleted after the last round) or by deleting it before the run")
    parser.add_argument("--delete-row", action="store_true",
                        help="also run Rollwave/SQLite with the previous state deleted just "
                             "before the run (shows what that set-up costs; labelled)")
    parser.add_argument("--what-if", action="store_true",
                        help="also run Rollwave/SQLite+health with one SSL context shared by "
                             "all verification clients (NOT the real path; labelled)")
    args = parser.parse_args(argv)

    OUT.mkdir(parents=True, exist_ok=True)
    fleet = OUT / "fleet"
    subprocess.run([sys.executable, str(HERE / "fleet.py"), str(fleet),
                    "--instances", str(args.instances), "--per-customer", str(args.per_customer),
                    "--parallelism", str(args.parallelism), "--command", f"sleep {args.sleep:g}"],
                   check=True)
    if not args.no_ansible and not (ANSIBLE_VENV / "bin" / "ansible-playbook").exists():
        raise SystemExit("ansible-core is not installed: bash bench/rollout/setup_ansible.sh")
    log = OUT / "bench.log"
    log.write_text("")
    # name -> (workspace folder, database URL or None for SQLite, what-if shared SSL)
    rollwave: dict[str, tuple[str, str | None, bool]] = {
        "rollwave-sqlite": ("workspace", None, False)}
    if not args.no_postgres:
        rollwave["rollwave-postgresql"] = ("workspace", args.postgres, False)
    if args.delete_row:
        rollwave[DELETE_ROW] = ("workspace", None, False)
    if not args.no_health:
        rollwave["rollwave-sqlite+health"] = ("workspace-health", None, False)
        if not args.no_postgres:
            rollwave["rollwave-postgresql+health"] = ("workspace-health", args.postgres, False)
        if args.what_if:
            rollwave["WHAT-IF rollwave-sqlite+health, shared SSL context"] = (
                "workspace-health", None, True)
    systems = list(rollwave)
    if not args.no_ansible:
        systems.append("ansible-core")

    def one(system: str) -> dict[str, Any]:
        if system == "ansible-core":
            return run_ansible(fleet, log, args.instances)
        folder, database, what_if = rollwave[system]
        reset = "delete" if system == DELETE_ROW else args.reset
        return run_rollwave(fleet, folder, database, what_if, log, reset)

    info = machine()
    print(f"machine: {info}", file=sys.stderr)
    print("warm-up: one Rollwave/SQLite run (not counted)", file=sys.stderr)
    one("rollwave-sqlite")
    rounds: list[dict[str, Any]] = []
    for i in range(args.runs):
        order = systems[i % len(systems):] + systems[:i % len(systems)]
        entry: dict[str, Any] = {}
        for system in order:
            load = os.getloadavg()[0]
            result = one(system)
            result["load_before"] = load
            result["load_after"] = os.getloadavg()[0]
            entry[system] = result
            extra = ""
            if "cpu_s" in result and system != "ansible-core":
                extra = (f" cpu {result['cpu_s']['user'] + result['cpu_s']['system']:.1f}s"
                         f" state {result['state']}")
            print(f"round {i + 1}/{args.runs} {system:<36} {result['wall_s']:7.2f} s "
                  f"(load {load:.1f}){extra}", file=sys.stderr)
        rounds.append(entry)

    batches = math.ceil(args.instances / args.parallelism)
    ideal = batches * args.sleep
    walls = {s: [r[s]["wall_s"] for r in rounds] for s in systems}
    stats = {s: summary(v) for s, v in walls.items()}
    report: dict[str, Any] = {
        "machine": info, "instances": args.instances, "per_customer": args.per_customer,
        "parallelism": args.parallelism, "sleep": args.sleep, "batches": batches,
        "ideal_s": ideal, "runs": args.runs, "stats": stats, "rounds": rounds}
    print(f"\n{args.instances} instances, parallelism {args.parallelism}, sleep "
          f"{args.sleep:g} s: ideal {batches} x {args.sleep:g} s = {ideal:.2f} s; "
          f"{args.runs} rounds")
    print("| system | min s | median s | max s | median / ideal |")
    print("|---|---:|---:|---:|---:|")
    for s in systems:
        st = stats[s]
        print(f"| {s} | {st['min']:.2f} | {st['median']:.2f} | {st['max']:.2f} | "
              f"{st['median'] / ideal:.1f}x |")
    if "ansible-core" in systems:
        for s in systems:
            if s == "ansible-core":
                continue
            ratio = stats["ansible-core"]["median"] / stats[s]["median"]
            pairs = statistics.median(r["ansible-core"]["wall_s"] / r[s]["wall_s"] for r in rounds)
            report.setdefault("ansible_over", {})[s] = {"ratio_of_medians": ratio,
                                                         "median_of_round_ratios": pairs}
            print(f"ansible-core median / {s} median = {ratio:.1f}x "
                  f"(median of per-round ratios {pairs:.1f}x)")
    text = json.dumps(report, indent=1, default=str)
    (OUT / "results.json").write_text(text)  # the latest, and one per run that is kept
    kept = OUT / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json"
    kept.write_text(text)
    print(f"details: {kept}; logs: {log}")
    shutil.rmtree(OUT / "trash", ignore_errors=True)  # earlier runs' state (rollwave_run.py)


if __name__ == "__main__":
    main()

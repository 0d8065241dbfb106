"""Profile one benchmark rollout: where the orchestrator's CPU goes, per function.

Two modes (neither is a benchmark figure: both slow the run down):

``--mode cprofile`` (default): every thread the run starts (the orchestrator's worker thread,
DBOS's workflow and background threads, the wave's 50 deploy threads; not the main thread,
which only sets up and polls) runs under its own ``cProfile.Profile`` timed with
``time.thread_time``. Figures are **CPU** seconds of the threads themselves (time spent waiting
for the GIL, a lock, a child process or the network is not counted), with exact call counts,
merged over all threads, sorted by cumulative CPU; saved as a pstats file. The profiler
inflates pure-Python code (about 3x) much more than C code, so read shares with that in mind.

``--mode timers``: no profiler; a handful of Rollwave functions on the per-instance path are
wrapped to add up their calls and their thread CPU time (``time.thread_time``, two clock reads
per call): close to the real CPU cost of each, inclusive of what they call. On SQLite it also
times the process-wide write lock ``Database.begin`` takes: how long it is held (wall) and
waited for, summed over the run's write transactions.

``--what-if shared-ssl``: NOT the real path. Replaces ``rollwave.verification.http.client`` by
the same ``httpx.Client`` built with one SSL context created once, to show what the
verification's per-instance SSL set-up costs. Results with it are labelled.

Usage: python bench/rollout/profile_rollout.py WORKSPACE --health-dir DIR
           [--mode cprofile|timers] [--what-if shared-ssl] [--database postgresql://...]
           [--out bench/out/rollout/rollout.pstats] [--top 60]
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import os
import pstats
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rollwave_run

_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()
_original_run = threading.Thread.run


def _profiled_run(self: threading.Thread) -> None:
    profile = cProfile.Profile(time.thread_time)
    with _lock:
        _profiles.append(profile)
    profile.enable()
    try:
        _original_run(self)
    finally:
        profile.disable()


# --- timers ------------------------------------------------------------------------------------

_totals: dict[str, list[float]] = {}  # name -> [calls, cpu seconds]


def _timed(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    entry = _totals.setdefault(name, [0, 0.0])

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return func(*args, **kwargs)
        finally:
            spent = time.thread_time() - start
            with _lock:
                entry[0] += 1
                entry[1] += spent

    return wrapper


def install_timers() -> None:
    from rollwave import verification
    from rollwave.adapters.deployers.command import CommandDeployer
    from rollwave.orchestration import instance, runtime, wave
    from rollwave.ports.metrics import MetricSources
    from rollwave.storage import fleet_state, rollouts
    from rollwave.verification import http, probes

    def patch(owner: Any, attr: str, name: str) -> None:
        setattr(owner, attr, _timed(name, getattr(owner, attr)))

    patch(wave, "_safe_drive", "wave._safe_drive (one instance, everything)")
    patch(instance, "desired_state", "instance.desired_state (release config blobs)")
    patch(instance, "_deploy_step", "instance._deploy_step")
    patch(instance, "_verify_step", "instance._verify_step")
    patch(instance, "_transition", "instance._transition (a target state change + event)")
    patch(instance, "append_event", "instance.progress -> append_event (progress event)")
    patch(rollouts, "add_deploy_log", "storage.rollouts.add_deploy_log")
    patch(fleet_state, "record_deployed", "storage.fleet_state.record_deployed")
    patch(CommandDeployer, "deploy", "CommandDeployer.deploy (incl. running sleep 0.1)")
    patch(CommandDeployer, "actual", "CommandDeployer.actual")
    patch(http, "client", "verification.http.client (httpx.Client per instance)")
    patch(probes, "fetch", "verification.http.fetch (the GET /health)")
    # the default verifier imports these from the package each time it is called
    patch(verification, "verify_instance", "verification.verify_instance")
    MetricSources.default = classmethod(  # type: ignore[method-assign]
        _timed("MetricSources.default (built per verification)", MetricSources.default.__func__))
    _ = runtime


class TimedLock:
    """Stands in for ``Database._write_lock`` (an RLock): wall time waited for and held."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.acquired = 0
        self.waited = 0.0
        self.held = 0.0
        self._depth = threading.local()

    def __enter__(self) -> TimedLock:
        start = time.perf_counter()
        self.inner.acquire()
        now = time.perf_counter()
        depth = getattr(self._depth, "n", 0)
        if depth == 0:
            self.acquired += 1
            self.waited += now - start
            self._depth.since = now
        self._depth.n = depth + 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth.n -= 1
        if self._depth.n == 0:
            self.held += time.perf_counter() - self._depth.since
        self.inner.release()


_write_locks: list[TimedLock] = []


def time_write_lock() -> None:
    """SQLite only: measure how long the process-wide write lock is held and waited for."""
    from rollwave.storage.db import Database

    original = Database.__init__

    def init(self: Database, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if self._write_lock is not None:
            lock = TimedLock(self._write_lock)
            _write_locks.append(lock)
            self._write_lock = lock  # type: ignore[assignment]

    Database.__init__ = init  # type: ignore[method-assign]


def print_timers(instances: int) -> None:
    print(f"{'function':<62} {'calls':>7} {'CPU s':>8} {'CPU ms/call':>12}")
    for name, (calls, cpu) in sorted(_totals.items(), key=lambda kv: -kv[1][1]):
        per = 1000 * cpu / calls if calls else 0.0
        print(f"{name:<62} {int(calls):>7} {cpu:>8.2f} {per:>12.2f}")
    print(f"(per instance: divide the CPU s by {instances})")
    for lock in _write_locks:
        if lock.acquired:
            print(f"SQLite write lock (Database.begin): {lock.acquired} write transactions, "
                  f"held {lock.held:.2f} s wall in all ({1000 * lock.held / lock.acquired:.2f} ms "
                  f"each), waited for {lock.waited:.2f} s in all (summed over threads)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--database", default=None)
    parser.add_argument("--health-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=18999)
    parser.add_argument("--mode", choices=["cprofile", "timers"], default="cprofile")
    parser.add_argument("--what-if", choices=["shared-ssl"], default=None)
    parser.add_argument("--out", type=Path, default=Path("bench/out/rollout/rollout.pstats"))
    parser.add_argument("--top", type=int, default=60)
    args = parser.parse_args(argv)
    os.environ.setdefault("ROLLWAVE_DBOS_LOG_LEVEL", "ERROR")
    if args.what_if == "shared-ssl":
        rollwave_run.shared_ssl()
        print("WHAT-IF shared-ssl: verification clients share one SSL context (not the real "
              "path)")
    if args.mode == "timers":
        install_timers()
        time_write_lock()
    else:
        threading.Thread.run = _profiled_run  # type: ignore[method-assign]
    server = rollwave_run.start_health_server(args.health_dir, args.port)
    try:
        result = rollwave_run.run(args.workspace.resolve(), args.database, 600.0)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(json.dumps(result))
    if args.mode == "timers":
        print_timers(sum(result["targets"].values()))
        return
    stats: pstats.Stats | None = None
    for profile in _profiles:
        try:
            stats = pstats.Stats(profile) if stats is None else stats.add(profile)
        except (TypeError, ValueError):  # a thread that never ran any Python code
            continue
    assert stats is not None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    stats.dump_stats(str(args.out))
    print(f"threads profiled: {len(_profiles)}; pstats saved to {args.out}")
    text = io.StringIO()
    pstats.Stats(str(args.out), stream=text).sort_stats("cumulative").print_stats(args.top)
    print(text.getvalue())


if __name__ == "__main__":
    main()

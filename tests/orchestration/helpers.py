"""A memory-deployer workspace and a scripted verifier for orchestration tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rollwave.analysis.results import CheckResult, Outcome, Verdict
from rollwave.core.fleet import FleetInstance
from rollwave.core.model import Verification
from rollwave.orchestration.runtime import Runtime
from rollwave.orchestration.worker import Worker
from rollwave.services.context import App
from rollwave.workspace.scaffold import (
    CustomerSeed,
    customer_document,
    default_policies,
    project_document,
    write_workspace,
)


def make_workspace(root: Path, customers: int = 6, *, policies: dict[str, Any] | None = None,
                   windows: dict[str, list[dict[str, Any]]] | None = None) -> Path:
    seeds = [CustomerSeed("internal", "Internal", tier="internal", tags=["internal"])]
    seeds += [CustomerSeed(f"c{i:02d}", f"Customer {i}", tags=["early-adopter"] if i < 2 else [])
              for i in range(customers - 1)]
    for seed in seeds:
        seed.windows = (windows or {}).get(seed.id, [])
    project = project_document(
        "test", deployers={"local": {"kind": "memory"}},
        policies=policies or default_policies(bake="0s"),
        verification={"default": {"duration": "1s", "interval": "1s"}})
    write_workspace(root, project, [customer_document(s) for s in seeds])
    return root


class ScriptedVerifier:
    """Fails instances whose key is in ``failing`` (for the versions in ``bad_versions``)."""

    def __init__(self) -> None:
        self.failing: dict[str, Outcome] = {}
        self.bad_versions: set[str] = set()
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self.current: Callable[[FleetInstance], Mapping[str, str]] | None = None

    def __call__(self, instance: FleetInstance, profile: Verification,
                 endpoints: Mapping[str, str], should_stop: Callable[[], bool],
                 progress: Callable[[str], None]) -> Verdict:
        with self.lock:
            self.calls.append(instance.key)
        versions = self.current(instance) if self.current else {}
        outcome = self.failing.get(instance.key, Outcome.SUCCESSFUL)
        if outcome != Outcome.SUCCESSFUL and self.bad_versions and not (
                set(versions.values()) & self.bad_versions):
            outcome = Outcome.SUCCESSFUL
        return Verdict.of([CheckResult("scripted", outcome, f"scripted {outcome.value}",
                                       value=0.3 if outcome == Outcome.FAILED else 0.0)])


def run_until_done(app: App, verifier: ScriptedVerifier, *, timeout: float = 60.0) -> None:
    from rollwave.adapters.deployers.memory import MemoryDeployer  # noqa: F401

    rt = Runtime(app=app, verifier=verifier)
    worker = Worker(rt, tick=0.05)
    deployer = rt.deployer("local")
    verifier.current = lambda inst: dict(deployer.actual(inst, list(inst.services)).versions)
    worker.start()
    stop = threading.Event()
    timer = threading.Timer(timeout, stop.set)
    timer.start()
    try:
        from rollwave.orchestration.worker import active_rollouts

        worker.run(stop, until=lambda: not active_rollouts(rt))
    finally:
        timer.cancel()
        worker.close()


class Orchestrator:
    """An in-process worker on a background thread, for tests that act while it runs."""

    def __init__(self, app: App, verifier: ScriptedVerifier, **runtime: Any) -> None:
        self.rt = Runtime(app=app, verifier=verifier,
                          **{"control_poll": 0.05, "max_wait": 0.2, **runtime})
        self.worker = Worker(self.rt, tick=0.05)
        deployer = self.rt.deployer("local")
        verifier.current = lambda inst: dict(deployer.actual(inst, list(inst.services)).versions)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.worker.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> Orchestrator:
        self.worker.start()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.worker.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "",
             describe: Callable[[], object] | None = None) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    detail = describe() if describe else ""
    raise AssertionError(f"timed out waiting for {what or predicate}: {detail}")

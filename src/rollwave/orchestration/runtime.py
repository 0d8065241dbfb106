"""The orchestrator's process-wide runtime: database, workspace, deployers, verification.

DBOS workflows are module-level functions, so they reach the runtime through :func:`get`.
The worker installs one with :func:`install` before launching DBOS; tests install their own
with in-memory deployers and a scripted verifier.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rollwave.adapters.deployers import DeployerEnvironment, registry
from rollwave.analysis.results import CheckResult, Outcome, Verdict
from rollwave.core.fleet import FleetInstance
from rollwave.core.model import Verification
from rollwave.errors import RollwaveError
from rollwave.ports.deployer import Deployer
from rollwave.services.context import App
from rollwave.storage import rollouts as repo
from rollwave.storage.db import Database
from rollwave.workspace.loader import Workspace

#: verify(instance, profile, endpoints by service, should_stop, progress) -> Verdict
Verifier = Callable[[FleetInstance, Verification, Mapping[str, str], Callable[[], bool],
                     Callable[[str], None]], Verdict]

#: resolve(config values) -> (values with secrets resolved, secret values to redact)
SecretResolver = Callable[[Mapping[str, Any]], tuple[dict[str, Any], list[str]]]


def _default_fleet_policy(profile: Verification) -> Any:
    from rollwave.orchestration.monitor import default_policy_factory

    return default_policy_factory(profile)


_default_fleet_policy_ref: Callable[[Verification], Any] = _default_fleet_policy


def _no_secrets(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    return dict(values), []


class DeployerCache:
    """Deployers of a workspace by name, each built once from rollwave.yaml and reused."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._built: dict[str, Deployer] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Deployer:
        with self._lock:
            if name not in self._built:
                workspace = self.app.workspace()
                options = workspace.project.deployers.get(name)
                if options is None:
                    raise RollwaveError(f"no deployer named '{name}' in rollwave.yaml",
                                        hint="declare it under deployers:")
                env = DeployerEnvironment(state_dir=self.app.state_dir,
                                          services=workspace.project.services)
                self._built[name] = registry.create(str(options["kind"]), dict(options), env)
            return self._built[name]


class WorkerStopped(BaseException):
    """Raised inside a rollout workflow when its worker shuts down.

    A ``BaseException`` on purpose: DBOS records an ``Exception`` raised by a workflow or a step
    as its final outcome, but leaves a ``BaseException`` unrecorded. The workflow therefore
    stays pending and the next worker resumes it exactly where it was, while this process can
    exit now instead of waiting in a durable sleep (a paused rollout waits up to an hour).
    """


@dataclass
class Runtime:
    """Everything a rollout step needs, shared by the worker's threads."""

    app: App
    verifier: Verifier
    resolve_secrets: SecretResolver = _no_secrets
    deployer_overrides: dict[str, Deployer] = field(default_factory=dict)
    control_poll: float = 0.25
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The orchestrator's notion of now (windows, freezes, timers); tests move it."""
    max_wait: float = 300.0
    """Longest single durable wait before the clock is read again."""
    fleet_step: float = 5.0
    """How often the embedded collector scrapes every instance for fleet analysis."""
    fleet_policy: Callable[[Verification], Any] = field(
        default=_default_fleet_policy_ref)
    """profile -> rollwave.analysis VerificationPolicy, or None without fleet analysis."""
    blob_cache: dict[str, Any] = field(default_factory=dict, repr=False)
    """Config snapshots by content hash (immutable, so never stale)."""
    _deployers: DeployerCache = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _control_cache: dict[str, tuple[float, set[str]]] = field(default_factory=dict, repr=False)
    stopping: threading.Event = field(default_factory=threading.Event, repr=False)
    """Set when the worker shuts down: workflows leave at their next wait (WorkerStopped)."""
    active_workflows: set[str] = field(default_factory=set, repr=False)
    """Rollouts whose workflow runs in this process now."""

    def __post_init__(self) -> None:
        self._deployers = DeployerCache(self.app)

    @property
    def db(self) -> Database:
        return self.app.db()

    def workspace(self) -> Workspace:
        return self.app.workspace()

    def reload_workspace(self) -> Workspace:
        """Pick up workspace edits (instances added, windows changed) between rollouts.

        Parsing is skipped when the files' content hash is unchanged (a fleet of thousands
        of customer files takes seconds to parse, and a second to hash).
        """
        from rollwave.workspace.loader import workspace_hash

        with self._lock:
            current = self.app._workspace
            if current is not None and workspace_hash(self.app.root) == current.content_hash:
                return current
            return self.app.workspace(reload=True)

    def deployer(self, name: str) -> Deployer:
        """The deployer configured under ``name`` in rollwave.yaml (built once, then reused)."""
        if name in self.deployer_overrides:
            return self.deployer_overrides[name]
        return self._deployers.get(name)

    def pending_actions(self, rollout_id: str) -> set[str]:
        """Unconsumed control actions for a rollout, re-read at most every ``control_poll`` s."""
        now = time.monotonic()
        cached = self._control_cache.get(rollout_id)
        if cached and now - cached[0] < self.control_poll:
            return cached[1]
        with self.db.read() as conn:
            actions = {c.action.value for c in repo.pending_controls(conn, rollout_id)}
        self._control_cache[rollout_id] = (now, actions)
        return actions

    def halt_if_stopping(self) -> None:
        """Leave the workflow (unrecorded, to be resumed elsewhere) if the worker is stopping."""
        if self.stopping.is_set():
            raise WorkerStopped

    def forget_controls(self, rollout_id: str) -> None:
        self._control_cache.pop(rollout_id, None)


_current: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _current  # noqa: PLW0603 - one runtime per orchestrator process, by design
    _current = runtime


def get() -> Runtime:
    if _current is None:
        raise RollwaveError("the orchestrator runtime is not installed",
                            hint="start the orchestrator with `rollwave worker`")
    return _current


def default_verifier(app: App | None = None) -> Verifier:
    """Verification through rollwave.verification: health, smoke, and metric checks read from
    the instance's own /metrics or from the project's metric_sources (Prometheus, ...)."""
    from rollwave.verification import MetricSources, VerificationTarget, verify_instance

    cache: dict[str, MetricSources] = {}

    def sources() -> MetricSources:
        if "built" not in cache:
            if app is None:
                cache["built"] = MetricSources.default()
            else:
                from rollwave.orchestration.secrets import workspace_secret_resolver
                from rollwave.verification.policy import build_metric_sources

                resolve = workspace_secret_resolver(app)

                def secret(reference: str) -> str:
                    values, _ = resolve({"value": {"$secret": reference}})
                    return str(values["value"])

                cache["built"] = build_metric_sources(app.workspace().project, secret)
        return cache["built"]

    def verify(instance: FleetInstance, profile: Verification, endpoints: Mapping[str, str],
               should_stop: Callable[[], bool], progress: Callable[[str], None]) -> Verdict:
        if profile.health is None and not profile.smoke and not profile.metrics:
            return Verdict.of([CheckResult(
                "verification", Outcome.SUCCESSFUL,
                "no checks are configured for this policy; a successful deploy is the only "
                "signal")])
        target = VerificationTarget(instance=instance.key, endpoints=dict(endpoints))
        return verify_instance(target, profile, sources=sources(),
                               should_stop=should_stop, progress=progress)

    return verify

"""Guards of a flag rollout step: the platform's verification checks, run on chosen instances.

A step's guard names either a guard of the plan (``rollout_plan.guards``: a verification
profile or a list of metric checks, the instances to measure, an optional window) or directly
a verification profile of ``rollwave.yaml``. Each guard is measured on its instances with the
orchestrator's verifier (:func:`rollwave.orchestration.runtime.default_verifier`: health,
smoke and metric checks over the verification window against each instance's endpoints and
the configured metric sources). The results combine into one
:class:`~rollwave.analysis.results.Verdict`: Failed when any check failed (the rollout
reverts), Successful only when all passed, otherwise Error/Inconclusive (the step is held).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rollwave.analysis.results import CheckResult, Outcome, Verdict
from rollwave.core import tagexpr
from rollwave.core.durations import parse_duration
from rollwave.core.fleet import FleetInstance
from rollwave.core.model import MetricCheck, Verification
from rollwave.errors import RollwaveError
from rollwave.flags.model import Guard, RolloutPlan

if TYPE_CHECKING:
    from rollwave.orchestration.runtime import Runtime
    from rollwave.workspace.loader import Workspace

MAX_PARALLEL = 8


@dataclass(frozen=True, slots=True)
class GuardTarget:
    """One guard measured on one instance."""

    guard: str
    instance: FleetInstance
    profile: Verification
    endpoints: Mapping[str, str]


def guard_spec(plan: RolloutPlan, name: str) -> Guard:
    """The plan's guard ``name``, else a guard using the verification profile ``name``."""
    return plan.guards.get(name) or Guard(profile=name)


def guard_profile(workspace: Workspace, guard: Guard) -> Verification:
    """The verification profile a guard runs (window overrides applied)."""
    if guard.profile is not None:
        profiles = workspace.project.verification
        if guard.profile not in profiles:
            raise RollwaveError(f"no verification profile '{guard.profile}' in rollwave.yaml",
                                hint=f"profiles: {', '.join(sorted(profiles)) or 'none'}")
        profile = profiles[guard.profile]
    else:
        profile = Verification(health=None, metrics=[MetricCheck.model_validate(m)
                                                     for m in guard.metrics])
    updates: dict[str, float] = {}
    if guard.duration is not None:
        updates["duration"] = parse_duration(guard.duration)
    if guard.interval is not None:
        updates["interval"] = parse_duration(guard.interval)
    if updates:
        data = profile.model_dump()
        data.update(updates)
        profile = Verification.model_validate(data)
    return profile


def guard_instances(workspace: Workspace, plan: RolloutPlan, guard: Guard) -> list[FleetInstance]:
    """The instances a guard measures: ``instances`` (tag expression or keys) among the plan's
    environment (when it is an environment of rollwave.yaml), at most ``limit``."""
    fleet = list(workspace.fleet)
    if plan.environment is not None and plan.environment in workspace.project.environments:
        fleet = [i for i in fleet if i.environment == plan.environment]
    chosen = guard.instances
    if isinstance(chosen, list):
        keys = set(chosen)
        fleet = [i for i in workspace.fleet if i.key in keys or i.customer in keys]
    elif isinstance(chosen, str):
        expr = tagexpr.parse(chosen)
        fleet = [i for i in fleet if tagexpr.evaluate(expr, i.facts)]
    return fleet[:guard.limit]


def resolve_targets(rt: Runtime, plan: RolloutPlan, step: int,
                    ) -> tuple[list[GuardTarget], list[CheckResult]]:
    """What the guards of ``step`` measure; problems come back as Error results."""
    workspace = rt.workspace()
    targets: list[GuardTarget] = []
    problems: list[CheckResult] = []
    for name in plan.steps[step].guards:
        guard = guard_spec(plan, name)
        try:
            profile = guard_profile(workspace, guard)
            instances = guard_instances(workspace, plan, guard)
        except (RollwaveError, ValueError) as exc:
            text = exc.message if isinstance(exc, RollwaveError) else str(exc)
            problems.append(CheckResult(name, Outcome.ERROR, f"guard '{name}': {text}"))
            continue
        if not instances:
            problems.append(CheckResult(name, Outcome.INCONCLUSIVE, f"guard '{name}' selects "
                                        "no instance to measure"))
            continue
        for instance in instances:
            endpoints = _endpoints(rt, instance)
            targets.append(GuardTarget(name, instance, profile, endpoints))
    return targets, problems


def _endpoints(rt: Runtime, instance: FleetInstance) -> dict[str, str]:
    endpoints: dict[str, str] = {}
    try:
        deployer = rt.deployer(instance.deployer)
        endpoints = {s: url for s in instance.services
                     if (url := deployer.endpoint(instance, s))}
    except RollwaveError:
        endpoints = {}
    if instance.url and not endpoints and instance.services:
        endpoints = {instance.services[0]: instance.url}
    return endpoints


def measure(rt: Runtime, plan: RolloutPlan, step: int, should_stop: Callable[[], bool],
            progress: Callable[[str], None] = lambda message: None) -> Verdict:
    """Run every guard of ``step`` (instances in parallel) and combine the verdicts."""
    targets, results = resolve_targets(rt, plan, step)
    lock = threading.Lock()

    def run(target: GuardTarget) -> None:
        try:
            verdict = rt.verifier(target.instance, target.profile, target.endpoints,
                                  should_stop, progress)
            checks = [CheckResult(f"{target.guard} on {target.instance.key}: {c.name}",
                                  c.outcome, c.explanation, c.value, c.threshold, c.samples,
                                  c.data) for c in verdict.checks] or [
                CheckResult(f"{target.guard} on {target.instance.key}", verdict.outcome,
                            verdict.summary)]
        except Exception as exc:  # a verifier bug is an Error, never a pass
            checks = [CheckResult(f"{target.guard} on {target.instance.key}", Outcome.ERROR,
                                  f"verification failed to run: {type(exc).__name__}: {exc}")]
        with lock:
            results.extend(checks)

    for start in range(0, len(targets), MAX_PARALLEL):
        threads = [threading.Thread(target=run, args=(t,), daemon=True,
                                    name=f"flag-guard-{t.instance.key}")
                   for t in targets[start:start + MAX_PARALLEL]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if not results:
        return Verdict.of([CheckResult("guards", Outcome.INCONCLUSIVE,
                                       "the step names no guard to measure")])
    return Verdict.of(sorted(results, key=lambda r: r.name))

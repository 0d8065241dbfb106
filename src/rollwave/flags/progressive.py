"""The pure part of guarded rollouts: what a step does to a flag, and when a step is due.

A rollout of ``variant`` sets the fallthrough of the plan's environment (or the flag's
top-level fallthrough) to a split ``variant: P``, ``baseline: 100 - P`` — the rolled-out
variant first, so raising P only ever adds contexts (native bucketing takes consecutive bucket
ranges in the order written) — and enables the flag there. At 100 % it serves the variant
outright. Going back to the start restores exactly what the fallthrough and switch were before
the rollout (the *baseline settings*, recorded when it started).

Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rollwave.core.durations import parse_duration
from rollwave.flags.compiler import resolve
from rollwave.flags.errors import FlagDefinitionError
from rollwave.flags.model import (
    EnvironmentSettings,
    Flag,
    RolloutPlan,
    RolloutStep,
    Serve,
    WeightedVariant,
)


def baseline_variant(flag: Flag, plan: RolloutPlan) -> str:
    """The variant the rest of the traffic gets: the plan's ``baseline``, else what the
    fallthrough served before (when it was one variant other than the rolled-out one), else
    the off variant, else the first other variant."""
    if plan.baseline:
        return plan.baseline
    before = resolve(flag, plan.environment).fallthrough
    if before.variant is not None and before.variant != plan.variant:
        return before.variant
    off = flag.default_off_variant()
    if off != plan.variant:
        return off
    others = [v.name for v in flag.variants if v.name != plan.variant]
    if not others:
        raise FlagDefinitionError(f"flag '{flag.key}' has no variant other than "
                                  f"'{plan.variant}' to serve the rest of the traffic")
    return others[0]


def baseline_settings(flag: Flag, plan: RolloutPlan) -> dict[str, Any]:
    """What the rollout will change, as it is now (restored by a revert to the start)."""
    if plan.environment is None:
        return {"environment": None, "present": True, "enabled": flag.enabled,
                "fallthrough": _dump(flag.fallthrough)}
    settings = flag.environments.get(plan.environment)
    return {"environment": plan.environment, "present": settings is not None,
            "enabled": settings.enabled if settings else None,
            "fallthrough": _dump(settings.fallthrough) if settings else None}


def _dump(serve: Serve | None) -> Any:
    return None if serve is None else serve.model_dump(mode="json", exclude_defaults=True)


def serve_for(plan: RolloutPlan, percentage: float, baseline: str) -> Serve:
    """The fallthrough for ``percentage`` % of ``plan.variant`` (the rest ``baseline``)."""
    if percentage >= 100:
        return Serve(variant=plan.variant, bucketing=plan.bucketing)
    share = round(percentage, 2)
    return Serve(split=[WeightedVariant(variant=plan.variant, weight=share),
                        WeightedVariant(variant=baseline, weight=round(100 - share, 2))],
                 bucketing=plan.bucketing)


def with_percentage(flag: Flag, plan: RolloutPlan, percentage: float, baseline: str) -> Flag:
    """``flag`` serving ``percentage`` % of the variant in the plan's environment, enabled."""
    serve = serve_for(plan, percentage, baseline)
    if plan.environment is None:
        return flag.model_copy(update={"fallthrough": serve, "enabled": True})
    settings = flag.environments.get(plan.environment) or EnvironmentSettings()
    environments = {**flag.environments, plan.environment: settings.model_copy(
        update={"fallthrough": serve, "enabled": True})}
    return flag.model_copy(update={"environments": environments})


def restore_baseline(flag: Flag, baseline: dict[str, Any]) -> Flag:
    """``flag`` with the fallthrough and switch the rollout found when it started."""
    fallthrough = Serve.model_validate(baseline["fallthrough"]) \
        if baseline.get("fallthrough") is not None else None
    environment = baseline.get("environment")
    if environment is None:
        return flag.model_copy(update={"fallthrough": fallthrough,
                                       "enabled": bool(baseline.get("enabled"))})
    environments = dict(flag.environments)
    if not baseline.get("present"):
        environments.pop(environment, None)
    else:
        settings = environments.get(environment) or EnvironmentSettings()
        environments[environment] = settings.model_copy(update={
            "fallthrough": fallthrough, "enabled": bool(baseline.get("enabled"))})
    return flag.model_copy(update={"environments": environments})


def percentage_of(plan: RolloutPlan, step: int) -> float:
    """The share at step index ``step`` (-1: before the first step, 0 %)."""
    return 0.0 if step < 0 else plan.steps[step].percentage


def due_at(step: RolloutStep, previous_at: datetime) -> datetime:
    """When ``step`` may go live, the previous step having gone live at ``previous_at``
    (for the first step: when the rollout started)."""
    moments = [previous_at]
    if step.after:
        moments.append(previous_at + timedelta(seconds=parse_duration(step.after)))
    if step.at is not None:
        moments.append(step.at)
    return max(moments)


def describe_step(plan: RolloutPlan, step: int) -> str:
    """``step 2 of 4 (5 %)`` — or ``the start (0 %)`` for -1."""
    if step < 0:
        return "the start (0 %)"
    return f"step {step + 1} of {len(plan.steps)} ({_pct(plan.steps[step].percentage)})"


def _pct(value: float) -> str:
    return f"{value:g} %"


def plan_from_steps(variant: str, percentages: list[float], *, environment: str | None,
                    every: str | None = None, guards: list[str] | None = None,
                    baseline: str | None = None) -> RolloutPlan:
    """A plan from the CLI's ``--steps 1,5,25,100 --every 1h --guard NAME``."""
    steps = [RolloutStep(percentage=p, after=every if i and every else None,
                         guards=list(guards or [])) for i, p in enumerate(percentages)]
    return RolloutPlan(variant=variant, baseline=baseline, environment=environment,
                       steps=steps)

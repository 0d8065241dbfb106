"""The seed's five delivery metrics, computed from rollouts (pure: no I/O, ``now`` is given).

Definitions (over deploy rollouts created in the window; rollbacks are not deployments):

- **deployment success rate**: finished deployments that succeeded with no instance rolled
  back, out of all finished deployments (seed target > 95 %);
- **deployment frequency**: deployments started per week over the window (seed: weekly today,
  daily is the goal);
- **mean time to deploy**: mean wall time from start to finish of successful deployments (seed:
  4–6 h today, 1–2 h is the goal);
- **customer impact rate**: finished deployments in which at least one instance failed
  verification (rolled back, or its rollback failed) — the instance's customer saw the
  regression, however briefly (seed target < 10 %);
- **rollback rate**: finished deployments that were rolled back as a whole (ended
  ``rolled_back`` or were undone later by a rollback rollout) or had an instance rolled back
  (seed: 15 % today).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

FINISHED = frozenset({"succeeded", "aborted", "rolled_back", "failed"})


@dataclass(frozen=True, slots=True)
class RolloutFacts:
    """What the metrics need of one rollout."""

    id: str
    kind: str  # "deploy" or "rollback"
    state: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    parent_id: str | None = None
    instances_rolled_back: int = 0  # targets that ended rolled_back or rollback_failed


@dataclass(frozen=True, slots=True)
class Metric:
    """One figure with its unit, the data behind it and the seed's target, in words."""

    key: str
    label: str
    value: float | None
    unit: str  # "ratio", "per week", "seconds"
    detail: str
    target: str
    good: bool | None  # None: not enough data to say

    def display(self) -> str:
        if self.value is None:
            return "–"
        if self.unit == "ratio":
            return f"{self.value * 100:.0f}%" if self.value >= 0.1 or self.value == 0 \
                else f"{self.value * 100:.1f}%"
        if self.unit == "seconds":
            return _duration(self.value)
        return f"{self.value:.1f} {self.unit}"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "value": self.value, "unit": self.unit,
                "display": self.display(), "detail": self.detail, "target": self.target,
                "good": self.good}


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def delivery_metrics(rollouts: Sequence[RolloutFacts], now: datetime,
                     days: int = 30) -> list[Metric]:
    """The five metrics over the ``days`` before ``now``, in the seed's order."""
    since = now - timedelta(days=days)
    undone = {r.parent_id for r in rollouts if r.kind == "rollback" and r.parent_id}
    deploys = [r for r in rollouts if r.kind == "deploy" and r.created_at >= since]
    finished = [r for r in deploys if r.state in FINISHED]
    impacted = [r for r in finished if r.instances_rolled_back > 0]
    rolled_back = [r for r in finished if r.state == "rolled_back" or r.id in undone
                   or r.instances_rolled_back > 0]
    clean = [r for r in finished if r.state == "succeeded" and r.instances_rolled_back == 0
             and r.id not in undone]
    durations = [(r.finished_at - r.started_at).total_seconds() for r in finished
                 if r.state == "succeeded" and r.started_at and r.finished_at]
    n = len(finished)
    success = _ratio(len(clean), n)
    impact = _ratio(len(impacted), n)
    rollback = _ratio(len(rolled_back), n)
    per_week = len(deploys) / (days / 7)
    mean = sum(durations) / len(durations) if durations else None
    return [
        Metric("success_rate", "Deployment success rate", success, "ratio",
               f"{len(clean)} of {n} finished deployments without rollback",
               "> 95%", None if success is None else success > 0.95),
        Metric("frequency", "Deployment frequency", per_week, "per week",
               f"{len(deploys)} deployments in {days} days", "daily (≥ 5 per week)",
               per_week >= 5 if deploys else None),
        Metric("mean_time_to_deploy", "Mean time to deploy", mean, "seconds",
               f"mean of {len(durations)} successful deployments", "1–2 h",
               None if mean is None else mean <= 2 * 3600),
        Metric("customer_impact_rate", "Customer impact rate", impact, "ratio",
               f"{len(impacted)} of {n} deployments had an instance fail verification",
               "< 10%", None if impact is None else impact < 0.10),
        Metric("rollback_rate", "Rollback rate", rollback, "ratio",
               f"{len(rolled_back)} of {n} deployments rolled back in whole or part",
               "< 15% (today's baseline)", None if rollback is None else rollback < 0.15),
    ]

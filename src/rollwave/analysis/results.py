"""Verification outcomes, kept apart so an outage never reads as a pass or as a regression.

Argo Rollouts' lesson: *Error* (the source could not be read) and *Inconclusive* (no or too
little data) are different from *Failed*, and neither counts as *Successful*.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any


class Outcome(enum.StrEnum):
    """The result of one check, or of a whole verification."""

    SUCCESSFUL = "successful"  # every check passed with enough data
    FAILED = "failed"  # a check saw a regression beyond its threshold
    ERROR = "error"  # a source could not be read (unreachable, bad query) too many times
    INCONCLUSIVE = "inconclusive"  # not enough data to judge either way

    @property
    def passed(self) -> bool:
        return self is Outcome.SUCCESSFUL


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome with the numbers that decided it, in words."""

    name: str
    outcome: Outcome
    explanation: str
    value: float | None = None
    threshold: float | None = None
    samples: int = 0
    data: dict[str, Any] = field(default_factory=dict)


def combine(results: list[CheckResult]) -> Outcome:
    """Failed beats Error beats Inconclusive beats Successful; no checks is Inconclusive."""
    if not results:
        return Outcome.INCONCLUSIVE
    outcomes = {r.outcome for r in results}
    for outcome in (Outcome.FAILED, Outcome.ERROR, Outcome.INCONCLUSIVE):
        if outcome in outcomes:
            return outcome
    return Outcome.SUCCESSFUL


@dataclass(frozen=True, slots=True)
class Verdict:
    """The combined verdict of a verification, with each check's result."""

    outcome: Outcome
    checks: tuple[CheckResult, ...]
    summary: str

    @staticmethod
    def of(results: list[CheckResult]) -> Verdict:
        outcome = combine(results)
        deciding = [r for r in results if r.outcome == outcome] or results
        summary = "; ".join(f"{r.name}: {r.explanation}" for r in deciding) or "no checks ran"
        return Verdict(outcome=outcome, checks=tuple(results), summary=summary)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "summary": self.summary,
            "checks": [
                {"name": c.name, "outcome": c.outcome.value, "explanation": c.explanation,
                 "value": c.value, "threshold": c.threshold, "samples": c.samples,
                 **_chart_data(c.data)}
                for c in self.checks
            ],
        }


_CHART_KEYS = ("series", "unit", "label", "service", "metric")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _chart_data(data: dict[str, Any]) -> dict[str, Any]:
    """What the dashboard charts of a check (its per-interval series), JSON-safe; {} if none."""
    if not data.get("series"):
        return {}
    return {"data": _finite({k: data[k] for k in _CHART_KEYS if k in data})}

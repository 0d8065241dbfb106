"""Judging one metric check from its measurements so far (pure; no I/O, no clock).

The four outcomes stay apart:

* more than ``consecutive_error_limit`` failed reads in a row → *Error* (never Failed, never
  Successful): the source is down, which says nothing about the release;
* fewer than ``min_requests`` requests (for measures computed per request), fewer than the
  check's ``min_samples`` measurements, or no value → *Inconclusive*;
* a value above ``fail_above`` or below ``fail_below`` → *Failed*; otherwise *Successful*.

A check may fail before the window ends, when the measurement carries :class:`Evidence` and even
the most favourable reading of the requests seen so far (the lower Wilson bound at about 99.9 %
one-sided confidence) breaches the limit. A check never passes before the window ends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from rollwave.analysis.results import CheckResult, Outcome
from rollwave.core.model import MetricCheck
from rollwave.ports.metrics import Evidence, Measurement
from rollwave.verification import words

#: z of the one-sided confidence bound used for early failures (about 99.87 %).
EARLY_Z: Final = 3.0


@dataclass(frozen=True, slots=True)
class Rules:
    """The profile-wide settings a metric check is judged by."""

    min_requests: int = 20
    consecutive_error_limit: int = 4


def wilson_lower(bad: float, total: float, z: float = EARLY_Z) -> float:
    """The lower Wilson score bound of the proportion ``bad / total`` (0 when total is 0).

    >>> round(wilson_lower(156, 500), 3)
    0.254
    """
    if total <= 0:
        return 0.0
    p = min(max(bad / total, 0.0), 1.0)
    z2 = z * z
    centre = p + z2 / (2 * total)
    margin = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    return max(0.0, (centre - margin) / (1 + z2 / total))


def decisive(evidence: Evidence, min_requests: int) -> bool:
    """True when ``evidence`` already proves a breach: enough requests, lower bound above."""
    return (evidence.total >= max(min_requests, 1)
            and wilson_lower(evidence.bad, evidence.total) > evidence.limit)


def trailing_errors(history: Sequence[Measurement]) -> int:
    """How many of the latest measurements failed in a row."""
    count = 0
    for measurement in reversed(history):
        if measurement.ok:
            break
        count += 1
    return count


def judge(name: str, check: MetricCheck, history: Sequence[Measurement], rules: Rules, *,
          final: bool, data: Mapping[str, Any] | None = None) -> CheckResult | None:
    """The check's result from its measurements, or None while it is still undecided.

    With ``final`` False only decisive outcomes are returned (Error after too many failed reads
    in a row, an early Failed); with ``final`` True there is always a result. ``data`` is
    merged into the result's data (service, source, …).
    """
    good = _last_good(history)
    samples = sum(1 for m in history if m.ok and m.span > 0)
    decision = _decide(check, history, good, samples, rules, final=final)
    if decision is None:
        return None
    outcome, explanation, early = decision
    extra = dict(data or {})
    extra.update({"failed_reads": sum(1 for m in history if not m.ok), "samples": samples,
                  "decided_early": early})
    return _result(name, check, outcome, extra, good=good, explanation=explanation)


def _decide(  # noqa: PLR0911 - one return per rule of the module docstring, in order
    check: MetricCheck, history: Sequence[Measurement], good: Measurement | None,
    samples: int, rules: Rules, *, final: bool,
) -> tuple[Outcome, str, bool] | None:
    failures = trailing_errors(history)
    source = f"the '{check.source}' metrics"
    if failures > rules.consecutive_error_limit:
        return (Outcome.ERROR,
                f"could not read {source} {failures} times in a row (more than the limit of "
                f"{rules.consecutive_error_limit}): {history[-1].error}", False)
    if not final:
        if good is None or good.value is None or good.evidence is None:
            return None
        breach = _breach(check, good.value, good.unit)
        if not breach or not decisive(good.evidence, rules.min_requests):
            return None
        return (Outcome.FAILED,
                f"{_describe(good, early=True)} {breach}; {_early_words(good.evidence)}", True)
    if failures or good is None:
        return (Outcome.ERROR,
                f"could not read {source} at the end of the window ({failures} failed reads "
                f"in a row): {history[-1].error if history else 'no reading'}", False)
    needed = max(check.min_samples, 1)
    if samples < needed:
        return (Outcome.INCONCLUSIVE,
                f"only {samples} of the {needed} measurements needed over "
                f"{words.seconds(good.span)}", False)
    if good.count is not None and good.count < rules.min_requests:
        so_far = ("" if good.value is None
                  else f" ({good.label} so far {words.quantity(good.value, good.unit)})")
        return (Outcome.INCONCLUSIVE,
                f"only {words.plural(good.count, 'request')} over {words.seconds(good.span)}, "
                f"fewer than the {rules.min_requests} needed to judge the {good.label}{so_far}",
                False)
    if good.value is None:
        detail = f" ({good.detail})" if good.detail else ""
        return (Outcome.INCONCLUSIVE,
                f"no {good.label} over {words.seconds(good.span)}{detail}", False)
    breach = _breach(check, good.value, good.unit)
    if breach:
        return Outcome.FAILED, f"{_describe(good)} {breach}", False
    return Outcome.SUCCESSFUL, f"{_describe(good)} {_within(check, good.unit)}", False


def _last_good(history: Sequence[Measurement]) -> Measurement | None:
    return next((m for m in reversed(history) if m.ok), None)


def _breach(check: MetricCheck, value: float, unit: str) -> str:
    """Words for the limit ``value`` (in ``unit``) breaks ("" when it breaks none)."""
    if check.fail_above is not None and value > check.fail_above:
        return f"is above the {words.quantity(check.fail_above, unit)} limit"
    if check.fail_below is not None and value < check.fail_below:
        return f"is below the {words.quantity(check.fail_below, unit)} minimum"
    return ""


def _within(check: MetricCheck, unit: str) -> str:
    above, below = check.fail_above, check.fail_below
    if above is not None and below is not None:
        return (f"is within the limits ({words.quantity(below, unit)} to "
                f"{words.quantity(above, unit)})")
    if above is not None:
        return f"is within the {words.quantity(above, unit)} limit"
    assert below is not None
    return f"meets the {words.quantity(below, unit)} minimum"


def _describe(m: Measurement, *, early: bool = False) -> str:
    assert m.value is not None
    detail = f" ({m.detail})" if m.detail else ""
    span = f"the first {words.seconds(m.span)}" if early else words.seconds(m.span)
    return f"{m.label} {words.quantity(m.value, m.unit)}{detail} over {span}"


def _early_words(evidence: Evidence) -> str:
    lower = wilson_lower(evidence.bad, evidence.total)
    return (f"decided early: {words.number(round(evidence.bad))} of "
            f"{words.plural(round(evidence.total), 'request')} breach it, at least "
            f"{words.quantity(lower, 'ratio')} at 99.9% confidence, more than the "
            f"{words.quantity(evidence.limit, 'ratio')} allowed")


def _result(name: str, check: MetricCheck, outcome: Outcome, data: dict[str, Any], *,
            good: Measurement | None, explanation: str) -> CheckResult:
    if good is not None:
        data.update({"requests": good.count, "span": good.span, "label": good.label,
                     "unit": good.unit})
        if good.series:
            data["series"] = {measure: [p.to_dict() for p in points]
                              for measure, points in good.series.items()}
        if good.notes:
            explanation += "; " + "; ".join(good.notes)
    threshold = check.fail_above if check.fail_above is not None else check.fail_below
    if good is not None and good.value is not None and check.fail_below is not None and \
            good.value < check.fail_below:
        threshold = check.fail_below
    return CheckResult(
        name=name, outcome=outcome, explanation=explanation,
        value=None if good is None else good.value, threshold=threshold,
        samples=int(data["samples"]),
        data=data,
    )

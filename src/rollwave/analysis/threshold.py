"""Threshold checks with Argo Rollouts' AnalysisRun semantics.

A threshold check takes one *measurement* per analysis interval and judges each against a
success and/or a failure condition, exactly as Argo's ``EvaluateResult`` does:

* only a success condition: a measurement that does not meet it is *Failed*;
* only a failure condition: a measurement that does not meet it is *Successful*;
* both: failure wins; neither met is *Inconclusive*;
* neither given: every readable measurement is *Successful*;
* a measurement whose source could not be read (or, by default, came back empty) is *Error*,
  never *Failed*.

The check as a whole (Argo's ``assessMetricStatus``) is *Failed* once failed measurements
exceed ``failure_limit``, *Inconclusive* once inconclusive ones exceed ``inconclusive_limit``,
*Error* once consecutive errors exceed ``consecutive_error_limit`` (default 4), *Successful*
when ``count`` measurements were taken without any of those, and still running otherwise.

Example::

    >>> check = ThresholdCheck("error-ratio", success=Condition.parse("<= 0.05"), count=3)
    >>> run = evaluate_threshold(check, [Measurement(0.01), Measurement(0.02), Measurement(0.01)])
    >>> run.phase
    <Outcome.SUCCESSFUL: 'successful'>
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rollwave.analysis.results import CheckResult, Outcome
from rollwave.analysis.series import PolicyError, Series, aligned_totals

DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4  # Argo Rollouts' DefaultConsecutiveErrorLimit

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_COND_RE = re.compile(r"^\s*(?:result(?:\[0\])?\s*)?(<=|>=|==|!=|<|>)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True, slots=True)
class Condition:
    """``result OP value``; parsed from ``"< 0.05"`` or Argo's ``"result[0] >= 0.95"``."""

    op: str
    value: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise PolicyError(f"unknown comparison '{self.op}'", hint=f"use one of {list(_OPS)}")

    @classmethod
    def parse(cls, text: str) -> Condition:
        """Parse a comparison; raise :class:`PolicyError` with a hint when it is not one."""
        match = _COND_RE.match(text)
        if not match:
            raise PolicyError(
                f"cannot read condition '{text}'",
                hint="write a comparison such as '< 0.05' or 'result >= 0.95'",
            )
        return cls(op=match.group(1), value=float(match.group(2)))

    def holds(self, x: float) -> bool:
        return _OPS[self.op](x, self.value)

    def __str__(self) -> str:
        return f"result {self.op} {self.value:g}"


@dataclass(frozen=True, slots=True)
class Measurement:
    """One reading of a metric: a value, no data (``value=None``), or a read ``error``."""

    value: float | None
    error: str | None = None
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class ThresholdCheck:
    """A metric held to fixed conditions, measured once per analysis interval."""

    name: str
    metric: str | None = None  # a gauge series, or
    numerator: str | None = None  # a ratio of two counters summed over each interval
    denominator: str | None = None
    success: Condition | None = None
    failure: Condition | None = None
    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = DEFAULT_CONSECUTIVE_ERROR_LIMIT
    count: int | None = None
    no_data: Outcome = Outcome.ERROR  # what an empty answer counts as (Argo: an error)

    def __post_init__(self) -> None:
        if self.failure_limit < -1 or self.inconclusive_limit < 0:
            raise PolicyError(f"check '{self.name}': limits must be >= 0 (failure_limit -1 = off)")
        if self.consecutive_error_limit < 0:
            raise PolicyError(f"check '{self.name}': consecutive_error_limit must be >= 0")
        if self.count is not None and self.count < 1:
            raise PolicyError(f"check '{self.name}': count must be at least 1")

    @property
    def series_names(self) -> tuple[str, ...]:
        if self.metric:
            return (self.metric,)
        return tuple(n for n in (self.numerator, self.denominator) if n)


@dataclass(frozen=True, slots=True)
class ThresholdRun:
    """The state of a threshold check after some measurements (Argo's MetricResult)."""

    check: ThresholdCheck
    phases: tuple[Outcome, ...]
    values: tuple[float | None, ...]
    successful: int
    failed: int
    inconclusive: int
    errors: int
    consecutive_errors: int
    phase: Outcome | None  # None while still running
    reason: str
    decided_at: int | None = None  # index of the measurement that completed the check
    extra: dict[str, float] = field(default_factory=dict)

    def to_check_result(self) -> CheckResult:
        """As a :class:`CheckResult`; a run that has not completed reads as Inconclusive."""
        outcome = self.phase if self.phase is not None else Outcome.INCONCLUSIVE
        readable = [v for v in self.values if v is not None]
        last = readable[-1] if readable else None
        limit = self.check.failure or self.check.success
        return CheckResult(
            name=self.check.name,
            outcome=outcome,
            explanation=self.reason,
            value=last,
            threshold=limit.value if limit else None,
            samples=len(self.phases),
            data={
                "successful": self.successful,
                "failed": self.failed,
                "inconclusive": self.inconclusive,
                "errors": self.errors,
                "consecutive_errors": self.consecutive_errors,
                "running": self.phase is None,
                "decided_at": self.decided_at,
            },
        )


def evaluate_measurement(check: ThresholdCheck, m: Measurement) -> Outcome:
    """One measurement's phase, as Argo's ``EvaluateResult``."""
    if m.error is not None:
        return Outcome.ERROR
    if m.value is None or not math.isfinite(m.value):
        return check.no_data
    succeeded = check.success.holds(m.value) if check.success else False
    failed = check.failure.holds(m.value) if check.failure else False
    if check.success is None and check.failure is None:
        return Outcome.SUCCESSFUL
    if check.success is not None and check.failure is None:
        failed = not succeeded
    elif check.success is None and check.failure is not None:
        succeeded = not failed
    if failed:
        return Outcome.FAILED
    if not succeeded:
        return Outcome.INCONCLUSIVE
    return Outcome.SUCCESSFUL


def evaluate_threshold(check: ThresholdCheck, measurements: Sequence[Measurement]) -> ThresholdRun:
    """Replay the measurements in order; stop at the first one that completes the check."""
    succ = fail = inc = err = consec = 0
    phases: list[Outcome] = []
    values: list[float | None] = []
    phase: Outcome | None = None
    reason = ""
    decided_at: int | None = None
    for i, m in enumerate(measurements):
        p = evaluate_measurement(check, m)
        phases.append(p)
        values.append(m.value)
        if p is Outcome.ERROR:
            err += 1
            consec += 1
        else:
            consec = 0
            if p is Outcome.SUCCESSFUL:
                succ += 1
            elif p is Outcome.FAILED:
                fail += 1
            else:
                inc += 1
        # Argo's assessMetricFailureInconclusiveOrError: the later test wins when several hold
        if check.failure_limit >= 0 and fail > check.failure_limit:
            phase = Outcome.FAILED
            reason = _describe(check, fail, "failed", check.failure_limit, m)
        if inc > check.inconclusive_limit:
            phase = Outcome.INCONCLUSIVE
            reason = _describe(check, inc, "inconclusive", check.inconclusive_limit, m)
        if consec > check.consecutive_error_limit:
            phase = Outcome.ERROR
            reason = (
                f"{consec} consecutive measurements could not be read "
                f"(> consecutive_error_limit {check.consecutive_error_limit}): "
                f"{m.error or 'no data'}"
            )
        if phase is None and check.count is not None and succ + fail + inc >= check.count:
            phase = Outcome.SUCCESSFUL
            reason = (
                f"{succ + fail + inc} of {check.count} measurements taken: {succ} met "
                f"{_conditions(check)}, {fail} failed (limit {check.failure_limit}), "
                f"{inc} inconclusive"
            )
        if phase is not None:
            decided_at = i
            break
    if phase is None:
        reason = (
            f"running: {succ} successful, {fail} failed (limit {check.failure_limit}), "
            f"{inc} inconclusive, {err} errors ({consec} in a row) after {len(phases)} "
            "measurements"
        )
    return ThresholdRun(
        check=check,
        phases=tuple(phases),
        values=tuple(values),
        successful=succ,
        failed=fail,
        inconclusive=inc,
        errors=err,
        consecutive_errors=consec,
        phase=phase,
        reason=reason,
        decided_at=decided_at,
    )


def _conditions(check: ThresholdCheck) -> str:
    parts = []
    if check.success:
        parts.append(f"success '{check.success}'")
    if check.failure:
        parts.append(f"failure '{check.failure}'")
    return " and ".join(parts) or "no condition"


def _describe(check: ThresholdCheck, n: int, what: str, limit: int, m: Measurement) -> str:
    value = "no data" if m.value is None else f"{m.value:.4g}"
    return (
        f"{n} {what} measurements > {what.replace('failed', 'failure')}_limit {limit} "
        f"against {_conditions(check)}; last measurement {value}"
    )


def measure(
    check: ThresholdCheck,
    series: Mapping[str, Series],
    start: float,
    end: float,
    interval: float,
    *,
    aggregate: str = "mean",
) -> list[Measurement]:
    """One measurement per whole ``interval`` in ``[start, end)``.

    A gauge is aggregated with ``aggregate`` (``mean``, ``median``, ``max`` or ``last``) over the
    interval's readable samples; a ratio is ``sum(numerator) / sum(denominator)``. An interval
    whose samples were all read errors is an error; one with no readable sample is no data.
    """
    out: list[Measurement] = []
    if interval <= 0:
        raise PolicyError("the analysis interval must be positive")
    t = start
    while t + interval <= end + 1e-9:
        windows = [series[n].window(t, t + interval) for n in check.series_names if n in series]
        if len(windows) != len(check.series_names) or any(len(w) == 0 for w in windows):
            out.append(Measurement(None, at=t + interval))
        elif all(bool(w.errors.all()) for w in windows):
            out.append(Measurement(None, error="metric source could not be read", at=t + interval))
        elif check.metric:
            vals = windows[0].readable()
            out.append(Measurement(_aggregate(vals, aggregate), at=t + interval))
        else:
            num, den = aligned_totals(windows[0], windows[1])
            out.append(Measurement(num / den if den > 0 else None, at=t + interval))
        t += interval
    return out


def _aggregate(values: np.ndarray, how: str) -> float | None:
    if values.size == 0:
        return None
    if how == "median":
        return float(np.median(values))
    if how == "max":
        return float(values.max())
    if how == "last":
        return float(values[-1])
    return float(values.mean())

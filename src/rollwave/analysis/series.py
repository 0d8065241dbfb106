"""Metric series as the judges see them: a regular grid of samples, gaps and read errors apart.

Every metric source (the embedded ``/metrics`` scrape, Prometheus ``query_range``, Datadog,
CloudWatch ``GetMetricData``) answers with samples on a fixed step, so the judges take one shape:
sample ``i`` is at ``start + i * step`` (seconds, any epoch). A sample is one of three things:

* a number: the source answered with a value;
* missing (``NaN``): the source answered, but with no data for that step (Argo's *Inconclusive*);
* an error: the source could not be read for that step (unreachable, bad query: Argo's *Error*).

Keeping the last two apart is what lets an outage of the metrics source read as "no decision"
rather than as a regression or as a pass.

Example::

    >>> s = Series.of([1.0, None, 3.0], start=0, step=60, errors=[1])
    >>> s.window(60, 180).values.tolist()
    [nan, 3.0]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rollwave.errors import VerificationError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_EPS = 1e-9


class SeriesError(VerificationError):
    """A series handed to a judge is malformed (bad step, mismatched lengths)."""

    code = "verify.bad_series"
    default_hint = "metric adapters must return samples on a positive, fixed step"


class PolicyError(VerificationError):
    """A check's parameters are impossible (confidence outside (0, 1), negative floors...)."""

    code = "verify.bad_policy"
    default_hint = "fix the check's parameters in the rollout policy, then `rollwave validate`"


@dataclass(frozen=True, slots=True, eq=False)
class Series:
    """Samples of one metric of one instance on a regular time grid.

    ``values`` holds ``NaN`` where the source had no data; ``errors`` is ``True`` where the
    source could not be read (the value there is ``NaN`` too).
    """

    start: float
    step: float
    values: FloatArray
    errors: BoolArray

    def __post_init__(self) -> None:
        if not (self.step > 0 and math.isfinite(self.step)):
            raise SeriesError(f"series step must be a positive number of seconds, got {self.step}")
        if self.values.shape != self.errors.shape or self.values.ndim != 1:
            raise SeriesError(
                f"series values ({self.values.shape}) and errors ({self.errors.shape}) must be "
                "one-dimensional and of the same length"
            )

    @classmethod
    def of(
        cls,
        values: Iterable[float | None],
        *,
        start: float = 0.0,
        step: float = 60.0,
        errors: Iterable[int] | Sequence[bool] | None = None,
    ) -> Series:
        """Build a series from plain numbers; ``None`` is a gap, ``errors`` lists failed reads.

        ``errors`` is either a sequence of booleans as long as ``values`` or the indices of the
        samples whose read failed.
        """
        vals = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
        errs = np.zeros(vals.shape, dtype=np.bool_)
        if errors is not None:
            err_list = list(errors)
            if err_list and all(isinstance(e, bool | np.bool_) for e in err_list):
                if len(err_list) != len(vals):
                    raise SeriesError("errors given as booleans must be as long as values")
                errs = np.array(err_list, dtype=np.bool_)
            else:
                for i in err_list:
                    errs[int(i)] = True
        vals = vals.copy()
        vals[errs] = math.nan
        return cls(start=float(start), step=float(step), values=vals, errors=errs)

    @classmethod
    def from_samples(
        cls,
        samples: Iterable[tuple[float, float | None]],
        *,
        start: float,
        end: float,
        step: float,
        failed: Iterable[float] = (),
    ) -> Series:
        """Bucket timestamped samples onto the grid ``[start, end)``; the last sample wins.

        ``failed`` lists the times of reads that failed; they mark their bucket as an error.
        This is how a metric adapter turns a vendor's answer into what the judges take.
        """
        if not step > 0:
            raise SeriesError(f"series step must be positive, got {step}")
        n = max(0, math.ceil((end - start) / step - _EPS))
        vals = np.full(n, math.nan, dtype=np.float64)
        errs = np.zeros(n, dtype=np.bool_)
        for t, v in samples:
            i = math.floor((t - start) / step + _EPS)
            if 0 <= i < n and v is not None and math.isfinite(v):
                vals[i] = float(v)
        for t in failed:
            i = math.floor((t - start) / step + _EPS)
            if 0 <= i < n and math.isnan(vals[i]):
                errs[i] = True
        return cls(start=float(start), step=float(step), values=vals, errors=errs)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def end(self) -> float:
        """The time just after the last sample's slot."""
        return self.start + len(self) * self.step

    def index(self, t: float) -> int:
        """Index of the first sample at or after time ``t`` (clamped to ``[0, len]``)."""
        if math.isinf(t):
            return 0 if t < 0 else len(self)
        i = math.ceil((t - self.start) / self.step - _EPS)
        return min(max(i, 0), len(self))

    def window(self, t0: float, t1: float) -> Series:
        """The samples with ``t0 <= time < t1``."""
        i0, i1 = self.index(t0), self.index(t1)
        i1 = max(i0, i1)
        return Series(
            start=self.start + i0 * self.step,
            step=self.step,
            values=self.values[i0:i1],
            errors=self.errors[i0:i1],
        )

    def readable(self) -> FloatArray:
        """The finite values (gaps and errors dropped)."""
        v = self.values
        return v[np.isfinite(v)]

    @property
    def readable_count(self) -> int:
        return int(np.isfinite(self.values).sum())

    @property
    def error_count(self) -> int:
        return int(self.errors.sum())

    def trailing_errors(self) -> int:
        """How many of the last samples in a row are read errors (Argo's consecutive errors)."""
        count = 0
        for e in self.errors[::-1]:
            if not e:
                break
            count += 1
        return count

    def total(self) -> float:
        """Sum of the readable values (for counters such as requests and errors)."""
        r = self.readable()
        return float(r.sum()) if r.size else 0.0


def aligned_totals(numerator: Series, denominator: Series) -> tuple[float, float]:
    """Sums of numerator and denominator over the steps where both are readable.

    A step where either side is missing is dropped from both, so a gap never reads as a
    change of ratio.
    """
    n = min(len(numerator), len(denominator))
    num = numerator.values[:n]
    den = denominator.values[:n]
    ok = np.isfinite(num) & np.isfinite(den)
    return float(num[ok].sum()), float(den[ok].sum())


def aligned_errors(*series: Series) -> tuple[int, int]:
    """(error samples, trailing consecutive errors) over several series read together."""
    if not series:
        return 0, 0
    n = min(len(s) for s in series)
    errs = np.zeros(n, dtype=np.bool_)
    for s in series:
        errs |= s.errors[:n]
    trailing = 0
    for e in errs[::-1]:
        if not e:
            break
        trailing += 1
    return int(errs.sum()), trailing

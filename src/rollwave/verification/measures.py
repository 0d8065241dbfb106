"""Measures derived from scrapes of a Prometheus endpoint (pure functions of parsed samples).

Between two scrapes a counter's *increase* is taken the way PromQL's ``increase()`` takes it:
a drop means the counter restarted from zero (so the new value is the increase), a series that
appears started at zero, a series that vanishes adds nothing, and when the process start time
changed every series restarted. A window's totals are the sums of its intervals' increases,
and the measures follow from the totals:

* ``error_ratio``: requests whose status matches ``error_status`` (default ``5..``) over all
  requests, from a counter such as ``demo_requests_total{route,status}``;
* ``p95_latency_ms`` / ``p99_latency_ms``: the quantile of the window's bucket increases of a
  histogram, interpolated linearly inside the bucket as PromQL's ``histogram_quantile`` does;
* ``request_rate``: requests per second over the window.

Example: 500 requests of which 156 answered 5xx over 20 s give an error ratio of 31.2 % and a
request rate of 25 req/s.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from rollwave.ports.metrics import SeriesPoint
from rollwave.verification.exposition import Scrape, SeriesKey

ERROR_RATIO: Final = "error_ratio"
P95_LATENCY: Final = "p95_latency_ms"
P99_LATENCY: Final = "p99_latency_ms"
REQUEST_RATE: Final = "request_rate"
QUANTILES: Final = {P95_LATENCY: 0.95, P99_LATENCY: 0.99}
MEASURES: Final = (ERROR_RATIO, P95_LATENCY, P99_LATENCY, REQUEST_RATE)
INF: Final = math.inf


@dataclass(frozen=True, slots=True)
class MeasureSpec:
    """Which metrics and series the measures are derived from.

    Defaults match the demo service: ``demo_requests_total{route,status}`` and the histogram
    ``demo_request_duration_seconds``. ``match`` keeps only series whose labels fully match
    every regular expression; ``exclude`` drops series whose label fully matches (by default
    the verifier's own ``/health`` and ``/metrics`` requests). ``latency_scale`` turns the
    histogram's unit into milliseconds (1000 for seconds).
    """

    requests_metric: str = "demo_requests_total"
    status_label: str = "status"
    error_status: str = "5.."
    latency_metric: str = "demo_request_duration_seconds"
    latency_scale: float = 1000.0
    match: Mapping[str, str] = field(default_factory=dict)
    exclude: Mapping[str, str] = field(default_factory=lambda: {"route": "/health|/metrics"})

    @property
    def bucket_metric(self) -> str:
        return self.latency_metric + "_bucket"

    def keeps(self, key: SeriesKey) -> bool:
        """True when the series with labels ``key`` counts towards the measures."""
        labels = dict(key)
        if not all(re.fullmatch(p, labels.get(n, "")) for n, p in self.match.items()):
            return False
        return not any(re.fullmatch(p, labels.get(n, "")) for n, p in self.exclude.items())

    def is_error(self, key: SeriesKey) -> bool:
        """True when the series counts failed requests (its status matches ``error_status``)."""
        return re.fullmatch(self.error_status, dict(key).get(self.status_label, "")) is not None


@dataclass(frozen=True, slots=True)
class Interval:
    """What happened between two scrapes (``start`` and ``end`` in window seconds)."""

    start: float
    end: float
    requests: float = 0.0
    errors: float = 0.0
    buckets: Mapping[float, float] = field(default_factory=dict)
    restarted: bool = False
    status_labelled: bool = False

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Totals:
    """The sum of a window's intervals."""

    span: float = 0.0
    requests: float = 0.0
    errors: float = 0.0
    buckets: Mapping[float, float] = field(default_factory=dict)
    intervals: int = 0
    restarts: int = 0
    status_labelled: bool = False


def increase(before: Mapping[SeriesKey, float], after: Mapping[SeriesKey, float], *,
             restarted: bool = False) -> dict[SeriesKey, float]:
    """Each counter series' increase from ``before`` to ``after``, handling resets.

    >>> increase({(): 10.0}, {(): 14.0})
    {(): 4.0}
    >>> increase({(): 10.0}, {(): 3.0})  # dropped: the counter restarted at zero
    {(): 3.0}
    """
    result: dict[SeriesKey, float] = {}
    for key, value in after.items():
        previous = None if restarted else before.get(key)
        if previous is None or value < previous:
            result[key] = value
        else:
            result[key] = value - previous
    return result


def restarted(before: Scrape, after: Scrape) -> bool:
    """True when the process start time changed between the scrapes (a new process)."""
    return (before.process_start is not None and after.process_start is not None
            and before.process_start != after.process_start)


def interval(before: Scrape, after: Scrape, spec: MeasureSpec) -> Interval:
    """Requests, errors and latency-bucket increases between two scrapes."""
    reset = restarted(before, after)
    requests = errors = 0.0
    labelled = False
    name = spec.requests_metric
    for key, delta in increase(before.series(name), after.series(name), restarted=reset).items():
        if not spec.keeps(key):
            continue
        labelled = labelled or any(label == spec.status_label for label, _ in key)
        requests += delta
        if spec.is_error(key):
            errors += delta
    buckets: dict[float, float] = {}
    bucket_name = spec.bucket_metric
    deltas = increase(before.series(bucket_name), after.series(bucket_name), restarted=reset)
    for key, delta in deltas.items():
        if not spec.keeps(key):
            continue
        bound = _bound(key)
        if bound is not None:
            buckets[bound] = buckets.get(bound, 0.0) + delta
    return Interval(start=before.at, end=after.at, requests=requests, errors=errors,
                    buckets=buckets, restarted=reset, status_labelled=labelled)


def intervals(scrapes: Sequence[Scrape], spec: MeasureSpec) -> list[Interval]:
    """The intervals between consecutive scrapes."""
    return [interval(a, b, spec) for a, b in itertools.pairwise(scrapes)]


def totals(parts: Sequence[Interval]) -> Totals:
    """Add up intervals into window totals."""
    buckets: dict[float, float] = {}
    for part in parts:
        for bound, count in part.buckets.items():
            buckets[bound] = buckets.get(bound, 0.0) + count
    return Totals(
        span=sum(p.seconds for p in parts),
        requests=sum(p.requests for p in parts),
        errors=sum(p.errors for p in parts),
        buckets=buckets,
        intervals=len(parts),
        restarts=sum(1 for p in parts if p.restarted),
        status_labelled=any(p.status_labelled for p in parts),
    )


def histogram_quantile(  # noqa: PLR0911 - mirrors PromQL's bucketQuantile case by case
    q: float, buckets: Mapping[float, float],
) -> float | None:
    """The ``q``-quantile of cumulative bucket counts ``{upper bound: count}``, like PromQL.

    Linear interpolation inside the bucket holding the rank; the first bucket starts at 0 (when
    its bound is positive); a rank in the ``+Inf`` bucket answers the highest finite bound.
    None when there is no ``+Inf`` bucket, fewer than two buckets or no observation.
    Counts that decrease with the bound (torn scrapes) are raised to stay monotonic.

    >>> histogram_quantile(0.5, {0.1: 50.0, 0.2: 100.0, INF: 100.0})
    0.1
    >>> histogram_quantile(0.75, {0.1: 50.0, 0.2: 100.0, INF: 100.0})
    0.15000000000000002
    """
    if math.isnan(q):
        return None
    points = _monotonic(buckets)
    if len(points) < 2 or points[-1][0] != INF:
        return None
    observations = points[-1][1]
    if observations <= 0:
        return None
    if q < 0:
        return -INF
    if q > 1:
        return INF
    rank = q * observations
    index = next(i for i, (_, count) in enumerate(points) if count >= rank)
    if index == len(points) - 1:
        return points[-2][0]
    upper, count = points[index]
    if index == 0 and upper <= 0:
        return upper
    lower, below = (0.0, 0.0) if index == 0 else points[index - 1]
    in_bucket = count - below
    if in_bucket <= 0:
        return upper
    return lower + (upper - lower) * (rank - below) / in_bucket


def count_above(threshold: float, buckets: Mapping[float, float]) -> tuple[float, float] | None:
    """``(observations above threshold, all observations)``, interpolated like the quantile.

    Consistent with :func:`histogram_quantile`: the q-quantile is above ``threshold`` exactly
    when the share above it exceeds ``1 - q``. A threshold at or beyond the highest finite
    bound has nothing above it (the quantile never reports more than that bound).

    >>> count_above(0.15, {0.1: 50.0, 0.2: 100.0, INF: 100.0})
    (25.0, 100.0)
    """
    points = _monotonic(buckets)
    if len(points) < 2 or points[-1][0] != INF or points[-1][1] <= 0:
        return None
    total = points[-1][1]
    if threshold >= points[-2][0]:
        return 0.0, total
    lower, below = 0.0, 0.0
    for upper, count in points:
        if threshold < upper:
            if threshold <= lower:
                return total - below, total
            share = (threshold - lower) / (upper - lower)
            return total - (below + (count - below) * share), total
        lower, below = upper, count
    return 0.0, total  # pragma: no cover - the +Inf bucket always ends the loop


def quantile_ms(q: float, window: Totals, spec: MeasureSpec) -> float | None:
    """The window's q-quantile latency in milliseconds, or None without observations."""
    value = histogram_quantile(q, window.buckets)
    return None if value is None else value * spec.latency_scale


def observations(window: Totals) -> float:
    """How many observations the window's histogram holds (its ``+Inf`` bucket)."""
    return window.buckets.get(INF, 0.0)


def error_ratio(window: Totals) -> float | None:
    """Errors over requests, or None when there were no requests."""
    return window.errors / window.requests if window.requests > 0 else None


def request_rate(window: Totals) -> float | None:
    """Requests per second, or None for an empty window."""
    return window.requests / window.span if window.span > 0 else None


def gauge(scrape: Scrape, name: str, spec: MeasureSpec) -> float | None:
    """The sum of the kept series of ``name`` in ``scrape`` (None when it has none)."""
    values = [v for key, v in scrape.series(name).items() if spec.keeps(key)]
    return sum(values) if values else None


def point(part: Interval, measure: str, spec: MeasureSpec) -> SeriesPoint:
    """One measure's value over one interval."""
    window = totals([part])
    value: float | None
    count = part.requests
    if measure == ERROR_RATIO:
        value = error_ratio(window)
    elif measure == REQUEST_RATE:
        value = request_rate(window)
    elif measure in QUANTILES:
        value = quantile_ms(QUANTILES[measure], window, spec)
        count = observations(window)
    else:
        raise ValueError(f"unknown measure {measure!r}")
    return SeriesPoint(at=part.end, value=value, count=count)


def series_of(parts: Sequence[Interval], spec: MeasureSpec,
              measures: Sequence[str] = MEASURES) -> dict[str, tuple[SeriesPoint, ...]]:
    """Per-interval points of each measure (latency only when the histogram had buckets)."""
    has_histogram = any(part.buckets for part in parts)
    return {
        measure: tuple(point(part, measure, spec) for part in parts)
        for measure in measures
        if measure not in QUANTILES or has_histogram
    }


def window_series(scrapes: Sequence[Scrape], spec: MeasureSpec | None = None,
                  measures: Sequence[str] = MEASURES) -> dict[str, tuple[SeriesPoint, ...]]:
    """A verification window's scrapes as a small time series per measure.

    One point per interval between consecutive scrapes, at the interval's end: the error ratio,
    latency quantiles and request rate *of that interval* (not cumulative), with the interval's
    request count. For charts and for statistical judges that compare intervals.

    >>> from rollwave.verification.exposition import parse_exposition
    >>> texts = ['r_total{status="200"} 0', 'r_total{status="200"} 50', 'r_total{status="200"} 70']
    >>> scrapes = [parse_exposition(t, at=5.0 * i) for i, t in enumerate(texts)]
    >>> [p.value for p in window_series(scrapes, MeasureSpec(requests_metric="r_total"))[
    ...     "request_rate"]]
    [10.0, 4.0]
    """
    return series_of(intervals(scrapes, spec or MeasureSpec()), spec or MeasureSpec(), measures)


def _bound(key: SeriesKey) -> float | None:
    for label, value in key:
        if label == "le":
            try:
                return float(value)
            except ValueError:
                return None
    return None


def _monotonic(buckets: Mapping[float, float]) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    highest = 0.0
    for bound in sorted(b for b in buckets if not math.isnan(b)):
        highest = max(highest, buckets[bound])
        points.append((bound, highest))
    return points

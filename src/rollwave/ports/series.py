"""The SeriesSource port: time series per instance for fleet-level analysis.

Where :mod:`rollwave.ports.metrics` measures one service over one verification window, a
series source answers range questions for many instances at once — "requests, errors and p95
latency of these 40 instances over the last hour, one point per interval" — which is what the
fleet engine (:func:`rollwave.analysis.engine.evaluate_fleet`) needs to compare an updated
instance with itself before the update and with its peers.

Metrics are *logical* names the policy's checks use (``requests``, ``errors``,
``latency_p95``, ``latency_p99``, ``memory``, or any name a source's configuration maps to a
query). A source never raises for an outage: a read that failed is marked in
:attr:`rollwave.analysis.series.Series.errors`, and missing data stays ``NaN``, so the
engine keeps *Error* and *Inconclusive* apart from a regression.

Implementations live in ``rollwave/adapters/metrics/`` next to the per-window sources: the
embedded scrape collector, Prometheus (PromQL range queries templated with instance labels),
Datadog (metrics query API) and CloudWatch (GetMetricData).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from rollwave.analysis.series import Series
from rollwave.ports.metrics import MetricTarget

STANDARD_METRICS = ("requests", "errors", "latency_p95", "latency_p99", "memory")
"""Logical metrics every source should know how to answer (units: count per step, count per
step, milliseconds, milliseconds, bytes)."""


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    """Which metrics over which grid: ``[start, end)`` in epoch seconds, one point per ``step``."""

    metrics: tuple[str, ...]
    start: float
    end: float
    step: float


SeriesByInstance = dict[str, dict[str, Series]]
"""instance key → logical metric → series on the query's grid."""


class SeriesSource(Protocol):
    """Answers range queries for many instances; never raises for an unreachable backend."""

    def fetch(self, targets: Sequence[MetricTarget], query: SeriesQuery) -> SeriesByInstance:
        """Series for every target and metric (a failed read marks its points as errors)."""
        ...

    def problems(self, metrics: Sequence[str]) -> list[str]:
        """Configuration problems for these metric names (e.g. no query for 'memory')."""
        ...


def empty_series(query: SeriesQuery, *, failed: bool) -> Series:
    """A series with no data on the query's grid: all gaps, or all failed reads."""
    import math

    n = max(0, math.ceil((query.end - query.start) / query.step - 1e-9))
    return Series.of([None] * n, start=query.start, step=query.step,
                     errors=[failed] * n if failed else None)


def fill_missing(result: Mapping[str, Mapping[str, Series]], targets: Sequence[MetricTarget],
                 query: SeriesQuery, *, failed: bool) -> SeriesByInstance:
    """Every target and metric present: absent ones become empty (gaps or failed reads)."""
    out: SeriesByInstance = {}
    for target in targets:
        known = dict(result.get(target.instance, {}))
        for metric in query.metrics:
            if metric not in known:
                known[metric] = empty_series(query, failed=failed)
        out[target.instance] = known
    return out

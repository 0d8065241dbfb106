"""A series source read as a per-window :class:`~rollwave.ports.metrics.MetricSource`.

Per-instance verification (``verification.<profile>.metrics`` with ``source: prom``) opens a
window when the instance was deployed; each sample asks the source for the window so far, one
point per ``interval`` over the complete intervals since the window opened, and reduces the
points to one measure:

``error_ratio``       ``sum(errors) / sum(requests)`` (with early-failure evidence)
``request_rate``      ``sum(requests)`` per second
``p95_latency_ms``    the per-interval ``latency_p95`` points averaged, weighted by requests
``p99_latency_ms``    the same with ``latency_p99``
any logical metric    its latest point (e.g. ``memory``, or a name under ``queries:``)

A read that failed (the backend unreachable, a bad query) is a failed measurement with the
backend's reason, counted against ``consecutive_error_limit``; no data yet is ``None``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rollwave.adapters.metrics.query import DetailedSource
from rollwave.analysis.series import Series, aligned_totals
from rollwave.core.model import MetricCheck
from rollwave.ports.metrics import Evidence, Measurement, MetricTarget, MetricWindow, SeriesPoint
from rollwave.ports.series import SeriesQuery
from rollwave.verification import words

ERROR_RATIO = "error_ratio"
REQUEST_RATE = "request_rate"
QUANTILES = {"p95_latency_ms": "latency_p95", "p99_latency_ms": "latency_p99"}
MEASURES = (ERROR_RATIO, REQUEST_RATE, *QUANTILES)


def needs(metric: str) -> tuple[str, ...]:
    """The logical metrics a measure is computed from."""
    if metric == ERROR_RATIO:
        return ("errors", "requests")
    if metric == REQUEST_RATE:
        return ("requests",)
    if metric in QUANTILES:
        return (QUANTILES[metric], "requests")
    return (metric,)


class WindowedSource:
    """The MetricSource face of a series source (``kind`` names it in messages)."""

    def __init__(self, source: DetailedSource, kind: str, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.kind = kind
        self.clock = clock

    def problems(self, check: MetricCheck) -> list[str]:
        """Unknown measures and params this source does not take, in words."""
        known = set(self.source.metric_names())
        found = []
        missing = [m for m in needs(check.metric) if m not in known]
        if check.metric not in MEASURES and missing:
            found.append(f"unknown measure '{check.metric}'; the {self.kind} source measures "
                         f"{', '.join(MEASURES)} or reads one of its metrics "
                         f"({', '.join(sorted(known))})")
        elif missing:
            found.append(f"'{check.metric}' needs the metrics {', '.join(missing)}, which the "
                         f"{self.kind} source has no query for")
        if check.params:
            found.append(f"the {self.kind} source takes no params ({', '.join(check.params)}); "
                         "define the query under the source's queries: in rollwave.yaml")
        return found

    def open(self, target: MetricTarget, checks: Sequence[MetricCheck],
             window: MetricWindow) -> WindowSession:
        """Start a window now for ``checks``; raises VerificationError for unusable checks."""
        from rollwave.errors import VerificationError

        for check in checks:
            problems = self.problems(check)
            if problems:
                raise VerificationError("; ".join(problems))
        return WindowSession(self.source, target, tuple(checks), window, self.clock)


@dataclass
class WindowSession:
    """One window of one target: each sample reads the window so far."""

    source: DetailedSource
    target: MetricTarget
    checks: tuple[MetricCheck, ...]
    window: MetricWindow
    clock: Callable[[], float]

    def __post_init__(self) -> None:
        self.start = self.clock()
        metrics: dict[str, None] = {}
        for check in self.checks:
            metrics.update(dict.fromkeys(needs(check.metric)))
        self.metrics = tuple(metrics)

    def sample(self, elapsed: float) -> dict[str, Measurement]:
        """Measure every check over the complete intervals since the window opened."""
        step = self.window.interval
        slots = math.floor(max(0.0, self.clock() - self.start) / step + 1e-9)
        if slots == 0:
            return {c.name: Measurement(label=_label(c.metric), span=0.0) for c in self.checks}
        query = SeriesQuery(self.metrics, self.start, self.start + slots * step, step)
        report = self.source.fetch_detailed([self.target], query)
        series = report.series.get(self.target.instance, {})
        results = {}
        for check in self.checks:
            error = next((e for m in needs(check.metric)
                          if (e := report.error_of(self.target.instance, m)) is not None), None)
            if error is not None:
                results[check.name] = Measurement.failed(error, label=_label(check.metric),
                                                         span=slots * step)
            else:
                results[check.name] = measure(check, series, self.start)
        return results

    def close(self) -> None:
        """Nothing to release: the source keeps its connections for other windows."""


def measure(check: MetricCheck, series: Mapping[str, Series], start: float) -> Measurement:
    """One check's measure over the series (all on one grid starting at ``start``)."""
    metric = check.metric
    label = _label(metric)
    if metric == ERROR_RATIO:
        errors, requests = aligned_totals(series["errors"], series["requests"])
        span = _span(series["requests"])
        points = _points(series["errors"], start, per=series["requests"])
        evidence = (None if check.fail_above is None
                    else Evidence(errors, requests, check.fail_above))
        return Measurement(
            value=errors / requests if requests > 0 else None, label=label, unit="ratio",
            span=span, count=requests, evidence=evidence, series={metric: points},
            detail=f"{words.number(errors)} of {words.plural(requests, 'request')}")
    if metric == REQUEST_RATE:
        requests_s = series["requests"]
        total, span = requests_s.total(), _span(requests_s)
        return Measurement(
            value=total / span if span > 0 else None, label=label, unit="req/s", span=span,
            detail=words.plural(total, "request"),
            series={metric: _points(requests_s, start, scale=1 / requests_s.step)})
    if metric in QUANTILES:
        latency, requests_s = series[QUANTILES[metric]], series["requests"]
        value, count = weighted_mean(latency, requests_s)
        return Measurement(
            value=value, label=label, unit="ms", span=_span(latency), count=count,
            detail=f"{words.plural(latency.readable_count, 'interval')}, "
                   f"{words.plural(count or 0, 'request')}",
            series={metric: _points(latency, start)})
    gauge = series[metric]
    readable = [(i, v) for i, v in enumerate(gauge.values) if math.isfinite(v)]
    return Measurement(
        value=float(readable[-1][1]) if readable else None, label=label, span=_span(gauge),
        detail="the latest point", series={metric: _points(gauge, start)})


def weighted_mean(values: Series, weights: Series) -> tuple[float | None, float | None]:
    """Mean of the readable ``values`` weighted by ``weights`` (plain mean without weights)."""
    n = min(len(values), len(weights))
    v, w = values.values[:n], weights.values[:n]
    ok = np.isfinite(v) & np.isfinite(w) & (w > 0)
    if ok.any():
        return float(np.average(v[ok], weights=w[ok])), float(w[ok].sum())
    readable = values.readable()
    return (float(readable.mean()) if readable.size else None), None


def _span(series: Series) -> float:
    return series.readable_count * series.step


def _points(series: Series, start: float, *, per: Series | None = None,
            scale: float = 1.0) -> tuple[SeriesPoint, ...]:
    out = []
    for i, value in enumerate(series.values):
        at = series.start + (i + 1) * series.step - start
        count = None
        if per is not None and i < len(per):
            count = float(per.values[i]) if math.isfinite(per.values[i]) else None
        if not math.isfinite(value):
            out.append(SeriesPoint(at=at, value=None, count=count))
        elif per is not None:
            out.append(SeriesPoint(at=at, value=value / count if count else None, count=count))
        else:
            out.append(SeriesPoint(at=at, value=float(value) * scale, count=count))
    return tuple(out)


def _label(metric: str) -> str:
    if metric == ERROR_RATIO:
        return "error ratio"
    if metric == REQUEST_RATE:
        return "request rate"
    if metric in QUANTILES:
        return f"{metric[:3]} latency"
    return metric

"""A series source read as a per-window MetricSource: measures, gaps, failed reads, problems."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from rollwave.adapters.metrics.query import FetchReport
from rollwave.adapters.metrics.windowed import WindowedSource, WindowSession, weighted_mean
from rollwave.analysis.series import Series
from rollwave.core.model import MetricCheck
from rollwave.errors import VerificationError
from rollwave.ports.metrics import MetricTarget, MetricWindow
from rollwave.ports.series import SeriesQuery

TARGET = MetricTarget("acme/prod", "web")
WINDOW = MetricWindow(duration=60, interval=10)


class Scripted:
    """Per metric, one value per 10 s slot from t=0 (None: a gap); ``down`` fails every read."""

    def __init__(self, values: dict[str, list[float | None]], down: str | None = None) -> None:
        self.values = values
        self.down = down
        self.queries: list[SeriesQuery] = []

    def metric_names(self) -> tuple[str, ...]:
        return ("requests", "errors", "latency_p95", "latency_p99", "memory")

    def fetch_detailed(self, targets: Sequence[MetricTarget], query: SeriesQuery) -> FetchReport:
        self.queries.append(query)
        report = FetchReport(series={TARGET.instance: {}})
        for metric in query.metrics:
            n = round((query.end - query.start) / query.step)
            if self.down:
                report.errors[(TARGET.instance, metric)] = self.down
                report.series[TARGET.instance][metric] = Series.of(
                    [None] * n, start=query.start, step=query.step, errors=[True] * n)
            else:
                values = self.values.get(metric, [])[:n]
                report.series[TARGET.instance][metric] = Series.of(
                    values + [None] * (n - len(values)), start=query.start, step=query.step)
        return report

    def close(self) -> None:
        return


def check(metric: str, **kwargs: float) -> MetricCheck:
    return MetricCheck(name=metric, metric=metric, source="q",
                       **({"fail_above": 1e9} | kwargs))


def open_session(source: Scripted, *checks: MetricCheck) -> tuple[list[float], WindowSession]:
    now = [1000.0]
    windowed = WindowedSource(source, "test", clock=lambda: now[0])
    return now, windowed.open(TARGET, list(checks), WINDOW)


def test_measures_over_the_complete_intervals() -> None:
    source = Scripted({"requests": [100, 300, 0, 200], "errors": [1, 30, 0, 9],
                       "latency_p95": [10, 20, None, 50], "memory": [5, 6, None, None]})
    now, session = open_session(source, check("error_ratio", fail_above=0.05),
                                check("request_rate"), check("p95_latency_ms"),
                                check("memory"))
    assert all(m.value is None and m.ok for m in session.sample(5).values())
    assert source.queries == []
    now[0] = 1045.0
    readings = session.sample(45)
    assert source.queries[-1] == SeriesQuery(
        ("errors", "requests", "latency_p95", "memory"), 1000.0, 1040.0, 10)
    errors = readings["error_ratio"]
    assert errors.value == pytest.approx(40 / 600)
    assert (errors.count, errors.unit, errors.detail) == (600, "ratio", "40 of 600 requests")
    assert errors.evidence is not None
    assert errors.evidence.limit == 0.05
    assert [p.value for p in errors.series["error_ratio"]] == [0.01, 0.1, None, 0.045]
    assert readings["request_rate"].value == pytest.approx(600 / 40)
    p95 = readings["p95_latency_ms"]
    assert p95.value == pytest.approx((10 * 100 + 20 * 300 + 50 * 200) / 600)  # by requests
    assert p95.label == "p95 latency"
    assert readings["memory"].value == 6.0


def test_failed_reads_carry_the_reason() -> None:
    source = Scripted({}, down="cannot connect to http://prom:9090: connection refused")
    now, session = open_session(source, check("error_ratio"), check("memory"))
    now[0] = 1030.0
    readings = session.sample(30)
    assert readings["error_ratio"].error == "cannot connect to http://prom:9090: connection refused"
    assert not readings["memory"].ok


def test_problems_and_refusals() -> None:
    windowed = WindowedSource(Scripted({}), "prometheus")
    assert windowed.problems(check("error_ratio")) == []
    assert windowed.problems(check("memory")) == []
    assert windowed.problems(check("cpu")) == [
        "unknown measure 'cpu'; the prometheus source measures error_ratio, request_rate, "
        "p95_latency_ms, p99_latency_ms or reads one of its metrics (errors, latency_p95, "
        "latency_p99, memory, requests)"]
    with_params = MetricCheck(name="e", metric="error_ratio", source="q", fail_above=1,
                              params={"status_label": "code"})
    assert windowed.problems(with_params) == [
        "the prometheus source takes no params (status_label); define the query under the "
        "source's queries: in rollwave.yaml"]
    with pytest.raises(VerificationError, match="unknown measure 'cpu'"):
        windowed.open(TARGET, [check("cpu")], WINDOW)


def test_weighted_mean_without_weights_is_the_plain_mean() -> None:
    values = Series.of([10, 20, None], start=0, step=10)
    assert weighted_mean(values, Series.of([None, None, None], start=0, step=10)) == (15.0, None)
    assert weighted_mean(Series.of([None], start=0, step=10),
                         Series.of([5], start=0, step=10)) == (None, None)

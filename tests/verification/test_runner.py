"""verify_instance with a fake clock and a simulated /metrics endpoint (no sockets)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from rollwave.analysis.results import CheckResult, Outcome, Verdict
from rollwave.core.model import MetricCheck, Verification
from rollwave.errors import VerificationError
from rollwave.ports.metrics import (
    Measurement,
    MetricSource,
    MetricSources,
    MetricTarget,
    MetricWindow,
)
from rollwave.verification import VerificationTarget, verify_instance
from rollwave.verification.runner import _next_tick
from tests.verification.support import FakeClock, SimulatedInstance, Traffic

TARGET = VerificationTarget("acme/prod", {"web": "http://127.0.0.1:9"})
ERRORS = {"name": "errors", "metric": "error_ratio", "fail_above": 0.05}
P95 = {"name": "p95", "metric": "p95_latency_ms", "fail_above": 250}
RATE = {"name": "rate", "metric": "request_rate", "fail_below": 1}


def profile(*checks: Mapping[str, Any], **settings: Any) -> Verification:
    values: dict[str, Any] = {"duration": 20, "interval": 5, "health": None, "min_requests": 20,
                              "consecutive_error_limit": 2,
                              "metrics": [dict(c) for c in checks or (ERRORS,)]}
    values.update(settings)
    return Verification.model_validate(values)


def run(instance: SimulatedInstance, prof: Verification, *, target: VerificationTarget = TARGET,
        sources: MetricSources | None = None, **kwargs: Any) -> tuple[Verdict, list[str]]:
    clock = instance.clock
    messages: list[str] = []
    verdict = verify_instance(target, prof, sources=sources or instance.sources(),
                              clock=clock, sleep=clock.sleep, progress=messages.append, **kwargs)
    return verdict, messages


def by_name(verdict: Verdict) -> dict[str, CheckResult]:
    return {c.name: c for c in verdict.checks}


def test_healthy_instance_passes_after_the_full_window() -> None:
    instance = SimulatedInstance(FakeClock(), Traffic(rps=25, error_ratio=0.004, latency=0.02))
    verdict, messages = run(instance, profile(ERRORS, P95, RATE))
    assert verdict.outcome is Outcome.SUCCESSFUL
    assert instance.fetched == [0, 5, 10, 15, 20]
    checks = by_name(verdict)
    assert checks["web/errors"].explanation == (
        "error ratio 0.4% (2 of 500 requests) over 20s is within the 5% limit")
    assert checks["web/p95"].explanation == (
        "p95 latency 24.2 ms (500 requests) over 20s is within the 250 ms limit")
    assert checks["web/rate"].explanation == (
        "request rate 25 req/s (500 requests) over 20s meets the 1 req/s minimum")
    assert checks["web/errors"].samples == 4
    series = checks["web/errors"].data["series"]
    assert [p["at"] for p in series["error_ratio"]] == [5, 10, 15, 20]
    assert [p["count"] for p in series["request_rate"]] == [125, 125, 125, 125]
    assert any("metrics at 10s of 20s" in m for m in messages)
    assert messages[-1].startswith("acme/prod: verification successful")


def test_window_end_is_sampled_when_duration_is_not_a_multiple_of_interval() -> None:
    instance = SimulatedInstance(FakeClock(), Traffic(rps=10))
    verdict, _ = run(instance, profile(duration=9, interval=4))
    assert verdict.outcome is Outcome.SUCCESSFUL
    assert instance.fetched == [0, 4, 8, 9]


def test_error_spike_fails_early_and_stops_sampling() -> None:
    instance = SimulatedInstance(FakeClock(), Traffic(rps=20, error_ratio=0.0),
                                 phases=[(5.0, Traffic(rps=20, error_ratio=0.4))])
    verdict, _ = run(instance, profile(ERRORS, P95, duration=60))
    assert verdict.outcome is Outcome.FAILED
    assert instance.fetched == [0, 5, 10]
    errors = by_name(verdict)["web/errors"]
    assert errors.data["decided_early"] is True
    assert errors.explanation.startswith(
        "error ratio 20% (40 of 200 requests) over the first 10s is above the 5% limit; "
        "decided early")
    p95 = by_name(verdict)["web/p95"]
    assert p95.outcome is Outcome.INCONCLUSIVE
    assert p95.explanation.startswith("not judged: the window ended after 10s because "
                                      "web/errors failed; so far p95 latency")
    assert verdict.summary.startswith("web/errors: error ratio 20%")


def test_latency_regression_fails_early_from_bucket_evidence() -> None:
    instance = SimulatedInstance(FakeClock(), Traffic(rps=20, latency=0.4))
    verdict, _ = run(instance, profile(P95, duration=60))
    assert verdict.outcome is Outcome.FAILED
    assert instance.fetched == [0, 5]
    assert "p95 latency 488 ms (100 requests) over the first 5s is above the 250 ms limit; " \
           "decided early: 100 of 100 requests breach it" in verdict.summary


def test_a_pass_is_never_decided_early() -> None:
    instance = SimulatedInstance(FakeClock(), Traffic(rps=1000))
    run(instance, profile(duration=60, interval=10))
    assert instance.fetched[-1] == 60


def test_metrics_endpoint_down_is_error_after_the_consecutive_limit() -> None:
    instance = SimulatedInstance(FakeClock(), Traffic(rps=20, error_ratio=0.5),
                                 down=[(0.0, 1000.0)])
    verdict, _ = run(instance, profile(ERRORS, P95, duration=60))
    assert verdict.outcome is Outcome.ERROR
    assert instance.fetched == [0, 5, 10]  # limit 2: the third failure in a row decides
    for check in verdict.checks:
        assert check.outcome is Outcome.ERROR
        assert check.explanation.startswith("could not read the 'scrape' metrics 3 times in a "
                                            "row (more than the limit of 2): cannot connect")


def test_source_recovering_after_the_window_is_judged_on_the_full_window() -> None:
    instance = SimulatedInstance(FakeClock(), Traffic(rps=20), down=[(18.0, 26.0)])
    verdict, _ = run(instance, profile())
    assert instance.fetched == [0, 5, 10, 15, 20, 25, 30]
    assert verdict.outcome is Outcome.SUCCESSFUL
    errors = by_name(verdict)["web/errors"]
    assert errors.data["failed_reads"] == 2
    assert "over 30s" in errors.explanation


def test_source_down_at_the_end_of_the_window_is_error_not_a_pass() -> None:
    instance = SimulatedInstance(FakeClock(), Traffic(rps=20), down=[(18.0, 1000.0)])
    verdict, _ = run(instance, profile())
    assert verdict.outcome is Outcome.ERROR
    assert instance.fetched == [0, 5, 10, 15, 20, 25, 30]


def test_too_little_traffic_is_inconclusive() -> None:
    instance = SimulatedInstance(FakeClock(), Traffic(rps=0.5, error_ratio=0.0))
    verdict, _ = run(instance, profile(ERRORS, P95))
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert by_name(verdict)["web/errors"].explanation == (
        "only 10 requests over 20s, fewer than the 20 needed to judge the error ratio "
        "(error ratio so far 0%)")


def test_no_traffic_at_all_is_inconclusive_but_a_rate_floor_fails() -> None:
    instance = SimulatedInstance(FakeClock(), Traffic(rps=0))
    verdict, _ = run(instance, profile(ERRORS, RATE))
    checks = by_name(verdict)
    assert checks["web/errors"].outcome is Outcome.INCONCLUSIVE
    assert checks["web/rate"].outcome is Outcome.FAILED
    assert checks["web/rate"].explanation == (
        "request rate 0 req/s (0 requests) over 20s is below the 1 req/s minimum")


def test_process_restart_during_the_window_is_noted() -> None:
    instance = SimulatedInstance(FakeClock(), Traffic(rps=20),
                                 phases=[(7.0, Traffic(rps=20, started=2000.0))])
    verdict, _ = run(instance, profile())
    errors = by_name(verdict)["web/errors"]
    assert errors.outcome is Outcome.SUCCESSFUL
    # The 40 requests between the scrape at 5s and the restart at 7s are lost, as in PromQL.
    assert errors.data["requests"] == 100 + 60 + 100 + 100
    assert errors.explanation.endswith(
        "; the process restarted once during the window (counters reset)")


def test_should_stop_interrupts_between_samples() -> None:
    clock = FakeClock()
    instance = SimulatedInstance(clock, Traffic(rps=20))
    verdict, messages = run(instance, profile(duration=600),
                            should_stop=lambda: clock.elapsed >= 7)
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert verdict.summary == "stopped after 7s, before verification could decide"
    assert clock.elapsed == pytest.approx(7.0, abs=0.3)
    assert max(clock.sleeps) <= 0.25
    checks = by_name(verdict)
    assert checks["stopped"].outcome is Outcome.INCONCLUSIVE
    assert checks["web/errors"].explanation.startswith(
        "not judged: the window ended after 5s because verification was stopped")
    assert "verification stopped after 7s" in messages[-1]


def test_stop_before_anything_ran() -> None:
    instance = SimulatedInstance(FakeClock())
    verdict, _ = run(instance, profile(), should_stop=lambda: True)
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert instance.fetched == []


def test_every_service_with_an_endpoint_is_verified() -> None:
    instance = SimulatedInstance(FakeClock(), Traffic(rps=20))
    target = VerificationTarget("acme/prod", {"web": "http://127.0.0.1:9",
                                              "api": "http://127.0.0.1:10", "batch": None})
    verdict, _ = run(instance, profile(ERRORS, P95), target=target)
    assert verdict.outcome is Outcome.SUCCESSFUL
    assert [c.name for c in verdict.checks] == ["web/errors", "web/p95", "api/errors", "api/p95"]
    assert by_name(verdict)["api/p95"].data["service"] == "api"
    assert len(instance.fetched) == 10


def test_no_endpoint_at_all_is_inconclusive() -> None:
    verdict, _ = run(SimulatedInstance(FakeClock()), profile(),
                     target=VerificationTarget("acme/prod", {"web": None}))
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert verdict.summary == ("endpoint: acme/prod has no service endpoint to verify "
                               "(services: web)")


def test_no_checks_is_inconclusive() -> None:
    verdict, _ = run(SimulatedInstance(FakeClock()), Verification(health=None))
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert verdict.summary == "no checks ran"


def test_unknown_source_and_bad_params_are_errors() -> None:
    instance = SimulatedInstance(FakeClock(), Traffic(rps=20))
    prof = profile({"name": "dd", "metric": "avg:x{*}", "source": "datadog", "fail_above": 1},
                   {"name": "bad", "metric": "error_ratio", "fail_above": 0.1,
                    "params": {"status_lable": "code"}})
    verdict, _ = run(instance, prof)
    checks = by_name(verdict)
    assert verdict.outcome is Outcome.ERROR
    assert checks["web/dd"].explanation == "cannot measure: no metric source named 'datadog'"
    assert checks["web/bad"].outcome is Outcome.ERROR
    assert "status_lable" in checks["web/bad"].explanation


def test_wrong_metric_name_ends_as_error() -> None:
    instance = SimulatedInstance(FakeClock(), Traffic(rps=20))
    prof = profile({"name": "errors", "metric": "error_ratio", "fail_above": 0.05,
                    "params": {"requests_metric": "http_requests_total"}})
    verdict, _ = run(instance, prof)
    assert verdict.outcome is Outcome.ERROR
    assert "the endpoint exposes no metric 'http_requests_total'; set params.requests_metric" \
        in verdict.summary


def test_gauge_check_reads_the_latest_value() -> None:
    instance = SimulatedInstance(FakeClock(), Traffic(rps=20))
    prof = profile({"name": "start", "metric": "process_start_time_seconds",
                    "fail_above": 999})
    verdict, _ = run(instance, prof)
    check = by_name(verdict)["web/start"]
    assert check.outcome is Outcome.FAILED
    assert check.explanation == ("process_start_time_seconds 1,000 (at the last scrape) over 20s "
                                 "is above the 999 limit")
    assert [p["at"] for p in check.data["series"]["process_start_time_seconds"]] == [
        0, 5, 10, 15, 20]


# --- a query-style source fits the same port ---------------------------------------------------


class QuerySource:
    """Like a Prometheus range query: every sample returns the window so far."""

    def __init__(self, values: Mapping[float, float]) -> None:
        self.values = values
        self.opened: list[tuple[MetricTarget, MetricWindow]] = []
        self.closed = 0

    def problems(self, check: MetricCheck) -> list[str]:
        return []

    def open(self, target: MetricTarget, checks: Sequence[MetricCheck],
             window: MetricWindow) -> QuerySource:
        self.opened.append((target, window))
        self.checks = list(checks)
        return self

    def sample(self, elapsed: float) -> dict[str, Measurement]:
        if elapsed == 0:
            return {c.name: Measurement(label=c.metric, span=0.0) for c in self.checks}
        return {c.name: Measurement(value=self.values[elapsed], label=c.metric, span=elapsed,
                                    detail="from Prometheus") for c in self.checks}

    def close(self) -> None:
        self.closed += 1


def test_a_query_source_fits_the_port() -> None:
    source = QuerySource({10.0: 0.7, 20.0: 0.9})
    checks: MetricSource = source
    sources = MetricSources({"prom": checks})
    prof = profile({"name": "apdex", "metric": 'apdex{instance="{key}"}', "source": "prom",
                    "fail_below": 0.8}, interval=10)
    target = VerificationTarget("acme/prod", {"web": "http://127.0.0.1:9"},
                                labels={"customer": "acme", "tier": "gold"})
    verdict, _ = run(SimulatedInstance(FakeClock()), prof, target=target, sources=sources)
    assert verdict.outcome is Outcome.SUCCESSFUL
    assert verdict.summary == ('web/apdex: apdex{instance="{key}"} 0.9 (from Prometheus) over '
                               '20s meets the 0.8 minimum')
    opened_target, window = source.opened[0]
    assert opened_target.variables() == {"customer": "acme", "tier": "gold", "key": "acme/prod",
                                         "service": "web", "base_url": "http://127.0.0.1:9"}
    assert window == MetricWindow(20, 10)
    assert source.closed == 1


def test_a_source_that_cannot_serve_the_target_is_error() -> None:
    class Broken(QuerySource):
        def open(self, target: MetricTarget, checks: Sequence[MetricCheck],
                 window: MetricWindow) -> QuerySource:
            raise VerificationError("no API key for Datadog")

    sources = MetricSources({"dd": Broken({})})
    verdict, _ = run(SimulatedInstance(FakeClock()),
                     profile({"name": "x", "metric": "q", "source": "dd", "fail_above": 1}),
                     sources=sources)
    assert verdict.outcome is Outcome.ERROR
    assert verdict.summary == "web/x: cannot measure: no API key for Datadog"


@pytest.mark.parametrize(("elapsed", "interval", "duration", "expected"), [
    (0.0, 5.0, 20.0, 5.0),
    (5.0, 5.0, 20.0, 10.0),
    (5.3, 5.0, 20.0, 10.0),
    (8.0, 4.0, 9.0, 9.0),
    (20.0, 5.0, 20.0, 25.0),
    (21.0, 5.0, 20.0, 25.0),
])
def test_next_tick(elapsed: float, interval: float, duration: float, expected: float) -> None:
    assert _next_tick(elapsed, interval, duration) == expected


def test_a_window_of_zero_seconds_cannot_judge_metrics() -> None:
    instance = SimulatedInstance(FakeClock(), Traffic(rps=20))
    verdict, _ = run(instance, profile(duration=0))
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert instance.fetched == [0]
    assert verdict.summary == "web/errors: only 0 of the 1 measurements needed over 0s"


def test_a_session_that_raises_counts_as_failed_reads() -> None:
    class Raising(QuerySource):
        def sample(self, elapsed: float) -> dict[str, Measurement]:
            raise VerificationError("the query API answered 500")

    sources = MetricSources({"q": Raising({})})
    instance = SimulatedInstance(FakeClock())
    verdict, _ = run(instance, profile({"name": "x", "metric": "q", "source": "q",
                                        "fail_above": 1}), sources=sources)
    assert verdict.outcome is Outcome.ERROR
    assert verdict.summary == ("web/x: could not read the 'q' metrics 3 times in a row (more "
                               "than the limit of 2): the query API answered 500")
    assert instance.clock.elapsed == 10

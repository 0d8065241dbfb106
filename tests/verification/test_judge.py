"""Judging a metric check: the four outcomes kept apart, numbers in words."""

from __future__ import annotations

import pytest

from rollwave.analysis.results import Outcome
from rollwave.core.model import MetricCheck
from rollwave.ports.metrics import Evidence, Measurement, SeriesPoint
from rollwave.verification.judge import Rules, decisive, judge, trailing_errors, wilson_lower

RULES = Rules(min_requests=20, consecutive_error_limit=2)
ERRORS = MetricCheck(name="errors", metric="error_ratio", fail_above=0.05)


def ratio(errors: float, requests: float, span: float, *,
          limit: float | None = 0.05) -> Measurement:
    return Measurement(
        value=errors / requests if requests else None, label="error ratio", unit="ratio",
        span=span, count=requests, detail=f"{errors:g} of {requests:g} requests",
        evidence=None if limit is None else Evidence(errors, requests, limit),
    )


BASELINE = Measurement(label="error ratio", unit="ratio", span=0.0)
DOWN = Measurement.failed("cannot connect to http://127.0.0.1:1/metrics: connection refused",
                          label="error ratio")


def test_breach_over_the_full_window_fails_with_the_numbers_in_words() -> None:
    result = judge("web/errors", ERRORS, [BASELINE, ratio(60, 300, 10), ratio(156, 500, 20)],
                   RULES, final=True)
    assert result is not None
    assert result.outcome is Outcome.FAILED
    assert result.explanation == ("error ratio 31.2% (156 of 500 requests) over 20s is above "
                                  "the 5% limit")
    assert (result.value, result.threshold, result.samples) == (pytest.approx(0.312), 0.05, 2)
    assert result.data["requests"] == 500
    assert result.data["decided_early"] is False


def test_within_the_limit_passes_only_at_the_end() -> None:
    history = [BASELINE, ratio(1, 250, 10), ratio(2, 500, 20)]
    assert judge("e", ERRORS, history, RULES, final=False) is None
    result = judge("e", ERRORS, history, RULES, final=True)
    assert result is not None
    assert result.outcome is Outcome.SUCCESSFUL
    assert result.explanation == ("error ratio 0.4% (2 of 500 requests) over 20s is within the "
                                  "5% limit")


def test_decisive_evidence_fails_early() -> None:
    history = [BASELINE, ratio(40, 100, 4)]
    result = judge("e", ERRORS, history, RULES, final=False)
    assert result is not None
    assert result.outcome is Outcome.FAILED
    assert result.data["decided_early"] is True
    assert result.explanation.startswith(
        "error ratio 40% (40 of 100 requests) over the first 4s is above the 5% limit; "
        "decided early: 40 of 100 requests breach it, at least 26")


@pytest.mark.parametrize("history", [
    [BASELINE, ratio(2, 10, 1)],            # fewer requests than min_requests
    [BASELINE, ratio(2, 25, 1)],            # 8% but not decisively above 5%
    [BASELINE, ratio(30, 100, 4, limit=None)],  # no evidence offered by the source
])
def test_no_early_decision_without_decisive_evidence(history: list[Measurement]) -> None:
    assert judge("e", ERRORS, history, RULES, final=False) is None


def test_too_few_requests_is_inconclusive_even_when_the_ratio_looks_bad() -> None:
    result = judge("e", ERRORS, [BASELINE, ratio(3, 7, 20)], RULES, final=True)
    assert result is not None
    assert result.outcome is Outcome.INCONCLUSIVE
    assert result.explanation == ("only 7 requests over 20s, fewer than the 20 needed to judge "
                                  "the error ratio (error ratio so far 42.9%)")


def test_no_requests_at_all_is_inconclusive() -> None:
    result = judge("e", ERRORS, [BASELINE, ratio(0, 0, 20)], RULES, final=True)
    assert result is not None
    assert result.outcome is Outcome.INCONCLUSIVE
    assert "only 0 requests over 20s" in result.explanation


def test_too_few_samples_is_inconclusive() -> None:
    check = ERRORS.model_copy(update={"min_samples": 3})
    result = judge("e", check, [BASELINE, ratio(0, 100, 5), ratio(0, 200, 10)], RULES,
                   final=True)
    assert result is not None
    assert result.outcome is Outcome.INCONCLUSIVE
    assert result.explanation == "only 2 of the 3 measurements needed over 10s"


def test_window_of_only_a_baseline_is_inconclusive() -> None:
    result = judge("e", ERRORS, [BASELINE], RULES, final=True)
    assert result is not None
    assert result.outcome is Outcome.INCONCLUSIVE


def test_no_value_without_request_count_is_inconclusive() -> None:
    check = MetricCheck(name="q", metric="some_query", source="prom", fail_above=1)
    empty = Measurement(label="some_query", span=20.0, detail="the query returned no series")
    result = judge("q", check, [empty], RULES, final=True)
    assert result is not None
    assert result.outcome is Outcome.INCONCLUSIVE
    assert result.explanation == "no some_query over 20s (the query returned no series)"


def test_errors_up_to_the_limit_are_tolerated() -> None:
    history = [BASELINE, DOWN, DOWN, ratio(1, 500, 20)]
    assert judge("e", ERRORS, history[:3], RULES, final=False) is None
    result = judge("e", ERRORS, history, RULES, final=True)
    assert result is not None
    assert result.outcome is Outcome.SUCCESSFUL
    assert result.data["failed_reads"] == 2


def test_more_consecutive_errors_than_the_limit_is_error_never_failed() -> None:
    history = [BASELINE, ratio(156, 500, 5), DOWN, DOWN, DOWN]
    for final in (False, True):
        result = judge("e", ERRORS, history, RULES, final=final)
        assert result is not None
        assert result.outcome is Outcome.ERROR
        assert result.explanation.startswith(
            "could not read the 'scrape' metrics 3 times in a row (more than the limit of 2): "
            "cannot connect")


def test_errors_that_are_not_consecutive_do_not_add_up() -> None:
    history = [DOWN, DOWN, BASELINE, DOWN, DOWN, ratio(0, 100, 5)]
    assert trailing_errors(history) == 0
    assert judge("e", ERRORS, history, RULES, final=False) is None


def test_unreadable_at_the_end_is_error_not_a_pass() -> None:
    result = judge("e", ERRORS, [BASELINE, ratio(0, 500, 20), DOWN], RULES, final=True)
    assert result is not None
    assert result.outcome is Outcome.ERROR
    assert "at the end of the window (1 failed reads in a row)" in result.explanation
    never = judge("e", ERRORS, [DOWN], RULES, final=True)
    assert never is not None
    assert never.outcome is Outcome.ERROR


def test_fail_below_and_both_limits_in_words() -> None:
    rate = Measurement(value=0.5, label="request rate", unit="req/s", span=20.0,
                       detail="10 requests")
    below = MetricCheck(name="rate", metric="request_rate", fail_below=1.0)
    result = judge("r", below, [rate], RULES, final=True)
    assert result is not None
    assert result.outcome is Outcome.FAILED
    assert result.explanation == ("request rate 0.5 req/s (10 requests) over 20s is below the "
                                  "1 req/s minimum")
    assert result.threshold == 1.0
    both = MetricCheck(name="rate", metric="request_rate", fail_below=0.1, fail_above=100)
    passed = judge("r", both, [rate], RULES, final=True)
    assert passed is not None
    assert passed.outcome is Outcome.SUCCESSFUL
    assert passed.explanation.endswith("is within the limits (0.1 req/s to 100 req/s)")
    meets = judge("r", MetricCheck(name="r", metric="request_rate", fail_below=0.1), [rate],
                  RULES, final=True)
    assert meets is not None
    assert meets.explanation.endswith("meets the 0.1 req/s minimum")


def test_latency_words_and_series_in_data() -> None:
    check = MetricCheck(name="p95", metric="p95_latency_ms", fail_above=250)
    series = {"p95_latency_ms": (SeriesPoint(10.0, 300.0, 250.0), SeriesPoint(20.0, 330.0, 250))}
    slow = Measurement(value=312.4, label="p95 latency", unit="ms", span=20.0, count=500,
                       detail="500 requests", series=series,
                       notes=("the process restarted once during the window (counters reset)",))
    result = judge("web/p95", check, [BASELINE, slow], RULES, final=True,
                   data={"service": "web"})
    assert result is not None
    assert result.explanation == (
        "p95 latency 312 ms (500 requests) over 20s is above the 250 ms limit; the process "
        "restarted once during the window (counters reset)")
    assert result.data["service"] == "web"
    assert result.data["series"]["p95_latency_ms"][0] == {"at": 10.0, "value": 300.0,
                                                          "count": 250.0}


def test_wilson_lower_bound() -> None:
    assert wilson_lower(0, 0) == 0.0
    assert wilson_lower(0, 100) == 0.0
    assert 0.25 < wilson_lower(156, 500) < 0.312
    assert wilson_lower(20, 20) == pytest.approx(20 / 29)
    assert decisive(Evidence(20, 20, 0.05), min_requests=20)
    assert not decisive(Evidence(19, 19, 0.05), min_requests=20)
    assert not decisive(Evidence(2, 25, 0.05), min_requests=20)

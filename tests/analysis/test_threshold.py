"""Threshold checks follow Argo Rollouts' EvaluateResult and assessMetricStatus."""

import pytest

from rollwave.analysis import (
    Condition,
    Measurement,
    Outcome,
    PolicyError,
    Series,
    ThresholdCheck,
    evaluate_measurement,
    evaluate_threshold,
    measure,
)

M = Measurement


def test_condition_parses_plain_and_argo_forms() -> None:
    assert Condition.parse("< 0.05") == Condition("<", 0.05)
    assert Condition.parse("result[0] >= 0.95") == Condition(">=", 0.95)
    assert Condition.parse("result != 1e3").holds(5.0)
    with pytest.raises(PolicyError) as err:
        Condition.parse("result is small")
    assert "comparison" in (err.value.hint or "")


@pytest.mark.parametrize(
    ("success", "failure", "value", "expected"),
    [
        ("<= 0.05", None, 0.01, Outcome.SUCCESSFUL),
        ("<= 0.05", None, 0.07, Outcome.FAILED),  # only success: not met is Failed
        (None, "> 0.10", 0.07, Outcome.SUCCESSFUL),  # only failure: not met is Successful
        (None, "> 0.10", 0.20, Outcome.FAILED),
        ("<= 0.05", "> 0.10", 0.07, Outcome.INCONCLUSIVE),  # both, neither met
        ("<= 0.05", "> 0.10", 0.20, Outcome.FAILED),
        ("<= 0.05", "> 0.10", 0.01, Outcome.SUCCESSFUL),
        (None, None, 123.0, Outcome.SUCCESSFUL),  # no condition: any value passes
    ],
)
def test_measurement_phases(success: str | None, failure: str | None, value: float,
                            expected: Outcome) -> None:
    check = ThresholdCheck(
        "c", metric="m",
        success=Condition.parse(success) if success else None,
        failure=Condition.parse(failure) if failure else None,
    )
    assert evaluate_measurement(check, M(value)) is expected


def test_an_unreadable_source_is_error_never_failed() -> None:
    check = ThresholdCheck("c", metric="m", success=Condition("<", 1))
    assert evaluate_measurement(check, M(None, error="connection refused")) is Outcome.ERROR
    assert evaluate_measurement(check, M(None)) is Outcome.ERROR  # Argo: an empty result errors
    lenient = ThresholdCheck("c", metric="m", success=Condition("<", 1),
                             no_data=Outcome.INCONCLUSIVE)
    assert evaluate_measurement(lenient, M(None)) is Outcome.INCONCLUSIVE


def test_failed_only_beyond_the_failure_limit() -> None:
    check = ThresholdCheck("c", metric="m", success=Condition("<", 1), failure_limit=2, count=10)
    run = evaluate_threshold(check, [M(5), M(0), M(5)])
    assert run.phase is None
    assert run.failed == 2
    run = evaluate_threshold(check, [M(5), M(0), M(5), M(5), M(0)])
    assert run.phase is Outcome.FAILED
    assert run.decided_at == 3
    assert "3 failed measurements > failure_limit 2" in run.reason


def test_default_failure_limit_zero_fails_on_the_first_failure() -> None:
    run = evaluate_threshold(ThresholdCheck("c", metric="m", success=Condition("<", 1)), [M(2)])
    assert run.phase is Outcome.FAILED


def test_inconclusive_limit() -> None:
    check = ThresholdCheck("c", metric="m", success=Condition("<", 1), failure=Condition(">", 2),
                           inconclusive_limit=1, count=5)
    assert evaluate_threshold(check, [M(1.5)]).phase is None
    assert evaluate_threshold(check, [M(1.5), M(1.5)]).phase is Outcome.INCONCLUSIVE


def test_consecutive_errors_beyond_the_limit_are_error_and_a_reading_resets_them() -> None:
    check = ThresholdCheck("c", metric="m", success=Condition("<", 1), count=20)
    down = M(None, error="timeout")
    four = evaluate_threshold(check, [down] * 4)
    assert four.phase is None
    assert four.consecutive_errors == 4
    assert evaluate_threshold(check, [down] * 5).phase is Outcome.ERROR
    reset = evaluate_threshold(check, [down] * 4 + [M(0.5)] + [down] * 4)
    assert reset.phase is None
    assert reset.errors == 8
    assert reset.consecutive_errors == 4


def test_count_reached_is_successful_and_running_reads_inconclusive() -> None:
    check = ThresholdCheck("c", metric="m", success=Condition("<", 1), count=3)
    done = evaluate_threshold(check, [M(0.1), M(0.2), M(0.3)])
    assert done.phase is Outcome.SUCCESSFUL
    running = evaluate_threshold(check, [M(0.1)]).to_check_result()
    assert running.outcome is Outcome.INCONCLUSIVE
    assert running.data["running"]


def test_bad_limits_are_refused() -> None:
    with pytest.raises(PolicyError):
        ThresholdCheck("c", metric="m", count=0)
    with pytest.raises(PolicyError):
        ThresholdCheck("c", metric="m", consecutive_error_limit=-1)


def test_measure_aggregates_each_interval() -> None:
    requests = Series.of([100] * 10, step=60)
    errors = Series.of([1, 1, 1, 1, 1, 10, 10, 10, 10, 10], step=60)
    ratio = ThresholdCheck("err", numerator="errors", denominator="requests")
    ms = measure(ratio, {"errors": errors, "requests": requests}, 0, 600, 300)
    assert [m.value for m in ms] == pytest.approx([0.01, 0.10])
    latency = Series.of([1, 2, 3, None, None, None], step=60, errors=[3, 4, 5])
    gauge = ThresholdCheck("lat", metric="latency")
    ms = measure(gauge, {"latency": latency}, 0, 360, 180)
    assert ms[0].value == 2.0
    assert ms[1].error is not None  # every read in the interval failed
    assert measure(gauge, {"latency": latency}, 0, 360, 180, aggregate="max")[0].value == 3.0

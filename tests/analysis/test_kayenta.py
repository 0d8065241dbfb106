"""Kayenta's NetflixACAJudge: classification, scoring and thresholds as published."""

import numpy as np
import pytest

from rollwave.analysis import Direction, KayentaMetric, Outcome, PolicyError, kayenta_judge
from rollwave.analysis.kayenta import (
    Label,
    MetricClassification,
    ScoreLabel,
    classify_metric,
    classify_score,
    score,
)

A = np.array


def test_no_data_depends_on_the_nan_strategy() -> None:
    empty = A([], dtype=float)
    assert classify_metric(KayentaMetric("m"), empty, A([1.0])).label is Label.PASS
    removed = KayentaMetric("m", nan_strategy="remove")
    assert classify_metric(removed, A([np.nan]), A([1.0])).label is Label.NODATA
    required = KayentaMetric("m", nan_strategy="remove", must_have_data=True)
    assert classify_metric(required, empty, A([1.0])).label is Label.NODATA_FAIL
    critical = KayentaMetric("m", nan_strategy="remove", must_have_data=True, critical=True)
    r = classify_metric(critical, empty, A([1.0]))
    assert r.label is Label.NODATA
    assert r.critical


def test_nan_replaced_by_zero_by_default() -> None:
    r = classify_metric(KayentaMetric("m"), A([np.nan, np.nan]), A([0.0, 0.0]))
    assert r.label is Label.PASS
    assert r.reason
    assert "identical" in r.reason


def test_identical_and_all_equal_data_pass() -> None:
    m = KayentaMetric("m")
    assert classify_metric(m, A([1.0, 2.0, 3.0]), A([3.0, 2.0, 1.0])).label is Label.PASS
    assert classify_metric(m, A([5.0, 5.0]), A([5.0, 5.0, 5.0])).label is Label.PASS


def test_high_and_low_follow_the_direction() -> None:
    ctl = A([1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 1.02])
    up = ctl * 2
    down = ctl / 2
    assert classify_metric(KayentaMetric("m", Direction.EITHER), ctl, up).label is Label.HIGH
    assert classify_metric(KayentaMetric("m", Direction.EITHER), ctl, down).label is Label.LOW
    assert classify_metric(KayentaMetric("m", Direction.INCREASE), ctl, down).label is Label.PASS
    assert classify_metric(KayentaMetric("m", Direction.DECREASE), ctl, up).label is Label.PASS


def test_constant_samples_get_tiny_noise_and_are_still_judged() -> None:
    r = classify_metric(KayentaMetric("m", Direction.INCREASE), A([1.0] * 5), A([2.0] * 5))
    assert r.label is Label.HIGH
    assert r.deviation == pytest.approx(2.0, rel=1e-3)


def test_allowed_increase_is_the_effect_size_floor() -> None:
    ctl = A([1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 1.02] * 3)
    exp = ctl * 1.2  # significant, but only a 1.2 mean ratio
    assert classify_metric(KayentaMetric("m", Direction.INCREASE), ctl, exp).label is Label.HIGH
    floor = KayentaMetric("m", Direction.INCREASE, allowed_increase=1.25)
    assert classify_metric(floor, ctl, exp).label is Label.PASS


def test_critical_high_fails_the_canary() -> None:
    ctl = A([1.0, 1.1, 0.9, 1.0, 1.05, 0.95])
    m = KayentaMetric("errors", Direction.INCREASE, critical=True)
    r = kayenta_judge([m, KayentaMetric("other")], {"errors": (ctl, ctl * 3), "other": (ctl, ctl)})
    assert r.score == 0.0
    assert r.label is ScoreLabel.FAIL
    assert r.reason
    assert "Critical" in r.reason


def _mc(name: str, label: Label, groups: tuple[str, ...]) -> MetricClassification:
    return MetricClassification(name, label, None, 1.0, False, groups)


def test_weighted_sum_by_hand() -> None:
    results = [
        _mc("a1", Label.PASS, ("A",)),
        _mc("a2", Label.HIGH, ("A",)),
        _mc("b1", Label.PASS, ("B",)),
    ]
    total, groups, reason = score(results)
    assert groups == {"A": 50.0, "B": 100.0}
    assert total == 75.0
    assert reason is None
    assert score(results, {"A": 70.0})[0] == 65.0  # B gets the remaining 30
    # a group whose metrics all lack data counts 100
    nodata = [*results, _mc("c1", Label.NODATA, ("C",))]
    assert score(nodata)[0] == pytest.approx((50 + 100 + 100) / 3, abs=0.01)


def test_half_the_metrics_without_data_fails() -> None:
    results = [_mc("a", Label.NODATA, ("A",)), _mc("b", Label.PASS, ("B",))]
    total, _, reason = score(results)
    assert total == 0.0
    assert reason
    assert "NODATA" in reason


def test_muted_metrics_do_not_count() -> None:
    muted = MetricClassification("m", Label.HIGH, None, 2.0, False, ("A",), muted=True)
    total, _, _ = score([muted, _mc("b", Label.PASS, ("B",))])
    assert total == 100.0


def test_score_thresholds() -> None:
    assert classify_score(96, 95, 75) is ScoreLabel.PASS
    assert classify_score(80, 95, 75) is ScoreLabel.MARGINAL
    assert classify_score(74.99, 95, 75) is ScoreLabel.FAIL
    with pytest.raises(PolicyError):
        kayenta_judge([KayentaMetric("m")], {}, pass_threshold=50, marginal_threshold=75)


def test_check_result_mapping() -> None:
    ctl = A([1.0, 1.1, 0.9, 1.0])
    r = kayenta_judge([KayentaMetric("lat", Direction.INCREASE)], {"lat": (ctl, ctl * 2)})
    res = r.to_check_result()
    assert res.outcome is Outcome.FAILED
    assert "lat High" in res.explanation
    assert "score 0.00" in res.explanation

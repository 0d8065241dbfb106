"""Multiwindow, multi-burn-rate SLO checks, scaled to the bake window."""

import pytest

from rollwave.analysis import (
    SRE_WINDOWS,
    BurnRateCheck,
    BurnWindow,
    Outcome,
    PolicyError,
    Series,
    evaluate_burn_rate,
    scale_windows,
)

SLO = BurnRateCheck("slo", "errors", "requests", objective=0.99, min_events=30)


def series(errors: list[float], requests: list[float], err_idx: list[int] | None = None
           ) -> tuple[Series, Series]:
    return (Series.of(errors, step=60, errors=err_idx), Series.of(requests, step=60,
                                                                   errors=err_idx))


def test_sre_windows_and_their_scaling() -> None:
    assert [(w.long, w.short, w.factor) for w in SRE_WINDOWS] == [
        (3600, 300, 14.4), (21600, 1800, 6.0)]
    # a 30-minute bake: x 1/12 -> 5 min / 25 s (one sample) and 30 min / 2.5 min
    scaled = scale_windows(SRE_WINDOWS, bake=1800, step=60)
    assert [(w.long, w.short, w.factor) for w in scaled] == [
        (300, 60, 14.4), (1800, 150, 6.0)]
    # never grows beyond the workbook's windows
    assert scale_windows(SRE_WINDOWS, bake=86400, step=60) == SRE_WINDOWS


def test_fires_when_both_windows_burn() -> None:
    # budget 1 %: 20 % errors is a burn of 20x in every window
    e, r = series([20] * 30, [100] * 30)
    res = evaluate_burn_rate(SLO, e, r, now=1800, windows=scale_windows(SRE_WINDOWS, 1800, 60))
    assert res.outcome is Outcome.FAILED
    assert "burning 20.0x and 20.0x" in res.explanation


def test_short_window_stops_the_alert_after_recovery() -> None:
    # 10 % errors for 25 minutes (burn 10, over 6), then 5 clean minutes
    e, r = series([10] * 25 + [0] * 5, [100] * 30)
    res = evaluate_burn_rate(SLO, e, r, now=1800, windows=scale_windows(SRE_WINDOWS, 1800, 60))
    assert res.outcome is Outcome.SUCCESSFUL  # the 30-min window still burns 8.3x, the short 0


def test_six_x_pair_alone() -> None:
    windows = (BurnWindow(1800, 150, 6.0),)
    e, r = series([7] * 30, [100] * 30)  # 7x
    assert evaluate_burn_rate(SLO, e, r, now=1800, windows=windows).outcome is Outcome.FAILED
    e, r = series([5] * 30, [100] * 30)  # 5x
    assert evaluate_burn_rate(SLO, e, r, now=1800, windows=windows).outcome is Outcome.SUCCESSFUL


def test_windows_are_clipped_to_the_update() -> None:
    # the old version burned; since the update (minute 20) nothing does
    e, r = series([30] * 20 + [0] * 10, [100] * 30)
    res = evaluate_burn_rate(SLO, e, r, now=1800, since=1200)
    assert res.outcome is Outcome.SUCCESSFUL


def test_low_traffic_cannot_fire() -> None:
    e, r = series([1] * 10, [2] * 10)  # 50 % errors on 20 requests
    res = evaluate_burn_rate(SLO, e, r, now=600)
    assert res.outcome is Outcome.INCONCLUSIVE
    assert "too little traffic" in res.explanation


def test_unreadable_source_is_error() -> None:
    e, r = series([0] * 10, [100] * 10, err_idx=[5, 6, 7, 8, 9])
    res = evaluate_burn_rate(SLO, e, r, now=600)
    assert res.outcome is Outcome.ERROR
    assert evaluate_burn_rate(SLO, None, r, now=600).outcome is Outcome.INCONCLUSIVE


def test_objective_must_be_a_fraction() -> None:
    with pytest.raises(PolicyError):
        BurnRateCheck("slo", "e", "r", objective=99.9)

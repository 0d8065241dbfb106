"""Rollwave's canary judge on hand-made series."""

import numpy as np
import pytest

from rollwave.analysis import (
    Direction,
    GaugeCheck,
    Outcome,
    PolicyError,
    RatioCheck,
    Series,
    Windows,
    judge_gauge,
    judge_ratio,
)
from rollwave.analysis.incidents import pooled_shift


def win(before: dict[str, list[float] | np.ndarray], after: dict[str, list[float] | np.ndarray],
        errors_after: list[int] | None = None) -> Windows:
    n = len(next(iter(before.values())))
    return Windows(
        before={k: Series.of(list(v), start=0, step=60) for k, v in before.items()},
        after={k: Series.of(list(v), start=n * 60, step=60, errors=errors_after)
               for k, v in after.items()},
    )


def noisy(level: float, n: int, seed: int, sigma: float = 0.05) -> np.ndarray:
    return level * np.exp(np.random.default_rng(seed).normal(0, sigma, n))


LAT = GaugeCheck("latency", "latency")


def test_clear_latency_regression() -> None:
    w = win({"latency": noisy(0.2, 60, 1)}, {"latency": noisy(0.3, 10, 2)})
    r = judge_gauge(LAT, w)
    assert r.outcome is Outcome.FAILED
    assert r.data["state"] == "regressed"
    assert r.data["effect"] == pytest.approx(0.5, abs=0.08)
    assert "-> regression" in r.explanation
    assert "0.2" in r.explanation


def test_small_change_within_the_floor_is_cleared() -> None:
    w = win({"latency": noisy(0.2, 60, 1)}, {"latency": noisy(0.21, 30, 2)})
    r = judge_gauge(LAT, w)
    assert r.outcome is Outcome.SUCCESSFUL
    assert r.data["state"] == "cleared"


def test_few_noisy_samples_stay_undecided_but_pass() -> None:
    w = win({"latency": noisy(0.2, 60, 1, 0.4)}, {"latency": noisy(0.26, 3, 2, 0.4)})
    r = judge_gauge(LAT, w)
    assert r.outcome is Outcome.SUCCESSFUL
    assert r.data["state"] == "undecided"


def test_a_move_shared_with_peers_is_not_the_instance() -> None:
    rng = np.random.default_rng(0)
    common = np.concatenate([np.sin(np.linspace(0, 3, 60)) * 0.3, np.full(10, 0.8)])
    def inst(level: float, seed: int) -> Windows:
        vals = level * np.exp(common + np.random.default_rng(seed).normal(0, 0.03, 70))
        return win({"latency": vals[:60]}, {"latency": vals[60:]})
    subject = inst(0.2, 1)
    peers = [inst(rng.uniform(0.1, 1), s) for s in range(2, 7)]
    alone = judge_gauge(LAT, subject)
    assert alone.outcome is Outcome.FAILED  # on its own the time-of-day rise looks like one
    together = judge_gauge(LAT, subject, peers)
    assert together.outcome is Outcome.SUCCESSFUL
    assert "it shares with 5 stable peers" in together.explanation


def test_peers_that_wander_on_their_own_lend_no_correction() -> None:
    subject = win({"latency": noisy(0.2, 60, 1)}, {"latency": noisy(0.2, 10, 2)})
    peers = [win({"latency": noisy(0.2, 60, s)}, {"latency": noisy(0.1, 10, s + 50)})
             for s in range(3, 8)]
    r = judge_gauge(LAT, subject, peers)
    assert r.outcome is Outcome.SUCCESSFUL  # the peers halved; the instance did not move
    assert "not following" in r.explanation


def test_traffic_driven_latency_is_adjusted_for_load() -> None:
    rng = np.random.default_rng(4)
    req = rng.uniform(50, 400, 70)
    lat = 0.1 * (req / 100) ** 0.6 * np.exp(rng.normal(0, 0.03, 70))
    req[60:] *= 3.0  # a burst right after the update
    lat[60:] *= 3.0 ** 0.6
    w = win({"latency": lat[:60], "requests": req[:60]},
            {"latency": lat[60:], "requests": req[60:]})
    plain = judge_gauge(LAT, w)
    adjusted = judge_gauge(GaugeCheck("latency", "latency", load="requests"), w)
    assert plain.outcome is Outcome.FAILED
    assert adjusted.outcome is Outcome.SUCCESSFUL
    assert "elasticity 0.6" in adjusted.explanation


def test_a_leak_is_caught_by_its_slope_before_it_is_large() -> None:
    before = noisy(500, 60, 1, 0.005)
    noise = np.exp(np.random.default_rng(2).normal(0, 0.005, 15))
    after = 500 * (1 + 0.008 * np.arange(1, 16)) * noise
    w = win({"memory": before}, {"memory": after})
    level_only = judge_gauge(GaugeCheck("memory", "memory"), w)
    assert level_only.outcome is Outcome.SUCCESSFUL  # +6 % median so far: under the floor
    leak = judge_gauge(GaugeCheck("memory", "memory", trend_horizon=3600), w)
    assert leak.outcome is Outcome.FAILED
    assert leak.data["trend"]
    assert "climbing" in leak.explanation


def test_decrease_is_bad_direction() -> None:
    check = GaugeCheck("throughput", "rps", direction=Direction.DECREASE)
    w = win({"rps": noisy(100, 60, 1)}, {"rps": noisy(50, 10, 2)})
    assert judge_gauge(check, w).outcome is Outcome.FAILED
    w_up = win({"rps": noisy(100, 60, 1)}, {"rps": noisy(200, 10, 2)})
    assert judge_gauge(check, w_up).outcome is Outcome.SUCCESSFUL


def test_no_data_and_unreadable_source_are_kept_apart() -> None:
    missing = win({"latency": noisy(0.2, 60, 1)}, {"latency": [None, None, None]})
    r = judge_gauge(LAT, missing)
    assert r.outcome is Outcome.INCONCLUSIVE
    assert "only 0 samples" in r.explanation
    down = win({"latency": noisy(0.2, 60, 1)}, {"latency": [0.2] * 6}, errors_after=[1, 2, 3, 4, 5])
    r = judge_gauge(LAT, down)
    assert r.outcome is Outcome.ERROR
    assert "could not be read" in r.explanation
    assert judge_gauge(LAT, win({"x": [1.0] * 60}, {"x": [1.0] * 5})).outcome is (
        Outcome.INCONCLUSIVE)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(PolicyError):
        GaugeCheck("x", "x", confidence=1.5)
    with pytest.raises(PolicyError):
        RatioCheck("x", "e", "r", allowed_decrease=1.0)


ERR = RatioCheck("errors", "errors", "requests")


def ratio_windows(e0: list[float], n0: list[float], e1: list[float], n1: list[float]) -> Windows:
    return win({"errors": e0, "requests": n0}, {"errors": e1, "requests": n1})


def test_ratio_regression_on_pooled_counts() -> None:
    w = ratio_windows([1] * 60, [200] * 60, [6] * 5, [200] * 5)  # 0.5 % -> 3 %
    r = judge_ratio(ERR, w)
    assert r.outcome is Outcome.FAILED
    assert "30/1000 = 3.000%" in r.explanation


def test_low_traffic_noise_is_not_a_regression() -> None:
    # 2 errors out of 9 requests looks like 22 %, but against 3/400 before it proves little
    w = ratio_windows([0, 0, 1, 0] * 15, [7, 6, 7, 7] * 15, [1, 0, 1], [3, 3, 3])
    r = judge_ratio(ERR, w)
    assert r.outcome is not Outcome.FAILED


def test_min_change_keeps_tiny_absolute_moves_from_failing() -> None:
    # 0.01 % -> 0.05 %: five times more, but only +0.04 points
    w = ratio_windows([1] * 60, [10000] * 60, [5] * 30, [10000] * 30)
    assert judge_ratio(ERR, w).outcome is Outcome.SUCCESSFUL
    strict = RatioCheck("errors", "errors", "requests", min_change=0.0)
    assert judge_ratio(strict, w).outcome is Outcome.FAILED


def test_too_little_traffic_is_inconclusive() -> None:
    w = ratio_windows([0] * 60, [100] * 60, [0], [5])
    r = judge_ratio(ERR, w)
    assert r.outcome is Outcome.INCONCLUSIVE
    assert "only 5 requests" in r.explanation


def test_fleet_wide_error_rise_is_discounted_when_peers_surely_moved() -> None:
    subject = ratio_windows([2] * 60, [1000] * 60, [6] * 10, [1000] * 10)
    peers = [ratio_windows([2] * 60, [1000] * 60, [6] * 10, [1000] * 10) for _ in range(5)]
    assert judge_ratio(ERR, subject).outcome is Outcome.FAILED
    r = judge_ratio(ERR, subject, peers)
    assert r.outcome is Outcome.SUCCESSFUL
    assert "5 stable peers moved" in r.explanation


def test_pooled_shift_over_stable_instances() -> None:
    members = [win({"latency": noisy(0.2, 60, s)}, {"latency": noisy(0.4, 10, s + 9)})
               for s in range(4)]
    result, moved = pooled_shift(LAT, members)
    assert result.outcome is Outcome.FAILED
    assert moved == [True] * 4
    calm = [win({"latency": noisy(0.2, 60, s)}, {"latency": noisy(0.2, 10, s + 9)})
            for s in range(4)]
    result, moved = pooled_shift(LAT, calm)
    assert result.outcome is Outcome.SUCCESSFUL
    assert not any(moved)
    errs = [ratio_windows([1] * 60, [100] * 60, [8] * 10, [100] * 10) for _ in range(3)]
    result, moved = pooled_shift(ERR, errs)
    assert result.outcome is Outcome.FAILED
    assert all(moved)

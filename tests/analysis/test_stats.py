"""Statistics checked by hand and against scipy."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from rollwave.analysis import stats as st


def test_mann_whitney_u_by_hand() -> None:
    # x=[1,2,2], y=[2,3]: pairs x>y count 1, ties 1/2: (1,2)=0 (1,3)=0 (2,2)=.5 (2,3)=0 (2,2)=.5
    r = st.mann_whitney([1, 2, 2], [2, 3])
    assert r.u == pytest.approx(1.0)
    assert r.u_other == pytest.approx(5.0)
    assert st.mann_whitney([1, 2, 3], [4, 5, 6]).u == 0.0


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_mann_whitney_matches_scipy_asymptotic(alternative: str) -> None:
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(0.3, 1, 30), 1)
    y = np.round(rng.normal(0.0, 1, 40), 1)
    ours = st.mann_whitney(x, y, alternative)
    ref = sps.mannwhitneyu(x, y, alternative=alternative, method="asymptotic")
    assert ours.u == pytest.approx(ref.statistic)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_hodges_lehmann_by_hand() -> None:
    # differences of [3,4,5] - [1,2,3]: 2,1,0,3,2,1,4,3,2 -> median 2
    hl = st.hodges_lehmann([3, 4, 5], [1, 2, 3], confidence=0.5)
    assert hl.estimate == 2.0
    assert hl.lower <= 2.0 <= hl.upper


def test_hodges_lehmann_interval_widens_with_inflation() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(1, 1, 40), rng.normal(0, 1, 40)
    narrow = st.hodges_lehmann(x, y, 0.95)
    wide = st.hodges_lehmann(x, y, 0.95, variance_inflation=4.0)
    assert wide.lower < narrow.lower < narrow.estimate < narrow.upper < wide.upper


def _slow_interval(x: np.ndarray, y: np.ndarray, conf: float) -> tuple[float, float, float]:
    from scipy import optimize

    def root(zq: float) -> float:
        lo, hi = x.min() - y.max(), x.max() - y.min()
        fl, fu = st._wilcoxon_diff(lo, zq, x, y), st._wilcoxon_diff(hi, zq, x, y)
        if fl <= 0:
            return float(lo)
        if fu >= 0:
            return float(hi)
        return float(optimize.brentq(lambda m: st._wilcoxon_diff(m, zq, x, y), lo, hi, xtol=1e-12))

    z = float(sps.norm.ppf((1 - conf) / 2))
    return root(-z), root(0.0), root(z)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wilcoxon_interval_equals_kayentas_rank_by_rank_inversion(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(1, 1, 25), 1)  # rounded: plenty of ties
    y = np.round(rng.normal(0, 1, 30), 1)
    fast = st.wilcoxon_interval(x, y, 0.98)
    lo, est, hi = _slow_interval(x, y, 0.98)
    assert (fast.lower, fast.estimate, fast.upper) == pytest.approx((lo, est, hi), abs=1e-9)


def test_wilcoxon_interval_bounds_are_where_the_test_stops_rejecting() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(2, 1, 30), rng.normal(0, 1, 30)
    ci = st.wilcoxon_interval(x, y, 0.95)
    # just inside the interval the two-sided, continuity-corrected test does not reject at 5 %
    p_in = sps.mannwhitneyu(x - (ci.lower + 1e-6), y, method="asymptotic").pvalue
    p_out = sps.mannwhitneyu(x - (ci.lower - 0.05), y, method="asymptotic").pvalue
    assert p_in >= 0.05 - 1e-3
    assert p_out < 0.05
    assert ci.lower < ci.estimate < ci.upper


def test_wilcoxon_interval_refuses_all_ties() -> None:
    with pytest.raises(ValueError, match="tied"):
        st._wilcoxon_diff(0.0, 0.0, np.array([1.0, 1.0]), np.array([1.0, 1.0]))


def test_rate_ratio_pvalues_match_the_binomial_test() -> None:
    # 12 errors after, 4 before, equal exposure: under ratio 1 the after-count is Bin(16, 1/2)
    p_greater, p_less = st.rate_ratio_pvalues(4, 1000, 12, 1000, 1.0)
    assert p_greater == pytest.approx(sps.binomtest(12, 16, 0.5, alternative="greater").pvalue)
    assert p_less == pytest.approx(sps.binomtest(12, 16, 0.5, alternative="less").pvalue)
    # ratio 1.5 with twice the exposure after: p = 2*1.5 / (1 + 2*1.5) = 0.75
    pg, _ = st.rate_ratio_pvalues(4, 1000, 12, 2000, 1.5)
    assert pg == pytest.approx(sps.binomtest(12, 16, 0.75, alternative="greater").pvalue)


def test_rate_ratio_interval_inverts_the_test() -> None:
    lo, hi = st.rate_ratio_interval(19, 3990, 16, 2746, 0.99)
    assert lo < (16 / 2746) / (19 / 3990) < hi
    assert st.rate_ratio_pvalues(19, 3990, 16, 2746, lo)[0] == pytest.approx(0.01)
    assert st.rate_ratio_pvalues(19, 3990, 16, 2746, hi)[1] == pytest.approx(0.01)
    assert st.rate_ratio_interval(5, 100, 0, 100)[0] == 0.0
    assert st.rate_ratio_interval(0, 100, 5, 100)[1] == math.inf


def test_serial_inflation() -> None:
    rng = np.random.default_rng(0)
    white = rng.normal(size=2000)
    assert st.serial_inflation(white) == pytest.approx(1.0, abs=0.15)
    ar = np.zeros(2000)
    for i in range(1, 2000):
        ar[i] = 0.8 * ar[i - 1] + rng.normal()
    assert st.serial_inflation(ar) == pytest.approx((1 + 0.8) / (1 - 0.8), rel=0.25)
    assert st.serial_inflation(np.ones(10)) == 1.0


def test_dispersion_of_poisson_counts_is_one_and_of_bursts_more() -> None:
    rng = np.random.default_rng(2)
    exposure = np.full(200, 1000.0)
    assert st.dispersion(rng.poisson(5, 200).astype(float), exposure) == pytest.approx(1.0, abs=0.3)
    bursty = np.where(rng.random(200) < 0.1, 40.0, 1.0)
    assert st.dispersion(bursty, exposure) > 3.0


def test_cles_and_mean_ratio_by_hand() -> None:
    assert st.cles(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 1.0
    assert st.cles(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.5
    assert st.mean_ratio(np.array([1.0, 3.0]), np.array([4.0, 4.0])) == 2.0
    assert math.isnan(st.mean_ratio(np.array([0.0]), np.array([1.0])))


def test_iqr_outliers_like_kayenta() -> None:
    values = np.array([10.0] * 20 + [11.0] * 20 + [1000.0])
    mask = st.iqr_outliers(values, factor=3.0, reduce_sensitivity=False)
    assert mask.tolist() == [False] * 40 + [True]
    # with reduced sensitivity the fences reach the 1st/99th percentiles
    assert not st.iqr_outliers(values, factor=3.0, reduce_sensitivity=True)[:40].any()


def test_theil_sen_slope() -> None:
    t = np.arange(20, dtype=float)
    slope, lo, hi = st.theil_sen(2.0 * t + 1, t)
    assert slope == pytest.approx(2.0)
    assert lo <= 2.0 <= hi
    assert math.isnan(st.theil_sen(np.array([1.0, np.nan]), np.array([0.0, 1.0]))[0])


def test_dispersion_of_a_handful_of_events_is_taken_as_poisson() -> None:
    # a quiet instance before a release: 3 errors, all in one of 40 steps of 10 requests.
    # Pearson's statistic says ~3 here; with so few events that is chance, and dividing by it
    # (9.1 in the demo's case) hid a 40-fold error regression on that instance.
    events = np.zeros(40)
    events[7] = 3.0
    exposure = np.full(40, 10.0)
    assert st.dispersion(events, exposure) == 1.0
    many = np.zeros(40)
    many[[2, 7, 11]] = 10.0  # 30 events in three bursts: a real burst pattern still counts
    assert st.dispersion(many, exposure) > 3.0

"""Small, pure statistics the judges share: rank tests, shift intervals, rate tests, slopes.

Everything takes plain arrays and returns plain numbers; no judge logic lives here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from rollwave.analysis.series import FloatArray


@dataclass(frozen=True, slots=True)
class RankTest:
    """Mann-Whitney U of ``x`` against ``y`` with its normal-approximation p-value."""

    u: float  # pairs with x > y, ties counted one half
    u_other: float  # pairs with y > x, ties counted one half
    z: float
    p_value: float


@dataclass(frozen=True, slots=True)
class ShiftInterval:
    """A location shift ``x - y`` (Hodges-Lehmann) with a confidence interval."""

    estimate: float
    lower: float
    upper: float


def _as_array(values: FloatArray | list[float] | tuple[float, ...]) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def mann_whitney(
    x: FloatArray | list[float], y: FloatArray | list[float], alternative: str = "two-sided"
) -> RankTest:
    """Mann-Whitney U test, normal approximation with tie and continuity corrections.

    Agrees with ``scipy.stats.mannwhitneyu(x, y, method="asymptotic")``. ``alternative`` is
    ``"two-sided"``, ``"greater"`` (x tends to be larger) or ``"less"``.

    >>> mann_whitney([1, 2, 3], [4, 5, 6]).u
    0.0
    """
    xa, ya = _as_array(x), _as_array(y)
    n, m = xa.size, ya.size
    if n == 0 or m == 0:
        return RankTest(u=math.nan, u_other=math.nan, z=math.nan, p_value=math.nan)
    ranks = stats.rankdata(np.concatenate([xa, ya]))
    r1 = float(ranks[:n].sum())
    u1 = r1 - n * (n + 1) / 2.0
    u2 = n * m - u1
    _, counts = np.unique(ranks, return_counts=True)
    tie_term = float((counts**3 - counts).sum())
    total = n + m
    var = n * m / 12.0 * ((total + 1) - tie_term / (total * (total - 1))) if total > 1 else 0.0
    mean = n * m / 2.0
    if var <= 0:
        return RankTest(u=u1, u_other=u2, z=0.0, p_value=1.0)
    sd = math.sqrt(var)
    if alternative == "greater":
        z = (u1 - mean - 0.5) / sd
        p = float(stats.norm.sf(z))
    elif alternative == "less":
        z = (u1 - mean + 0.5) / sd
        p = float(stats.norm.cdf(z))
    else:
        big = max(u1, u2)
        z = (big - mean - 0.5) / sd
        p = min(1.0, 2.0 * float(stats.norm.sf(z)))
        z = math.copysign(abs(z), u1 - mean)
    return RankTest(u=u1, u_other=u2, z=z, p_value=p)


def hodges_lehmann(
    x: FloatArray | list[float],
    y: FloatArray | list[float],
    confidence: float = 0.95,
    variance_inflation: float = 1.0,
) -> ShiftInterval:
    """Shift of ``x`` over ``y``: the median of all pairwise differences ``x_i - y_j``.

    The interval takes the order statistics of the differences whose ranks the Mann-Whitney
    normal approximation gives (Lehmann's construction). ``variance_inflation`` widens it for
    serially correlated samples (see :func:`serial_inflation`).

    >>> hodges_lehmann([3, 4, 5], [1, 2, 3]).estimate
    2.0
    """
    xa, ya = _as_array(x), _as_array(y)
    n, m = xa.size, ya.size
    if n == 0 or m == 0:
        return ShiftInterval(math.nan, math.nan, math.nan)
    diffs = np.sort(np.subtract.outer(xa, ya).ravel())
    nm = diffs.size
    estimate = float(np.median(diffs))
    z = float(stats.norm.ppf(0.5 + confidence / 2.0)) * math.sqrt(max(variance_inflation, 1.0))
    k = math.floor(nm / 2.0 - z * math.sqrt(n * m * (n + m + 1) / 12.0))
    k = min(max(k, 0), nm - 1)
    return ShiftInterval(estimate=estimate, lower=float(diffs[k]), upper=float(diffs[nm - 1 - k]))


def _wilcoxon_diff(mu: float, quantile: float, x: FloatArray, y: FloatArray) -> float:
    """Kayenta's ``wilcoxonDiff`` (a port of R's ``wilcox.test`` interval inversion)."""
    nx, ny = float(x.size), float(y.size)
    ranks = stats.rankdata(np.concatenate([x - mu, y]))
    _, ties = np.unique(ranks, return_counts=True)
    dz = float(ranks[: x.size].sum()) - nx * (nx + 1) / 2.0 - nx * ny / 2.0
    correction = math.copysign(0.5, dz) if dz != 0 else 0.0
    sigma = math.sqrt(
        (nx * ny / 12.0)
        * ((nx + ny + 1) - float((ties**3 - ties).sum()) / ((nx + ny) * (nx + ny - 1)))
    )
    if sigma == 0:
        raise ValueError("cannot compute confidence interval when all observations are tied")
    return (dz - correction) / sigma - quantile


def _tie_term(values: FloatArray) -> float:
    _, counts = np.unique(values, return_counts=True)
    return float((counts.astype(np.float64) ** 3 - counts).sum())


def wilcoxon_interval(
    x: FloatArray | list[float], y: FloatArray | list[float], confidence: float = 0.95
) -> ShiftInterval:
    """The location shift ``x - y`` and its interval exactly as Kayenta's ``MannWhitney`` does.

    Kayenta (``kayenta-mannwhitney``) ports R's ``wilcox.test(x, y, conf.int=TRUE,
    exact=FALSE, correct=TRUE)``: the bounds are the roots of the continuity-corrected,
    tie-corrected standardized rank sum in the shift ``mu``, found with Brent's method on
    ``[min(x) - max(y), max(x) - min(y)]``. Raises ``ValueError`` when every value is tied.

    The rank sum of ``x - mu`` is computed from the sorted pairwise differences (the number
    of differences above ``mu``, ties one half) rather than by ranking afresh at every step;
    at a ``mu`` equal to a difference the ranks are taken exactly, as Kayenta does.
    """
    xa, ya = _as_array(x), _as_array(y)
    alpha = 1.0 - confidence
    nx, ny = float(xa.size), float(ya.size)
    mu_min = float(xa.min() - ya.max())
    mu_max = float(xa.max() - ya.min())
    diffs = np.sort(np.subtract.outer(xa, ya).ravel())
    base_ties = _tie_term(xa) + _tie_term(ya)

    def f(mu: float, zq: float) -> float:
        lo = int(np.searchsorted(diffs, mu, side="left"))
        hi = int(np.searchsorted(diffs, mu, side="right"))
        if hi > lo:  # mu is a pairwise difference: cross ties, rank exactly
            return _wilcoxon_diff(mu, zq, xa, ya)
        dz = float(diffs.size - hi) - nx * ny / 2.0
        correction = math.copysign(0.5, dz) if dz != 0 else 0.0
        sigma = math.sqrt(
            (nx * ny / 12.0) * ((nx + ny + 1) - base_ties / ((nx + ny) * (nx + ny - 1)))
        )
        if sigma == 0:
            raise ValueError("cannot compute confidence interval when all observations are tied")
        return (dz - correction) / sigma - zq

    def root(zq: float) -> float:
        f_lower = f(mu_min, zq)
        f_upper = f(mu_max, zq)
        if f_lower <= 0:
            return mu_min
        if f_upper >= 0:
            return mu_max
        return float(optimize.brentq(lambda mu: f(mu, zq), mu_min, mu_max, xtol=1e-12))

    z_quant = float(stats.norm.ppf(alpha / 2.0))
    lower, upper = root(-z_quant), root(z_quant)
    estimate = root(0.0)
    return ShiftInterval(estimate=estimate, lower=lower, upper=upper)


def serial_inflation(values: FloatArray, cap: float = 0.9) -> float:
    """Variance inflation ``(1 + r) / (1 - r)`` for lag-1 autocorrelation ``r`` (clipped at 0).

    Metric samples a minute apart are not independent; treating them as independent makes
    any rank test overconfident. This is the usual AR(1) effective-sample-size correction.
    """
    v = values[np.isfinite(values)]
    if v.size < 4 or float(np.std(v)) == 0.0:
        return 1.0
    a, b = v[:-1] - v.mean(), v[1:] - v.mean()
    denom = float((a * a).sum())
    r = float((a * b).sum()) / denom if denom > 0 else 0.0
    r = min(max(r, 0.0), cap)
    return (1.0 + r) / (1.0 - r)


def rate_ratio_pvalues(
    events_before: float,
    exposure_before: float,
    events_after: float,
    exposure_after: float,
    ratio: float,
) -> tuple[float, float]:
    """One-sided p-values that the after/before event rate ratio exceeds / stays below ``ratio``.

    Conditional test for two Poisson rates: given ``T = events_before + events_after``, the
    after-count is binomial with ``p = E_a * ratio / (E_b + E_a * ratio)`` at the boundary
    (``E`` = exposure, e.g. requests). Returns ``(p_greater, p_less)``. Counts need not be
    whole numbers (they are divided by an overdispersion factor upstream): the binomial tails
    use the regularized incomplete beta function.
    """
    total = events_before + events_after
    if exposure_before <= 0 or exposure_after <= 0 or ratio <= 0:
        return 1.0, 1.0
    p = exposure_after * ratio / (exposure_before + exposure_after * ratio)
    k = events_after
    if total <= 0:
        return 1.0, 1.0
    # P(X >= k) = I_p(k, T - k + 1);  P(X <= k) = 1 - I_p(k + 1, T - k)
    p_greater = 1.0 if k <= 0 else float(special.betainc(k, total - k + 1.0, p))
    p_less = 1.0 if k >= total else 1.0 - float(special.betainc(k + 1.0, total - k, p))
    return min(max(p_greater, 0.0), 1.0), min(max(p_less, 0.0), 1.0)


MIN_DISPERSION_EVENTS = 20.0


def dispersion(events: FloatArray, exposure: FloatArray, cap: float = 10.0) -> float:
    """Pearson overdispersion of per-step event counts against a constant rate (>= 1).

    Error counts come in bursts more often than a Poisson process would have them; dividing
    counts by this factor keeps the rate test honest on bursty instances.
    """
    ok = np.isfinite(events) & np.isfinite(exposure) & (exposure > 0)
    e, x = events[ok], exposure[ok]
    # With a handful of events, Pearson's statistic measures chance, not bursts: three errors
    # in three different steps of a quiet instance read as "dispersion 9" and would hide a
    # 40-fold regression. Below MIN_DISPERSION_EVENTS the counts are taken as Poisson.
    if e.size < 5 or float(x.sum()) <= 0 or float(e.sum()) < MIN_DISPERSION_EVENTS:
        return 1.0
    rate = float(e.sum()) / float(x.sum())
    expected = x * rate
    good = expected > 0
    if int(good.sum()) < 5 or rate <= 0:
        return 1.0
    chi2 = float((((e[good] - expected[good]) ** 2) / expected[good]).sum())
    phi = chi2 / max(int(good.sum()) - 1, 1)
    return min(max(phi, 1.0), cap)


def theil_sen(
    values: FloatArray, times: FloatArray, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Theil-Sen slope of ``values`` over ``times`` with its interval: (slope, low, high)."""
    ok = np.isfinite(values)
    v, t = values[ok], times[ok]
    if v.size < 3 or float(np.ptp(t)) == 0.0:
        return math.nan, math.nan, math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        res = stats.theilslopes(v, t, alpha=confidence)
    return float(res.slope), float(res.low_slope), float(res.high_slope)


def percentile(values: FloatArray, p: float) -> float:
    """Percentile with the ``p (n + 1)`` estimator of Apache Commons Math (Kayenta's)."""
    return float(np.percentile(values, p, method="weibull"))


def iqr_outliers(values: FloatArray, factor: float = 3.0, reduce_sensitivity: bool = True) -> (
    np.ndarray
):
    """Kayenta's ``IQRDetector``: mask of values outside the Tukey fences.

    With ``reduce_sensitivity`` the fences widen to at least the 1st and 99th percentiles.
    """
    if values.size == 0:
        return np.zeros(0, dtype=np.bool_)
    p25, p75 = percentile(values, 25), percentile(values, 75)
    iqr = p75 - p25
    lower, upper = p25 - factor * iqr, p75 + factor * iqr
    if reduce_sensitivity:
        lower = min(percentile(values, 1), lower)
        upper = max(percentile(values, 99), upper)
    mask: np.ndarray = (values > upper) | (values < lower)
    return mask


def mean_ratio(control: FloatArray, experiment: FloatArray) -> float:
    """Experiment mean over control mean; NaN when either mean is zero (Kayenta's)."""
    if control.size == 0 or experiment.size == 0:
        return math.nan
    c, e = float(control.mean()), float(experiment.mean())
    return math.nan if c == 0.0 or e == 0.0 else e / c


def cles(control: FloatArray, experiment: FloatArray) -> float:
    """Common-language effect size: P(experiment > control), ties one half (Vargha-Delaney)."""
    m, n = experiment.size, control.size
    if m == 0 or n == 0:
        return math.nan
    ranks = stats.rankdata(np.concatenate([experiment, control]))
    r1 = float(ranks[:m].sum())
    return (2.0 * r1 - m * (m + 1)) / (2.0 * n * m)


def robust_spread(values: FloatArray) -> float:
    """1.4826 x median absolute deviation: a standard deviation that ignores outliers."""
    v = values[np.isfinite(values)]
    if v.size < 3:
        return 0.0
    return 1.4826 * float(np.median(np.abs(v - np.median(v))))


def rate_ratio_interval(
    events_before: float,
    exposure_before: float,
    events_after: float,
    exposure_after: float,
    confidence: float = 0.99,
) -> tuple[float, float]:
    """One-sided ``confidence`` bounds of the after/before rate ratio: (lower, upper).

    The exact (Clopper-Pearson) bounds of the binomial proportion of
    :func:`rate_ratio_pvalues`, turned back into a ratio: ``R = p E_b / ((1 - p) E_a)``. With no
    events after the lower bound is 0; with none before the upper bound is infinite.
    """
    alpha = 1.0 - confidence
    total, k = events_before + events_after, events_after
    if exposure_before <= 0 or exposure_after <= 0 or total <= 0:
        return 0.0, math.inf
    scale = exposure_before / exposure_after
    p_low = float(special.betaincinv(k, total - k + 1.0, alpha)) if k > 0 else 0.0
    p_high = float(special.betaincinv(k + 1.0, total - k, 1.0 - alpha)) if k < total else 1.0
    lower = p_low / (1.0 - p_low) * scale if p_low < 1.0 else math.inf
    upper = p_high / (1.0 - p_high) * scale if p_high < 1.0 else math.inf
    return lower, upper

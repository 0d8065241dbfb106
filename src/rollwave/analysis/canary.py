"""Rollwave's canary judge: an instance after its update against itself before, corrected by peers.

Kayenta compares a canary's samples with a baseline's and asks a rank test whether they
differ; with minutes of one-minute samples almost everything differs a little, customers'
instances never look alike, and a slow day looks like a regression. This judge asks a
narrower question, per metric:

*Did this instance move, since its update, by more than the effect-size floor, beyond what it
shares with its stable peers over the very same minutes, and beyond how much stable
instances usually wander against each other?*

* **Gauges** (latency, CPU, memory) are compared on a log scale, so the floor is a relative
  change (25 % by default). Three corrections come first:

  - *its own load*: when a ``load`` series (requests) clearly drives the gauge over the
    baseline (correlation >= 0.5), the gauge is adjusted by that elasticity, so a traffic
    burst is not a regression;
  - *its peers*: the stable peers (whose version did not change) give a sample-by-sample
    index of the fleet's common movement (time of day, a shared dependency). The instance
    follows that index with the coupling it showed over the baseline; only what it does
    beyond it counts. An instance that does not move with its peers borrows none of their
    noise;
  - *serial correlation*: one-minute samples are not independent; the interval is widened
    by the baseline's lag-1 autocorrelation.

  The shift is the Hodges-Lehmann estimate of after minus before, with the Mann-Whitney
  order-statistic interval. The metric has **regressed** when the whole interval lies beyond
  ``max(floor, peer_margin x spread of the peers' own moves)`` in a bad direction, is
  **cleared** when the whole interval lies inside, and is **undecided** otherwise (which
  passes, but clears no one in :mod:`rollwave.analysis.blame`). With ``trend_horizon`` set, a
  leak is caught before it is large: the Theil-Sen slope since the update (less what is
  shared with peers and less its own slope before), projected over the horizon.
* **Ratios** (errors / requests): counts are pooled over the window, so traffic weighs them
  and a low-traffic instance with two errors out of nine requests is not 22 % broken. The
  test is the conditional binomial test of two Poisson rates against the boundary ratio
  ``max(drift x (1 + allowed_increase), (rate_before x drift + min_change) / rate_before)``
  (a relative and an absolute floor), with counts divided by the instance's own
  overdispersion (bursty errors). The peers' drift counts only as far as its own confidence
  interval is away from 1.

Every check is judged afresh at each analysis interval on everything since the update, so
a decision comes as soon as the evidence is there (sequential), while the floors keep the
repeated looks from turning noise into rollbacks.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rollwave.analysis.kayenta import Direction
from rollwave.analysis.results import CheckResult, Outcome
from rollwave.analysis.series import FloatArray, PolicyError, Series, aligned_errors, aligned_totals
from rollwave.analysis.stats import (
    ShiftInterval,
    dispersion,
    hodges_lehmann,
    rate_ratio_interval,
    rate_ratio_pvalues,
    robust_spread,
    serial_inflation,
    theil_sen,
)

REGRESSED = "regressed"
CLEARED = "cleared"
UNDECIDED = "undecided"
NO_DATA = "no_data"
ERROR = "error"


@dataclass(frozen=True, slots=True)
class Windows:
    """One instance's series before and after a moment (its update, or a reference time)."""

    before: Mapping[str, Series]
    after: Mapping[str, Series]


def _check_common(name: str, confidence: float, inc: float, dec: float) -> None:
    if not 0.5 < confidence < 1.0:
        raise PolicyError(f"check '{name}': confidence must be between 0.5 and 1, got {confidence}")
    if inc < 0 or not 0 <= dec < 1:
        raise PolicyError(
            f"check '{name}': allowed_increase must be >= 0 and allowed_decrease in [0, 1)"
        )


@dataclass(frozen=True, slots=True)
class GaugeCheck:
    """A gauge (latency, CPU, memory) judged after-vs-before, corrected by stable peers."""

    name: str
    metric: str
    direction: Direction = Direction.INCREASE
    allowed_increase: float = 0.25  # relative effect floor: smaller moves never fail
    allowed_decrease: float = 0.25
    confidence: float = 0.99
    peer_margin: float = 3.0  # x robust spread of the peers' own moves
    min_samples: int = 3  # readable samples needed since the update
    min_baseline: int = 10  # readable samples needed before it
    consecutive_error_limit: int = 4
    trend_horizon: float | None = None  # seconds; set for leaks (memory, disk, connections)
    load: str | None = None  # a traffic series (requests) the gauge is adjusted for

    def __post_init__(self) -> None:
        _check_common(self.name, self.confidence, self.allowed_increase, self.allowed_decrease)
        if self.min_samples < 2 or self.min_baseline < 2:
            raise PolicyError(f"check '{self.name}': need at least 2 samples on each side")


@dataclass(frozen=True, slots=True)
class RatioCheck:
    """A ratio of counters (errors / requests) judged on pooled, traffic-weighted counts."""

    name: str
    numerator: str
    denominator: str
    direction: Direction = Direction.INCREASE
    allowed_increase: float = 0.5  # relative floor
    allowed_decrease: float = 0.5
    min_change: float = 0.002  # absolute floor on the ratio (0.2 percentage points)
    confidence: float = 0.99
    min_denominator: float = 30.0  # requests needed on each side to judge at all
    consecutive_error_limit: int = 4

    def __post_init__(self) -> None:
        _check_common(self.name, self.confidence, self.allowed_increase, self.allowed_decrease)
        if self.min_change < 0 or self.min_denominator <= 0:
            raise PolicyError(f"check '{self.name}': min_change >= 0 and min_denominator > 0")


def _pct(x: float) -> str:
    return f"{x * 100:+.0f}%" if math.isfinite(x) else "n/a"


def _result(
    check_name: str, state: str, text: str, *, value: float | None = None,
    threshold: float | None = None, samples: int = 0, **data: object,
) -> CheckResult:
    outcome = {
        REGRESSED: Outcome.FAILED,
        CLEARED: Outcome.SUCCESSFUL,
        UNDECIDED: Outcome.SUCCESSFUL,
        NO_DATA: Outcome.INCONCLUSIVE,
        ERROR: Outcome.ERROR,
    }[state]
    return CheckResult(
        name=check_name, outcome=outcome, explanation=text, value=value, threshold=threshold,
        samples=samples, data={"state": state, **data},
    )


def _read_problem(
    name: str, limit: int, *series: Series | None
) -> CheckResult | None:
    present = [s for s in series if s is not None]
    if len(present) != len(series):
        return _result(name, NO_DATA, "the metric is not reported by this instance")
    errors, trailing = aligned_errors(*present)
    readable = min(s.readable_count for s in present)
    if trailing > limit or (errors and readable == 0):
        return _result(
            name, ERROR,
            f"the metric source could not be read for the last {trailing} samples "
            f"(> consecutive error limit {limit}); neither a pass nor a regression",
            errors=errors,
        )
    return None


def _log(values: FloatArray, eps: float) -> FloatArray:
    return np.log(np.maximum(values, eps))


def _eps(reference: FloatArray) -> float:
    med = float(np.median(np.abs(reference))) if reference.size else 0.0
    return 1e-9 + 0.01 * med


@dataclass(frozen=True, slots=True)
class _Logged:
    """One instance's gauge on a log scale (NaN kept in place), adjusted for its own load."""

    before: FloatArray
    after: FloatArray
    after_times: FloatArray
    before_times: FloatArray
    elasticity: float


def _times(s: Series) -> FloatArray:
    return s.start + s.step * np.arange(len(s), dtype=np.float64)


def _logged(check: GaugeCheck, w: Windows) -> _Logged | None:
    b, a = w.before.get(check.metric), w.after.get(check.metric)
    if b is None or a is None:
        return None
    eps = _eps(b.readable())
    lb, la = _log(b.values, eps), _log(a.values, eps)
    k = 0.0
    lb_load = w.before.get(check.load) if check.load else None
    la_load = w.after.get(check.load) if check.load else None
    if lb_load is not None and la_load is not None and len(lb_load) == len(b) and len(
        la_load
    ) == len(a):
        with np.errstate(divide="ignore", invalid="ignore"):
            xb = np.where(lb_load.values > 0, np.log(lb_load.values), np.nan)
            xa = np.where(la_load.values > 0, np.log(la_load.values), np.nan)
        ok = np.isfinite(lb) & np.isfinite(xb)
        k = _elasticity(xb[ok], lb[ok], check.min_baseline)
        if k > 0:
            ref = float(np.median(xb[ok]))
            lb = np.where(np.isfinite(xb), lb - k * (xb - ref), lb)
            la = np.where(np.isfinite(xa), la - k * (xa - ref), la)
    return _Logged(lb, la, _times(a), _times(b), k)


def _elasticity(load: FloatArray, values: FloatArray, minimum: int) -> float:
    """The slope of log value on log load over the baseline, if load clearly drives it.

    Only a strong, significant relation counts (correlation >= 0.5, slope t >= 3): fitting a
    slope to noise would invent regressions whenever traffic moves.
    """
    if load.size < minimum or float(np.std(load)) < 0.05 or float(np.std(values)) == 0.0:
        return 0.0
    r = float(np.corrcoef(load, values)[0, 1])
    if not math.isfinite(r) or r < 0.5:
        return 0.0
    t = r * math.sqrt((load.size - 2) / max(1.0 - r * r, 1e-12))
    if t < 3.0:
        return 0.0
    slope = r * float(np.std(values)) / float(np.std(load))
    return min(max(slope, 0.0), 1.0)


def _finite(v: FloatArray) -> FloatArray:
    return v[np.isfinite(v)]


@dataclass(frozen=True, slots=True)
class _PeerIndex:
    """The stable peers' common movement, sample by sample, and each peer's own move."""

    before: FloatArray  # median over peers of (log value - the peer's baseline median)
    after: FloatArray
    moves: list[float]


def _peer_index(check: GaugeCheck, peers: Sequence[Windows], subject: _Logged) -> _PeerIndex:
    rows_b: list[FloatArray] = []
    rows_a: list[FloatArray] = []
    moves: list[float] = []
    for p in peers:
        lg = _logged(check, p)
        if lg is None or lg.before.size != subject.before.size:
            continue
        if lg.after.size != subject.after.size:
            continue
        pb, pa = _finite(lg.before), _finite(lg.after)
        if pb.size < check.min_baseline or pa.size < check.min_samples:
            continue
        med = float(np.median(pb))
        rows_b.append(lg.before - med)
        rows_a.append(lg.after - med)
        moves.append(float(np.median(pa)) - med)
    if not rows_b:
        empty = np.zeros(0, dtype=np.float64)
        return _PeerIndex(empty, empty, moves)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        before = np.nanmedian(np.vstack(rows_b), axis=0)
        after = np.nanmedian(np.vstack(rows_a), axis=0)
    return _PeerIndex(before, after, moves)


def _coupling(subject: FloatArray, index: FloatArray, minimum: int) -> float:
    """How much of the peers' common movement this instance follows (0 when it does not).

    The slope of the instance's baseline on the peers' index, counted only when they clearly
    move together (correlation >= 0.3, slope t >= 3): peers that merely wander on their own
    must not lend the instance their noise.
    """
    ok = np.isfinite(subject) & np.isfinite(index)
    x, y = index[ok], subject[ok]
    if x.size < minimum or float(np.std(x)) == 0.0 or float(np.std(y)) == 0.0:
        return 0.0
    r = float(np.corrcoef(x, y)[0, 1])
    if not math.isfinite(r) or r < 0.3:
        return 0.0
    t = r * math.sqrt((x.size - 2) / max(1.0 - r * r, 1e-12))
    if t < 3.0:
        return 0.0
    return min(max(r * float(np.std(y)) / float(np.std(x)), 0.0), 1.5)


def _fill(v: FloatArray) -> FloatArray:
    ok = np.isfinite(v)
    if not ok.any():
        return np.zeros_like(v)
    return np.where(ok, v, float(np.median(v[ok])))


def _common(
    check: GaugeCheck, lg: _Logged, peers: Sequence[Windows]
) -> tuple[FloatArray, FloatArray, float, list[float]]:
    """What the instance shares with its peers, before and after, its coupling, their moves."""
    index = _peer_index(check, peers, lg)
    beta = _coupling(lg.before, index.before, check.min_baseline) if index.moves else 0.0
    if not beta:
        return np.zeros_like(lg.before), np.zeros_like(lg.after), 0.0, index.moves
    return beta * _fill(index.before), beta * _fill(index.after), beta, index.moves


@dataclass(frozen=True, slots=True)
class _Context:
    beta: float
    drift: float
    peers: int
    elasticity: float


def _gauge_text(
    check: GaugeCheck, pre_med: float, post_med: float, ctx: _Context, shift: ShiftInterval
) -> str:
    if ctx.beta:
        peer_text = (
            f"after the {_pct(math.expm1(ctx.drift))} it shares with {ctx.peers} stable peers "
            f"(coupling {ctx.beta:.2f})"
        )
    elif ctx.peers:
        peer_text = f"not following its {ctx.peers} stable peers"
    else:
        peer_text = "with no stable peer to correct for drift"
    load_text = (
        f", for its own {check.load} (elasticity {ctx.elasticity:.2f})" if ctx.elasticity else ""
    )
    return (
        f"median {pre_med:.4g} before, {post_med:.4g} since the update; {peer_text}{load_text} "
        f"the shift is {_pct(math.expm1(shift.estimate))} ({check.confidence * 100:g}% interval "
        f"{_pct(math.expm1(shift.lower))}..{_pct(math.expm1(shift.upper))})"
    )


def judge_gauge(check: GaugeCheck, subject: Windows, peers: Sequence[Windows] = ()) -> CheckResult:
    """Judge one gauge of one instance. See the module docstring for the method."""
    before = subject.before.get(check.metric)
    after = subject.after.get(check.metric)
    problem = _read_problem(check.name, check.consecutive_error_limit, after)
    if problem is not None:
        return problem
    assert after is not None
    if before is None or before.readable_count < check.min_baseline:
        have = 0 if before is None else before.readable_count
        return _result(check.name, NO_DATA, f"only {have} samples before the update "
                       f"(need {check.min_baseline}) to compare with", samples=have)
    if after.readable_count < check.min_samples:
        return _result(check.name, NO_DATA, f"only {after.readable_count} samples since the "
                       f"update (need {check.min_samples})", samples=after.readable_count)
    lg = _logged(check, subject)
    assert lg is not None
    common_b, common_a, beta, moves = _common(check, lg, peers)
    x, y = _finite(lg.before - common_b), _finite(lg.after - common_a)
    drift = float(np.median(common_a) - np.median(common_b)) if beta else 0.0
    spread = robust_spread(np.array(moves)) if len(moves) >= 3 else 0.0
    inflation = serial_inflation(x)  # the noise of the baseline, not of a shifted window
    shift = hodges_lehmann(y, x, check.confidence, inflation)

    inc_floor = math.log1p(check.allowed_increase)
    dec_floor = -math.log1p(-check.allowed_decrease)
    margin = check.peer_margin * spread
    inc_bar, dec_bar = max(inc_floor, margin), max(dec_floor, margin)
    bad_up = check.direction in (Direction.INCREASE, Direction.EITHER)
    bad_down = check.direction in (Direction.DECREASE, Direction.EITHER)
    regressed_up = bad_up and shift.lower > inc_bar
    regressed_down = bad_down and shift.upper < -dec_bar
    cleared = (not bad_up or shift.upper < inc_bar) and (not bad_down or shift.lower > -dec_bar)

    pre_med, post_med = float(np.median(before.readable())), float(np.median(after.readable()))
    text = _gauge_text(check, pre_med, post_med, _Context(beta, drift, len(moves), lg.elasticity),
                       shift)
    bars = ([_pct(math.expm1(inc_bar))] if bad_up else []) + (
        [_pct(math.expm1(-dec_bar))] if bad_down else [])
    bar_text = f"allowed {' / '.join(bars)}"
    if margin > max(inc_floor, dec_floor) and moves:
        bar_text += " (peers wander that much)"
    effect = math.expm1(shift.estimate)
    data: dict[str, object] = {
        "metric": check.metric, "effect": effect,
        "lower": math.expm1(shift.lower), "upper": math.expm1(shift.upper),
        "drift": math.expm1(drift), "peers": len(moves), "before": pre_med, "after": post_med,
        "floor": check.allowed_increase if bad_up else -check.allowed_decrease,
        "elasticity": lg.elasticity,
    }
    samples = int(y.size)
    if regressed_up or regressed_down:
        return _result(check.name, REGRESSED, f"{text}: beyond the {bar_text} -> regression",
                       value=effect, threshold=math.expm1(inc_bar), samples=samples, **data)
    if check.trend_horizon and bad_up:
        trend = _trend(check, lg, common_a, bar=inc_bar)
        if trend is not None:
            text_t, effect_t, lower_t = trend
            data.update(effect=effect_t, lower=lower_t, trend=True)
            return _result(check.name, REGRESSED, f"{text}; {text_t}", value=effect_t,
                           threshold=math.expm1(inc_bar), samples=samples, **data)
    state = CLEARED if cleared else UNDECIDED
    verdict = "within" if cleared else "not shown beyond"
    return _result(check.name, state, f"{text}: {verdict} the {bar_text}", value=effect,
                   threshold=math.expm1(inc_bar), samples=samples, **data)


def _trend(
    check: GaugeCheck, lg: _Logged, common: FloatArray, *, bar: float
) -> tuple[str, float, float] | None:
    """A leak: the slope since the update, projected over the horizon, clears the bar.

    The slope is taken after removing what the instance shares with its peers, and is set
    against its own slope before the update (a sawtooth that was already there is no leak).
    """
    horizon = float(check.trend_horizon or 0.0)
    after = lg.after - common
    if _finite(after).size < 2 * check.min_samples:
        return None
    slope, low, _ = theil_sen(after, lg.after_times, check.confidence)
    if not math.isfinite(low):
        return None
    ok = np.isfinite(after)
    fitted = slope * (lg.after_times[ok] - lg.after_times[ok].mean())
    residuals = after[ok] - np.median(after[ok]) - fitted  # autocorrelation of the noise only
    half = (slope - low) * math.sqrt(serial_inflation(residuals))
    low = slope - half
    pre_slope = theil_sen(lg.before, lg.before_times, check.confidence)[0]
    reference = max(pre_slope, 0.0) if math.isfinite(pre_slope) else 0.0
    if (low - reference) * horizon <= bar or (slope - reference) * horizon <= bar:
        return None
    effect = math.expm1((slope - reference) * horizon)
    lower = math.expm1((low - reference) * horizon)
    text = (
        f"but it has been climbing since the update: {_pct(math.expm1(slope * horizon))} per "
        f"{horizon / 60:g} min against {_pct(math.expm1(reference * horizon))} before "
        f"({check.confidence * 100:g}% lower bound {_pct(lower)}), beyond the allowed "
        f"{_pct(math.expm1(bar))} -> regression (leak)"
    )
    return text, effect, lower


def _ratio_totals(w: Windows, check: RatioCheck) -> tuple[float, float, float, float] | None:
    nb, db = w.before.get(check.numerator), w.before.get(check.denominator)
    na, da = w.after.get(check.numerator), w.after.get(check.denominator)
    if nb is None or db is None or na is None or da is None:
        return None
    e0, n0 = aligned_totals(nb, db)
    e1, n1 = aligned_totals(na, da)
    return e0, n0, e1, n1


def judge_ratio(check: RatioCheck, subject: Windows, peers: Sequence[Windows] = ()) -> CheckResult:
    """Judge one ratio of one instance. See the module docstring for the method."""
    problem = _read_problem(
        check.name, check.consecutive_error_limit,
        subject.after.get(check.numerator), subject.after.get(check.denominator),
    )
    if problem is not None:
        return problem
    totals = _ratio_totals(subject, check)
    if totals is None:
        return _result(check.name, NO_DATA, "the metric is not reported by this instance")
    e0, n0, e1, n1 = totals
    if n0 < check.min_denominator:
        return _result(check.name, NO_DATA, f"only {n0:.0f} {check.denominator} before the "
                       f"update (need {check.min_denominator:g}) to compare with")
    if n1 < check.min_denominator:
        return _result(check.name, NO_DATA, f"only {n1:.0f} {check.denominator} since the update "
                       f"(need {check.min_denominator:g})", samples=int(n1))
    pe0 = pn0 = pe1 = pn1 = 0.0
    used = 0
    for p in peers:
        t = _ratio_totals(p, check)
        if t is None or t[1] < check.min_denominator or t[3] < check.min_denominator:
            continue
        pe0, pn0, pe1, pn1 = pe0 + t[0], pn0 + t[1], pe1 + t[2], pn1 + t[3]
        used += 1
    drift = 1.0
    if used:
        # the peers' move counts only as far as they surely moved: a noisy few errors on
        # low-traffic peers must not lower (or raise) the bar of the instance judged
        d_low, d_high = rate_ratio_interval(pe0 + 0.5, pn0, pe1 + 0.5, pn1, check.confidence)
        drift = d_low if d_low > 1.0 else d_high if d_high < 1.0 else 1.0
        drift = min(max(drift, 1.0 / 3.0), 3.0)
    num_b, den_b = subject.before[check.numerator], subject.before[check.denominator]
    phi = dispersion(num_b.values, den_b.values)
    r0 = (e0 + 0.5) / n0  # smoothed: zero errors before is not a zero rate
    r1 = e1 / n1
    expected = r0 * drift
    alpha = 1.0 - check.confidence
    bad_up = check.direction in (Direction.INCREASE, Direction.EITHER)
    bad_down = check.direction in (Direction.DECREASE, Direction.EITHER)
    up_bar = max(drift * (1 + check.allowed_increase), (expected + check.min_change) / r0)
    down_bar = min(drift * (1 - check.allowed_decrease), max(expected - check.min_change, 0) / r0)
    c0, c1 = (e0 + 0.5) / phi, e1 / phi
    p_up, p_in_up = rate_ratio_pvalues(c0, n0, c1, n1, up_bar)
    regressed = bad_up and p_up < alpha
    cleared = not bad_up or p_in_up < alpha
    if bad_down and down_bar > 0:
        p_in_down, p_down = rate_ratio_pvalues(c0, n0, c1, n1, down_bar)
        regressed = regressed or p_down < alpha
        cleared = cleared and p_in_down < alpha
    effect = r1 / expected - 1.0 if expected > 0 else math.inf
    low_ratio, high_ratio = rate_ratio_interval(c0, n0, c1, n1, check.confidence)
    peer_text = (
        f"{used} stable peers moved x{drift:.2f}" if used else "no stable peer to correct for drift"
    )
    text = (
        f"{e1:.0f}/{n1:.0f} = {r1:.3%} since the update against {e0:.0f}/{n0:.0f} = "
        f"{e0 / n0:.3%} before ({peer_text}, dispersion {phi:.1f}); allowed up to "
        f"{r0 * up_bar:.3%} (x{1 + check.allowed_increase:g} or +{check.min_change:.2%} "
        f"over the expected {expected:.3%}), p = {p_up:.2g}"
    )
    data = {
        "metric": check.numerator, "effect": effect, "before": e0 / n0, "after": r1,
        "drift": drift - 1.0, "peers": used, "p_value": p_up, "dispersion": phi,
        "absolute": r1 - expected, "requests": n1,
        "upper": high_ratio / drift - 1.0, "lower": low_ratio / drift - 1.0,
        "floor": check.allowed_increase,
    }
    if regressed:
        return _result(check.name, REGRESSED, f"{text} -> regression", value=r1,
                       threshold=r0 * up_bar, samples=int(n1), **data)
    state = CLEARED if cleared else UNDECIDED
    verdict = "within the floor" if cleared else "no regression beyond the floor shown"
    return _result(check.name, state, f"{text}: {verdict}", value=r1,
                   threshold=r0 * up_bar, samples=int(n1), **data)


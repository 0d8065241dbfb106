"""Incidents outside the release: did the instances *not* updated move together?

The infrastructure rule of :mod:`rollwave.analysis.blame` needs evidence that does not look at
any updated instance. :func:`pooled_shift` sets each stable instance's recent window against
its own baseline with the same gauge and ratio checks as the canary judge, and pools them:
one quiet instance among ten does not hide a shared move, and one odd instance does not make
an incident (each member's own move is reported too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rollwave.analysis.canary import (
    NO_DATA,
    REGRESSED,
    UNDECIDED,
    GaugeCheck,
    RatioCheck,
    Windows,
    _finite,
    _logged,
    _pct,
    _ratio_totals,
    _result,
)
from rollwave.analysis.results import CheckResult
from rollwave.analysis.series import FloatArray
from rollwave.analysis.stats import hodges_lehmann, rate_ratio_pvalues, serial_inflation


def pooled_shift(
    check: GaugeCheck | RatioCheck, members: Sequence[Windows]
) -> tuple[CheckResult, list[bool]]:
    """Did a group of instances (those not updated) move together in a bad direction?

    Each member's after-window is set against its own before-window and the members are
    pooled: gauges as log values less each member's baseline median, ratios as summed counts.
    Returns the pooled result (Failed when the whole group moved beyond the floor) and, per
    member, whether its own move is beyond the floor. This is the evidence of an incident
    outside the release: it never looks at an updated instance.
    """
    if isinstance(check, RatioCheck):
        return _pooled_ratio(check, members)
    xs: list[FloatArray] = []
    ys: list[FloatArray] = []
    moved: list[bool] = []
    inflations: list[float] = []
    floor = math.log1p(check.allowed_increase)
    for w in members:
        lg = _logged(check, w)
        if lg is None:
            moved.append(False)
            continue
        x, y = _finite(lg.before), _finite(lg.after)
        if x.size < check.min_baseline or y.size < check.min_samples:
            moved.append(False)
            continue
        med = float(np.median(x))
        xs.append(x - med)
        ys.append(y - med)
        inflations.append(serial_inflation(x))
        moved.append(float(np.median(y)) - med > floor)
    if not xs:
        return _result(check.name, NO_DATA, "no instance to compare"), moved
    shift = hodges_lehmann(
        np.concatenate(ys), np.concatenate(xs), check.confidence, float(np.median(inflations))
    )
    effect = math.expm1(shift.estimate)
    text = (
        f"{sum(moved)} of {len(xs)} instances moved beyond {_pct(check.allowed_increase)}; "
        f"pooled shift {_pct(effect)} ({check.confidence * 100:g}% interval "
        f"{_pct(math.expm1(shift.lower))}..{_pct(math.expm1(shift.upper))})"
    )
    state = REGRESSED if shift.lower > floor else UNDECIDED
    return _result(check.name, state, text, value=effect, metric=check.metric, effect=effect,
                   lower=math.expm1(shift.lower), upper=math.expm1(shift.upper)), moved


def _pooled_ratio(check: RatioCheck, members: Sequence[Windows]) -> tuple[CheckResult, list[bool]]:
    e0 = n0 = e1 = n1 = 0.0
    moved: list[bool] = []
    for w in members:
        t = _ratio_totals(w, check)
        if t is None or t[1] < check.min_denominator or t[3] < check.min_denominator:
            moved.append(False)
            continue
        e0, n0, e1, n1 = e0 + t[0], n0 + t[1], e1 + t[2], n1 + t[3]
        r0, r1 = (t[0] + 0.5) / t[1], t[2] / t[3]
        moved.append(r1 > max(r0 * (1 + check.allowed_increase), r0 + check.min_change))
    if n0 < check.min_denominator or n1 < check.min_denominator:
        return _result(check.name, NO_DATA, "too little traffic to compare"), moved
    r0 = (e0 + 0.5) / n0
    bar = max(1 + check.allowed_increase, (r0 + check.min_change) / r0)
    p_up, _ = rate_ratio_pvalues(e0 + 0.5, n0, e1, n1, bar)
    effect = (e1 / n1) / r0 - 1.0
    text = (
        f"{sum(moved)} instances moved; together {e1:.0f}/{n1:.0f} = {e1 / n1:.3%} against "
        f"{e0:.0f}/{n0:.0f} = {e0 / n0:.3%} before (p = {p_up:.2g})"
    )
    state = REGRESSED if p_up < 1.0 - check.confidence else UNDECIDED
    return _result(check.name, state, text, value=effect, metric=check.numerator,
                   effect=effect), moved

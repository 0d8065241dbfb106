"""SLO error-budget burn-rate checks over multiple windows (the SRE workbook's alerting).

The burn rate of a window is its error ratio divided by the error budget ``1 - objective``:
1 spends the budget exactly over the SLO period, 14.4 spends 2 % of a 30-day budget in one
hour. The workbook pages when *both* windows of a pair burn faster than the pair's factor:

=========  ============  =====  ===========================================
long       short         burn   meaning over a 30-day SLO period
=========  ============  =====  ===========================================
1 h        5 min         14.4   2 % of the budget gone in an hour
6 h        30 min        6      5 % of the budget gone in six hours
=========  ============  =====  ===========================================

The long window makes the alert significant; the short one (1/12 of it) makes it stop soon
after the problem does.

**Scaled to the bake window.** A release is verified over a bake window of minutes, not
hours, so :func:`scale_windows` shrinks every window by ``bake / 6 h`` (the longest long
window becomes the bake window; never more than the workbook's, never less than one sample)
and keeps the factors: the question stays "is this instance burning budget at 14.4x
(or 6x) the sustainable rate?", asked over windows that fit in the bake. With a 30-minute
bake the pairs become 5 min / 25 s at 14.4x and 30 min / 2.5 min at 6x (a window shorter
than a sample is one sample). Windows are also clipped to the time since the update: the
old version's errors are not the new one's. A window with fewer than ``min_events`` requests
cannot fire (low traffic would otherwise page on one error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rollwave.analysis.results import CheckResult, Outcome
from rollwave.analysis.series import PolicyError, Series, aligned_errors, aligned_totals


@dataclass(frozen=True, slots=True)
class BurnWindow:
    """A long and a short window (seconds) that must both burn at ``factor`` or more."""

    long: float
    short: float
    factor: float

    def __post_init__(self) -> None:
        if not (self.long > 0 and self.short > 0 and self.factor > 0):
            raise PolicyError("burn-rate windows and factors must be positive")


SRE_WINDOWS: tuple[BurnWindow, ...] = (
    BurnWindow(long=3600.0, short=300.0, factor=14.4),
    BurnWindow(long=21600.0, short=1800.0, factor=6.0),
)


@dataclass(frozen=True, slots=True)
class BurnRateCheck:
    """An availability SLO on ``errors / total`` with multiwindow, multi-burn-rate alerting."""

    name: str
    errors: str
    total: str
    objective: float = 0.99
    windows: tuple[BurnWindow, ...] = SRE_WINDOWS
    min_events: float = 30.0
    consecutive_error_limit: int = 4

    def __post_init__(self) -> None:
        if not 0.0 < self.objective < 1.0:
            raise PolicyError(
                f"check '{self.name}': objective must be a fraction such as 0.999, "
                f"got {self.objective}"
            )
        if not self.windows:
            raise PolicyError(f"check '{self.name}': give at least one burn window")

    @property
    def budget(self) -> float:
        return 1.0 - self.objective


def scale_windows(
    windows: tuple[BurnWindow, ...], bake: float, step: float
) -> tuple[BurnWindow, ...]:
    """Shrink the windows by ``bake / longest long window`` (never grow), floor at one step.

    >>> [(w.long, w.short) for w in scale_windows(SRE_WINDOWS, bake=1800, step=60)]
    [(300.0, 60.0), (1800.0, 150.0)]
    """
    longest = max(w.long for w in windows)
    scale = min(1.0, bake / longest) if longest > 0 else 1.0
    return tuple(
        BurnWindow(max(w.long * scale, float(step)), max(w.short * scale, float(step)), w.factor)
        for w in windows
    )


def _burn(
    errors: Series, total: Series, t0: float, t1: float, budget: float
) -> tuple[float, float]:
    e, n = aligned_totals(errors.window(t0, t1), total.window(t0, t1))
    return (e / n / budget if n > 0 else math.nan), n


def evaluate_burn_rate(
    check: BurnRateCheck,
    errors: Series | None,
    total: Series | None,
    now: float,
    *,
    since: float | None = None,
    windows: tuple[BurnWindow, ...] | None = None,
) -> CheckResult:
    """Burn rates of every window pair ending at ``now`` (not before ``since``).

    Failed when some pair burns at its factor or more in both windows; Inconclusive when no
    window had ``min_events``; Error when the source has failed for too long.
    """
    pairs = windows if windows is not None else check.windows
    if errors is None or total is None:
        return CheckResult(check.name, Outcome.INCONCLUSIVE, "the SLO's series are not reported")
    start = since if since is not None else -math.inf
    _, trailing = aligned_errors(errors.window(start, now), total.window(start, now))
    if trailing > check.consecutive_error_limit:
        return CheckResult(
            check.name, Outcome.ERROR,
            f"the metric source could not be read for the last {trailing} samples "
            f"(> {check.consecutive_error_limit}); burn rate unknown",
        )
    parts: list[str] = []
    worst = 0.0
    evaluated = 0
    fired: list[str] = []
    for w in pairs:
        long_burn, long_n = _burn(errors, total, max(now - w.long, start), now, check.budget)
        short_burn, short_n = _burn(errors, total, max(now - w.short, start), now, check.budget)
        label = f"{_dur(w.long)}/{_dur(w.short)} at {w.factor:g}x"
        if long_n < check.min_events or short_n < 1:
            parts.append(f"{label}: too little traffic ({long_n:.0f} requests)")
            continue
        evaluated += 1
        worst = max(worst, min(long_burn, short_burn if math.isfinite(short_burn) else 0.0))
        parts.append(f"{label}: burning {long_burn:.1f}x and {short_burn:.1f}x")
        if long_burn >= w.factor and short_burn >= w.factor:
            fired.append(label)
    budget_text = f"objective {check.objective:.4g} (budget {check.budget:.3g})"
    if fired:
        return CheckResult(
            check.name, Outcome.FAILED,
            f"{budget_text}: {'; '.join(parts)} -> budget burning too fast ({', '.join(fired)})",
            value=worst, threshold=min(w.factor for w in pairs), samples=evaluated,
            data={"state": "regressed", "fired": fired},
        )
    if evaluated == 0:
        return CheckResult(
            check.name, Outcome.INCONCLUSIVE, f"{budget_text}: {'; '.join(parts)}",
            data={"state": "no_data"},
        )
    return CheckResult(
        check.name, Outcome.SUCCESSFUL, f"{budget_text}: {'; '.join(parts)}: within budget",
        value=worst, threshold=min(w.factor for w in pairs), samples=evaluated,
        data={"state": "undecided"},
    )


def _dur(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60:
        return f"{seconds / 60:g}min"
    return f"{seconds:g}s"

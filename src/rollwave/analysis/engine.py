"""The verification engine: every judge on every instance, then blame, once per analysis interval.

The orchestrator calls :func:`evaluate_fleet` at the end of each analysis interval with what
the metric sources returned (plain :class:`Series`, never fetched here) and ``now``. It gets a
:class:`FleetVerdict`: promote, continue, roll back the release, roll back some instances,
pause, or hold, with the evidence of every instance in words and numbers.

Per updated instance (updated at ``u``), each check compares ``[u + warmup, now)`` with the
baseline ``[u - baseline, u)``; peers are the instances whose version did not change over
that span (in the same cohort when there are at least three). Threshold and burn-rate checks
that were already failing over the baseline are *pre-existing*: reported and flagged, never
blamed on the release.

Per instance not yet updated, the same gauge and ratio checks compare the last
``incident_window`` with the baseline before it, uncorrected: a regression there cannot be
the release's, and feeds the infrastructure rule of :mod:`rollwave.analysis.blame`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from rollwave.analysis.blame import (
    BlamePolicy,
    FleetShift,
    FleetVerdict,
    InstanceEvidence,
    RolledBack,
    assign_blame,
)
from rollwave.analysis.burnrate import BurnRateCheck, evaluate_burn_rate, scale_windows
from rollwave.analysis.canary import (
    GaugeCheck,
    RatioCheck,
    Windows,
    judge_gauge,
    judge_ratio,
)
from rollwave.analysis.incidents import pooled_shift
from rollwave.analysis.results import CheckResult, Outcome, Verdict
from rollwave.analysis.series import PolicyError, Series, aligned_totals
from rollwave.analysis.threshold import ThresholdCheck, evaluate_threshold, measure

Check = GaugeCheck | RatioCheck | BurnRateCheck | ThresholdCheck


@dataclass(frozen=True, slots=True)
class InstanceData:
    """One instance as the engine sees it: who it belongs to, when it was updated, its series."""

    instance: str
    customer: str
    series: Mapping[str, Series]
    updated_at: float | None = None  # when the new version started serving; None = not yet
    cohort: str | None = None  # comparable customers (tier, size); None = compare with all

    def updated_by(self, now: float) -> bool:
        return self.updated_at is not None and self.updated_at <= now


@dataclass(frozen=True, slots=True)
class VerificationPolicy:
    """The checks of a rollout policy and the times they work with (seconds)."""

    checks: tuple[Check, ...]
    interval: float = 300.0  # analysis interval
    bake: float = 1800.0  # time on the new version before an instance passes
    baseline: float = 3600.0  # window before the update (or the incident window) to compare with
    warmup: float = 0.0  # ignore this long after the update
    incident_window: float | None = None  # recent window on stable instances; default 2 intervals
    blame: BlamePolicy = field(default_factory=BlamePolicy)

    def __post_init__(self) -> None:
        if not self.checks:
            raise PolicyError("a verification policy needs at least one check")
        if min(self.interval, self.bake, self.baseline) <= 0 or self.warmup < 0:
            raise PolicyError("interval, bake and baseline must be positive, warmup >= 0")
        names = [c.name for c in self.checks]
        if len(set(names)) != len(names):
            raise PolicyError(f"check names must be unique, got {names}")

    @property
    def recent(self) -> float:
        return self.incident_window if self.incident_window is not None else 2 * self.interval


def _windows(inst: InstanceData, t0: float, t1: float, t2: float) -> Windows:
    return Windows(
        before={k: s.window(t0, t1) for k, s in inst.series.items()},
        after={k: s.window(t1, t2) for k, s in inst.series.items()},
    )


def _stable_over(inst: InstanceData, t0: float, now: float) -> bool:
    u = inst.updated_at
    return u is None or u > now or u < t0


def peers_of(
    inst: InstanceData, fleet: Sequence[InstanceData], t0: float, now: float
) -> list[InstanceData]:
    """Instances whose version did not change over ``[t0, now)``, same cohort when possible."""
    stable = [p for p in fleet if p.instance != inst.instance and _stable_over(p, t0, now)]
    if inst.cohort is not None:
        same = [p for p in stable if p.cohort == inst.cohort]
        if len(same) >= 3:
            return same
    return stable


def _step(inst: InstanceData) -> float:
    for s in inst.series.values():
        return s.step
    return 60.0


def _metric_of(check: Check) -> str:
    if isinstance(check, GaugeCheck):
        return check.metric
    if isinstance(check, RatioCheck):
        return check.numerator
    if isinstance(check, BurnRateCheck):
        return check.errors
    return check.metric or check.numerator or check.name


@dataclass(frozen=True, slots=True)
class _Span:
    """Baseline ``[t0, t1)`` and judged window ``[t1, now)``."""

    t0: float
    t1: float
    now: float


def _absolute(
    check: BurnRateCheck | ThresholdCheck, inst: InstanceData, policy: VerificationPolicy,
    span: _Span,
) -> CheckResult:
    """A burn-rate or threshold check on ``[t1, now)``; pre-existing if ``[t0, t1)`` fails."""
    s = inst.series
    t0, t1, now = span.t0, span.t1, span.now
    if isinstance(check, BurnRateCheck):
        windows = scale_windows(check.windows, policy.bake, _step(inst))
        post = evaluate_burn_rate(
            check, s.get(check.errors), s.get(check.total), now, since=t1, windows=windows
        )
        errors, total = s.get(check.errors), s.get(check.total)
        if post.outcome is Outcome.FAILED and errors is not None and total is not None:
            e0, n0 = aligned_totals(errors.window(t0, t1), total.window(t0, t1))
            burn = e0 / n0 / check.budget if n0 >= check.min_events else 0.0
            factor = min(w.factor for w in windows)
            if burn >= factor / 2.0:
                pre = CheckResult(
                    check.name, Outcome.FAILED,
                    f"{e0:.0f}/{n0:.0f} errors over the baseline burned {burn:.1f}x "
                    f"(>= half of {factor:g}x)",
                )
                return _pre_existing(post, pre)
        return post
    names = check.series_names
    if any(n not in s for n in names):
        return CheckResult(check.name, Outcome.INCONCLUSIVE, "the metric is not reported")
    measurements = measure(check, dict(s), t1, now, policy.interval)
    run = evaluate_threshold(check, measurements)
    post = run.to_check_result()
    if post.outcome is Outcome.FAILED:
        length = max(len(measurements), 1) * policy.interval
        pre_m = measure(check, dict(s), max(t0, t1 - length), t1, policy.interval)
        pre = evaluate_threshold(check, pre_m).to_check_result()
        if pre.outcome is Outcome.FAILED:
            return _pre_existing(post, pre)
    return post


def _pre_existing(post: CheckResult, pre: CheckResult) -> CheckResult:
    return replace(
        post,
        outcome=Outcome.SUCCESSFUL,
        explanation=(
            f"{post.explanation}; but it was failing before the update too ({pre.explanation}): "
            "a pre-existing condition, not this release (flagged for review)"
        ),
        data={**post.data, "state": "pre_existing", "pre_existing": True},
    )


def _judge(
    check: Check, inst: InstanceData, subject: Windows, *, peers: Sequence[Windows],
    policy: VerificationPolicy, span: _Span,
) -> CheckResult:
    if isinstance(check, GaugeCheck):
        return judge_gauge(check, subject, peers)
    if isinstance(check, RatioCheck):
        return judge_ratio(check, subject, peers)
    return _absolute(check, inst, policy, span)


def _evidence(
    inst: InstanceData, results: list[CheckResult], checks: Iterable[Check], *, updated: bool,
    since: float = 0.0, baked: bool = False,
) -> InstanceEvidence:
    regressed: dict[str, float] = {}
    upper: dict[str, float] = {}
    states: dict[str, list[str]] = {}
    for check, r in zip(checks, results, strict=True):
        metric = _metric_of(check)
        state = str(r.data.get("state", ""))
        states.setdefault(metric, []).append(state)
        if r.outcome is Outcome.FAILED:
            effect = r.data.get("effect", r.value)
            value = float(effect) if isinstance(effect, int | float) else math.nan
            regressed[metric] = max(regressed.get(metric, -math.inf), value)
        up = r.data.get("upper")
        if isinstance(up, int | float) and math.isfinite(up):
            upper[metric] = max(upper.get(metric, -math.inf), float(up))
    cleared = frozenset(
        m for m, st in states.items()
        if "cleared" in st and all(s in ("cleared", "undecided", "pre_existing") for s in st)
        and m not in regressed
    )
    pre = tuple(r.name for r in results if r.data.get("pre_existing"))
    return InstanceEvidence(
        instance=inst.instance, customer=inst.customer, updated=updated,
        verdict=Verdict.of(results), regressed=regressed, cleared=cleared, upper=upper,
        baked=baked, since_update=since, pre_existing=pre,
    )


def evaluate_instance(
    inst: InstanceData, fleet: Sequence[InstanceData], policy: VerificationPolicy, now: float
) -> InstanceEvidence:
    """Judge one instance at ``now``: against its baseline if updated, for incidents if not."""
    if inst.updated_by(now):
        assert inst.updated_at is not None
        u = inst.updated_at
        t0, t1 = u - policy.baseline, u + policy.warmup
        subject = Windows(
            before={k: s.window(t0, u) for k, s in inst.series.items()},
            after={k: s.window(t1, now) for k, s in inst.series.items()},
        )
        peer_windows = [
            Windows(
                before={k: s.window(t0, u) for k, s in p.series.items()},
                after={k: s.window(t1, now) for k, s in p.series.items()},
            )
            for p in peers_of(inst, fleet, t0, now)
        ]
        span = _Span(t0, u, now)
        results = [
            _judge(c, inst, subject, peers=peer_windows, policy=policy, span=span)
            for c in policy.checks
        ]
        return _evidence(
            inst, results, policy.checks, updated=True, since=now - u, baked=now - u >= policy.bake
        )
    t1 = now - policy.recent
    t0 = t1 - policy.baseline
    subject = _windows(inst, t0, t1, now)
    checks = [c for c in policy.checks if not isinstance(c, ThresholdCheck)]
    span = _Span(t0, t1, now)
    results = [_judge(c, inst, subject, peers=(), policy=policy, span=span) for c in checks]
    return _evidence(inst, results, checks, updated=False)


def evaluate_fleet(
    fleet: Sequence[InstanceData],
    policy: VerificationPolicy,
    now: float,
    *,
    exclude: Iterable[str] = (),
    prior: Sequence[RolledBack] = (),
) -> FleetVerdict:
    """The decision for the rollout at ``now`` (see :mod:`rollwave.analysis.blame`).

    ``fleet`` holds every instance of the service, updated or not, with series up to ``now``;
    ``prior`` lists the instances this rollout rolled back (``verdict.rolled_back(now)`` of
    earlier verdicts, with ``settled`` updated from ``verdict.settled``); they and ``exclude``
    are left out of every comparison, and ``prior`` feeds the blame rules.

    Example::

        verdict = evaluate_fleet(instances, policy, now=clock())
        if verdict.action is Action.ROLLBACK_INSTANCES:
            for name in verdict.rollback: ...
    """
    skip = set(exclude) | {p.instance for p in prior}
    active = [i for i in fleet if i.instance not in skip]
    updated = [evaluate_instance(i, active, policy, now) for i in active if i.updated_by(now)]
    waiting = [i for i in active if not i.updated_by(now)]
    stable = [evaluate_instance(i, active, policy, now) for i in waiting]
    return assign_blame(
        updated, stable, policy.blame, fleet_shifts(waiting, policy, now), prior=prior, now=now
    )


def fleet_shifts(
    stable: Sequence[InstanceData], policy: VerificationPolicy, now: float
) -> list[FleetShift]:
    """Pooled moves of every gauge and ratio check over the instances not yet updated."""
    if len(stable) < policy.blame.incident_min_instances:
        return []
    t1 = now - policy.recent
    t0 = t1 - policy.baseline
    members = [_windows(i, t0, t1, now) for i in stable]
    out = []
    for check in policy.checks:
        if not isinstance(check, GaugeCheck | RatioCheck):
            continue
        result, moved = pooled_shift(check, members)
        if result.data.get("state") == "no_data":
            continue
        effect = result.value if result.value is not None else math.nan
        out.append(FleetShift(
            metric=_metric_of(check),
            effect=effect,
            significant=result.outcome is Outcome.FAILED,
            moved=tuple(i.instance for i, m in zip(stable, moved, strict=True) if m),
            judged=len(stable),
            explanation=result.explanation,
        ))
    return out

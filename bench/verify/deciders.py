"""The deciders the harness compares: Rollwave's engine and two baselines as published.

Every decider answers, at the end of an analysis interval, with one fleet action. The
baselines judge one instance at a time, as their tools do; their per-instance verdicts become
a fleet action by the plain failure-budget rule a fleet tool without blame would use: failed
instances of two or more customers halt and roll back the release, of one customer roll back
those instances, an inconclusive run pauses.

* ``ours``: :func:`rollwave.analysis.evaluate_fleet` with one policy for every scenario
  (nothing here reads a scenario's expectations).
* ``argo``: Argo Rollouts' AnalysisRun per updated instance: one measurement per interval of
  each metric that has a fixed threshold (the interval's error ratio, the mean of a gauge),
  ``successCondition: result <= threshold``, Argo's defaults (``failureLimit`` 0,
  ``consecutiveErrorLimit`` 4; an empty result is an error), ``count`` = the bake. Failed or
  Error aborts the instance (Argo aborts on both), Inconclusive pauses.
  ``argo-fl3`` is the same with ``failureLimit: 3`` as in Argo's documented example.
* ``kayenta``: Kayenta's NetflixACAJudge as published (Mann-Whitney at 98 %, tolerance 0.25,
  mean-ratio effect size with allowed increase 1.0, ``nanStrategy: remove``) run the way
  Spinnaker's canary stage runs it: at every interval on everything since the update, a score
  under the marginal threshold (75) fails at once, and the last interval must reach the pass
  threshold (95). The control is the instance's stable peers over the same minutes
  (``kayenta``, a baseline cluster) or the instance itself before its update
  (``kayenta-self``). ``kayenta-floor`` is ``kayenta-self`` with Kayenta's own effect-size
  knob set to our floors (``allowedIncrease`` 1.25 for gauges, 1.5 for the error ratio): how
  far the published judge gets with the same tolerance for small moves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from rollwave.analysis import (
    Action,
    BurnRateCheck,
    Condition,
    Direction,
    GaugeCheck,
    InstanceData,
    KayentaMetric,
    Outcome,
    RatioCheck,
    RolledBack,
    Series,
    ThresholdCheck,
    VerificationPolicy,
    evaluate_fleet,
    evaluate_threshold,
    kayenta_judge,
    measure,
    peers_of,
)
from rollwave.analysis.kayenta import ScoreLabel

from .scenario import Instance, Scenario


@dataclass(frozen=True)
class Decision:
    action: str  # continue | promote | rollback-release | rollback-instances | pause | hold
    blame: str
    rollback: tuple[str, ...] = ()
    explanation: str = ""


def _cut(inst: Instance, now: float) -> dict[str, Series]:
    return {k: s.window(0.0, now) for k, s in inst.series.items()}


def _updated(sc: Scenario, inst: Instance, now: float) -> bool:
    return inst.updated_at is not None and sc.time(inst.updated_at) <= now


def _fleet_action(
    sc: Scenario,
    now: float,
    failed: list[Instance],
    paused: list[Instance],
    passed: list[Instance],
    updated: list[Instance],
    why: dict[str, str],
) -> Decision:
    """The failure-budget rule of a fleet tool without blame."""
    customers = sorted({i.customer for i in failed})
    text = "; ".join(f"{i.id}: {why.get(i.id, '')}" for i in failed[:4])
    if len(customers) >= 2:
        return Decision("rollback-release", "release", tuple(i.id for i in updated), text)
    if failed:
        return Decision("rollback-instances", "customer", tuple(i.id for i in failed), text)
    if paused:
        return Decision("pause", "infrastructure", (), "; ".join(why.get(i.id, "") for i in paused))
    if updated and len(passed) == len(updated):
        return Decision("promote", "none")
    return Decision("continue", "none")


# ----------------------------------------------------------------------------- ours


def policy_for(sc: Scenario) -> VerificationPolicy:
    """One policy for every scenario: checks follow what each metric is, never the labels."""
    checks: list[GaugeCheck | RatioCheck | BurnRateCheck] = []
    for m in sc.metrics.values():
        if m.kind != "gauge":
            continue
        checks.append(
            GaugeCheck(
                name=m.name,
                metric=m.name,
                direction=Direction(m.direction),
                trend_horizon=3600.0 if m.leak else None,
                load=None if m.leak or sc.slo is None else sc.slo.total,
            )
        )
    if sc.slo is not None:
        checks.append(RatioCheck("error-ratio", sc.slo.errors, sc.slo.total))
        checks.append(BurnRateCheck("slo", sc.slo.errors, sc.slo.total, objective=sc.slo.objective))
    return VerificationPolicy(
        checks=tuple(checks),
        interval=sc.interval_seconds,
        bake=sc.bake * sc.interval_seconds,
        baseline=sc.baseline * sc.step,
    )


@dataclass
class Ours:
    """The engine, with the orchestrator's memory of what it rolled back in this run."""

    name: str = "ours"
    _prior: list[RolledBack] = field(default_factory=list)

    def start(self, sc: Scenario) -> None:
        self._prior = []

    def decide(self, sc: Scenario, now: float, excluded: set[str]) -> Decision:
        fleet = [
            InstanceData(
                instance=i.id,
                customer=i.customer,
                series=_cut(i, now),
                updated_at=None if i.updated_at is None else sc.time(i.updated_at),
                cohort=i.cohort,
            )
            for i in sc.instances
        ]
        v = evaluate_fleet(fleet, policy_for(sc), now, exclude=excluded, prior=self._prior)
        settled = set(v.settled)
        self._prior = [replace(p, settled=True) if p.instance in settled else p
                       for p in self._prior]
        self._prior.extend(v.rolled_back(now))
        if v.action is Action.CONTINUE:
            return Decision("continue", v.blame.value, (), v.explanation)
        return Decision(v.action.value, v.blame.value, v.rollback, v.explanation)


# ----------------------------------------------------------------------------- Argo


def argo_checks(sc: Scenario, failure_limit: int) -> list[ThresholdCheck]:
    checks = []
    for m in sc.metrics.values():
        if m.kind == "gauge" and m.threshold is not None:
            op = "<=" if m.direction != "decrease" else ">="
            checks.append(
                ThresholdCheck(
                    name=m.name,
                    metric=m.name,
                    success=Condition(op, m.threshold),
                    failure_limit=failure_limit,
                    count=sc.bake,
                )
            )
    if sc.slo is not None:
        checks.append(
            ThresholdCheck(
                name="error-ratio",
                numerator=sc.slo.errors,
                denominator=sc.slo.total,
                success=Condition("<=", sc.slo.threshold),
                failure_limit=failure_limit,
                count=sc.bake,
            )
        )
    return checks


@dataclass
class Argo:
    failure_limit: int = 0
    name: str = "argo"

    def decide(self, sc: Scenario, now: float, excluded: set[str]) -> Decision:
        checks = argo_checks(sc, self.failure_limit)
        failed, paused, passed, updated = [], [], [], []
        why: dict[str, str] = {}
        for inst in sc.instances:
            if inst.id in excluded or not _updated(sc, inst, now):
                continue
            updated.append(inst)
            assert inst.updated_at is not None
            u = sc.time(inst.updated_at)
            phases = []
            for c in checks:
                run = evaluate_threshold(c, measure(c, inst.series, u, now, sc.interval_seconds))
                phases.append(run.phase)
                if run.phase in (Outcome.FAILED, Outcome.ERROR, Outcome.INCONCLUSIVE):
                    why[inst.id] = f"{c.name}: {run.reason}"
            if Outcome.FAILED in phases or Outcome.ERROR in phases:
                failed.append(inst)
            elif Outcome.INCONCLUSIVE in phases:
                paused.append(inst)
            elif all(p is Outcome.SUCCESSFUL for p in phases):
                passed.append(inst)
        return _fleet_action(sc, now, failed, paused, passed, updated, why)


# ----------------------------------------------------------------------------- Kayenta


def kayenta_metrics(sc: Scenario, floors: bool = False) -> list[KayentaMetric]:
    """Every gauge and the error ratio; ``floors`` sets Kayenta's allowed increase to ours."""
    ms = [
        KayentaMetric(
            m.name,
            direction=Direction(m.direction),
            nan_strategy="remove",
            groups=(m.group or m.name,),
            allowed_increase=1.25 if floors else None,
        )
        for m in sc.metrics.values()
        if m.kind == "gauge"
    ]
    if sc.slo is not None:
        ms.append(
            KayentaMetric(
                "error-ratio",
                direction=Direction.INCREASE,
                nan_strategy="remove",
                groups=("errors",),
                allowed_increase=1.5 if floors else None,
            )
        )
    return ms


def _values(sc: Scenario, series: dict[str, Series], name: str, t0: float, t1: float) -> np.ndarray:
    if name == "error-ratio" and sc.slo is not None:
        e = series[sc.slo.errors].window(t0, t1).values
        n = series[sc.slo.total].window(t0, t1).values
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(n > 0, e / n, np.nan)
        return np.asarray(r, dtype=np.float64)
    s = series.get(name)
    return np.zeros(0) if s is None else s.window(t0, t1).values


@dataclass
class Kayenta:
    control: str = "peers"  # or "self": the instance before its update
    floors: bool = False  # allowedIncrease 1.25 (gauges) and 1.5 (error ratio), as ours
    pass_threshold: float = 95.0
    marginal_threshold: float = 75.0
    name: str = "kayenta"
    _cache: dict[tuple[str, str, int, frozenset[str]], tuple[ScoreLabel, float, str]] = field(
        default_factory=dict
    )

    def _judge(
        self, sc: Scenario, inst: Instance, k: int, excluded: set[str]
    ) -> tuple[ScoreLabel, float, str]:
        key = (str(sc.path), inst.id, k, frozenset(excluded))
        if key in self._cache:
            return self._cache[key]
        assert inst.updated_at is not None
        u = sc.time(inst.updated_at)
        t1 = u + k * sc.interval_seconds
        metrics = kayenta_metrics(sc, self.floors)
        data = {}
        if self.control == "self":
            controls: Sequence[Instance] = [inst]
            c0, c1 = u - sc.baseline * sc.step, u
        else:
            fleet = [
                InstanceData(
                    i.id,
                    i.customer,
                    {},
                    None if i.updated_at is None else sc.time(i.updated_at),
                    i.cohort,
                )
                for i in sc.instances
                if i.id not in excluded
            ]
            me = next(f for f in fleet if f.instance == inst.id)
            ids = {p.instance for p in peers_of(me, fleet, u, t1)}
            controls = [i for i in sc.instances if i.id in ids]
            c0, c1 = u, t1
        for m in metrics:
            exp = _values(sc, inst.series, m.name, u, t1)
            ctl = [_values(sc, c.series, m.name, c0, c1) for c in controls]
            data[m.name] = (np.concatenate(ctl) if ctl else np.zeros(0), exp)
        r = kayenta_judge(
            metrics,
            data,
            pass_threshold=self.pass_threshold,
            marginal_threshold=self.marginal_threshold,
        )
        out = (r.label, r.score, r.to_check_result().explanation)
        self._cache[key] = out
        return out

    def decide(self, sc: Scenario, now: float, excluded: set[str]) -> Decision:
        failed, passed, updated = [], [], []
        why: dict[str, str] = {}
        for inst in sc.instances:
            if inst.id in excluded or not _updated(sc, inst, now):
                continue
            updated.append(inst)
            assert inst.updated_at is not None
            done = int((now - sc.time(inst.updated_at)) // sc.interval_seconds + 1e-9)
            verdict = None
            for k in range(1, min(done, sc.bake) + 1):
                label, _score, text = self._judge(sc, inst, k, excluded)
                if label is ScoreLabel.FAIL or (k == sc.bake and label is not ScoreLabel.PASS):
                    verdict = "fail"
                    why[inst.id] = f"interval {k}: {text}"
                    break
                if k == sc.bake:
                    verdict = "pass"
            if verdict == "fail":
                failed.append(inst)
            elif verdict == "pass":
                passed.append(inst)
        return _fleet_action(sc, now, failed, [], passed, updated, why)


def all_deciders() -> dict[str, object]:
    """Every decider by name (fresh instances: the Kayenta ones cache per run)."""
    return {
        "ours": Ours(),
        "argo": Argo(0, "argo"),
        "argo-fl3": Argo(3, "argo-fl3"),
        "kayenta": Kayenta("peers", name="kayenta"),
        "kayenta-self": Kayenta("self", name="kayenta-self"),
        "kayenta-floor": Kayenta("self", floors=True, name="kayenta-floor"),
    }

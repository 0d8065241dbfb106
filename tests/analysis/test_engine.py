"""The engine end to end on small synthetic fleets (pure: series in, decision out)."""

import numpy as np
import pytest

from rollwave.analysis import (
    Action,
    Blame,
    BurnRateCheck,
    GaugeCheck,
    InstanceData,
    PolicyError,
    RatioCheck,
    Series,
    ThresholdCheck,
    VerificationPolicy,
    evaluate_fleet,
    evaluate_instance,
)
from rollwave.analysis.threshold import Condition

N = 160  # one-minute samples
POLICY = VerificationPolicy(
    checks=(
        GaugeCheck("latency", "latency", load="requests"),
        RatioCheck("error-ratio", "errors", "requests"),
        BurnRateCheck("slo", "errors", "requests", objective=0.99),
    ),
    interval=300, bake=1800, baseline=3600,
)


def instance(name: str, updated: int | None, seed: int, *, lat: float = 0.2,
             err: float = 0.003, lat_factor: tuple[int, float] | None = None,
             err_after: tuple[int, float] | None = None, outage_from: int | None = None,
             customer: str | None = None) -> InstanceData:
    rng = np.random.default_rng(seed)
    req = rng.poisson(200, N).astype(float)
    p = np.full(N, err)
    if err_after:
        p[err_after[0]:] = err_after[1]
    errors = rng.binomial(req.astype(int), p).astype(float)
    latency = lat * np.exp(rng.normal(0, 0.08, N))
    if lat_factor:
        latency[lat_factor[0]:] *= lat_factor[1]
    bad = list(range(outage_from, N)) if outage_from is not None else None
    series = {
        "requests": Series.of(req, errors=bad),
        "errors": Series.of(errors, errors=bad),
        "latency": Series.of(latency, errors=bad),
    }
    return InstanceData(name, customer or name.split("/", maxsplit=1)[0], series,
                        updated_at=None if updated is None else updated * 60.0)


def fleet(**changes: dict[str, object]) -> list[InstanceData]:
    plan = [("acme/prod", 60), ("globex/prod", 60), ("initech/prod", 60),
            ("umbrella/prod", None), ("hooli/prod", None), ("stark/prod", None)]
    return [instance(name, u, i + 1, **changes.get(name.split("/")[0], {}))  # type: ignore[arg-type]
            for i, (name, u) in enumerate(plan)]


def test_healthy_release_promotes_after_the_bake() -> None:
    f = fleet()
    assert evaluate_fleet(f, POLICY, now=80 * 60).action is Action.CONTINUE
    v = evaluate_fleet(f, POLICY, now=90 * 60)
    assert v.action is Action.PROMOTE
    assert v.blame is Blame.NONE


def test_customer_specific_breakage_rolls_back_that_instance_only() -> None:
    f = fleet(globex={"err_after": (60, 0.05)})
    v = evaluate_fleet(f, POLICY, now=70 * 60)
    assert v.action is Action.ROLLBACK_INSTANCES
    assert v.blame is Blame.CUSTOMER
    assert v.rollback == ("globex/prod",)
    assert v.flagged_customers == ("globex",)
    assert "globex/prod" in v.explanation
    assert "%" in v.explanation
    # the orchestrator hands back what it rolled back: out of every comparison, blame settled
    prior = v.rolled_back(now=70 * 60)
    assert [p.instance for p in prior] == ["globex/prod"]
    assert prior[0].settled  # peers cleared the release when it was rolled back
    later = evaluate_fleet(f, POLICY, now=90 * 60, prior=prior)
    assert later.action is Action.PROMOTE


def test_global_regression_halts_and_rolls_back_the_release() -> None:
    f = fleet(acme={"lat_factor": (60, 1.8)}, globex={"lat_factor": (60, 1.8)},
              initech={"lat_factor": (60, 1.8)})
    v = evaluate_fleet(f, POLICY, now=70 * 60)
    assert v.action is Action.ROLLBACK_RELEASE
    assert v.blame is Blame.RELEASE
    assert "latency regressed on updated instances of 3 customers" in v.explanation


def test_infrastructure_incident_pauses_without_rollback() -> None:
    everyone = {"lat_factor": (100, 2.0)}
    names = ("acme", "globex", "initech", "umbrella", "hooli", "stark")
    f = fleet(**dict.fromkeys(names, everyone))
    v = evaluate_fleet(f, POLICY, now=110 * 60)
    assert v.action is Action.PAUSE
    assert v.blame is Blame.INFRASTRUCTURE
    assert not v.rollback
    assert "not running the new version" in v.explanation


def test_metrics_source_outage_neither_promotes_nor_rolls_back() -> None:
    down = {"outage_from": 75}
    f = fleet(**dict.fromkeys(("acme", "globex", "initech", "umbrella", "hooli", "stark"), down))
    actions = {evaluate_fleet(f, POLICY, now=t * 60).action for t in range(85, N + 1, 5)}
    assert actions == {Action.HOLD}
    v = evaluate_fleet(f, POLICY, now=100 * 60)
    assert v.blame is Blame.UNKNOWN
    assert "could not be read" in v.explanation


def test_chronic_customer_is_flagged_not_blamed() -> None:
    f = fleet(initech={"err": 0.09})  # burns its SLO before and after the update alike
    v = evaluate_fleet(f, POLICY, now=90 * 60)
    assert v.action is Action.PROMOTE
    assert v.flagged_customers == ("initech",)
    ev = next(e for e in v.evidence if e.instance == "initech/prod")
    assert ev.pre_existing == ("slo",)
    assert any("pre-existing" in c.explanation for c in ev.verdict.checks)


def test_threshold_checks_run_with_argo_semantics_inside_the_engine() -> None:
    policy = VerificationPolicy(
        checks=(ThresholdCheck("p95", metric="latency", success=Condition("<", 0.3), count=6),),
        interval=300, bake=1800, baseline=3600,
    )
    f = fleet(acme={"lat_factor": (60, 2.0)})
    ev = evaluate_instance(f[0], f, policy, now=65 * 60)
    assert ev.regressed
    assert ev.verdict.checks[0].data["failed"] == 1


def test_policy_validation() -> None:
    with pytest.raises(PolicyError):
        VerificationPolicy(checks=())
    with pytest.raises(PolicyError):
        VerificationPolicy(checks=(GaugeCheck("x", "a"), GaugeCheck("x", "b")))
    with pytest.raises(PolicyError):
        VerificationPolicy(checks=(GaugeCheck("x", "a"),), bake=0)

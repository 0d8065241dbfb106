"""Fleet-level blame: release, customer, infrastructure, or no decision."""

import pytest

from rollwave.analysis import (
    Action,
    Blame,
    BlamePolicy,
    CheckResult,
    InstanceEvidence,
    Outcome,
    PolicyError,
    Verdict,
    assign_blame,
)
from rollwave.analysis.blame import FleetShift

OK = Verdict.of([CheckResult("c", Outcome.SUCCESSFUL, "fine")])
BAD = Verdict.of([CheckResult("c", Outcome.FAILED, "worse")])
DOWN = Verdict.of([CheckResult("c", Outcome.ERROR, "source unreachable")])
THIN = Verdict.of([CheckResult("c", Outcome.INCONCLUSIVE, "no data")])


def ev(name: str, *, customer: str | None = None, updated: bool = True, verdict: Verdict = OK,
       regressed: dict[str, float] | None = None, cleared: tuple[str, ...] = ("errors",),
       baked: bool = False, since: float = 600.0) -> InstanceEvidence:
    return InstanceEvidence(
        instance=name, customer=customer or name.split("/", maxsplit=1)[0], updated=updated,
        verdict=BAD if regressed else verdict, regressed=regressed or {},
        cleared=frozenset() if regressed else frozenset(cleared), baked=baked,
        since_update=since if updated else 0.0,
    )


def test_same_regression_on_two_customers_is_the_release() -> None:
    v = assign_blame([ev("a/p", regressed={"errors": 4.0}), ev("b/p", regressed={"errors": 3.0}),
                      ev("c/p")])
    assert v.action is Action.ROLLBACK_RELEASE
    assert v.blame is Blame.RELEASE
    assert "2 customers" in v.explanation
    assert "+400%" in v.explanation
    assert set(v.rollback) == {"a/p", "b/p", "c/p"}


def test_one_customer_with_healthy_peers_is_the_customer() -> None:
    v = assign_blame([ev("a/p", regressed={"errors": 4.0}), ev("b/p"), ev("c/p")])
    assert v.action is Action.ROLLBACK_INSTANCES
    assert v.blame is Blame.CUSTOMER
    assert v.rollback == ("a/p",)
    assert v.flagged_customers == ("a",)
    assert "healthy on 2 peers" in v.explanation


def test_two_instances_of_one_customer_stay_a_customer_problem() -> None:
    v = assign_blame([ev("a/prod", customer="a", regressed={"errors": 4.0}),
                      ev("a/staging", customer="a", regressed={"errors": 5.0}),
                      ev("b/p"), ev("c/p")])
    assert v.blame is Blame.CUSTOMER
    assert set(v.rollback) == {"a/prod", "a/staging"}


def test_a_peer_clears_by_its_upper_bound_below_half_the_regression() -> None:
    peer = InstanceEvidence("b/p", "b", True, OK, upper={"errors": 0.8})
    weak = InstanceEvidence("c/p", "c", True, OK, upper={"errors": 3.0})
    v = assign_blame([ev("a/p", regressed={"errors": 4.0}), peer, weak],
                     policy=BlamePolicy(min_clearing_peers=1))
    assert v.blame is Blame.CUSTOMER
    v = assign_blame([ev("a/p", regressed={"errors": 4.0}), peer, weak])
    assert v.action is Action.CONTINUE  # needs two clearing peers: waits


def test_a_lone_regression_without_peers_waits_then_blames_the_release() -> None:
    early = assign_blame([ev("a/p", regressed={"errors": 4.0}, since=300)])
    assert early.action is Action.CONTINUE
    assert "waiting" in early.explanation
    late = assign_blame([ev("a/p", regressed={"errors": 4.0}, since=900)])
    assert late.action is Action.ROLLBACK_RELEASE
    assert "could clear" in late.explanation


def test_regression_on_instances_not_updated_is_infrastructure() -> None:
    updated = [ev("a/p", regressed={"latency": 0.8}), ev("b/p", regressed={"latency": 0.9})]
    stable = [ev("c/p", updated=False, regressed={"latency": 0.7}),
              ev("d/p", updated=False, regressed={"latency": 0.9}),
              ev("e/p", updated=False), ev("f/p", updated=False)]
    v = assign_blame(updated, stable)
    assert v.action is Action.PAUSE
    assert v.blame is Blame.INFRASTRUCTURE
    assert not v.rollback
    assert "2 of 4 instances not running the new version" in v.explanation


def test_one_odd_stable_instance_is_not_an_incident() -> None:
    stable = [ev("c/p", updated=False, regressed={"latency": 0.7}),
              *[ev(f"{x}/p", updated=False) for x in "defg"]]
    v = assign_blame([ev("a/p"), ev("b/p")], stable)
    assert v.action is Action.CONTINUE


def test_pooled_shift_of_stable_instances_is_infrastructure() -> None:
    shift = FleetShift("latency", 0.9, True, ("c/p", "d/p"), 4, "pooled +90%")
    v = assign_blame([ev("a/p"), ev("b/p")], [], shifts=[shift])
    assert v.blame is Blame.INFRASTRUCTURE
    assert "+90%" in v.explanation
    weak = FleetShift("latency", 0.9, False, ("c/p", "d/p"), 4, "pooled +90%")
    assert assign_blame([ev("a/p")], [], shifts=[weak]).blame is not Blame.INFRASTRUCTURE


def test_unreadable_sources_hold() -> None:
    v = assign_blame([ev("a/p", verdict=DOWN), ev("b/p", baked=True)])
    assert v.action is Action.HOLD
    assert v.blame is Blame.UNKNOWN
    assert "neither promote nor roll back" in v.explanation


def test_baked_without_data_holds_but_baking_without_data_continues() -> None:
    assert assign_blame([ev("a/p", verdict=THIN, baked=True)]).action is Action.HOLD
    assert assign_blame([ev("a/p", verdict=THIN, baked=False)]).action is Action.CONTINUE


def test_promote_only_when_everything_baked() -> None:
    assert assign_blame([ev("a/p", baked=True), ev("b/p", baked=True)]).action is Action.PROMOTE
    assert assign_blame([ev("a/p", baked=True), ev("b/p")]).action is Action.CONTINUE
    assert assign_blame([]).action is Action.CONTINUE


def test_to_dict_is_json_friendly() -> None:
    d = assign_blame([ev("a/p", regressed={"errors": 4.0}), ev("b/p"), ev("c/p")]).to_dict()
    assert d["action"] == "rollback-instances"
    assert d["instances"]["a/p"]["outcome"] == "failed"


def test_policy_validation() -> None:
    with pytest.raises(PolicyError):
        BlamePolicy(min_customers=1)
    with pytest.raises(PolicyError):
        BlamePolicy(incident_fraction=0)

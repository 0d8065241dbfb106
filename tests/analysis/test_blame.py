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
    RolledBack,
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
    # two clearing peers needed: rolled back now, blame pending, no new wave
    assert v.action is Action.ROLLBACK_INSTANCES
    assert v.blame is Blame.UNKNOWN
    assert v.hold_waves


def test_a_lone_regression_is_rolled_back_at_once_then_blames_the_release() -> None:
    early = assign_blame([ev("a/p", regressed={"errors": 4.0}, since=300)])
    assert early.action is Action.ROLLBACK_INSTANCES
    assert early.rollback == ("a/p",)
    assert "start no new wave" in early.explanation
    late = assign_blame([ev("a/p", regressed={"errors": 4.0}, since=900)])
    assert late.action is Action.ROLLBACK_RELEASE
    assert "could clear" in late.explanation


def test_earlier_rollbacks_count_for_the_release() -> None:
    prior = [RolledBack("a/p", "a", {"errors": 4.0}, updated_at=0.0)]
    v = assign_blame([ev("b/p", regressed={"errors": 3.0}), ev("c/p")], prior=prior, now=600)
    assert v.action is Action.ROLLBACK_RELEASE
    assert "earlier rolled back: a/p" in v.explanation


def test_a_pending_rollback_settles_on_the_customer_when_peers_clear() -> None:
    prior = [RolledBack("a/p", "a", {"errors": 4.0}, updated_at=0.0)]
    v = assign_blame([ev("b/p", baked=True), ev("c/p", baked=True)], prior=prior, now=600)
    assert v.action is Action.PROMOTE
    assert v.settled == ("a/p",)
    assert v.flagged_customers == ("a",)
    assert "a/p (rolled back) on customer a only" in v.explanation


def test_a_pending_rollback_past_its_patience_blames_the_release() -> None:
    prior = [RolledBack("a/p", "a", {"errors": 4.0}, updated_at=0.0)]
    waiting = assign_blame([ev("b/p", cleared=())], prior=prior, now=600)
    assert waiting.action is Action.CONTINUE
    assert waiting.hold_waves
    late = assign_blame([ev("b/p", cleared=())], prior=prior, now=901)
    assert late.action is Action.ROLLBACK_RELEASE


def test_rolled_back_records_for_the_orchestrator() -> None:
    v = assign_blame([ev("a/p", regressed={"errors": 4.0}, since=300), ev("b/p"), ev("c/p")])
    (rec,) = v.rolled_back(now=1000)
    assert rec == RolledBack("a/p", "a", {"errors": 4.0}, updated_at=700.0, settled=True)


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

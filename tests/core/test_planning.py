"""Planning properties that one fixture cannot show: stability, purity, partitioning."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollwave.core.fleet import build_fleet
from rollwave.core.model import Customer, Project
from rollwave.core.planning import (
    InstanceState,
    ReleaseSpec,
    plan_release,
    resolve_budget,
    resolve_parallelism,
)

NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)


def make_fleet(count: int, waves: list[dict[str, Any]], **policy: Any) -> Any:
    project = Project.model_validate({
        "project": "p", "environments": {"production": {}}, "services": {"web": {}},
        "policies": {"standard": {"waves": waves, **policy}},
    })
    customers = {}
    for i in range(count):
        cid = f"c{i:03d}"
        customers[cid] = Customer.model_validate({
            "id": cid, "tier": "enterprise" if i % 3 == 0 else "standard",
            "tags": ["early-adopter"] if i % 7 == 0 else [],
            "instances": {"prod": {"environment": "production"}}})
    return build_fleet(project, customers)


CANARY_WAVES = [{"name": "canary", "select": {"percent": 10}},
                {"name": "rest", "select": "rest"}]


def test_canaries_are_the_same_across_releases() -> None:
    fleet = make_fleet(200, CANARY_WAVES)
    picks = []
    for name, version in (("r1", "1.1"), ("2026.12.01-1", "1.2"), ("hotfix", "1.2.1")):
        plan = plan_release(fleet, ReleaseSpec(name, {"web": version}), {}, "standard", NOW)
        picks.append([t.instance for t in plan.waves[0].targets])
    assert len(picks[0]) == 20
    assert picks[0] == picks[1] == picks[2]


def test_canaries_spread_over_the_fleet_not_the_first_keys() -> None:
    fleet = make_fleet(200, CANARY_WAVES)
    plan = plan_release(fleet, ReleaseSpec("r", {"web": "2"}), {}, "standard", NOW)
    keys = [t.instance for t in plan.waves[0].targets]
    assert keys != [f"c{i:03d}/prod" for i in range(20)]
    assert max(keys) > "c100/prod"


def test_growing_the_fleet_keeps_earlier_canaries_mostly() -> None:
    """A new customer does not reshuffle who goes first (the order is per key)."""
    before = plan_release(make_fleet(100, CANARY_WAVES), ReleaseSpec("r", {"web": "2"}), {},
                          "standard", NOW)
    after = plan_release(make_fleet(101, CANARY_WAVES), ReleaseSpec("r", {"web": "2"}), {},
                         "standard", NOW)
    old = {t.instance for t in before.waves[0].targets}
    new = {t.instance for t in after.waves[0].targets}
    assert len(old & new) >= len(old) - 1


def test_planning_is_pure_and_repeatable() -> None:
    fleet = make_fleet(30, CANARY_WAVES)
    current = {"c001/prod": InstanceState(versions={"web": "1"})}
    snapshot = repr(current)
    first = plan_release(fleet, ReleaseSpec("r", {"web": "2"}), current, "standard", NOW)
    second = plan_release(fleet, ReleaseSpec("r", {"web": "2"}), current, "standard", NOW)
    assert first == second
    assert repr(current) == snapshot


def test_a_naive_now_is_refused() -> None:
    fleet = make_fleet(3, CANARY_WAVES)
    with pytest.raises(ValueError, match="aware"):
        plan_release(fleet, ReleaseSpec("r", {"web": "2"}), {}, "standard",
                     datetime(2026, 1, 1))


def test_plan_to_dict_is_json() -> None:
    fleet = make_fleet(10, [{"name": "canary", "select": {"percent": 10},
                             "gates": ["approval"], "bake": "5m"},
                            {"name": "rest", "select": "rest", "parallelism": "50%"}])
    plan = plan_release(fleet, ReleaseSpec("r", {"web": "2"}), {}, "standard", NOW)
    body = json.loads(json.dumps(plan.to_dict()))
    assert body["waves"][0]["gates"] == [{"kind": "approval", "min_approvals": 1, "roles": []}]
    assert body["waves"][0]["bake"] == 300
    assert body["waves"][1]["parallelism"] == 5
    assert body["freezes_overridden"] == []
    assert body["created_at"] == NOW.isoformat()


@pytest.mark.parametrize(("amount", "size", "parallelism", "budget"), [
    (1, 10, 1, 1), (50, 10, 10, 50), ("25%", 10, 3, 2), ("10%", 5, 1, 0), ("100%", 7, 7, 7),
    ("0.1%", 1000, 1, 1), ("33.3%", 3, 1, 0), ("150%", 4, 4, 6), (3, 0, 1, 3), ("50%", 0, 1, 0),
])
def test_resolve_amounts(amount: int | str, size: int, parallelism: int, budget: int) -> None:
    assert resolve_parallelism(amount, size) == parallelism
    assert resolve_budget(amount, size) == budget


WAVE = st.fixed_dictionaries({
    "select": st.one_of(
        st.fixed_dictionaries({"percent": st.integers(1, 100)}),
        st.fixed_dictionaries({"limit": st.integers(1, 20)}),
        st.fixed_dictionaries({"match": st.sampled_from(
            ["early-adopter", "tier == enterprise", "not early-adopter",
             "tier in (standard) and not early-adopter", "nobody"])}),
        st.fixed_dictionaries({"match": st.just("tier == standard"),
                               "percent": st.integers(1, 100)}),
        st.fixed_dictionaries({"customers": st.lists(
            st.sampled_from([f"c{i:03d}" for i in range(40)]), max_size=5)
            .filter(bool)}),
    ),
    "parallelism": st.one_of(st.integers(1, 60), st.sampled_from(["1%", "25%", "150%"])),
    "failure_budget": st.one_of(st.integers(0, 5), st.sampled_from(["0%", "10%", "100%"])),
})


@settings(max_examples=150, deadline=None)
@given(waves=st.lists(WAVE, min_size=1, max_size=5), with_rest=st.booleans(),
       emergency=st.booleans(), count=st.integers(0, 40),
       up_to_date=st.sets(st.integers(0, 39), max_size=10))
def test_waves_partition_the_instances_that_need_the_release(
        waves: list[dict[str, Any]], with_rest: bool, emergency: bool, count: int,
        up_to_date: set[int]) -> None:
    named = [{"name": f"w{i}", **w} for i, w in enumerate(waves)]
    if with_rest:
        named.append({"name": "rest", "select": "rest"})
    fleet = make_fleet(count, named)
    current = {f"c{i:03d}/prod": InstanceState(versions={"web": "2"}) for i in up_to_date}
    normal = plan_release(fleet, ReleaseSpec("r", {"web": "2"}), current, "standard", NOW)
    plan = plan_release(fleet, ReleaseSpec("r", {"web": "2"}), current, "standard", NOW,
                        emergency=emergency)
    targets = [t.instance for w in plan.waves for t in w.targets]
    everyone = {i.key for i in fleet}
    assert len(targets) == len(set(targets))
    assert set(targets) | set(plan.excluded) | set(plan.unchanged) == everyone
    assert not (set(targets) & set(plan.excluded))
    assert not (set(targets) & set(plan.unchanged))
    assert set(plan.unchanged) == {k for k in current if k in everyone}
    if with_rest:
        assert not plan.excluded
    # an emergency reaches exactly the instances the normal plan reaches
    assert {t.instance for w in normal.waves for t in w.targets} == set(targets)
    assert len(plan.waves) == (min(len(named), 2) if emergency else len(named))
    for wave in plan.waves:
        assert 1 <= wave.parallelism <= max(1, len(wave.targets))
        assert wave.failure_budget >= 0

"""Property tests of sticky bucketing: stable, uniform, monotone in the percentage."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rollwave.flags.bucketing import BUCKETS, cbor, flagd_bucket, rollwave_bucket
from rollwave.flags.engine import compile_snapshot
from rollwave.flags.model import Flag, FlagSet

keys = st.text(min_size=1, max_size=40)


def _rollout(percentage: float, salt: str | None = None, by: str = "targetingKey") -> Flag:
    split = [{"variant": "true", "weight": percentage},
             {"variant": "false", "weight": 100 - percentage}]
    return Flag.model_validate({"key": "f", "enabled": True, "fallthrough": {
        "split": split, "bucketing": {"by": [by], **({"salt": salt} if salt else {})}}})


@given(keys, keys)
def test_bucket_is_stable_and_in_range(value: str, salt: str) -> None:
    first = rollwave_bucket(value, salt)
    assert first == rollwave_bucket(value, salt)
    assert 0 <= first < BUCKETS


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=10_000),
       st.lists(keys, min_size=1, max_size=60, unique=True))
def test_raising_the_percentage_never_removes_anyone(low: int, high: int,
                                                     users: list[str]) -> None:
    low, high = sorted((low, high))
    before = compile_snapshot(FlagSet(flags={"f": _rollout(low / 100)}))
    after = compile_snapshot(FlagSet(flags={"f": _rollout(high / 100)}))
    for user in users:
        if before.evaluate("f", {"targetingKey": user}, None).value is True:
            assert after.evaluate("f", {"targetingKey": user}, None).value is True


@settings(max_examples=10, deadline=None)
@given(st.sampled_from([1, 5, 20, 33.33, 50, 99.99]), st.text(min_size=1, max_size=10))
def test_rollout_share_is_uniform_within_tolerance(percentage: float, salt: str) -> None:
    snapshot = compile_snapshot(FlagSet(flags={"f": _rollout(percentage, salt=salt)}))
    n = 20_000
    hits = sum(snapshot.evaluate("f", {"targetingKey": f"user-{i}"}, None).value is True
               for i in range(n))
    expected = n * percentage / 100
    sigma = (n * (percentage / 100) * (1 - percentage / 100)) ** 0.5
    assert abs(hits - expected) <= 5 * sigma + 1


def test_buckets_are_uniform_over_ten_deciles() -> None:
    counts = [0] * 10
    for i in range(50_000):
        counts[rollwave_bucket(f"customer-{i}", "salt") // 1000] += 1
    chi2 = sum((c - 5000) ** 2 / 5000 for c in counts)
    assert chi2 < 27.9  # p = 0.001 for 9 degrees of freedom


def test_bucketing_attribute_and_salt_matter() -> None:
    flag = _rollout(50, by="customer")
    snapshot = compile_snapshot(FlagSet(flags={"f": flag}))
    one = snapshot.evaluate("f", {"targetingKey": "a", "customer": "acme"}, None)
    two = snapshot.evaluate("f", {"targetingKey": "b", "customer": "acme"}, None)
    assert one.variant == two.variant  # sticky by customer, not by user
    a = [rollwave_bucket(f"u{i}", "one") for i in range(200)]
    b = [rollwave_bucket(f"u{i}", "two") for i in range(200)]
    assert a != b


def test_cbor_matches_rfc_examples() -> None:
    assert cbor(["a", "b"]).hex() == "826161" + "6162"
    assert cbor(1.5).hex() == "f93e00"
    assert cbor(100000).hex() == "1a000186a0"
    assert cbor(-1).hex() == "20"
    assert 0 <= flagd_bucket("user", "flag", 100) < 100

"""Fault matching and combination: pure functions of config and version."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollwave.demo_service.faults import (
    MISSING,
    Effect,
    Fault,
    active_faults,
    combine,
    json_equal,
    lookup,
    parse_faults,
    version_matches,
)
from rollwave.errors import ConfigError

LEGACY_FAULT = {
    "when": {"version": "1.1", "config": {"reports.legacy_export": True}},
    "error_rate": 0.35, "latency_ms": 250, "latency_jitter_ms": 50,
}


def config_with(*faults: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {**settings, "faults": list(faults)}


@pytest.mark.parametrize(
    ("pattern", "version", "expected"),
    [
        ("1.1", "1.1", True),
        ("1.1", "1.10", False),
        ("1.1", "1.1.0", False),
        ("1.1*", "1.1", True),
        ("1.1*", "1.1.7", True),
        ("1.1*", "1.2", False),
        ("1.?", "1.3", True),
        ("1.[23]", "1.4", False),
        ("v2-rc*", "v2-rc1", True),
        ("*", "anything", True),
    ],
)
def test_version_matches_exact_or_glob(pattern: str, version: str, expected: bool) -> None:
    assert version_matches(pattern, version) is expected


def test_lookup_nested_flat_mixed_and_lists() -> None:
    config = {
        "reports": {"legacy_export": True, "format": {"csv": "semicolon"}},
        "sso.provider": "okta",
        "billing": {"tax.mode": "eu"},
        "sites": [{"name": "berlin"}, {"name": "paris"}],
    }
    assert lookup(config, "reports.legacy_export") is True
    assert lookup(config, "reports.format.csv") == "semicolon"
    assert lookup(config, "reports.format") == {"csv": "semicolon"}
    assert lookup(config, "sso.provider") == "okta"
    assert lookup(config, "billing.tax.mode") == "eu"
    assert lookup(config, "sites.1.name") == "paris"
    assert lookup(config, "sites.5.name") is MISSING
    assert lookup(config, "reports.pdf") is MISSING
    assert lookup(config, "reports.legacy_export.deep") is MISSING
    assert lookup({}, "anything") is MISSING


def test_literal_dotted_key_wins_over_nesting() -> None:
    config = {"a.b": 1, "a": {"b": 2}}
    assert lookup(config, "a.b") == 1


@pytest.mark.parametrize(
    ("actual", "expected", "equal"),
    [
        (True, True, True),
        (1, True, False),
        (True, 1, False),
        (0, False, False),
        (1, 1.0, True),
        ("1", 1, False),
        (None, None, True),
        (MISSING, None, False),
        ([1, True], [1, True], True),
        ([1, 1], [1, True], False),
        ({"a": [1]}, {"a": [1]}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
    ],
)
def test_json_equal_keeps_booleans_apart(actual: Any, expected: Any, equal: bool) -> None:
    assert json_equal(actual, expected) is equal


def test_legacy_export_story() -> None:
    customized = config_with(LEGACY_FAULT, reports={"legacy_export": True})
    plain = config_with(LEGACY_FAULT, reports={"legacy_export": False})
    missing = config_with(LEGACY_FAULT)

    [fault] = active_faults(customized, "1.1")
    assert fault.error_rate == 0.35
    assert fault.latency_ms == 250
    assert fault.latency_jitter_ms == 50
    assert active_faults(customized, "1.0") == []
    assert active_faults(customized, "1.1.1") == []  # exact version, not a glob
    assert active_faults(plain, "1.1") == []
    assert active_faults(missing, "1.1") == []


def test_fault_without_when_always_applies() -> None:
    config = config_with({"unhealthy": True}, {"when": {}, "error_rate": 0.1})
    assert len(active_faults(config, "9.9")) == 2


def test_only_version_or_only_config_conditions() -> None:
    config = config_with(
        {"name": "v2", "when": {"version": "2.*"}, "error_rate": 0.5},
        {"name": "eu", "when": {"config": {"region": "eu"}}, "latency_ms": 100},
        region="eu",
    )
    assert [f.label for f in active_faults(config, "2.0")] == ["v2", "eu"]
    assert [f.label for f in active_faults(config, "1.0")] == ["eu"]


def test_config_condition_on_the_whole_config_not_just_one_key() -> None:
    fault = {"when": {"config": {"a": 1, "b.c": "x"}}, "error_rate": 1}
    assert active_faults(config_with(fault, a=1, b={"c": "x"}), "1") != []
    assert active_faults(config_with(fault, a=1, b={"c": "y"}), "1") == []


def test_no_faults_section() -> None:
    assert active_faults({}, "1.0") == []
    assert active_faults({"faults": None}, "1.0") == []
    assert combine([]) == Effect()


def test_combine_error_rates_and_latencies() -> None:
    effect = combine([
        Fault(error_rate=0.5, latency_ms=100, latency_jitter_ms=10, memory_growth_mb_per_min=1),
        Fault(error_rate=0.5, latency_ms=50, latency_jitter_ms=5, unhealthy=True),
        Fault(crash_on_start=True, memory_growth_mb_per_min=2),
    ])
    assert effect.error_rate == pytest.approx(0.75)
    assert effect.latency_ms == 150
    assert effect.latency_jitter_ms == 15
    assert effect.memory_growth_mb_per_min == 3
    assert effect.unhealthy
    assert effect.crash_on_start


@given(st.lists(st.floats(min_value=0, max_value=1), max_size=6))
def test_combined_error_rate_is_a_probability_at_least_the_largest(rates: list[float]) -> None:
    effect = combine(Fault(error_rate=rate) for rate in rates)
    assert 0.0 <= effect.error_rate <= 1.0
    assert effect.error_rate >= max(rates, default=0.0) - 1e-12
    assert effect.error_rate == pytest.approx(combine(
        Fault(error_rate=rate) for rate in reversed(rates)).error_rate)


def test_describe_names_what_the_fault_does() -> None:
    [fault] = parse_faults(config_with({"name": "slow", "latency_ms": 20, "unhealthy": True}))
    assert fault.describe() == "slow: latency_ms=20±0 unhealthy"
    assert Fault(index=3).describe() == "faults[3]: no effect"


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        ({"x": 1}, "'faults' must be a list"),
        (["oops"], "faults[0] must be an object"),
        ([{"error_rate": 1.5}], "faults[0].error_rate must be a number between 0 and 1"),
        ([{}, {"error_rate": "high"}], "faults[1].error_rate"),
        ([{"error_rate": True}], "faults[0].error_rate"),
        ([{"latency_ms": -5}], "faults[0].latency_ms must be a number >= 0"),
        ([{"latency_ms": float("inf")}], "faults[0].latency_ms"),
        ([{"crash_on_start": "yes"}], "faults[0].crash_on_start must be true or false"),
        ([{"unhealthy": 1}], "faults[0].unhealthy"),
        ([{"errorrate": 0.5}], "unknown key 'errorrate'"),
        ([{"name": 3}], "faults[0].name must be a string"),
        ([{"when": "1.1"}], "faults[0].when must be an object"),
        ([{"when": {"versions": "1.1"}}], "faults[0].when has unknown key 'versions'"),
        ([{"when": {"version": 1.1}}], "faults[0].when.version must be a non-empty string"),
        ([{"when": {"version": ""}}], "when.version"),
        ([{"when": {"config": ["a"]}}], "faults[0].when.config must be an object"),
    ],
)
def test_invalid_faults_raise_config_error_naming_the_key(faults: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_faults({"faults": faults})
    assert message in caught.value.message
    assert caught.value.hint

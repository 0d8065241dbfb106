"""Engine behaviour: operators, reasons, prerequisites, environments, errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollwave.flags.engine import check_flag, compile_snapshot
from rollwave.flags.model import Flag, FlagSet, Segment


def snap(*flags: dict[str, Any], segments: tuple[dict[str, Any], ...] = (),
         environment: str | None = None) -> Any:
    fs = FlagSet(flags={f["key"]: Flag.model_validate(f) for f in flags},
                 segments={s["key"]: Segment.model_validate(s) for s in segments})
    return compile_snapshot(fs, environment)


def rule_flag(op: str, value: Any, attribute: str = "a", **extra: Any) -> dict[str, Any]:
    cond = {"attribute": attribute, "op": op,
            ("values" if isinstance(value, list) else "value"): value, **extra}
    return {"key": "f", "enabled": True, "rules": [{"id": "r", "when": [cond], "serve": True}],
            "fallthrough": False}


CASES = [
    ("equals", "x", "x", True), ("equals", "x", "y", False), ("equals", "3", 3, True),
    ("not_equals", "x", "y", True), ("not_equals", "x", None, True),
    ("in", ["a", "b"], "b", True), ("in", ["a", "b"], "c", False), ("in", ["a"], None, False),
    ("not_in", ["a"], "b", True), ("not_in", ["a"], None, True), ("not_in", ["a"], "a", False),
    ("contains", "cd", "abcde", True), ("contains", "zz", "abc", False),
    ("starts_with", ["ab", "x"], "abc", True), ("ends_with", "de", "abcde", True),
    ("ends_with", "de", ["de"], False),
    ("matches", r"^u-\d+$", "u-42", True), ("matches", r"^u-\d+$", "x-42", False),
    ("lt", 10, 9.5, True), ("lt", 10, "11", False), ("gte", 10, 10, True),
    ("gt", 1, "abc", False), ("lte", 5, True, False),
    ("semver_gt", "1.2.3", "1.10.0", True), ("semver_lt", "1.0.0", "1.0.0-rc.1", True),
    ("semver_eq", "2.0.0", "2.0.0+build", True), ("semver_gte", "1.2.3", "garbage", False),
    ("before", "2026-01-01T00:00:00Z", "2025-12-31T23:59:59Z", True),
    ("after", "2026-01-01T00:00:00Z", "2025-12-31", False),
    ("after", "2026-01-01T00:00:00+02:00", "2026-01-01T00:00:00Z", True),
    ("in_cidr", ["10.0.0.0/8", "2001:db8::/32"], "10.1.2.3", True),
    ("in_cidr", ["10.0.0.0/8"], "11.0.0.1", False), ("in_cidr", ["10.0.0.0/8"], "nope", False),
    ("in_cidr", "2001:db8::/32", "2001:db8::5", True),
]


@pytest.mark.parametrize(("op", "operand", "value", "expected"), CASES)
def test_operators(op: str, operand: Any, value: Any, expected: bool) -> None:
    context = {} if value is None else {"a": value}
    assert snap(rule_flag(op, operand)).evaluate("f", context, None).value is expected


def test_negate_and_case_insensitive() -> None:
    s = snap(rule_flag("equals", "ACME", case_insensitive=True))
    assert s.evaluate("f", {"a": "acme"}, None).value is True
    s = snap(rule_flag("in", ["x"], negate=True))
    assert s.evaluate("f", {"a": "x"}, None).value is False
    assert s.evaluate("f", {"a": "y"}, None).value is True


def test_reasons_and_rule_ids() -> None:
    s = snap({"key": "f", "enabled": True, "rules": [
        {"id": "acme", "when": [{"attribute": "customer", "op": "in", "values": ["acme"]}],
         "serve": True}],
        "fallthrough": {"split": {"true": 20, "false": 80}}},
        {"key": "static", "enabled": True}, {"key": "off", "enabled": False},
        {"key": "killed", "enabled": True, "killed": True})
    d = s.evaluate("f", {"customer": "acme"}, False)
    assert (d.value, d.variant, d.reason, d.rule_id) == (True, "true", "TARGETING_MATCH", "acme")
    d = s.evaluate("f", {"targetingKey": "u1", "customer": "x"}, False)
    assert d.reason == "SPLIT"
    assert s.evaluate("static", {}, None).reason == "STATIC"
    off = s.evaluate("off", {}, None)
    assert (off.value, off.reason) == (False, "DISABLED")
    assert s.evaluate("killed", {}, None).reason == "DISABLED"


def test_error_codes_return_the_default() -> None:
    s = snap({"key": "f", "enabled": True, "fallthrough": {"split": {"true": 50, "false": 50}}},
             {"key": "s", "type": "string", "variants": {"a": "A"}, "enabled": True})
    missing = s.evaluate("f", {}, "dflt")
    assert (missing.value, missing.reason, missing.error_code) == (
        "dflt", "ERROR", "TARGETING_KEY_MISSING")
    assert s.evaluate("nope", {}, 1).error_code == "FLAG_NOT_FOUND"
    mismatch = s.evaluate("s", {}, True, "boolean")
    assert (mismatch.value, mismatch.error_code) == (True, "TYPE_MISMATCH")
    weird = s.evaluate("f", 42, "d")  # type: ignore[arg-type]
    assert (weird.value, weird.error_code) == ("d", "GENERAL")


def test_environments_override_switches_and_rules() -> None:
    flag = {"key": "f", "enabled": False, "fallthrough": True, "environments": {
        "staging": {"enabled": True},
        "prod": {"enabled": True, "rules": [
            {"id": "beta", "when": [{"attribute": "tier", "op": "equals", "value": "beta"}],
             "serve": True}], "fallthrough": False}}}
    assert snap(flag).evaluate("f", {}, None).reason == "DISABLED"
    assert snap(flag, environment="staging").evaluate("f", {}, None).value is True
    prod = snap(flag, environment="prod")
    assert prod.evaluate("f", {"tier": "beta"}, None).rule_id == "beta"
    assert prod.evaluate("f", {"tier": "ga"}, None).value is False


def test_segments_and_prerequisites() -> None:
    segment = {"key": "beta", "included": ["vip"], "excluded": ["bad"],
               "when": [{"attribute": "plan", "op": "equals", "value": "beta"}]}
    parent = {"key": "parent", "enabled": True, "rules": [
        {"id": "seg", "when": [{"segment": "beta"}], "serve": True}], "fallthrough": False}
    child = {"key": "child", "enabled": True, "fallthrough": True,
             "prerequisites": [{"flag": "parent", "variants": [True]}]}
    s = snap(parent, child, segments=(segment,))
    assert s.evaluate("parent", {"targetingKey": "vip"}, None).value is True
    assert s.evaluate("parent", {"targetingKey": "bad", "plan": "beta"}, None).value is False
    assert s.evaluate("child", {"targetingKey": "x", "plan": "beta"}, None).value is True
    failed = s.evaluate("child", {"targetingKey": "x"}, None)
    assert (failed.value, failed.reason, failed.rule_id) == (False, "DISABLED",
                                                             "prerequisite:parent")


def test_prerequisite_cycles_are_errors_not_hangs() -> None:
    a = {"key": "a", "enabled": True, "prerequisites": [{"flag": "b", "variants": ["true"]}]}
    b = {"key": "b", "enabled": True, "prerequisites": [{"flag": "a", "variants": ["true"]}]}
    s = snap(a, b)
    assert s.evaluate("a", {}, False).error_code == "PARSE_ERROR"
    assert any("cycle" in p.message for p in s.problems)


def test_percentage_gate_falls_through_to_next_rule() -> None:
    flag = {"key": "f", "enabled": True, "type": "string", "variants": {"a": "A", "b": "B"},
            "rules": [{"id": "gated", "rollout": {"percentage": 30}, "serve": "a"}],
            "fallthrough": "b"}
    s = snap(flag)
    served = [s.evaluate("f", {"targetingKey": f"u{i}"}, None).variant for i in range(5000)]
    assert 0.25 < served.count("a") / 5000 < 0.35
    assert s.evaluate("f", {}, None).variant == "b"  # no key: the gated rule is skipped


def test_weighted_variants_split() -> None:
    flag = {"key": "f", "type": "number", "variants": {"low": 1, "mid": 2, "high": 3},
            "enabled": True, "fallthrough": {"split": {"low": 10, "mid": 30, "high": 60}}}
    s = snap(flag)
    served = [s.evaluate("f", {"targetingKey": f"u{i}"}, None).value for i in range(20_000)]
    for value, share in ((1, 0.1), (2, 0.3), (3, 0.6)):
        assert abs(served.count(value) / 20_000 - share) < 0.015


def test_jsonlogic_condition() -> None:
    flag = {"key": "f", "enabled": True, "fallthrough": False, "rules": [
        {"when": [{"jsonlogic": {"or": [{"==": [{"var": "a"}, 1]}, {"var": "b"}]}}],
         "serve": True}]}
    s = snap(flag)
    assert s.evaluate("f", {"a": 1}, None).value is True
    assert s.evaluate("f", {"b": "yes"}, None).value is True
    assert s.evaluate("f", {"a": 2}, None).value is False


def test_check_flag_reports_unknown_references() -> None:
    flag = Flag.model_validate({"key": "f", "rules": [{"when": [{"segment": "ghost"}],
                                                       "serve": True}],
                                "prerequisites": [{"flag": "nope", "variants": ["true"]}]})
    messages = [p.message for p in check_flag(flag, FlagSet())]
    assert "unknown segment 'ghost'" in messages
    assert "unknown prerequisite flag 'nope'" in messages


contexts = st.dictionaries(st.text(max_size=12), st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(),
                                                         max_size=2)), max_size=6)


_ALL = snap(*[rule_flag(op, operand) | {"key": f"f{i}"}
               for i, (op, operand, _value, _expected) in enumerate(CASES)])


@given(contexts)
def test_evaluation_never_raises(context: dict[str, Any]) -> None:
    s = _ALL
    for i in range(len(CASES)):
        for ctx in (context, {"a": next(iter(context.values()), None)}):
            details = s.evaluate(f"f{i}", ctx, "d")
            assert details.reason in ("TARGETING_MATCH", "DEFAULT", "ERROR")


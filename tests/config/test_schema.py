"""Schemas: version choice, and the quick checks agree with jsonschema on random configs."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from rollwave.config.schema import (
    CompiledSchema,
    SchemaSource,
    ValidationRun,
    at_secret,
    check_schema,
    choose_schema,
    version_key,
)
from rollwave.core.hashing import config_hash

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["server"],
    "additionalProperties": False,
    "$defs": {"port": {"type": "integer", "minimum": 1, "maximum": 65535}},
    "properties": {
        "server": {"type": "object", "required": ["port"], "additionalProperties": False,
                   "properties": {"port": {"$ref": "#/$defs/port"},
                                  "host": {"type": "string", "minLength": 2,
                                           "pattern": "^[a-z]"},
                                  "mode": {"enum": ["a", "b", 1]}}},
        "ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "flags": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "hosts": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "password": {"type": "string", "minLength": 8},
        "any": {},
        "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
    },
}

SCALAR = st.one_of(st.integers(-2, 70000), st.floats(-1, 2, allow_nan=False), st.booleans(),
                   st.none(), st.sampled_from(["", "a", "ab", "Ab", "abc", "b"]))
VALUE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["port", "host", "mode", "x"]), inner, max_size=3), max_leaves=6)
SECRET = st.just({"$secret": "env:PW"})
CONFIG = st.fixed_dictionaries(
    {"server": st.fixed_dictionaries({}, optional={
        "port": st.one_of(st.integers(-1, 70000), SCALAR), "host": VALUE,
        "mode": st.one_of(SCALAR, st.sampled_from(["a", "b", 1, 1.0, True])), "x": SCALAR})},
    optional={"ratio": VALUE, "flags": st.dictionaries(st.sampled_from(["f", "g"]), SCALAR),
              "hosts": VALUE, "password": st.one_of(SECRET, SCALAR), "any": VALUE,
              "either": VALUE, "unknown": SCALAR})


def _reference(values: dict[str, Any]) -> bool:
    validator = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return not [e for e in validator.iter_errors(values)
                if not at_secret(values, tuple(e.absolute_path))]


@settings(max_examples=400, deadline=None)
@given(st.lists(CONFIG, min_size=1, max_size=6))
def test_quick_check_agrees_with_jsonschema(configs: list[dict[str, Any]]) -> None:
    run = ValidationRun(CompiledSchema(SchemaSource("s.json", SCHEMA)))
    for values in configs:
        assert (not run.validate(values, config_hash(values))) == _reference(values), values


@settings(max_examples=150, deadline=None)
@given(CONFIG, CONFIG)
def test_shared_sections_are_checked_once_but_correctly(a: dict[str, Any],
                                                        b: dict[str, Any]) -> None:
    run = ValidationRun(CompiledSchema(SchemaSource("s.json", SCHEMA)))
    shared = {**b, "server": a["server"]}  # the same object in two configs
    for values in (a, shared):
        assert (not run.validate(values, config_hash(values))) == _reference(values)


def test_errors_are_complete_and_sorted() -> None:
    compiled = CompiledSchema(SchemaSource("s.json", SCHEMA))
    errors = compiled.errors({"server": {"port": 0, "host": "A"}, "extra": 1,
                              "password": {"$secret": "env:X"}})
    assert [(e.path, e.keyword) for e in errors] == [
        (("extra",), "additionalProperties"), (("server", "host"), "pattern"),
        (("server", "host"), "minLength"), (("server", "port"), "minimum")]


def test_version_order() -> None:
    ordered = ["0.9", "1.0.0-rc1", "1.0.0", "1.2.9", "1.2.10", "2.0.0"]
    shuffled = ["1.2.10", "2.0.0", "0.9", "1.0.0", "1.2.9", "1.0.0-rc1"]
    assert sorted(shuffled, key=version_key) == ordered


@pytest.mark.parametrize(("version", "chosen"), [
    (None, "plain"), ("0.1", "plain"), ("1.0.0", "1.0.0"), ("1.5", "1.0.0"),
    ("2.0.0", "2.0.0"), ("2.9.9", "2.0.0"), ("2.10.0", "2.10.0"), ("10.0", "2.10.0"),
])
def test_choose_schema(version: str | None, chosen: str) -> None:
    plain = SchemaSource("plain", {})
    versioned = {v: SchemaSource(v, {}, v) for v in ("1.0.0", "2.0.0", "2.10.0")}
    found = choose_schema(plain, versioned, version)
    assert found is not None
    assert found.file == chosen


def test_check_schema_reports_the_bad_keyword() -> None:
    assert check_schema({"type": "object"}) is None
    assert "properties/a/type" in (check_schema({"properties": {"a": {"type": "nope"}}}) or "")
    assert check_schema([1]) == "a JSON Schema is a mapping (or true/false)"


def test_unresolvable_ref_is_an_error_not_a_crash() -> None:
    compiled = CompiledSchema(SchemaSource("s.json", {"properties": {"a": {"$ref": "x.json"}}}))
    errors = compiled.errors({"a": 1})
    assert errors
    assert "cannot be resolved" in errors[0].message

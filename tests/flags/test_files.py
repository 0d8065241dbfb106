"""Flag files: YAML format, located errors for bad definitions, hostile regexes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rollwave.errors import ValidationFailed
from rollwave.flags.engine import compile_snapshot
from rollwave.flags.errors import UnsafeRegexError
from rollwave.flags.files import flag_to_yaml, load_flags_dir, parse_flag, parse_flag_yaml
from rollwave.flags.regexguard import compile_safe

GOOD = """\
description: New checkout flow
owner: payments
variants:
  on: true
  off: false
rules:
  - id: acme
    when:
      - attribute: customer
        op: in
        values: [acme, globex]
    serve: on
fallthrough:
  split: {on: 20, off: 80}
  bucketing: {by: customer}
environments:
  production: {enabled: true}
rollout_plan:
  variant: on
  steps:
    - percentage: 5
      after: 1h
      guards: [error-rate]
    - percentage: 100
"""


def test_yaml_flag_loads_and_evaluates(tmp_path: Path) -> None:
    (tmp_path / "flags" / "segments").mkdir(parents=True)
    (tmp_path / "flags" / "new-checkout.yaml").write_text(GOOD)
    (tmp_path / "flags" / "segments" / "beta.yaml").write_text(
        "when:\n  - {attribute: plan, op: equals, value: beta}\n")
    flagset = load_flags_dir(tmp_path)
    flag = flagset.flags["new-checkout"]
    assert [v.name for v in flag.variants] == ["true", "false"]  # YAML on/off are booleans
    assert flag.rollout_plan is not None
    assert flag.rollout_plan.steps[0].guards == ["error-rate"]
    snapshot = compile_snapshot(flagset, "production")
    assert snapshot.evaluate("new-checkout", {"customer": "acme"}, False).value is True
    assert "beta" in flagset.segments


def test_yaml_round_trip() -> None:
    flag = parse_flag_yaml(GOOD, key="new-checkout")
    again = parse_flag_yaml(flag_to_yaml(flag), key="new-checkout")
    assert again == flag


def test_every_problem_is_located() -> None:
    text = """\
type: boolean
rules:
  - id: r1
    when:
      - attribute: email
        op: matches
        value: "(a+)+$"
    serve: on
  - id: r2
    when:
      - attribute: version
        op: semver_gt
        value: "1.2"
    serve: on
  - id: r3
    when:
      - attribute: tier
        op: between
        value: 3
    serve: off
colour: blue
"""
    with pytest.raises(ValidationFailed) as caught:
        parse_flag_yaml(text, "flags/x.yaml", key="x")
    rendered = caught.value.render()
    assert "flags/x.yaml:7:" in rendered
    assert "nested quantifiers" in rendered
    assert "flags/x.yaml:13:" in rendered
    assert "semantic version" in rendered
    assert "flags/x.yaml:18:9: Input should be 'equals'" in rendered  # the bad operator
    assert "flags/x.yaml:21:1: unknown field 'colour'" in rendered
    assert len(caught.value.problems) == 4


def test_unknown_variant_and_bad_split_are_reported() -> None:
    text = "rules:\n  - serve: maybe\nfallthrough:\n  split: {on: 0, off: 0}\n"
    with pytest.raises(ValidationFailed) as caught:
        parse_flag_yaml(text, "flags/y.yaml", key="y")
    messages = " ".join(p.message for p in caught.value.problems)
    assert "split weights must add up to more than 0" in messages


def test_unknown_variant_is_located_at_its_rule() -> None:
    text = "rules:\n  - id: a\n    serve: maybe\n"
    with pytest.raises(ValidationFailed) as caught:
        parse_flag_yaml(text, "flags/y.yaml", key="y")
    problem = caught.value.problems[0]
    assert "unknown variant 'maybe'" in problem.message
    assert problem.line == 2


def test_key_must_match_file_name() -> None:
    with pytest.raises(ValidationFailed, match="1 problem"):
        parse_flag({"key": "other"}, key="mine")


def test_type_checked_variants() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_flag({"type": "number", "variants": {"a": "three"}}, key="n")
    assert "must be a number" in caught.value.problems[0].message


def test_cross_file_references(tmp_path: Path) -> None:
    (tmp_path / "flags").mkdir()
    (tmp_path / "flags" / "a.yaml").write_text(
        "rules:\n  - when: [{segment: ghost}]\n    serve: on\n"
        "prerequisites:\n  - {flag: b, variants: [on]}\n")
    (tmp_path / "flags" / "b.yaml").write_text(
        "prerequisites:\n  - {flag: a, variants: [on]}\n")
    with pytest.raises(ValidationFailed) as caught:
        load_flags_dir(tmp_path)
    rendered = caught.value.render()
    assert "unknown segment 'ghost'" in rendered
    assert "prerequisite cycle" in rendered


HOSTILE = ["(a+)+$", "(a*)*b", "(a|aa)+$", r"(\w+\s?)*$", r"^(\d+)*$", ".*.*.*=.*",
           r"(x+x+)+y", "(a|a)*", r"\w*\w*\w*!", r"(.*)\1", "a" * 600]


@pytest.mark.parametrize("pattern", HOSTILE)
def test_hostile_regexes_are_refused_with_a_reason(pattern: str) -> None:
    with pytest.raises(UnsafeRegexError) as caught:
        compile_safe(pattern)
    assert caught.value.hint
    with pytest.raises(ValidationFailed) as located:
        parse_flag({"rules": [{"when": [{"attribute": "a", "op": "matches", "value": pattern}],
                               "serve": True}]}, key="r")
    assert "regex" in located.value.problems[0].message


@pytest.mark.parametrize("pattern", [r"^[a-z]+@[a-z]+\.[a-z]+$", r"^\d{3}-\d{4}$", "foo|bar",
                                     "(a|b)*c", ".*@example\\.com$", "^user-[0-9]+$"])
def test_ordinary_regexes_are_accepted_and_fast(pattern: str) -> None:
    regex = compile_safe(pattern)
    start = time.process_time()  # CPU time: other processes' load does not count
    regex.search("a" * 1000 + "!")
    assert time.process_time() - start < 0.5  # catastrophic backtracking would take ages


def test_an_empty_file_is_a_disabled_boolean_flag(tmp_path: Path) -> None:
    (tmp_path / "flags").mkdir()
    (tmp_path / "flags" / "quiet.yaml").write_text("")
    flag = load_flags_dir(tmp_path).flags["quiet"]
    assert (flag.type, flag.enabled) == ("boolean", False)

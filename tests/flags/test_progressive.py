"""Pure parts of guarded rollouts and stale-flag detection: steps, baselines, schedules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rollwave.flags.edits import Edits, apply_edits
from rollwave.flags.engine import compile_snapshot
from rollwave.flags.model import Flag, FlagSet, RolloutPlan
from rollwave.flags.progressive import (
    baseline_settings,
    baseline_variant,
    due_at,
    restore_baseline,
    with_percentage,
)
from rollwave.flags.stale import constant_variant, find_references, stale_flags

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _plan(**fields: object) -> RolloutPlan:
    return RolloutPlan.model_validate({"variant": True, "steps": [{"percentage": 1}], **fields})


def test_the_baseline_is_what_was_served_before_else_the_off_variant() -> None:
    boolean = Flag.model_validate({"key": "f"})
    assert baseline_variant(boolean, _plan()) == "false"
    colours = Flag.model_validate({"key": "c", "type": "string",
                                   "variants": {"blue": "#00f", "red": "#f00", "grey": "#888"},
                                   "fallthrough": "grey", "off_variant": "red"})
    plan = RolloutPlan.model_validate({"variant": "blue", "steps": [{"percentage": 5}]})
    assert baseline_variant(colours, plan) == "grey"
    assert baseline_variant(colours, plan.model_copy(update={"baseline": "red"})) == "red"


def test_a_step_sets_the_environment_split_and_the_start_is_restored_exactly() -> None:
    flag = Flag.model_validate({"key": "f", "rules": [{"when": [
        {"attribute": "customer", "op": "in", "values": ["acme"]}], "serve": True}],
        "environments": {"staging": {"enabled": True}}})
    plan = _plan(environment="production")
    start = baseline_settings(flag, plan)
    stepped = with_percentage(flag, plan, 30, "false")
    settings = stepped.environments["production"]
    assert settings.enabled
    assert [(w.variant, w.weight) for w in settings.fallthrough.split] == [  # type: ignore[union-attr]
        ("true", 30.0), ("false", 70.0)]
    assert stepped.environments["staging"] == flag.environments["staging"]
    snapshot = compile_snapshot(FlagSet(flags={"f": stepped}), "production")
    assert snapshot.evaluate("f", {"customer": "acme"}).value is True  # rules untouched
    assert with_percentage(flag, plan, 100, "false").environments[
        "production"].fallthrough.variant == "true"  # type: ignore[union-attr]
    assert restore_baseline(stepped, start) == flag


def test_top_level_rollouts_restore_the_switch_too() -> None:
    flag = Flag.model_validate({"key": "f", "fallthrough": False})
    plan = _plan()
    stepped = with_percentage(flag, plan, 10, baseline_variant(flag, plan))
    assert stepped.enabled
    assert restore_baseline(stepped, baseline_settings(flag, plan)) == flag


def test_when_a_step_is_due() -> None:
    plan = RolloutPlan.model_validate({"variant": True, "steps": [
        {"percentage": 1}, {"percentage": 5, "after": "1h30m"},
        {"percentage": 50, "after": "1h", "at": "2026-12-03T09:00:00"}]})
    assert due_at(plan.steps[0], T0) == T0
    assert due_at(plan.steps[1], T0) == T0 + timedelta(minutes=90)
    assert due_at(plan.steps[2], T0) == datetime(2026, 12, 3, 9, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a duration"):
        RolloutPlan.model_validate({"variant": True,
                                    "steps": [{"percentage": 1, "after": "soon"}]})
    with pytest.raises(ValueError, match="go down"):
        RolloutPlan.model_validate({"variant": True,
                                    "steps": [{"percentage": 5}, {"percentage": 1}]})


@pytest.mark.parametrize(("definition", "environment", "expected"), [
    ({"enabled": True}, None, "true"),
    ({"enabled": False}, None, "false"),
    ({"enabled": True, "killed": True}, None, "false"),
    ({"enabled": True, "fallthrough": {"split": {"true": 100, "false": 0}}}, None, "true"),
    ({"enabled": True, "fallthrough": {"split": {"true": 50, "false": 50}}}, None, None),
    ({"enabled": True, "rules": [{"when": [{"attribute": "a", "op": "exists"}],
                                  "serve": False}]}, None, None),
    ({"enabled": True, "rules": [{"when": [{"attribute": "a", "op": "exists"}],
                                  "serve": True}]}, None, "true"),
    ({"environments": {"prod": {"enabled": True, "killed": True}}}, "prod", "false"),
])
def test_constant_variant(definition: dict[str, object], environment: str | None,
                          expected: str | None) -> None:
    assert constant_variant(Flag.model_validate({"key": "f", **definition}),
                            environment) == expected


def test_stale_needs_every_environment_constant_and_old_enough() -> None:
    mixed = Flag.model_validate({"key": "mixed", "environments": {
        "prod": {"enabled": True}, "staging": {"fallthrough": {"split": {"true": 5,
                                                                          "false": 95}}}}})
    done = Flag.model_validate({"key": "done", "environments": {
        "prod": {"enabled": True}, "staging": {"enabled": True}}})
    old = T0 - timedelta(days=90)
    found = stale_flags([(mixed, old, "a"), (done, old, "b"), (done.model_copy(
        update={"key": "fresh"}), T0, "c")], now=T0, days=30)
    assert [s.key for s in found] == ["done"]
    assert found[0].describe() == "'true' in prod, staging"


def test_code_references_respect_ignores(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.ts").write_text("if (flags.on('my-flag')) {}\n"
                                         "const other = 'my-flagger'\n")
    (tmp_path / "a" / "skip.min.js").write_text('"my-flag"')
    (tmp_path / "a" / "bin.dat").write_bytes(b'\0"my-flag"')
    (tmp_path / ".gitignore").write_text("*.min.js\n/build/\n")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "out.py").write_text('"my-flag"')
    (tmp_path / "a" / "build").mkdir()
    (tmp_path / "a" / "build" / "kept.py").write_text('x = "my-flag"')
    refs = find_references(tmp_path, ["my-flag", "unused"])
    assert [(r.path, r.line) for r in refs["my-flag"]] == [("a/x.ts", 1)]
    assert refs["unused"] == []


def test_cli_edits_keep_everything_else() -> None:
    flag = Flag.model_validate({"key": "f", "description": "d", "rules": [
        {"id": "vip", "when": [{"attribute": "tier", "op": "equals", "value": "vip"}],
         "serve": True}]})
    edited = apply_edits(flag, "f", Edits(environment="production", enabled=True,
                                          targets={"customer": ["acme"]}, percentage=10))
    assert [r.id for r in edited.rules] == ["target-customer", "vip"]
    assert edited.description == "d"
    again = apply_edits(edited, "f", Edits(targets={"customer": ["globex"]},
                                           untarget=["tier"]))
    assert [r.when[0].values for r in again.rules if r.id == "target-customer"] == [["globex"]]
    removed = apply_edits(again, "f", Edits(untarget=["customer"]))
    assert [r.id for r in removed.rules] == ["vip"]

"""Data-driven planning cases: every ``planning_cases/*.yaml`` is one plan, checked exactly.

A case file holds (``?`` = optional)::

    description: what the case shows
    project?:   keys merged over a small base rollwave.yaml (environments production and
                staging, service web): policies, freezes, services, environments
    customers:  {id: customer body without ``id``; ``instances`` defaults to
                {prod: {environment: production}}}
    release:    {name?, versions: {service: version or "="}, config?: {instance: {service: hash}}}
    current?:   {instance: {versions: {service: version}, config?: {service: hash}}}
    policy:     policy name
    now:        an aware ISO time, e.g. 2026-11-27T10:00:00Z
    emergency?: true
    only?:      [instance, ...]
    expect:
      waves:    [{name, instances: [keys in order], parallelism?, bake? (seconds or 5m),
                  failure_budget?, gates? ([approval | "approval x2" | command | http])}]
      unchanged?, excluded?: [keys] (exact; omitted means empty)
      freezes?, freezes_overridden?: [text fragments, one per freeze] (omitted means none)
      targets?: {instance: {window_open?, next_window? (time or null), note? (fragment),
                            changes? ([\"web 1.0 -> 1.1\", \"web 1.1 -> 1.1 config h1 -> h2\"])}}
      emergency?: whether the plan is an emergency one (forced by an emergency policy)
      error?:   a fragment of the ValueError/KeyError message planning must raise instead

A new case is a new file; nothing here needs to change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rollwave.core.durations import parse_duration
from rollwave.core.planning import Plan

from .planning_support import change_text, load_case, parse_time, plan_case

CASES = Path(__file__).parent / "planning_cases"
CASE_FILES = sorted(CASES.glob("*.yaml"))


def test_there_are_cases() -> None:
    assert len(CASE_FILES) >= 30


def _gate_text(gate: Any) -> str:
    if gate.kind == "approval":
        return "approval" if gate.min_approvals == 1 else f"approval x{gate.min_approvals}"
    return str(gate.kind)


def _check_waves(plan: Plan, waves: list[dict[str, Any]]) -> None:
    got = [(w.name, [t.instance for t in w.targets]) for w in plan.waves]
    want = [(w["name"], list(w.get("instances") or [])) for w in waves]
    assert got == want, f"waves differ:\n got  {got}\n want {want}"
    for wave, spec in zip(plan.waves, waves, strict=True):
        if "parallelism" in spec:
            assert wave.parallelism == spec["parallelism"], f"{wave.name}: parallelism"
        if "bake" in spec:
            assert wave.bake == pytest.approx(parse_duration(spec["bake"])), f"{wave.name}: bake"
        if "failure_budget" in spec:
            assert wave.failure_budget == spec["failure_budget"], f"{wave.name}: failure budget"
        if "gates" in spec:
            assert [_gate_text(g) for g in wave.gates] == spec["gates"], f"{wave.name}: gates"
        assert wave.index == plan.waves.index(wave)


def _check_fragments(got: tuple[str, ...], want: list[str], what: str) -> None:
    assert len(got) == len(want), f"{what}: got {got}, want {want}"
    for fragment, text in zip(want, got, strict=True):
        assert fragment in text, f"{what}: {fragment!r} not in {text!r}"


def _check_targets(plan: Plan, targets: dict[str, dict[str, Any]]) -> None:
    by_key = {t.instance: t for w in plan.waves for t in w.targets}
    for key, spec in targets.items():
        assert key in by_key, f"{key} is in no wave"
        target = by_key[key]
        if "window_open" in spec:
            assert target.window_open is spec["window_open"], (
                f"{key}: window_open {target.window_open} ({target.window_note})")
        if "next_window" in spec:
            want = None if spec["next_window"] is None else parse_time(spec["next_window"])
            assert target.next_window == want, (
                f"{key}: next window {target.next_window} ({target.window_note}), want {want}")
        if "note" in spec:
            assert spec["note"] in target.window_note, f"{key}: note {target.window_note!r}"
        if "changes" in spec:
            assert [change_text(c) for c in target.changes] == spec["changes"], key


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_planning_case(path: Path) -> None:
    case = load_case(path)
    assert case.get("description"), f"{path.name}: say what the case shows"
    expect = case["expect"]
    if "error" in expect:
        with pytest.raises((ValueError, KeyError)) as caught:
            plan_case(case)
        assert expect["error"] in str(caught.value)
        return
    plan = plan_case(case)
    _check_waves(plan, expect["waves"])
    assert list(plan.unchanged) == list(expect.get("unchanged") or []), "unchanged"
    assert list(plan.excluded) == list(expect.get("excluded") or []), "excluded"
    _check_fragments(plan.freezes, list(expect.get("freezes") or []), "freezes")
    _check_fragments(plan.freezes_overridden, list(expect.get("freezes_overridden") or []),
                     "freezes overridden")
    _check_targets(plan, expect.get("targets") or {})
    if case.get("emergency"):
        assert plan.emergency
    if "emergency" in expect:
        assert plan.emergency is expect["emergency"]
    # every instance the release touches appears exactly once across waves and excluded
    keys = [t.instance for w in plan.waves for t in w.targets] + list(plan.excluded)
    assert len(keys) == len(set(keys))
    assert not set(keys) & set(plan.unchanged)
    plan.to_dict()  # serialisable as stored with a rollout

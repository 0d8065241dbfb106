"""Diffs per key path (secrets by hash only) and grouping of a release across instances."""

from __future__ import annotations

from rollwave.config import Change, RenderedConfig, diff, group_diffs, release_diff
from rollwave.core.hashing import config_hash


def rc(instance: str, values: dict, service: str = "api") -> RenderedConfig:
    return RenderedConfig(instance=instance, service=service, values=values,
                          hash=config_hash(values))


def test_changes_per_key_path() -> None:
    old = {"a": 1, "b": {"c": [1, 2], "d": "x", "gone": True}, "l": [1], "t": 1}
    new = {"a": 2, "b": {"c": [1, 3], "d": "x", "new": None}, "l": [1, 2], "t": True}
    assert [c.render() for c in diff(old, new)] == [
        "~ a: 1 → 2",
        "~ b.c[1]: 2 → 3",
        "- b.gone (was true)",
        "+ b.new: null",
        "~ l: [1] → [1, 2]",
        "~ t: 1 → true",
    ]
    assert diff(rc("x/y", old), rc("x/y", old)) == []
    assert [c.kind for c in diff(None, {"a": 1})] == ["added"]


def test_secrets_are_compared_by_reference_and_never_shown() -> None:
    old = {"pw": {"$secret": "env:A"}, "same": {"$secret": "env:S"}, "nested": {"x": 1}}
    new = {"pw": {"$secret": "env:B"}, "same": {"$secret": "env:S"},
           "nested": {"$secret": "env:N"}}
    changes = diff(old, new)
    assert [(c.path, c.kind, c.secret) for c in changes] == [
        ("pw", "changed", True), ("nested", "changed", True)]
    text = " ".join(c.render() for c in changes)
    assert "env:" not in text
    assert "secret changed" in changes[0].render()
    assert "env:" not in str([c.to_dict() for c in changes])
    assert changes[0].old.startswith("<secret ")
    assert changes[0].old != changes[0].new


def test_grouping_folds_identical_change_sets() -> None:
    old, new = {}, {}
    for index in range(500):
        key = f"c{index:03d}/prod"
        old[(key, "api")] = rc(key, {"level": "info", "url": f"https://c{index:03d}.a.com"})
        new[(key, "api")] = rc(key, {"level": "debug", "url": f"https://c{index:03d}.b.com"})
        old[(key, "web")] = rc(key, {"x": 1}, "web")
        new[(key, "web")] = rc(key, {"x": 1}, "web")
    new[("c007/prod", "api")] = rc("c007/prod", {"level": "warning",
                                                  "url": "https://c007.b.com"})
    old[("zz/prod", "web")] = rc("zz/prod", {"x": 1}, "web")
    new[("zz/prod", "web")] = rc("zz/prod", {"x": 1}, "web")
    summary = group_diffs(release_diff(old, new))
    assert [g.count for g in summary.groups] == [499, 1]
    assert summary.unchanged == ("zz/prod",)
    assert summary.groups[0].changes == (
        ("api", '~ level: "info" → "debug"'),
        ("api", '~ url: "https://{customer}.a.com" → "https://{customer}.b.com"'))
    assert summary.groups[1].instances == ("c007/prod",)
    text = summary.render_text()
    assert text.splitlines()[0] == ("config changes: 501 instances, 500 changed in 2 groups, "
                                    "1 unchanged")
    assert "499 instances (c000/prod, c001/prod, c002/prod, … 496 more):" in text
    assert summary.to_dict()["groups"][1]["examples"] == ["c007/prod"]


def test_added_and_removed_services() -> None:
    old = {("a/p", "api"): rc("a/p", {"x": 1})}
    new = {("a/p", "web"): rc("a/p", {"y": 2}, "web")}
    diffs = release_diff(old, new)
    assert [c.render() for c in diffs[("a/p", "api")]] == ["- x (was 1)"]
    assert [c.render() for c in diffs[("a/p", "web")]] == ["+ y: 2"]


def test_shared_sections_are_diffed_once() -> None:
    shared_old, shared_new = {"k": 1}, {"k": 2}
    old = {(f"c{i}/p", "api"): rc(f"c{i}/p", {"s": shared_old, "i": i}) for i in range(3)}
    new = {(f"c{i}/p", "api"): rc(f"c{i}/p", {"s": shared_new, "i": i}) for i in range(3)}
    diffs = release_diff(old, new)
    firsts = [diffs[(f"c{i}/p", "api")][0] for i in range(3)]
    assert all(change is firsts[0] for change in firsts)
    assert isinstance(firsts[0], Change)

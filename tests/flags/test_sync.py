"""flags/*.yaml ↔ database: sync, drift, conflicts, --force, --prune, rollouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rollwave.errors import ValidationFailed
from rollwave.flags import rollouts
from rollwave.flags.dbstore import DatabaseFlagStore
from rollwave.flags.files import parse_flag
from rollwave.flags.model import Flag, RolloutPlan
from rollwave.flags.store import set_killed
from rollwave.flags.sync import drift, sync_flags
from rollwave.services.context import App


def _states(report: object) -> dict[str, tuple[str, str]]:
    return {i.key: (i.state, i.action) for i in report.items}  # type: ignore[attr-defined]


def _write(app: App, key: str, text: str) -> None:
    path = app.root / "flags" / f"{key}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)


def test_first_sync_imports_and_marks_flags_as_git_managed(
        app: App, store: DatabaseFlagStore) -> None:
    report = sync_flags(store, app.root, actor="ci", reason="merge #12")
    assert _states(report) == {"new-checkout": ("new", "create")}
    record = store.record("new-checkout")
    assert record is not None
    assert (record.managed_by, record.git_path, record.drifted) == (
        "git", "flags/new-checkout.yaml", False)
    entry = store.history("new-checkout")[0]
    assert entry.action == "synced"
    assert "merge #12" in entry.reason
    again = sync_flags(store, app.root, actor="ci")
    assert _states(again) == {"new-checkout": ("in-sync", "none")}
    assert again.clean


def test_formatting_and_comments_are_not_changes(app: App, store: DatabaseFlagStore) -> None:
    sync_flags(store, app.root, actor="ci")
    path = app.root / "flags" / "new-checkout.yaml"
    path.write_text("# reviewed by bob\n" + path.read_text().replace("owner: payments",
                                                                       "owner:   payments"))
    assert sync_flags(store, app.root, actor="ci").clean


def test_a_git_change_is_applied(app: App, store: DatabaseFlagStore) -> None:
    sync_flags(store, app.root, actor="ci")
    path = app.root / "flags" / "new-checkout.yaml"
    path.write_text(path.read_text().replace("values: [acme]", "values: [acme, globex]"))
    report = sync_flags(store, app.root, actor="ci")
    assert _states(report) == {"new-checkout": ("updated", "update")}
    flag = store.get_flag("new-checkout")
    assert flag is not None
    assert flag.value.rules[0].when[0].values == ["acme", "globex"]
    assert not store.record("new-checkout").drifted  # type: ignore[union-attr]


def test_api_change_is_drift_and_sync_refuses_to_overwrite_it(
        app: App, store: DatabaseFlagStore) -> None:
    sync_flags(store, app.root, actor="ci")
    set_killed(store, "new-checkout", True, actor="oncall", reason="INC-9",
               environment="production")
    record = store.record("new-checkout")
    assert record is not None
    assert record.drifted
    assert store.get_flag("new-checkout").meta["drifted"]  # type: ignore[union-attr]
    report = sync_flags(store, app.root, actor="ci")
    item = report.items[0]
    assert (item.state, item.action) == ("drifted", "refused")
    assert "oncall" in item.detail
    assert "+    killed: true" in item.diff
    assert "git: flags/new-checkout.yaml" in item.diff
    assert store.get_flag("new-checkout").value.environments["production"].killed  # type: ignore[union-attr]
    forced = sync_flags(store, app.root, actor="ci", force=True)
    assert _states(forced)["new-checkout"] == ("drifted", "update")
    assert not store.get_flag("new-checkout").value.environments["production"].killed  # type: ignore[union-attr]
    assert not store.record("new-checkout").drifted  # type: ignore[union-attr]


def test_changes_on_both_sides_are_a_conflict_unless_they_agree(
        app: App, store: DatabaseFlagStore) -> None:
    sync_flags(store, app.root, actor="ci")
    current = store.get_flag("new-checkout")
    assert current is not None
    store.put_flag(current.value.model_copy(update={"description": "via API"}), actor="pm")
    path = app.root / "flags" / "new-checkout.yaml"
    path.write_text(path.read_text().replace("New checkout flow", "via git"))
    report = sync_flags(store, app.root, actor="ci")
    assert _states(report)["new-checkout"] == ("conflict", "refused")
    path.write_text(path.read_text().replace("via git", "via API"))  # git catches up
    report = sync_flags(store, app.root, actor="ci")
    assert _states(report)["new-checkout"] == ("converged", "mark")
    assert not store.record("new-checkout").drifted  # type: ignore[union-attr]
    assert sync_flags(store, app.root, actor="ci").clean


def test_api_created_flags_are_left_alone_or_adopted(app: App, store: DatabaseFlagStore) -> None:
    store.put_flag(Flag.model_validate({"key": "api-only", "enabled": True}), actor="pm")
    yaml_flag = (app.root / "flags" / "new-checkout.yaml").read_text()
    store.put_flag(parse_flag(yaml.safe_load(yaml_flag), key="new-checkout"),
                   actor="pm")
    report = sync_flags(store, app.root, actor="ci")
    assert _states(report) == {"new-checkout": ("adopt", "mark")}
    assert store.record("new-checkout").managed_by == "git"  # type: ignore[union-attr]
    assert store.record("api-only").managed_by == "api"  # type: ignore[union-attr]
    _write(app, "api-only", "enabled: false\n")
    assert _states(sync_flags(store, app.root, actor="ci"))["api-only"] == (
        "api-differs", "refused")


def test_removed_files_are_deleted_only_with_prune(app: App, store: DatabaseFlagStore) -> None:
    sync_flags(store, app.root, actor="ci")
    (app.root / "flags" / "new-checkout.yaml").unlink()
    assert _states(sync_flags(store, app.root, actor="ci")) == {
        "new-checkout": ("removed", "kept")}
    assert store.get_flag("new-checkout") is not None
    report = sync_flags(store, app.root, actor="ci", prune=True)
    assert _states(report) == {"new-checkout": ("removed", "delete")}
    assert store.get_flag("new-checkout") is None


def test_invalid_files_stop_the_sync_with_every_problem(app: App,
                                                         store: DatabaseFlagStore) -> None:
    _write(app, "broken", "rules:\n  - when: [{attribute: email, op: matches, value: '(a+)+'}]\n"
                          "    serve: on\nfallthrough: nope\n")
    with pytest.raises(ValidationFailed) as caught:
        sync_flags(store, app.root, actor="ci")
    files = {p.file for p in caught.value.problems}
    assert files == {"flags/broken.yaml"}
    assert store.records() == []  # nothing written


def test_dry_run_writes_nothing(app: App, store: DatabaseFlagStore) -> None:
    report = sync_flags(store, app.root, actor="ci", dry_run=True)
    assert [i.action for i in report.changes] == ["create"]
    assert not report.applied
    assert store.records() == []


def test_a_flag_driven_by_a_rollout_is_not_overwritten(app: App,
                                                       store: DatabaseFlagStore) -> None:
    sync_flags(store, app.root, actor="ci")
    rollouts.start(app, "new-checkout", plan=RolloutPlan.model_validate(
        {"variant": True, "environment": "production", "steps": [{"percentage": 10}]}))
    path = app.root / "flags" / "new-checkout.yaml"
    path.write_text(path.read_text().replace("New checkout flow", "changed"))
    report = sync_flags(store, app.root, actor="ci")
    assert _states(report)["new-checkout"] == ("rollout", "refused")


def test_drift_of_one_flag(app: App, store: DatabaseFlagStore, workspace: Path) -> None:
    assert drift(store, "new-checkout", workspace).state == "new"  # type: ignore[union-attr]
    sync_flags(store, app.root, actor="ci")
    assert drift(store, "new-checkout").state == "in-sync"  # type: ignore[union-attr]
    set_killed(store, "new-checkout", True, actor="oncall")
    assert drift(store, "new-checkout").state == "drifted"  # type: ignore[union-attr]
    assert drift(store, "new-checkout", workspace).action == "refused"  # type: ignore[union-attr]

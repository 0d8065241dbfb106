"""Loading a workspace: discovery, content hash, the fleet it builds, lenient mode."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rollwave.errors import ValidationFailed, WorkspaceNotFound
from rollwave.workspace.loader import (
    find_workspace,
    load_workspace,
    validate_workspace,
    workspace_hash,
)

from .test_bad_cases import BASE


@pytest.fixture
def root(tmp_path: Path) -> Path:
    target = tmp_path / "ws"
    shutil.copytree(BASE, target)
    return target


def test_find_workspace_walks_up(root: Path) -> None:
    deep = root / "customers" / "a" / "b"
    deep.mkdir(parents=True)
    assert find_workspace(deep) == root.resolve()


def test_find_workspace_explains_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceNotFound, match="does not exist"):
        find_workspace(tmp_path / "nope")
    with pytest.raises(WorkspaceNotFound, match=r"no rollwave\.yaml in"):
        find_workspace(tmp_path)


def test_find_workspace_uses_the_environment(root: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLWAVE_WORKSPACE", str(root))
    monkeypatch.chdir(tmp_path)
    assert find_workspace() == root.resolve()


def test_fleet_is_built_with_facts(root: Path) -> None:
    workspace = load_workspace(root)
    fleet = workspace.fleet
    assert [i.key for i in fleet] == ["acme/prod", "ourselves/prod", "ourselves/remote"]
    acme = fleet.get("acme/prod")
    assert acme is not None
    assert acme.services == ("web", "api")
    assert acme.deployer == "local"
    assert acme.facts.attributes["tier"] == "enterprise"
    assert acme.facts.attributes["customer"] == "acme"
    assert acme.windows[0].timezone == "Europe/Berlin"
    remote = fleet.get("ourselves/remote")
    assert remote is not None
    assert remote.deployer == "ssh"
    assert remote.environment == "staging"
    assert workspace.policy(None).waves[0].name == "internal"
    with pytest.raises(ValidationFailed, match="policy choice"):
        workspace.policy("nope")


def test_content_hash_changes_with_any_file_and_only_then(root: Path) -> None:
    first = workspace_hash(root)
    assert workspace_hash(root) == first
    (root / ".rollwave").mkdir()
    (root / ".rollwave" / "state.db").write_text("x")
    assert workspace_hash(root) == first, "local state is not part of the workspace"
    (root / "customers" / "acme.yaml").write_text(
        (root / "customers" / "acme.yaml").read_text() + "# a comment\n")
    second = workspace_hash(root)
    assert second != first
    (root / "config").mkdir()
    (root / "config" / "web.yaml").write_text("a: 1\n")
    assert workspace_hash(root) != second


def test_content_hash_survives_an_unreadable_file(root: Path) -> None:
    (root / "customers" / "dangling.yaml").symlink_to(root / "nowhere")
    assert len(workspace_hash(root)) == 64


def test_lenient_mode_returns_problems_as_warnings(root: Path) -> None:
    text = (root / "customers" / "acme.yaml").read_text().replace("production", "prd")
    (root / "customers" / "acme.yaml").write_text(text)
    with pytest.raises(ValidationFailed):
        load_workspace(root)
    workspace = load_workspace(root, strict=False)
    assert any("unknown environment 'prd'" in p.message for p in workspace.warnings)


def test_validate_workspace_sorts_by_file_and_line(root: Path) -> None:
    (root / "customers" / "zed.yaml").write_text("id: zed\nteir: x\ninstances: {}\n")
    (root / "customers" / "acme.yaml").write_text("id: acme\nfoo: 1\nbar: 2\n")
    problems = validate_workspace(root)
    located = [(p.file, p.line) for p in problems]
    assert located == sorted(located, key=lambda fl: (fl[0] or "", fl[1] or 0))
    assert {p.file for p in problems} == {"customers/acme.yaml", "customers/zed.yaml"}

"""`rollwave release ...` and `rollwave plan` on real workspaces: wording, size, hostile text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollwave.workspace.scaffold import init_workspace

from .support import assert_no_traceback, run

Capsys = pytest.CaptureFixture[str]

HOSTILE_NOTES = "[/] [bold red]$(touch {marker}); `touch {marker}`\nsecond line ünïcødé 🚀"


@pytest.fixture
def starter(tmp_path: Path) -> Path:
    root = tmp_path / "fleet"
    init_workspace(root)
    return root


def test_release_create_list_show(capsys: Capsys, starter: Path) -> None:
    created = run(capsys, "-w", str(starter), "release", "create", "-v", "web=1.1",
                  "--name", "r1", "--notes", "faster reports")
    assert created.code == 0, created.text
    assert "Release r1 created: web 1.1" in created.out
    assert "Next: `rollwave plan r1`" in created.out
    listed = run(capsys, "-w", str(starter), "release", "list")
    assert listed.code == 0
    assert "r1" in listed.out
    assert "faster reports" in listed.out
    shown = run(capsys, "-w", str(starter), "release", "show", "r1")
    assert shown.code == 0
    assert "web: 1.1" in shown.out
    assert "workspace hash:" in shown.out
    again = run(capsys, "-w", str(starter), "release", "create", "-v", "web=1.2", "--name", "r1")
    assert again.code == 1
    assert_no_traceback(again)
    assert "release.exists" in again.err


def test_release_list_when_empty(capsys: Capsys, starter: Path) -> None:
    result = run(capsys, "-w", str(starter), "release", "list")
    assert result.code == 0
    assert "No releases yet" in result.out


def test_config_only_release_is_worded(capsys: Capsys, starter: Path) -> None:
    result = run(capsys, "-w", str(starter), "release", "create", "--config-only",
                 "--name", "cfg")
    assert result.code == 0, result.text
    assert "web (version kept, config only)" in result.out


@pytest.mark.parametrize("args", [
    ["release", "create", "-v", "web"],
    ["release", "create", "-v", "nosuch=1.0"],
    ["release", "create", "-v", "web=1.0", "--name", "../../etc/passwd"],
    ["release", "create", "-v", "web=$(reboot)"],
    ["release", "show", "nope"],
    ["plan", "nope"],
])
def test_release_mistakes_are_explained(capsys: Capsys, starter: Path, args: list[str]) -> None:
    result = run(capsys, "-w", str(starter), *args)
    assert result.code == 1, result.text
    assert_no_traceback(result)
    assert "hint" in result.err


def test_plan_on_the_starter_workspace(capsys: Capsys, starter: Path) -> None:
    assert run(capsys, "-w", str(starter), "release", "create", "-v", "web=1.1",
               "--name", "r1").code == 0
    result = run(capsys, "-w", str(starter), "plan", "r1")
    assert result.code == 0, result.text
    out = result.out
    assert "Plan for release r1 · policy standard" in out
    assert "3 instances to change in 3 waves" in out
    assert "Wave 1/3 internal — 1 instance · 1 at a time · bake 5m · halts on the first " \
           "failure · no gates" in out
    assert "Wave 2/3 canary" in out
    assert "waits for approval" in out
    assert "web (new) → 1.1" in out
    hotfix = run(capsys, "-w", str(starter), "plan", "r1", "--policy", "hotfix")
    assert hotfix.code == 0, hotfix.text
    assert "EMERGENCY" in hotfix.out
    assert "overridden" in hotfix.out
    body = json.loads(run(capsys, "-w", str(starter), "plan", "r1", "--json").out)
    assert [w["name"] for w in body["plan"]["waves"]] == ["internal", "canary", "rest"]


def test_plan_with_an_unknown_policy_lists_the_known_ones(capsys: Capsys, starter: Path) -> None:
    run(capsys, "-w", str(starter), "release", "create", "-v", "web=1.1", "--name", "r1")
    result = run(capsys, "-w", str(starter), "plan", "r1", "--policy", "yolo")
    assert result.code == 1
    assert_no_traceback(result)
    assert "no policy named 'yolo'" in result.err
    assert "hotfix, standard" in result.flat_err


def test_plan_shows_an_active_freeze(capsys: Capsys, starter: Path) -> None:
    text = (starter / "rollwave.yaml").read_text().replace(
        "freezes: []", "freezes:\n- {name: all-year, start: '2000-01-01T00:00:00Z', "
        "end: '2999-01-01T00:00:00Z', reason: 'testing [/] markup'}")
    (starter / "rollwave.yaml").write_text(text)
    run(capsys, "-w", str(starter), "release", "create", "-v", "web=1.1", "--name", "r1")
    result = run(capsys, "-w", str(starter), "plan", "r1")
    assert result.code == 0, result.text
    assert "Frozen: all-year until 2999-01-01T00:00:00+00:00: testing [/] markup" in result.out


def _big_workspace(root: Path, count: int) -> None:
    init_workspace(root)
    zones = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"]
    for i in range(count):
        windows = "" if i % 3 == 0 else (
            f"windows:\n  - {{days: mon-fri, start: '{20 + i % 4}:00', end: '04:00'}}\n")
        (root / "customers" / f"c{i:03d}.yaml").write_text(
            f"id: c{i:03d}\ntier: {'enterprise' if i % 4 == 0 else 'standard'}\n"
            f"tags: {['early-adopter'] if i % 25 == 0 else []}\ntimezone: {zones[i % 4]}\n"
            f"{windows}instances:\n  prod: {{environment: production, target: "
            f"{{port: {20000 + i}}}}}\n")


def test_a_500_instance_plan_stays_readable_and_full_lists_all(capsys: Capsys,
                                                                tmp_path: Path) -> None:
    root = tmp_path / "big"
    _big_workspace(root, 500)
    assert run(capsys, "-w", str(root), "release", "create", "-v", "web=2.0",
               "--name", "r2").code == 0
    short = run(capsys, "-w", str(root), "plan", "r2")
    assert short.code == 0, short.text
    lines = short.out.splitlines()
    assert len(lines) <= 40, short.out
    assert all(len(line) <= 160 for line in lines)
    assert "503 instances to change in 3 waves" in short.out
    assert "(+" in short.out
    assert "--full" in short.out
    full = run(capsys, "-w", str(root), "plan", "r2", "--full")
    assert full.code == 0
    for i in range(500):
        assert f"c{i:03d}/prod" in full.out
    assert len(full.out.splitlines()) > 500


def test_hostile_text_is_data_everywhere(capsys: Capsys, starter: Path, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    notes = HOSTILE_NOTES.format(marker=marker)
    (starter / "customers" / "evil.yaml").write_text(
        "id: evil\n"
        "name: \"x; rm -rf / && touch " + str(marker) + " | tee\\n[/]{{7*7}} ${HOME}\"\n"
        "labels: {owner: '$(touch " + str(marker) + ")', city: 'Zürich — 東京'}\n"
        "tags: [früh, '[red]']\n"
        "instances:\n  prod: {environment: production, target: {port: 18199}}\n")
    checked = run(capsys, "-w", str(starter), "validate")
    assert checked.code == 0, checked.text
    actor = "[bold]eve[/]; $(touch " + str(marker) + ")"
    created = run(capsys, "-w", str(starter), "--as", actor, "release", "create",
                  "-v", "web=1.1", "--name", "r1", "--notes", notes)
    assert created.code == 0, created.text
    listed = run(capsys, "-w", str(starter), "release", "list")
    shown = run(capsys, "-w", str(starter), "release", "show", "r1")
    planned = run(capsys, "-w", str(starter), "plan", "r1", "--full")
    for result in (created, listed, shown, planned):
        assert result.code == 0, result.text
        assert_no_traceback(result)
    assert "[/] [bold red]$(touch" in shown.out
    assert "second line ünïcødé 🚀" in shown.out
    assert "[bold]eve[/]" in shown.out
    assert "[/] [bold red]$(touch" in listed.out
    assert "evil/prod" in planned.out
    body = json.loads(run(capsys, "-w", str(starter), "release", "show", "r1", "--json").out)
    assert body["notes"] == notes
    assert body["created_by"] == actor
    assert not marker.exists(), "hostile text was executed"

"""`rollwave validate`: every problem at once, file:line, exit codes, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.workspace.test_bad_cases import BASE

from .support import assert_no_traceback, run, run_process

Capsys = pytest.CaptureFixture[str]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(BASE, root)
    return root


def test_valid_workspace_exits_0(capsys: Capsys, workspace: Path) -> None:
    result = run(capsys, "-w", str(workspace), "validate")
    assert result.code == 0, result.text
    assert "✓ workspace is valid: 2 customers, 3 instances, 2 services, 2 policies" in result.out


def test_every_problem_on_its_own_line_with_file_line_column(capsys: Capsys,
                                                             workspace: Path) -> None:
    (workspace / "customers" / "acme.yaml").write_text(
        "id: acme\ntimezone: Mars/Base\ninstances:\n  prod: {environment: prd}\n")
    (workspace / "customers" / "bolt.yaml").write_text("id: bolt\ninstances: [\n")
    result = run(capsys, "-w", str(workspace), "validate")
    assert result.code == 1
    assert_no_traceback(result)
    lines = result.out.splitlines()
    assert any(line.startswith("customers/acme.yaml:2:1: unknown time zone 'Mars/Base'")
               for line in lines), result.out
    assert any(line.startswith("customers/bolt.yaml:3:") and "YAML syntax error" in line
               for line in lines), result.out
    assert "✗ 2 errors" in result.out
    # a long message is one line, never folded at the terminal width
    assert all(not line.startswith(" " * 8) for line in lines)


def test_json_output(capsys: Capsys, workspace: Path) -> None:
    (workspace / "customers" / "acme.yaml").write_text("id: acme\n")
    result = run(capsys, "-w", str(workspace), "validate", "--json")
    assert result.code == 1
    body = json.loads(result.out)
    assert body["ok"] is False
    assert body["problems"][0] == {
        "message": "'instances' is required", "file": "customers/acme.yaml", "line": 1,
        "column": 1, "path": "instances", "hint": "add it", "code": "workspace.invalid",
        "severity": "error"}


def test_warnings_alone_exit_0(capsys: Capsys, workspace: Path) -> None:
    text = (workspace / "rollwave.yaml").read_text().replace("{match: early-adopter}",
                                                              "{match: early-adoptr}")
    (workspace / "rollwave.yaml").write_text(text)
    result = run(capsys, "-w", str(workspace), "validate")
    assert result.code == 0, result.text
    assert "warning: wave 'canary' tests 'early-adoptr'" in result.out
    assert "(1 warning)" in result.out


def test_missing_workspace_directory(capsys: Capsys, tmp_path: Path) -> None:
    result = run(capsys, "-w", str(tmp_path / "nope"), "validate")
    assert result.code == 1
    assert_no_traceback(result)
    assert "workspace.not_found" in result.err
    assert "does not exist" in result.flat_err


def test_empty_directory(capsys: Capsys, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(capsys, "validate", cwd=empty)
    assert result.code == 1
    assert_no_traceback(result)
    assert "no rollwave.yaml in" in result.flat_err
    assert "rollwave init" in result.flat_err


def test_project_file_is_a_directory(capsys: Capsys, tmp_path: Path) -> None:
    (tmp_path / "rollwave.yaml").mkdir()
    result = run(capsys, "-w", str(tmp_path), "validate")
    assert result.code == 1
    assert_no_traceback(result)
    assert "is not a readable file" in result.flat_err


def test_project_file_is_a_broken_link(capsys: Capsys, tmp_path: Path) -> None:
    (tmp_path / "rollwave.yaml").symlink_to(tmp_path / "gone.yaml")
    result = run(capsys, "-w", str(tmp_path), "validate")
    assert result.code == 1
    assert_no_traceback(result)
    assert "broken link" in result.flat_err


def test_customer_file_is_a_directory_link_or_fifo(capsys: Capsys, workspace: Path) -> None:
    customers = workspace / "customers"
    (customers / "dir.yaml").mkdir()
    (customers / "dangling.yaml").symlink_to(workspace / "nowhere.yaml")
    os.mkfifo(customers / "pipe.yaml")
    result = run(capsys, "-w", str(workspace), "validate")
    assert result.code == 1
    assert_no_traceback(result)
    assert "customers/dir.yaml:" in result.out
    assert "not a regular file" in result.out
    assert "customers/pipe.yaml" in result.out
    assert "customers/dangling.yaml" in result.out
    assert "cannot read file" in result.out


def test_unreadable_file(capsys: Capsys, workspace: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    target = workspace / "customers" / "acme.yaml"
    real = Path.read_bytes

    def deny(self: Path) -> bytes:
        if self.name == target.name:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
    result = run(capsys, "-w", str(workspace), "validate", monkeypatch=monkeypatch)
    assert result.code == 1
    assert_no_traceback(result)
    assert "customers/acme.yaml: cannot read file: Permission denied" in result.out


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_for_real(capsys: Capsys, workspace: Path) -> None:
    target = workspace / "customers" / "acme.yaml"
    target.chmod(0)
    try:
        result = run(capsys, "-w", str(workspace), "validate")
    finally:
        target.chmod(0o644)
    assert result.code == 1
    assert_no_traceback(result)
    assert "Permission denied" in result.out


def test_markup_and_control_text_in_problems_is_printed_as_text(capsys: Capsys,
                                                                workspace: Path) -> None:
    (workspace / "customers" / "acme.yaml").write_text(
        'id: acme\ntimezone: "[/]x[bold red]\\x1b[2J"\n'
        'instances:\n  prod: {environment: production}\n')
    result = run(capsys, "-w", str(workspace), "validate")
    assert result.code == 1
    assert_no_traceback(result)
    assert "unknown time zone '[/]x[bold red]" in result.out


def test_validate_from_a_subdirectory(capsys: Capsys, workspace: Path) -> None:
    result = run(capsys, "validate", cwd=workspace / "customers")
    assert result.code == 0, result.text


def test_console_script_exit_codes(tmp_path: Path, workspace: Path) -> None:
    """The installed `rollwave` command: CI relies on these exit codes."""
    ok = run_process("validate", cwd=workspace)
    assert ok.code == 0, ok.text
    (workspace / "customers" / "acme.yaml").write_text("id: acme\n")
    bad = run_process("validate", cwd=workspace)
    assert bad.code == 1, bad.text
    assert "customers/acme.yaml:1:1: 'instances' is required" in bad.out
    assert_no_traceback(bad)
    missing = run_process("-w", str(tmp_path / "nope"), "validate", cwd=tmp_path)
    assert missing.code == 1
    assert "does not exist" in missing.flat_err

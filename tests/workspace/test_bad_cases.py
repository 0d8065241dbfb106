"""Data-driven bad workspaces: ``bad_cases/<case>/`` holds files plus ``expected.yaml``.

Each case starts from ``base/`` (a valid workspace), copies its own files over it (a case file
replaces the base file of the same path) and deletes the paths listed under ``remove:``; with
``base: false`` the case folder is the whole workspace. ``expected.yaml``::

    description: what is wrong
    base?: false
    remove?: [customers/ourselves.yaml, ...]
    problems:      # exactly these errors, reported together in one validation run
      - {file: customers/acme.yaml, line: 7, message: fragment, code?: ..., hint?: fragment}
    warnings?:     # these must be among the warnings (others are allowed)
      - {file: ..., line: ..., message: fragment}

Validation goes through ``rollwave.services.workspace.validate`` (what ``rollwave validate``
runs). A new case is a new folder; nothing here needs to change.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from rollwave.errors import Problem
from rollwave.services.workspace import validate
from rollwave.yamlio import load_yaml

HERE = Path(__file__).parent
BASE = HERE / "base"
CASES = HERE / "bad_cases"
CASE_DIRS = sorted(p for p in CASES.iterdir() if (p / "expected.yaml").is_file())


def build_case(case: Path, expected: dict[str, Any], into: Path) -> Path:
    """The workspace of ``case`` in ``into``."""
    if expected.get("base", True):
        shutil.copytree(BASE, into, dirs_exist_ok=True)
    for source in case.rglob("*"):
        rel = source.relative_to(case)
        if rel.as_posix() == "expected.yaml" or source.is_dir():
            continue
        target = into / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    for rel in expected.get("remove") or []:
        target = into / rel
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
    return into


def _matches(want: dict[str, Any], got: Problem) -> bool:
    return (("file" not in want or want["file"] == got.file)
            and ("line" not in want or want["line"] == got.line)
            and ("code" not in want or want["code"] == got.code)
            and str(want.get("message", "")) in got.message
            and str(want.get("hint", "")) in (got.hint or ""))


def _assign(wanted: list[dict[str, Any]], actual: list[Problem], what: str) -> list[Problem]:
    left = list(actual)
    for want in wanted:
        hit = next((p for p in left if _matches(want, p)), None)
        assert hit is not None, (f"expected {what} {want} not found among:\n"
                                 + "\n".join(p.render() for p in left))
        left.remove(hit)
    return left


def test_there_are_cases() -> None:
    assert len(CASE_DIRS) >= 20


@pytest.mark.parametrize("case", CASE_DIRS, ids=[p.name for p in CASE_DIRS])
def test_bad_workspace(case: Path, tmp_path: Path) -> None:
    expected = load_yaml(case / "expected.yaml").data
    assert expected.get("description"), f"{case.name}: say what is wrong"
    root = build_case(case, expected, tmp_path / "ws")
    report = validate(root)
    errors = [p for p in report.problems if p.severity == "error"]
    warnings = [p for p in report.problems if p.severity != "error"]
    wanted = list(expected.get("problems") or [])
    extra = _assign(wanted, errors, "problem")
    assert not extra, "unexpected problems:\n" + "\n".join(p.render() for p in extra)
    _assign(list(expected.get("warnings") or []), warnings, "warning")
    assert report.ok is (not wanted)
    for problem in errors:
        assert problem.file, f"every problem names its file: {problem.render()}"
        assert problem.message
        assert "Traceback" not in problem.message

"""Run the ``rollwave`` command in-process exactly as the console script does."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from rollwave.cli import app as cli_app
from rollwave.cli import state


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    @property
    def flat_err(self) -> str:
        """stderr with Rich's line folding undone (errors are folded at the terminal width)."""
        return " ".join(self.err.split())


def run(capsys: pytest.CaptureFixture[str], *args: str, cwd: Path | None = None,
        monkeypatch: pytest.MonkeyPatch | None = None) -> Result:
    """``rollwave ARGS`` through :func:`rollwave.cli.app.main` (its error handling included)."""
    capsys.readouterr()
    patcher = monkeypatch or pytest.MonkeyPatch()
    try:
        patcher.setattr(sys, "argv", ["rollwave", *args])
        if cwd is not None:
            patcher.chdir(cwd)
        state.options.__init__()  # type: ignore[misc]
        try:
            cli_app.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        if monkeypatch is None:
            patcher.undo()
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def run_process(*args: str, cwd: Path, env: dict[str, str] | None = None,
                timeout: float = 120) -> Result:
    """The installed console script in a subprocess (for exit codes end to end)."""
    exe = Path(sys.executable).with_name("rollwave")
    done = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)
    return Result(done.returncode, done.stdout, done.stderr)


def assert_no_traceback(result: Result) -> None:
    assert "Traceback" not in result.text, result.text
    assert "internal error" not in result.text, result.text

"""Shared CLI state: global options, consoles, and small output helpers."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from rollwave.errors import RollwaveError, ValidationFailed

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # never fold errors in pipes


@dataclass
class Options:
    workspace: Path | None = None
    database: str | None = None
    actor: str | None = None


options = Options()


def open_app() -> Any:
    """The App for the current workspace and database (see rollwave.services.context)."""
    from rollwave.services.context import App

    return App.open(options.workspace, options.database, options.actor)


def print_error(exc: RollwaveError) -> None:
    if isinstance(exc, ValidationFailed):
        errors = [p for p in exc.problems if p.severity == "error"]
        warnings = [p for p in exc.problems if p.severity != "error"]
        err.print(f"[bold red]{exc.code}[/]: {exc.message}")
        for problem in [*errors, *warnings]:
            colour = "red" if problem.severity == "error" else "yellow"
            err.print(f"  [{colour}]{_escape(problem.location())}[/]: {_escape(problem.message)}"
                      + (f" [dim](at {_escape(problem.path)})[/]" if problem.path and problem.file
                         else ""))
            if problem.hint:
                err.print(f"      [dim]hint: {_escape(problem.hint)}[/]")
        if exc.hint:
            err.print(f"[dim]hint: {_escape(exc.hint)}[/]")
        return
    err.print(f"[bold red]{_escape(exc.code)}[/]: {_escape(exc.message)}")
    if exc.hint:
        err.print(f"[dim]hint: {_escape(exc.hint)}[/]")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def emit_json(data: Any) -> None:
    """Machine-readable output for scripts (``--json``)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")

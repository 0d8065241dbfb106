"""The ``rollwave`` command: a thin shell over the application services.

Every command parses its input, calls one service, and renders the result with Rich. Errors a
user can fix are printed as ``code: message`` plus a hint, never as a traceback; the exit code
is 1 for those, 2 for bad usage, 130 for Ctrl-C.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from rollwave.cli import state

app = typer.Typer(
    name="rollwave",
    help=(
        "Release software to a fleet of customized customer instances, safely and often.\n\n"
        "Start with `rollwave demo` to watch a release go out in waves, or `rollwave init DIR` "
        "to describe your own fleet. Typical flow: `rollwave validate` → `rollwave release "
        "create --version web=1.1` → `rollwave plan RELEASE` → `rollwave deploy RELEASE` → "
        "`rollwave status`."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global(
    workspace: Annotated[Path | None, typer.Option(
        "--workspace", "-w", help="Workspace directory (default: the one containing the current "
        "directory; env ROLLWAVE_WORKSPACE).", show_default=False)] = None,
    database: Annotated[str | None, typer.Option(
        "--database", help="Database URL: a SQLite file by default, or postgresql://… for "
        "several workers (env ROLLWAVE_DATABASE_URL).", show_default=False)] = None,
    actor: Annotated[str | None, typer.Option(
        "--as", help="Who is acting, for the audit log (default: your user name; env "
        "ROLLWAVE_ACTOR).", show_default=False)] = None,
) -> None:
    state.options.workspace = workspace
    state.options.database = database
    state.options.actor = actor


def _register() -> None:
    from rollwave.cli import (
        config_cmds,
        demo_cmd,
        release_cmds,
        rollout_cmds,
        workspace_cmds,
    )

    for module in (workspace_cmds, release_cmds, rollout_cmds, config_cmds, demo_cmd):
        module.register(app)
    for optional in ("rollwave.cli.flags_cmds", "rollwave.cli.verify_cmds",
                     "rollwave.cli.serve_cmds", "rollwave.cli.access_cmds",
                     "rollwave.cli.notes_cmds", "rollwave.cli.fleet_cmds"):
        try:
            module = importlib.import_module(optional)
        except ModuleNotFoundError as exc:
            if exc.name == optional:
                continue  # that command group is not part of this build
            raise
        module.register(app)


_register()


def main() -> None:
    """Console entry point."""
    from rollwave.errors import RollwaveError

    try:
        code = app(standalone_mode=False)
    except RollwaveError as exc:
        state.print_error(exc)
        sys.exit(1)
    except KeyboardInterrupt:
        state.err.print("[yellow]interrupted[/]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        state.err.print("[yellow]aborted[/]")
        sys.exit(1)
    except Exception as exc:
        # Usage errors come from the click that typer vendors; recognise them by shape.
        show = getattr(exc, "show", None)
        if callable(show) and isinstance(getattr(exc, "exit_code", None), int):
            show()
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if os.environ.get("ROLLWAVE_DEBUG"):
            raise
        state.err.print(f"[red]internal error:[/] {type(exc).__name__}: {exc}\n"
                        "This is a bug in Rollwave. Re-run with ROLLWAVE_DEBUG=1 for the "
                        "traceback and report it.")
        sys.exit(70)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()

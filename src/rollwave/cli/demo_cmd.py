"""``rollwave demo``: watch a release go out in waves on a real local fleet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rollwave.cli import state


def register(app: typer.Typer) -> None:
    app.command("demo", rich_help_panel="Start here")(demo)


def demo(
    keep: Annotated[bool, typer.Option(
        "--keep", help="Leave the fleet, workspace and state running to explore.")] = False,
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="Write the demo workspace here instead of a temporary directory.",
        show_default=False)] = None,
    scenario: Annotated[str, typer.Option(
        help="customer (1.1 breaks one customization: only it is rolled back), release (1.1 "
        "breaks everyone: the release is rolled back), infrastructure (an incident hits every "
        "instance: the rollout pauses, nothing is rolled back).")] = "customer",
    stop: Annotated[bool, typer.Option(
        "--stop", help="Stop the instances of a demo kept with --keep (with --dir DIR).")]
    = False,
) -> None:
    """Run a 12-customer fleet on this machine and ship 1.0, then 1.1 in waves; 1.1 breaks one
    customer's customization, which is detected from its metrics and rolled back automatically
    while the rest completes. About a minute; loopback only; nothing is left running unless
    --keep.
    """
    from rollwave.demo.runner import run_demo, stop_demo

    if stop:
        root = state.options.workspace or directory
        if root is None:
            raise typer.BadParameter("say which demo workspace: rollwave demo --stop --dir DIR")
        count = stop_demo(root)
        state.out.print(f"Stopped {count} demo instances.")
        return
    if directory is not None and directory.exists() and any(directory.iterdir()):
        raise typer.BadParameter(f"{directory} is not empty", param_hint="--dir")
    from rollwave.demo.scenario import SCENARIOS

    if scenario not in SCENARIOS:
        raise typer.BadParameter(f"choose one of: {', '.join(SCENARIOS)}",
                                 param_hint="--scenario")
    result = run_demo(state.out, keep=keep, directory=directory, scenario=scenario)
    raise typer.Exit(0 if result.ok else 1)

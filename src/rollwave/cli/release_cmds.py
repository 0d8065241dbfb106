"""``rollwave release create | list | show`` and ``rollwave plan``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import typer
from rich.table import Column, Table
from rich.text import Text

from rollwave.cli import render, state

KEEP_VERSION = "="  # rollwave.core.planning.KEEP_VERSION, without importing the core at start-up

release_app = typer.Typer(help="Immutable releases: service versions plus the configs they ship.",
                          no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(release_app, name="release", rich_help_panel="Releases")
    app.command("plan", rich_help_panel="Releases")(plan)


@release_app.command("create")
def create(
    version: Annotated[list[str] | None, typer.Option(
        "--version", "-v", help="SERVICE=VERSION; repeat for several services.",
        show_default=False)] = None,
    name: Annotated[str | None, typer.Option(
        help="Release name (default: today's date and a counter).", show_default=False)] = None,
    notes: Annotated[str, typer.Option(help="What changed, for people.")] = "",
    config_only: Annotated[bool, typer.Option(
        "--config-only", help="Ship the workspace's current config; versions stay as they "
        "are.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Record an immutable release cut from the current workspace (its content hash is kept).

    Every instance's rendered config is snapshotted with the release, so a later rollback
    restores exactly what ran, even after the workspace has changed.

    Example: `rollwave release create -v web=1.1 --notes "faster reports"`
    """
    from rollwave.services import releases

    app_ = state.open_app()
    versions = releases.parse_versions(version or [])
    record = releases.create_release(app_, versions, name=name, notes=notes,
                                     config_only=config_only)
    if as_json:
        state.emit_json(record.to_dict())
        return
    state.out.print(Text.assemble(("Release ", "green"), (record.id, "green bold"),
                                  " created: ", _versions(record.versions)), soft_wrap=True)
    state.out.print(Text(f"  cut from workspace {record.workspace_hash[:12]}, configs "
                         f"{(record.config_digest or '')[:12]}"
                         + (f"; notes: {record.notes}" if record.notes else "")), soft_wrap=True)
    state.out.print(Text(f"Next: `rollwave plan {record.id}` to see the waves, then "
                         f"`rollwave deploy {record.id}`."), soft_wrap=True)


def _versions(versions: Mapping[str, str]) -> str:
    return ", ".join(f"{s} {'(version kept, config only)' if v == KEEP_VERSION else v}"
                     for s, v in versions.items())


@release_app.command("list")
def list_(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 30,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Releases, newest first."""
    from rollwave.services import releases

    records = releases.list_releases(state.open_app(), limit)
    if as_json:
        state.emit_json([r.to_dict() for r in records])
        return
    if not records:
        state.out.print("No releases yet: `rollwave release create -v web=1.0`")
        return
    table = Table("release", "created (UTC)", Column("by", max_width=24, no_wrap=True),
                  "versions", Column("notes", no_wrap=True), box=None, padding=(0, 2),
                  pad_edge=False)
    for r in records:
        table.add_row(Text(r.id), f"{r.created_at:%Y-%m-%d %H:%M}",
                      Text(_one_line(r.created_by, 24)), Text(_versions(r.versions)),
                      Text(_one_line(r.notes, 60)))
    render.plain_width(state.out).print(table)


@release_app.command("show")
def show(
    release: Annotated[str, typer.Argument(help="Release name.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One release: versions, notes, workspace hash, who cut it."""
    from rollwave.services import releases

    record = releases.get_release(state.open_app(), release)
    if as_json:
        state.emit_json(record.to_dict())
        return
    state.out.print(Text.assemble((record.id, "bold"), f" by {record.created_by} at "
                                  f"{record.created_at:%Y-%m-%d %H:%M:%S} UTC"), soft_wrap=True)
    for service, version in record.versions.items():
        shown = "(version kept, config only)" if version == KEEP_VERSION else version
        state.out.print(Text(f"  {service}: {shown}"), soft_wrap=True)
    state.out.print(Text(f"  workspace hash: {record.workspace_hash}"), soft_wrap=True)
    if record.config_digest:
        state.out.print(Text(f"  config digest: {record.config_digest}"), soft_wrap=True)
    if record.notes:
        state.out.print(Text("  notes: " + record.notes.replace("\n", "\n         ")),
                        soft_wrap=True)
    state.out.print(Text(f"Plan it: `rollwave plan {record.id}`"), style="dim")


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def plan(
    release: Annotated[str, typer.Argument(help="Release name.")],
    policy: Annotated[str | None, typer.Option(help="Rollout policy (default: the project's).",
                                               show_default=False)] = None,
    emergency: Annotated[bool, typer.Option(help="Plan as an emergency hotfix.")] = False,
    full: Annotated[bool, typer.Option("--full", help="List every instance instead of grouping "
                                       "identical changes.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show the waves a release would go through, and what changes on every instance.

    Each wave shows its parallelism, bake time, failure budget and gates; each instance what it
    runs now and what it will run, and when its maintenance window opens. Nothing is changed.
    """
    from rollwave.services import plans

    app_ = state.open_app()
    preview = plans.preview(app_, release, policy=policy, emergency=emergency)
    if as_json:
        state.emit_json(preview.to_dict())
        return
    render.plan(preview, full=full)

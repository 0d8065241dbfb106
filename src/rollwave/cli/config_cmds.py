"""``rollwave config explain | show`` and ``rollwave drift``: customer-specific config, visible."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rollwave.cli import state

config_app = typer.Typer(help="Layered per-customer configuration: where every value comes from.",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config", rich_help_panel="Configuration")
    app.command("drift", rich_help_panel="Configuration")(drift)


@config_app.command("explain")
def explain(
    target: Annotated[str, typer.Argument(help="CUSTOMER/INSTANCE, or CUSTOMER when it has one "
                                          "instance.")],
    service: Annotated[str, typer.Argument(help="Service whose config to explain.")],
    key: Annotated[str | None, typer.Argument(help="Only this key path, e.g. db.pool_size.",
                                              show_default=False)] = None,
    version: Annotated[str | None, typer.Option(
        help="Render as of this service version (picks a versioned schema if there is one).",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show the final value of each config key and every layer that set or overrode it
    (service defaults → environment → tag overlays → customer → instance), with file:line.

    Example: `rollwave config explain acme web reports.max_rows`
    """
    from rollwave.config import explain as explain_config
    from rollwave.config import resolve_instance_key

    workspace = state.open_app().workspace()
    instance = resolve_instance_key(workspace, target)
    result = explain_config(workspace, instance, service, key, version=version)
    if as_json:
        state.emit_json(result.to_dict())
        return
    state.out.print(escape(result.render_text()))


@config_app.command("show")
def show(
    target: Annotated[str, typer.Argument(help="CUSTOMER/INSTANCE, or CUSTOMER.")],
    service: Annotated[str, typer.Argument(help="Service.")],
    version: Annotated[str | None, typer.Option(help="As of this service version.",
                                                show_default=False)] = None,
) -> None:
    """Print the rendered config an instance gets for a service (secrets stay references)."""
    from rollwave.config import render_instance, resolve_instance_key

    workspace = state.open_app().workspace()
    instance = resolve_instance_key(workspace, target)
    rendered = render_instance(workspace, instance, service, version=version, validate=True)
    state.out.print(f"[dim]# {instance} · {service} · config {rendered.hash}[/]")
    state.emit_json(rendered.values)


def drift(
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List instances whose actual version or config differs from their last successful
    deployment (what a person or another tool changed behind Rollwave's back).

    A rollout policy's `drift:` setting decides what a rollout does with them: refuse (the
    default), skip, or repair. Exits 1 when anything drifted, so it fits a cron check.
    """
    from rollwave.services.drift import find_drift

    items = find_drift(state.open_app())
    if as_json:
        state.out.print_json(json.dumps([i.to_dict() for i in items]))
        raise typer.Exit(1 if items else 0)
    if not items:
        state.out.print("[green]No drift[/]: every instance runs what was last deployed.")
        return
    table = Table("instance", "service", "expected", "actual", "config", "detail", box=None,
                  padding=(0, 2))
    for item in items:
        table.add_row(item.instance, item.service, item.expected_version or "-",
                      item.actual_version or "[red]not running[/]", item.config,
                      escape(item.detail[:80]))
    state.out.print(table)
    state.out.print(f"[yellow]{len({i.instance for i in items})} instances drifted.[/]")
    raise typer.Exit(1)

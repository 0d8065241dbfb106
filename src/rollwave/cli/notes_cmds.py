"""``rollwave note add | list``: notes per customer, next to the audit log."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.text import Text

from rollwave.cli import state

note_app = typer.Typer(
    help="Notes per customer: what people should know that the files do not say (a quirk, a "
    "promise, who to call). Notes are never edited; add a new one. Each is in the audit log.",
    no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(note_app, name="note", rich_help_panel="Fleet")


@note_app.command("add")
def add(
    customer: Annotated[str, typer.Argument(help="Customer id (the name of customers/ID.yaml).")],
    text: Annotated[str, typer.Argument(help="The note; `-` reads it from standard input.")],
    instance: Annotated[str | None, typer.Option(
        help="About one of the customer's instances (e.g. prod).", show_default=False)] = None,
) -> None:
    """Add a note on a customer, or on one of its instances.

    Examples:

    * `rollwave note add acme "legacy export is used by their finance team; warn them first"`
    * `rollwave note add acme --instance prod - < incident-1234.txt`
    """
    from rollwave.services import notes

    body = sys.stdin.read() if text == "-" else text
    record = notes.add_note(state.open_app(), customer, body, instance=instance)
    state.out.print(f"Note {record.id} added on {record.instance or record.customer}.")


@note_app.command("list")
def list_(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    instance: Annotated[str | None, typer.Option(help="Only notes on this instance.",
                                                 show_default=False)] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1, max=500)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A customer's notes, newest first, with who wrote them and when."""
    from rollwave.services import notes

    rows = notes.list_notes(state.open_app(), customer, instance=instance, limit=limit)
    if as_json:
        state.emit_json([n.to_dict() for n in rows])
        return
    if not rows:
        state.out.print(f"No notes on {customer} yet. Add one with `rollwave note add "
                        f"{customer} \"…\"`.")
        return
    for n in rows:
        where = f" on {n.instance}" if n.instance else ""
        state.out.print(Text.assemble((f"#{n.id} ", "dim"), (n.author, "bold"),
                                      f"{where}, {n.created_at:%Y-%m-%d %H:%M} UTC"))
        state.out.print(Text("  " + n.body.replace("\n", "\n  ")))

"""``rollwave user …`` and ``rollwave token …``: people, their roles, and API tokens.

These commands work on the database directly (whoever can run them can read the database
anyway), so they are how the first admin is made without a server, and how access is repaired
when nobody can log in. Every change is recorded in the audit log with your name (``--as``).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from rollwave.cli import state

PANEL = "Access"
ROLES_HELP = ("viewer (reads), deployer (releases, rollouts, flags), approver (approves "
              "waves), admin (everything, incl. users and tokens). Repeat for several.")

user_app = typer.Typer(
    help="People who use the dashboard and API, and their roles.\n\nRoles: " + ROLES_HELP,
    no_args_is_help=True)
token_app = typer.Typer(
    help="API tokens for scripts and CI: `Authorization: Bearer rw_…`. A token acts as its "
    "user with that user's roles; only a hash is stored, so the secret is shown once.",
    no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user", rich_help_panel=PANEL)
    app.add_typer(token_app, name="token", rich_help_panel=PANEL)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise typer.BadParameter("no password on standard input",
                                     param_hint="--password-stdin")
        return line
    value: str = typer.prompt("Password (12 characters or more)", hide_input=True,
                              confirmation_prompt=True)
    return value


RoleOption = Annotated[list[str], typer.Option(
    "--role", "-r", help=ROLES_HELP, show_default=False)]


@user_app.command("create")
def create_user(
    username: Annotated[str, typer.Argument(help="Login name: letters, digits, . _ @ -.")],
    role: RoleOption,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input "
        "(for scripts) instead of prompting.")] = False,
    no_password: Annotated[bool, typer.Option(
        "--no-password", help="A token-only account (automation): it cannot log in to the "
        "dashboard.")] = False,
) -> None:
    """Create a user with one or more roles; asks for the password twice.

    Examples:

    * `rollwave user create alice --role deployer --role approver`
    * `printf '%s\\n' "$PW" | rollwave user create bob -r viewer --password-stdin`
    * `rollwave user create ci -r deployer --no-password && rollwave token create ci --name
      github`
    """
    from rollwave.services import access

    app_ = state.open_app()
    password = None if no_password else _read_password(password_stdin)
    record = access.create_user(app_, username, role, password=password)
    state.out.print(f"[green]User {record.username}[/] created with roles "
                    f"{', '.join(record.roles)}."
                    + ("" if password else " No password: give it a token with "
                       f"`rollwave token create {record.username}`."))


@user_app.command("list")
def list_users(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every user with roles, whether they can log in, and whether they are disabled."""
    from rollwave.services import access

    users = access.list_users(state.open_app())
    if as_json:
        state.emit_json([u.to_dict() for u in users])
        return
    table = Table("user", "roles", "password", "state", "created", box=None, padding=(0, 1))
    for u in users:
        table.add_row(Text(u.username), ", ".join(u.roles), "yes" if u.has_password else "no",
                      "[red]disabled[/]" if u.disabled else "active",
                      f"{u.created_at:%Y-%m-%d}")
    state.out.print(table)


@user_app.command("roles")
def set_roles(
    username: Annotated[str, typer.Argument(help="The user.")],
    role: RoleOption,
) -> None:
    """Replace a user's roles (the list given is the whole new set).

    Example: `rollwave user roles alice -r viewer` takes every other role away.
    """
    from rollwave.services import access

    record = access.set_roles(state.open_app(), username, role)
    state.out.print(f"{record.username} now has roles {', '.join(record.roles)}.")


@user_app.command("disable")
def disable(username: Annotated[str, typer.Argument(help="The user.")]) -> None:
    """Stop a user: ends their dashboard sessions, their API tokens stop working."""
    from rollwave.services import access

    access.set_disabled(state.open_app(), username, True)
    state.out.print(f"{username} is disabled. `rollwave user enable {username}` undoes it.")


@user_app.command("enable")
def enable(username: Annotated[str, typer.Argument(help="The user.")]) -> None:
    """Let a disabled user in again (with the roles they had)."""
    from rollwave.services import access

    access.set_disabled(state.open_app(), username, False)
    state.out.print(f"{username} is enabled.")


@user_app.command("password")
def password(
    username: Annotated[str, typer.Argument(help="The user.")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read it from the first line of standard input instead of "
        "prompting.")] = False,
) -> None:
    """Set a user's password (12 characters or more); ends their dashboard sessions.

    Use it after the first start of `rollwave serve` to replace the printed admin password:
    `rollwave user password admin`.
    """
    from rollwave.services import access

    app_ = state.open_app()
    access.set_password(app_, username, _read_password(password_stdin))
    state.out.print(f"Password of {username} changed; their sessions were ended.")


@token_app.command("create")
def create_token(
    username: Annotated[str, typer.Argument(help="The user the token acts as.")],
    name: Annotated[str, typer.Option(help="What it is for, e.g. `ci` or `grafana`.")]
    = "cli",
    days: Annotated[int | None, typer.Option(
        help="Expire after this many days (default: never).", min=1, show_default=False)]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the secret as JSON.")] = False,
) -> None:
    """Create an API token and print its secret once (only a hash is kept).

    Example: `rollwave token create ci --name github --days 90`, then
    `curl -H "Authorization: Bearer rw_…" http://127.0.0.1:8080/api/v1/rollouts`.
    """
    from rollwave.services import access

    issued = access.create_token(state.open_app(), username, name, days=days)
    if as_json:
        state.emit_json({"secret": issued.secret, "prefix": issued.prefix, "name": issued.name,
                         "username": issued.username, "expires_at": issued.expires_at})
        return
    expiry = f", expires {issued.expires_at:%Y-%m-%d}" if issued.expires_at else ""
    state.out.print(f"Token '{issued.name}' for {issued.username}{expiry}:")
    sys.stdout.write(issued.secret + "\n")
    sys.stdout.flush()
    state.out.print("[yellow]It is shown only this once; store it in your secret manager. "
                    f"Revoke it with `rollwave token revoke {issued.prefix}`.[/]")


@token_app.command("list")
def list_tokens(
    username: Annotated[str | None, typer.Option(
        "--user", help="Only this user's tokens.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """API tokens (prefixes only, never secrets), their owner, expiry and last use."""
    from rollwave.services import access

    rows = [r for r in access.list_tokens(state.open_app())
            if username is None or r["username"] == username]
    if as_json:
        state.emit_json(rows)
        return
    table = Table("prefix", "name", "user", "created", "expires", "last used", "state",
                  box=None, padding=(0, 1))
    for r in rows:
        table.add_row(r["prefix"] + "…", Text(r["name"]), Text(r["username"]),
                      f"{r['created_at']:%Y-%m-%d}",
                      f"{r['expires_at']:%Y-%m-%d}" if r["expires_at"] else "never",
                      f"{r['last_used_at']:%Y-%m-%d %H:%M}" if r["last_used_at"] else "-",
                      "[red]revoked[/]" if r["revoked"] else "active")
    state.out.print(table)


@token_app.command("revoke")
def revoke_token(
    prefix: Annotated[str, typer.Argument(help="The token's prefix, as `token list` shows "
                                               "it (rw_…).")],
) -> None:
    """Revoke an API token at once (requests with it get 401 from now on)."""
    from rollwave.services import access

    access.revoke_token(state.open_app(), prefix.rstrip("…"))
    state.out.print(f"Token {prefix.rstrip('…')}… revoked.")

"""``rollwave serve``: the REST API, the dashboard and the orchestrator in one process.

The HTTP side is uvicorn serving :func:`rollwave.api.app.create_app` (the dashboard is part of
it when ``rollwave.web`` is installed); the orchestrator is a :class:`Worker` on a thread of the
main process. On SQLite one orchestrator runs per workspace (a file lock), so a second
``rollwave serve`` only serves; on PostgreSQL every serve process runs one and survivors take
over the rollouts of a process that died. SIGTERM or Ctrl-C shut down gracefully: uvicorn
finishes the requests in flight, then the orchestrator stops (its rollouts resume wherever an
orchestrator runs next).
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from rollwave.cli import state

PANEL = "Server"
_ENV_WORKSPACE = "ROLLWAVE_SERVE_WORKSPACE"
_ENV_SECURE = "ROLLWAVE_SERVE_SECURE_COOKIES"


def register(app: typer.Typer) -> None:
    app.command("serve", rich_help_panel=PANEL)(serve)


def build_app(ctx: Any, *, secure_cookies: bool) -> Any:
    """The ASGI app for ``ctx`` with the database open and the workspace loaded once."""
    from rollwave.api.app import create_app

    ctx.db()
    api = create_app(ctx)
    api.state.secure_cookies = secure_cookies
    return api


def app_factory() -> Any:
    """For uvicorn worker processes (``--workers N``): the app from the parent's settings."""
    from rollwave.services.context import App

    ctx = App.open(Path(os.environ[_ENV_WORKSPACE]), os.environ.get("ROLLWAVE_DATABASE_URL"),
                   actor="rollwave")
    return build_app(ctx, secure_cookies=os.environ.get(_ENV_SECURE) == "1")


def serve(
    host: Annotated[str, typer.Option(
        help="Address to listen on. The default answers this machine only; to serve others, "
        "put a TLS-terminating proxy in front and pass --secure-cookies.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8080,
    database: Annotated[str | None, typer.Option(
        "--database", help="Database URL (overrides the global option): the workspace's SQLite "
        "file by default; postgresql://… lets several serve/worker processes share the work.",
        show_default=False)] = None,
    workers: Annotated[int, typer.Option(
        help="HTTP worker processes. The orchestrator runs once, in the main process.",
        min=1, max=64)] = 1,
    orchestrator: Annotated[bool, typer.Option(
        "--worker/--no-worker", help="Run the orchestrator in this process (--no-worker: "
        "serve the API and dashboard only; run `rollwave worker` elsewhere).")] = True,
    secure_cookies: Annotated[bool, typer.Option(
        "--secure-cookies", help="Mark the session cookie Secure even when this process sees "
        "plain http (behind a TLS proxy). It is always Secure on https.")] = False,
    forwarded_allow_ips: Annotated[str | None, typer.Option(
        help="Proxy addresses trusted for X-Forwarded-Proto/For (uvicorn's setting), e.g. "
        "127.0.0.1.", show_default=False)] = None,
    access_log: Annotated[bool, typer.Option(
        "--access-log/--no-access-log", help="Log every request.")] = True,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the REST API (docs at /api/docs), the dashboard and the orchestrator.

    On first start, when there are no users yet, an `admin` user is created with a random
    password printed once (there is never a default password). Add people with
    `rollwave user create NAME --role deployer` and automation with `rollwave token create`.

    Examples:

    * `rollwave serve` — http://127.0.0.1:8080, SQLite, orchestrator included
    * `rollwave serve --database postgresql://rollwave@db/rollwave --port 8081` — one of
      several processes sharing a PostgreSQL database; if one dies, another takes over its
      rollouts
    * `rollwave serve --workers 4 --no-worker` — an API-only front end
    """
    import uvicorn

    from rollwave.services import access

    if database:
        state.options.database = database
    ctx = state.open_app()
    ctx.workspace()  # every problem now, not at the first request
    db = ctx.db()
    _first_admin(ctx, access)
    worker_ = stop = thread = None
    if orchestrator:
        worker_, stop, thread = _start_orchestrator(ctx)
    else:
        state.out.print("Orchestrator: not started here (--no-worker); rollouts wait until "
                        "`rollwave worker` or another `rollwave serve` runs.")
    where = "PostgreSQL" if not db.is_sqlite else "SQLite"
    scheme_note = "" if host in ("127.0.0.1", "localhost", "::1") or secure_cookies else (
        "  [yellow]Listening beyond this machine over plain http: put TLS in front and pass "
        "--secure-cookies.[/]")
    state.out.print(f"Serving http://{host}:{port} (API docs at /api/docs) on {where}, "
                    f"{workers} HTTP worker process{'es' if workers > 1 else ''}.{scheme_note}",
                    soft_wrap=True)
    options: dict[str, Any] = {
        "host": host, "port": port, "log_level": log_level, "access_log": access_log,
        "timeout_graceful_shutdown": 10, "proxy_headers": forwarded_allow_ips is not None,
        "forwarded_allow_ips": forwarded_allow_ips, "server_header": False,
    }
    previous = signal.signal(signal.SIGTERM, _terminated)  # uvicorn re-raises it when done
    try:
        if workers == 1:
            api = build_app(ctx, secure_cookies=secure_cookies)
            uvicorn.Server(uvicorn.Config(api, **options)).run()
        else:
            os.environ[_ENV_WORKSPACE] = str(ctx.root)
            os.environ[_ENV_SECURE] = "1" if secure_cookies else "0"
            if ctx.database_url:
                os.environ["ROLLWAVE_DATABASE_URL"] = ctx.database_url
            uvicorn.run("rollwave.cli.serve_cmds:app_factory", factory=True, workers=workers,
                        **options)
    except _Terminated:
        pass  # uvicorn has shut down gracefully; stop the orchestrator below and exit 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if stop is not None and thread is not None and worker_ is not None:
            stop.set()
            thread.join(timeout=15)
            worker_.close()
            state.out.print("Orchestrator stopped; its rollouts continue when one runs again.")
        ctx.close()


class _Terminated(Exception):
    """SIGTERM arrived (after uvicorn's graceful shutdown re-raised it)."""


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _first_admin(ctx: Any, access: Any) -> None:
    from sqlalchemy.exc import IntegrityError

    from rollwave.errors import Conflict

    try:
        created = access.ensure_first_admin(ctx)
    except (Conflict, IntegrityError):
        return  # another serve process created it at the same moment
    if created is None:
        return
    username, password = created
    state.out.print(f"[bold]First start: created user [green]{username}[/] with password "
                    f"[green]{password}[/][/]", soft_wrap=True)
    state.out.print(f"It is shown only this once. Log in, then change it with "
                    f"`rollwave user password {username}`.", soft_wrap=True)


def _start_orchestrator(ctx: Any) -> tuple[Any, threading.Event | None, Any]:
    from rollwave.cli.rollout_cmds import start_worker_thread
    from rollwave.errors import OrchestratorBusy
    from rollwave.orchestration.worker import worker_running

    if ctx.db().is_sqlite and worker_running(ctx.state_dir):
        state.out.print("Orchestrator: another process already runs this workspace's "
                        "(SQLite allows one); serving without one here.")
        return None, None, None
    try:
        worker_, stop, thread = start_worker_thread(ctx)
    except OrchestratorBusy:
        state.out.print("Orchestrator: another process already runs this workspace's "
                        "(SQLite allows one); serving without one here.")
        return None, None, None
    state.out.print(f"Orchestrator {worker_.id} running in this process.")
    return worker_, stop, thread

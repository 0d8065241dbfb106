"""Rollouts from the terminal: deploy, approve/pause/resume/abort/rollback, status, history.

Control commands only record the request (with who and why); the orchestrator acts on it,
so they work from any terminal while a rollout runs elsewhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from rollwave.cli import render, state
from rollwave.core.states import ControlAction

PANEL = "Rollouts"


def register(app: typer.Typer) -> None:
    app.command("deploy", rich_help_panel=PANEL)(deploy)
    for action in ControlAction:
        app.command(action.value, rich_help_panel=PANEL,
                    help=_CONTROL_HELP[action])(_control_command(action))
    app.command("status", rich_help_panel=PANEL)(status)
    app.command("history", rich_help_panel=PANEL)(history)
    app.command("events", rich_help_panel=PANEL)(events)
    app.command("logs", rich_help_panel=PANEL)(logs)
    app.command("worker", rich_help_panel=PANEL)(worker)


def deploy(
    release: Annotated[str, typer.Argument(help="Release to roll out.")],
    policy: Annotated[str | None, typer.Option(help="Rollout policy (default: the project's).",
                                               show_default=False)] = None,
    reason: Annotated[str, typer.Option(help="Why; required for an emergency.")] = "",
    emergency: Annotated[bool, typer.Option(
        help="Emergency hotfix: ignore windows and freezes, compress waves and bake times; "
        "verification still runs. Needs --reason.")] = False,
    detach: Annotated[bool, typer.Option(
        "--detach", "-d", help="Return at once; a background orchestrator carries it out.")]
    = False,
) -> None:
    """Start rolling a release out in waves, and watch it live (Ctrl-C stops watching only
    if another orchestrator is running; otherwise it pauses execution until `rollwave worker`).

    Example: `rollwave deploy 2026.11.27-1`, then from another terminal `rollwave approve`.
    """
    from rollwave.services import rollouts

    app_ = state.open_app()
    record = rollouts.start(app_, release, policy=policy, reason=reason, emergency=emergency)
    state.out.print(f"[green]Rollout {record.id}[/] of release {record.release_id} recorded "
                    f"({sum(len(w['targets']) for w in record.plan['waves'])} instances, "
                    f"{len(record.plan['waves'])} waves).")
    if detach:
        started = ensure_background_worker(app_)
        state.out.print(("Started a background orchestrator. " if started else
                         "An orchestrator is already running. ")
                        + f"Follow with `rollwave status {record.id} --watch`.")
        return
    run_and_watch(app_, record.id)


def ensure_background_worker(app_: Any) -> bool:
    """Start `rollwave worker --exit-when-idle` detached unless one already runs."""
    from rollwave.orchestration.worker import worker_running

    if app_.db().is_sqlite and worker_running(app_.state_dir):
        return False
    app_.state_dir.mkdir(parents=True, exist_ok=True)
    log_path = app_.state_dir / "worker.log"
    command = [sys.executable, "-m", "rollwave", "-w", str(app_.root)]
    if app_.database_url:
        command += ["--database", app_.database_url]
    command += ["worker", "--exit-when-idle", "--quiet"]
    with log_path.open("ab") as log:
        subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True)
    return True


def run_and_watch(app_: Any, rollout_id: str) -> None:
    """Run an orchestrator in this process (unless one runs) and show live progress."""
    from rollwave.orchestration.worker import worker_running

    if app_.db().is_sqlite and worker_running(app_.state_dir):
        state.out.print("An orchestrator is already running; watching.")
        _watch(app_, rollout_id)
        return
    worker_, stop, thread = start_worker_thread(app_)
    try:
        _watch(app_, rollout_id)
    except KeyboardInterrupt:
        state.err.print("\n[yellow]Stopping the orchestrator; the rollout resumes where it "
                        "stopped when one runs again: `rollwave worker`.[/]")
    finally:
        stop.set()
        thread.join(timeout=10)
        worker_.close()


def start_worker_thread(app_: Any) -> tuple[Any, threading.Event, threading.Thread]:
    from rollwave.orchestration.runtime import Runtime, default_verifier
    from rollwave.orchestration.worker import Worker

    rt = Runtime(app=app_, verifier=default_verifier(app_),
                 resolve_secrets=_secret_resolver(app_))
    worker_ = Worker(rt)
    worker_.start()
    stop = threading.Event()
    thread = threading.Thread(target=worker_.run, args=(stop,), daemon=True,
                              name="rollwave-worker")
    thread.start()
    return worker_, stop, thread


def _secret_resolver(app_: Any) -> Any:
    from rollwave.orchestration.secrets import workspace_secret_resolver

    return workspace_secret_resolver(app_)


def _watch(app_: Any, rollout_id: str, interval: float = 0.5) -> None:
    from rollwave.services import rollouts

    view = rollouts.status(app_, rollout_id)
    if not state.out.is_terminal:
        last = 0
        while True:  # plain lines for logs and CI: one per new event
            for event in view.events:
                if event.seq > last:
                    state.out.print(f"{event.at:%H:%M:%S} {event.message}")
                    last = event.seq
            if view.rollout.state.terminal:
                break
            time.sleep(interval)
            view = rollouts.status(app_, rollout_id, event_limit=50)
        state.out.print(render.status(view))
        return
    with Live(render.status(view), console=state.out, refresh_per_second=4) as live:
        while not view.rollout.state.terminal:
            time.sleep(interval)
            view = rollouts.status(app_, rollout_id)
            live.update(render.status(view))


_CONTROL_HELP = {
    ControlAction.APPROVE: "Approve the wave a rollout waits on (recorded with your name).",
    ControlAction.PAUSE: "Pause a rollout after the instances in flight finish.",
    ControlAction.RESUME: "Resume a paused rollout (accepts held instances and exceeded "
                          "budgets).",
    ControlAction.ABORT: "Stop a rollout; instances stay as they are now.",
    ControlAction.ROLLBACK: "Roll a rollout's release back everywhere it went (works on "
                            "running and finished rollouts).",
}


def _control_command(action: ControlAction) -> Any:
    def command(
        rollout: Annotated[str | None, typer.Argument(
            help="Rollout id or prefix (default: the one active rollout).",
            show_default=False)] = None,
        reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "",
        wave: Annotated[int | None, typer.Option(
            help="Wave number to approve (default: the current one).",
            show_default=False)] = None,
    ) -> None:
        from rollwave.services import rollouts

        app_ = state.open_app()
        record = rollouts.control(app_, rollout, action, reason=reason,
                                  wave=wave - 1 if wave is not None else None)
        if record.kind == "rollback" and action == ControlAction.ROLLBACK:
            state.out.print(f"[green]Rollback rollout {record.id}[/] recorded for rollout "
                            f"{record.parent_id}.")
            from rollwave.orchestration.worker import worker_running

            if not (app_.db().is_sqlite and worker_running(app_.state_dir)):
                run_and_watch(app_, record.id)
            return
        state.out.print(f"Recorded: {action.value} rollout {record.id}"
                        + (f" ({reason})" if reason else "")
                        + ". The orchestrator acts on it within a second.")

    command.__name__ = action.value
    return command


def status(
    rollout: Annotated[str | None, typer.Argument(
        help="Rollout id or prefix, or 'latest' (default: the active one, else the latest).",
        show_default=False)] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until it ends.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Live progress of a rollout: waves, instances, health, recent events."""
    from rollwave.errors import RolloutNotFound
    from rollwave.services import rollouts

    app_ = state.open_app()
    try:
        view = rollouts.status(app_, rollout)
    except RolloutNotFound:
        if rollout is not None:
            raise
        view = rollouts.status(app_, "latest")
    if as_json:
        state.emit_json(view.to_dict())
        return
    if watch:
        _watch(app_, view.rollout.id)
        return
    state.out.print(render.status(view))


def history(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 30,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Past and current rollouts with outcome and duration."""
    from rollwave.services import rollouts

    records = rollouts.history(state.open_app(), limit)
    if as_json:
        state.emit_json([r.to_dict() for r in records])
        return
    render.history(records)


def events(
    rollout: Annotated[str | None, typer.Argument(help="Only this rollout.",
                                                  show_default=False)] = None,
    search: Annotated[str | None, typer.Option(help="Free text in message, actor, instance.",
                                               show_default=False)] = None,
    instance: Annotated[str | None, typer.Option(help="Only this CUSTOMER/INSTANCE.",
                                                 show_default=False)] = None,
    limit: Annotated[int, typer.Option(help="How many, newest last.")] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The audit log: every change, who made it, when and why."""
    from rollwave.services import audit

    rows = audit.events(state.open_app(), rollout=rollout, search=search, instance=instance,
                        limit=limit)
    if as_json:
        state.emit_json([e.to_dict() for e in rows])
        return
    table = Table("#", "when", "who", "what", "message", box=None, padding=(0, 1))
    for e in rows:
        table.add_row(str(e.seq), f"{e.at:%m-%d %H:%M:%S}", e.actor, e.kind, Text(e.message))
    state.out.print(table)


def logs(
    rollout: Annotated[str, typer.Argument(help="Rollout id or prefix.")],
    instance: Annotated[str | None, typer.Argument(help="CUSTOMER/INSTANCE.",
                                                   show_default=False)] = None,
) -> None:
    """Deployment logs (deployer output, secrets redacted) of a rollout's instances."""
    from rollwave.services import audit

    for entry in audit.deploy_logs(state.open_app(), rollout, instance):
        mark = "[green]ok[/]" if entry["ok"] else "[red]failed[/]"
        state.out.print(f"[bold]{entry['instance']}[/] {entry['purpose']} attempt "
                        f"{entry['attempt']} {mark} at {entry['at']:%H:%M:%S}")
        state.out.print(Text(entry["text"] or "(no output)"), style="dim")


def worker(
    exit_when_idle: Annotated[bool, typer.Option(
        help="Exit once no rollout is active (used by `deploy --detach`).")] = False,
    quiet: Annotated[bool, typer.Option(help="Do not print events.")] = False,
) -> None:
    """Run the orchestrator: carries out recorded rollouts and recovers interrupted ones.

    Safe to kill at any moment (even SIGKILL): start it again and every rollout continues to the
    same end state. On SQLite one worker runs per workspace; with --database postgresql://… run
    several.
    """
    from rollwave.orchestration.runtime import Runtime, default_verifier
    from rollwave.orchestration.worker import Worker, active_rollouts
    from rollwave.storage.events import last_seq, list_events

    app_ = state.open_app()
    rt = Runtime(app=app_, verifier=default_verifier(app_),
                 resolve_secrets=_secret_resolver(app_))
    worker_ = Worker(rt)
    worker_.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if not quiet:
        state.out.print(f"Orchestrator {worker_.id} running (pid {os.getpid()}); Ctrl-C to stop.")
    with app_.db().read() as conn:
        seen = last_seq(conn)
    idle_since: float | None = None
    try:
        while not stop.is_set():
            worker_.tick()
            if not quiet:
                with app_.db().read() as conn:
                    for event in list_events(conn, after=seen, limit=200):
                        state.out.print(f"{event.at:%H:%M:%S} {event.message}")
                        seen = event.seq
            if exit_when_idle:
                busy = bool(active_rollouts(rt))
                idle_since = None if busy else (idle_since or time.monotonic())
                if idle_since is not None and time.monotonic() - idle_since > 2.0:
                    break
            stop.wait(worker_.tick_seconds)
    finally:
        worker_.close()

"""``rollwave demo``: a real fleet on this machine, a release in waves, a customer-specific
regression caught and rolled back while the rest completes.

The demo uses the same services, orchestrator, deployer and verification as production use:
nothing here is simulated except the fleet being local processes.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from rollwave.core.durations import format_duration
from rollwave.core.states import ControlAction, RolloutState, TargetState
from rollwave.demo.scenario import BROKEN_CUSTOMER, write_demo_workspace
from rollwave.errors import RollwaveError
from rollwave.services import releases, rollouts
from rollwave.services.context import App


class DemoStuck(RollwaveError):
    """The demo's rollout paused (e.g. verification could not gather enough traffic)."""

    code = "demo.stuck"
    default_hint = ("the machine may be too busy for the demo fleet to serve its traffic; "
                    "try again when it is quieter, or `rollwave demo --keep` to look around")


@dataclass
class DemoResult:
    """What happened, for the summary and for tests."""

    workspace: Path
    rollouts: dict[str, rollouts.RolloutStatus] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """The story happened: 1.1 everywhere except the broken customer, rolled back to 1.0."""
        final = self.rollouts.get("1.1")
        if final is None or final.rollout.state != RolloutState.SUCCEEDED:
            return False
        states = {t.instance: t.state for t in final.targets}
        broken = f"{BROKEN_CUSTOMER}/prod"
        return states.get(broken) == TargetState.ROLLED_BACK and all(
            s == TargetState.SUCCEEDED for k, s in states.items() if k != broken)


def run_demo(console: Console, *, keep: bool = False, directory: Path | None = None,
             verify_seconds: float = 6.0) -> DemoResult:
    """Run the whole story; stops every process it started unless ``keep``."""
    started = time.monotonic()
    root = directory or Path(tempfile.mkdtemp(prefix="rollwave-demo-"))
    write_demo_workspace(root, verify_seconds=verify_seconds)
    console.print(f"[bold]Rollwave demo[/] — workspace {root}")
    console.print("12 customers, each with one production instance of the demo service on "
                  "this machine;\nUmbrella Corp has a customization: "
                  "[cyan]reports.legacy_export: true[/]\n")
    app = App.open(root, actor="release-engineer")
    approver = App.open(root, actor="release-manager")
    result = DemoResult(workspace=root)
    from rollwave.cli.rollout_cmds import start_worker_thread

    worker, stop, thread = start_worker_thread(app)
    try:
        _release(console, app, approver, result, "1.0", "bootstrap",
                 "first install of 1.0 on every instance")
        _release(console, app, approver, result, "1.1", "standard",
                 "1.1 in waves: internal → canary customers (approved) → the rest")
    finally:
        stop.set()
        thread.join(timeout=15)
        worker.close()
        if not keep:
            _stop_fleet(app)
            app.close()
            approver.close()
            if directory is None:
                shutil.rmtree(root, ignore_errors=True)
    result.total_seconds = time.monotonic() - started
    _summary(console, result, keep)
    return result


def _release(console: Console, app: App, approver: App, result: DemoResult, version: str,
             policy: str, headline: str) -> None:
    console.rule(f"[bold]Release {version}[/]: {headline}")
    record = releases.create_release(app, {"web": version}, name=f"web-{version}",
                                     notes=headline)
    preview = rollouts.plan(app, record.id, policy=policy)
    for wave in preview.waves:
        names = ", ".join(t.instance.split("/")[0] for t in wave.targets)
        console.print(f"  wave {wave.index + 1} [bold]{wave.name}[/]: {names}")
    rollout = rollouts.start(app, record.id, policy=policy)
    t0 = time.monotonic()
    _follow(console, app, rollout.id, on_wait=lambda view: _maybe_approve(console, approver,
                                                                           view))
    result.durations[version] = time.monotonic() - t0
    result.rollouts[version] = rollouts.status(app, rollout.id, event_limit=200)


def _maybe_approve(console: Console, approver: App, view: rollouts.RolloutStatus) -> None:
    r = view.rollout
    if r.state == RolloutState.WAITING and "approval" in r.waiting_for:
        rollouts.control(approver, r.id, ControlAction.APPROVE,
                         reason="canary wave looks good to me")
        console.print(f"  [cyan]release-manager approved wave {r.current_wave + 1}[/]")


def _follow(console: Console, app: App, rollout_id: str,
            on_wait: Callable[[rollouts.RolloutStatus], None]) -> None:
    approved: set[int] = set()
    seen = 0
    give_up = time.monotonic() + 150

    def step(view: rollouts.RolloutStatus) -> None:
        if view.rollout.state == RolloutState.PAUSED or time.monotonic() > give_up:
            why = view.rollout.waiting_for or "it took too long"
            rollouts.control(app, rollout_id, ControlAction.ABORT, reason=f"demo stops: {why}")
            raise DemoStuck(why)
        if view.rollout.state == RolloutState.WAITING and view.rollout.current_wave not in \
                approved and "approval" in view.rollout.waiting_for:
            approved.add(view.rollout.current_wave)
            on_wait(view)

    view = rollouts.status(app, rollout_id, event_limit=100)
    if console.is_terminal:
        from rollwave.cli import render

        with Live(render.status(view), console=console, refresh_per_second=4,
                  transient=True) as live:
            while not view.rollout.state.terminal:
                step(view)
                time.sleep(0.25)
                view = rollouts.status(app, rollout_id, event_limit=100)
                live.update(render.status(view))
    else:
        while True:
            for event in view.events:
                if event.seq > seen:
                    seen = event.seq
                    if event.kind != "instance.progress":
                        console.print(f"  {event.at:%H:%M:%S} {event.message}", soft_wrap=True)
            if view.rollout.state.terminal:
                break
            step(view)
            time.sleep(0.25)
            view = rollouts.status(app, rollout_id, event_limit=100)
    console.print(f"  → rollout {view.rollout.id} [bold]{view.rollout.state.value}[/]: "
                  f"{view.rollout.summary}")


def _stop_fleet(app: App) -> None:
    from rollwave.adapters.deployers import DeployerEnvironment, registry

    try:
        workspace = app.workspace()
    except RollwaveError:
        return
    deployer = registry.create("local", {"kind": "local"}, DeployerEnvironment(
        state_dir=app.state_dir, services=workspace.project.services))
    threads = [threading.Thread(target=deployer.stop, args=(inst,)) for inst in workspace.fleet]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)


def _summary(console: Console, result: DemoResult, keep: bool) -> None:
    console.rule("[bold]Summary[/]")
    final = result.rollouts.get("1.1")
    table = Table("customer", "runs now", "release 1.1", "why", box=None, padding=(0, 2))
    if final is not None:
        for target in sorted(final.targets, key=lambda t: t.instance):
            rolled_back = target.state == TargetState.ROLLED_BACK
            runs = "1.0" if rolled_back else "1.1" if target.state == TargetState.SUCCEEDED \
                else "?"
            style = "red" if rolled_back else "green"
            why = target.explanation if rolled_back else "verified"
            table.add_row(target.instance, runs, Text(target.state.value.replace("_", " "),
                                                      style=style), Text(why[:120]))
    console.print(table)
    for version, seconds in result.durations.items():
        view = result.rollouts[version]
        console.print(f"release {version}: rollout {view.rollout.id} "
                      f"{view.rollout.state.value} in {format_duration(seconds)} — "
                      f"{view.rollout.summary}")
    if final is not None:
        for event in final.events:
            if event.kind == "instance.verification_failed":
                console.print(Text(f"why {event.instance} was rolled back: {event.message}",
                                   style="yellow"))
    verdict = "[green]as expected[/]" if result.ok else "[red]NOT as expected[/]"
    console.print(f"\nDemo finished in {format_duration(result.total_seconds)}: {verdict}.")
    if keep:
        console.print(f"The fleet is still running. Explore it:\n  cd {result.workspace}\n"
                      "  rollwave status latest; rollwave history; rollwave events --search "
                      f"{BROKEN_CUSTOMER}\nStop it with `rollwave demo --stop --dir "
                      f"{result.workspace}`.")


def stop_demo(root: Path) -> int:
    """Stop the instances of a kept demo fleet; returns how many were stopped."""
    app = App.open(root)
    count = len(app.workspace().fleet)
    _stop_fleet(app)
    app.close()
    return count


def result_summary(result: DemoResult) -> dict[str, Any]:
    """A JSON-friendly summary (used by tests and `--json`)."""
    return {
        "ok": result.ok,
        "total_seconds": result.total_seconds,
        "rollouts": {v: s.to_dict() for v, s in result.rollouts.items()},
    }

"""``rollwave demo``: a real fleet on this machine, a release in waves, a customer-specific
regression caught and rolled back while the rest completes.

The demo uses the same services, orchestrator, deployer and verification as production use:
nothing here is simulated except the fleet being local processes.
"""

from __future__ import annotations

import json
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
from rollwave.demo.scenario import BROKEN_CUSTOMER, incident_path, write_demo_workspace
from rollwave.errors import RollwaveError
from rollwave.services import releases, rollouts
from rollwave.services.context import App
from rollwave.storage.events import list_events


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

    scenario: str = "customer"
    verdicts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The scenario's story happened (see rollwave.demo.scenario.SCENARIOS)."""
        final = self.rollouts.get("1.1")
        if final is None:
            return False
        states = {t.instance: t.state for t in final.targets}
        blames = {(v.get("action"), v.get("blame")) for v in self.verdicts}
        if self.scenario == "release":
            return final.rollout.state == RolloutState.ROLLED_BACK and all(
                s in (TargetState.ROLLED_BACK, TargetState.SKIPPED) for s in states.values()
            ) and ("rollback-release", "release") in blames
        if final.rollout.state != RolloutState.SUCCEEDED:
            return False
        if self.scenario == "infrastructure":
            return all(s == TargetState.SUCCEEDED for s in states.values()) and \
                ("pause", "infrastructure") in blames
        broken = f"{BROKEN_CUSTOMER}/prod"
        return states.get(broken) == TargetState.ROLLED_BACK and all(
            s == TargetState.SUCCEEDED for k, s in states.items() if k != broken)


BASELINE_SECONDS = 8

STORIES = {
    "customer": "release 1.1 mishandles Umbrella Corp's customization "
                "(reports.legacy_export: true); everyone else is fine on 1.1",
    "release": "release 1.1 breaks the report page for every customer",
    "infrastructure": "release 1.1 is fine, but an infrastructure incident hits every "
                      "instance, old version or new, during the rollout",
}


def run_demo(console: Console, *, keep: bool = False, directory: Path | None = None,
             verify_seconds: float = 6.0, scenario: str = "customer") -> DemoResult:
    """Run the whole story; stops every process it started unless ``keep``."""
    started = time.monotonic()
    root = directory or Path(tempfile.mkdtemp(prefix="rollwave-demo-"))
    write_demo_workspace(root, verify_seconds=verify_seconds, scenario=scenario)
    console.print(f"[bold]Rollwave demo[/] ({scenario}) — workspace {root}")
    console.print("12 customers, each with one production instance of the demo service on "
                  f"this machine;\n{STORIES[scenario]}\n")
    app = App.open(root, actor="release-engineer")
    approver = App.open(root, actor="release-manager")
    result = DemoResult(workspace=root, scenario=scenario)
    from rollwave.cli.rollout_cmds import start_worker_thread

    worker, stop, thread = start_worker_thread(app)
    try:
        _release(console, app, approver, result, "1.0", "bootstrap",
                 "first install of 1.0 on every instance")
        console.print(f"  letting 1.0 serve its own traffic for {BASELINE_SECONDS}s, so every "
                      "instance has a baseline to be compared with")
        time.sleep(BASELINE_SECONDS)
        handler = (Incident(console, root, approver) if scenario == "infrastructure"
                   else None)
        _release(console, app, approver, result, "1.1", "standard",
                 "1.1 in waves: internal → canary customers (approved) → the rest",
                 handler=handler)
        result.verdicts = _verdicts(app, result)
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
             policy: str, headline: str,
             handler: Callable[[rollouts.RolloutStatus], bool] | None = None) -> None:
    console.rule(f"[bold]Release {version}[/]: {headline}")
    record = releases.create_release(app, {"web": version}, name=f"web-{version}",
                                     notes=headline)
    preview = rollouts.plan(app, record.id, policy=policy)
    for wave in preview.waves:
        names = ", ".join(t.instance.split("/")[0] for t in wave.targets)
        console.print(f"  wave {wave.index + 1} [bold]{wave.name}[/]: {names}")
    rollout = rollouts.start(app, record.id, policy=policy)
    t0 = time.monotonic()
    _follow(console, app, rollout.id,
            on_wait=lambda view: _maybe_approve(console, approver, view),
            handler=handler)
    result.durations[version] = time.monotonic() - t0
    result.rollouts[version] = rollouts.status(app, rollout.id, event_limit=200)


def _maybe_approve(console: Console, approver: App, view: rollouts.RolloutStatus) -> None:
    r = view.rollout
    if r.state == RolloutState.WAITING and "approval" in r.waiting_for:
        rollouts.control(approver, r.id, ControlAction.APPROVE,
                         reason="canary wave looks good to me")
        console.print(f"  [cyan]release-manager approved wave {r.current_wave + 1}[/]")


def _follow(console: Console, app: App, rollout_id: str,
            on_wait: Callable[[rollouts.RolloutStatus], None],
            handler: Callable[[rollouts.RolloutStatus], bool] | None = None) -> None:
    approved: set[int] = set()
    seen = 0
    give_up = time.monotonic() + 150

    def step(view: rollouts.RolloutStatus) -> None:
        if handler is not None and handler(view):
            return
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


class Incident:
    """The infrastructure scenario: an incident starts once canaries run 1.1, the fleet
    verdict pauses the rollout (nothing is rolled back), the incident ends, a person resumes."""

    def __init__(self, console: Console, root: Path, approver: App) -> None:
        self.console = console
        self.path = incident_path(root)
        self.approver = approver
        self.started = False
        self.resumed = False

    def __call__(self, view: rollouts.RolloutStatus) -> bool:
        r = view.rollout
        if not self.started and r.current_wave >= 1 and any(
                t.wave == 1 and t.state == TargetState.SUCCEEDED for t in view.targets):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # every instance re-reads the file within a second: starting 1.5 s from now, the
            # incident hits them all at the same moment, as a real one would
            self.path.write_text(json.dumps({"error_rate": 0.35, "latency_ms": 120,
                                             "starts_at": time.time() + 1.5}))
            self.started = True
            self.console.print("  [magenta]platform: a database incident starts — every "
                               "instance, on 1.0 or 1.1, slows down and fails requests[/]")
            return True
        if r.state == RolloutState.PAUSED and self.started and not self.resumed:
            self.console.print(f"  [yellow]rollout paused: {r.waiting_for}[/]")
            self.path.unlink(missing_ok=True)
            self.console.print("  [magenta]platform: the incident is over[/]; waiting for the "
                               "metrics to settle before resuming")
            time.sleep(8)
            rollouts.control(self.approver, r.id, ControlAction.RESUME,
                             reason="the database incident is resolved; not the release")
            self.console.print("  [cyan]release-manager resumed the rollout[/]")
            self.resumed = True
            return True
        return r.state == RolloutState.PAUSED and self.resumed


def _verdicts(app: App, result: DemoResult) -> list[dict[str, Any]]:
    final = result.rollouts.get("1.1")
    if final is None:
        return []
    with app.db().read() as conn:
        events = list_events(conn, rollout_id=final.rollout.id, kinds=["verify.verdict"],
                             limit=1000)
    return [dict(e.data.get("verdict", {})) for e in events]


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
            before = target.changes[0].get("from_version") if target.changes else None
            after = target.changes[0].get("to_version") if target.changes else None
            if target.state == TargetState.SUCCEEDED:
                runs, why, style = after or "?", "verified", "green"
            elif target.state == TargetState.SKIPPED:
                runs, why, style = before or "-", "not started: the release was stopped", "dim"
            else:
                runs, why, style = before or "-", target.explanation, "red"
            table.add_row(target.instance, runs,
                          Text(target.state.value.replace("_", " "), style=style),
                          Text(why[:120]))
    console.print(table)
    for version, seconds in result.durations.items():
        view = result.rollouts[version]
        console.print(f"release {version}: rollout {view.rollout.id} "
                      f"{view.rollout.state.value} in {format_duration(seconds)} — "
                      f"{view.rollout.summary}")
    shown = set()
    for verdict in result.verdicts:
        key = (verdict.get("action"), verdict.get("blame"))
        if verdict.get("action") in ("continue", "promote") or key in shown:
            continue
        shown.add(key)
        console.print(Text(f"fleet verification: {verdict.get('action')} (blame "
                           f"{verdict.get('blame')}): {verdict.get('explanation', '')}",
                           style="yellow"))
    outcome = "[green]as expected[/]" if result.ok else "[red]NOT as expected[/]"
    console.print(f"\nDemo finished in {format_duration(result.total_seconds)}: {outcome}.")
    if keep:
        console.print(f"The fleet is still running. Explore it:\n  cd {result.workspace}\n"
                      "  rollwave status latest; rollwave verify explain latest; rollwave "
                      f"history; rollwave events --search {BROKEN_CUSTOMER}\n"
                      f"Stop it with `rollwave demo --stop --dir {result.workspace}`.")


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

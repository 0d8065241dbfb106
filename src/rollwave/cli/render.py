"""Rich renderings of plans, rollout status and history (no logic, only presentation)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from rollwave.cli import state
from rollwave.core.durations import format_duration

STATE_STYLE = {
    "pending": "dim", "waiting_window": "cyan", "deploying": "bold blue",
    "verifying": "bold magenta", "succeeded": "green", "held": "yellow",
    "rolling_back": "bold red", "rolled_back": "red", "rollback_failed": "bold white on red",
    "skipped": "dim", "running": "bold blue", "waiting": "cyan", "baking": "magenta",
    "paused": "yellow", "aborted": "yellow", "failed": "bold red",
}


def styled(value: str) -> Text:
    return Text(value.replace("_", " "), style=STATE_STYLE.get(value, ""))


def _change_text(changes: list[dict[str, Any]] | tuple[Any, ...]) -> str:
    parts = []
    for change in changes:
        c = change if isinstance(change, dict) else {
            "service": change.service, "from_version": change.from_version,
            "to_version": change.to_version, "from_config": change.from_config,
            "to_config": change.to_config}
        text = f"{c['service']} {c.get('from_version') or '∅'} → {c['to_version']}"
        if c.get("from_version") == c["to_version"]:
            text = f"{c['service']} {c['to_version']} (config only)"
        elif c.get("to_config") and c.get("from_config") and c["to_config"] != c["from_config"]:
            text += " + config"
        parts.append(text)
    return ", ".join(parts)


def plan(preview: Any, *, full: bool = False) -> None:
    """The waves of a plan, instances grouped by identical change unless ``full``."""
    p = preview.plan
    out = state.out
    header = (f"[bold]Plan for release {escape(p.release)}[/] · policy {escape(p.policy)}"
              + (" · [bold red]EMERGENCY[/]" if p.emergency else ""))
    out.print(header)
    out.print(f"{p.target_count} instances to change in {len(p.waves)} waves; "
              f"{len(p.unchanged)} already up to date; {len(p.excluded)} not selected by any wave")
    for freeze in p.freezes:
        out.print(f"[bold red]frozen:[/] {escape(freeze)}")
    for wave in p.waves:
        gates = ", ".join(g.kind if g.kind != "approval" else
                          f"approval×{g.min_approvals}" for g in wave.gates) or "none"
        out.print()
        out.print(f"[bold]Wave {wave.index + 1}: {escape(wave.name)}[/] — {len(wave.targets)} "
                  f"instances · parallelism {wave.parallelism} · bake "
                  f"{format_duration(wave.bake)} · failure budget {wave.failure_budget} · "
                  f"gates: {gates}")
        if not wave.targets:
            out.print("  [dim](empty)[/]")
            continue
        table = Table("instance", "now → after", "window", box=None, pad_edge=False,
                      padding=(0, 2))
        if full:
            for t in wave.targets:
                table.add_row(t.instance, _change_text(t.changes), _window(t))
        else:
            groups: dict[tuple[str, str], list[str]] = defaultdict(list)
            for t in wave.targets:
                groups[(_change_text(t.changes), _window(t))].append(t.instance)
            for (change, window), names in groups.items():
                shown = ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3
                                                else "")
                table.add_row(shown, change, window)
        out.print(table)
    if p.excluded:
        out.print(f"\n[yellow]Not in any wave:[/] {', '.join(p.excluded[:10])}"
                  + (" …" if len(p.excluded) > 10 else ""))
    if preview.config is not None:
        out.print()
        out.print(escape(preview.config.render_text()))


def _window(target: Any) -> str:
    return "open now" if target.window_open and target.window_note == "any time" else \
        target.window_note


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return format_duration((datetime.now(UTC) - moment).total_seconds()) + " ago"


def status(view: Any, *, max_rows: int = 40) -> RenderableType:
    """One rollout: state, waves with progress, the instances that matter, recent events."""
    r = view.rollout
    elapsed = format_duration(r.duration) if r.duration is not None else "not started"
    title = Text.assemble(("Rollout ", "bold"), (r.id, "bold"), f" · release {r.release_id} · ",
                          f"policy {r.policy} · ", styled(r.state.value), f" · {elapsed}")
    lines: list[RenderableType] = [title]
    if r.waiting_for and r.state.active:
        lines.append(Text(f"waiting for: {r.waiting_for}", style="cyan"))
    if r.summary and r.state.terminal:
        lines.append(Text(r.summary))
    waves: dict[int, list[Any]] = defaultdict(list)
    for t in view.targets:
        waves[t.wave].append(t)
    plan_waves = r.plan.get("waves", [])
    table = Table("wave", "progress", "instances", box=None, padding=(0, 2))
    for index, wave in enumerate(plan_waves):
        rows = waves.get(index, [])
        done = sum(1 for t in rows if t.state.terminal)
        counts: dict[str, int] = defaultdict(int)
        for t in rows:
            counts[t.state.value] += 1
        bar = _bar(done, len(rows))
        summary = Text(" ")
        for name, count in sorted(counts.items()):
            summary.append(f"{count} ", style="bold")
            summary.append_text(styled(name))
            summary.append("  ")
        marker = "▶ " if index == r.current_wave and r.state.active else "  "
        table.add_row(f"{marker}{index + 1}. {wave['name']}", bar, summary)
    lines.append(table)
    interesting = [t for t in view.targets if t.state.value not in ("pending", "succeeded")]
    if len(view.targets) <= max_rows:
        interesting = list(view.targets)
    if interesting:
        detail = Table("instance", "state", "change", "why", box=None, padding=(0, 2))
        for t in interesting[:max_rows]:
            detail.add_row(t.instance, styled(t.state.value), _change_text(t.changes),
                           Text(t.explanation[:110]))
        if len(interesting) > max_rows:
            detail.add_row(f"… {len(interesting) - max_rows} more", "", "", "")
        lines.append(detail)
    if view.events:
        events = Table(box=None, show_header=False, padding=(0, 1))
        for e in view.events[-8:]:
            events.add_row(Text(f"{e.at:%H:%M:%S}", style="dim"), Text(e.message[:140]))
        lines.append(Panel(events, title="recent events", title_align="left", border_style="dim"))
    return Group(*lines)


def _bar(done: int, total: int, width: int = 20) -> Text:
    if total == 0:
        return Text("(empty)", style="dim")
    filled = round(width * done / total)
    return Text.assemble(("█" * filled, "green"), ("░" * (width - filled), "dim"),
                         f" {done}/{total}")


def history(records: list[Any]) -> None:
    table = Table("rollout", "release", "policy", "state", "started", "duration", "summary",
                  box=None, padding=(0, 2))
    for r in records:
        table.add_row(r.id, r.release_id, r.policy + (" (rollback)" if r.kind == "rollback"
                                                      else ""),
                      styled(r.state.value), f"{r.created_at:%Y-%m-%d %H:%M}",
                      format_duration(r.duration) if r.duration is not None else "-",
                      Text(r.summary[:70]))
    state.out.print(table if records else "No rollouts yet.")

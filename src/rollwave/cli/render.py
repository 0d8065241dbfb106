"""Rich renderings of plans, rollout status and history (no logic, only presentation)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Column, Table
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
        text = f"{c['service']} {c.get('from_version') or '(new)'} → {c['to_version']}"
        if c.get("from_version") == c["to_version"]:
            text = f"{c['service']} {c['to_version']} (config only)"
        elif c.get("to_config") and c.get("from_config") and c["to_config"] != c["from_config"]:
            text += " + config"
        parts.append(text)
    return ", ".join(parts)


def plain_width(console: Console, width: int = 160) -> Console:
    """``console`` on a terminal; otherwise (a pipe, a CI log) one wide enough that table rows
    are not folded into several lines, which grep and log viewers handle badly."""
    if console.is_terminal or console.width >= width:
        return console
    return Console(width=width, highlight=False, soft_wrap=False, file=console.file,
                   no_color=console.no_color)


def _plural(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count:,} {noun if count == 1 else (plural or noun + 's')}"


def _gate_text(gate: Any) -> str:
    if gate.kind == "approval":
        return "approval" if gate.min_approvals == 1 else f"{gate.min_approvals} approvals"
    return f"{gate.kind} check '{gate.name}'"


def _wave_settings(wave: Any) -> str:
    size = len(wave.targets)
    parts = [_plural(size, "instance")]
    if size:
        parts.append(f"{wave.parallelism} at a time")
        parts.append(f"bake {format_duration(wave.bake)}" if wave.bake else "no bake")
        parts.append("halts on the first failure" if wave.failure_budget == 0
                     else f"tolerates {_plural(wave.failure_budget, 'failure')}")
    gates = ", ".join(_gate_text(g) for g in wave.gates)
    parts.append(f"waits for {gates}" if gates else "no gates")
    return " · ".join(parts)


def _names(names: list[str], shown: int = 3) -> str:
    head = ", ".join(names[:shown])
    return head + (f" (+{len(names) - shown:,} more)" if len(names) > shown else "")


def plan(preview: Any, *, full: bool = False, max_rows: int = 12) -> None:
    """The waves of a plan: instances grouped by identical change and window state unless
    ``full``, so a 500-instance plan stays a screenful; ``full`` lists every instance."""
    p = preview.plan
    out = plain_width(state.out)
    out.print(f"[bold]Plan for release {escape(p.release)}[/] · policy {escape(p.policy)}"
              + (" · [bold red]EMERGENCY[/]" if p.emergency else ""), soft_wrap=True)
    out.print(f"{_plural(p.target_count, 'instance')} to change in {_plural(len(p.waves), 'wave')}"
              f" · {len(p.unchanged):,} already up to date · "
              f"{len(p.excluded):,} in no wave · as of {p.created_at:%Y-%m-%d %H:%M} UTC",
              soft_wrap=True)
    if p.emergency:
        out.print("[red]Emergency:[/] maintenance windows and freezes are overridden and bake "
                  "times compressed; verification still runs.", soft_wrap=True)
    for freeze in p.freezes:
        out.print(f"[bold red]Frozen:[/] {escape(freeze)} — `rollwave deploy` refuses until "
                  "it ends (an emergency policy overrides it)", soft_wrap=True)
    for freeze in getattr(p, "freezes_overridden", ()):
        out.print(f"[red]Freeze overridden:[/] {escape(freeze)}", soft_wrap=True)
    for wave in p.waves:
        out.print()
        out.print(Text.assemble((f"Wave {wave.index + 1}/{len(p.waves)} ", "bold"),
                                (wave.name, "bold"), " — ", _wave_settings(wave)),
                  soft_wrap=True)
        if not wave.targets:
            out.print("  [dim](no instance needs this wave)[/]")
            continue
        out.print(_wave_table(wave.targets, full=full, max_rows=max_rows))
    if p.excluded:
        listed = ", ".join(p.excluded) if full else _names(list(p.excluded), 10)
        out.print(f"\n[yellow]In no wave ({len(p.excluded):,}):[/] {escape(listed)}",
                  soft_wrap=True)
        out.print("  [dim]the policy's waves do not select them; end it with a "
                  "`select: rest` wave to include them[/]", soft_wrap=True)
    if full and p.unchanged:
        out.print(f"\n[dim]Already up to date ({len(p.unchanged):,}):[/] "
                  f"{escape(', '.join(p.unchanged))}", soft_wrap=True)
    if preview.config is not None:
        out.print()
        out.print(escape(preview.config.render_text()), soft_wrap=True)
    if not full and (any(len(w.targets) > 3 for w in p.waves) or len(p.excluded) > 10
                     or p.unchanged):
        out.print("\n[dim]`--full` lists every instance; `--json` gives the whole plan.[/]")


def _wave_table(targets: Any, *, full: bool, max_rows: int) -> Table:
    if full:
        table = Table("instance", "now → after", "window", box=None, pad_edge=False,
                      padding=(0, 2))
        for t in targets:
            table.add_row(Text(t.instance), Text(_change_text(t.changes)), Text(_window(t)))
        return table
    table = Table(Column("n", justify="right"), "instances", "now → after", "window", box=None,
                  pad_edge=False, padding=(0, 2))
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for t in targets:
        groups[(_change_text(t.changes), _window_class(t))].append(t)
    rows = sorted(groups.items(), key=lambda item: -len(item[1]))
    for (change, _), members in rows[:max_rows]:
        window = _window(members[0]) if len(members) == 1 else _group_window(members)
        names = [t.instance for t in members]
        table.add_row(f"{len(names):,}", Text(_names(names)), Text(change), Text(window))
    if len(rows) > max_rows:
        hidden = rows[max_rows:]
        table.add_row(f"{sum(len(m) for _, m in hidden):,}",
                      Text(f"… in {len(hidden):,} more groups", style="dim"), "", "")
    return table


def _window_class(target: Any) -> str:
    if target.window_note.startswith("emergency"):
        return "override"
    return "open" if target.window_open else "waits"


def _group_window(members: list[Any]) -> str:
    kind = _window_class(members[0])
    if kind == "override":
        return "window overridden (emergency)"
    if kind == "open":
        return "open now"
    opens = sorted(t.next_window for t in members if t.next_window is not None)
    if not opens:
        return "no window in the next week"
    first, last = opens[0], opens[-1]
    if first == last:
        return f"waits for window at {first:%Y-%m-%d %H:%M} UTC"
    return f"waits for windows {first:%m-%d %H:%M} … {last:%m-%d %H:%M} UTC"


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
        table.add_row(Text(f"{marker}{index + 1}. {wave['name']}"), bar, summary)
    lines.append(table)
    interesting = [t for t in view.targets if t.state.value not in ("pending", "succeeded")]
    if len(view.targets) <= max_rows:
        interesting = list(view.targets)
    if interesting:
        detail = Table("instance", "state", "change", "why", box=None, padding=(0, 2))
        for t in interesting[:max_rows]:
            detail.add_row(Text(t.instance), styled(t.state.value), Text(_change_text(t.changes)),
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
        table.add_row(Text(r.id), Text(r.release_id),
                      Text(r.policy + (" (rollback)" if r.kind == "rollback" else "")),
                      styled(r.state.value), f"{r.created_at:%Y-%m-%d %H:%M}",
                      format_duration(r.duration) if r.duration is not None else "-",
                      Text(r.summary[:70]))
    state.out.print(table if records else "No rollouts yet.")

"""``rollwave verify explain``: the evidence behind every fleet verification decision.

Fleet verification records an event ``verify.verdict`` for each decisive verdict of a rollout
(and the final one) with ``data = {"at": epoch seconds, "verdict": FleetVerdict.to_dict()}``.
This command prints them in order: when, what action and blame, the explanation with its
numbers, and per instance the evidence (each check's outcome and numbers against the baseline
and the peers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.text import Text

from rollwave.cli import state
from rollwave.core.durations import format_duration

PANEL = "Rollouts"
KIND = "verify.verdict"

verify_app = typer.Typer(
    name="verify", no_args_is_help=True, rich_markup_mode="markdown",
    help="Fleet verification: why a rollout was promoted, paused or rolled back.")

_ACTION_STYLE = {"promote": "green", "continue": "dim", "hold": "yellow", "pause": "yellow",
                 "rollback-instances": "bold red", "rollback-release": "bold white on red"}
_OUTCOME = {"failed": ("✗", "bold red"), "error": ("!", "yellow"),
            "inconclusive": ("?", "cyan"), "successful": ("✓", "green")}
_ORDER = {"failed": 0, "error": 1, "inconclusive": 2, "successful": 3}


def register(app: typer.Typer) -> None:
    """Add the ``verify`` command group to the ``rollwave`` app."""
    app.add_typer(verify_app, rich_help_panel=PANEL)


@verify_app.command("explain")
def explain(
    rollout: Annotated[str | None, typer.Argument(
        help="Rollout id, unique prefix or `latest` (default: the active rollout).",
        show_default=False)] = None,
    instance: Annotated[str | None, typer.Option(
        "--instance", "-i", help="Only this CUSTOMER/INSTANCE's evidence.",
        show_default=False)] = None,
    show_all: Annotated[bool, typer.Option(
        "--all", "-a", help="Every instance's checks, also the healthy ones.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print each fleet verification decision of a rollout with its evidence.

    For every decision: when it was taken, the action (promote, hold, pause, roll back
    instances or the release) and whom it blames (release, customer, infrastructure), the
    explanation with its numbers, and per instance the checks against the baseline and the
    peers. Instances that are not healthy, or that the decision names, are shown in full;
    `--all` shows every one. Example: `rollwave verify explain latest --instance acme/prod`.
    """
    record, decisions = load(state.open_app(), rollout)
    if instance is not None:
        decisions = [_only(d, instance) for d in decisions]
    if as_json:
        state.emit_json({"rollout": record.id, "release": record.release_id,
                         "state": record.state.value, "decisions": decisions})
        return
    _print(record, decisions, instance=instance, show_all=show_all)


def load(app: Any, rollout: str | None) -> tuple[Any, list[dict[str, Any]]]:
    """The rollout record and its decisions, oldest first, as JSON-friendly dicts."""
    from rollwave.services.rollouts import resolve
    from rollwave.storage.events import list_events

    record = resolve(app, rollout)
    with app.db().read() as conn:
        events = list_events(conn, rollout_id=record.id, kinds=[KIND], limit=10_000)
    decisions = []
    for event in events:
        verdict = event.data.get("verdict")
        if not isinstance(verdict, Mapping):
            continue
        at = event.data.get("at")
        decisions.append({
            "seq": event.seq,
            "at": float(at) if isinstance(at, int | float) else event.at.timestamp(),
            "recorded_at": event.at.isoformat(),
            "actor": event.actor,
            "action": str(verdict.get("action", "?")),
            "blame": str(verdict.get("blame", "?")),
            "explanation": str(verdict.get("explanation", "")),
            "verdict": dict(verdict),
        })
    return record, decisions


def _only(decision: dict[str, Any], instance: str) -> dict[str, Any]:
    verdict = dict(decision["verdict"])
    instances = verdict.get("instances")
    if isinstance(instances, Mapping):
        verdict["instances"] = {k: v for k, v in instances.items() if k == instance}
    return {**decision, "verdict": verdict}


# --- text output -----------------------------------------------------------------------------


def _print(record: Any, decisions: Sequence[Mapping[str, Any]], *, instance: str | None,
           show_all: bool) -> None:
    out = state.out
    status = record.state.value.replace("_", " ")
    head = Text.assemble(("Rollout ", "bold"), (record.id, "bold"),
                         f" of release {record.release_id} ({status})")
    out.print(head)
    if not decisions:
        out.print(Text("No fleet verification decisions recorded for this rollout yet (one is "
                       "recorded for every decisive verdict: promote, hold, pause, roll back).",
                       style="dim"))
        return
    started = record.started_at.timestamp() if record.started_at else None
    noun = "decision" if len(decisions) == 1 else "decisions"
    out.print(Text(f"{len(decisions)} fleet verification {noun}:"))
    for number, decision in enumerate(decisions, 1):
        out.print()
        _decision(number, decision, started, instance=instance, show_all=show_all)


def _when(at: float, started: float | None) -> str:
    text = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if started is not None and at >= started:
        text += f" ({format_duration(at - started)} into the rollout)"
    return text


def _decision(number: int, decision: Mapping[str, Any], started: float | None, *,
              instance: str | None, show_all: bool) -> None:
    out = state.out
    verdict: Mapping[str, Any] = decision["verdict"]
    action, blame = decision["action"], decision["blame"]
    out.print(Text.assemble((f"{number}. ", "bold"), (_when(decision["at"], started), "bold"),
                            "  ", (action, _ACTION_STYLE.get(action, "bold")),
                            (f" · blame {blame}", "bold" if blame not in ("none", "?") else ""),
                            (f"  (event #{decision['seq']})", "dim")))
    _say(Text(decision["explanation"] or "(no explanation)"), 3)
    facts = []
    if verdict.get("rollback"):
        facts.append("roll back: " + ", ".join(map(str, verdict["rollback"])))
    if verdict.get("flagged_customers"):
        facts.append("flag for review: " + ", ".join(map(str, verdict["flagged_customers"])))
    if verdict.get("settled"):
        facts.append("blame settled on the customer for: " + ", ".join(map(str,
                                                                         verdict["settled"])))
    if verdict.get("hold_waves"):
        facts.append("no new wave until the pending blame is settled")
    for fact in facts:
        _say(Text(fact, style="bold"), 3)
    instances = verdict.get("instances")
    if isinstance(instances, Mapping) and instances:
        _evidence(instances, verdict, instance=instance, show_all=show_all)


def _named(verdict: Mapping[str, Any], key: str, facts: Mapping[str, Any]) -> bool:
    return key in (verdict.get("rollback") or ()) or key in (verdict.get("settled") or ()) or (
        facts.get("customer") in (verdict.get("flagged_customers") or ()))


def _evidence(instances: Mapping[str, Any], verdict: Mapping[str, Any], *,
              instance: str | None, show_all: bool) -> None:
    rows = sorted(((k, v) for k, v in instances.items() if isinstance(v, Mapping)),
                  key=lambda kv: (not kv[1].get("updated"),
                                  _ORDER.get(str(kv[1].get("outcome")), 4), kv[0]))
    full = [(k, v) for k, v in rows if show_all or instance is not None
            or v.get("outcome") != "successful" or _named(verdict, k, v)]
    brief = [k for k, v in rows if (k, v) not in full]
    _say(Text("evidence:", style="dim"), 3)
    for key, facts in full:
        outcome = str(facts.get("outcome", "?"))
        mark, style = _OUTCOME.get(outcome, ("·", ""))
        where = "updated" if facts.get("updated") else "not updated"
        _say(Text.assemble((f"{mark} {key}", style), f"  {facts.get('customer', '?')}, {where}: ",
                           (outcome, style)), 3)
        for check in facts.get("checks") or []:
            if isinstance(check, Mapping):
                _check(check)
    if brief:
        shown = ", ".join(brief[:8]) + (f", … ({len(brief) - 8} more)" if len(brief) > 8 else "")
        _say(Text(f"✓ healthy: {shown} (--all shows their checks)", style="green"), 3)


def _check(check: Mapping[str, Any]) -> None:
    outcome = str(check.get("outcome", "?"))
    mark, style = _OUTCOME.get(outcome, ("·", ""))
    line = Text.assemble((f"{mark} {check.get('name', '?')}", style), ": ",
                         str(check.get("explanation", "")))
    numbers = []
    if isinstance(check.get("value"), int | float):
        numbers.append(f"value {check['value']:.4g}")
    if isinstance(check.get("threshold"), int | float):
        numbers.append(f"limit {check['threshold']:.4g}")
    if numbers:
        line.append(f" [{', '.join(numbers)}]", style="dim")
    _say(line, 7)


def _say(text: Text, indent: int) -> None:
    """Print ``text`` wrapped to the console with every line indented (no trailing blanks)."""
    out = state.out
    for line in text.wrap(out, max(40, out.width - indent)):
        line.rstrip()
        out.print(Text(" " * indent) + line, soft_wrap=True)

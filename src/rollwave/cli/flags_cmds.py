"""``rollwave flags``: list, show, eval, set, kill, revert, audit, stale, sync, rollout.

The commands work on the database of the workspace (the same store the server evaluates from;
a running server sees changes within a fraction of a second) and record who did what and why.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from rollwave.cli import state

flags_app = typer.Typer(
    help="Feature flags: define and target them, roll them out in guarded steps, kill them, "
         "audit and revert changes, keep them in sync with flags/*.yaml, find stale ones.\n\n"
         "Typical flow: `rollwave flags sync` (import flags/*.yaml) → `rollwave flags set "
         "new-checkout --env production --on --target customer=acme --percentage 5` → "
         "`rollwave flags rollout start new-checkout` → `rollwave flags rollout status`. "
         "Flag format: docs/flags.md.",
    no_args_is_help=True)
rollout_app = typer.Typer(
    help="Guarded progressive rollouts: move a variant through steps (1 % → 5 % → 25 % → "
         "100 %) on a schedule; each step's guards (verification checks on chosen instances) "
         "must pass before the next; a failing guard reverts to the last safe step and "
         "notifies. A worker (`rollwave worker` or `rollwave serve`) carries them out.",
    no_args_is_help=True)

Reason = Annotated[str, typer.Option("--reason", "-r", help="Why, for the audit log.")]
Env = Annotated[str | None, typer.Option("--env", "-e", help="Environment (default: the "
                                         "flag's top-level settings).", show_default=False)]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def register(app: typer.Typer) -> None:
    """Add ``rollwave flags`` to the CLI."""
    flags_app.add_typer(rollout_app, name="rollout")
    app.add_typer(flags_app, name="flags", rich_help_panel="Feature flags")


def _store() -> tuple[Any, Any]:
    from rollwave.flags.dbstore import store_for

    app_ = state.open_app()
    return app_, store_for(app_)


def _ago(moment: datetime) -> str:
    seconds = (datetime.now(UTC) - moment).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return "just now"


def _serving_everywhere(flag: Any, env: str | None) -> str:
    if env is not None or not flag.environments:
        return _serving(flag, env)
    return "; ".join(f"{name}: {_serving(flag, name)}" for name in flag.environments)


def _serving(flag: Any, env: str | None) -> str:
    from rollwave.flags.compiler import resolve

    resolved = resolve(flag, env)
    if resolved.killed:
        return f"KILLED → {resolved.off_variant}"
    if not resolved.enabled:
        return f"off → {resolved.off_variant}"
    serve = resolved.fallthrough
    rest = (" else " + serve.variant) if serve.variant else " else " + ", ".join(
        f"{w.variant} {w.weight:g}%" for w in serve.split or [])
    rules = f"{len(resolved.rules)} rule{'s' if len(resolved.rules) != 1 else ''}" \
        if resolved.rules else ""
    return (rules + rest) if rules else rest.removeprefix(" else ")


def _warn_git(store: Any, key: str) -> None:
    record = store.record(key)
    if record is not None and record.drifted:
        state.err.print(f"[yellow]note:[/] {key} is managed in git ({record.git_path}); it now "
                        "differs from the file — update the file, or `rollwave flags sync "
                        "--force` restores it", soft_wrap=True)


@flags_app.command("list")
def list_flags(env: Env = None, as_json: Json = False) -> None:
    """Every flag: what it serves, version, who changed it last, git or API, active rollouts."""
    from rollwave.flags import rollouts

    app_, store = _store()
    records = store.records()
    active = {r.flag_key: r for r in rollouts.list_rollouts(app_, active_only=True)}
    if as_json:
        state.emit_json([{**r.data, "version": r.version, **r.meta(),
                          "updated_at": r.updated_at.isoformat(), "updated_by": r.updated_by,
                          "rollout": active[r.key].to_dict() if r.key in active else None}
                         for r in records])
        return
    if not records:
        state.out.print("No flags yet. Define one in flags/NAME.yaml and `rollwave flags sync`,"
                        " or `rollwave flags set NAME --create --on`.")
        return
    table = Table("flag", "serving" + (f" in {env}" if env else ""), "ver", "changed",
                  "source", "rollout", box=None, pad_edge=False)
    for record in records:
        flag = record.value()
        source = record.managed_by + (" [yellow](drifted)[/]" if record.drifted else "")
        rollout = active.get(record.key)
        table.add_row(escape(record.key), escape(_serving_everywhere(flag, env)),
                      str(record.version),
                      f"{_ago(record.updated_at)} by {escape(record.updated_by)}", source,
                      escape(f"{rollout.state.value} {rollout.percentage:g} %") if rollout
                      else "")
    state.out.print(table)


@flags_app.command("show")
def show(key: str, env: Env = None,
         as_yaml: Annotated[bool, typer.Option("--yaml", help="Only the definition, as YAML "
                                               "for flags/KEY.yaml.")] = False,
         as_json: Json = False) -> None:
    """One flag: its definition, where it comes from, drift from git, rollout, last changes.

    `rollwave flags show KEY --yaml > flags/KEY.yaml` writes the database's definition back to
    the workspace (e.g. after a rollout), so the next sync sees them agree.
    """
    from rollwave.flags import rollouts
    from rollwave.flags.errors import FlagNotFound
    from rollwave.flags.files import flag_to_yaml

    app_, store = _store()
    record = store.record(key)
    if record is None:
        raise FlagNotFound(f"flag '{key}' does not exist", hint="list flags: `rollwave flags "
                                                                "list`")
    flag = record.value()
    if as_yaml:
        sys.stdout.write(flag_to_yaml(flag))
        return
    active = rollouts.list_rollouts(app_, flag_key=key, limit=1)
    history = store.history(key, limit=5)
    if as_json:
        state.emit_json({**record.data, "version": record.version, **record.meta(),
                         "rollout": active[0].to_dict() if active else None,
                         "history": [h.to_dict() for h in history]})
        return
    state.out.print(Text.assemble((key, "bold"), f"  version {record.version}, "
                                  f"{record.managed_by}"), soft_wrap=True)
    if record.git_path:
        drift = "[yellow]drifted from git[/]" if record.drifted else "matches the last sync"
        state.out.print(f"  git: {escape(record.git_path)} — {drift}")
    for name in [None, *flag.environments] if flag.environments else [env]:
        label = name or "(top level)"
        state.out.print(f"  {escape(label)}: {escape(_serving(flag, name))}")
    if active:
        state.out.print(f"  rollout {active[0].id}: {escape(active[0].describe())}",
                        soft_wrap=True)
    state.out.print(Text(flag_to_yaml(flag), style="dim"))
    _print_history(history)


@flags_app.command("eval")
def evaluate(key: str, attributes: Annotated[list[str] | None, typer.Argument(
        help="Context as NAME=VALUE (targetingKey=u-1 customer=acme).",
        show_default=False)] = None, env: Env = None, as_json: Json = False) -> None:
    """Evaluate a flag for a context, from the database, as the SDK would.

    Example: `rollwave flags eval new-checkout targetingKey=u-1 customer=acme -e production`
    """
    from rollwave.flags.edits import parse_assignment
    from rollwave.flags.engine import compile_snapshot

    _, store = _store()
    context = dict(parse_assignment(a, "context") for a in attributes or [])
    flagset, _revision = store.flagset()
    details = compile_snapshot(flagset, env).evaluate(key, context)
    data = {"key": key, "value": details.value, "variant": details.variant,
            "reason": str(details.reason), "rule": details.rule_id,
            "error": details.error_code, "message": details.error_message}
    if as_json:
        state.emit_json(data)
        return
    text = (f"{key} = {json.dumps(details.value)} (variant {details.variant}, "
            f"{details.reason}" + (f", rule {details.rule_id}" if details.rule_id else "") + ")")
    if details.error_code:
        text = f"{key}: {details.error_code}: {details.error_message}"
    state.out.print(Text(text), soft_wrap=True)


@flags_app.command("set")
def set_flag(
    key: str,
    env: Env = None,
    on: Annotated[bool | None, typer.Option("--on/--off", help="Switch the flag on or off "
                                            "(in --env).", show_default=False)] = None,
    target: Annotated[list[str] | None, typer.Option(
        "--target", "-t", help="ATTR=V1,V2: serve --target-variant to contexts whose ATTR is "
        "one of the values (replaces the previous target on ATTR).",
        show_default=False)] = None,
    target_variant: Annotated[str | None, typer.Option(
        help="Variant targeted contexts get (default: true/on).", show_default=False)] = None,
    untarget: Annotated[list[str] | None, typer.Option(
        help="ATTR: remove the target on ATTR.", show_default=False)] = None,
    percentage: Annotated[float | None, typer.Option(
        "--percentage", "-p", min=0, max=100, help="Serve --variant to this share of everyone "
        "else (sticky by the flag's bucketing), the rest the off variant.",
        show_default=False)] = None,
    variant: Annotated[str | None, typer.Option(
        help="Variant for --percentage (default: true/on).", show_default=False)] = None,
    serve: Annotated[str | None, typer.Option(
        help="Serve this variant to everyone else.", show_default=False)] = None,
    from_file: Annotated[Path | None, typer.Option(
        "--file", "-f", help="Replace the whole definition with this YAML/JSON file ('-': "
        "stdin).", show_default=False)] = None,
    create: Annotated[bool, typer.Option(help="Create the flag if it does not exist.")] = False,
    flag_type: Annotated[str | None, typer.Option(
        "--type", help="boolean | string | number | json (new flags).",
        show_default=False)] = None,
    variant_value: Annotated[list[str] | None, typer.Option(
        help="NAME=VALUE (JSON or text): add or change a variant.", show_default=False)] = None,
    description: Annotated[str | None, typer.Option(show_default=False)] = None,
    if_version: Annotated[int | None, typer.Option(
        help="Refuse unless the flag is at this version (0: must not exist).",
        show_default=False)] = None,
    reason: Reason = "",
    as_json: Json = False,
) -> None:
    """Create or change a flag; each option changes one thing and leaves the rest alone.

    Examples:

    `rollwave flags set new-checkout --create -e production --on -t customer=acme -p 20`

    `rollwave flags set new-checkout -e production -p 50 -r "PAY-12: half of everyone"`

    `rollwave flags set new-checkout -f flags/new-checkout.yaml`
    """
    from rollwave.errors import Problem, ValidationFailed
    from rollwave.flags.edits import Edits, apply_edits, parse_assignment, parse_value
    from rollwave.flags.errors import FlagNotFound
    from rollwave.flags.files import parse_flag
    from rollwave.yamlio import parse_yaml

    _, store = _store()
    current = store.get_flag(key)
    flagset, _revision = store.flagset()
    if current is None and not create:
        raise FlagNotFound(f"flag '{key}' does not exist",
                           hint="add --create to create it (or check the spelling: "
                                "`rollwave flags list`)")
    if from_file is not None:
        text = sys.stdin.read() if str(from_file) == "-" else from_file.read_text("utf-8")
        doc = parse_yaml(text, str(from_file))
        flag = parse_flag(doc.data, key=key, doc=doc, flagset=flagset)
    else:
        edits = Edits(environment=env, enabled=on, type=flag_type, description=description,
                      variants={n: parse_value(v) for n, v in (
                          parse_assignment(a, "--variant-value") for a in variant_value or [])},
                      targets={a: [v.strip() for v in vals.split(",") if v.strip()]
                               for a, vals in (parse_assignment(t, "--target")
                                               for t in target or [])},
                      target_variant=target_variant, untarget=list(untarget or []),
                      percentage=percentage, variant=variant, serve=serve)
        if edits.empty() and current is not None:
            raise ValidationFailed([Problem(message="nothing to change", code="flag.invalid",
                                            hint="see `rollwave flags set --help`")],
                                   what="rollwave flags set")
        flag = apply_edits(current.value if current else None, key, edits, flagset)
    expected = if_version if if_version is not None else (current.version if current else 0)
    change = store.put_flag(flag, actor=state.open_app().actor, reason=reason,
                            expected_version=expected)
    if as_json:
        state.emit_json({"key": key, "version": change.version, "revision": change.revision})
        return
    verb = "created" if change.before is None else "changed"
    state.out.print(f"[green]{escape(key)} {verb}[/] (version {change.version}): "
                    f"{escape(_serving(flag, env))}" + (f" in {escape(env)}" if env else ""),
                    soft_wrap=True)
    _warn_git(store, key)


@flags_app.command("kill")
def kill(key: str, env: Env = None, reason: Reason = "",
         revive: Annotated[bool, typer.Option(help="Undo a kill.")] = False) -> None:
    """Kill switch: serve the off variant everywhere (or in --env), now.

    Servers and SDKs pick it up within a fraction of a second. `--revive` undoes it.
    """
    from rollwave.flags.store import set_killed

    app_, store = _store()
    change = set_killed(store, key, not revive, actor=app_.actor, environment=env,
                        reason=reason or ("revive" if revive else "kill switch"))
    where = f" in {env}" if env else " everywhere"
    state.out.print(f"[{'green' if revive else 'red'}]{escape(key)} "
                    f"{'revived' if revive else 'killed'}{where}[/] (version {change.version})")
    _warn_git(store, key)


@flags_app.command("revert")
def revert(key: str, to_version: Annotated[int | None, typer.Option(
        help="Go back to this version instead of undoing the last change.",
        show_default=False)] = None, reason: Reason = "") -> None:
    """Undo the last change of a flag (recorded as a new change, so it can be undone too).

    Reverting a creation deletes the flag; reverting a deletion restores it.
    """
    app_, store = _store()
    change = store.revert(key, actor=app_.actor, reason=reason, to_version=to_version)
    state.out.print(f"[green]{escape(key)} reverted[/] (now version {change.version}): "
                    f"{escape(change.reason)}", soft_wrap=True)
    _warn_git(store, key)


def _print_history(entries: list[Any], *, diff: bool = False) -> None:
    from rollwave.flags.diffing import describe_changes, unified_diff

    for entry in entries:
        head = (f"{entry.at:%Y-%m-%d %H:%M:%S} v{entry.version} {entry.action} "
                f"by {entry.actor}")
        what = ("created" if entry.before is None else "deleted" if entry.after is None
                else describe_changes(entry.changes()))
        state.out.print(Text.assemble((head, "bold"), f"  {entry.key}: {what}"
                                      + (f" — {entry.reason}" if entry.reason else "")),
                        soft_wrap=True)
        if diff:
            state.out.print(Text(unified_diff(entry.before, entry.after), style="dim"))


@flags_app.command("audit")
def audit(key: Annotated[str | None, typer.Argument(show_default=False)] = None,
          limit: Annotated[int, typer.Option(min=1)] = 20,
          diff: Annotated[bool, typer.Option(help="Show each change as a diff.")] = False,
          as_json: Json = False) -> None:
    """Who changed what, when and why (newest first), for one flag or all of them."""
    _, store = _store()
    entries = store.history(key, limit=limit)
    if as_json:
        state.emit_json([e.to_dict(full=diff) for e in entries])
        return
    if not entries:
        state.out.print("No changes recorded.")
        return
    _print_history(entries, diff=diff)


@flags_app.command("stale")
def stale(days: Annotated[float, typer.Option(min=0, help="Unchanged for at least this many "
                                              "days.")] = 30.0,
          src: Annotated[Path | None, typer.Option(
              "--src", help="Source tree to search for code references (skips .git, "
              "node_modules, virtualenvs and .gitignore'd paths).", show_default=False)] = None,
          env: Annotated[list[str] | None, typer.Option(
              "--env", "-e", help="Only these environments (default: every one the flag "
              "defines).", show_default=False)] = None,
          as_json: Json = False) -> None:
    """Flags that serve one variant to everyone and have not changed for --days: candidates to
    remove from the code (with the places the code still asks for them) and then delete."""
    from rollwave.flags.stale import find_references, stale_flags

    _, store = _store()
    items = [(r.value(), r.updated_at, r.updated_by) for r in store.records()]
    found = stale_flags(items, now=datetime.now(UTC), days=days, environments=env)
    if src is not None:
        located = find_references(src, [s.key for s in found])
        for item in found:
            item.references = located.get(item.key, [])
    if as_json:
        state.emit_json([{"key": s.key, "serves": s.serves, "updated_at": s.updated_at,
                          "updated_by": s.updated_by, "references": [
                              {"path": r.path, "line": r.line, "text": r.text}
                              for r in s.references]} for s in found])
        return
    if not found:
        state.out.print(f"No stale flags (constant and unchanged for {days:g} days).")
        return
    for item in found:
        refs = (f"{len(item.references)} code reference"
                f"{'s' if len(item.references) != 1 else ''}") if src else ""
        state.out.print(Text.assemble((item.key, "bold"), f"  serves {item.describe()}; "
                                      f"unchanged since {item.updated_at:%Y-%m-%d} "
                                      f"({item.updated_by})" + (f"; {refs}" if refs else "")),
                        soft_wrap=True)
        for ref in item.references:
            state.out.print(Text(f"    {ref.path}:{ref.line}: {ref.text}", style="dim"),
                            soft_wrap=True)


@flags_app.command("sync")
def sync(check: Annotated[bool, typer.Option(
             help="Only compare; exit 1 when git and the database differ (for CI).")] = False,
         dry_run: Annotated[bool, typer.Option(help="Show what would change.")] = False,
         force: Annotated[bool, typer.Option(
             help="Overwrite flags changed via the API/CLI since the last sync.")] = False,
         prune: Annotated[bool, typer.Option(
             help="Delete flags whose files were removed from git.")] = False,
         reason: Reason = "", as_json: Json = False) -> None:
    """Import flags/*.yaml (reviewed in git) into the database.

    Each flag remembers the content hash it was synced at, so changes made since through the
    API or CLI show as drift: sync refuses to overwrite them (shown with a diff) unless
    --force, and applies everything else. Exits 1 when something was refused (or, with
    --check, when anything differs).
    """
    from rollwave.flags.sync import sync_flags

    app_, store = _store()
    report = sync_flags(store, app_.root, actor=app_.actor, reason=reason, force=force,
                        prune=prune, dry_run=dry_run or check)
    if as_json:
        state.emit_json(report.to_dict())
    else:
        marks = {"create": "[green]+[/]", "update": "[yellow]~[/]", "delete": "[red]-[/]",
                 "mark": "[green]=[/]", "refused": "[red]![/]", "kept": "[yellow]?[/]"}
        shown = [i for i in report.items if i.action != "none"]
        for item in shown:
            state.out.print(f"{marks.get(item.action, ' ')} {item.kind} {escape(item.key)}: "
                            f"{item.state} — {escape(item.detail)}", soft_wrap=True)
            if item.diff and item.action == "refused":
                state.out.print(Text(item.diff, style="dim"))
        done = "would be written" if not report.applied else "written"
        state.out.print(f"{len(report.changes)} change{'s' if len(report.changes) != 1 else ''}"
                        f" {done}, {len(report.refused)} refused, "
                        f"{sum(1 for i in report.items if i.state == 'in-sync')} in sync.")
    if report.refused or (check and not report.clean):
        raise typer.Exit(1)


# --- rollouts ----------------------------------------------------------------------------------


@rollout_app.command("start")
def rollout_start(
    key: str,
    steps: Annotated[str | None, typer.Option(
        help="Percentages, e.g. 1,5,25,100 (default: the flag's rollout_plan).",
        show_default=False)] = None,
    every: Annotated[str | None, typer.Option(
        help="Time between steps, e.g. 1h (with --steps).", show_default=False)] = None,
    guard: Annotated[list[str] | None, typer.Option(
        help="Guard every step with this verification profile of rollwave.yaml (with "
        "--steps; repeatable).", show_default=False)] = None,
    env: Env = None,
    variant: Annotated[str, typer.Option(help="The variant to roll out.")] = "true",
    baseline: Annotated[str | None, typer.Option(
        help="What the rest gets (default: what it gets now, else the off variant).",
        show_default=False)] = None,
    reason: Reason = "",
) -> None:
    """Start a guarded rollout of a flag (its rollout_plan, or --steps).

    Example: `rollwave flags rollout start new-checkout --steps 1,5,25,100 --every 1h
    --guard default -e production`
    """
    from rollwave.errors import Problem, ValidationFailed
    from rollwave.flags import rollouts
    from rollwave.flags.progressive import plan_from_steps

    app_ = state.open_app()
    plan = None
    if steps:
        try:
            percentages = [float(p) for p in steps.split(",") if p.strip()]
            plan = plan_from_steps(variant, percentages, environment=env, every=every,
                                   guards=guard, baseline=baseline)
        except ValueError as exc:
            raise ValidationFailed([Problem(message=str(exc).splitlines()[0], path="--steps",
                                            hint="e.g. --steps 1,5,25,100 --every 1h")],
                                   what="rollout plan") from None
    record = rollouts.start(app_, key, plan=plan, reason=reason)
    state.out.print(f"[green]Rollout {record.id}[/] of {escape(key)} recorded: "
                    f"{escape(record.describe())}", soft_wrap=True)
    _worker_hint(app_)


def _worker_hint(app_: Any) -> None:
    from datetime import timedelta

    import sqlalchemy as sa

    from rollwave.orchestration.worker import worker_running
    from rollwave.storage.tables import workers

    db = app_.db()
    if db.is_sqlite:
        running = worker_running(app_.state_dir)
    else:
        with db.read() as conn:
            running = conn.execute(sa.select(workers.c.id).where(
                workers.c.heartbeat_at > datetime.now(UTC) - timedelta(seconds=30))
                .limit(1)).first() is not None
    if not running:
        state.out.print("[yellow]No worker is running:[/] flag rollouts advance only while "
                        "`rollwave worker` (or `rollwave serve`) runs for this workspace.",
                        soft_wrap=True)


@rollout_app.command("status")
def rollout_status(ident: Annotated[str | None, typer.Argument(
        help="Rollout id or flag key (default: every active rollout).",
        show_default=False)] = None,
        all_: Annotated[bool, typer.Option("--all", help="Include finished ones.")] = False,
        as_json: Json = False) -> None:
    """Where guarded flag rollouts stand, and why (guard results in words)."""
    from rollwave.flags import rollouts

    app_ = state.open_app()
    records = [rollouts.get(app_, ident)] if ident else rollouts.list_rollouts(
        app_, active_only=not all_)
    if as_json:
        state.emit_json([r.to_dict() for r in records])
        return
    if not records:
        state.out.print("No active flag rollouts (`--all` shows finished ones).")
        return
    for record in records:
        state.out.print(Text.assemble((record.id, "bold"), f"  {record.describe()}"),
                        soft_wrap=True)
        if ident and record.verdict:
            state.out.print(Text(f"    last guard verdict: {record.verdict.get('summary')}",
                                 style="dim"), soft_wrap=True)


def _control(action: str) -> Any:
    def command(ident: Annotated[str, typer.Argument(help="Rollout id or flag key.")],
                reason: Reason = "",
                revert: Annotated[bool, typer.Option(
                    help="(abort) Put the flag back to what it served before the rollout."
                )] = False) -> None:
        from rollwave.flags import rollouts

        app_ = state.open_app()
        if action == "pause":
            record = rollouts.pause(app_, ident, reason=reason)
        elif action == "resume":
            record = rollouts.resume(app_, ident, reason=reason)
        else:
            record = rollouts.abort(app_, ident, reason=reason, revert=revert)
        state.out.print(f"{escape(record.id)}: {escape(record.describe())}", soft_wrap=True)
    command.__doc__ = {
        "pause": "Hold a rollout where it is: no steps, no guard windows, no automatic revert.",
        "resume": "Continue a paused rollout from the flag as it is now (re-measures the "
                  "current step first).",
        "abort": "End a rollout; the flag stays as it is unless --revert.",
    }[action]
    return command


for _action in ("pause", "resume", "abort"):
    rollout_app.command(_action)(_control(_action))

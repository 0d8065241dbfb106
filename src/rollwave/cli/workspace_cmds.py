"""``rollwave init | validate | schema``: the workspace as code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rollwave.cli import state


def register(app: typer.Typer) -> None:
    app.command("init", rich_help_panel="Workspace")(init)
    app.command("validate", rich_help_panel="Workspace")(validate)
    app.command("schema", rich_help_panel="Workspace")(schema)


def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the workspace.")] = Path(),
    project: Annotated[str, typer.Option(help="Project id (lower-case, digits, - _ .).")] =
    "my-saas",
    force: Annotated[bool, typer.Option(help="Overwrite an existing rollwave.yaml.")] = False,
) -> None:
    """Create a starter workspace: rollwave.yaml, a few customers, policies. Commit it to git.

    Example: `rollwave init fleet && cd fleet && rollwave validate`
    """
    from rich.markup import escape

    from rollwave.core.model import is_identifier
    from rollwave.errors import Problem, ValidationFailed
    from rollwave.workspace.scaffold import init_workspace

    if not is_identifier(project):
        raise ValidationFailed([Problem(message=f"'{project}' is not a valid project id",
                                        path="--project",
                                        hint="lower-case letters, digits, '-', '_', '.'")],
                               what="init")
    written = init_workspace(directory, project, force=force)
    state.out.print(f"[green]Created workspace[/] in {escape(str(directory.resolve()))}:",
                    soft_wrap=True)
    for path in written:
        state.out.print(f"  {escape(str(path.relative_to(directory)))}", soft_wrap=True)
    where = "" if directory.resolve() == Path.cwd().resolve() else f"cd {directory} && "
    state.out.print(f"\nNext: edit customers/*.yaml (one file per customer), then "
                    f"`{escape(where)}rollwave validate`.", soft_wrap=True)


def validate(
    as_json: Annotated[bool, typer.Option("--json", help="Print problems as JSON.")] = False,
) -> None:
    """Check every workspace file and report every problem at once, with file:line and a hint.

    Exits 1 when there is any error (warnings alone exit 0), so it fits in CI. One line per
    problem (`file:line:column: message`), never wrapped, so editors and CI logs can link it.
    """
    from rich.markup import escape

    from rollwave.services import workspace as service

    report = service.validate(state.options.workspace)
    if as_json:
        state.emit_json({"ok": report.ok, "problems": [p.to_dict() for p in report.problems],
                         "summary": report.summary})
        raise typer.Exit(0 if report.ok else 1)
    for problem in report.problems:
        colour = "red" if problem.severity == "error" else "yellow"
        label = "" if problem.severity == "error" else "warning: "
        where = f" [dim](at {escape(problem.path)})[/]" if problem.path and problem.file else ""
        state.out.print(f"[{colour}]{escape(problem.location())}[/]: {label}"
                        f"{escape(problem.message)}{where}", soft_wrap=True)
        if problem.hint:
            state.out.print(f"    [dim]hint: {escape(problem.hint)}[/]", soft_wrap=True)
    errors = sum(1 for p in report.problems if p.severity == "error")
    warnings = len(report.problems) - errors
    if report.ok:
        extra = f" ({warnings} warning{'s' if warnings != 1 else ''})" if warnings else ""
        state.out.print(f"[green]✓ workspace is valid[/]: {escape(report.summary)}{extra}",
                        soft_wrap=True)
        return
    extra = f" and {warnings} warning{'s' if warnings != 1 else ''}" if warnings else ""
    state.out.print(f"[red]✗ {errors} error{'s' if errors != 1 else ''}{extra}[/]: fix them "
                    "and run `rollwave validate` again", soft_wrap=True)
    raise typer.Exit(1)


def schema(
    kind: Annotated[str, typer.Argument(
        help="project (rollwave.yaml), customer (customers/*.yaml) or flag.")] = "project",
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Write every schema as <kind>.schema.json into this directory.")] = None,
) -> None:
    """Print the JSON Schema of a workspace file, for editor validation and completion.

    Example (VS Code YAML extension): `rollwave schema --out .schemas`, then map
    `.schemas/project.schema.json` to `rollwave.yaml`.
    """
    from rollwave.workspace.schema import schemas

    all_schemas = schemas()
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, body in all_schemas.items():
            (out_dir / f"{name}.schema.json").write_text(json.dumps(body, indent=2) + "\n")
            state.out.print(f"wrote {out_dir / f'{name}.schema.json'}")
        return
    if kind not in all_schemas:
        from rollwave.errors import Problem, ValidationFailed

        raise ValidationFailed([Problem(message=f"no schema named '{kind}'", path="KIND",
                                        hint=f"choose one of: {', '.join(all_schemas)}")],
                               what="the schema choice")
    state.emit_json(all_schemas[kind])

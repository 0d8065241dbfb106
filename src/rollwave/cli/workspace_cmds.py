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
    from rollwave.core.model import is_identifier
    from rollwave.errors import Problem, ValidationFailed
    from rollwave.workspace.scaffold import init_workspace

    if not is_identifier(project):
        raise ValidationFailed([Problem(message=f"'{project}' is not a valid project id",
                                        path="--project",
                                        hint="lower-case letters, digits, '-', '_', '.'")],
                               what="init")
    written = init_workspace(directory, project, force=force)
    state.out.print(f"[green]Created workspace[/] in {directory.resolve()}:")
    for path in written:
        state.out.print(f"  {path.relative_to(directory)}")
    state.out.print("\nNext: edit customers/*.yaml, then `rollwave validate`.")


def validate(
    as_json: Annotated[bool, typer.Option("--json", help="Print problems as JSON.")] = False,
) -> None:
    """Check every workspace file and report every problem at once, with file:line and a hint.

    Exits 1 when there is any error (warnings alone exit 0), so it fits in CI.
    """
    from rollwave.services import workspace as service

    report = service.validate(state.options.workspace)
    if as_json:
        state.emit_json({"ok": report.ok, "problems": [p.to_dict() for p in report.problems],
                         "summary": report.summary})
        raise typer.Exit(0 if report.ok else 1)
    for problem in report.problems:
        colour = "red" if problem.severity == "error" else "yellow"
        state.out.print(f"[{colour}]{problem.location()}[/]: {problem.message}"
                        + (f" [dim](at {problem.path})[/]" if problem.path and problem.file
                           else ""), markup=True)
        if problem.hint:
            state.out.print(f"    [dim]hint: {problem.hint}[/]")
    if report.ok:
        state.out.print(f"[green]✓ workspace is valid[/]: {report.summary}")
    else:
        errors = sum(1 for p in report.problems if p.severity == "error")
        state.out.print(f"[red]✗ {errors} error{'s' if errors != 1 else ''}[/]")
        raise typer.Exit(1)


def schema(
    kind: Annotated[str, typer.Argument(help="project (rollwave.yaml) or customer.")] = "project",
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
        raise typer.BadParameter(f"choose one of: {', '.join(all_schemas)}", param_hint="KIND")
    state.emit_json(all_schemas[kind])

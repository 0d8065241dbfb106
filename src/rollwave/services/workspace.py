"""Workspace use cases: validate it as a whole (workspace files, configs, flags)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rollwave.errors import Problem, ValidationFailed
from rollwave.flags import validation as flag_validation
from rollwave.workspace.loader import load_workspace


@dataclass(frozen=True)
class ValidationReport:
    ok: bool
    problems: list[Problem]
    summary: str


def _sort_key(problem: Problem) -> tuple[str, int, int]:
    return (problem.file or "", problem.line or 0, problem.column or 0)


def validate(root: Path | None) -> ValidationReport:
    """Every problem in the workspace: files, cross-references, rendered configs."""
    try:
        workspace = load_workspace(root)
    except ValidationFailed as exc:
        return ValidationReport(False, sorted(exc.problems, key=_sort_key), "")
    problems = list(workspace.warnings)
    try:
        from rollwave.config import validate_configs
    except ImportError:
        pass
    else:
        problems.extend(validate_configs(workspace))
    problems.extend(flag_validation.workspace_problems(workspace))
    errors = [p for p in problems if p.severity == "error"]
    fleet = workspace.fleet
    summary = (f"{len(fleet.customers)} customers, {len(fleet)} instances, "
               f"{len(workspace.project.services)} services, "
               f"{len(workspace.project.policies)} policies")
    return ValidationReport(not errors, sorted(problems, key=_sort_key), summary)

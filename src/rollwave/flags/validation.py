"""What ``rollwave validate`` checks about flags: every flag and segment file (format, operands,
regexes, references, prerequisite cycles, each with file:line), the guards of rollout plans
against the verification profiles of ``rollwave.yaml``, and the ``notifications:`` channels.

Bad flag files do not make the workspace unloadable (deploys go on); they fail ``validate``,
``rollwave flags sync`` refuses them, and the API never accepts them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rollwave.errors import Problem, ValidationFailed
from rollwave.flags.files import load_flags_dir
from rollwave.flags.model import FlagSet
from rollwave.yamlio import YamlDocument, load_yaml

if TYPE_CHECKING:
    from rollwave.workspace.loader import Workspace


def workspace_problems(workspace: Workspace) -> list[Problem]:
    """Every flag-related problem of a loaded workspace (errors and warnings)."""
    try:
        flagset = load_flags_dir(workspace.root)
    except ValidationFailed as exc:
        problems = list(exc.problems)
        flagset = FlagSet()
    else:
        problems = []
    problems.extend(_plan_problems(workspace, flagset))
    problems.extend(_notification_problems(workspace))
    return problems


def _doc(workspace: Workspace, key: str) -> YamlDocument | None:
    path = workspace.root / "flags" / f"{key}.yaml"
    try:
        return load_yaml(path, f"flags/{key}.yaml")
    except (ValidationFailed, OSError):
        return None


def _plan_problems(workspace: Workspace, flagset: FlagSet) -> list[Problem]:
    project = workspace.project
    profiles = set(project.verification)
    problems: list[Problem] = []
    for key, flag in sorted(flagset.flags.items()):
        plan = flag.rollout_plan
        if plan is None:
            continue
        doc = _doc(workspace, key)

        def add(path: tuple[str | int, ...], message: str, hint: str,
                severity: str = "error", doc: YamlDocument | None = doc,
                key: str = key) -> None:
            if doc is not None:
                problems.append(doc.problem(("rollout_plan", *path), message, hint=hint,
                                            code="flag.rollout", severity=severity))
            else:
                problems.append(Problem(message=message, file=f"flags/{key}.yaml", hint=hint,
                                        code="flag.rollout", severity=severity))
        for index, step in enumerate(plan.steps):
            for position, name in enumerate(step.guards):
                if name not in plan.guards and name not in profiles:
                    add(("steps", index, "guards", position),
                        f"guard '{name}' is neither a guard of the plan nor a verification "
                        "profile of rollwave.yaml",
                        "define it under rollout_plan.guards, or use one of the profiles: "
                        + (", ".join(sorted(profiles)) or "none"))
        for name, guard in plan.guards.items():
            if guard.profile is not None and guard.profile not in profiles:
                add(("guards", name, "profile"), f"verification profile '{guard.profile}' is "
                    "not defined in rollwave.yaml",
                    "profiles: " + (", ".join(sorted(profiles)) or "none"))
        if plan.environment is not None and plan.environment not in project.environments:
            add(("environment",), f"'{plan.environment}' is not an environment of "
                "rollwave.yaml, so guards measure instances of every environment",
                "name a rollwave.yaml environment, or give each guard `instances:`",
                severity="warning")
    return problems


def _notification_problems(workspace: Workspace) -> list[Problem]:
    from rollwave.adapters.notify import channel_problems

    settings = workspace.project.notifications
    if not settings:
        return []
    doc = workspace.documents.get("rollwave.yaml")
    out = []
    for message in channel_problems(settings):
        name = message.split("'")[1] if message.startswith("channel '") else None
        path: tuple[str, ...] = ("notifications", name) if name else ("notifications",)
        hint = "see docs/flags.md (Notifications) for the channel settings"
        out.append(doc.problem(path, message, hint=hint, code="notify.invalid") if doc else
                   Problem(message=message, file="rollwave.yaml", hint=hint,
                           code="notify.invalid"))
    return out

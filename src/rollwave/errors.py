"""Every error Rollwave raises on purpose, with a stable code and a next step.

The hierarchy::

    RollwaveError                      rollwave.error
    ├── WorkspaceError                 workspace.*
    │   ├── WorkspaceNotFound          workspace.not_found
    │   └── ValidationFailed           workspace.invalid    (carries every Problem at once)
    ├── NotFound                       *.not_found
    │   ├── ReleaseNotFound            release.not_found
    │   ├── RolloutNotFound            rollout.not_found
    │   └── InstanceNotFound           instance.not_found
    ├── Conflict                       *.conflict
    │   ├── ReleaseExists              release.exists
    │   └── InvalidTransition          rollout.invalid_transition
    ├── PlanError                      plan.invalid
    ├── ConfigError                    config.invalid
    ├── SecretError                    secret.unresolved
    ├── DeployError                    deploy.failed
    ├── PluginNotFound                 plugin.unknown_kind
    ├── VerificationError              verify.error
    ├── FlagError                      flag.invalid
    ├── AuthError                      auth.required
    │   └── PermissionDenied           auth.forbidden
    ├── OrchestratorBusy               orchestrator.busy
    └── StorageError                   storage.unavailable

Vendor exceptions (SQLAlchemy, botocore, httpx, ruamel) are translated into these at the edge
of the adapter that calls the vendor; the CLI prints ``code: message`` and the hint, never a
traceback, and exits non-zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with user input, located as precisely as the input allows.

    Example::

        Problem(message="unknown environment 'prd'", file="customers/acme.yaml", line=7,
                hint="declare it under environments: in rollwave.yaml or fix the spelling")
    """

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    path: str | None = None
    hint: str | None = None
    code: str = "workspace.invalid"
    severity: str = "error"  # "error" blocks; "warning" is shown but lets the command go on

    def location(self) -> str:
        """``file:line:column`` as far as known, or the JSON-ish path, or ``-``."""
        if self.file:
            loc = self.file
            if self.line is not None:
                loc += f":{self.line}"
                if self.column is not None:
                    loc += f":{self.column}"
            return loc
        return self.path or "-"

    def render(self) -> str:
        """A single human line, with the hint on a second line when there is one."""
        prefix = "warning: " if self.severity == "warning" else ""
        text = f"{self.location()}: {prefix}{self.message}"
        if self.path and self.file:
            text += f" (at {self.path})"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, object]:
        """A JSON-friendly form for the API."""
        return {
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "hint": self.hint,
            "code": self.code,
            "severity": self.severity,
        }


class RollwaveError(Exception):
    """Root of every error Rollwave raises on purpose.

    ``code`` is stable (scripts and the API may match on it); ``hint`` says what to do next.
    """

    code: ClassVar[str] = "rollwave.error"
    default_hint: ClassVar[str | None] = None
    http_status: ClassVar[int] = 400

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def render(self) -> str:
        """``code: message`` followed by the hint, as the CLI prints it."""
        text = f"{self.code}: {self.message}"
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, object]:
        """A JSON body for API error responses."""
        return {"code": self.code, "message": self.message, "hint": self.hint}


class WorkspaceError(RollwaveError):
    """The workspace directory cannot be used as it is."""

    code = "workspace.error"


class WorkspaceNotFound(WorkspaceError):
    """No ``rollwave.yaml`` here or in any parent directory."""

    code = "workspace.not_found"
    default_hint = "run `rollwave init DIR` to create one, or pass --workspace DIR"


class ValidationFailed(WorkspaceError):
    """User input has problems; all of them are reported at once, each with its location."""

    code = "workspace.invalid"
    http_status = 422

    def __init__(self, problems: Sequence[Problem], *, what: str = "workspace") -> None:
        self.problems = list(problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            f"{what} has {count} {noun}",
            hint="fix each problem listed (file:line: message), then run `rollwave validate`",
        )

    def render(self) -> str:
        lines = [f"{self.code}: {self.message}"]
        lines.extend(f"  {p.render()}" for p in self.problems)
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        body = super().to_dict()
        body["problems"] = [p.to_dict() for p in self.problems]
        return body


class NotFound(RollwaveError):
    """Something named by the user does not exist."""

    code = "rollwave.not_found"
    http_status = 404


class ReleaseNotFound(NotFound):
    code = "release.not_found"
    default_hint = "list releases with `rollwave release list`"


class RolloutNotFound(NotFound):
    code = "rollout.not_found"
    default_hint = "list rollouts with `rollwave history`"


class InstanceNotFound(NotFound):
    code = "instance.not_found"
    default_hint = "instances are named CUSTOMER/INSTANCE; see customers/*.yaml"


class Conflict(RollwaveError):
    """The request contradicts the current state."""

    code = "rollwave.conflict"
    http_status = 409


class ReleaseExists(Conflict):
    code = "release.exists"
    default_hint = "releases are immutable: pick a new name, e.g. add a suffix"


class InvalidTransition(Conflict):
    code = "rollout.invalid_transition"
    default_hint = "check the rollout's state with `rollwave status ROLLOUT`"


class PlanError(RollwaveError):
    code = "plan.invalid"


class ConfigError(RollwaveError):
    code = "config.invalid"


class SecretError(RollwaveError):
    code = "secret.unresolved"
    default_hint = "check the secret reference (env:NAME, file:PATH, aws-sm:ARN) and its access"


class DeployError(RollwaveError):
    code = "deploy.failed"


class PluginNotFound(RollwaveError):
    code = "plugin.unknown_kind"

    def __init__(self, port: str, kind: str, known: Iterable[str]) -> None:
        names = ", ".join(sorted(known)) or "none"
        super().__init__(
            f"no {port} of kind '{kind}'",
            hint=f"use one of: {names}",
        )


class VerificationError(RollwaveError):
    code = "verify.error"


class FlagError(RollwaveError):
    code = "flag.invalid"


class AuthError(RollwaveError):
    code = "auth.required"
    http_status = 401
    default_hint = "send `Authorization: Bearer TOKEN` (create one with `rollwave token create`)"


class PermissionDenied(AuthError):
    code = "auth.forbidden"
    http_status = 403
    default_hint = "ask an admin for a role that allows this action"


class OrchestratorBusy(RollwaveError):
    code = "orchestrator.busy"
    http_status = 409


class StorageError(RollwaveError):
    code = "storage.unavailable"
    http_status = 503
    default_hint = "check --database / ROLLWAVE_DATABASE_URL and that the database is reachable"


def all_error_classes() -> list[type[RollwaveError]]:
    """Every concrete error class, for tests that codes are unique and hints present."""
    seen: list[type[RollwaveError]] = []
    stack: list[type[RollwaveError]] = [RollwaveError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen

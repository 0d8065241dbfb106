"""The Deployer port: put a version and config on one instance, and say what it runs now.

A deployer is level-triggered: the orchestrator calls :meth:`Deployer.actual` before acting and
only calls :meth:`Deployer.deploy` when the instance differs from what is desired, so a deploy
that is repeated after a crash is harmless. Implementations live in
``rollwave/adapters/deployers/`` (one file per kind) and register in that package's registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rollwave.core.fleet import FleetInstance


@dataclass(frozen=True, slots=True)
class DesiredState:
    """What an instance should run: per service, a version and a rendered config."""

    versions: Mapping[str, str]
    configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    config_hashes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ActualState:
    """What an instance runs now, as far as the deployer can observe it.

    A service absent from ``versions`` is not running (or unknown). ``config_hashes`` holds the
    hash the instance reports for its loaded config, when it can report one.
    """

    versions: Mapping[str, str] = field(default_factory=dict)
    config_hashes: Mapping[str, str] = field(default_factory=dict)
    detail: str = ""

    def satisfies(self, desired: DesiredState) -> bool:
        """True when every desired service runs the desired version and config hash."""
        for service, version in desired.versions.items():
            if self.versions.get(service) != version:
                return False
            want = desired.config_hashes.get(service)
            if want is not None and self.config_hashes.get(service) != want:
                return False
        return True


@dataclass(frozen=True, slots=True)
class DeployContext:
    """Per-call context: where local state lives, what to redact, where log lines go."""

    state_dir: Path
    redact: Sequence[str] = ()
    log: Callable[[str], None] = lambda line: None
    attempt: int = 1
    reason: str = "deploy"  # "deploy" or "rollback"


@dataclass(frozen=True, slots=True)
class DeployResult:
    """The outcome of one deploy call; ``log`` is the captured output, already redacted."""

    ok: bool
    message: str
    log: str = ""


class Deployer(Protocol):
    """Deploys versions and configs to instances of one kind of target."""

    def actual(self, instance: FleetInstance, services: Sequence[str]) -> ActualState:
        """Read what ``instance`` runs now for ``services`` (never raises for a down instance)."""
        ...

    def deploy(self, instance: FleetInstance, desired: DesiredState,
               ctx: DeployContext) -> DeployResult:
        """Make ``instance`` run ``desired``; returns a result rather than raising on failure."""
        ...

    def endpoint(self, instance: FleetInstance, service: str) -> str | None:
        """Base URL (``http://host:port``) for health, smoke and metrics, if it has one."""
        ...

    def stop(self, instance: FleetInstance) -> None:
        """Stop everything this deployer runs for ``instance`` (used by demos and tests)."""
        ...


def redact(text: str, secrets: Sequence[str]) -> str:
    """Replace every secret value in ``text`` with ``***`` (longest first, blanks ignored)."""
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text

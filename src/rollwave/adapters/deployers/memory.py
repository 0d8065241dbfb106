"""The ``memory`` deployer: instances that exist only in this process, for tests and dry runs.

Options let a test script behaviour: ``fail_versions`` makes deploying those versions fail;
``delay`` sleeps per deploy. State is shared per state directory, so two deployer objects built
for the same workspace see the same instances.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from rollwave.core.fleet import FleetInstance
from rollwave.ports.deployer import ActualState, DeployContext, DeployResult, DesiredState

if TYPE_CHECKING:
    from rollwave.adapters.deployers import DeployerEnvironment


class MemoryOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_versions: list[str] = []
    delay: float = 0.0


_STATE: dict[Path, dict[str, tuple[dict[str, str], dict[str, str]]]] = {}
_LOCK = threading.Lock()


class MemoryDeployer:
    """Keeps each instance's versions and config hashes in a dict."""

    def __init__(self, options: MemoryOptions, env: DeployerEnvironment) -> None:
        self.options = options
        self.key = env.state_dir
        self.deploy_count = 0
        with _LOCK:
            self.instances = _STATE.setdefault(self.key, {})

    def actual(self, instance: FleetInstance, services: Sequence[str]) -> ActualState:
        with _LOCK:
            versions, hashes = self.instances.get(instance.key, ({}, {}))
            return ActualState(versions={s: v for s, v in versions.items() if s in services},
                               config_hashes={s: h for s, h in hashes.items() if s in services})

    def deploy(self, instance: FleetInstance, desired: DesiredState,
               ctx: DeployContext) -> DeployResult:
        if self.options.delay:
            time.sleep(self.options.delay)
        bad = sorted(v for v in desired.versions.values() if v in self.options.fail_versions)
        if bad:
            return DeployResult(ok=False, message=f"version {bad[0]} fails to start (scripted)")
        with _LOCK:
            self.deploy_count += 1
            versions, hashes = self.instances.setdefault(instance.key, ({}, {}))
            versions.update(desired.versions)
            hashes.update(desired.config_hashes)
        ctx.log(f"deployed {dict(desired.versions)} to {instance.key}")
        return DeployResult(ok=True, message="deployed")

    def endpoint(self, instance: FleetInstance, service: str) -> str | None:
        return None

    def stop(self, instance: FleetInstance) -> None:
        with _LOCK:
            self.instances.pop(instance.key, None)


def _factory(options: MemoryOptions, env: DeployerEnvironment) -> MemoryDeployer:
    return MemoryDeployer(options, env)


def _register() -> None:
    from rollwave.adapters.deployers import registry

    registry.register("memory", _factory, MemoryOptions,
                      "instances held in memory; for tests and dry runs")


_register()

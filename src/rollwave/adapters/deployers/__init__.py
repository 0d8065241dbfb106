"""Deployers, one module per kind, registered by kind (``local``, ``command``, ``memory``)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rollwave.core.model import Service
from rollwave.ports.deployer import Deployer
from rollwave.ports.registry import Registry

registry: Registry[Deployer] = Registry("deployer")


@dataclass(frozen=True)
class DeployerEnvironment:
    """What every deployer may need from the workspace it serves."""

    state_dir: Path
    services: Mapping[str, Service] = field(default_factory=dict)
    python: str = sys.executable


# Importing the adapters registers them.
from rollwave.adapters.deployers import command, local, memory  # noqa: E402, F401

__all__ = ["DeployerEnvironment", "memory", "registry"]

"""Render every instance's config for a release, content-addressed, ready to snapshot.

This is the one place releases ask for rendered configs (from :mod:`rollwave.config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollwave.config import render_fleet
from rollwave.core.planning import KEEP_VERSION
from rollwave.errors import Problem
from rollwave.workspace.loader import Workspace


@dataclass(frozen=True)
class RenderedRelease:
    """Per (instance, service): the config hash; per hash: the content (secret refs only)."""

    hashes: Mapping[tuple[str, str], str]
    blobs: Mapping[str, Any]
    problems: list[Problem]


def render_release(workspace: Workspace, versions: Mapping[str, str],
                   current: Mapping[str, Mapping[str, str]] | None = None) -> RenderedRelease:
    """Render (and validate) every instance's config for every service it runs.

    ``versions`` may say :data:`KEEP_VERSION` for a service (config-only releases); then each
    instance is rendered as of the version it runs now (``current``: instance → service →
    version), so versioned schemas and ``{{ version }}`` in templates see the real version.
    """
    explicit = {s: v for s, v in versions.items() if v != KEEP_VERSION}
    kept = {s for s, v in versions.items() if v == KEEP_VERSION}
    instance_versions: dict[tuple[str, str], str] = {}
    for instance, by_service in (current or {}).items():
        for service, version in by_service.items():
            if service in kept:
                instance_versions[(instance, service)] = version
    rendered, problems = render_fleet(workspace, versions=explicit,
                                      instance_versions=instance_versions)
    return RenderedRelease(hashes={key: cfg.hash for key, cfg in rendered.items()},
                           blobs={cfg.hash: cfg.values for cfg in rendered.values()},
                           problems=list(problems))

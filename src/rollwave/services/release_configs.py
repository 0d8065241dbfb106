"""Render every instance's config for a release, content-addressed, ready to snapshot.

This is the one place releases and rollouts ask for rendered configs; it delegates to the
layered configuration engine in :mod:`rollwave.config` when that is present.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollwave.core.hashing import config_hash
from rollwave.errors import Problem
from rollwave.workspace.loader import Workspace


@dataclass(frozen=True)
class RenderedRelease:
    """Per (instance, service): the config hash; per hash: the content (secret refs only)."""

    hashes: Mapping[tuple[str, str], str]
    blobs: Mapping[str, Any]
    problems: list[Problem]


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def render_release(workspace: Workspace, versions: Mapping[str, str]) -> RenderedRelease:
    """Render the config of every instance for every service it runs."""
    import importlib

    try:
        layered: Any = importlib.import_module("rollwave.config")
    except ImportError:  # the layered engine is optional while it is being built
        layered = None
    if layered is not None and hasattr(layered, "render_fleet"):
        rendered, problems = layered.render_fleet(workspace, versions=dict(versions))
        return RenderedRelease(hashes={key: cfg.hash for key, cfg in rendered.items()},
                               blobs={cfg.hash: cfg.values for cfg in rendered.values()},
                               problems=list(problems))
    hashes: dict[tuple[str, str], str] = {}
    blobs: dict[str, Any] = {}
    for inst in workspace.fleet:
        customer = workspace.fleet.customers[inst.customer]
        spec = customer.instances[inst.name]
        for service in inst.services:
            values = _deep_merge(dict(customer.config.get(service, {})),
                                 spec.config.get(service, {}))
            digest = config_hash(values)
            hashes[(inst.key, service)] = digest
            blobs[digest] = values
    return RenderedRelease(hashes=hashes, blobs=blobs, problems=[])

"""Layered, validated, per-instance configuration (see docs/configuration.md).

Layers per service, lowest first: ``config/<service>/defaults.yaml`` → ``environments/<env>``
→ ``overlays/*`` whose ``match:`` selects the instance → the customer's ``config:`` → the
instance's ``config:``. Values may be Jinja templates over the instance's facts; secrets are
``{$secret: "kind:reference"}`` and stay references until deploy time.

The public API::

    render_instance(workspace, "acme/prod", "api", version="2.1.0") -> RenderedConfig
    render_fleet(workspace, services=None, versions=None) -> (configs, problems)
    validate_configs(workspace, versions=None) -> problems
    explain(workspace, "acme/prod", "api", "db.pool_size") -> Explanation (.render_text())
    diff(old, new) -> [Change];  release_diff(old_configs, new_configs);  group_diffs(diffs)
    resolve_secrets(values, resolvers) -> (resolved values, secret values for redaction)

Importing this package registers :func:`check_config_sources` with the workspace loader, so
``load_workspace`` reports problems in config files (not in rendered values: rendering and
validating every config is :func:`validate_configs`' job).
"""

from __future__ import annotations

from rollwave.config.diff import (
    Change,
    DiffGroup,
    DiffSummary,
    diff,
    group_diffs,
    release_diff,
)
from rollwave.config.explain import Explanation, KeyExplanation, explain, explain_rendered
from rollwave.config.model import (
    DEFAULT_LIMITS,
    ConfigIssue,
    ConfigLimits,
    LayerRef,
    RenderedConfig,
    Setting,
)
from rollwave.config.render import (
    FleetReport,
    Renderer,
    issues_to_problems,
    render_fleet,
    render_instance,
    render_report,
    resolve_instance_key,
    validate_configs,
)
from rollwave.config.secrets import redact, resolve_secrets, secret_references
from rollwave.config.sources import check_config_sources, load_sources
from rollwave.workspace import loader as _loader

if check_config_sources not in _loader.EXTRA_CHECKS:
    _loader.EXTRA_CHECKS.append(check_config_sources)

__all__ = [
    "DEFAULT_LIMITS",
    "Change",
    "ConfigIssue",
    "ConfigLimits",
    "DiffGroup",
    "DiffSummary",
    "Explanation",
    "FleetReport",
    "KeyExplanation",
    "LayerRef",
    "RenderedConfig",
    "Renderer",
    "Setting",
    "check_config_sources",
    "diff",
    "explain",
    "explain_rendered",
    "group_diffs",
    "issues_to_problems",
    "load_sources",
    "redact",
    "release_diff",
    "render_fleet",
    "render_instance",
    "render_report",
    "resolve_instance_key",
    "resolve_secrets",
    "secret_references",
    "validate_configs",
]

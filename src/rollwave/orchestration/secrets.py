"""Secret resolution at deploy time, from the workspace's ``secrets:`` settings.

Rendered configs keep references (``{$secret: "env:DB_PASSWORD"}``); only here, right before
a deployer writes an instance's config, are they replaced by values. The values go to the
deployer and to the redaction list, never to the database or the event log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollwave.orchestration.runtime import SecretResolver
from rollwave.services.context import App


def workspace_secret_resolver(app: App) -> SecretResolver:
    """A resolver bound to the workspace's ``secrets:`` settings (built on first use)."""
    from rollwave.adapters.secrets import SecretEnvironment, build_resolvers
    from rollwave.config import resolve_secrets

    cache: dict[str, Any] = {}

    def resolve(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        if "resolvers" not in cache:
            settings = app.workspace().project.secrets
            cache["resolvers"] = build_resolvers(settings, SecretEnvironment(base_dir=app.root))
        resolved, secrets = resolve_secrets(values, cache["resolvers"])
        return resolved, list(secrets)

    return resolve

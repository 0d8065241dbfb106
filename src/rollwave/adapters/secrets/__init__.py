"""Secret resolvers, one module per kind, registered by kind (``env``, ``file``, ``aws-sm``).

:func:`build_resolvers` turns the workspace's ``secrets:`` settings (kind → options, e.g.
``{"aws-sm": {"region": "eu-west-1"}}``) into :class:`~rollwave.ports.secrets.SecretResolvers`
holding every registered kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rollwave.errors import ConfigError
from rollwave.ports.registry import Registry
from rollwave.ports.secrets import SecretResolver, SecretResolvers

registry: Registry[SecretResolver] = Registry("secret resolver")


@dataclass(frozen=True)
class SecretEnvironment:
    """What resolvers may need: the workspace root (``file:``) and the environment (``env:``)."""

    base_dir: Path | None = None
    environ: Mapping[str, str] | None = None


def build_resolvers(settings: Mapping[str, Mapping[str, Any]] | None = None,
                    environment: SecretEnvironment | None = None) -> SecretResolvers:
    """A resolver for every registered kind, with options from ``settings`` by kind.

    Raises ConfigError naming the kind and option when options are invalid or a kind is unknown.
    """
    env = environment or SecretEnvironment()
    settings = settings or {}
    unknown = sorted(set(settings) - set(registry.kinds()))
    if unknown:
        raise ConfigError(f"secrets: unknown secret kind '{unknown[0]}'",
                          hint="known kinds: " + ", ".join(registry.kinds()))
    built: dict[str, SecretResolver] = {}
    for kind in registry.kinds():
        options = dict(settings.get(kind) or {})
        try:
            built[kind] = registry.create(kind, options, env)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(options)'}: "
                                 f"{e['msg']}" for e in exc.errors())
            raise ConfigError(f"secrets: {kind} has bad options: {problems}",
                              hint="options: " + ", ".join(registry.options_model(kind)
                                                           .model_fields)) from None
    return SecretResolvers(built)


# Importing the adapters registers them.
from rollwave.adapters.secrets import aws_sm, env, file  # noqa: E402

registry.register("env", env.create, env.EnvOptions, "environment variables: env:NAME")
registry.register("file", file.create, file.FileOptions, "files: file:PATH")
registry.register("aws-sm", aws_sm.create, aws_sm.AwsSecretsManagerOptions,
                  "AWS Secrets Manager: aws-sm:NAME_OR_ARN[#json-key]")

__all__ = ["SecretEnvironment", "build_resolvers", "registry"]

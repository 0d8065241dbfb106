"""``env:NAME`` — a secret from the deploying process's environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from rollwave.errors import SecretError


class EnvOptions(BaseModel):
    """Options of the ``env`` resolver: an optional prefix added to every name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: str = ""


class EnvSecretResolver:
    """Reads ``NAME`` (with the configured prefix) from ``environ`` (default ``os.environ``)."""

    def __init__(self, options: EnvOptions | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.prefix = options.prefix if options else ""
        self.environ = environ if environ is not None else os.environ

    def resolve(self, body: str) -> str:
        name = self.prefix + body
        value = self.environ.get(name)
        if value is None:
            raise SecretError(f"environment variable {name} is not set (secret env:{body})",
                              hint=f"export {name}=... in the environment Rollwave deploys from")
        return value


def create(options: Any, environment: Any) -> EnvSecretResolver:
    """Registry factory (``environment.environ`` overrides ``os.environ`` when set)."""
    return EnvSecretResolver(options, getattr(environment, "environ", None))

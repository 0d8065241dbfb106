"""A registry of plug-in implementations keyed by the ``kind:`` users write in YAML.

Each port (deployers, metric sources, secret resolvers, notifiers) has one :class:`Registry`;
an adapter module registers a factory and the pydantic model of its options. Validation asks
the registry for the options model so a typo in a deployer's settings is reported with file
and line like any other workspace problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from rollwave.errors import PluginNotFound

T = TypeVar("T")


class NoOptions(BaseModel):
    """Options model for kinds that take none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    kind: str
    factory: Callable[[Any, Any], T]
    options: type[BaseModel]
    description: str


class Registry(Generic[T]):
    """Implementations of one port, by kind."""

    def __init__(self, port: str) -> None:
        self.port = port
        self._entries: dict[str, Entry[T]] = {}

    def register(self, kind: str, factory: Callable[[Any, Any], T],
                 options: type[BaseModel] = NoOptions, description: str = "") -> None:
        """Register ``factory(options, environment) -> implementation`` under ``kind``."""
        self._entries[kind] = Entry(kind, factory, options, description)

    def kinds(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, kind: str) -> Entry[T]:
        try:
            return self._entries[kind]
        except KeyError:
            raise PluginNotFound(self.port, kind, self._entries) from None

    def options_model(self, kind: str) -> type[BaseModel]:
        return self.entry(kind).options

    def create(self, kind: str, options: dict[str, Any], environment: Any) -> T:
        """Validate ``options`` (without ``kind``) and build the implementation."""
        entry = self.entry(kind)
        parsed = entry.options.model_validate({k: v for k, v in options.items() if k != "kind"})
        return entry.factory(parsed, environment)

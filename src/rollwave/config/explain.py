"""``rollwave config explain``: the final value of each key and every layer that set it.

:func:`explain` returns data (for the CLI, the API and tests); :meth:`Explanation.render_text`
is a plain-text rendering without Rich markup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rollwave.config.model import (
    SECRET_MARKER,
    ConfigLimits,
    LayerRef,
    Provenance,
    RenderedConfig,
    Setting,
    display_path,
    parse_key,
)
from rollwave.config.render import render_instance
from rollwave.errors import ConfigError
from rollwave.workspace.loader import Workspace
from rollwave.yamlio import JsonPath


@dataclass(frozen=True, slots=True)
class KeyExplanation:
    """One key path: its final value and every setting, lowest layer first (the last won)."""

    path: str
    value: Any
    settings: tuple[Setting, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "value": self.value, "settings": [
            {"layer": s.layer, "file": s.file, "line": s.line, "value": s.value,
             "action": s.action} for s in self.settings]}


@dataclass(frozen=True, slots=True)
class Explanation:
    """Where every value of one instance's config for one service came from."""

    instance: str
    service: str
    version: str | None
    hash: str
    schema: str | None
    layers: tuple[LayerRef, ...]
    keys: tuple[KeyExplanation, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"instance": self.instance, "service": self.service, "version": self.version,
                "hash": self.hash, "schema": self.schema,
                "layers": [layer.to_dict() for layer in self.layers],
                "keys": [key.to_dict() for key in self.keys]}

    def render_text(self, width: int = 60) -> str:
        """Plain text: a header, the layers that applied, then each key and its settings."""
        head = f"{self.instance} · {self.service}"
        if self.version:
            head += f" · version {self.version}"
        lines = [f"{head} · config {self.hash}",
                 f"schema: {self.schema or '(none)'}", "layers, lowest first:"]
        for layer in self.layers:
            label = layer.kind if layer.kind == "defaults" else f"{layer.kind} {layer.name}"
            extra = f"   match: {layer.match}" if layer.match else ""
            if layer.priority:
                extra += f" (priority {layer.priority})"
            lines.append(f"  {label:<28} {layer.file}{extra}")
        for key in self.keys:
            lines.append("")
            lines.append(f"{key.path} = {show(key.value, width)}")
            for index, setting in enumerate(key.settings):
                won = "   <- final" if index == len(key.settings) - 1 else ""
                lines.append(f"  {setting.action:<9} {setting.layer:<26} "
                             f"{setting.location():<40} {show(setting.value, width)}{won}")
        return "\n".join(lines)


def show(value: Any, width: int = 60) -> str:
    """A one-line JSON rendering; secret references print as ``secret(kind:ref)``."""
    if isinstance(value, dict) and set(value) == {SECRET_MARKER}:
        text = f"secret({value[SECRET_MARKER]})"
    else:
        text = json.dumps(value, ensure_ascii=False, sort_keys=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _value_at(values: Any, path: JsonPath) -> Any:
    node = values
    for part in path:
        node = node[part]
    return node


def _ordered(values: Any, provenance: Provenance, path: JsonPath = ()) -> list[JsonPath]:
    found: list[JsonPath] = [path] if path in provenance else []
    if isinstance(values, dict) and set(values) != {SECRET_MARKER}:
        for key, value in values.items():
            found.extend(_ordered(value, provenance, (*path, key)))
    elif isinstance(values, list):
        for index, value in enumerate(values):
            found.extend(_ordered(value, provenance, (*path, index)))
    return found


def explain_rendered(config: RenderedConfig, key: str | None = None) -> Explanation:
    """The explanation of an already rendered config (``key`` narrows it to one subtree)."""
    provenance = config.provenance
    paths = _ordered(config.values, provenance)
    if key:
        wanted = parse_key(key)
        paths = [p for p in paths if p[: len(wanted)] == wanted]
        if not paths:
            top = ", ".join(list(config.values)[:20]) or "(none)"
            raise ConfigError(f"{config.instance} has no key '{key}' in its {config.service} "
                              "config", hint=f"top-level keys: {top}")
    keys = tuple(KeyExplanation(path=display_path(p), value=_value_at(config.values, p),
                                settings=provenance[p]) for p in paths)
    return Explanation(instance=config.instance, service=config.service, version=config.version,
                       hash=config.hash, schema=config.schema, layers=config.layers, keys=keys)


def explain(workspace: Workspace, instance_key: str, service: str, key: str | None = None, *,
            version: str | None = None, limits: ConfigLimits | None = None) -> Explanation:
    """Where each value of ``instance_key``'s ``service`` config comes from.

    ``instance_key`` is ``CUSTOMER/INSTANCE`` or a customer with one instance; ``key`` (e.g.
    ``db.pool_size`` or ``users[0]``) limits the answer to that key and the keys below it.
    Raises InstanceNotFound, ConfigError (unknown service or key) or ValidationFailed (the
    config cannot be rendered, with every problem).
    """
    config = render_instance(workspace, instance_key, service, version=version, limits=limits)
    return explain_rendered(config, key)

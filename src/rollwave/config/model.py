"""Data types of the configuration engine: compiled layers, markers, settings, rendered configs.

A *layer* is one source of values for one service (``config/<service>/defaults.yaml``, an
environment file, an overlay, a customer's or an instance's ``config:`` map), compiled into a
*tree*: plain JSON-like data in which three marker objects stand for what needs more than
copying:

- :class:`Template` — a string holding Jinja syntax, rendered per instance;
- :class:`SecretRef` — ``{$secret: "kind:reference"}``, kept as a reference until deploy time;
- :class:`ListOp` — ``{$merge: append, $items: [...]}``, a list with an explicit merge mode.

Trees are shared between instances and never mutated once built; every rendered value that did
not change is the same object in every config that holds it (see docs/configuration.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rollwave.core import tagexpr
from rollwave.yamlio import JsonPath, YamlDocument, format_path

SECRET_MARKER = "$secret"  # noqa: S105 - a marker key, not a password
MERGE_MARKER = "$merge"
ITEMS_MARKER = "$items"
MARKER_KEYS = frozenset({SECRET_MARKER, MERGE_MARKER, ITEMS_MARKER})

LayerKind = Literal["defaults", "environment", "overlay", "customer", "instance"]


@dataclass(frozen=True, slots=True)
class ConfigLimits:
    """Bounds that keep hostile or mistaken input from hanging or exhausting a render."""

    max_file_bytes: int = 4 * 1024 * 1024
    """Largest config layer or schema file read."""
    max_nodes: int = 200_000
    """Most values one config file may expand to (alias bombs stop here)."""
    max_depth: int = 64
    """Deepest nesting in a config file."""
    max_value_chars: int = 256 * 1024
    """Largest value one template may produce, and largest string or list it may build with
    ``*``, ``+``, ``join`` or ``replace`` on the way."""
    max_reference_depth: int = 16
    """Longest chain of templates reading other templated config values."""


DEFAULT_LIMITS = ConfigLimits()


@dataclass(frozen=True, slots=True)
class MergeMode:
    """How a list in a higher layer combines with the list below it.

    ``replace`` (the default) takes the higher list; ``append`` adds its items after the lower
    ones; ``by`` merges items that are mappings by the value of ``key`` and appends new ones.
    """

    kind: Literal["replace", "append", "by"]
    key: str | None = None

    def describe(self) -> str:
        return f"by {self.key}" if self.kind == "by" else self.kind


REPLACE = MergeMode("replace")
APPEND = MergeMode("append")

ModeTree = dict[str, Any]
"""Declared list modes by path: nested dicts; ``"*"`` matches any key or index, ``""`` holds the
:class:`MergeMode` for the path that ends there."""


class Template:
    """A string value with Jinja syntax, rendered per instance; ``line`` is where it was written."""

    __slots__ = ("file", "line", "source")

    def __init__(self, source: str, file: str, line: int | None) -> None:
        self.source = source
        self.file = file
        self.line = line

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


class SecretRef:
    """``{$secret: "kind:reference"}``: resolved only at deploy time, never rendered.

    ``reference`` is the text after ``$secret:``, or a :class:`Template` when it uses instance
    facts (``aws-sm:prod/{{ customer }}/db``). ``final`` is the rendered form for a fixed
    reference, built once and shared.
    """

    __slots__ = ("final", "reference")

    def __init__(self, reference: str | Template) -> None:
        self.reference = reference
        self.final: dict[str, str] | None = (
            {SECRET_MARKER: reference} if isinstance(reference, str) else None)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretRef) and other.reference == self.reference

    def __hash__(self) -> int:
        return hash(("secret", str(self.reference)))

    def written(self) -> dict[str, str]:
        """The reference as the user wrote it."""
        ref = self.reference
        return {SECRET_MARKER: ref.source if isinstance(ref, Template) else ref}

    def __repr__(self) -> str:
        return f"SecretRef({self.reference!r})"


class ListOp:
    """A list with an explicit merge mode (``{$merge: append, $items: [...]}``)."""

    __slots__ = ("items", "mode")

    def __init__(self, mode: MergeMode, items: list[Any]) -> None:
        self.mode = mode
        self.items = items

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ListOp) and (other.mode, other.items) == (self.mode, self.items)

    def __hash__(self) -> int:  # pragma: no cover - never used as a key
        return id(self)

    def __repr__(self) -> str:
        return f"ListOp({self.mode.describe()}, {self.items!r})"


@dataclass(frozen=True, slots=True, eq=False)
class Layer:
    """One compiled layer of values for one service.

    ``base`` is where the values sit inside ``doc`` (``("values",)`` for layer files,
    ``("config", service)`` for a customer), so ``doc.line_of((*base, *path))`` locates a value.
    """

    kind: LayerKind
    name: str
    file: str
    tree: dict[str, Any]
    doc: YamlDocument | None = None
    base: JsonPath = ()
    has_ops: bool = False
    priority: int = 0
    match: str | None = None
    expr: tagexpr.Expr | None = None

    def line_of(self, path: JsonPath) -> int | None:
        """Line of ``path`` (relative to the layer's values) in its file."""
        if self.doc is None:
            return None
        return self.doc.line_of((*self.base, *path))

    @property
    def label(self) -> str:
        """``defaults``, ``environment prod``, ``overlay enterprise``, ``customer acme``..."""
        return self.kind if self.kind == "defaults" else f"{self.kind} {self.name}"

    def ref(self) -> LayerRef:
        return LayerRef(kind=self.kind, name=self.name, file=self.file, match=self.match,
                        priority=self.priority)


@dataclass(frozen=True, slots=True)
class LayerRef:
    """Which layer applied to a rendered config (for explain, snapshots and the API)."""

    kind: str
    name: str
    file: str
    match: str | None = None
    priority: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "file": self.file, "match": self.match,
                "priority": self.priority}


@dataclass(frozen=True, slots=True)
class Setting:
    """One layer setting (or overriding) one config key, with where it was written.

    ``value`` is as written: template source, secret reference, the items an ``append`` added.
    ``action`` is ``set`` (first value), ``override`` (replaced a lower value), ``append`` or
    ``merge`` (list item merged by key).
    """

    layer: str
    file: str
    line: int | None
    value: Any
    action: str = "set"

    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


Provenance = Mapping[JsonPath, tuple[Setting, ...]]


@dataclass(frozen=True, eq=False, slots=True)
class RenderedConfig:
    """The configuration one instance gets for one service.

    ``values`` is plain JSON-compatible data with secrets kept as ``{"$secret": "kind:ref"}``;
    treat it as read-only (unchanged parts are shared between instances; deep-copy to edit).
    ``hash`` is :func:`rollwave.core.hashing.config_hash` of ``values``: the config version the
    orchestrator records. ``provenance`` (computed on first use) maps each key path to every
    layer that set it, lowest first.
    """

    instance: str
    service: str
    values: dict[str, Any]
    hash: str
    version: str | None = None
    schema: str | None = None
    layers: tuple[LayerRef, ...] = ()
    tracer: Callable[[], Provenance] | None = field(default=None, repr=False)
    _provenance: Provenance | None = field(default=None, repr=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.instance, self.service)

    @property
    def provenance(self) -> Provenance:
        """Every layer that set each key path (lowest first; the last one won)."""
        cached = self._provenance
        if cached is None:
            cached = self.tracer() if self.tracer is not None else {}
            object.__setattr__(self, "_provenance", cached)  # a cache, not state
        return cached

    def settings_at(self, path: JsonPath) -> tuple[Setting, ...]:
        """The settings of ``path`` or, failing that, of its nearest ancestor with any."""
        prov = self.provenance
        key = tuple(path)
        while True:
            found = prov.get(key)
            if found:
                return found
            if not key:
                return ()
            key = key[:-1]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly snapshot (values keep secret references, never secret values)."""
        return {
            "instance": self.instance,
            "service": self.service,
            "version": self.version,
            "hash": self.hash,
            "schema": self.schema,
            "layers": [layer.to_dict() for layer in self.layers],
            "values": self.values,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RenderedConfig:
        """Rebuild a snapshot written by :meth:`to_dict` (provenance is not kept)."""
        return cls(
            instance=str(data["instance"]),
            service=str(data["service"]),
            values=dict(data["values"]),
            hash=str(data["hash"]),
            version=data.get("version"),
            schema=data.get("schema"),
            layers=tuple(LayerRef(**layer) for layer in data.get("layers", ())),
        )


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem with one instance's config for one service (grouped later into Problems)."""

    instance: str
    service: str
    message: str
    path: str | None = None
    file: str | None = None
    line: int | None = None
    code: str = "config.invalid"
    hint: str | None = None
    severity: str = "error"

    def group_key(self) -> tuple[Any, ...]:
        return (self.code, self.file, self.line, self.service, self.path, self.message,
                self.hint, self.severity)


def display_path(path: JsonPath) -> str:
    """``("db", "hosts", 0)`` → ``db.hosts[0]``; the empty path is ``(root)``."""
    return format_path(path) if path else "(root)"


def parse_key(text: str) -> JsonPath:
    """The inverse of :func:`display_path` for user input such as ``db.hosts[0].name``."""
    out: list[str | int] = []
    for part in text.replace("]", "").split("."):
        pieces = part.split("[")
        if pieces[0]:
            out.append(pieces[0])
        out.extend(int(index) if index.lstrip("-").isdigit() else index for index in pieces[1:])
    return tuple(out)

"""Safe YAML loading that remembers where every value came from.

Every workspace file is read through :func:`load_yaml`: it returns plain JSON-compatible data
(dict / list / str / int / float / bool / None) plus the line and column of every mapping key and
sequence item, so validation errors can name ``file:line``. It refuses, with a located
:class:`~rollwave.errors.Problem` instead of a traceback or a hang:

- bytes that are not UTF-8 (the offending line is reported),
- syntax errors,
- duplicate keys in one mapping (both lines are named),
- alias "billion laughs" bombs (the expanded size is bounded),
- nesting deeper than ``max_depth`` and files larger than ``max_bytes``.

Composition uses libyaml (PyYAML's C parser) when present; the tree is then turned into data
by a small walker of our own, which is what lets us record positions and bound expansion.

Example::

    doc = load_yaml(Path("customers/acme.yaml"), display="customers/acme.yaml")
    doc.data["tier"]                 # 'enterprise'
    doc.line_of(("instances", 0))    # 9
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rollwave.errors import Problem, ValidationFailed

try:  # libyaml makes composing large workspaces several times faster
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - libyaml ships with PyYAML wheels
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

JsonPath = tuple[str | int, ...]

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_NODES = 2_000_000
DEFAULT_MAX_DEPTH = 128

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """Parsed YAML data plus the position (1-based line, column) of each key and item."""

    file: str
    data: Any
    positions: dict[JsonPath, tuple[int, int]] = field(default_factory=dict)

    def position_of(self, path: Sequence[str | int]) -> tuple[int, int] | None:
        """Position of ``path`` or of its nearest located ancestor."""
        key = tuple(path)
        while True:
            pos = self.positions.get(key)
            if pos is not None:
                return pos
            if not key:
                return None
            key = key[:-1]

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """Line of ``path`` or of its nearest located ancestor."""
        pos = self.position_of(path)
        return pos[0] if pos else None

    def problem(self, path: Sequence[str | int], message: str, hint: str | None = None,
                code: str = "workspace.invalid", severity: str = "error") -> Problem:
        """A :class:`Problem` located at ``path`` in this document."""
        pos = self.position_of(path)
        return Problem(
            message=message,
            file=self.file,
            line=pos[0] if pos else None,
            column=pos[1] if pos else None,
            path=format_path(path),
            hint=hint,
            code=code,
            severity=severity,
        )


def format_path(path: Sequence[str | int]) -> str:
    """``("instances", 0, "tags")`` → ``instances[0].tags``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


class _TooBig(Exception):
    def __init__(self, message: str, node: yaml.Node) -> None:
        super().__init__(message)
        self.node = node


class _Walker:
    """Turns a composed node tree into plain data, recording positions and bounding size."""

    def __init__(self, file: str, max_nodes: int, max_depth: int) -> None:
        self.file = file
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.count = 0
        self.positions: dict[JsonPath, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        self._scalars = yaml.SafeLoader("")  # only its scalar constructors are used

    def walk(self, node: yaml.Node, path: JsonPath, depth: int) -> Any:
        self.count += 1
        if self.count > self.max_nodes:
            raise _TooBig(
                f"document expands to more than {self.max_nodes:,} values "
                "(an alias bomb or a file far larger than any workspace needs)",
                node,
            )
        if depth > self.max_depth:
            raise _TooBig(f"nesting deeper than {self.max_depth} levels", node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            out: list[Any] = []
            for index, item in enumerate(node.value):
                item_path = (*path, index)
                self.positions.setdefault(item_path, _pos(item))
                out.append(self.walk(item, item_path, depth + 1))
            return out
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        value = self._scalars.construct_object(node, deep=True)
        if isinstance(value, float) and not math.isfinite(value):
            return str(node.value)
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        if hasattr(value, "isoformat"):  # dates and timestamps stay strings in our data model
            return str(node.value)
        return value

    def _mapping(self, node: yaml.MappingNode, path: JsonPath, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_seen: dict[str, int] = {}
        merged: list[dict[str, Any]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.extend(self._merge_sources(value_node, path, depth))
                continue
            key_value = self._scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if key_value is None and not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(_problem(self.file, key_node, path,
                                              "mapping keys must be plain scalars"))
                continue
            key = _key_text(key_value)
            line, col = _pos(key_node)
            if key in first_seen:
                self.problems.append(_problem(
                    self.file, key_node, (*path, key),
                    f"duplicate key '{key}' (first set on line {first_seen[key]})",
                    hint="YAML keeps only the last one; remove or rename one of them",
                ))
                continue
            first_seen[key] = line
            child = (*path, key)
            self.positions[child] = (line, col)
            out[key] = self.walk(value_node, child, depth + 1)
        for source in merged:  # explicit keys win over merged ones, as in YAML 1.1
            for key, value in source.items():
                out.setdefault(key, value)
        return out

    def _merge_sources(self, node: yaml.Node, path: JsonPath, depth: int) -> list[dict[str, Any]]:
        nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
        sources: list[dict[str, Any]] = []
        for item in nodes:
            value = self.walk(item, path, depth + 1)
            if isinstance(value, dict):
                sources.append(value)
            else:
                self.problems.append(_problem(self.file, item, path,
                                              "'<<' merge needs a mapping or a list of mappings"))
        return sources


def _key_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _pos(node: yaml.Node) -> tuple[int, int]:
    mark = node.start_mark
    return (mark.line + 1, mark.column + 1)


def _problem(file: str, node: yaml.Node, path: JsonPath, message: str,
             hint: str | None = None) -> Problem:
    line, col = _pos(node)
    return Problem(message=message, file=file, line=line, column=col,
                   path=format_path(path), hint=hint, code="yaml.invalid")


def _decode(raw: bytes, file: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValidationFailed([Problem(
            message=f"file is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            file=file, line=line, code="yaml.encoding",
            hint="save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
        )], what=file) from None
    return text.removeprefix("\ufeff")


def parse_yaml(
    source: str | bytes,
    file: str = "<string>",
    *,
    max_nodes: int = DEFAULT_MAX_NODES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> YamlDocument:
    """Parse one YAML document from text; see the module docstring for what is refused."""
    text = _decode(source, file) if isinstance(source, bytes) else source
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ValidationFailed([Problem(
            message=f"YAML syntax error: {exc.problem or exc.context}",
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
            code="yaml.syntax",
            hint="check indentation and quoting around this line",
        )], what=file) from None
    except yaml.YAMLError as exc:  # e.g. several documents in one file
        raise ValidationFailed([Problem(message=f"YAML error: {exc}", file=file,
                                        code="yaml.syntax")], what=file) from None
    except RecursionError:
        raise ValidationFailed([Problem(message="nesting too deep to parse", file=file,
                                        code="yaml.too_deep",
                                        hint=f"keep nesting under {max_depth} levels")],
                               what=file) from None
    if root is None:
        return YamlDocument(file=file, data=None)
    walker = _Walker(file, max_nodes=max_nodes, max_depth=max_depth)
    try:
        data = walker.walk(root, (), 0)
    except _TooBig as exc:
        line, col = _pos(exc.node)
        raise ValidationFailed([Problem(message=str(exc), file=file, line=line, column=col,
                                        code="yaml.too_big",
                                        hint="remove the recursive aliases or split the file")],
                               what=file) from None
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise ValidationFailed([Problem(message=f"cannot read value: {exc}", file=file,
                                        code="yaml.value")], what=file) from None
    if walker.problems:
        raise ValidationFailed(walker.problems, what=file)
    return YamlDocument(file=file, data=data, positions=walker.positions)


def load_yaml(
    path: Path,
    display: str | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_nodes: int = DEFAULT_MAX_NODES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> YamlDocument:
    """Read and parse a YAML file; ``display`` is the name used in problems (default: path)."""
    name = display or str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ValidationFailed([Problem(
                message=f"file is {size:,} bytes, over the {max_bytes:,} byte limit",
                file=name, code="yaml.too_big", hint="split it into smaller files",
            )], what=name)
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationFailed([Problem(message=f"cannot read file: {exc.strerror}", file=name,
                                        code="yaml.io")], what=name) from None
    return parse_yaml(raw, name, max_nodes=max_nodes, max_depth=max_depth)


def dump_yaml(data: Any) -> str:
    """Block-style YAML text with keys in insertion order, for files Rollwave writes."""
    return yaml.dump(data, Dumper=yaml.SafeDumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False)

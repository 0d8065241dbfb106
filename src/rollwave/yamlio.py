"""Safe YAML loading that remembers where every value came from.

Every workspace file is read through :func:`load_yaml`: it returns plain JSON-compatible data
(dict / list / str / int / float / bool / None) plus the line and column of every mapping key and
sequence item, so validation errors can name ``file:line``. It refuses, with a located
:class:`~rollwave.errors.Problem` instead of a traceback or a hang:

- bytes that are not UTF-8 (the offending line is reported),
- syntax errors,
- duplicate keys in one mapping (both lines are named),
- alias "billion laughs" bombs and recursive aliases (the expanded size is computed from the
  node graph before anything is expanded, so a bomb is refused in milliseconds),
- nesting deeper than ``max_depth`` and files larger than ``max_bytes``,
- tags other than YAML's standard ones (``!!python/object``, ``!custom``), values a standard tag
  cannot read (``!!int abc``), and files that are not regular files (a FIFO, a device).

Plain scalars like ``22:00`` stay text (YAML 1.2), not YAML 1.1's base-60 integers, so times of
day need no quotes. Mapping keys are text: YAML 1.1 reads ``off:`` as the key ``false``, and
:attr:`YamlDocument.renamed_keys` remembers what was written so callers can object.

Composition uses libyaml (PyYAML's C parser) when present; the tree is then turned into data
by a small walker of our own, which is what lets us record positions and bound expansion.

Example::

    doc = load_yaml(Path("customers/acme.yaml"), display="customers/acme.yaml")
    doc.data["tier"]                 # 'enterprise'
    doc.line_of(("instances", 0))    # 9
"""

from __future__ import annotations

import math
import stat
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

_YAML_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = _YAML_TAG + "merge"
_STR_TAG = _YAML_TAG + "str"
_NUMBER_TAGS = {_YAML_TAG + "int", _YAML_TAG + "float"}
_SCALAR_TAGS = {_YAML_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp",
                                        "binary")}
_COLLECTION_TAGS = {_YAML_TAG + t for t in ("map", "seq", "omap", "pairs", "set")}
_KNOWN_TAGS = _SCALAR_TAGS | _COLLECTION_TAGS


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """Parsed YAML data plus the position (1-based line, column) of each key and item."""

    file: str
    data: Any
    positions: dict[JsonPath, tuple[int, int]] = field(default_factory=dict)
    renamed_keys: dict[JsonPath, str] = field(default_factory=dict)
    """Keys YAML 1.1 read as something else than written (``off:`` → ``false``): path → text."""

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
        """A :class:`Problem` located at ``path`` in this document (or at its first line)."""
        pos = self.position_of(path) or (1, 1)
        return Problem(
            message=message,
            file=self.file,
            line=pos[0],
            column=pos[1],
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


class _TooBigError(Exception):
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
        self.renamed_keys: dict[JsonPath, str] = {}
        self.problems: list[Problem] = []
        self._scalars = yaml.SafeLoader("")  # only its scalar constructors are used

    def walk(self, node: yaml.Node, path: JsonPath, depth: int) -> Any:
        if node.tag not in _KNOWN_TAGS:
            self.problems.append(_problem(
                self.file, node, path, f"unsupported YAML tag '{node.tag}'",
                hint="workspace files hold plain data: remove the tag"))
            return None
        self.count += 1
        if self.count > self.max_nodes:
            raise _TooBigError(
                f"document expands to more than {self.max_nodes:,} values "
                "(an alias bomb or a file far larger than any workspace needs)",
                node,
            )
        if depth > self.max_depth:
            raise _TooBigError(f"nesting deeper than {self.max_depth} levels", node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            out: list[Any] = []
            for index, item in enumerate(node.value):
                item_path = (*path, index)
                self.positions.setdefault(item_path, _pos(item))
                out.append(self.walk(item, item_path, depth + 1))
            return out
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: JsonPath = ()) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return None
        if node.tag in _NUMBER_TAGS and ":" in node.value and not node.style:
            return str(node.value)  # 22:00 is a time of day, not YAML 1.1's base-60 1320
        try:
            value = self._scalars.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            reason = getattr(exc, "problem", None) or str(exc)
            self.problems.append(_problem(self.file, node, path,
                                          f"cannot read value {node.value[:40]!r}: {reason}"))
            value = None
        if isinstance(value, float) and not math.isfinite(value):
            value = str(node.value)
        elif isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif hasattr(value, "isoformat"):  # dates and timestamps stay strings in our data model
            value = str(node.value)
        return value

    def _mapping(self, node: yaml.MappingNode, path: JsonPath, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_seen: dict[str, int] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(_problem(self.file, key_node, path,
                                              "mapping keys must be plain scalars"))
                continue
            if key_node.tag not in _KNOWN_TAGS:
                self.problems.append(_problem(self.file, key_node, path,
                                              f"unsupported YAML tag '{key_node.tag}' on a key",
                                              hint="remove the tag"))
                continue
            key = _key_text(self._scalar(key_node, path))
            if key != key_node.value and not key_node.style:
                # YAML 1.1 read `off:` as false, `0x10:` as 16: remember what was written
                self.renamed_keys[(*path, key)] = str(key_node.value)
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
        if merges:
            # explicit keys win over merged ones (YAML 1.1), wherever the '<<' is written;
            # merged keys keep the position where the anchored mapping wrote them
            explicit_positions, self.positions = self.positions, {}
            for value_node in merges:
                for source in self._merge_sources(value_node, path, depth):
                    for key, value in source.items():
                        out.setdefault(key, value)
            merged_positions, self.positions = self.positions, explicit_positions
            depth_here = len(path)
            for key_path, pos in merged_positions.items():
                if len(key_path) > depth_here and key_path[depth_here] not in first_seen:
                    self.positions.setdefault(key_path, pos)
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


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_expansion(root: yaml.Node, max_nodes: int) -> None:
    """Raise :class:`_TooBigError` if expanding aliases would give more than ``max_nodes`` values.

    Aliases share nodes, so each distinct node's expanded size is computed once (iteratively,
    memoized by identity): a "billion laughs" document is measured without being expanded.
    A recursive alias (an anchor used inside itself) can never be expanded and is refused too.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            if total > max_nodes:
                raise _TooBigError(
                    f"document expands to more than {max_nodes:,} values "
                    "(an alias bomb or a file far larger than any workspace needs)", node)
            sizes[key] = total
            continue
        if key in sizes:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise _TooBigError("an alias refers to the mapping or list it is part of "
                              "(a recursive anchor can never be expanded)", child)
            if id(child) not in sizes:
                stack.append((child, False))


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
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValidationFailed([Problem(
            message="file is UTF-16, not UTF-8", file=file, line=1, code="yaml.encoding",
            hint="save the file as UTF-8 (e.g. `iconv -f utf-16 -t utf-8`)",
        )], what=file)
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


def _codepoint(character: object) -> str:
    code = character if isinstance(character, int) else ord(str(character)[:1] or "\0")
    return f"U+{code:04X}"


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
        reason = exc.problem or exc.context or "invalid YAML"
        hint = "check indentation and quoting around this line"
        if "another document" in reason:
            hint = "a workspace file holds one document: remove the '---' line or split the file"
        elif "nesting depth" in reason:
            hint = f"keep nesting under {max_depth} levels"
        raise ValidationFailed([Problem(
            message=f"YAML syntax error: {reason}",
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
            code="yaml.syntax",
            hint=hint,
        )], what=file) from None
    except yaml.reader.ReaderError as exc:  # control characters, e.g. NUL
        line = text[: max(exc.position, 0)].count("\n") + 1
        raise ValidationFailed([Problem(
            message=f"character {_codepoint(exc.character)} is not allowed in YAML", file=file,
            line=line, code="yaml.syntax",
            hint="remove control characters (NUL, escape codes) from the file")],
            what=file) from None
    except yaml.YAMLError as exc:
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
        check_expansion(root, max_nodes)
        data = walker.walk(root, (), 0)
    except _TooBigError as exc:
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
    return YamlDocument(file=file, data=data, positions=walker.positions,
                        renamed_keys=walker.renamed_keys)


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
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ValidationFailed([Problem(
                message="not a regular file (a directory, pipe or device)", file=name,
                code="yaml.io", hint="workspace files must be plain files; move this away",
            )], what=name)
        size = info.st_size
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

"""Compile YAML values into layer trees: markers for templates, secrets and list merge modes.

Pure: the input is already-parsed data plus its :class:`~rollwave.yamlio.YamlDocument` for
positions; every mistake becomes a located :class:`~rollwave.errors.Problem`.
"""

from __future__ import annotations

import re
from typing import Any

from rollwave.config.model import (
    APPEND,
    ITEMS_MARKER,
    MARKER_KEYS,
    MERGE_MARKER,
    REPLACE,
    SECRET_MARKER,
    ListOp,
    MergeMode,
    ModeTree,
    SecretRef,
    Template,
)
from rollwave.errors import Problem
from rollwave.yamlio import JsonPath, YamlDocument

_REFERENCE = re.compile(r"^[a-z][a-z0-9-]*:.+", re.DOTALL)
TEMPLATE_MARKS = ("{{", "{%", "{#")
MODE_HINT = "write replace, append, or {by: KEY} (merge list items by that key)"


def is_template(value: str) -> bool:
    """True when ``value`` holds Jinja syntax and must be rendered per instance."""
    return "{" in value and any(mark in value for mark in TEMPLATE_MARKS)


def valid_reference(text: str) -> bool:
    """``kind:reference`` with a lower-case kind (``env:DB_PASSWORD``, ``aws-sm:arn:...``)."""
    return bool(_REFERENCE.match(text))


def parse_mode(value: Any) -> MergeMode | None:
    """``replace`` / ``append`` / ``{by: KEY}`` → :class:`MergeMode`; None when malformed."""
    if value == "replace":
        return REPLACE
    if value == "append":
        return APPEND
    if isinstance(value, dict) and set(value) == {"by"} and isinstance(value["by"], str) and (
            value["by"]):
        return MergeMode("by", value["by"])
    return None


class _Compiler:
    def __init__(self, doc: YamlDocument | None, file: str, base: JsonPath,
                 problems: list[Problem]) -> None:
        self.doc = doc
        self.file = file
        self.base = base
        self.problems = problems
        self.has_ops = False

    def line(self, path: JsonPath) -> int | None:
        return self.doc.line_of((*self.base, *path)) if self.doc is not None else None

    def problem(self, path: JsonPath, message: str, hint: str | None = None) -> None:
        full = (*self.base, *path)
        if self.doc is not None:
            self.problems.append(self.doc.problem(full, message, hint, code="config.invalid"))
        else:
            self.problems.append(Problem(message=message, file=self.file, hint=hint,
                                         code="config.invalid"))

    def node(self, value: Any, path: JsonPath) -> Any:
        if isinstance(value, dict):
            if SECRET_MARKER in value:
                return self.secret(value, path)
            if MERGE_MARKER in value or ITEMS_MARKER in value:
                return self.list_op(value, path)
            out: dict[str, Any] = {}
            for key, item in value.items():
                if key.startswith("$"):
                    self.problem((*path, key), f"'{key}' is not a Rollwave marker; keys "
                                 "starting with '$' are reserved",
                                 hint="use $secret, or $merge with $items; rename other keys")
                    continue
                out[key] = self.node(item, (*path, key))
            return out
        if isinstance(value, list):
            return [self.node(item, (*path, index)) for index, item in enumerate(value)]
        if isinstance(value, str) and is_template(value):
            return Template(value, self.file, self.line(path))
        return value

    def secret(self, value: dict[str, Any], path: JsonPath) -> Any:
        ref = value[SECRET_MARKER]
        if len(value) != 1:
            self.problem(path, f"a secret reference holds only '{SECRET_MARKER}'",
                         hint='write e.g. password: {$secret: "env:DB_PASSWORD"}')
            return None
        if not isinstance(ref, str) or not ref.strip():
            self.problem((*path, SECRET_MARKER), "a secret reference must be a non-empty string",
                         hint="write kind:reference, e.g. env:DB_PASSWORD or aws-sm:prod/db")
            return None
        if is_template(ref):
            return SecretRef(Template(ref, self.file, self.line((*path, SECRET_MARKER))))
        if not valid_reference(ref):
            self.problem((*path, SECRET_MARKER), f"'{ref}' is not a secret reference",
                         hint="write kind:reference, e.g. env:DB_PASSWORD, file:secrets/db, "
                              "aws-sm:prod/db#password")
            return None
        return SecretRef(ref)

    def list_op(self, value: dict[str, Any], path: JsonPath) -> Any:
        extra = sorted(set(value) - {MERGE_MARKER, ITEMS_MARKER})
        if extra:
            self.problem((*path, extra[0]), f"unexpected key '{extra[0]}' next to "
                         f"'{MERGE_MARKER}'", hint=f"a merge marker holds only {MERGE_MARKER} and "
                         f"{ITEMS_MARKER}")
            return None
        mode = parse_mode(value.get(MERGE_MARKER, "replace"))
        if mode is None:
            self.problem((*path, MERGE_MARKER),
                         f"unknown list merge mode {value.get(MERGE_MARKER)!r}", hint=MODE_HINT)
            return None
        items = value.get(ITEMS_MARKER)
        if not isinstance(items, list):
            self.problem((*path, ITEMS_MARKER) if ITEMS_MARKER in value else path,
                         f"'{ITEMS_MARKER}' must be a list", hint=f"e.g. {{{MERGE_MARKER}: append, "
                         f"{ITEMS_MARKER}: [a, b]}}")
            return None
        compiled = [self.node(item, (*path, ITEMS_MARKER, index)) for index, item in
                    enumerate(items)]
        if mode.kind == "by":
            check_keyed_items(compiled, mode, lambda i: (*path, ITEMS_MARKER, i), self.problem)
        self.has_ops = True
        return ListOp(mode, compiled)


def check_keyed_items(items: list[Any], mode: MergeMode, where: Any, report: Any) -> bool:
    """Each item is a mapping with a scalar ``mode.key``, unique in ``items``."""
    seen: dict[Any, int] = {}
    good = True
    for index, item in enumerate(items):
        key = item.get(mode.key) if isinstance(item, dict) else None
        if key is None or isinstance(key, dict | list | ListOp):
            report(where(index), f"list items merged by '{mode.key}' need a '{mode.key}' value",
                   f"add {mode.key}: ... to this item or change the list's merge mode")
            good = False
        elif _hashable_key(key) in seen:
            report(where(index), f"two items have {mode.key} = {_show(key)}",
                   "each key may appear once per layer; merge the two items")
            good = False
        else:
            seen[_hashable_key(key)] = index
    return good


def _hashable_key(value: Any) -> Any:
    if isinstance(value, Template):
        return ("template", value.source)
    if isinstance(value, SecretRef):
        return ("secret", str(value.reference))
    return (type(value).__name__, value)


def _show(value: Any) -> str:
    return repr(value.source) if isinstance(value, Template) else repr(value)


def compile_values(data: Any, *, file: str, doc: YamlDocument | None, base: JsonPath,
                   problems: list[Problem]) -> tuple[dict[str, Any], bool]:
    """Compile a layer's values (a mapping) into a tree; returns ``(tree, has_list_ops)``."""
    compiler = _Compiler(doc, file, base, problems)
    if data is None:
        return {}, False
    if not isinstance(data, dict) or MARKER_KEYS & set(data):
        compiler.problem((), "config values must be a mapping (key: value pairs)",
                         hint="e.g. values: {log_level: info}; markers such as $secret go "
                              "under a key")
        return {}, False
    tree = compiler.node(data, ())
    return tree, compiler.has_ops


def compile_modes(data: Any, doc: YamlDocument, base: JsonPath,
                  problems: list[Problem]) -> ModeTree:
    """Compile a ``merge:`` section (``path: mode``) into a :data:`ModeTree`."""
    tree: ModeTree = {}
    if data is None:
        return tree
    if not isinstance(data, dict):
        problems.append(doc.problem(base, "'merge' maps key paths to list merge modes",
                                    hint="e.g. merge: {allowed_origins: append, "
                                         "users: {by: name}}", code="config.invalid"))
        return tree
    for path_text, raw in data.items():
        mode = parse_mode(raw)
        if mode is None:
            problems.append(doc.problem((*base, path_text), f"unknown list merge mode {raw!r} "
                                        f"for '{path_text}'", hint=MODE_HINT,
                                        code="config.invalid"))
            continue
        parts = [p for p in re.split(r"\.|\[(?:\*|\d+)?\]", path_text) if p]
        if not parts or any(p.startswith("$") for p in parts):
            problems.append(doc.problem((*base, path_text), f"'{path_text}' is not a key path",
                                        hint="write dotted keys, * for any key or list item, "
                                             "e.g. plugins.*.hooks", code="config.invalid"))
            continue
        node = tree
        for part in parts:
            node = node.setdefault(part, {})
        node[""] = mode
    return tree


def mode_child(modes: ModeTree | None, key: str | int) -> ModeTree | None:
    """The declarations below ``key`` (an exact key wins over ``*``)."""
    if not modes:
        return None
    if isinstance(key, str):
        found = modes.get(key)
        if found is not None:
            return found  # type: ignore[no-any-return]
    return modes.get("*")


def declared_mode(modes: ModeTree | None) -> MergeMode:
    """The list merge mode declared for the path ``modes`` belongs to (default replace)."""
    if modes:
        mode = modes.get("")
        if isinstance(mode, MergeMode):
            return mode
    return REPLACE

"""JSON Schemas for service configs: choosing the schema for a version, validating quickly.

Each service may declare a schema (see docs/configuration.md for where it lives):

- ``config/<service>/schemas/<version>.json`` (or ``.yaml``) applies from that service version
  on: a release of version V uses the schema of the greatest version ≤ V;
- otherwise ``config/<service>/schema.json`` (or ``.yaml``, or the file named by the service's
  ``config_schema`` in rollwave.yaml);
- a service with neither is not validated.

The validator is compiled once per schema. A :class:`ValidationRun` validates many configs:
identical configs (by content hash) once; otherwise it walks the schema's plain object parts
(``type: object`` with ``properties``/``required``/``additionalProperties``) key by key,
remembering the answer for every shared sub-mapping (unchanged parts are the same object in
every config that holds them, see rollwave.config.model) and for every scalar under each
subschema, and hands any other subschema to jsonschema. Only a config found invalid goes
through jsonschema whole, for complete error messages. Errors at a secret reference's own path
are ignored: its value is unknown until deploy time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import (  # type: ignore[import-untyped, unused-ignore]
    Draft202012Validator,
    validators,
)
from jsonschema.exceptions import (  # type: ignore[import-untyped, unused-ignore]
    SchemaError,
    ValidationError,
)
from referencing.exceptions import Unresolvable

from rollwave.config.model import SECRET_MARKER
from rollwave.yamlio import JsonPath


@dataclass(frozen=True, slots=True)
class SchemaSource:
    """A schema as loaded: the file it came from and the version it applies from."""

    file: str
    schema: Any
    version: str | None = None


@dataclass(frozen=True, slots=True)
class SchemaErrorInfo:
    """One validation error: where in the config, what is wrong."""

    path: JsonPath
    message: str
    keyword: str


def version_key(version: str) -> tuple[Any, ...]:
    """A sort key: ``1.2.10`` after ``1.2.9``; ``2.0.0-rc1`` before ``2.0.0``."""
    main, _, pre = version.partition("-")
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p)
                  for p in re.split(r"[.+_]", main))
    return (parts, 0 if pre else 1, pre)


def choose_schema(unversioned: SchemaSource | None, versioned: Mapping[str, SchemaSource],
                  version: str | None) -> SchemaSource | None:
    """The schema that applies to ``version`` (see the module docstring)."""
    if version is not None and versioned:
        if version in versioned:
            return versioned[version]
        wanted = version_key(version)
        older = [v for v in versioned if version_key(v) <= wanted]
        if older:
            return versioned[max(older, key=version_key)]
    return unversioned


def check_schema(schema: Any) -> str | None:
    """None when ``schema`` is a valid JSON Schema (of the draft it names), else why not."""
    if not isinstance(schema, dict | bool):
        return "a JSON Schema is a mapping (or true/false)"
    if isinstance(schema, bool):
        return None  # true / false are valid schemas of every draft
    cls = validators.validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return f"invalid JSON Schema{f' at {where}' if where else ''}: {exc.message}"
    return None


_ANNOTATIONS = frozenset({
    "$schema", "$comment", "$defs", "definitions", "title", "description", "default",
    "examples", "deprecated", "readOnly", "writeOnly",
})
_OBJECT_KEYWORDS = _ANNOTATIONS | {"type", "properties", "required", "additionalProperties"}


class _Object:
    """A subschema that is only ``type: object`` + properties/required/additionalProperties:
    validated key by key here, so shared sub-mappings are checked once."""

    __slots__ = ("additional", "props", "required", "validator")

    def __init__(self, props: dict[str, Any], required: tuple[str, ...], additional: Any,
                 validator: Any) -> None:
        self.props = props
        self.required = required
        self.additional = additional
        self.validator = validator


class _Scalar:
    """A subschema of simple scalar keywords (type, enum, bounds, lengths, pattern), checked
    here when the answer is certain; anything else is left to jsonschema."""

    __slots__ = ("enum", "max_len", "maximum", "min_len", "minimum", "pattern", "types",
                 "validator", "xmax", "xmin")

    def __init__(self, schema: dict[str, Any], validator: Any) -> None:
        kinds = schema.get("type")
        self.types = None if kinds is None else frozenset(
            [kinds] if isinstance(kinds, str) else kinds)
        self.enum = schema.get("enum")
        self.minimum = schema.get("minimum")
        self.maximum = schema.get("maximum")
        self.xmin = schema.get("exclusiveMinimum")
        self.xmax = schema.get("exclusiveMaximum")
        self.min_len = schema.get("minLength")
        self.max_len = schema.get("maxLength")
        pattern = schema.get("pattern")
        self.pattern = re.compile(pattern) if isinstance(pattern, str) else None
        self.validator = validator

    def certain(self, value: Any) -> bool | None:
        """True/False when sure, None when jsonschema must decide."""
        kind = type(value)
        name = _TYPE_NAMES.get(kind)
        if name is None:
            return None  # mappings and lists: jsonschema compares them its own way
        if self.types is not None and name not in self.types and not (
                name == "integer" and "number" in self.types):
            return None  # e.g. 1.0 may count as an integer: let jsonschema say
        if self.enum is not None and not any(type(v) is kind and v == value for v in self.enum):
            return None
        if kind is int or kind is float:
            return not ((self.minimum is not None and value < self.minimum) or (
                self.maximum is not None and value > self.maximum) or (
                self.xmin is not None and value <= self.xmin) or (
                self.xmax is not None and value >= self.xmax))
        if kind is str:
            return not ((self.min_len is not None and len(value) < self.min_len) or (
                self.max_len is not None and len(value) > self.max_len) or (
                self.pattern is not None and not self.pattern.search(value)))
        return True


_TYPE_NAMES: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean",
                                type(None): "null"}
_SCALAR_KEYWORDS = _ANNOTATIONS | {"type", "enum", "minimum", "maximum", "exclusiveMinimum",
                                   "exclusiveMaximum", "minLength", "maxLength", "pattern"}


class _Opaque:
    """Any other subschema: validated by jsonschema (with the root's $ref resolver)."""

    __slots__ = ("validator",)

    def __init__(self, validator: Any) -> None:
        self.validator = validator


Node = _Object | _Scalar | _Opaque


def _plain_object(schema: Any, root: bool) -> bool:
    if not isinstance(schema, dict):
        return False
    allowed = _OBJECT_KEYWORDS | ({"$id"} if root else set())
    required = schema.get("required", [])
    return (set(schema) <= allowed
            and schema.get("type", "object" if root else None) == "object"
            and isinstance(schema.get("properties", {}), dict)
            and isinstance(required, list) and all(isinstance(k, str) for k in required)
            and isinstance(schema.get("additionalProperties", True), bool | dict))


def _scalar(schema: dict[str, Any]) -> bool:
    kinds = schema.get("type")
    names = [kinds] if isinstance(kinds, str) else kinds
    return (set(schema) <= _SCALAR_KEYWORDS
            and (names is None or (isinstance(names, list) and all(
                n in ("string", "integer", "number", "boolean", "null") for n in names)))
            and (schema.get("enum") is None or isinstance(schema.get("enum"), list))
            and all(isinstance(schema.get(k, 0), int | float) and not isinstance(
                schema.get(k), bool) for k in ("minimum", "maximum", "exclusiveMinimum",
                                               "exclusiveMaximum", "minLength", "maxLength")))


def _local_ref(schema: Any, root_schema: Any) -> Any:
    """The target of ``{"$ref": "#/..."}`` (nothing else but annotations), or None."""
    if not isinstance(schema, dict) or not isinstance(schema.get("$ref"), str) or not (
            set(schema) - _ANNOTATIONS <= {"$ref"}):
        return None
    ref = schema["$ref"]
    if not ref.startswith("#/"):
        return None
    node = root_schema
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _build(schema: Any, validator: Any, root_schema: Any, seen: frozenset[str] = frozenset(),
           root: bool = False) -> Node:
    target = _local_ref(schema, root_schema)
    if target is not None and schema["$ref"] not in seen:
        return _build(target, validator, root_schema, seen | {schema["$ref"]})
    if isinstance(schema, dict) and _scalar(schema):
        return _Scalar(schema, validator.evolve(schema=schema))
    if not _plain_object(schema, root):
        return _Opaque(validator.evolve(schema=schema))
    props = {key: _build(sub, validator, root_schema, seen)
             for key, sub in schema.get("properties", {}).items()}
    extra = schema.get("additionalProperties", True)
    return _Object(props, tuple(schema.get("required", [])),
                   extra if isinstance(extra, bool) else _build(extra, validator, root_schema,
                                                                seen),
                   validator if root else validator.evolve(schema=schema))


class CompiledSchema:
    """A schema compiled once: the jsonschema validator plus a tree for quick checks."""

    def __init__(self, source: SchemaSource) -> None:
        self.source = source
        schema = source.schema
        cls = validators.validator_for(schema, default=Draft202012Validator)
        self.validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        self.tree = _build(schema, self.validator, schema, root=True)

    def errors(self, values: Any) -> list[SchemaErrorInfo]:
        """Every error in ``values`` (secret paths excepted), sorted by path."""
        return _errors(self.validator, values, ())


def _errors(validator: Any, value: Any, prefix: JsonPath,
            skip: frozenset[JsonPath] = frozenset()) -> list[SchemaErrorInfo]:
    """Errors of ``value`` (found at ``prefix``) except under secrets and ``skip`` paths."""
    try:
        found = []
        for err in validator.iter_errors(value):
            relative = tuple(err.absolute_path)
            if at_secret(value, relative) or _under(skip, (*prefix, *relative)):
                continue
            found.append(SchemaErrorInfo((*prefix, *_error_path(err)), err.message,
                                         str(err.validator)))
    except Unresolvable as exc:
        return [SchemaErrorInfo(prefix, f"the schema has a $ref that cannot be resolved: {exc}",
                                "$ref")]
    return sorted(found, key=_error_order)


def _error_order(error: SchemaErrorInfo) -> tuple[tuple[str, ...], str]:
    return (tuple(str(p) for p in error.path), error.message)


def _under(paths: frozenset[JsonPath], path: JsonPath) -> bool:
    return bool(paths) and any(path[:size] in paths for size in range(len(path) + 1))


def _error_path(error: Any) -> JsonPath:
    """The error's path; for unexpected keys, the path of the first unexpected key."""
    path = tuple(error.absolute_path)
    if error.validator in ("additionalProperties", "unevaluatedProperties") and isinstance(
            error.instance, dict) and isinstance(error.schema, dict):
        known = error.schema.get("properties", {})
        patterns = list(error.schema.get("patternProperties", {}))
        extra = [key for key in error.instance if key not in known
                 and not any(re.search(pattern, key) for pattern in patterns)]
        if extra:
            return (*path, extra[0])
    return path


def at_secret(values: Any, path: JsonPath) -> bool:
    """True when ``path`` leads into (or is) a ``{"$secret": ...}`` reference."""
    node = values
    for part in path:
        if type(node) is dict and SECRET_MARKER in node and len(node) == 1:
            return True
        try:
            node = node[part]
        except (LookupError, TypeError):
            return False
    return type(node) is dict and SECRET_MARKER in node and len(node) == 1


class _Plan:
    """How to validate the configs of one merged stack: the stack's fixed part once, then per
    instance only the rendered leaves, each against its subschema (None: unconstrained)."""

    __slots__ = ("base_errors", "base_ok", "leaves", "tree")

    def __init__(self, tree: Any, base_ok: bool, leaves: list[tuple[JsonPath, Node | None]],
                 ) -> None:
        self.tree = tree
        self.base_ok = base_ok
        self.leaves = leaves
        self.base_errors: list[SchemaErrorInfo] | None = None


class ValidationRun:
    """Validates many configs against one schema, reusing work (see the module docstring)."""

    def __init__(self, compiled: CompiledSchema) -> None:
        self.compiled = compiled
        self._by_hash: dict[str, tuple[SchemaErrorInfo, ...]] = {}
        self._objects: dict[tuple[int, int], Any] = {}  # keeps checked values alive
        self._results: dict[tuple[int, int], bool] = {}
        self._scalars: dict[tuple[int, type, Any], bool] = {}
        self._plans: dict[int, _Plan | None] = {}

    def validate(self, values: dict[str, Any], content_hash: str, tree: Any = None,
                 markers: Any = None) -> tuple[SchemaErrorInfo, ...]:
        """Errors in ``values`` (whose hash is ``content_hash``); () when valid.

        ``tree`` and ``markers`` (the merged stack ``values`` was rendered from, and the trie
        of its rendered leaves) let configs of one stack share the check of its fixed part.
        """
        found = self._by_hash.get(content_hash)
        if found is None:
            plan = self._plan(tree, markers) if tree is not None and markers else None
            if plan is not None:
                found = self._plan_errors(plan, values)
            else:
                ok = self._valid(self.compiled.tree, values)
                found = () if ok else tuple(self.compiled.errors(values))
            self._by_hash[content_hash] = found
        return found

    def _plan_errors(self, plan: _Plan, values: Any) -> tuple[SchemaErrorInfo, ...]:
        """The stack's fixed part is checked once; per config only its rendered leaves."""
        errors: list[SchemaErrorInfo] = []
        for path, node in plan.leaves:
            if node is None:
                continue
            value = _get(values, path)
            if not self._valid(node, value):
                errors.extend(_errors(node.validator, value, path))
        if plan.base_ok and not errors:
            return ()
        if not plan.base_ok:
            if plan.base_errors is None:
                skip = frozenset(path for path, _ in plan.leaves)
                plan.base_errors = _errors(self.compiled.validator, plan.tree, (), skip)
            errors.extend(plan.base_errors)
        return tuple(sorted(errors, key=_error_order))

    def _plan(self, tree: Any, markers: Any) -> _Plan | None:
        key = id(tree)
        if key in self._plans:
            plan = self._plans[key]
            if plan is None or plan.tree is tree:
                return plan
        leaves: list[tuple[JsonPath, Node | None]] = []
        plan = None
        if _walk(self.compiled.tree, markers, (), leaves):
            plan = _Plan(tree, self._valid(self.compiled.tree, tree), leaves)
        self._plans[key] = plan
        return plan

    def _valid(self, node: Node, value: Any) -> bool:
        kind = type(value)
        if type(node) is _Scalar:
            sure = node.certain(value)
            if sure is not None:
                return sure
        if kind in (str, int, float, bool) or value is None:
            key = (id(node), kind, value)
            hit = self._scalars.get(key)
            if hit is None:
                hit = self._check(node, value)
                self._scalars[key] = hit
            return hit
        if kind is dict and len(value) == 1 and SECRET_MARKER in value:
            return True  # a secret's value is unknown until deploy time
        if kind is not dict and kind is not list:
            return True  # a template or secret marker in a stack tree: checked per instance
        memo = (id(node), id(value))
        if self._objects.get(memo) is value:
            return self._results[memo]
        result = self._check(node, value)
        self._objects[memo] = value  # kept alive, so its id stays unique
        self._results[memo] = result
        return result

    def _check(self, node: Node, value: Any) -> bool:
        if not isinstance(node, _Object):
            try:
                return not any(not at_secret(value, tuple(err.absolute_path))
                               for err in node.validator.iter_errors(value))
            except (Unresolvable, ValidationError):
                return False
        if type(value) is not dict or any(key not in value for key in node.required):
            return False
        props = node.props
        for key, item in value.items():
            sub = props.get(key)
            if sub is None:
                sub = node.additional
                if sub is True:
                    continue
                if sub is False:
                    return False
            if not self._valid(sub, item):
                return False
        return True


def _walk(node: Node | None, markers: dict[Any, Any], path: JsonPath,
          leaves: list[tuple[JsonPath, Node | None]]) -> bool:
    """Collect the subschema of every marker path; False when a path leaves plain objects."""
    for key, sub in markers.items():
        child: Node | None = None
        if node is not None:
            if not isinstance(node, _Object) or not isinstance(key, str):
                return False
            child = node.props.get(key)
            if child is None and not isinstance(node.additional, bool):
                child = node.additional
        here = (*path, key)
        if sub is True:
            leaves.append((here, child))
        elif not _walk(child, sub, here, leaves):
            return False
    return True


def _get(values: Any, path: JsonPath) -> Any:
    node = values
    for part in path:
        node = node[part]
    return node

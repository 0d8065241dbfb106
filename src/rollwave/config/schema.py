"""JSON Schemas for service configs: choosing the schema for a version, validating quickly.

Each service may declare a schema (see docs/configuration.md for where it lives):

- ``config/<service>/schemas/<version>.json`` (or ``.yaml``) applies from that service version
  on: a release of version V uses the schema of the greatest version ≤ V;
- otherwise ``config/<service>/schema.json`` (or ``.yaml``, or the file named by the service's
  ``config_schema`` in rollwave.yaml);
- a service with neither is not validated.

The validator is compiled once per schema. A :class:`ValidationRun` validates many configs: by
content hash (identical configs once) and, when the schema's root is a plain ``properties``
object, section by section with the result of every shared section remembered (unchanged
sections are the same object in every config that holds them, see rollwave.config.model).
Errors at a secret reference's own path are ignored: its value is unknown until deploy time.
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

_ROOT_KEYWORDS = frozenset({
    "$schema", "$id", "$comment", "$defs", "definitions", "title", "description", "default",
    "examples", "type", "properties", "required", "additionalProperties",
})


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
    cls = validators.validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return f"invalid JSON Schema{f' at {where}' if where else ''}: {exc.message}"
    return None


class CompiledSchema:
    """A schema compiled once; split into per-key validators when its root allows it."""

    def __init__(self, source: SchemaSource) -> None:
        self.source = source
        schema = source.schema
        cls = validators.validator_for(schema, default=Draft202012Validator)
        self.validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        self.sections: dict[str, Any] | None = None
        self.required: tuple[str, ...] = ()
        self.additional: Any = True
        if isinstance(schema, dict) and set(schema) <= _ROOT_KEYWORDS and schema.get(
                "type", "object") == "object" and isinstance(schema.get("properties", {}), dict):
            self.sections = {key: self.validator.evolve(schema=sub)
                             for key, sub in schema.get("properties", {}).items()}
            required = schema.get("required", [])
            self.required = tuple(required) if isinstance(required, list) else ()
            extra = schema.get("additionalProperties", True)
            self.additional = extra if isinstance(extra, bool) else self.validator.evolve(
                schema=extra)

    def errors(self, values: Any) -> list[SchemaErrorInfo]:
        """Every error in ``values`` (secret paths excepted), sorted by path."""
        try:
            found = [SchemaErrorInfo(_error_path(err), err.message, str(err.validator))
                     for err in self.validator.iter_errors(values)
                     if not at_secret(values, tuple(err.absolute_path))]
        except Unresolvable as exc:
            return [SchemaErrorInfo((), f"the schema has a $ref that cannot be resolved: {exc}",
                                    "$ref")]
        return sorted(found, key=lambda e: (tuple(str(p) for p in e.path), e.message))


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


class ValidationRun:
    """Validates many configs against one schema, reusing work (see the module docstring)."""

    def __init__(self, compiled: CompiledSchema) -> None:
        self.compiled = compiled
        self._by_hash: dict[str, list[SchemaErrorInfo]] = {}
        self._sections: dict[tuple[str, int], tuple[Any, bool]] = {}
        self._scalars: dict[tuple[str, type, Any], bool] = {}

    def validate(self, values: dict[str, Any], content_hash: str) -> list[SchemaErrorInfo]:
        """Errors in ``values`` (whose hash is ``content_hash``); [] when valid."""
        found = self._by_hash.get(content_hash)
        if found is None:
            found = [] if self._quick_valid(values) else self.compiled.errors(values)
            self._by_hash[content_hash] = found
        return found

    def _quick_valid(self, values: dict[str, Any]) -> bool:
        compiled = self.compiled
        sections = compiled.sections
        if sections is None or type(values) is not dict:
            return False
        for key in compiled.required:
            if key not in values:
                return False
        for key, value in values.items():
            validator = sections.get(key)
            if validator is None:
                if compiled.additional is True:
                    continue
                if compiled.additional is False:
                    return False
                validator = compiled.additional
            if not self._section_valid(key, value, validator):
                return False
        return True

    def _section_valid(self, key: str, value: Any, validator: Any) -> bool:
        kind = type(value)
        if kind in (str, int, float, bool) or value is None:
            scalar_key = (key, kind, value)
            hit = self._scalars.get(scalar_key)
            if hit is None:
                hit = self._check(validator, value)
                self._scalars[scalar_key] = hit
            return hit
        memo_key = (key, id(value))
        found = self._sections.get(memo_key)
        if found is not None and found[0] is value:
            return found[1]
        result = self._check(validator, value)
        self._sections[memo_key] = (value, result)  # keeps value alive, so its id stays unique
        return result

    @staticmethod
    def _check(validator: Any, value: Any) -> bool:
        try:
            return not any(not at_secret(value, tuple(err.absolute_path))
                           for err in validator.iter_errors(value))
        except (Unresolvable, ValidationError):
            return False

"""Secret references in rendered configs: find them, resolve them at deploy time, redact.

A rendered config keeps ``{"$secret": "kind:reference"}`` wherever a layer wrote one; hashes,
snapshots and diffs see only that reference. Only the deploy path calls
:func:`resolve_secrets`, right before writing the instance's config file, and uses the returned
values to redact its logs (:func:`redact`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from rollwave.config.model import SECRET_MARKER, display_path
from rollwave.errors import SecretError
from rollwave.ports.secrets import SecretResolver, split_reference
from rollwave.yamlio import JsonPath

REDACTED = "********"


def is_secret(node: Any) -> bool:
    """True for ``{"$secret": "kind:reference"}``."""
    return type(node) is dict and len(node) == 1 and isinstance(node.get(SECRET_MARKER), str)


def secret_references(config: Any, path: JsonPath = ()) -> Iterator[tuple[JsonPath, str]]:
    """Every ``(path, reference)`` in a rendered config, in document order."""
    if is_secret(config):
        yield path, config[SECRET_MARKER]
    elif isinstance(config, dict):
        for key, value in config.items():
            yield from secret_references(value, (*path, key))
    elif isinstance(config, list):
        for index, value in enumerate(config):
            yield from secret_references(value, (*path, index))


def resolve_secrets(config: Mapping[str, Any], resolvers: Mapping[str, SecretResolver],
                    ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``(config with every reference replaced by its value, the values for redaction)``.

    Each distinct reference is resolved once. When any fails, raises one SecretError naming
    every failed path and reference (never a value). The redaction values are distinct and
    longest first, so :func:`redact` never leaves a longer secret half-masked.
    """
    cache: dict[str, str] = {}
    failures: list[str] = []

    def lookup(reference: str, path: JsonPath) -> str | None:
        if reference in cache:
            return cache[reference]
        try:
            kind, body = split_reference(reference)
            resolver = resolvers.get(kind)
            if resolver is None:
                raise SecretError(f"no resolver for kind '{kind}' (known: "
                                  f"{', '.join(sorted(resolvers)) or 'none'})")
            value = resolver.resolve(body)
        except SecretError as exc:
            failures.append(f"{display_path(path)} ({reference}): {exc.message}")
            return None
        cache[reference] = value
        return value

    def walk(node: Any, path: JsonPath) -> Any:
        if is_secret(node):
            return lookup(node[SECRET_MARKER], path)
        if isinstance(node, dict):
            return {key: walk(value, (*path, key)) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value, (*path, index)) for index, value in enumerate(node)]
        return node

    resolved = walk(dict(config), ())
    if failures:
        noun = "secret" if len(failures) == 1 else "secrets"
        raise SecretError(f"cannot resolve {len(failures)} {noun}: " + "; ".join(failures))
    values = sorted({v for v in cache.values() if v}, key=lambda v: (-len(v), v))
    return resolved, tuple(values)


def redact(text: str, secret_values: tuple[str, ...] | list[str]) -> str:
    """``text`` with every secret value replaced by ``********``."""
    for value in sorted(secret_values, key=len, reverse=True):
        if value:
            text = text.replace(value, REDACTED)
    return text

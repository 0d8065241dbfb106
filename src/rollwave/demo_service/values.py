"""Reading typed values out of the JSON config, with messages that name the exact key."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rollwave.errors import ConfigError


def read_number(raw: Mapping[str, Any], key: str, where: str, *, default: float,
                maximum: float | None = None, hint: str) -> float:
    """``raw[key]`` as a finite float in ``[0, maximum]``; ``default`` when absent or null."""
    value = raw.get(key)
    if value is None:
        return default
    bad = (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (maximum is not None and value > maximum)
    )
    if bad:
        bounds = f"between 0 and {maximum:g}" if maximum is not None else ">= 0"
        raise ConfigError(f"{where}.{key} must be a number {bounds}, got {value!r}", hint=hint)
    return float(value)


def read_bool(raw: Mapping[str, Any], key: str, where: str, *, hint: str) -> bool:
    """``raw[key]`` as a boolean; false when absent or null."""
    value = raw.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key} must be true or false, got {value!r}", hint=hint)
    return value


def json_kind(value: Any) -> str:
    """The JSON name of a value's type, for messages ("a list", "an object", "null")."""
    if value is None:
        return "null"
    for types, name in _KINDS:
        if isinstance(value, types):
            return name
    return type(value).__name__


_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "a boolean"),
    ((int, float), "a number"),
    (str, "a string"),
    (list, "a list"),
    (Mapping, "an object"),
)

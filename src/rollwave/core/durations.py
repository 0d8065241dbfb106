"""Durations as people write them in YAML: ``30s``, ``5m``, ``1h30m``, ``2d`` or plain seconds."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_SECONDS = 366 * 86400.0
"""Longest duration accepted (a year): longer ones are typos and overflow date arithmetic."""


def _checked(seconds: float, value: Any) -> float:
    if math.isnan(seconds):
        raise ValueError("a duration must be a number of seconds, not NaN")
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        shown = value if isinstance(value, int | float) else repr(str(value)[:40])
        raise ValueError(f"{shown} is longer than a year; write e.g. 30s, 5m, 1h30m or 2d")
    return seconds


def parse_duration(value: Any) -> float:
    """Seconds in ``value``.

    >>> parse_duration("1h30m")
    5400.0
    >>> parse_duration(45)
    45.0
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 30s, 5m, 1h30m")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return _checked(float(value), value)
    if not isinstance(value, str):
        raise ValueError("a duration is a number of seconds or text like 30s, 5m, 1h30m")
    text = value.strip().replace(" ", "")
    if not text:
        raise ValueError("empty duration")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return _checked(float(text), value)
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"{value[:40]!r} is not a duration; write e.g. 30s, 5m, 1h30m or 2d")
    return _checked(total, value)


def format_duration(seconds: float) -> str:
    """Short human form: ``90`` → ``1m30s``; ``0.25`` → ``250ms``; ``-90`` → ``-1m30s``."""
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if 0 < seconds < 1 and round(seconds * 1000) < 1000:
        return f"{max(1, round(seconds * 1000))}ms"
    whole = round(seconds)
    if whole == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


DURATION_PATTERN = r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d)\s*)+$|^\s*\d+(\.\d+)?\s*$"
"""What :func:`parse_duration` accepts as text (for the JSON Schema editors validate with)."""

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({
        "anyOf": [{"type": "number", "minimum": 0},
                  {"type": "string", "pattern": DURATION_PATTERN}],
        "description": "seconds, or text like 30s, 5m, 1h30m, 2d",
    }),
]
"""A pydantic field type: accepts ``30s`` / ``5m`` / seconds, stores float seconds."""

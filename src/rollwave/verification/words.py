"""Numbers in words for verification explanations: ``31.2%``, ``312 ms``, ``20s``, ``1,234``."""

from __future__ import annotations

import math

from rollwave.core.durations import format_duration


def number(value: float) -> str:
    """A count or amount without noise: ``500``, ``1,234``, ``12.5``, ``0.0417``."""
    if math.isinf(value) or math.isnan(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.3g}"


def quantity(value: float, unit: str) -> str:
    """``value`` in ``unit``: ratios as percentages, other units appended.

    >>> quantity(0.3123, "ratio"), quantity(312.4, "ms"), quantity(12.5, "req/s")
    ('31.2%', '312 ms', '12.5 req/s')
    """
    if unit == "ratio":
        return f"{number(value * 100)}%"
    if unit:
        return f"{number(value)} {unit}"
    return number(value)


def seconds(value: float) -> str:
    """A span of time: ``0.25s``, ``1.5s`` under ten seconds, else ``20s``, ``2m30s``."""
    if 0 < value < 10:
        return f"{value:.2f}".rstrip("0").rstrip(".") + "s"
    return format_duration(value)


def plural(count: float, noun: str) -> str:
    """``1 request``, ``3 requests``, ``12.5 requests``."""
    return f"{number(count)} {noun}{'' if count == 1 else 's'}"


def excerpt(text: str, limit: int = 200) -> str:
    """The start of ``text`` on one line, cut at ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"

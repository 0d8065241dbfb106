"""Small SVG charts drawn on the server (no JavaScript, no external library).

Every text that comes from data is escaped; colours are presentation attributes so the page's
Content-Security-Policy can forbid inline styles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

PALETTE = ("#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed")

UNIT_SCALE = {"ratio": (100.0, "%")}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.3f}".rstrip("0").rstrip(".")


def line_chart(series: Mapping[str, Sequence[Mapping[str, Any]]], *, unit: str = "",
               threshold: float | None = None, title: str = "", width: int = 360,
               height: int = 140) -> str:
    """An SVG line chart of ``{name: [{"at": s, "value": v}, ...]}`` with an optional threshold.

    ``at`` is seconds since the start of the verification window (the deploy finished just
    before 0). Points whose value is None are gaps. Returns "" when there is nothing to draw.
    """
    scale, suffix = UNIT_SCALE.get(unit, (1.0, f" {unit}" if unit else ""))
    lines: dict[str, list[tuple[float, float | None]]] = {}
    for name, points in series.items():
        pts: list[tuple[float, float | None]] = []
        for p in points:
            at = _num(p.get("at"))
            if at is None:
                continue
            value = _num(p.get("value"))
            pts.append((at, None if value is None else value * scale))
        if pts:
            lines[str(name)] = pts
    return _draw(lines, threshold, scale, suffix, title, width, height)


def _draw(lines: dict[str, list[tuple[float, float | None]]], threshold: float | None,
          scale: float, suffix: str, title: str, width: int, height: int) -> str:
    values = [v for pts in lines.values() for _, v in pts if v is not None]
    if not values:
        return ""
    limit = None if threshold is None else _num(threshold)
    if limit is not None:
        limit *= scale
    xs = [x for pts in lines.values() for x, _ in pts]
    x0, x1 = min(0.0, *xs), max(xs)
    top = max([*values, limit or 0.0]) * 1.15 or 1.0
    left, right, upper, lower = 44, 8, 18, 22
    plot_w, plot_h = width - left - right, height - upper - lower

    def px(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1.0) * plot_w

    def py(y: float) -> float:
        return upper + plot_h - y / top * plot_h

    tick = suffix if suffix == "%" else ""  # longer units go in the title, not on each tick
    if suffix and not tick:
        title = f"{title} ({suffix.strip()})" if title else suffix.strip()
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" role="img" aria-label="{escape(title or "chart")}">']
    if title:
        out.append(f'<text x="{left}" y="12" font-size="11" fill="#334155">'
                   f'{escape(title)}</text>')
    for frac in (0.0, 0.5, 1.0):
        y = py(top * frac / 1.15)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                   'stroke="#e2e8f0" stroke-width="1"/>')
        out.append(f'<text x="{left - 4}" y="{y + 3:.1f}" font-size="9" fill="#64748b" '
                   f'text-anchor="end">{escape(_fmt(top * frac / 1.15))}{escape(tick)}</text>')
    out.extend(f'<text x="{px(x):.1f}" y="{height - 6}" font-size="9" fill="#64748b" '
               f'text-anchor="middle">{escape(_fmt(x))}s</text>' for x in (x0, x1))
    if x0 <= 0 <= x1:
        out.append(f'<line x1="{px(0):.1f}" x2="{px(0):.1f}" y1="{upper}" '
                   f'y2="{upper + plot_h}" stroke="#94a3b8" stroke-dasharray="2 2"/>')
    if limit is not None:
        y = py(limit)
        out.append(f'<line class="threshold" x1="{left}" x2="{width - right}" y1="{y:.1f}" '
                   f'y2="{y:.1f}" stroke="#dc2626" stroke-dasharray="5 3" stroke-width="1.2"/>')
        out.append(f'<text x="{width - right}" y="{y - 3:.1f}" font-size="9" fill="#dc2626" '
                   f'text-anchor="end">limit {escape(_fmt(limit))}{escape(suffix)}</text>')
    for index, (name, pts) in enumerate(lines.items()):
        colour = PALETTE[index % len(PALETTE)]
        segments: list[list[str]] = [[]]
        for x, value in pts:
            if value is None:
                segments.append([])
                continue
            segments[-1].append(f"{px(x):.1f},{py(value):.1f}")
        out.extend(f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" '
                   f'points="{" ".join(seg)}"/>' for seg in segments if len(seg) > 1)
        out.extend(f'<circle cx="{px(x):.1f}" cy="{py(v):.1f}" r="2.2" fill="{colour}">'
                   f'<title>{escape(name)} at {escape(_fmt(x))}s: {escape(_fmt(v))}'
                   f'{escape(suffix)}</title></circle>' for x, v in pts if v is not None)
        if len(lines) > 1:
            out.append(f'<text x="{left + 6 + index * 90}" y="{upper + 10}" font-size="9" '
                       f'fill="{colour}">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def gauge(value: float | None, threshold: float | None, *, unit: str = "",
          width: int = 160) -> str:
    """A bar of ``value`` against ``threshold`` (for checks that kept no series)."""
    number, limit = _num(value), _num(threshold)
    if number is None or limit is None or limit <= 0:
        return ""
    scale, suffix = UNIT_SCALE.get(unit, (1.0, ""))
    top = max(number, limit) * 1.2
    filled = number / top * (width - 2)
    mark = limit / top * (width - 2)
    colour = "#dc2626" if number > limit else "#059669"
    return (f'<svg class="gauge" viewBox="0 0 {width} 14" width="{width}" height="14" role="img"'
            f' aria-label="{escape(_fmt(number * scale))}{escape(suffix)} of limit '
            f'{escape(_fmt(limit * scale))}{escape(suffix)}">'
            f'<rect x="1" y="3" width="{width - 2}" height="8" fill="#e2e8f0"/>'
            f'<rect x="1" y="3" width="{filled:.1f}" height="8" fill="{colour}"/>'
            f'<line x1="{mark + 1:.1f}" x2="{mark + 1:.1f}" y1="0" y2="14" stroke="#0f172a" '
            f'stroke-width="1.5"/></svg>')


def spark_bar(counts: Mapping[str, int], order: Sequence[str], classes: Mapping[str, str], *,
              width: int = 220, height: int = 12) -> str:
    """A stacked bar of state counts (a progress bar that shows every state)."""
    colours = {"ok": "#16a34a", "bad": "#dc2626", "warn": "#d97706", "active": "#2563eb",
               "info": "#0891b2", "muted": "#cbd5e1"}
    total = sum(counts.values())
    if not total:
        return ""
    x = 0.0
    parts = [f'<svg class="stack" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="progress">']
    for state in [*order, *sorted(set(counts) - set(order))]:
        n = counts.get(state, 0)
        if not n:
            continue
        w = n / total * width
        parts.append(f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" '
                     f'fill="{colours.get(classes.get(state, "muted"), "#cbd5e1")}">'
                     f'<title>{n} {escape(state.replace("_", " "))}</title></rect>')
        x += w
    parts.append("</svg>")
    return "".join(parts)

"""Content hashes and diffs of flag and segment definitions (their JSON API form).

The hash is over canonical JSON of the *parsed* definition, so YAML comments, key order and
formatting never count as a change; only what evaluation could see does.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from rollwave.flags.files import flag_to_data
from rollwave.flags.model import Flag, Segment

MAX_CHANGES = 50
MAX_VALUE_CHARS = 300


def definition_data(value: Flag | Segment) -> dict[str, Any]:
    """The stored JSON form of a flag or segment (defaults left out, ``key`` included)."""
    if isinstance(value, Flag):
        return flag_to_data(value)
    data: dict[str, Any] = value.model_dump(mode="json", exclude_defaults=True)
    data["key"] = value.key
    return data


def canonical(data: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(data: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``data``."""
    return hashlib.sha256(canonical(data).encode()).hexdigest()


def changes(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """The leaves that differ, as ``{"path", "before", "after"}`` (missing is ``None``).

    Lists of equal length are compared item by item; otherwise a list is one value. At most
    :data:`MAX_CHANGES` entries; long values are shortened (the history keeps them whole).
    """
    out: list[dict[str, Any]] = []
    _walk(before, after, path, out)
    return out[:MAX_CHANGES]


def definition_changes(kind: str, before: Any, after: Any) -> list[dict[str, Any]]:
    """:func:`changes` between two stored definitions with every default filled in.

    So switching ``enabled`` off reads ``enabled true → false`` rather than a vanished key.
    A creation or deletion is one entry for the whole definition.
    """
    if before is None or after is None:
        return changes(before, after)
    return changes(_full(kind, before), _full(kind, after))


def _full(kind: str, data: Any) -> Any:
    model = Flag if kind == "flag" else Segment
    try:
        return model.model_validate(data).model_dump(mode="json", exclude_none=True)
    except ValueError:
        return data


def _walk(before: Any, after: Any, path: str, out: list[dict[str, Any]]) -> None:
    if len(out) > MAX_CHANGES:
        return
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in sorted(set(before) | set(after), key=str):
            _walk(before.get(key), after.get(key), f"{path}.{key}" if path else str(key), out)
        return
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            _walk(old, new, f"{path}[{index}]", out)
        return
    if before != after:
        out.append({"path": path or "(definition)", "before": _short(before),
                    "after": _short(after)})


def _short(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else canonical(value)
    if len(text) <= MAX_VALUE_CHARS:
        return value
    return text[:MAX_VALUE_CHARS] + "…"


def describe_changes(entries: list[dict[str, Any]], limit: int = 3) -> str:
    """``fallthrough.split[0].weight 5 → 25; enabled false → true`` (first ``limit``)."""
    def shown(value: Any) -> str:
        return "(none)" if value is None else canonical(value)
    parts = [f"{e['path']} {shown(e['before'])} → {shown(e['after'])}" for e in entries[:limit]]
    if len(entries) > limit:
        parts.append(f"and {len(entries) - limit} more")
    return "; ".join(parts)


def unified_diff(before: Any, after: Any, *, before_name: str = "before",
                 after_name: str = "after") -> str:
    """A unified diff of the YAML forms of two definitions ("" when equal)."""
    from rollwave.yamlio import dump_yaml

    def lines(data: Any) -> list[str]:
        if data is None:
            return []
        shown = {k: v for k, v in data.items() if k != "key"} if isinstance(data, dict) else data
        return dump_yaml(shown).splitlines(keepends=True)
    return "".join(difflib.unified_diff(lines(before), lines(after), before_name, after_name))

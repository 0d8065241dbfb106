"""Config diffs per key path, and a release's diffs grouped across the fleet.

:func:`diff` compares two rendered configs key by key. Secret references never appear in a
change: each side shows ``<secret 1a2b3c4d>`` (a hash of the reference), so a diff says a secret
changed or not and nothing more.

:func:`release_diff` diffs every ``(instance, service)`` of two renders (what runs now → what
the release gives) and :func:`group_diffs` folds instances with identical change-sets into one
group, so 500 customers with the same change read as one line plus the exceptions. Values that
contain an instance's own customer id or instance name are compared with those replaced by
``{customer}`` / ``{instance}``, so a templated change such as ``https://{customer}.example.com``
groups across customers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from rollwave.config.merge import same
from rollwave.config.model import SECRET_MARKER, RenderedConfig, display_path
from rollwave.core.hashing import content_hash
from rollwave.yamlio import JsonPath

ChangeKind = Literal["added", "removed", "changed"]
_SIGN = {"added": "+", "removed": "-", "changed": "~"}
ConfigKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Change:
    """One key path that differs; ``old``/``new`` are display-safe (secrets masked)."""

    path: str
    kind: ChangeKind
    old: Any = None
    new: Any = None
    secret: bool = False
    text: str = ""

    def render(self) -> str:
        """``~ db.pool_size: 10 → 40``, ``+ beta: true``, ``~ db.password: secret changed``."""
        return self.text or _text(self.path, self.kind, self.old, self.new, self.secret)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "old": self.old, "new": self.new,
                "secret": self.secret}


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _text(path: str, kind: ChangeKind, old: Any, new: Any, secret: bool) -> str:
    sign = _SIGN[kind]
    if secret and kind == "changed":
        return f"{sign} {path}: secret changed ({_short(old)} → {_short(new)})"
    if kind == "added":
        return f"{sign} {path}: {_short(new)}"
    if kind == "removed":
        return f"{sign} {path} (was {_short(old)})"
    return f"{sign} {path}: {_short(old)} → {_short(new)}"


def _is_secret(node: Any) -> bool:
    return type(node) is dict and len(node) == 1 and SECRET_MARKER in node


def mask(node: Any) -> Any:
    """``node`` with every secret reference replaced by ``<secret HASH>``."""
    if _is_secret(node):
        return f"<secret {content_hash(node[SECRET_MARKER], 8)}>"
    if type(node) is dict:
        return {key: mask(value) for key, value in node.items()}
    if type(node) is list:
        return [mask(item) for item in node]
    return node


def _has_secret(node: Any) -> bool:
    if _is_secret(node):
        return True
    if type(node) is dict:
        return any(_has_secret(v) for v in node.values())
    if type(node) is list:
        return any(_has_secret(v) for v in node)
    return False


def _change(path: JsonPath, kind: ChangeKind, old: Any, new: Any) -> Change:
    secret = _has_secret(old) or _has_secret(new)
    shown_old, shown_new = mask(old), mask(new)
    where = display_path(path)
    return Change(path=where, kind=kind, old=shown_old, new=shown_new, secret=secret,
                  text=_text(where, kind, shown_old, shown_new, secret))


def _diff(old: Any, new: Any, path: JsonPath, out: list[Change]) -> None:
    if old is new:
        return
    if type(old) is dict and type(new) is dict and not _is_secret(old) and not _is_secret(new):
        for key, value in old.items():
            if key not in new:
                out.append(_change((*path, key), "removed", value, None))
            else:
                _diff(value, new[key], (*path, key), out)
        for key, value in new.items():
            if key not in old:
                out.append(_change((*path, key), "added", None, value))
        return
    if type(old) is list and type(new) is list and len(old) == len(new):
        for index, (left, right) in enumerate(zip(old, new, strict=True)):
            _diff(left, right, (*path, index), out)
        return
    if not same(old, new):
        out.append(_change(path, "changed", old, new))


def _values(config: RenderedConfig | Mapping[str, Any] | None) -> Mapping[str, Any]:
    if config is None:
        return {}
    if isinstance(config, RenderedConfig):
        return config.values
    return config


def diff(old: RenderedConfig | Mapping[str, Any] | None,
         new: RenderedConfig | Mapping[str, Any] | None) -> list[Change]:
    """Changes from ``old`` to ``new`` per key path (None stands for "no config")."""
    if isinstance(old, RenderedConfig) and isinstance(new, RenderedConfig) and (
            old.hash == new.hash):
        return []
    out: list[Change] = []
    _diff(dict(_values(old)), dict(_values(new)), (), out)
    return out


class _Differ:
    """Diffs many configs, remembering the result for each pair of shared top-level sections."""

    def __init__(self) -> None:
        self._memo: dict[tuple[str, int, int], tuple[Any, Any, tuple[Change, ...]]] = {}

    def diff(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[Change, ...]:
        out: list[Change] = []
        for key, value in old.items():
            if key not in new:
                out.append(_change((key,), "removed", value, None))
                continue
            other = new[key]
            if value is other:
                continue
            if type(value) is dict or type(value) is list:
                memo_key = (key, id(value), id(other))
                hit = self._memo.get(memo_key)
                if hit is None or hit[0] is not value or hit[1] is not other:
                    found: list[Change] = []
                    _diff(value, other, (key,), found)
                    hit = (value, other, tuple(found))
                    self._memo[memo_key] = hit
                out.extend(hit[2])
            else:
                _diff(value, other, (key,), out)
        out.extend(_change((key,), "added", None, value) for key, value in new.items()
                   if key not in old)
        return tuple(out)


def release_diff(old: Mapping[ConfigKey, RenderedConfig], new: Mapping[ConfigKey, RenderedConfig],
                 ) -> dict[ConfigKey, tuple[Change, ...]]:
    """The changes of every ``(instance, service)`` in either render (empty when unchanged)."""
    differ = _Differ()
    out: dict[ConfigKey, tuple[Change, ...]] = {}
    for key in {**old, **new}:
        before, after = old.get(key), new.get(key)
        if before is not None and after is not None and before.hash == after.hash:
            out[key] = ()
        else:
            out[key] = differ.diff(_values(before), _values(after))
    return out


@dataclass(frozen=True, slots=True)
class DiffGroup:
    """Instances that get exactly the same changes; ``changes`` are ``(service, text)``."""

    changes: tuple[tuple[str, str], ...]
    instances: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.instances)

    def examples(self, limit: int = 3) -> tuple[str, ...]:
        return self.instances[:limit]

    def to_dict(self, examples: int = 3) -> dict[str, Any]:
        return {"count": self.count, "examples": list(self.examples(examples)),
                "changes": [{"service": s, "change": c} for s, c in self.changes]}


@dataclass(frozen=True, slots=True)
class DiffSummary:
    """A release's config changes across the fleet: groups largest first, then unchanged."""

    groups: tuple[DiffGroup, ...]
    unchanged: tuple[str, ...]

    @property
    def total(self) -> int:
        return len(self.unchanged) + sum(group.count for group in self.groups)

    @property
    def changed(self) -> int:
        return sum(group.count for group in self.groups)

    def to_dict(self, examples: int = 3) -> dict[str, Any]:
        return {"total": self.total, "changed": self.changed, "unchanged": len(self.unchanged),
                "groups": [group.to_dict(examples) for group in self.groups]}

    def render_text(self, max_groups: int = 20, examples: int = 3) -> str:
        """One line per group of instances with identical changes, then the changes."""
        noun = "group" if len(self.groups) == 1 else "groups"
        lines = [f"config changes: {self.total:,} instances, {self.changed:,} changed in "
                 f"{len(self.groups):,} {noun}, {len(self.unchanged):,} unchanged"]
        for group in self.groups[:max_groups]:
            shown = ", ".join(group.examples(examples))
            more = f", … {group.count - examples:,} more" if group.count > examples else ""
            label = "instance" if group.count == 1 else "instances"
            lines.append(f"  {group.count:,} {label} ({shown}{more}):")
            lines.extend(f"      {service}: {text}" for service, text in group.changes)
        hidden = len(self.groups) - max_groups
        if hidden > 0:
            rest = sum(g.count for g in self.groups[max_groups:])
            lines.append(f"  … {hidden:,} more groups ({rest:,} instances)")
        return "\n".join(lines)


@lru_cache(maxsize=4096)
def _token_pattern(token: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(token)}(?![A-Za-z0-9])")


def _normalizer(instance: str) -> Callable[[str], str]:
    customer, _, name = instance.partition("/")
    pairs = [(token, label) for token, label in ((customer, "{customer}"), (name, "{instance}"))
             if token]

    def normalize(text: str) -> str:
        for token, label in pairs:
            if token in text:  # cheap test first: most change texts name no instance
                text = _token_pattern(token).sub(label, text)
        return text

    return normalize


def group_diffs(diffs: Mapping[ConfigKey, Sequence[Change]] | Iterable[
        tuple[ConfigKey, Sequence[Change]]]) -> DiffSummary:
    """Group instances whose change-sets (across all their services) are identical."""
    items = diffs.items() if isinstance(diffs, Mapping) else diffs
    per_instance: dict[str, list[tuple[str, Change]]] = {}
    for (instance, service), changes in items:
        found = per_instance.setdefault(instance, [])
        found.extend((service, change) for change in changes)
    groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
    unchanged: list[str] = []
    for instance, changes in per_instance.items():
        if not changes:
            unchanged.append(instance)
            continue
        normalize = _normalizer(instance)
        key = tuple(sorted((service, normalize(change.render())) for service, change in changes))
        groups.setdefault(key, []).append(instance)
    ordered = sorted((DiffGroup(changes=key, instances=tuple(sorted(names)))
                      for key, names in groups.items()),
                     key=lambda g: (-g.count, g.instances[0]))
    return DiffSummary(groups=tuple(ordered), unchanged=tuple(sorted(unchanged)))

"""Fault injection for the demo service: which configured faults apply, and their combined effect.

Pure functions of data (no I/O, no clock). A fault is declared in the instance's config::

    {"faults": [{"when": {"version": "1.1*", "config": {"reports.legacy_export": true}},
                 "error_rate": 0.35, "latency_ms": 250}]}

and applies when every condition of its ``when`` holds (a fault without ``when`` always applies).
See ``docs/demo-service.md`` for every key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Final

from rollwave.demo_service.values import json_kind, read_bool, read_number
from rollwave.errors import ConfigError

FAULT_KEYS: Final = frozenset(
    {"name", "when", "error_rate", "latency_ms", "latency_jitter_ms", "crash_on_start",
     "memory_growth_mb_per_min", "unhealthy"}
)
WHEN_KEYS: Final = frozenset({"version", "config"})
_GLOB_CHARS: Final = frozenset("*?[")
_HINT: Final = "fix the 'faults' section of the instance config (see docs/demo-service.md)"


class _Missing:
    """Marker for a dotted path that is absent from the config."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()


@dataclass(frozen=True)
class Fault:
    """One configured fault: its conditions and what it does when they hold."""

    index: int = 0
    name: str | None = None
    when_version: str | None = None
    when_config: Mapping[str, Any] = field(default_factory=dict)
    error_rate: float = 0.0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    crash_on_start: bool = False
    memory_growth_mb_per_min: float = 0.0
    unhealthy: bool = False

    @property
    def label(self) -> str:
        """How messages name this fault: its ``name`` or its position, e.g. ``faults[0]``."""
        return self.name or f"faults[{self.index}]"

    def matches(self, config: Mapping[str, Any], version: str) -> bool:
        """True when every condition of ``when`` holds for this config and version."""
        if self.when_version is not None and not version_matches(self.when_version, version):
            return False
        return all(
            json_equal(lookup(config, path), expected)
            for path, expected in self.when_config.items()
        )

    def describe(self) -> str:
        """A one-line summary of what the fault does, for start-up logs."""
        parts = []
        if self.error_rate:
            parts.append(f"error_rate={self.error_rate:g}")
        if self.latency_ms or self.latency_jitter_ms:
            parts.append(f"latency_ms={self.latency_ms:g}±{self.latency_jitter_ms:g}")
        if self.memory_growth_mb_per_min:
            parts.append(f"memory_growth_mb_per_min={self.memory_growth_mb_per_min:g}")
        if self.unhealthy:
            parts.append("unhealthy")
        if self.crash_on_start:
            parts.append("crash_on_start")
        return f"{self.label}: {' '.join(parts) or 'no effect'}"


@dataclass(frozen=True)
class Effect:
    """The combined effect of every active fault (the identity when none is active)."""

    error_rate: float = 0.0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    memory_growth_mb_per_min: float = 0.0
    unhealthy: bool = False
    crash_on_start: bool = False


def version_matches(pattern: str, version: str) -> bool:
    """``version`` equals ``pattern``, or matches it as a glob (``1.1*``, ``2.?``, ``1.[23]``)."""
    if version == pattern:
        return True
    return bool(_GLOB_CHARS & set(pattern)) and fnmatchcase(version, pattern)


def lookup(config: Any, path: str) -> Any:
    """The value at a dotted ``path`` in ``config``, or ``MISSING``.

    Nested objects and flat dotted keys are both understood, so ``reports.legacy_export``
    finds ``{"reports": {"legacy_export": true}}`` as well as ``{"reports.legacy_export": true}``
    (a literal key wins over nesting). Lists are indexed by number: ``sites.0.name``.
    """
    if isinstance(config, Mapping):
        if path in config:
            return config[path]
        parts = path.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            head = ".".join(parts[:cut])
            if head in config:
                found = lookup(config[head], ".".join(parts[cut:]))
                if found is not MISSING:
                    return found
        return MISSING
    if isinstance(config, list) and path:
        head, _, rest = path.partition(".")
        if head.isdigit() and int(head) < len(config):
            item = config[int(head)]
            return lookup(item, rest) if rest else item
    return MISSING


def json_equal(actual: Any, expected: Any) -> bool:
    """Equality of JSON values where ``true`` is not ``1`` and ``1`` equals ``1.0``."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if isinstance(actual, int | float) and isinstance(expected, int | float):
        return actual == expected
    if isinstance(actual, Mapping) and isinstance(expected, Mapping):
        return actual.keys() == expected.keys() and all(
            json_equal(actual[key], expected[key]) for key in actual
        )
    if isinstance(actual, list) and isinstance(expected, list):
        return len(actual) == len(expected) and all(
            json_equal(a, e) for a, e in zip(actual, expected, strict=True)
        )
    if actual is MISSING or expected is MISSING:
        return False
    return type(actual) is type(expected) and bool(actual == expected)


def parse_faults(config: Mapping[str, Any]) -> list[Fault]:
    """Every fault declared under ``faults`` in ``config``, validated.

    Raises ``ConfigError`` naming the first bad key, e.g. ``faults[1].error_rate``.
    """
    raw = config.get("faults", [])
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"'faults' must be a list of objects, got {json_kind(raw)}", hint=_HINT)
    return [_parse_fault(index, item) for index, item in enumerate(raw)]


def active_faults(config: Mapping[str, Any], version: str) -> list[Fault]:
    """The faults of ``config`` whose conditions hold for ``version`` and ``config`` itself.

    >>> config = {"reports": {"legacy_export": True},
    ...           "faults": [{"when": {"version": "1.1*",
    ...                                "config": {"reports.legacy_export": True}},
    ...                       "error_rate": 0.35}]}
    >>> [f.error_rate for f in active_faults(config, "1.1.2")]
    [0.35]
    >>> active_faults(config, "1.0")
    []
    """
    return [fault for fault in parse_faults(config) if fault.matches(config, version)]


def combine(faults: Iterable[Fault]) -> Effect:
    """One ``Effect`` for several faults: error rates as independent failures (1-Π(1-p)),
    latencies, jitters and memory growth added, ``unhealthy``/``crash_on_start`` if any."""
    ok_probability = 1.0
    latency = jitter = growth = 0.0
    unhealthy = crash = False
    for fault in faults:
        ok_probability *= 1.0 - fault.error_rate
        latency += fault.latency_ms
        jitter += fault.latency_jitter_ms
        growth += fault.memory_growth_mb_per_min
        unhealthy = unhealthy or fault.unhealthy
        crash = crash or fault.crash_on_start
    return Effect(
        error_rate=1.0 - ok_probability,
        latency_ms=latency,
        latency_jitter_ms=jitter,
        memory_growth_mb_per_min=growth,
        unhealthy=unhealthy,
        crash_on_start=crash,
    )


def _parse_fault(index: int, raw: Any) -> Fault:
    where = f"faults[{index}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be an object, got {json_kind(raw)}", hint=_HINT)
    unknown = sorted(set(raw) - FAULT_KEYS)
    if unknown:
        raise ConfigError(
            f"{where} has unknown key {unknown[0]!r}",
            hint=f"known keys: {', '.join(sorted(FAULT_KEYS))}",
        )
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"{where}.name must be a string, got {json_kind(name)}", hint=_HINT)
    when_version, when_config = _parse_when(where, raw.get("when"))
    return Fault(
        index=index,
        name=name,
        when_version=when_version,
        when_config=when_config,
        error_rate=read_number(raw, "error_rate", where, default=0.0, maximum=1.0, hint=_HINT),
        latency_ms=read_number(raw, "latency_ms", where, default=0.0, hint=_HINT),
        latency_jitter_ms=read_number(raw, "latency_jitter_ms", where, default=0.0, hint=_HINT),
        crash_on_start=read_bool(raw, "crash_on_start", where, hint=_HINT),
        memory_growth_mb_per_min=read_number(
            raw, "memory_growth_mb_per_min", where, default=0.0, hint=_HINT
        ),
        unhealthy=read_bool(raw, "unhealthy", where, hint=_HINT),
    )


def _parse_when(where: str, raw: Any) -> tuple[str | None, dict[str, Any]]:
    if raw is None:
        return None, {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}.when must be an object, got {json_kind(raw)}", hint=_HINT)
    unknown = sorted(set(raw) - WHEN_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}.when has unknown key {unknown[0]!r}", hint="known keys: config, version"
        )
    version = raw.get("version")
    if version is not None and (not isinstance(version, str) or not version):
        raise ConfigError(
            f"{where}.when.version must be a non-empty string (exact or glob), "
            f"got {json_kind(version)}",
            hint=_HINT,
        )
    conditions = raw.get("config", {})
    if conditions is None:
        conditions = {}
    if not isinstance(conditions, Mapping) or not all(
        isinstance(key, str) and key for key in conditions
    ):
        raise ConfigError(
            f"{where}.when.config must be an object of dotted paths to values",
            hint='e.g. {"reports.legacy_export": true}',
        )
    return version, dict(conditions)

"""Where flags live: the :class:`FlagStore` Protocol and an in-memory implementation.

The database-backed store (:class:`rollwave.flags.dbstore.DatabaseFlagStore`, with audit log,
per-flag history and revert) implements the same Protocol. Every write takes an ``actor`` and a
``reason`` and returns a :class:`Change` with the before and after values, so an audit trail
can record who, when, why and what. Every write
bumps the store-wide ``revision``; subscribers are told the new revision (from the writing
thread), which is how the HTTP layer pushes changes to SSE clients.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

from rollwave.flags.errors import FlagConflict, FlagNotFound, SegmentNotFound
from rollwave.flags.model import Flag, FlagSet, Segment

T = TypeVar("T", Flag, Segment)
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Versioned(Generic[T]):
    """A stored value with its per-item version (bumped on every change of that item).

    ``meta`` carries what a store knows beyond that (the database store: ``managed_by``
    ``git``/``api``, ``git_path``, ``drifted``, ``created_at``/``created_by``).
    """

    value: T
    version: int
    updated_at: datetime
    updated_by: str
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Change:
    """One write: what changed, who did it, when and why, with before and after."""

    kind: Literal["flag", "segment"]
    key: str
    before: Flag | Segment | None
    after: Flag | Segment | None
    actor: str
    reason: str
    at: datetime
    revision: int
    version: int


@runtime_checkable
class FlagStore(Protocol):
    """Storage of flags and segments, shared by the HTTP API, the CLI and rollout services."""

    def revision(self) -> int:
        """The store-wide revision: it grows with every write."""
        ...

    def flagset(self) -> tuple[FlagSet, int]:
        """Every flag and segment, with the revision they were read at."""
        ...

    def get_flag(self, key: str) -> Versioned[Flag] | None:
        """One flag with its version, or None."""
        ...

    def put_flag(self, flag: Flag, *, actor: str, reason: str = "",
                 expected_version: int | None = None) -> Change:
        """Create or replace a flag; ``expected_version`` (0 = must not exist) guards races."""
        ...

    def delete_flag(self, key: str, *, actor: str, reason: str = "",
                    expected_version: int | None = None) -> Change:
        """Delete a flag; raises FlagNotFound if absent."""
        ...

    def get_segment(self, key: str) -> Versioned[Segment] | None:
        """One segment with its version, or None."""
        ...

    def put_segment(self, segment: Segment, *, actor: str, reason: str = "",
                    expected_version: int | None = None) -> Change:
        """Create or replace a segment."""
        ...

    def delete_segment(self, key: str, *, actor: str, reason: str = "") -> Change:
        """Delete a segment; raises SegmentNotFound if absent."""
        ...

    def subscribe(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call ``callback(revision)`` after each write; returns an unsubscribe function."""
        ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class InMemoryFlagStore:
    """A thread-safe :class:`FlagStore` in memory, for tests, demos and the SDK's test server."""

    def __init__(self, flagset: FlagSet | None = None, *, clock: Clock = _utcnow,
                 actor: str = "bootstrap") -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self._revision = 0
        self._flags: dict[str, Versioned[Flag]] = {}
        self._segments: dict[str, Versioned[Segment]] = {}
        self._subscribers: list[Callable[[int], None]] = []
        self.changes: list[Change] = []
        for segment in (flagset.segments.values() if flagset else []):
            self.put_segment(segment, actor=actor, reason="initial load")
        for flag in (flagset.flags.values() if flagset else []):
            self.put_flag(flag, actor=actor, reason="initial load")

    def revision(self) -> int:
        with self._lock:
            return self._revision

    def flagset(self) -> tuple[FlagSet, int]:
        with self._lock:
            return FlagSet(flags={k: v.value for k, v in self._flags.items()},
                           segments={k: v.value for k, v in self._segments.items()}), \
                self._revision

    def get_flag(self, key: str) -> Versioned[Flag] | None:
        with self._lock:
            return self._flags.get(key)

    def get_segment(self, key: str) -> Versioned[Segment] | None:
        with self._lock:
            return self._segments.get(key)

    def list_changes(self, key: str | None = None) -> list[Change]:
        """Every change so far (optionally of one key), oldest first."""
        with self._lock:
            return [c for c in self.changes if key is None or c.key == key]

    def _write(self, kind: Literal["flag", "segment"], key: str,
               table: dict[str, Versioned[T]], value: T | None, actor: str, reason: str,
               expected_version: int | None) -> Change:
        with self._lock:
            current = table.get(key)
            version = current.version if current else 0
            if expected_version is not None and expected_version != version:
                raise FlagConflict(f"{kind} '{key}' is at version {version}, "
                                   f"not {expected_version}")
            if value is None and current is None:
                missing = FlagNotFound if kind == "flag" else SegmentNotFound
                raise missing(f"{kind} '{key}' does not exist")
            now = self._clock()
            self._revision += 1
            if value is None:
                del table[key]
            else:
                table[key] = Versioned(value, version + 1, now, actor)
            change = Change(kind=kind, key=key, before=current.value if current else None,
                            after=value, actor=actor, reason=reason, at=now,
                            revision=self._revision, version=version + 1)
            self.changes.append(change)
            subscribers = list(self._subscribers)
            revision = self._revision
        for callback in subscribers:
            try:
                callback(revision)
            except Exception:  # noqa: S112 - a broken subscriber must not break writes
                continue
        return change

    def put_flag(self, flag: Flag, *, actor: str, reason: str = "",
                 expected_version: int | None = None) -> Change:
        return self._write("flag", flag.key, self._flags, flag, actor, reason, expected_version)

    def delete_flag(self, key: str, *, actor: str, reason: str = "",
                    expected_version: int | None = None) -> Change:
        return self._write("flag", key, self._flags, None, actor, reason, expected_version)

    def put_segment(self, segment: Segment, *, actor: str, reason: str = "",
                    expected_version: int | None = None) -> Change:
        return self._write("segment", segment.key, self._segments, segment, actor, reason,
                           expected_version)

    def delete_segment(self, key: str, *, actor: str, reason: str = "") -> Change:
        return self._write("segment", key, self._segments, None, actor, reason, None)

    def subscribe(self, callback: Callable[[int], None]) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)
        return unsubscribe


def set_killed(store: FlagStore, key: str, killed: bool, *, actor: str, reason: str = "",
               environment: str | None = None) -> Change:
    """Kill (or revive) a flag everywhere, or in one environment."""
    current = store.get_flag(key)
    if current is None:
        raise FlagNotFound(f"flag '{key}' does not exist")
    flag = current.value
    if environment is None:
        updated = flag.model_copy(update={"killed": killed})
    else:
        from rollwave.flags.model import EnvironmentSettings
        settings = flag.environments.get(environment) or EnvironmentSettings(enabled=flag.enabled)
        environments = {**flag.environments,
                        environment: settings.model_copy(update={"killed": killed})}
        updated = flag.model_copy(update={"environments": environments})
    return store.put_flag(updated, actor=actor, reason=reason or ("kill" if killed else "revive"),
                          expected_version=current.version)

"""The database-backed :class:`~rollwave.flags.store.FlagStore`: audit log, history, revert.

Every write is one transaction that bumps the store-wide revision (``flag_meta``), writes the
definition, appends a ``flag_history`` row (before and after, in full) and an event (who, why
and the changed fields) — so the audit trail can never disagree with the state. Writes to flags
serialize on the revision row, which also makes ``expected_version`` checks race-free on
PostgreSQL.

Other processes' writes (the CLI, another server, a worker's guarded rollout) are seen through
:mod:`rollwave.flags.watch`: a background thread polls the revision (SQLite) or LISTENs for
``NOTIFY rollwave_flags`` (PostgreSQL, with polling as fallback) and calls the subscribers, so
SSE streams push them within about a tenth of a second.

Use :func:`rollwave.flags.store_for` to get the one store per database of a process::

    store = rollwave.flags.store_for(app)          # app: rollwave.services.context.App
    store.put_flag(flag, actor="alice", reason="PAY-12: beta for acme")
    store.history("new-checkout"); store.revert("new-checkout", actor="alice", reason="oops")
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, cast

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from rollwave.errors import NotFound
from rollwave.flags.diffing import (
    content_hash,
    definition_changes,
    definition_data,
    describe_changes,
)
from rollwave.flags.errors import FlagConflict, FlagNotFound, SegmentNotFound
from rollwave.flags.model import Flag, FlagSet, Segment
from rollwave.flags.store import Change, Versioned
from rollwave.storage.events import append_event
from rollwave.storage.flag_tables import flag_history, flag_meta, flag_segments, flags

if TYPE_CHECKING:
    from rollwave.flags.watch import RevisionWatcher
    from rollwave.services.context import App
    from rollwave.storage.db import Database

log = logging.getLogger("rollwave.flags")

Kind = Literal["flag", "segment"]
NOTIFY_CHANNEL = "rollwave_flags"
_KEEP: Any = object()


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _table(kind: Kind) -> sa.Table:
    return flags if kind == "flag" else flag_segments


def _parse(kind: Kind, data: Any) -> Flag | Segment:
    return Flag.model_validate(data) if kind == "flag" else Segment.model_validate(data)


def _missing(kind: Kind, key: str) -> NotFound:
    return FlagNotFound(f"flag '{key}' does not exist") if kind == "flag" else \
        SegmentNotFound(f"segment '{key}' does not exist")


@dataclass(frozen=True, slots=True)
class FlagRecord:
    """A stored flag or segment with its bookkeeping (source, git hash, times)."""

    kind: Kind
    key: str
    data: dict[str, Any]
    version: int
    content_hash: str
    git_path: str | None
    git_hash: str | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str

    @property
    def managed_by(self) -> str:
        """``git`` when imported by ``rollwave flags sync``, else ``api``."""
        return "git" if self.git_hash is not None else "api"

    @property
    def drifted(self) -> bool:
        """True when a git-managed item was changed (API, CLI, rollout) since the last sync."""
        return self.git_hash is not None and self.git_hash != self.content_hash

    def value(self) -> Flag | Segment:
        """The parsed definition."""
        return _parse(self.kind, self.data)

    def meta(self) -> dict[str, Any]:
        """What the API shows next to the definition."""
        return {"managed_by": self.managed_by, "git_path": self.git_path,
                "drifted": self.drifted, "content_hash": self.content_hash,
                "created_at": self.created_at.isoformat(), "created_by": self.created_by}


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One row of a flag's or segment's history."""

    id: int
    kind: str
    key: str
    version: int
    revision: int
    action: str
    actor: str
    reason: str
    at: datetime
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    rollout_id: str | None

    def changes(self) -> list[dict[str, Any]]:
        """The changed fields (path, before, after)."""
        return definition_changes(self.kind, self.before, self.after)

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        """JSON form; ``full`` includes the whole before and after definitions."""
        data: dict[str, Any] = {
            "id": self.id, "kind": self.kind, "key": self.key, "version": self.version,
            "revision": self.revision, "action": self.action, "actor": self.actor,
            "reason": self.reason, "at": self.at.isoformat(), "rollout_id": self.rollout_id,
            "changes": self.changes()}
        if full:
            data.update(before=self.before, after=self.after)
        return data


def _record(kind: Kind, row: Any) -> FlagRecord:
    return FlagRecord(kind=kind, key=row.key, data=dict(row.definition), version=row.version,
                      content_hash=row.content_hash, git_path=row.git_path,
                      git_hash=row.git_hash, created_at=row.created_at,
                      created_by=row.created_by, updated_at=row.updated_at,
                      updated_by=row.updated_by)


def _history(row: Any) -> HistoryEntry:
    return HistoryEntry(id=int(row.id), kind=row.kind, key=row.key, version=row.version,
                        revision=int(row.revision), action=row.action, actor=row.actor,
                        reason=row.reason, at=row.at, before=row.before, after=row.after,
                        rollout_id=row.rollout_id)


_VERBS = {"created": "created", "updated": "changed", "deleted": "deleted",
          "reverted": "reverted", "synced": "synced from git", "killed": "killed",
          "revived": "revived", "rollout": "moved", "imported": "imported"}


class FlagTransaction:
    """Reads and writes in one database transaction (see :meth:`DatabaseFlagStore.transaction`).

    ``conn`` is the transaction's connection: services write their own rows with it (a flag
    rollout's state) so they commit or roll back together with the flag change.
    """

    def __init__(self, store: DatabaseFlagStore, conn: Connection) -> None:
        self.store = store
        self.conn = conn
        self.revision: int | None = None
        self.changes: list[Change] = []

    def record(self, kind: Kind, key: str) -> FlagRecord | None:
        """The stored item (locked for update on PostgreSQL once a write has started)."""
        table = _table(kind)
        query = sa.select(table).where(table.c.key == key)
        if self.revision is not None and self.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        return None if row is None else _record(kind, row)

    def get_flag(self, key: str) -> Versioned[Flag] | None:
        """A flag as of this transaction."""
        record = self.record("flag", key)
        if record is None:
            return None
        return Versioned(cast(Flag, record.value()), record.version, record.updated_at,
                         record.updated_by, record.meta())

    def _bump(self) -> int:
        if self.revision is None:
            updated = self.conn.execute(flag_meta.update().where(flag_meta.c.id == 1)
                                        .values(revision=flag_meta.c.revision + 1)).rowcount
            if not updated:
                self.conn.execute(flag_meta.insert().values(id=1, revision=1))
            self.revision = int(self.conn.execute(
                sa.select(flag_meta.c.revision).where(flag_meta.c.id == 1)).scalar_one())
        return self.revision

    def _next_version(self, kind: Kind, key: str, current: FlagRecord | None) -> int:
        if current is not None:
            return current.version + 1
        last = self.conn.execute(sa.select(sa.func.max(flag_history.c.version)).where(
            flag_history.c.kind == kind, flag_history.c.key == key)).scalar()
        return int(last or 0) + 1

    def write(self, kind: Kind, key: str, value: Flag | Segment | None, *, actor: str,
              reason: str = "", expected_version: int | None = None, action: str | None = None,
              rollout_id: str | None = None, git: Any = _KEEP) -> Change:
        """Create, replace (``value``) or delete (``None``) one item, with history and event.

        ``git`` is ``(path, hash)`` to mark the item as synced from git, ``None`` to clear the
        mark, or left out to keep it. Raises FlagConflict when ``expected_version`` (0 = must
        not exist) does not match, FlagNotFound/SegmentNotFound when deleting nothing.
        """
        revision = self._bump()  # first: serializes writers before anything is read
        current = self.record(kind, key)
        version = current.version if current else 0
        if expected_version is not None and expected_version != version:
            who = f" by {current.updated_by} at {current.updated_at:%Y-%m-%d %H:%M:%S}Z" \
                if current else ""
            raise FlagConflict(f"{kind} '{key}' is at version {version}{who}, not "
                               f"{expected_version}")
        if value is None and current is None:
            raise _missing(kind, key)
        now = self.store.clock()
        table = _table(kind)
        before = current.data if current else None
        after = definition_data(value) if value is not None else None
        new_version = self._next_version(kind, key, current)
        git_path, git_hash = (current.git_path, current.git_hash) if current else (None, None)
        if git is not _KEEP:
            git_path, git_hash = git if git is not None else (None, None)
        if after is None:
            self.conn.execute(table.delete().where(table.c.key == key))
        else:
            fields = {"definition": after, "version": new_version,
                      "content_hash": content_hash(after), "git_path": git_path,
                      "git_hash": git_hash, "updated_at": now, "updated_by": actor}
            if current is None:
                self.conn.execute(table.insert().values(key=key, created_at=now,
                                                        created_by=actor, **fields))
            else:
                self.conn.execute(table.update().where(table.c.key == key).values(**fields))
        action = action or ("created" if current is None else
                            "deleted" if after is None else "updated")
        diff = definition_changes(kind, before, after)
        drift = ""
        if git_hash is not None and after is not None and content_hash(after) != git_hash:
            drift = (f"; {kind} is managed in git ({git_path}) and now differs from it — "
                     "update the file or run `rollwave flags sync --force` to restore it")
        summary = describe_changes(diff) if action not in ("created", "deleted") else ""
        message = (f"{actor} {_VERBS.get(action, action)} {kind} {key} (version {new_version})"
                   + (f": {summary}" if summary else "")
                   + (f" — {reason}" if reason else "") + drift)
        seq = append_event(self.conn, f"{kind}.{action}", message, actor=actor, at=now, data={
            "key": key, "version": new_version, "revision": revision, "reason": reason,
            "changes": diff, "rollout": rollout_id, "drifted": bool(drift)})
        self.conn.execute(flag_history.insert().values(
            kind=kind, key=key, version=new_version, revision=revision, action=action,
            actor=actor, reason=reason, at=now, before=before, after=after, event_seq=seq,
            rollout_id=rollout_id))
        change = Change(kind=kind, key=key, before=_parse(kind, before) if before else None,
                        after=value, actor=actor, reason=reason, at=now, revision=revision,
                        version=new_version)
        self.changes.append(change)
        return change

    def mark_git(self, kind: Kind, key: str, path: str, git_hash: str, *, actor: str) -> None:
        """Record that the stored item equals the git definition (no content change)."""
        table = _table(kind)
        self.conn.execute(table.update().where(table.c.key == key)
                          .values(git_path=path, git_hash=git_hash))
        append_event(self.conn, f"{kind}.adopted", f"{actor} recorded {kind} {key} as managed "
                     f"in git ({path}); the stored definition already matches the file",
                     actor=actor, data={"key": key, "path": path})


class DatabaseFlagStore:
    """A :class:`~rollwave.flags.store.FlagStore` in the Rollwave database (SQLite/PostgreSQL).

    ``poll_interval`` is how often another process's writes are looked for (default 0.1 s on
    SQLite; on PostgreSQL LISTEN/NOTIFY delivers them at once and polling every second is only
    the fallback).
    """

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = _utcnow,
                 poll_interval: float | None = None) -> None:
        self.db = db
        self.clock = clock
        self.poll_interval = poll_interval if poll_interval is not None else (
            0.1 if db.is_sqlite else 1.0)
        self._lock = threading.RLock()
        self._subscribers: list[Callable[[int], None]] = []
        self._revision = -1
        self._cache: tuple[FlagSet, int] | None = None
        self._watcher: RevisionWatcher | None = None
        self._pid = os.getpid()

    # -- revision and change notification ----------------------------------------------------

    def read_revision(self) -> int:
        """The revision in the database now (one small query)."""
        with self.db.read() as conn:
            value = conn.execute(sa.select(flag_meta.c.revision)
                                 .where(flag_meta.c.id == 1)).scalar()
        return int(value or 0)

    def revision(self) -> int:
        """The store-wide revision: cached while the change watcher runs, else read now."""
        watcher = self._watcher
        if watcher is not None and watcher.running and self._pid == os.getpid():
            return self._revision
        return self._observe(self.read_revision())

    def _observe(self, revision: int) -> int:
        """Note ``revision`` (from any source); tell subscribers when it is new."""
        with self._lock:
            if revision <= self._revision:
                return self._revision
            self._revision = revision
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(revision)
            except Exception:
                log.exception("flag change subscriber failed")
        return revision

    def subscribe(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call ``callback(revision)`` after every write, from this process or any other."""
        with self._lock:
            self._subscribers.append(callback)
        self.start_watching()

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)
        return unsubscribe

    def start_watching(self) -> None:
        """Start the background watcher of other processes' writes (idempotent, fork-safe)."""
        from rollwave.flags.watch import RevisionWatcher

        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's thread did not come along
                self._pid = os.getpid()
                self._watcher = None
            if self._watcher is None or not self._watcher.running:
                self._revision = max(self._revision, self.read_revision())
                self._watcher = RevisionWatcher(self, self.poll_interval)
                self._watcher.start()

    def close(self) -> None:
        """Stop the watcher thread (the store stays usable, reading the revision each time)."""
        with self._lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    # -- transactions --------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[FlagTransaction]:
        """One write transaction; subscribers hear about it after it commits."""
        with self.db.begin() as conn:
            tx = FlagTransaction(self, conn)
            yield tx
            if tx.revision is not None and not self.db.is_sqlite:
                conn.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, str(tx.revision))))
        if tx.revision is not None:
            self._observe(tx.revision)

    # -- reads ---------------------------------------------------------------------------------

    def flagset(self) -> tuple[FlagSet, int]:
        """Every flag and segment with the revision they were read at (cached per revision)."""
        cached = self._cache
        current = self.revision()
        if cached is not None and cached[1] == current:
            return cached
        with self.db.read() as conn:
            revision = int(conn.execute(sa.select(flag_meta.c.revision)
                                        .where(flag_meta.c.id == 1)).scalar() or 0)
            flag_rows = conn.execute(sa.select(flags.c.key, flags.c.definition)).all()
            segment_rows = conn.execute(sa.select(flag_segments.c.key,
                                                  flag_segments.c.definition)).all()
        parsed_flags: dict[str, Flag] = {}
        parsed_segments: dict[str, Segment] = {}
        for key, data in segment_rows:
            try:
                parsed_segments[key] = Segment.model_validate(data)
            except ValidationError as exc:
                log.error("stored segment %s no longer validates, left out: %s", key, exc)
        for key, data in flag_rows:
            try:
                parsed_flags[key] = Flag.model_validate(data)
            except ValidationError as exc:
                log.error("stored flag %s no longer validates, left out: %s", key, exc)
        result = (FlagSet(flags=parsed_flags, segments=parsed_segments), revision)
        self._cache = result
        self._observe(revision)
        return result

    def records(self, kind: Kind = "flag") -> list[FlagRecord]:
        """Every stored flag (or segment) with its bookkeeping, by key."""
        table = _table(kind)
        with self.db.read() as conn:
            rows = conn.execute(sa.select(table).order_by(table.c.key)).all()
        return [_record(kind, row) for row in rows]

    def record(self, key: str, kind: Kind = "flag") -> FlagRecord | None:
        """One stored flag (or segment) with its bookkeeping."""
        table = _table(kind)
        with self.db.read() as conn:
            row = conn.execute(sa.select(table).where(table.c.key == key)).first()
        return None if row is None else _record(kind, row)

    def get_flag(self, key: str) -> Versioned[Flag] | None:
        """One flag with its version and bookkeeping, or None."""
        record = self.record(key, "flag")
        if record is None:
            return None
        return Versioned(cast(Flag, record.value()), record.version, record.updated_at,
                         record.updated_by, record.meta())

    def get_segment(self, key: str) -> Versioned[Segment] | None:
        """One segment with its version, or None."""
        record = self.record(key, "segment")
        if record is None:
            return None
        return Versioned(cast(Segment, record.value()), record.version, record.updated_at,
                         record.updated_by, record.meta())

    def history(self, key: str | None = None, *, kind: Kind = "flag", limit: int = 100,
                newest_first: bool = True) -> list[HistoryEntry]:
        """Changes of one item (or of every item of ``kind``), newest first by default."""
        query = sa.select(flag_history).where(flag_history.c.kind == kind)
        if key is not None:
            query = query.where(flag_history.c.key == key)
        order = flag_history.c.id.desc() if newest_first else flag_history.c.id
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(order).limit(limit)).all()
        return [_history(row) for row in rows]

    # -- writes --------------------------------------------------------------------------------

    def put_flag(self, flag: Flag, *, actor: str, reason: str = "",
                 expected_version: int | None = None, action: str | None = None,
                 rollout_id: str | None = None) -> Change:
        """Create or replace a flag; ``expected_version`` (0 = must not exist) guards races."""
        with self.transaction() as tx:
            return tx.write("flag", flag.key, flag, actor=actor, reason=reason,
                            expected_version=expected_version, action=action,
                            rollout_id=rollout_id)

    def delete_flag(self, key: str, *, actor: str, reason: str = "",
                    expected_version: int | None = None) -> Change:
        """Delete a flag (its history stays); raises FlagNotFound if absent."""
        with self.transaction() as tx:
            return tx.write("flag", key, None, actor=actor, reason=reason,
                            expected_version=expected_version)

    def put_segment(self, segment: Segment, *, actor: str, reason: str = "",
                    expected_version: int | None = None) -> Change:
        """Create or replace a segment."""
        with self.transaction() as tx:
            return tx.write("segment", segment.key, segment, actor=actor, reason=reason,
                            expected_version=expected_version)

    def delete_segment(self, key: str, *, actor: str, reason: str = "") -> Change:
        """Delete a segment; raises SegmentNotFound if absent."""
        with self.transaction() as tx:
            return tx.write("segment", key, None, actor=actor, reason=reason)

    def revert(self, key: str, *, actor: str, reason: str = "", to_version: int | None = None,
               kind: Kind = "flag", expected_version: int | None = None) -> Change:
        """Undo the last change of ``key`` (or go back to ``to_version``) as a new change.

        Reverting a creation deletes the item; reverting a deletion restores it. The revert is
        itself recorded (action ``reverted``), so reverting twice redoes the change.
        """
        with self.transaction() as tx:
            rows = tx.conn.execute(sa.select(flag_history).where(
                flag_history.c.kind == kind, flag_history.c.key == key)
                .order_by(flag_history.c.id.desc())).all()
            if not rows:
                raise _missing(kind, key)
            entries = [_history(row) for row in rows]
            if to_version is None:
                last = entries[0]
                target, what = last.before, (f"before version {last.version} ({last.action} by "
                                             f"{last.actor})")
            else:
                found = next((e for e in entries if e.version == to_version), None)
                if found is None:
                    known = ", ".join(str(e.version) for e in reversed(entries[:20]))
                    raise FlagConflict(f"{kind} '{key}' has no version {to_version}",
                                       hint=f"versions: {known}; see `rollwave flags audit "
                                            f"{key}`")
                target, what = found.after, f"version {to_version}"
            value = _parse(kind, target) if target is not None else None
            if value is None and tx.record(kind, key) is None:
                raise FlagConflict(f"{kind} '{key}' is already deleted",
                                   hint="nothing to revert")
            text = f"revert to {what}" + (f": {reason}" if reason else "")
            return tx.write(kind, key, value, actor=actor, reason=text, action="reverted",
                            expected_version=expected_version)


_stores: weakref.WeakValueDictionary[int, DatabaseFlagStore] = weakref.WeakValueDictionary()
_stores_lock = threading.Lock()


def store_for(app: App) -> DatabaseFlagStore:
    """The flag store of ``app``'s database: one per database per process, shared.

    Dashboards, API routes, CLI commands and rollouts call this; the store it returns watches
    other processes' writes once anything subscribes to it.
    """
    return store_for_db(app.db())


def store_for_db(db: Database) -> DatabaseFlagStore:
    """The shared store of one :class:`~rollwave.storage.db.Database`."""
    with _stores_lock:
        store = _stores.get(id(db))
        if store is None or store.db is not db:
            store = DatabaseFlagStore(db)
            _stores[id(db)] = store
        return store

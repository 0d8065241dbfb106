"""Database access: a SQLite file by default, PostgreSQL when several workers share state.

:class:`Database` hands out short transactions. On SQLite every write transaction starts with
``BEGIN IMMEDIATE`` (so two writers never deadlock upgrading read locks) and writers in one
process queue on a lock instead of spinning in SQLite's busy handler, which is what keeps 50
deploy threads fast. The schema is created and upgraded by Alembic on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from rollwave.errors import StorageError

T = TypeVar("T")
DB_FILE = "rollwave.db"
DBOS_FILE = "dbos.db"


def normalize_url(url: str) -> str:
    """SQLAlchemy URL for ``url``: plain ``postgresql://`` gets the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def plain_url(url: str) -> str:
    """The driver-less URL (what DBOS and humans expect)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def default_url(state_dir: Path) -> str:
    return f"sqlite:///{state_dir / DB_FILE}"


class Database:
    """One database, its engines and its migrations."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        #: Set when a rollout was recorded: an orchestrator in this process starts it at once
        #: instead of at its next poll (``rollwave serve``; other processes still poll).
        self.work_added = threading.Event()
        self._write_lock: threading.RLock | None = threading.RLock() if self.is_sqlite else None
        try:
            if self.is_sqlite:
                path = sa.engine.make_url(self.url).database
                if path and path != ":memory:":
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                self.engine = _sqlite_engine(self.url, immediate=True)
                self.read_engine = _sqlite_engine(self.url, immediate=False)
            else:
                # room for a wave's parallel deploy threads plus the API; stale connections are
                # recycled rather than pinged before every checkout (a ping per transaction
                # doubled the round trips of a rollout)
                self.engine = sa.create_engine(self.url, pool_size=20, max_overflow=80,
                                               pool_recycle=1800, pool_timeout=60)
                self.read_engine = self.engine
            if migrate:
                from rollwave.storage.migrate import upgrade

                upgrade(self)
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot open database {plain_url(url)}: {_reason(exc)}") from None

    @property
    def dbos_url(self) -> str:
        """System database for DBOS: a sibling SQLite file, or the same PostgreSQL database."""
        if self.is_sqlite:
            path = sa.engine.make_url(self.url).database or DB_FILE
            return f"sqlite:///{Path(path).with_name(DBOS_FILE)}"
        return plain_url(self.url)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction; commits on success, rolls back on error."""
        lock = self._write_lock if self._write_lock is not None else nullcontext()
        with lock:
            try:
                with self.engine.begin() as conn:
                    yield conn
            except OperationalError as exc:
                raise StorageError(f"database write failed: {_reason(exc)}") from None

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work(conn)`` in one write transaction and return its result.

        (A group commit of concurrent callers was measured here and did not beat the
        in-process write lock on SQLite: see docs/adr/0001.)
        """
        with self.begin() as conn:
            return work(conn)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection (a consistent snapshot on PostgreSQL and SQLite WAL)."""
        try:
            with self.read_engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise StorageError(f"database read failed: {_reason(exc)}") from None

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0]


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=8 if immediate else 16,
        max_overflow=8,
    )

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine

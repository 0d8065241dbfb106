"""A wave's finished-instance writes, committed together with the next instance's claim.

When an instance of a wave finishes, the wave starts the next one at once, and starting it
means a write transaction (claiming the next instances: PENDING → DEPLOYING, recorded before
anything is deployed). The finished instance's own last write (its outcome, events, deployment
log and fleet state) rides in that same transaction instead of one of its own, which is what a
single SQLite writer serving dozens of deploy threads is short of.

Safety: a carried write lands a few milliseconds later than it would on its own, in the same
process, before the wave step returns. If the process dies first, the instance is still
DEPLOYING (or VERIFYING) in the database, and resuming drives it again level-triggered: its
deployer reports the version it runs, so nothing is deployed twice, and the outcome is recorded
then. Carrying stops (:meth:`Carry.close`) once the wave launches nothing more, so no write
ever waits behind a long verification of another instance.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from rollwave.storage.db import Database

Work = Callable[[Any], object]
T = TypeVar("T")
Item = TypeVar("Item")


class Carry(Generic[Item]):
    """Writes waiting for the wave's next write transaction (thread-safe).

    Two kinds: ``work`` callables, run one after the other, and plain ``items`` that
    ``bulk(conn, items)`` writes all at once (a few statements for any number of them).
    """

    def __init__(self, bulk: Callable[[Any, list[Item]], object] | None = None) -> None:
        self._bulk = bulk
        self._lock = threading.Lock()
        self._works: list[Work] = []
        self._items: list[Item] = []
        self._open = True

    def defer(self, work: Work) -> bool:
        """Keep ``work`` for the next write; False when carrying has stopped (write it now)."""
        with self._lock:
            if not self._open:
                return False
            self._works.append(work)
            return True

    def add(self, item: Item) -> bool:
        """Keep ``item`` for the next write's bulk; False when carrying has stopped."""
        with self._lock:
            if not self._open or self._bulk is None:
                return False
            self._items.append(item)
            return True

    def write(self, db: Database, work: Callable[[Any], T]) -> T:
        """Run the carried writes and then ``work`` in one transaction; ``work``'s result."""
        with self._lock:
            works, self._works = self._works, []
            items, self._items = self._items, []
        if not works and not items:
            return db.write(work)

        def both(conn: Any) -> T:
            self._run(conn, works, items)
            return work(conn)

        try:
            return db.write(both)
        except BaseException:
            with self._lock:  # not written: they go with the next transaction (or close)
                self._works[:0] = works
                self._items[:0] = items
            raise

    def close(self, db: Database) -> None:
        """Stop carrying and write whatever is still carried."""
        with self._lock:
            self._open = False
            works, self._works = self._works, []
            items, self._items = self._items, []
        if works or items:
            db.write(lambda conn: self._run(conn, works, items))

    def _run(self, conn: Any, works: list[Work], items: list[Item]) -> None:
        if items and self._bulk is not None:
            self._bulk(conn, items)
        for work in works:
            work(conn)

"""A wave's finished-instance writes, committed together with the next instance's claim.

When an instance of a wave finishes, the wave starts the next one at once, and starting it
means a write transaction (PENDING → DEPLOYING, recorded before anything is deployed). The
finished instance's own last write (its outcome, events, deployment log and fleet state) can
ride in that same transaction instead of one of its own: one write per instance instead of two,
which is what a single SQLite writer serving dozens of deploy threads is short of.

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
from typing import Any

from rollwave.storage.db import Database

Work = Callable[[Any], object]


class Carry:
    """Writes waiting for the wave's next write transaction (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._works: list[Work] = []
        self._open = True

    def defer(self, work: Work) -> bool:
        """Keep ``work`` for the next write; False when carrying has stopped (write it now)."""
        with self._lock:
            if not self._open:
                return False
            self._works.append(work)
            return True

    def write(self, db: Database, work: Callable[[Any], bool]) -> bool:
        """Run the carried writes and then ``work`` in one transaction; ``work``'s result."""
        with self._lock:
            carried, self._works = self._works, []
        if not carried:
            return db.write(work)

        def both(conn: Any) -> bool:
            for earlier in carried:
                earlier(conn)
            return work(conn)

        try:
            return db.write(both)
        except BaseException:
            with self._lock:  # not written: they go with the next transaction (or close)
                self._works[:0] = carried
            raise

    def close(self, db: Database) -> None:
        """Stop carrying and write whatever is still carried."""
        with self._lock:
            self._open = False
            carried, self._works = self._works, []
        if carried:
            def all_of(conn: Any) -> None:
                for work in carried:
                    work(conn)
            db.write(all_of)

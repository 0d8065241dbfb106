"""Seeing other processes' flag writes: LISTEN/NOTIFY on PostgreSQL, revision polling anywhere.

A :class:`RevisionWatcher` is one daemon thread per store. On PostgreSQL it holds a dedicated
autocommit connection LISTENing on ``rollwave_flags`` (writers ``NOTIFY`` with the new revision
in the transaction that made it, so it arrives exactly at commit) and still reads the revision
every ``poll_interval`` seconds in case a notification was missed (a reconnect, a proxy that
drops them). On SQLite, where there is no notification, it reads the one-row revision table
every ``poll_interval`` seconds (0.1 s by default: a primary-key read of a few microseconds).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any

from rollwave.errors import RollwaveError

if TYPE_CHECKING:
    from rollwave.flags.dbstore import DatabaseFlagStore

log = logging.getLogger("rollwave.flags")


class RevisionWatcher:
    """Background thread feeding the database's flag revision to a store."""

    def __init__(self, store: DatabaseFlagStore, poll_interval: float) -> None:
        self.store = store
        self.poll_interval = max(0.01, poll_interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rollwave-flag-watch",
                                        daemon=True)
        self._listen: Any = None
        self.listening = False

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread.is_alive() and not self._stop.is_set()

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and close the LISTEN connection."""
        self._stop.set()
        listen = self._listen
        if listen is not None:
            with contextlib.suppress(Exception):
                listen.close()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.store.db.is_sqlite and self._listen is None:
                self._connect()
            if self._listen is not None:
                self._wait_for_notifications()
            else:
                self._stop.wait(self.poll_interval)
            self._poll()

    def _poll(self) -> None:
        try:
            self.store._observe(self.store.read_revision())
        except RollwaveError as exc:  # database briefly unavailable: try again next time
            log.debug("flag revision poll failed: %s", exc)

    def _connect(self) -> None:
        from rollwave.flags.dbstore import NOTIFY_CHANNEL
        from rollwave.storage.db import plain_url

        try:
            import psycopg

            self._listen = psycopg.connect(plain_url(self.store.db.url), autocommit=True)
            self._listen.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.listening = True
        except Exception as exc:
            log.warning("cannot LISTEN for flag changes (polling every %.1fs instead): %s",
                        self.poll_interval, exc)
            self._listen = None
            self.listening = False
            self._stop.wait(self.poll_interval)

    def _wait_for_notifications(self) -> None:
        listen = self._listen
        try:
            for notify in listen.notifies(timeout=self.poll_interval):
                try:
                    self.store._observe(int(notify.payload))
                except ValueError:
                    continue
                if self._stop.is_set():
                    break
        except Exception as exc:
            if not self._stop.is_set():
                log.info("flag LISTEN connection lost (%s); reconnecting", exc)
            with contextlib.suppress(Exception):
                listen.close()
            self._listen = None
            self.listening = False

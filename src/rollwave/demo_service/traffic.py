"""Background traffic: the service loads itself so its metrics move without any client.

Requests arrive as a Poisson process at ``traffic.rps`` and go straight through
``DemoApp.handle`` (no HTTP, no sleeping), so even a dozen instances on a small machine cost
next to nothing.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Final

from rollwave.demo_service.app import WORK_ROUTE, DemoApp

#: Shortest wait between wake-ups; at high rates several requests are handled per wake-up.
MIN_WAIT: Final = 0.005
#: After a longer stall (machine suspended, debugger), skip the backlog instead of bursting.
MAX_BACKLOG: Final = 1.0


class TrafficGenerator:
    """A daemon thread issuing simulated ``GET /api/work`` requests at ``rps`` per second."""

    def __init__(self, app: DemoApp, rps: float, rng: random.Random,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.rps = rps
        self.rng = rng
        self.sent = 0
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)

    def start(self) -> None:
        """Start issuing requests (does nothing when ``rps`` is 0)."""
        if self.rps > 0:
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and wait for it to finish."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def tick(self, now: float, next_at: float) -> float:
        """Handle every request due by ``now``; return when the next one is due."""
        if now - next_at > MAX_BACKLOG:
            next_at = now
        while next_at <= now:
            self.app.handle(WORK_ROUTE, self.rng, simulated=True)
            self.sent += 1
            next_at += self.rng.expovariate(self.rps)
        return next_at

    def _run(self) -> None:
        next_at = self._clock() + self.rng.expovariate(self.rps)
        while not self._stop.is_set():
            now = self._clock()
            next_at = self.tick(now, next_at)
            self._stop.wait(max(next_at - now, MIN_WAIT))

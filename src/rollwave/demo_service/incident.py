"""Infrastructure incidents for the demo: a file every instance watches, whatever its version.

A deploy changes one instance; an incident (a slow database, a noisy neighbour) hits every
instance at once, old version or new. With ``incident_file: /path/incident.json`` in the
config, each instance re-reads that file at most once a second: while it exists, its
``error_rate`` and ``latency_ms`` add to every request. An optional ``starts_at`` (Unix
seconds) makes every instance start at that same moment, as a real incident would, instead of
whenever each one next reads the file. Deleting the file ends the incident.
That lets a demo stage "an infrastructure incident during a rollout" without touching code.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Incident:
    """What an incident adds to every request."""

    error_rate: float = 0.0
    latency_ms: float = 0.0


NONE = Incident()


class IncidentWatch:
    """The current incident from ``path`` (re-read at most every ``every`` seconds)."""

    def __init__(self, path: Path, *, every: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.path = path
        self.every = every
        self._clock = clock
        self._wall = wall
        self._checked = -every
        self._current = NONE
        self._starts_at = 0.0
        self._lock = threading.Lock()

    def current(self) -> Incident:
        with self._lock:
            now = self._clock()
            if now - self._checked >= self.every:
                self._checked = now
                self._current, self._starts_at = self._read()
            if self._current is not NONE and self._wall() < self._starts_at:
                return NONE
            return self._current

    def _read(self) -> tuple[Incident, float]:
        """The incident in the file and when it starts (0: at once)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return NONE, 0.0  # no file (or a half-written one): no incident
        if not isinstance(data, dict):
            return NONE, 0.0
        try:
            rate = min(1.0, max(0.0, float(data.get("error_rate", 0.0))))
            latency = max(0.0, float(data.get("latency_ms", 0.0)))
            starts_at = float(data.get("starts_at", 0.0))
        except (TypeError, ValueError):
            return NONE, 0.0
        return Incident(error_rate=rate, latency_ms=latency), starts_at

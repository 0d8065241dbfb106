"""The demo service's request handling, shared by real HTTP requests and simulated traffic.

``DemoApp.handle`` answers one request path. Real requests (from ``server``) wait out the
work's latency; simulated ones (from ``traffic``) only record it, so background load costs
microseconds, yet both go through the same code and land in the same metrics.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from rollwave.demo_service.faults import Effect
from rollwave.demo_service.incident import IncidentWatch
from rollwave.demo_service.metrics import ServiceMetrics
from rollwave.demo_service.settings import TrafficSettings

JSON: Final = "application/json"
WORK_ROUTE: Final = "/api/work"
ROUTES: Final = ("/health", "/version", "/metrics", WORK_ROUTE)
#: The spread (sigma of the underlying normal) of the lognormal baseline latency.
LATENCY_SIGMA: Final = 0.5


@dataclass(frozen=True)
class Identity:
    """What an instance says it is: on /health, /version and ``demo_info``."""

    version: str
    config_hash: str
    instance: str
    pid: int
    started_at: datetime


@dataclass(frozen=True)
class Response:
    """One answer: status, body and how long the work takes (``delay``, seconds)."""

    status: int
    body: bytes
    content_type: str = JSON
    delay: float = 0.0


def make_rng(seed: int | None = None) -> random.Random:
    """A random generator for simulated latency and errors (statistics, not security)."""
    return random.Random(seed)  # noqa: S311


def route_label(path: str) -> str:
    """The bounded ``route`` label for ``path``: a known route, ``/api/*`` or ``other``."""
    if path in ROUTES:
        return path
    if path == "/api" or path.startswith("/api/"):
        return "/api/*"
    return "other"


class DemoApp:
    """Answers requests for one instance, with the combined effect of its active faults."""

    def __init__(self, identity: Identity, effect: Effect, traffic: TrafficSettings,
                 metrics: ServiceMetrics, *, sleep: Callable[[float], None] = time.sleep,
                 timer: Callable[[], float] = time.perf_counter,
                 incident: IncidentWatch | None = None) -> None:
        self.incident = incident
        self.identity = identity
        self.effect = effect
        self.traffic = traffic
        self.metrics = metrics
        self._sleep = sleep
        self._timer = timer
        self.error_rate = 1.0 - (1.0 - traffic.baseline_error_rate) * (1.0 - effect.error_rate)
        metrics.prime(WORK_ROUTE)

    def handle(self, path: str, rng: random.Random, *, simulated: bool = False) -> Response:
        """Answer ``path`` and record it in the metrics.

        A real request sleeps for the work's latency; a ``simulated`` one only adds it to the
        recorded duration.
        """
        started = self._timer()
        route = route_label(path)
        if route in (WORK_ROUTE, "/api/*"):
            response = self._work(path, rng)
        elif route == "/health":
            response = self._health()
        elif route == "/version":
            response = self._version()
        elif route == "/metrics":
            response = Response(200, self.metrics.render(), self.metrics.content_type)
        else:
            response = _json(404, {"error": f"no route {path}", "routes": [*ROUTES, "/api/..."]})
        if response.delay > 0 and not simulated:
            self._sleep(response.delay)
        elapsed = self._timer() - started
        if simulated:
            elapsed += response.delay
        self.metrics.observe(route, response.status, elapsed)
        return response

    def work_latency(self, rng: random.Random) -> float:
        """Seconds one unit of work takes: lognormal baseline plus fault latency and jitter."""
        millis = 0.0
        median = self.traffic.baseline_latency_ms
        if median > 0:
            millis += rng.lognormvariate(math.log(median), LATENCY_SIGMA)
        if self.effect.latency_ms or self.effect.latency_jitter_ms:
            jitter = self.effect.latency_jitter_ms
            millis += max(0.0, self.effect.latency_ms + rng.uniform(-jitter, jitter))
        if self.incident is not None:
            millis += self.incident.current().latency_ms
        return millis / 1000.0

    def _work(self, path: str, rng: random.Random) -> Response:
        delay = self.work_latency(rng)
        error_rate = self.error_rate
        if self.incident is not None:
            error_rate = 1.0 - (1.0 - error_rate) * (1.0 - self.incident.current().error_rate)
        if rng.random() < error_rate:
            body = {"ok": False, "error": "internal error while doing the work",
                    "instance": self.identity.instance, "version": self.identity.version}
            return _json(500, body, delay)
        body = {"ok": True, "path": path, "instance": self.identity.instance,
                "version": self.identity.version, "took_ms": round(delay * 1000, 3)}
        return _json(200, body, delay)

    def _health(self) -> Response:
        status = "unhealthy" if self.effect.unhealthy else "ok"
        body = {"status": status, "version": self.identity.version,
                "config_hash": self.identity.config_hash, "instance": self.identity.instance}
        return _json(503 if self.effect.unhealthy else 200, body)

    def _version(self) -> Response:
        ident = self.identity
        return _json(200, {
            "version": ident.version, "config_hash": ident.config_hash,
            "instance": ident.instance, "pid": ident.pid,
            "started_at": ident.started_at.isoformat(timespec="seconds"),
        })


def _json(status: int, body: dict[str, Any], delay: float = 0.0) -> Response:
    return Response(status, json.dumps(body, sort_keys=True).encode("utf-8"), JSON, delay)

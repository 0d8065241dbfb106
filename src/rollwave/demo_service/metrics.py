"""The demo service's Prometheus metrics, kept in their own registry (never the global one)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

#: Request duration buckets from 1 ms to 5 s.
DURATION_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)
MIB: Final = 1024 * 1024
_FALLBACK_RSS: Final = 32 * MIB


class ServiceMetrics:
    """Request counters, latency histogram, simulated memory and build info of one instance.

    ``memory_growth_mb_per_min`` makes ``demo_memory_bytes`` grow linearly from start-up on top
    of the process's real resident memory; nothing is actually allocated.
    """

    content_type: Final = CONTENT_TYPE_LATEST

    def __init__(self, *, version: str, config_hash: str, instance: str,
                 memory_growth_mb_per_min: float = 0.0,
                 clock: Callable[[], float] = time.monotonic,
                 resident_bytes: Callable[[], int] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "demo_requests_total", "Requests handled, by route and HTTP status.",
            ["route", "status"], registry=self.registry,
        )
        self.duration = Histogram(
            "demo_request_duration_seconds", "Time to handle a request, by route.",
            ["route"], buckets=DURATION_BUCKETS, registry=self.registry,
        )
        self.memory = Gauge(
            "demo_memory_bytes", "Memory the service reports using (simulated growth included).",
            registry=self.registry,
        )
        self.info = Gauge(
            "demo_info", "Always 1; labels say what this instance runs.",
            ["version", "config_hash", "instance"], registry=self.registry,
        )
        self.info.labels(version=version, config_hash=config_hash, instance=instance).set(1)
        self._clock = clock
        self._started = clock()
        self._growth_per_second = memory_growth_mb_per_min * MIB / 60.0
        self._resident = resident_bytes or resident_memory_bytes
        self.memory.set_function(self.memory_bytes)
        _register_process_metrics(self.registry)

    def prime(self, route: str, statuses: tuple[int, ...] = (200, 500)) -> None:
        """Create ``route``'s series at zero so rates exist before the first error."""
        for status in statuses:
            self.requests.labels(route=route, status=str(status))
        self.duration.labels(route=route)

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Count one request and record how long it took."""
        self.requests.labels(route=route, status=str(status)).inc()
        self.duration.labels(route=route).observe(seconds)

    def memory_bytes(self) -> float:
        """Real resident memory plus the simulated growth since start-up."""
        elapsed = max(0.0, self._clock() - self._started)
        return float(self._resident()) + self._growth_per_second * elapsed

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return bytes(generate_latest(self.registry))


def resident_memory_bytes() -> int:
    """The process's resident set size (peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return _FALLBACK_RSS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _register_process_metrics(registry: CollectorRegistry) -> None:
    """``process_start_time_seconds`` (and CPU/memory where /proc exists) on every platform."""
    if os.path.exists("/proc/self/stat"):
        ProcessCollector(registry=registry)
        return
    start = Gauge(  # pragma: no cover - non-Linux
        "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
        registry=registry,
    )
    start.set(time.time())  # pragma: no cover

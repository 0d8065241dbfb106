"""Verification test helpers: exposition text, a fake clock, simulated and scripted instances."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rollwave.adapters.metrics import build_sources
from rollwave.adapters.metrics.scrape import ScrapeOptions, ScrapeSource
from rollwave.ports.metrics import MetricSources
from tests.services import free_port

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, math.inf)


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


def exposition(requests: Mapping[tuple[str, str], float] | None = None, *,
               buckets: Mapping[str, Mapping[float, float]] | None = None,
               start: float | None = 1000.0, extra: str = "") -> str:
    """A demo-service-like exposition: ``requests[(route, status)]`` and per-route buckets."""
    lines = ["# HELP demo_requests_total Requests handled.",
             "# TYPE demo_requests_total counter"]
    for (route, status), value in (requests or {}).items():
        lines.append(f'demo_requests_total{{route="{route}",status="{status}"}} {value}')
    lines += ["# HELP demo_request_duration_seconds Time to handle a request.",
              "# TYPE demo_request_duration_seconds histogram"]
    for route, counts in (buckets or {}).items():
        for bound, count in counts.items():
            lines.append(
                f'demo_request_duration_seconds_bucket{{le="{_le(bound)}",route="{route}"}} {count}'
            )
        total = counts.get(math.inf, max(counts.values(), default=0.0))
        lines.append(f'demo_request_duration_seconds_count{{route="{route}"}} {total}')
        lines.append(f'demo_request_duration_seconds_sum{{route="{route}"}} 0')
    if start is not None:
        lines += ["# TYPE process_start_time_seconds gauge", f"process_start_time_seconds {start}"]
    return "\n".join(lines) + "\n" + extra


class FakeClock:
    """A monotonic clock that only moves when slept on."""

    def __init__(self, now: float = 100.0) -> None:
        self.start = now
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    @property
    def elapsed(self) -> float:
        return self.now - self.start


@dataclass
class Traffic:
    """Cumulative counters of an instance serving ``rps`` requests per second.

    ``error_ratio`` of them answer 500; every request takes ``latency`` seconds.
    """

    rps: float = 20.0
    error_ratio: float = 0.0
    latency: float = 0.02
    started: float = 1000.0

    def counters(self, seconds: float) -> tuple[dict[tuple[str, str], float], dict[float, float]]:
        total = math.floor(self.rps * seconds)
        errors = math.floor(total * self.error_ratio)
        requests = {("/api/work", "200"): float(total - errors),
                    ("/api/work", "500"): float(errors)}
        buckets = {b: float(total if self.latency <= b else 0) for b in BOUNDS}
        return requests, buckets

    def render(self, seconds: float) -> str:
        requests, buckets = self.counters(seconds)
        return exposition(requests, buckets={"/api/work": buckets}, start=self.started)


@dataclass
class SimulatedInstance:
    """A /metrics endpoint as a function of a fake clock: ``fetch`` for a ScrapeSource.

    ``phases`` switch to other traffic at given seconds (a phase with another ``started``
    is a restarted process: its counters begin again at zero); ``down`` lists (from, to) spans
    in which the endpoint refuses connections; every fetch time is recorded. Its own scrapes
    appear as ``route="/metrics"`` requests, as the demo service counts them.
    """

    clock: FakeClock
    traffic: Traffic = field(default_factory=Traffic)
    phases: list[tuple[float, Traffic]] = field(default_factory=list)
    down: list[tuple[float, float]] = field(default_factory=list)
    fetched: list[float] = field(default_factory=list)

    def fetch(self, url: str, timeout: float) -> tuple[int, str]:
        from rollwave.verification.http import UnreachableError

        seconds = self.clock.elapsed
        self.fetched.append(seconds)
        if any(a <= seconds < b for a, b in self.down):
            raise UnreachableError(f"cannot connect to {url}: connection refused")
        requests, buckets, started = self.counters_at(seconds)
        requests[("/metrics", "200")] = float(len(self.fetched))
        return 200, exposition(requests, buckets={"/api/work": buckets}, start=started)

    def counters_at(self, seconds: float) -> tuple[dict[tuple[str, str], float],
                                                   dict[float, float], float]:
        phases = [(0.0, self.traffic), *self.phases]
        requests: dict[tuple[str, str], float] = {}
        buckets: dict[float, float] = dict.fromkeys(BOUNDS, 0.0)
        started = self.traffic.started
        for index, (at, traffic) in enumerate(phases):
            if seconds < at:
                break
            if traffic.started != started:
                requests, buckets = {}, dict.fromkeys(BOUNDS, 0.0)
                started = traffic.started
            end = phases[index + 1][0] if index + 1 < len(phases) else math.inf
            more, more_buckets = traffic.counters(min(seconds, end) - at)
            for key, value in more.items():
                requests[key] = requests.get(key, 0.0) + value
            for bound, value in more_buckets.items():
                buckets[bound] += value
        return requests, buckets, started

    def sources(self, **options: Any) -> MetricSources:
        source = ScrapeSource(ScrapeOptions(**options), fetch=self.fetch)
        return MetricSources({"scrape": source})


# --- a scripted HTTP instance for integration tests ------------------------------------------


@dataclass
class Script:
    """What the scripted instance answers; tests change it while it runs.

    Each /metrics scrape first renders the counters, then advances them by ``per_scrape``
    requests of which ``errors_per_scrape`` answer 500 (so the test is independent of timing).
    ``health`` answers are consumed in order; the last one repeats.
    """

    health: list[tuple[int, str]] = field(default_factory=lambda: [(200, '{"status": "ok"}')])
    metrics_status: int = 200
    metrics_body: str | None = None
    per_scrape: int = 50
    errors_per_scrape: int = 0
    latency: float = 0.02
    ok: float = 0.0
    errors: float = 0.0
    scrapes: int = 0
    health_calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer_health(self) -> tuple[int, str]:
        with self.lock:
            index = min(self.health_calls, len(self.health) - 1)
            self.health_calls += 1
            return self.health[index]

    def answer_metrics(self) -> tuple[int, str]:
        with self.lock:
            self.scrapes += 1
            if self.metrics_status != 200:
                return self.metrics_status, "metrics are broken"
            if self.metrics_body is not None:
                return 200, self.metrics_body
            total = self.ok + self.errors
            buckets = {b: total if self.latency <= b else 0.0 for b in BOUNDS}
            text = exposition({("/api/work", "200"): self.ok, ("/api/work", "500"): self.errors},
                              buckets={"/api/work": buckets})
            self.ok += self.per_scrape - self.errors_per_scrape
            self.errors += self.errors_per_scrape
            return 200, text


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        script: Script = self.server.script  # type: ignore[attr-defined]
        if self.path == "/health":
            status, body = script.answer_health()
        elif self.path == "/metrics":
            status, body = script.answer_metrics()
        elif self.path == "/api/hello":
            status, body = 200, '{"greeting": "hello"}'
        else:
            status, body = 404, "no such page"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def scripted_instance(script: Script) -> Iterator[str]:
    """Serve ``script`` on a free loopback port; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Handler)
    server.daemon_threads = True
    server.script = script  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def default_sources() -> MetricSources:
    return build_sources()

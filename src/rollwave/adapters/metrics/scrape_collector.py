"""A SeriesSource that scrapes instances' own ``/metrics`` on a timer and keeps a rolling history.

The embedded default needs no Prometheus server: the orchestrator tracks every instance with an
endpoint, scrapes each one every ``step`` seconds, and turns consecutive scrapes into one point
per interval (requests, errors, p95/p99 latency, memory) with the same pure derivations the
per-instance verification uses. A failed scrape is recorded as a failed read, so an outage
reads as *Error*, never as a regression. History lives in memory for ``retention`` seconds; after
an orchestrator restart the baseline is rebuilt from new scrapes (a query source such as
Prometheus keeps history across restarts).
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rollwave.analysis.series import Series
from rollwave.ports.metrics import MetricTarget
from rollwave.ports.series import STANDARD_METRICS, SeriesByInstance, SeriesQuery, fill_missing
from rollwave.verification.exposition import ExpositionError, Scrape, parse_exposition
from rollwave.verification.measures import MeasureSpec, gauge, interval, quantile_ms, totals

Fetch = Callable[[str, float], str]
"""fetch(url, timeout) -> exposition text; raises OSError/ValueError when unreachable."""


@functools.cache
def _shared_client() -> Any:
    import httpx

    # One pooled client for every scrape: no TLS context or connection set-up per request.
    return httpx.Client(trust_env=False, follow_redirects=False,
                        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))


def _http_fetch(url: str, timeout: float) -> str:
    response = _shared_client().get(url, timeout=timeout)
    response.raise_for_status()
    text: str = response.text
    return text


@dataclass
class _History:
    """One instance's scrapes and the points derived from them."""

    last: Scrape | None = None
    points: deque[tuple[float, dict[str, float | None]]] = field(default_factory=deque)
    failed: deque[float] = field(default_factory=deque)


class ScrapeCollector:
    """Scrape tracked targets every ``step`` seconds; answer range queries from memory."""

    def __init__(self, step: float = 5.0, *, retention: float = 7200.0, path: str = "/metrics",
                 timeout: float = 2.0, spec: MeasureSpec | None = None,
                 memory_metric: str = "demo_memory_bytes", parallelism: int = 16,
                 fetch: Fetch = _http_fetch, clock: Callable[[], float] = time.time) -> None:
        self.step = step
        self.retention = retention
        self.path = path
        self.timeout = timeout
        self.spec = spec or MeasureSpec()
        self.memory_metric = memory_metric
        self.parallelism = parallelism
        self._fetch = fetch
        self._clock = clock
        self._targets: dict[str, MetricTarget] = {}
        self._history: dict[str, _History] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- tracking and the timer ----------------------------------------------------------------

    def track(self, targets: Sequence[MetricTarget]) -> None:
        """Scrape exactly these targets from now on (one per instance; the first with a URL)."""
        chosen: dict[str, MetricTarget] = {}
        for target in targets:
            if target.base_url and target.instance not in chosen:
                chosen[target.instance] = target
        with self._lock:
            for key in set(self._targets) - set(chosen):
                self._history.pop(key, None)
            self._targets = chosen

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="rollwave-scrape-collector")
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 2)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.scrape_once()
            self._stop.wait(max(0.0, self.step - (time.monotonic() - started)))

    def scrape_once(self) -> None:
        """Scrape every tracked target now (the timer calls this every ``step`` seconds)."""
        with self._lock:
            targets = list(self._targets.values())
        if not targets:
            return
        now = self._clock()
        with ThreadPoolExecutor(max_workers=min(self.parallelism, len(targets))) as pool:
            results = list(pool.map(self._read, targets))
        with self._lock:
            for target, scrape in zip(targets, results, strict=True):
                self._record(target.instance, scrape, now)

    def _read(self, target: MetricTarget) -> Scrape | None:
        assert target.base_url is not None
        try:
            text = self._fetch(target.base_url.rstrip("/") + self.path, self.timeout)
            return parse_exposition(text, at=self._clock())
        except (OSError, ValueError, ExpositionError, RuntimeError):
            return None
        except Exception:
            return None

    def _record(self, instance: str, scrape: Scrape | None, now: float) -> None:
        history = self._history.setdefault(instance, _History())
        if scrape is None:
            history.failed.append(now)
        else:
            if history.last is not None:
                history.points.append((scrape.at, self._derive(history.last, scrape)))
            history.last = scrape
        horizon = now - self.retention
        while history.points and history.points[0][0] < horizon:
            history.points.popleft()
        while history.failed and history.failed[0] < horizon:
            history.failed.popleft()

    def _derive(self, before: Scrape, after: Scrape) -> dict[str, float | None]:
        part = interval(before, after, self.spec)
        window = totals([part])
        return {
            "requests": part.requests,
            "errors": part.errors,
            "latency_p95": quantile_ms(0.95, window, self.spec),
            "latency_p99": quantile_ms(0.99, window, self.spec),
            "memory": gauge(after, self.memory_metric, self.spec),
        }

    # -- SeriesSource -----------------------------------------------------------------------------

    def fetch(self, targets: Sequence[MetricTarget], query: SeriesQuery) -> SeriesByInstance:
        """Series on the query's grid from the history (untracked targets: failed reads)."""
        out: dict[str, dict[str, Series]] = {}
        with self._lock:
            for target in targets:
                history = self._history.get(target.instance)
                if history is None:
                    continue
                out[target.instance] = {
                    metric: Series.from_samples(
                        ((at, values.get(metric)) for at, values in history.points),
                        start=query.start, end=query.end, step=query.step,
                        failed=list(history.failed))
                    for metric in query.metrics
                }
        return fill_missing(out, targets, query, failed=True)

    def problems(self, metrics: Sequence[str]) -> list[str]:
        return [f"the scrape source has no metric '{m}'; it derives "
                f"{', '.join(STANDARD_METRICS)}" for m in metrics if m not in STANDARD_METRICS]

    def coverage(self, instance: str) -> float:
        """Seconds of history held for ``instance`` (0 when none)."""
        with self._lock:
            history = self._history.get(instance)
            if history is None or not history.points:
                return 0.0
            return history.points[-1][0] - history.points[0][0]


def seconds_to_points(seconds: float, step: float) -> int:
    return max(1, math.ceil(seconds / step))

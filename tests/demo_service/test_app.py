"""Request handling, metrics and background traffic, in-process (no HTTP)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rollwave.demo_service.app import DemoApp, Identity, make_rng, route_label
from rollwave.demo_service.faults import Effect
from rollwave.demo_service.metrics import MIB, ServiceMetrics
from rollwave.demo_service.settings import TrafficSettings
from rollwave.demo_service.traffic import MAX_BACKLOG, TrafficGenerator

IDENTITY = Identity(version="1.1", config_hash="abc123", instance="acme/prod", pid=4242,
                    started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def make_app(effect: Effect | None = None, traffic: TrafficSettings | None = None,
             clock: FakeClock | None = None) -> tuple[DemoApp, FakeClock]:
    effect = effect or Effect()
    traffic = traffic or TrafficSettings()
    clock = clock or FakeClock()
    metrics = ServiceMetrics(version=IDENTITY.version, config_hash=IDENTITY.config_hash,
                             instance=IDENTITY.instance,
                             memory_growth_mb_per_min=effect.memory_growth_mb_per_min,
                             clock=clock, resident_bytes=lambda: 50 * MIB)
    return DemoApp(IDENTITY, effect, traffic, metrics, sleep=clock.sleep, timer=clock), clock


def counts(app: DemoApp) -> dict[tuple[str, str], float]:
    text = app.metrics.render().decode()
    return {
        (s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text) if family.name == "demo_requests"
        for s in family.samples if s.name == "demo_requests_total"
    }


@pytest.mark.parametrize(
    ("path", "label"),
    [("/health", "/health"), ("/api/work", "/api/work"), ("/api/orders/7", "/api/*"),
     ("/api", "/api/*"), ("/apix", "other"), ("/", "other"), ("/health/", "other")],
)
def test_route_labels_are_bounded(path: str, label: str) -> None:
    assert route_label(path) == label


def test_health_and_version_bodies() -> None:
    app, _ = make_app()
    health = app.handle("/health", make_rng(1))
    assert health.status == 200
    assert json.loads(health.body) == {"status": "ok", "version": "1.1",
                                       "config_hash": "abc123", "instance": "acme/prod"}
    version = json.loads(app.handle("/version", make_rng(1)).body)
    assert version == {"version": "1.1", "config_hash": "abc123", "instance": "acme/prod",
                       "pid": 4242, "started_at": "2026-01-02T03:04:05+00:00"}


def test_unhealthy_effect() -> None:
    app, _ = make_app(Effect(unhealthy=True))
    response = app.handle("/health", make_rng(1))
    assert response.status == 503
    assert json.loads(response.body)["status"] == "unhealthy"


def test_real_work_sleeps_and_simulated_work_only_records() -> None:
    traffic = TrafficSettings(baseline_latency_ms=0, baseline_error_rate=0)
    app, clock = make_app(Effect(latency_ms=200), traffic)
    assert app.handle("/api/work", make_rng(1)).status == 200
    assert clock.slept == [pytest.approx(0.2)]
    assert app.handle("/api/work", make_rng(1), simulated=True).delay == pytest.approx(0.2)
    assert clock.slept == [pytest.approx(0.2)]
    text = app.metrics.render().decode()
    [family] = [f for f in text_string_to_metric_families(text)
                if f.name == "demo_request_duration_seconds"]
    sums = [s.value for s in family.samples if s.name.endswith("_sum")
            and s.labels["route"] == "/api/work"]
    assert sums == [pytest.approx(0.4)]


def test_baseline_latency_is_a_few_ms_and_jitter_stays_in_bounds() -> None:
    app, _ = make_app(traffic=TrafficSettings(baseline_latency_ms=5))
    rng = make_rng(3)
    samples = sorted(app.work_latency(rng) for _ in range(2000))
    assert 0.004 < samples[1000] < 0.006  # median ≈ 5 ms
    assert samples[-1] < 0.05
    app, _ = make_app(Effect(latency_ms=100, latency_jitter_ms=30),
                      TrafficSettings(baseline_latency_ms=0))
    jittered = [app.work_latency(rng) for _ in range(500)]
    assert 0.07 <= min(jittered) < 0.08
    assert 0.12 < max(jittered) <= 0.13


def test_error_rate_combines_baseline_and_faults() -> None:
    app, _ = make_app(Effect(error_rate=0.5), TrafficSettings(baseline_error_rate=0.5))
    assert app.error_rate == pytest.approx(0.75)
    rng = make_rng(11)
    statuses = [app.handle("/api/work", rng, simulated=True).status for _ in range(4000)]
    assert statuses.count(500) / len(statuses) == pytest.approx(0.75, abs=0.03)
    body = json.loads(app.handle("/api/work", make_rng(0), simulated=True).body)
    assert set(body) >= {"ok", "instance", "version"}


def test_work_series_exist_before_any_request() -> None:
    app, _ = make_app()
    assert counts(app) == {("/api/work", "200"): 0.0, ("/api/work", "500"): 0.0}
    app.handle("/nope", make_rng(1))
    assert counts(app)[("other", "404")] == 1.0


def test_memory_gauge_grows_at_the_configured_rate() -> None:
    app, clock = make_app(Effect(memory_growth_mb_per_min=60))
    assert app.metrics.memory_bytes() == 50 * MIB
    clock.now += 30
    assert app.metrics.memory_bytes() == pytest.approx(80 * MIB)
    idle, idle_clock = make_app()
    idle_clock.now += 600
    assert idle.metrics.memory_bytes() == 50 * MIB


def test_metrics_exposition_has_every_family() -> None:
    app, _ = make_app()
    response = app.handle("/metrics", make_rng(1))
    assert response.content_type.startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(response.body.decode())}
    assert {"demo_requests", "demo_request_duration_seconds", "demo_memory_bytes",
            "demo_info", "process_start_time_seconds"} <= names


def test_traffic_tick_issues_requests_at_the_rate() -> None:
    app, clock = make_app(traffic=TrafficSettings(baseline_error_rate=0))
    generator = TrafficGenerator(app, rps=50, rng=make_rng(5), clock=clock)
    next_at = clock.now
    for _ in range(100):  # 10 simulated seconds in 0.1 s steps
        clock.now += 0.1
        next_at = generator.tick(clock.now, next_at)
    assert 400 < generator.sent < 600
    assert counts(app)[("/api/work", "200")] == generator.sent
    assert clock.slept == []


def test_traffic_skips_a_long_backlog_instead_of_bursting() -> None:
    app, clock = make_app()
    generator = TrafficGenerator(app, rps=10, rng=make_rng(5), clock=clock)
    next_at = generator.tick(clock.now + 60, clock.now)
    assert generator.sent <= 10 * MAX_BACKLOG
    assert next_at > clock.now + 60


def test_traffic_thread_starts_and_stops() -> None:
    app, _ = make_app()
    generator = TrafficGenerator(app, rps=500, rng=make_rng(5))
    generator.start()
    try:
        deadline = time.monotonic() + 5
        while generator.sent == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert generator.sent > 0
    finally:
        generator.stop()
    assert not generator._thread.is_alive()
    TrafficGenerator(app, rps=0, rng=make_rng(5)).start()  # rps 0: nothing to start

"""The prometheus source against a real Prometheus (Debian's package) scraping real demo services.

Three demo service processes on loopback (one with the legacy-export error fault active), a
Prometheus scraping them every second with an ``instance_key`` target label, and the adapter's
range queries must show the faulty instance's errors and latency, and no one else's.
Skips without ``prometheus`` on PATH (fails under ROLLWAVE_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.demo_service.conftest import RunningService, command, wait_ready, write_config
from tests.services import free_port, need_executable

from rollwave.adapters.metrics import build_series, build_sources
from rollwave.adapters.metrics.prometheus import PrometheusSource
from rollwave.adapters.metrics.windowed import WindowedSource
from rollwave.core.model import MetricCheck
from rollwave.ports.metrics import MetricTarget, MetricWindow
from rollwave.ports.series import SeriesQuery

pytestmark = [pytest.mark.service, pytest.mark.slow]

FAULT = {"name": "1.1 mishandles legacy export",
         "when": {"version": "1.1*", "config": {"reports.legacy_export": True}},
         "error_rate": 0.35, "latency_ms": 250, "latency_jitter_ms": 50}
FLEET = (("acme/prod", "1.1", True), ("globex/prod", "1.1", False), ("initech/prod", "1.0", True))
STEP = 3.0
WARM = 16.0  # seconds of data before the first read


@dataclass
class Fleet:
    url: str
    targets: list[MetricTarget]
    services: list[RunningService]
    started: float


def _target(key: str) -> MetricTarget:
    customer, name = key.split("/")
    return MetricTarget(key, "web", labels={"customer": customer, "instance": name,
                                            "tier": "standard"})


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    binary = need_executable("prometheus", "apt-get install -y prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    services: list[RunningService] = []
    prometheus: subprocess.Popen[bytes] | None = None
    log = (tmp / "prometheus.log").open("wb")
    try:
        for index, (key, version, legacy) in enumerate(FLEET):
            config = write_config(tmp, {
                "reports": {"legacy_export": legacy}, "faults": [FAULT],
                "traffic": {"rps": 60, "baseline_error_rate": 0.0, "seed": index + 1}},
                f"{key.replace('/', '-')}.json")
            port = free_port()
            process = subprocess.Popen(command(port, version, config, key),
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            service = RunningService(process, port, config)
            services.append(service)
            wait_ready(service)
        targets = "\n".join(
            f"      - targets: ['127.0.0.1:{s.port}']\n"
            f"        labels: {{instance_key: '{key}', customer: '{key.split('/')[0]}'}}"
            for s, (key, _, _) in zip(services, FLEET, strict=True))
        (tmp / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n  - job_name: demo\n    static_configs:\n" + targets + "\n",
            encoding="utf-8")
        port = free_port()
        prometheus = subprocess.Popen(
            [binary, f"--config.file={tmp / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        _wait_for_scrapes(url, prometheus, tmp / "prometheus.log")
        started = time.time()
        time.sleep(WARM)
        yield Fleet(url, [_target(key) for key, _, _ in FLEET], services, started)
    finally:
        if prometheus is not None:
            prometheus.terminate()
            try:
                prometheus.wait(timeout=20)
            except subprocess.TimeoutExpired:
                prometheus.kill()
                prometheus.wait(timeout=10)
        log.close()
        for service in services:
            if service.process.poll() is None:
                service.process.kill()
                service.process.communicate(timeout=10)


def _wait_for_scrapes(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited {process.returncode}: {log.read_text()[-2000:]}")
        try:
            answer = httpx.get(f"{url}/api/v1/query", params={"query": "sum(up)"}, timeout=2)
            result = answer.json()["data"]["result"]
            if result and float(result[0]["value"][1]) == len(FLEET):
                return
        except (httpx.HTTPError, KeyError, ValueError, IndexError):
            pass
        time.sleep(0.25)
    pytest.fail(f"prometheus did not scrape the demo services: {log.read_text()[-2000:]}")


def _window(fleet: Fleet) -> SeriesQuery:
    end = math.floor(time.time()) - 1.0
    start = end - 4 * STEP
    assert start > fleet.started
    return SeriesQuery(("requests", "errors", "latency_p95", "latency_p99", "memory"),
                       start, end, STEP)


def test_range_queries_show_the_faulty_instance(fleet: Fleet) -> None:
    source = build_series({"prom": {"kind": "prometheus", "url": fleet.url}})["prom"]
    assert isinstance(source, PrometheusSource)
    query = _window(fleet)
    try:
        report = source.fetch_detailed(fleet.targets, query)
    finally:
        source.close()
    assert report.errors == {}
    assert report.queries == 5  # one query per metric for all three instances
    ratio = {}
    for key, _, _ in FLEET:
        series = report.series[key]
        assert len(series["requests"]) == 4
        assert series["requests"].readable_count >= 3, key
        requests, errors = series["requests"].total(), series["errors"].total()
        assert requests > 200, (key, requests)  # ~60 rps for 12 s
        ratio[key] = errors / requests
        assert series["memory"].readable().min() > 1e6  # resident bytes
    assert 0.2 < ratio["acme/prod"] < 0.5, ratio
    assert ratio["globex/prod"] < 0.02, ratio
    assert ratio["initech/prod"] < 0.02, ratio  # the customization, but on 1.0
    p95 = {key: float(report.series[key]["latency_p95"].readable().mean()) for key, _, _ in FLEET}
    assert p95["acme/prod"] > 200, p95  # +250 ms ± 50 on the faulty instance (milliseconds)
    assert p95["globex/prod"] < 100, p95
    assert report.series["acme/prod"]["latency_p99"].readable().mean() >= p95["acme/prod"]


def test_per_target_templates_and_backend_errors(fleet: Fleet) -> None:
    source = build_series({"prom": {
        "kind": "prometheus", "url": fleet.url, "concurrency": 2,
        "queries": {
            "work": 'sum(increase(demo_requests_total{instance_key="{{ key }}", '
                    'customer="{{ customer }}", route="/api/work"}[{{ range }}]))',
            "broken": "sum(rate(demo_requests_total[{{ range }}]",
            "empty": 'sum by ({{ label }}) (demo_requests_total{ {{- selector -}}, route="x"})',
        }}})["prom"]
    assert isinstance(source, PrometheusSource)
    window = _window(fleet)
    query = SeriesQuery(("work", "broken", "empty"), window.start, window.end, window.step)
    try:
        report = source.fetch_detailed(fleet.targets, query)
    finally:
        source.close()
    assert report.queries == 3 + 1 + 1  # per target, then one each for all targets
    for key, _, _ in FLEET:
        assert report.series[key]["work"].total() > 200
        broken = report.series[key]["broken"]
        assert broken.error_count == len(broken)  # a bad query: failed reads, not a crash
        assert "Prometheus refused the query (bad_data" in (report.error_of(key, "broken") or "")
        empty = report.series[key]["empty"]
        assert empty.error_count == 0
        assert empty.readable_count == 0  # no data: gaps, not errors


def test_a_per_window_check_reads_prometheus(fleet: Fleet) -> None:
    sources = build_sources({"prom": {"kind": "prometheus", "url": fleet.url}})
    source = sources.source("prom")
    assert isinstance(source, WindowedSource)
    opened = math.floor(time.time()) - 1.0 - 4 * STEP
    now = [opened]
    source.clock = lambda: now[0]
    checks = [MetricCheck(name="errors", metric="error_ratio", source="prom", fail_above=0.05),
              MetricCheck(name="p95", metric="p95_latency_ms", source="prom", fail_above=150),
              MetricCheck(name="mem", metric="memory", source="prom", fail_above=1e12)]
    assert all(source.problems(c) == [] for c in checks)
    bad = source.open(_target("acme/prod"), checks, MetricWindow(duration=12, interval=STEP))
    good = source.open(_target("globex/prod"), checks, MetricWindow(duration=12, interval=STEP))
    assert all(m.value is None and m.ok for m in bad.sample(0).values())  # nothing yet
    now[0] = opened + 4 * STEP
    acme, globex = bad.sample(4 * STEP), good.sample(4 * STEP)
    assert acme["errors"].value is not None
    assert acme["errors"].value > 0.2
    assert acme["errors"].evidence is not None
    assert acme["errors"].count is not None
    assert acme["errors"].count > 200
    assert globex["errors"].value is not None
    assert globex["errors"].value < 0.02
    assert acme["p95"].value is not None
    assert acme["p95"].value > 200
    assert globex["p95"].value is not None
    assert globex["p95"].value < 100
    assert (acme["mem"].value or 0) > 1e6
    assert len(acme["errors"].series["error_ratio"]) == 4

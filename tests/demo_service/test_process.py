"""The demo service as the deployer runs it: a subprocess on a free loopback port."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rollwave.core.hashing import config_hash
from tests.demo_service.conftest import (
    RunningService,
    StartService,
    command,
    run_to_exit,
    write_config,
)
from tests.services import free_port, port_open

pytestmark = pytest.mark.e2e

LEGACY_STORY = {
    "faults": [{
        "name": "legacy-export-regression",
        "when": {"version": "1.1*", "config": {"reports.legacy_export": True}},
        "error_rate": 0.35,
    }],
    "traffic": {"rps": 50, "baseline_error_rate": 0.0, "seed": 7},
}


def with_legacy(enabled: bool) -> dict[str, object]:
    return {"reports": {"legacy_export": enabled}, **LEGACY_STORY}


def wait_for_work(service: RunningService, minimum: float, timeout: float = 5.0
                  ) -> tuple[float, float]:
    """Poll /metrics until at least ``minimum`` background requests; return (ok, errors)."""
    deadline = time.monotonic() + timeout
    while True:
        ok, errors = service.requests_total("200"), service.requests_total("500")
        if ok + errors >= minimum or time.monotonic() > deadline:
            return ok, errors
        time.sleep(0.1)


def test_endpoints_report_identity_and_metrics_parse(start_service: StartService) -> None:
    config = {"reports": {"legacy_export": False}, "traffic": {"rps": 0}}
    service = start_service("1.0.3", config, "globex/eu-1")
    digest = config_hash(config)

    health = service.get("/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "version": "1.0.3", "config_hash": digest,
                             "instance": "globex/eu-1"}

    version = service.get("/version").json()
    assert version["version"] == "1.0.3"
    assert version["config_hash"] == digest
    assert version["instance"] == "globex/eu-1"
    assert version["pid"] == service.process.pid
    assert version["started_at"].endswith("+00:00")

    work = service.get("/api/work")
    assert work.status_code == 200
    assert work.json()["ok"] is True
    assert service.get("/api/orders/42").status_code == 200
    assert service.get("/nowhere").status_code == 404

    metrics = service.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "_created" not in metrics.text  # one series per counter, not two
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    assert {"demo_requests", "demo_request_duration_seconds", "demo_memory_bytes",
            "demo_info", "process_start_time_seconds"} <= set(families)
    assert families["demo_request_duration_seconds"].type == "histogram"
    info = families["demo_info"].samples[0]
    assert info.labels == {"version": "1.0.3", "config_hash": digest, "instance": "globex/eu-1"}
    assert info.value == 1.0
    assert families["demo_memory_bytes"].samples[0].value > 1_000_000
    assert service.requests_total("200") == 1.0  # the GET above; rps 0 means no background
    assert service.requests_total("200", route="/api/*") == 1.0
    assert service.requests_total("404", route="other") == 1.0
    assert service.stop()[0] == 0


def test_missing_config_file_is_empty_config(start_service: StartService) -> None:
    service = start_service("2.0", None)
    assert service.get("/health").json()["config_hash"] == config_hash({})


def test_version_fault_shows_in_background_traffic_only_for_that_version(
    start_service: StartService,
) -> None:
    broken = start_service("1.1", with_legacy(True), "acme/prod")
    old_version = start_service("1.0", with_legacy(True), "acme/prod")
    not_customized = start_service("1.1", with_legacy(False), "globex/prod")

    ok, errors = wait_for_work(broken, minimum=80)
    assert errors > 0, "the 1.1 + legacy_export instance should fail some background requests"
    assert 0.15 < errors / (ok + errors) < 0.6

    for healthy in (old_version, not_customized):
        ok, errors = wait_for_work(healthy, minimum=80)
        assert ok >= 80
        assert errors == 0


def test_unhealthy_fault_answers_503(start_service: StartService) -> None:
    service = start_service("3.0", {"faults": [{"unhealthy": True}], "traffic": {"rps": 0}})
    health = service.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy"


def test_latency_fault_slows_real_requests(start_service: StartService) -> None:
    config = {"faults": [{"when": {"version": "4.*"}, "latency_ms": 500}],
              "traffic": {"rps": 0, "baseline_latency_ms": 1}}
    service = start_service("4.2", config)
    started = time.monotonic()
    work = service.get("/api/work")
    assert time.monotonic() - started >= 0.5
    assert work.json()["took_ms"] >= 500
    started = time.monotonic()
    assert service.get("/health").status_code == 200
    assert time.monotonic() - started < 0.5  # latency faults slow the work, not the probes


def test_memory_growth_fault_grows_the_gauge(start_service: StartService) -> None:
    service = start_service("5.0", {"faults": [{"memory_growth_mb_per_min": 600}],
                                    "traffic": {"rps": 0}})
    key = ("demo_memory_bytes", ())
    first = service.samples()[key]
    time.sleep(1.0)
    grown = service.samples()[key] - first
    assert 6 * 1024 * 1024 < grown < 30 * 1024 * 1024  # ≈10 MiB/s simulated


def test_crash_on_start_exits_3_before_binding(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"faults": [{"when": {"version": "6.0"},
                                                 "crash_on_start": True}]})
    port = free_port()
    result = run_to_exit(command(port, "6.0", config))
    assert result.returncode == 3
    assert "crash_on_start" in result.stderr
    assert "Traceback" not in result.stderr
    assert not port_open("127.0.0.1", port)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"faults": [{"error_rate": 2}]}', "faults[0].error_rate"),
        ('{"faults": [{"eror_rate": 0.5}]}', "unknown key 'eror_rate'"),
        ('{"traffic": {"rps": -1}}', "traffic.rps"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content, encoding="utf-8")
    result = run_to_exit(command(free_port(), "1.0", path))
    assert result.returncode == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_unreadable_config_exits_2(tmp_path: Path) -> None:
    result = run_to_exit(command(free_port(), "1.0", tmp_path))  # a directory
    assert result.returncode == 2
    assert "cannot read config file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_instance_name_is_a_usage_error(tmp_path: Path) -> None:
    result = run_to_exit(command(free_port(), "1.0", tmp_path / "c.json", instance="acme"))
    assert result.returncode == 2
    assert "CUSTOMER/INSTANCE" in result.stderr


def test_port_in_use_exits_1(start_service: StartService, tmp_path: Path) -> None:
    first = start_service("1.0", {"traffic": {"rps": 0}})
    result = run_to_exit(command(first.port, "1.0", tmp_path / "c.json"))
    assert result.returncode == 1
    assert "cannot listen" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_shuts_down_cleanly(start_service: StartService, sig: int) -> None:
    service = start_service("1.0", {"traffic": {"rps": 200}})
    code, err = service.stop(sig)
    assert code == 0
    assert "stopped" in err
    assert "Traceback" not in err

"""The incident file: every instance degrades while it exists, whatever its version."""

from __future__ import annotations

import json
import random
from pathlib import Path

from rollwave.demo_service.incident import NONE, Incident, IncidentWatch


def test_incident_follows_the_file(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "incident.json"
    watch = IncidentWatch(path, every=1.0, clock=lambda: now[0])
    assert watch.current() == NONE
    path.write_text(json.dumps({"error_rate": 0.25, "latency_ms": 80}))
    assert watch.current() == NONE  # re-read at most once a second
    now[0] = 1.5
    assert watch.current() == Incident(error_rate=0.25, latency_ms=80.0)
    path.unlink()
    now[0] = 3.0
    assert watch.current() == NONE


def test_bad_incident_files_mean_no_incident(tmp_path: Path) -> None:
    path = tmp_path / "incident.json"
    for text in ("not json", "[1, 2]", '{"error_rate": "lots"}'):
        path.write_text(text)
        assert IncidentWatch(path, every=0.0).current() == NONE
    path.write_text('{"error_rate": 7, "latency_ms": -5}')
    assert IncidentWatch(path, every=0.0).current() == Incident(error_rate=1.0, latency_ms=0.0)


def test_incident_raises_errors_of_the_work(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from rollwave.demo_service.app import DemoApp, Identity
    from rollwave.demo_service.faults import Effect
    from rollwave.demo_service.metrics import ServiceMetrics
    from rollwave.demo_service.settings import parse_traffic

    path = tmp_path / "incident.json"
    path.write_text(json.dumps({"error_rate": 1.0}))
    identity = Identity(version="1.0", config_hash="x", instance="a/prod", pid=1,
                        started_at=datetime.now(UTC))
    app = DemoApp(identity, Effect(), parse_traffic({}),
                  ServiceMetrics(version="1.0", config_hash="x", instance="a/prod"),
                  sleep=lambda s: None, incident=IncidentWatch(path, every=0.0))
    statuses = {app.handle("/api/work", random.Random(1), simulated=True).status
                for _ in range(20)}
    assert statuses == {500}


def test_an_incident_with_a_start_time_hits_at_that_moment(tmp_path: Path) -> None:
    path = tmp_path / "incident.json"
    path.write_text(json.dumps({"error_rate": 0.5, "latency_ms": 10, "starts_at": 1000.0}))
    wall = [999.0]
    watch = IncidentWatch(path, every=60.0, clock=lambda: 0.0, wall=lambda: wall[0])
    assert watch.current() == NONE  # read already, but not started
    wall[0] = 1000.0
    assert watch.current() == Incident(error_rate=0.5, latency_ms=10.0)  # no re-read needed

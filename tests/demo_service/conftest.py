"""Start demo service processes on free loopback ports and stop them after the test."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.services import free_port

START_TIMEOUT = 10.0


@dataclass
class RunningService:
    """A demo service subprocess and how to talk to it."""

    process: subprocess.Popen[str]
    port: int
    config_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 5.0) -> httpx.Response:
        return httpx.get(self.url + path, timeout=timeout)

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics keyed by (name, sorted labels)."""
        text = self.get("/metrics").text
        found = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return found

    def requests_total(self, status: str, route: str = "/api/work") -> float:
        key = ("demo_requests_total", (("route", route), ("status", status)))
        return self.samples().get(key, 0.0)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, str]:
        """Send ``sig``; return the exit code and stderr."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        _, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, err


def command(port: int, version: str, config: Path, instance: str = "acme/prod") -> list[str]:
    return [sys.executable, "-m", "rollwave.demo_service", "--port", str(port),
            "--version", version, "--config", str(config), "--instance", instance]


def run_to_exit(args: list[str], timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def write_config(directory: Path, config: dict[str, Any], name: str = "config.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def wait_ready(service: RunningService) -> None:
    """Wait until /health answers (200 or 503); fail with stderr if the process died."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            _, err = service.process.communicate()
            pytest.fail(f"demo service exited {service.process.returncode}: {err}")
        try:
            if service.get("/health", timeout=1.0).status_code in (200, 503):
                return
        except httpx.TransportError:
            time.sleep(0.02)
    pytest.fail(f"demo service not ready on port {service.port} within {START_TIMEOUT}s")


StartService = Callable[..., RunningService]


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[StartService]:
    """Factory: ``start_service(version, config_dict_or_None, instance=...)``; all stopped after."""
    started: list[RunningService] = []

    def start(version: str, config: dict[str, Any] | None, instance: str = "acme/prod",
              *, wait: bool = True) -> RunningService:
        path = tmp_path / f"config-{len(started)}.json"
        if config is not None:
            write_config(tmp_path, config, path.name)
        port = free_port()
        process = subprocess.Popen(command(port, version, path, instance),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        service = RunningService(process, port, path)
        started.append(service)
        if wait:
            wait_ready(service)
        return service

    yield start
    for service in started:
        if service.process.poll() is None:
            service.process.kill()
            service.process.communicate(timeout=10)

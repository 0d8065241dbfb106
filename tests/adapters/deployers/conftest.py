"""Shared helpers for deployer tests: fleet instances, contexts and a tiny fake HTTP service."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from rollwave.adapters.deployers.local import is_ours
from rollwave.core.fleet import FleetInstance
from rollwave.core.tagexpr import Facts
from rollwave.ports.deployer import DeployContext


def make_instance(customer: str = "acme", name: str = "prod", *,
                  services: Sequence[str] = ("api",), target: Mapping[str, Any] | None = None,
                  labels: Mapping[str, str] | None = None, environment: str = "production",
                  url: str | None = None, deployer: str = "test") -> FleetInstance:
    """A resolved instance as the orchestrator hands it to a deployer."""
    return FleetInstance(
        key=f"{customer}/{name}", customer=customer, name=name, environment=environment,
        services=tuple(services), tier=None, region=None, tags=frozenset(),
        labels=dict(labels or {}), windows=(), deployer=deployer, target=dict(target or {}),
        url=url, facts=Facts(attributes={}, tags=frozenset()),
    )


class LogSink:
    """Collects the lines a deployer sends to ``DeployContext.log``."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def make_context(state_dir: Path, *, redact: Sequence[str] = (), reason: str = "deploy"
                 ) -> tuple[DeployContext, LogSink]:
    sink = LogSink()
    return DeployContext(state_dir=state_dir, redact=tuple(redact), log=sink, reason=reason), sink


FAKE_SERVICE = textwrap.dedent('''
    """A stand-in for the demo service: GET /version and /health, plus scripted misbehaviour.

    The config's "fake" section scripts it: crash (exit 3 at once), start_delay (seconds before
    listening), ignore_term (survive SIGTERM), say (a line printed at start).
    """
    import argparse, json, os, signal, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from rollwave.core.hashing import config_hash

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--instance", required=True)
    args = parser.parse_args()
    try:
        with open(args.config) as handle:
            config = json.load(handle)
    except FileNotFoundError:
        config = {}
    fake = config.get("fake", {})
    print(f"fake: {args.instance} {args.version} starting (pid {os.getpid()})", flush=True)
    if fake.get("say"):
        print(f"fake: {fake['say']}", flush=True)
    if fake.get("crash"):
        print("fake: boom, crashing on start as configured", flush=True)
        sys.exit(3)
    if fake.get("ignore_term"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(fake.get("start_delay", 0))
    body = json.dumps({"version": args.version, "config_hash": config_hash(config),
                       "instance": args.instance, "pid": os.getpid()}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            payload = body if self.path == "/version" else b'{"status": "ok"}'
            self.send_response(200 if self.path in ("/version", "/health") else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"fake: listening on {args.port}", flush=True)
    server.serve_forever()
''')


@pytest.fixture
def fake_service(tmp_path: Path) -> Path:
    """The fake service script, written to a file."""
    path = tmp_path / "fake_service.py"
    path.write_text(FAKE_SERVICE)
    return path


def pids_under(state_dir: Path) -> list[int]:
    """Every live process a local deployer started and recorded under ``state_dir``."""
    pids = []
    for state_file in state_dir.glob("**/instances/**/state.json"):
        state = json.loads(state_file.read_text())
        if is_ours(state["pid"], state.get("proc_start")):
            pids.append(state["pid"])
    return pids


@pytest.fixture
def reaper(tmp_path: Path) -> Iterator[list[int]]:
    """Kill, after the test, every process group recorded under tmp_path (and pids added)."""
    extra: list[int] = []
    yield extra
    for pid in {*pids_under(tmp_path), *extra}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def free_port() -> int:
    """A free loopback TCP port (as ``tests/services.py`` finds one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

"""Fixtures for the database-backed flag tests: workspaces, databases, loopback servers."""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import uvicorn

from rollwave.workspace.scaffold import write_workspace
from tests.services import need_postgres

FLAG_YAML = """\
description: New checkout flow
owner: payments
environments:
  production:
    enabled: true
rules:
  - id: acme
    when: [{attribute: customer, op: in, values: [acme]}]
    serve: on
fallthrough: off
"""


def project(metrics_url: str | None = None, *, webhook: str | None = None,
            duration: str = "1500ms", interval: str = "500ms") -> dict[str, Any]:
    """A rollwave.yaml with a memory deployer, a fast metrics profile and notifications."""
    doc: dict[str, Any] = {
        "project": "flags-test",
        "environments": {"staging": {}, "production": {}},
        "services": {"web": {"deployer": "local"}},
        "deployers": {"local": {"kind": "memory"}},
        "verification": {
            "default": {"duration": "1s", "interval": "1s", "health": None},
            "errors": {"duration": duration, "interval": interval, "health": None,
                       "min_requests": 5,
                       "metrics": [{"name": "errors", "metric": "error_ratio",
                                    "fail_above": 0.05}]},
        },
        "policies": {"standard": {"waves": [{"name": "all", "select": "rest"}]}},
    }
    if webhook:
        doc["notifications"] = {
            "ops": {"kind": "webhook", "url": webhook, "events": ["flag.rollout.*"],
                    "signing_secret": "env:ROLLWAVE_TEST_SIGNING"},
            "audit": {"kind": "log"},
        }
    return doc


def make_workspace(root: Path, *, metrics_url: str | None = None, webhook: str | None = None,
                   flags: dict[str, str] | None = None, **options: Any) -> Path:
    """A workspace with customers acme (enterprise), globex and internal, each one instance
    whose URL is ``metrics_url`` (the fake /metrics server), and ``flags/<key>.yaml`` files."""
    customers = []
    for cid, tier in (("acme", "enterprise"), ("globex", "standard"), ("internal", "internal")):
        instance: dict[str, Any] = {"environment": "production"}
        if metrics_url:
            instance["url"] = metrics_url
        customers.append({"id": cid, "name": cid.title(), "tier": tier,
                          "instances": {"prod": instance}})
    extra = {f"flags/{key}.yaml": text for key, text in (flags or {}).items()}
    write_workspace(root, project(metrics_url, webhook=webhook, **options), customers, extra)
    return root


@contextmanager
def postgres_url(prefix: str = "rw_flags") -> Iterator[str]:
    """A fresh PostgreSQL database (dropped afterwards); skips without PostgreSQL."""
    base = need_postgres()
    name = f"{prefix}_{os.getpid()}_{random.randrange(10**8)}"
    admin = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://") + "/postgres",
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def eventually(check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")


class _Server:
    """A ThreadingHTTPServer on a loopback port in a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Any:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _MetricsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        owner: MetricsServer = self.server.owner  # type: ignore[attr-defined]
        body = owner.exposition().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class MetricsServer(_Server):
    """A fake instance: ``/metrics`` with request counters growing at ``rate`` per second,
    of which ``error_ratio`` are 5xx (change it at any time)."""

    def __init__(self, rate: float = 400.0) -> None:
        super().__init__(_MetricsHandler)
        self.rate = rate
        self.error_ratio = 0.0
        self._ok = 0.0
        self._errors = 0.0
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def exposition(self) -> str:
        with self._lock:
            now = time.monotonic()
            count = (now - self._last) * self.rate
            self._last = now
            self._errors += count * self.error_ratio
            self._ok += count * (1 - self.error_ratio)
            ok, errors = int(self._ok), int(self._errors)
        return ("# TYPE demo_requests_total counter\n"
                f'demo_requests_total{{status="200"}} {ok}\n'
                f'demo_requests_total{{status="500"}} {errors}\n')


class _HookHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        owner: WebhookReceiver = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        status = owner.status
        with owner.lock:
            owner.requests.append({"headers": dict(self.headers), "raw": raw,
                                   "json": json.loads(raw), "status": status})
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class WebhookReceiver(_Server):
    """Collects JSON POSTs; answers ``status`` (change it to simulate an outage)."""

    def __init__(self) -> None:
        super().__init__(_HookHandler)
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.lock = threading.Lock()

    def delivered(self) -> list[dict[str, Any]]:
        """Bodies of the requests answered 2xx."""
        with self.lock:
            return [r["json"] for r in self.requests if 200 <= r["status"] < 300]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ApiServer:
    """``create_app(ctx)`` (what ``rollwave serve`` runs) under uvicorn on a loopback port."""

    def __init__(self, app: Any) -> None:
        from rollwave.api.app import create_app

        self.port = free_port()
        config = uvicorn.Config(create_app(app), host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ApiServer:
        self.thread.start()
        eventually(lambda: self.server.started, 10, "the API server to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.server.force_exit = True
        self.thread.join(5)

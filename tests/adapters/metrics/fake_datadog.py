"""A local server that speaks Datadog's metrics query API (``GET /api/v1/query``) as documented.

It answers ``{"status": "ok", "res_type": "time_series", "series": [...], "from_date",
"to_date", "query", ...}`` with one series per ``instance_key`` named in the query's scope
(``scope``, ``tag_set``, ``pointlist`` of ``[ms, value]`` at rollup-bucket starts, ``interval``,
``length``, ``start``, ``end``, ``metric``, ``expression``, ``display_name``, ``unit``,
``aggr``), and the documented errors: 403 ``{"errors": ["Forbidden"]}`` for wrong keys, 400
``{"errors": [...]}`` for a query it cannot parse, 429 with the ``X-RateLimit-*`` headers.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.services import free_port

API_KEY = "dd-api-0123456789"
APP_KEY = "dd-app-abcdef"

Value = Callable[[str, str, float], float | None]
"""``value(metric, instance, bucket start seconds)`` → the point, or None (null); the metric of
a query filtered on ``status:5*`` is named with ``/5xx`` added."""


def demo_values(metric: str, instance: str, t: float) -> float | None:
    """Per 60 s: 600 requests everywhere, 30 % errors on acme/prod (1 % elsewhere)."""
    del t
    faulty = instance == "acme/prod"
    if metric.endswith("demo_requests.count"):
        return 600.0
    if metric.endswith("demo_requests.count/5xx"):
        return 180.0 if faulty else 6.0
    if metric.endswith("demo_request_duration_seconds"):
        return 0.3 if faulty else 0.01
    if metric.endswith("demo_memory_bytes"):
        return 3e7
    return None


@dataclass
class FakeDatadog:
    """The server's behaviour (change it between requests) and what it received."""

    port: int
    values: Value = demo_values
    empty: bool = False
    rate_limited: int = 0  # answer 429 to this many requests
    reset: float = 1.0
    error_body: tuple[int, dict[str, Any]] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def queries(self) -> list[str]:
        return [r["query"] for r in self.requests]


def _answer(fake: FakeDatadog, params: dict[str, str],
            headers: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
    if headers.get("dd-api-key") != API_KEY or headers.get("dd-application-key") != APP_KEY:
        return 403, {}, {"errors": ["Forbidden"]}
    with fake.lock:
        if fake.rate_limited > 0:
            fake.rate_limited -= 1
            return 429, {"X-RateLimit-Limit": "1600", "X-RateLimit-Period": "3600",
                         "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": f"{fake.reset:g}",
                         "X-RateLimit-Name": "query"}, {"errors": ["Rate limit exceeded"]}
    if fake.error_body is not None:
        return fake.error_body[0], {}, fake.error_body[1]
    text = params.get("query", "")
    match = re.match(r"^(\w+):([\w.]+)\{(.*?)\}(?: by \{(\w+)\})?(.*)$", text)
    try:
        start, end = int(params["from"]), int(params["to"])
    except (KeyError, ValueError):
        return 400, {}, {"errors": ["from and to are required integers"]}
    if not match:
        return 400, {}, {"errors": [f"Error parsing query: unable to parse {text}"]}
    aggr, metric, scope, by, rest = match.groups()
    rollup = re.search(r"\.rollup\(\w+, ?(\d+)\)", rest)
    interval = int(rollup.group(1)) if rollup else 60
    scale = float(m.group(1)) if (m := re.search(r"\* ?([\d.]+)\s*$", rest)) else 1.0
    keyed = "status:5" in scope
    series = []
    for instance in dict.fromkeys(re.findall(r"instance_key:([\w./-]+)", scope)):
        points = []
        bucket = math.floor(start / interval) * interval
        while bucket < end:
            value = fake.values(metric + ("/5xx" if keyed else ""), instance, bucket)
            points.append([bucket * 1000.0, None if value is None else value * scale])
            bucket += interval
        tag = f"{by}:{instance}" if by else f"instance_key:{instance}"
        series.append({
            "aggr": aggr, "metric": metric, "display_name": metric, "unit": None,
            "expression": f"{aggr}:{metric}{{{tag}}}", "scope": tag, "tag_set": [tag],
            "pointlist": points, "interval": interval, "length": len(points),
            "start": points[0][0] if points else start * 1000.0,
            "end": points[-1][0] if points else end * 1000.0,
        })
    return 200, {}, {
        "status": "ok", "res_type": "time_series", "resp_version": 1, "query": text,
        "from_date": start * 1000, "to_date": end * 1000, "group_by": [by] if by else [],
        "series": [] if fake.empty else series, "message": "",
    }


@contextmanager
def fake_datadog() -> Iterator[FakeDatadog]:
    """A running fake on a free loopback port."""
    fake = FakeDatadog(port=free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = {k: v[0] for k, v in parse_qs(parts.query).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            with fake.lock:
                fake.requests.append({"path": parts.path, **params, "headers": headers})
            if parts.path != "/api/v1/query":
                status, extra, body = 404, {}, {"errors": ["Not found"]}
            else:
                status, extra, body = _answer(fake, params, headers)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", fake.port), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

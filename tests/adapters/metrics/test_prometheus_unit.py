"""The prometheus source's edges with a scripted HTTP API: grids, errors, chunks, templates."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from tests.services import free_port

from rollwave.adapters.metrics import MetricEnvironment, prometheus
from rollwave.adapters.metrics.prometheus import PrometheusOptions, PrometheusSource
from rollwave.ports.metrics import MetricTarget
from rollwave.ports.series import SeriesQuery

Answer = Callable[[dict[str, str]], tuple[int, Any]]
TARGETS = [MetricTarget("acme/prod", "web", labels={"customer": "acme", "instance": "prod"}),
           MetricTarget("globex/prod", "web", labels={"customer": "globex", "instance": "prod"})]


@contextmanager
def scripted(answer: Answer) -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            form["authorization"] = self.headers.get("Authorization", "")
            seen.append(form)
            status, body = answer(form)
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            return  # a client that gave up (the timeout test) is no error here

    server = Server(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def matrix(*series: tuple[dict[str, str], list[tuple[float, str]]]) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": labels, "values": [[t, v] for t, v in values]} for labels, values in series]}}


def source(url: str, **options: Any) -> PrometheusSource:
    return PrometheusSource(PrometheusOptions.model_validate({"url": url, **options}))


def test_points_land_on_the_slot_they_end() -> None:
    def answer(form: dict[str, str]) -> tuple[int, Any]:
        return 200, matrix(({"instance_key": "acme/prod"}, [(1060, "10"), (1120, "NaN"),
                                                             (1180, "30")]),
                           ({"instance_key": "globex/prod"}, [(1120, "+Inf")]),
                           ({"instance_key": "stranger/x"}, [(1060, "99")]))

    with scripted(answer) as (url, seen):
        report = source(url).fetch_detailed(TARGETS, SeriesQuery(("requests",), 1000, 1180, 60))
    assert (seen[0]["start"], seen[0]["end"], seen[0]["step"]) == ("1060.000", "1180.000", "60")
    assert seen[0]["timeout"] == "10s"
    acme = report.series["acme/prod"]["requests"]
    assert acme.start == 1000
    assert acme.values[0] == 10
    assert acme.values[2] == 30
    assert acme.readable_count == 2  # NaN (histogram_quantile of nothing) is a gap
    assert report.series["globex/prod"]["requests"].readable_count == 0
    assert report.errors == {}


def test_long_ranges_are_split_into_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prometheus, "MAX_POINTS", 4)

    def answer(form: dict[str, str]) -> tuple[int, Any]:
        start, end = float(form["start"]), float(form["end"])
        times = [start + 10 * k for k in range(int((end - start) / 10) + 1)]
        return 200, matrix(({"instance_key": "acme/prod"}, [(t, "1") for t in times]))

    with scripted(answer) as (url, seen):
        report = source(url).fetch_detailed(TARGETS[:1], SeriesQuery(("memory",), 0, 100, 10))
    assert [(f["start"], f["end"]) for f in seen] == [
        ("10.000", "40.000"), ("50.000", "80.000"), ("90.000", "100.000")]
    assert report.series["acme/prod"]["memory"].values.tolist() == [1.0] * 10


@pytest.mark.parametrize(("status", "body", "expected"), [
    (400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 5"},
     "Prometheus refused the query (bad_data: parse error at char 5); query: sum by"),
    (503, "Service Unavailable", "Prometheus answered HTTP 503: Service Unavailable"),
    (200, "<html>not json</html>", "Prometheus answered HTTP 200: <html>not json</html>"),
    (200, {"status": "success", "data": {}}, "Prometheus answered without data.result"),
])
def test_backend_errors_mark_failed_reads(status: int, body: Any, expected: str) -> None:
    with scripted(lambda form: (status, body)) as (url, _):
        report = source(url).fetch_detailed(TARGETS, SeriesQuery(("errors",), 0, 120, 60))
    for target in TARGETS:
        assert expected in (report.error_of(target.instance, "errors") or "")
        assert report.series[target.instance]["errors"].error_count == 2


def test_unreachable_and_slow_servers_are_failed_reads() -> None:
    import time

    refused = source(f"http://127.0.0.1:{free_port()}").fetch_detailed(
        TARGETS, SeriesQuery(("requests", "memory"), 0, 60, 60))
    assert "connection refused" in refused.messages()[0]
    assert refused.series["globex/prod"]["memory"].error_count == 1

    def slow(form: dict[str, str]) -> tuple[int, Any]:
        time.sleep(1.5)
        return 200, matrix()

    with scripted(slow) as (url, _):
        report = source(url, timeout=0.3).fetch_detailed(
            TARGETS[:1], SeriesQuery(("requests",), 0, 60, 60))
    assert report.messages() == [f"no answer within 0.3s from {url}/api/v1/query_range"]


def test_grouped_answers_need_the_instance_label() -> None:
    answer = matrix(({}, [(60, "5")]))
    with scripted(lambda form: (200, answer)) as (url, _):
        both = source(url).fetch_detailed(TARGETS, SeriesQuery(("requests",), 0, 60, 60))
        one = source(url).fetch_detailed(TARGETS[:1], SeriesQuery(("requests",), 0, 60, 60))
    assert "series without the instance label 'instance_key'" in both.messages()[0]
    assert one.series["acme/prod"]["requests"].values.tolist() == [5.0]


def test_per_target_queries_add_up_their_series_and_name_missing_variables() -> None:
    answer = matrix(({"route": "/a"}, [(60, "2")]), ({"route": "/b"}, [(60, "3")]))
    queries = {"work": 'sum by (route) (x{key="{{ key }}", tier="{{ tier }}"}[{{ range }}])',
               "own": 'y{customer="{{ customer }}"}'}
    with scripted(lambda form: (200, answer)) as (url, seen):
        report = source(url, queries=queries, instance_label="key").fetch_detailed(
            TARGETS, SeriesQuery(("work", "own"), 0, 60, 60))
    assert report.series["acme/prod"]["own"].values.tolist() == [5.0]
    assert "cannot render the query template: 'tier' is undefined" in (
        report.error_of("acme/prod", "work") or "")
    assert sorted(f["query"] for f in seen) == ['y{customer="acme"}', 'y{customer="globex"}']


def test_bearer_token_from_a_secret_reference() -> None:
    with scripted(lambda form: (200, matrix())) as (url, seen):
        options = PrometheusOptions.model_validate(
            {"url": url, "bearer_token": {"$secret": "env:PROM_TOKEN"}})
        ok = PrometheusSource(options, MetricEnvironment(secret={"env:PROM_TOKEN": "t0k"}.get))
        ok.fetch(TARGETS, SeriesQuery(("requests",), 0, 60, 60))
        missing = PrometheusSource(options).fetch_detailed(TARGETS,
                                                           SeriesQuery(("requests",), 0, 60, 60))
    assert seen[0]["authorization"] == "Bearer t0k"
    assert "bearer_token of the prometheus source (env:PROM_TOKEN) cannot be resolved" in (
        missing.messages()[0])


def test_options_problems_and_empty_queries() -> None:
    with pytest.raises(ValueError, match="is not an http"):
        PrometheusOptions.model_validate({"url": "prometheus:9090"})
    with pytest.raises(ValueError, match="not a Prometheus label name"):
        PrometheusOptions.model_validate({"url": "http://p", "instance_label": "a-b"})
    with pytest.raises(ValueError, match=r"queries\.x: template syntax error"):
        PrometheusOptions.model_validate({"url": "http://p", "queries": {"x": "{{ a"}})
    with pytest.raises(ValueError, match="'Bad' is not a metric name"):
        PrometheusOptions.model_validate({"url": "http://p", "queries": {"Bad": "up"}})
    prom = source("http://127.0.0.1:9", queries={"cpu": "rate(cpu[{{ range }}])"})
    assert prom.metric_names() == ("cpu", "errors", "latency_p95", "latency_p99", "memory",
                                   "requests")
    assert prom.problems(["cpu", "disk"]) == [
        "the prometheus source has no query for 'disk' (known: cpu, errors, latency_p95, "
        "latency_p99, memory, requests); add one under queries:"]
    assert prom.fetch([], SeriesQuery(("cpu",), 0, 60, 60)) == {}
    empty = prom.fetch(TARGETS, SeriesQuery(("cpu",), 60, 60, 60))
    assert len(empty["acme/prod"]["cpu"]) == 0


def test_one_query_for_all_services_unless_the_template_names_the_service() -> None:
    targets = [*TARGETS, MetricTarget("acme/prod", "api")]
    queries = {"by_job": 'sum by ({{ label }}) (x{job="{{ service }}", {{ selector }}})'}
    with scripted(lambda form: (200, matrix())) as (url, seen):
        source(url, queries=queries).fetch(targets, SeriesQuery(("requests", "by_job"),
                                                                0, 60, 60))
    requests = [f["query"] for f in seen if "demo_requests_total" in f["query"]]
    assert requests == ['sum by (instance_key) (increase(demo_requests_total{route=~"/api/.*", '
                        'instance_key=~"acme/prod|globex/prod"}[60s]))']
    assert sorted(f["query"] for f in seen if f["query"].startswith("sum by (instance_key) (x")
                  ) == ['sum by (instance_key) (x{job="api", instance_key=~"acme/prod"})',
                        'sum by (instance_key) (x{job="web", '
                        'instance_key=~"acme/prod|globex/prod"})']

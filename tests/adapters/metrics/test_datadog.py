"""The datadog source against a local server speaking the documented query API JSON."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rollwave.adapters.metrics import MetricEnvironment, build_series, build_sources
from rollwave.adapters.metrics.datadog import DatadogOptions, DatadogSource
from rollwave.adapters.metrics.windowed import WindowedSource
from rollwave.adapters.secrets import SecretEnvironment, build_resolvers
from rollwave.core.model import MetricCheck
from rollwave.ports.metrics import MetricTarget, MetricWindow
from rollwave.ports.series import SeriesQuery

from .fake_datadog import API_KEY, APP_KEY, FakeDatadog, fake_datadog

START = 1_800_000_000.0  # a multiple of 60: rollup buckets fall on the grid
QUERY = SeriesQuery(("requests", "errors", "latency_p95", "memory"), START, START + 600, 60)
TARGETS = [MetricTarget(k, "web", labels={"customer": k.split("/")[0], "instance": "prod"})
           for k in ("acme/prod", "globex/prod", "initech/prod")]
ENVIRON = {"DD_API_KEY": API_KEY, "DD_APP_KEY": APP_KEY}


@pytest.fixture
def fake() -> Iterator[FakeDatadog]:
    with fake_datadog() as server:
        yield server


def _source(fake: FakeDatadog, environ: dict[str, str] | None = None,
            **options: object) -> DatadogSource:
    resolvers = build_resolvers({}, SecretEnvironment(environ=ENVIRON if environ is None
                                                      else environ))
    config = {"kind": "datadog", "url": fake.url, "api_key": {"$secret": "env:DD_API_KEY"},
              "app_key": {"$secret": "env:DD_APP_KEY"}, **options}
    source = build_series({"dd": config}, MetricEnvironment(secret=resolvers.resolve))["dd"]
    assert isinstance(source, DatadogSource)
    return source


def test_one_query_per_metric_for_all_instances(fake: FakeDatadog) -> None:
    source = _source(fake)
    report = source.fetch_detailed(TARGETS, QUERY)
    assert report.errors == {}
    assert len(fake.requests) == 4
    first = fake.requests[0]
    assert first["headers"]["dd-api-key"] == API_KEY
    assert first["headers"]["dd-application-key"] == APP_KEY
    assert (first["from"], first["to"]) == (str(int(START)), str(int(START + 600)))
    assert any(q.startswith("sum:rollwave_demo.demo_requests.count{route:/api/* AND "
                            "(instance_key:acme/prod OR instance_key:globex/prod OR "
                            "instance_key:initech/prod)} by {instance_key}.as_count()"
                            ".rollup(sum, 60)") for q in fake.queries())
    acme, globex = report.series["acme/prod"], report.series["globex/prod"]
    assert len(acme["requests"]) == 10
    assert acme["requests"].total() == 6000
    assert acme["errors"].total() / acme["requests"].total() == pytest.approx(0.3)
    assert globex["errors"].total() / globex["requests"].total() == pytest.approx(0.01)
    assert acme["latency_p95"].readable().tolist() == [300.0] * 10  # seconds x 1000
    assert globex["memory"].readable_count == 10


def test_refused_keys_are_failed_reads(fake: FakeDatadog) -> None:
    source = _source(fake, {"DD_API_KEY": "wrong-key-value", "DD_APP_KEY": APP_KEY})
    report = source.fetch_detailed(TARGETS, QUERY)
    series = report.series["acme/prod"]["requests"]
    assert series.error_count == len(series) == 10
    message = report.error_of("globex/prod", "errors") or ""
    assert "Datadog refused the keys (HTTP 403: Forbidden)" in message
    assert "wrong-key-value" not in " ".join(report.messages())


def test_missing_secret_is_a_failed_read_naming_the_reference(fake: FakeDatadog) -> None:
    source = _source(fake, {"DD_APP_KEY": APP_KEY})
    report = source.fetch_detailed(TARGETS, QUERY)
    assert not fake.requests
    assert all(s.error_count == len(s) for per in report.series.values() for s in per.values())
    assert "api_key of the datadog source (env:DD_API_KEY)" in report.messages()[0]
    assert "DD_API_KEY is not set" in report.messages()[0]


def test_rate_limit_retried_within_the_wait(fake: FakeDatadog) -> None:
    slept: list[float] = []
    source = _source(fake)
    source._sleep = slept.append
    fake.rate_limited, fake.reset = 1, 2
    report = source.fetch_detailed(TARGETS[:1], SeriesQuery(("requests",), START, START + 120, 60))
    assert report.errors == {}
    assert slept == [2.0]
    assert report.series["acme/prod"]["requests"].total() == 1200


def test_rate_limit_beyond_the_wait_fails_and_stops_asking(fake: FakeDatadog) -> None:
    source = _source(fake, max_retry_wait="5s")
    fake.rate_limited, fake.reset = 1, 120
    query = SeriesQuery(("requests",), START, START + 120, 60)
    report = source.fetch_detailed(TARGETS, query)
    message = report.error_of("acme/prod", "requests") or ""
    assert "Datadog rate limit 'query' reached (1600 requests per 3600s); it resets in 120s" in (
        message)
    assert report.series["acme/prod"]["requests"].error_count == 2
    asked = len(fake.requests)
    again = source.fetch_detailed(TARGETS, query)  # the server would answer now; we wait
    assert len(fake.requests) == asked
    assert "not asking again for" in (again.error_of("globex/prod", "requests") or "")


def test_empty_series_are_gaps_not_errors(fake: FakeDatadog) -> None:
    fake.empty = True
    report = _source(fake).fetch_detailed(TARGETS, QUERY)
    assert report.errors == {}
    requests = report.series["initech/prod"]["requests"]
    assert requests.readable_count == 0
    assert requests.error_count == 0


@pytest.mark.parametrize(("status", "body", "expected"), [
    (400, {"errors": ["Error parsing query: unexpected token"]},
     "Datadog refused the query (HTTP 400: Error parsing query: unexpected token)"),
    (200, {"status": "error", "error": "Rate limit of 300 requests in 3600 seconds"},
     "Datadog could not run the query (Rate limit of 300 requests in 3600 seconds)"),
    (502, {"errors": ["Bad gateway"]}, "Datadog answered HTTP 502: Bad gateway"),
])
def test_backend_errors_are_failed_reads(fake: FakeDatadog, status: int, body: dict[str, object],
                                          expected: str) -> None:
    fake.error_body = (status, body)
    report = _source(fake).fetch_detailed(TARGETS, QUERY)
    assert expected in (report.error_of("acme/prod", "memory") or "")
    assert report.series["acme/prod"]["memory"].error_count == 10


def test_unreachable_server_is_a_failed_read() -> None:
    with fake_datadog() as gone:
        url = gone.url
    source = DatadogSource(DatadogOptions.model_validate({
        "url": url, "timeout": "2s", "api_key": {"$secret": "env:K"},
        "app_key": {"$secret": "env:K"}}), MetricEnvironment(secret=lambda ref: "k"))
    report = source.fetch_detailed(TARGETS, QUERY)
    assert "cannot connect to" in report.messages()[0]
    assert report.series["acme/prod"]["requests"].error_count == 10


def test_per_target_templates_run_once_per_instance(fake: FakeDatadog) -> None:
    source = _source(fake, queries={
        "requests": "sum:rollwave_demo.demo_requests.count{instance_key:{{ key }},"
                    "customer:{{ customer }}}.as_count().rollup(sum, {{ step }})"})
    report = source.fetch_detailed(TARGETS, SeriesQuery(("requests",), START, START + 120, 60))
    assert report.errors == {}
    assert sorted(fake.queries()) == [
        f"sum:rollwave_demo.demo_requests.count{{instance_key:{k},customer:{k.split('/')[0]}}}"
        ".as_count().rollup(sum, 60)" for k in ("acme/prod", "globex/prod", "initech/prod")]
    assert report.series["globex/prod"]["requests"].total() == 1200


def test_unknown_metrics_and_bad_options() -> None:
    source = DatadogSource(DatadogOptions.model_validate({
        "api_key": {"$secret": "env:A"}, "app_key": {"$secret": "env:B"},
        "queries": {"saturation": "avg:system.cpu.user{ {{- scope -}} } by {{ by }}"}}))
    assert source.options.base_url == "https://api.datadoghq.com"
    assert "saturation" in source.metric_names()
    assert source.problems(["requests", "cpu"]) == [
        "the datadog source has no query for 'cpu' (known: errors, latency_p95, latency_p99, "
        "memory, requests, saturation); add one under queries:"]
    with pytest.raises(ValueError, match="write a secret reference"):
        DatadogOptions.model_validate({"api_key": "abc", "app_key": {"$secret": "env:B"}})
    with pytest.raises(ValueError, match=r"queries.x: template syntax error on line 1"):
        DatadogOptions.model_validate({"api_key": {"$secret": "env:A"},
                                       "app_key": {"$secret": "env:B"},
                                       "queries": {"x": "sum:a{ {{ scope }"}})


def test_a_per_window_check_reads_datadog(fake: FakeDatadog) -> None:
    resolvers = build_resolvers({}, SecretEnvironment(environ=ENVIRON))
    sources = build_sources({"dd": {"kind": "datadog", "url": fake.url,
                                    "api_key": {"$secret": "env:DD_API_KEY"},
                                    "app_key": {"$secret": "env:DD_APP_KEY"}}},
                            MetricEnvironment(secret=resolvers.resolve))
    source = sources.source("dd")
    assert isinstance(source, WindowedSource)
    now = [START]
    source.clock = lambda: now[0]
    check = MetricCheck(name="errors", metric="error_ratio", source="dd", fail_above=0.05)
    rate = MetricCheck(name="rate", metric="request_rate", source="dd", fail_below=1)
    session = source.open(TARGETS[0], [check, rate], MetricWindow(duration=300, interval=60))
    now[0] = START + 150  # two complete intervals
    reading = session.sample(150)
    assert reading["errors"].value == pytest.approx(0.3)
    assert reading["errors"].count == 1200
    assert reading["errors"].detail == "360 of 1,200 requests"
    assert reading["rate"].value == pytest.approx(10.0)
    fake.error_body = (403, {"errors": ["Forbidden"]})
    failed = session.sample(210)
    assert failed["errors"].error is not None
    assert "HTTP 403" in failed["errors"].error
    session.close()

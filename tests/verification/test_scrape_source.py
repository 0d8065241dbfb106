"""The scrape source and the metric source registry."""

from __future__ import annotations

import pytest

from rollwave.adapters.metrics import build_sources, registry
from rollwave.adapters.metrics.scrape import ScrapeOptions, ScrapeSource
from rollwave.core.model import MetricCheck
from rollwave.errors import ConfigError, PluginNotFound, VerificationError
from rollwave.ports.metrics import MetricSources, MetricTarget, MetricWindow
from rollwave.verification.http import UnreachableError
from tests.services import free_port
from tests.verification.support import exposition

TARGET = MetricTarget("acme/prod", "web", "http://127.0.0.1:9")
WINDOW = MetricWindow(20, 5)
ERRORS = MetricCheck(name="errors", metric="error_ratio", fail_above=0.05)


def scripted(*answers: tuple[int, str] | Exception) -> ScrapeSource:
    replies = list(answers)

    def fetch(url: str, timeout: float) -> tuple[int, str]:
        assert url == "http://127.0.0.1:9/metrics"
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    return ScrapeSource(fetch=fetch)


def test_each_check_gets_its_measurement() -> None:
    text0 = exposition({("/api/work", "200"): 0, ("/api/work", "500"): 0})
    text1 = exposition({("/api/work", "200"): 90, ("/api/work", "500"): 10})
    session = scripted((200, text0), (200, text1)).open(
        TARGET, [ERRORS, MetricCheck(name="rate", metric="request_rate", fail_below=1)], WINDOW)
    first = session.sample(0.0)
    assert first["errors"].ok
    assert first["errors"].value is None
    assert first["errors"].span == 0
    second = session.sample(5.0)
    assert second["errors"].value == pytest.approx(0.1)
    assert second["errors"].detail == "10 of 100 requests"
    assert second["errors"].count == 100
    assert second["errors"].evidence is not None
    assert second["rate"].value == pytest.approx(20.0)
    assert second["rate"].count is None  # the request count never gates a rate
    session.close()


@pytest.mark.parametrize(("reply", "message"), [
    (UnreachableError("cannot connect to x: connection refused"), "connection refused"),
    ((503, "Service Unavailable"), "answered HTTP 503: 'Service Unavailable'"),
    ((200, "<html>oops</html>"), "not a Prometheus text exposition"),
    ((200, ""), "the endpoint exposes no metric 'demo_requests_total'"),
])
def test_unreadable_scrapes_are_failed_measurements(reply: tuple[int, str] | Exception,
                                                    message: str) -> None:
    session = scripted(reply).open(TARGET, [ERRORS], WINDOW)
    reading = session.sample(0.0)["errors"]
    assert not reading.ok
    assert reading.error is not None
    assert message in reading.error
    assert reading.label == "error ratio"


def test_missing_status_label_is_a_failed_measurement() -> None:
    text = "# TYPE demo_requests_total counter\ndemo_requests_total{{route=\"/\"}} {}\n"
    session = scripted((200, text.format(0)), (200, text.format(50))).open(
        TARGET, [ERRORS], WINDOW)
    session.sample(0)
    reading = session.sample(5)["errors"]
    assert reading.error == ("no series of 'demo_requests_total' has a 'status' label; set "
                             "params.status_label")


def test_params_override_the_source_settings() -> None:
    def text(ok: int, bad: int) -> str:
        return ("# TYPE http_requests_total counter\n"
                f'http_requests_total{{code="200"}} {ok}\n'
                f'http_requests_total{{code="502"}} {bad}\n')

    check = MetricCheck(name="errors", metric="error_ratio", fail_above=0.05,
                        params={"requests_metric": "http_requests_total", "status_label": "code"})
    session = scripted((200, text(0, 0)), (200, text(30, 10))).open(TARGET, [check], WINDOW)
    session.sample(0)
    assert session.sample(5)["errors"].value == pytest.approx(0.25)


def test_latency_unit_is_guessed_from_the_name() -> None:
    source = ScrapeSource()
    ms = MetricCheck(name="p", metric="p95_latency_ms", fail_above=1,
                     params={"latency_metric": "rpc_duration_milliseconds"})
    assert source.settings(ms).spec().latency_scale == 1.0
    assert source.settings(ERRORS).spec().latency_scale == 1000.0
    forced = MetricCheck(name="p", metric="p95_latency_ms", fail_above=1,
                         params={"latency_unit": "milliseconds"})
    assert source.settings(forced).spec().latency_scale == 1.0


def test_problems_name_unknown_measures_and_bad_params() -> None:
    source = ScrapeSource()
    assert source.problems(ERRORS) == []
    assert source.problems(MetricCheck(name="g", metric="demo_memory_bytes", fail_above=1)) == []
    bad = MetricCheck(name="x", metric="rate(foo[5m])", fail_above=1,
                      params={"status_lable": "code", "error_status": "5(("})
    problems = source.problems(bad)
    assert problems[0].startswith("unknown measure 'rate(foo[5m])'; the scrape source derives "
                                  "error_ratio, p95_latency_ms, p99_latency_ms, request_rate")
    assert "params.status_lable" in problems[1]
    assert "params.error_status" in problems[1]
    with pytest.raises(VerificationError):
        source.open(TARGET, [bad], WINDOW)


def test_open_needs_an_endpoint() -> None:
    with pytest.raises(VerificationError, match="has no endpoint to scrape"):
        ScrapeSource().open(MetricTarget("acme/prod", "web", None), [ERRORS], WINDOW)


def test_real_http_scrape_of_a_closed_port_is_a_failed_measurement() -> None:
    target = MetricTarget("acme/prod", "web", f"http://127.0.0.1:{free_port()}")
    session = ScrapeSource(ScrapeOptions(timeout=0.5)).open(target, [ERRORS], WINDOW)
    try:
        reading = session.sample(0)["errors"]
    finally:
        session.close()
    assert reading.error is not None
    assert "connection refused" in reading.error


def test_build_sources_always_has_scrape() -> None:
    sources = build_sources()
    assert list(sources) == ["scrape"]
    assert isinstance(sources["scrape"], ScrapeSource)
    tuned = build_sources({"scrape": {"timeout": "5s", "status_label": "code"},
                           "other": {"kind": "scrape", "path": "/stats"}})
    assert sorted(tuned) == ["other", "scrape"]
    scrape = tuned.source("scrape")
    assert isinstance(scrape, ScrapeSource)
    assert scrape.options.timeout == 5.0
    assert scrape.settings(ERRORS).status_label == "code"
    assert "scrape" in registry.kinds()


def test_build_sources_reports_bad_options_and_unknown_kinds() -> None:
    with pytest.raises(ConfigError, match=r"metric source 'scrape' \(kind scrape\) has bad "
                                          r"options: timeot: Extra inputs"):
        build_sources({"scrape": {"timeot": 3}})
    with pytest.raises(PluginNotFound, match="no metric source of kind 'graphite'"):
        build_sources({"gr": {"kind": "graphite"}})


def test_metric_sources_lookup_and_problems() -> None:
    sources = MetricSources({"scrape": ScrapeSource()})
    with pytest.raises(VerificationError, match="no metric source named 'prom'") as info:
        sources.source("prom")
    assert info.value.hint is not None
    assert "scrape" in info.value.hint
    checks = [ERRORS, MetricCheck(name="p", metric="q", source="prom", fail_above=1),
              MetricCheck(name="z", metric="nope(", fail_above=1)]
    assert sources.problems(checks) == [
        "metric check 'p' reads unknown source 'prom' (known: scrape)",
        "metric check 'z': unknown measure 'nope('; the scrape source derives error_ratio, "
        "p95_latency_ms, p99_latency_ms, request_rate or reads a gauge by its metric name",
    ]


def test_default_sources_are_the_embedded_scrape() -> None:
    from rollwave.verification import MetricSources as Exported

    assert Exported is MetricSources
    assert list(MetricSources.default()) == ["scrape"]

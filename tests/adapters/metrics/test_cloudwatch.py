"""The cloudwatch source against moto's server: put metric data first, then read it back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.services import free_port, unavailable

from rollwave.adapters.metrics import MetricEnvironment, build_series, build_sources
from rollwave.adapters.metrics.cloudwatch import CloudWatchOptions, CloudWatchSource, valid_period
from rollwave.adapters.metrics.windowed import WindowedSource
from rollwave.core.model import MetricCheck
from rollwave.ports.metrics import MetricTarget, MetricWindow
from rollwave.ports.series import SeriesQuery

pytestmark = pytest.mark.service

START = 1_800_000_000.0 - 3600  # a multiple of 60
KEYS = ("acme/prod", "globex/prod", "initech/prod")
TARGETS = [MetricTarget(k, "web", labels={"customer": k.split("/")[0], "instance": "prod"})
           for k in KEYS]
SECRETS = {"env:AWS_KEY": "testing", "env:AWS_SECRET": "testing"}


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        unavailable("moto[server] is not installed (pip install 'moto[server]')")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _put_demo_data(url)
        yield url
    finally:
        server.stop()


def _client(url: str) -> Any:
    import boto3

    return boto3.client("cloudwatch", region_name="eu-west-1", endpoint_url=url,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _put_demo_data(url: str) -> None:
    """Ten minutes, one datum per metric per minute: acme/prod fails 30 % and is slow."""
    client = _client(url)
    for key in KEYS:
        faulty = key == "acme/prod"
        data = []
        for minute in range(10):
            at = datetime.fromtimestamp(START + minute * 60 + 5, UTC)
            dims = [{"Name": "Instance", "Value": key}]
            data += [
                {"MetricName": "Requests", "Dimensions": dims, "Timestamp": at, "Value": 600.0},
                {"MetricName": "Errors", "Dimensions": dims, "Timestamp": at,
                 "Value": 180.0 if faulty else 6.0},
                {"MetricName": "Latency", "Dimensions": dims, "Timestamp": at,
                 "Value": 300.0 if faulty else 8.0, "Unit": "Milliseconds"},
                {"MetricName": "MemoryBytes", "Dimensions": dims, "Timestamp": at,
                 "Value": 3e7 + minute},
            ]
        for first in range(0, len(data), 20):
            client.put_metric_data(Namespace="Rollwave/Demo", MetricData=data[first:first + 20])


def _source(url: str, **options: Any) -> CloudWatchSource:
    config = {"kind": "cloudwatch", "region": "eu-west-1", "endpoint_url": url,
              "access_key_id": {"$secret": "env:AWS_KEY"},
              "secret_access_key": {"$secret": "env:AWS_SECRET"},
              # moto answers Sum/Average/Minimum/Maximum/SampleCount, not percentiles
              "queries": {"latency_p95": {"metric": "Latency", "stat": "Maximum"}}, **options}
    source = build_series({"cw": config}, MetricEnvironment(secret=SECRETS.__getitem__))["cw"]
    assert isinstance(source, CloudWatchSource)
    return source


def test_get_metric_data_reads_back_what_was_put(moto_url: str) -> None:
    source = _source(moto_url)
    query = SeriesQuery(("requests", "errors", "latency_p95", "memory"), START, START + 600, 60)
    report = source.fetch_detailed(TARGETS, query)
    assert report.errors == {}
    assert report.queries == 4  # one GetMetricData per metric for the three instances
    acme, globex = report.series["acme/prod"], report.series["globex/prod"]
    assert acme["requests"].values.tolist() == [600.0] * 10
    assert acme["errors"].total() / acme["requests"].total() == pytest.approx(0.3)
    assert globex["errors"].total() / globex["requests"].total() == pytest.approx(0.01)
    assert acme["latency_p95"].readable().tolist() == [300.0] * 10
    assert globex["latency_p95"].readable().tolist() == [8.0] * 10
    assert report.series["initech/prod"]["memory"].values.tolist() == [3e7 + m for m in range(10)]


def test_gaps_outside_the_data_and_unknown_instances(moto_url: str) -> None:
    source = _source(moto_url)
    query = SeriesQuery(("requests",), START + 300, START + 900, 60)
    stranger = MetricTarget("nobody/prod", "web")
    report = source.fetch_detailed([*TARGETS[:1], stranger], query)
    assert report.errors == {}
    acme = report.series["acme/prod"]["requests"]
    assert acme.values[:5].tolist() == [600.0] * 5
    assert acme.readable_count == 5  # nothing was put after ten minutes: gaps, not errors
    assert acme.error_count == 0
    assert report.series["nobody/prod"]["requests"].readable_count == 0


def test_templated_dimensions_and_scale(moto_url: str) -> None:
    source = _source(moto_url, dimensions={"Instance": "{{ customer }}/{{ instance }}"},
                     queries={"latency_s": {"metric": "Latency", "stat": "Average",
                                            "unit": "Milliseconds", "scale": 0.001}})
    report = source.fetch_detailed(TARGETS[:1], SeriesQuery(("latency_s",), START,
                                                            START + 120, 60))
    assert report.series["acme/prod"]["latency_s"].values.tolist() == [0.3, 0.3]


def test_botocore_errors_become_failed_reads(moto_url: str) -> None:
    bad_period = _source(moto_url).fetch_detailed(
        TARGETS, SeriesQuery(("requests",), START, START + 600, 45))
    assert "CloudWatch cannot use a period of 45s" in bad_period.messages()[0]
    assert bad_period.series["acme/prod"]["requests"].error_count == 14
    gone = CloudWatchSource(CloudWatchOptions.model_validate({
        "region": "eu-west-1", "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "timeout": "1s", "access_key_id": {"$secret": "env:AWS_KEY"},
        "secret_access_key": {"$secret": "env:AWS_SECRET"}}),
        MetricEnvironment(secret=SECRETS.__getitem__))
    report = gone.fetch_detailed(TARGETS, SeriesQuery(("memory",), START, START + 120, 60))
    assert "cannot reach CloudWatch" in report.messages()[0]
    assert report.series["globex/prod"]["memory"].error_count == 2
    unresolved = CloudWatchSource(CloudWatchOptions.model_validate({
        "region": "eu-west-1", "access_key_id": {"$secret": "env:AWS_KEY"},
        "secret_access_key": {"$secret": "env:AWS_SECRET"}}))
    message = unresolved.fetch_detailed(TARGETS[:1], SeriesQuery(("memory",), START,
                                                                 START + 60, 60)).messages()[0]
    assert "the access_key_id of the cloudwatch source (env:AWS_KEY) cannot be resolved" in (
        message)


class _Client:
    """A stand-in boto3 client: raises ``error`` or answers ``pages`` in turn."""

    def __init__(self, error: Exception | None = None,
                 pages: list[dict[str, Any]] | None = None) -> None:
        self.error, self.pages, self.requests = error, list(pages or []), []

    def get_metric_data(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return self.pages.pop(0)


def test_throttling_and_per_query_status() -> None:
    from botocore.exceptions import ClientError

    throttled = CloudWatchSource(CloudWatchOptions(), client=_Client(ClientError(
        {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "GetMetricData")))
    report = throttled.fetch_detailed(TARGETS, SeriesQuery(("requests",), START, START + 120, 60))
    assert report.messages() == ["CloudWatch refused GetMetricData (Throttling: Rate exceeded)"]
    at = datetime.fromtimestamp(START, UTC)
    paged = _Client(pages=[
        {"MetricDataResults": [
            {"Id": "q0", "StatusCode": "PartialData", "Timestamps": [at], "Values": [5.0]},
            {"Id": "q1", "StatusCode": "Forbidden", "Messages": [{"Code": "Forbidden",
                                                                  "Value": "no access"}]}],
         "NextToken": "next"},
        {"MetricDataResults": [
            {"Id": "q0", "StatusCode": "Complete",
             "Timestamps": [datetime.fromtimestamp(START + 60, UTC)], "Values": [7.0]},
            {"Id": "q2", "StatusCode": "Complete", "Timestamps": [], "Values": []}]}])
    report = CloudWatchSource(CloudWatchOptions(), client=paged).fetch_detailed(
        TARGETS, SeriesQuery(("requests",), START, START + 120, 60))
    assert paged.requests[1]["NextToken"] == "next"
    assert [q["MetricStat"]["Metric"]["Dimensions"] for q in
            paged.requests[0]["MetricDataQueries"]] == [[{"Name": "Instance", "Value": k}]
                                                        for k in KEYS]
    assert report.series["acme/prod"]["requests"].values.tolist() == [5.0, 7.0]
    assert report.error_of("globex/prod", "requests") == (
        "CloudWatch answered Forbidden for globex/prod (no access)")
    assert report.series["initech/prod"]["requests"].error_count == 0


def test_options_are_checked() -> None:
    assert all(valid_period(p) for p in (1, 5, 10, 30, 60, 300))
    assert not any(valid_period(p) for p in (45, 90.5, 2))
    with pytest.raises(ValueError, match="give both access_key_id and secret_access_key"):
        CloudWatchOptions.model_validate({"access_key_id": {"$secret": "env:A"}})
    with pytest.raises(ValueError, match="'Median' is not a CloudWatch statistic"):
        CloudWatchOptions.model_validate({"queries": {"x": {"metric": "M", "stat": "Median"}}})
    with pytest.raises(ValueError, match="dimension Instance: template syntax error"):
        CloudWatchOptions.model_validate({"dimensions": {"Instance": "{{ key"}})
    source = CloudWatchSource(CloudWatchOptions())
    assert source.metric_names() == ("errors", "latency_p95", "latency_p99", "memory",
                                     "requests")
    assert source.problems(["requests", "cpu"]) == [
        "the cloudwatch source has no query for 'cpu' (known: errors, latency_p95, "
        "latency_p99, memory, requests); add one under queries:"]


def test_a_per_window_check_reads_cloudwatch(moto_url: str) -> None:
    sources = build_sources({"cw": {
        "kind": "cloudwatch", "region": "eu-west-1", "endpoint_url": moto_url,
        "access_key_id": {"$secret": "env:AWS_KEY"},
        "secret_access_key": {"$secret": "env:AWS_SECRET"}}},
        MetricEnvironment(secret=SECRETS.__getitem__))
    source = sources.source("cw")
    assert isinstance(source, WindowedSource)
    now = [START]
    source.clock = lambda: now[0]
    check = MetricCheck(name="errors", metric="error_ratio", source="cw", fail_above=0.05)
    session = source.open(TARGETS[0], [check], MetricWindow(duration=600, interval=60))
    now[0] = START + 300
    reading = session.sample(300)["errors"]
    assert reading.value == pytest.approx(0.3)
    assert reading.count == 3000

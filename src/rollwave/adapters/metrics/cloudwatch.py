"""AWS CloudWatch (kind ``cloudwatch``): ``GetMetricData`` through boto3, templated per instance.

Each logical metric is a ``MetricStat``: a namespace, a metric name, dimensions whose values
are templates over the target (``{{ key }}``, ``{{ customer }}``, ``{{ instance }}``, labels,
``{{ service }}``, ``{{ step }}``), a statistic, and the period = the query's step. One
``GetMetricData`` call carries the metric's query for every target of a service (up to 500 a
call, pages followed); each answer's ``Timestamps`` are period starts, so values land on the
grid slot they describe. CloudWatch periods are 1, 5, 10, 30 or a multiple of 60 seconds: any
other step makes every read fail, with that reason.

botocore's errors are translated here, at the edge, into failed reads with the reason in words
(refused credentials, throttling, no region, unreachable endpoint, timeouts); a query whose
``StatusCode`` is ``InternalError`` or ``Forbidden`` fails only that instance's points.

Defaults (override or add under ``queries:``), in the namespace ``Rollwave/Demo`` with the
dimension ``Instance = {{ key }}`` (a convention for publishing the demo service's metrics
with ``PutMetricData`` or the CloudWatch agent)::

    requests     Requests      Sum
    errors       Errors        Sum
    latency_p95  Latency       p95       (milliseconds)
    latency_p99  Latency       p99
    memory       MemoryBytes   Maximum

Options: ``region``, ``profile``, ``endpoint_url`` (e.g. a local moto server),
``access_key_id`` / ``secret_access_key`` / ``session_token`` (``{$secret: …}`` references;
default: boto3's credential chain), ``namespace``, ``dimensions``, ``queries`` (each
``{metric, stat, namespace, dimensions, unit, scale}``), ``timeout`` (10s), ``concurrency`` (4
calls at a time).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from jinja2 import Template
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rollwave.adapters.metrics import query as q
from rollwave.adapters.metrics.templated import QuerySource, failed_everywhere, nothing_to_read
from rollwave.core.durations import Duration
from rollwave.errors import SecretError
from rollwave.ports.metrics import MetricTarget
from rollwave.ports.series import SeriesQuery

MAX_QUERIES: Final = 500
"""MetricDataQueries per GetMetricData call (the API's limit)."""

_STAT: Final = re.compile(r"(Sum|Average|Minimum|Maximum|SampleCount|IQM|"
                          r"(p|tm|wm|tc|ts|PR|TM|WM|TC|TS)\(?[0-9.:%]+\)?)")
_HIGH_RESOLUTION: Final = (1, 5, 10, 30)


class CloudWatchMetric(BaseModel):
    """One logical metric as a CloudWatch ``MetricStat``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(min_length=1, max_length=255)
    stat: str = "Average"
    namespace: str | None = None
    dimensions: dict[str, str] | None = None
    unit: str | None = None
    scale: float = 1.0

    @field_validator("stat")
    @classmethod
    def _stat(cls, value: str) -> str:
        if not _STAT.fullmatch(value):
            raise ValueError(f"'{value}' is not a CloudWatch statistic (Sum, Average, Minimum, "
                             "Maximum, SampleCount, p95, tm99…)")
        return value

    @field_validator("dimensions")
    @classmethod
    def _dimensions(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else _check_dimensions(value)


DEFAULT_QUERIES: Final = {
    "requests": CloudWatchMetric(metric="Requests", stat="Sum"),
    "errors": CloudWatchMetric(metric="Errors", stat="Sum"),
    "latency_p95": CloudWatchMetric(metric="Latency", stat="p95"),
    "latency_p99": CloudWatchMetric(metric="Latency", stat="p99"),
    "memory": CloudWatchMetric(metric="MemoryBytes", stat="Maximum"),
}


def _check_dimensions(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 30:
        raise ValueError("CloudWatch takes at most 30 dimensions")
    for name, text in value.items():
        try:
            q.compile_template(text)
        except ValueError as exc:
            raise ValueError(f"dimension {name}: {exc}") from None
    return value


class CloudWatchOptions(BaseModel):
    """Options of a ``cloudwatch`` source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    access_key_id: q.Secret | None = None
    secret_access_key: q.Secret | None = None
    session_token: q.Secret | None = None
    namespace: str = Field(default="Rollwave/Demo", min_length=1, max_length=255)
    dimensions: dict[str, str] = {"Instance": "{{ key }}"}
    queries: dict[str, CloudWatchMetric] = {}
    timeout: Duration = Field(default=10.0, gt=0)
    concurrency: int = Field(default=4, ge=1, le=32)

    @field_validator("dimensions")
    @classmethod
    def _dimensions(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_dimensions(value)

    @field_validator("queries")
    @classmethod
    def _names(cls, value: dict[str, CloudWatchMetric]) -> dict[str, CloudWatchMetric]:
        for name in value:
            q.check_metric_name(name)
        return value

    @model_validator(mode="after")
    def _keys(self) -> CloudWatchOptions:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither (to "
                             "use boto3's credential chain)")
        return self


def valid_period(step: float) -> bool:
    """True for the periods CloudWatch takes: 1, 5, 10, 30 or a multiple of 60 seconds."""
    return step == int(step) and (int(step) in _HIGH_RESOLUTION or int(step) % 60 == 0)


class CloudWatchSource(QuerySource):
    """GetMetricData against one region; a SeriesSource that never raises."""

    kind = "cloudwatch"

    def __init__(self, options: CloudWatchOptions, environment: Any = None, *,
                 client: Any = None) -> None:
        self.options = options
        self._secret = getattr(environment, "secret", None)
        self._queries = {**DEFAULT_QUERIES, **options.queries}
        self._dimensions: dict[str, dict[str, Template]] = {
            name: {k: q.compile_template(v)
                   for k, v in (spec.dimensions or options.dimensions).items()}
            for name, spec in self._queries.items()}
        self._client = client
        self._lock = threading.Lock()

    def fetch_detailed(self, targets: Sequence[MetricTarget],
                       query: SeriesQuery) -> q.FetchReport:
        """:meth:`fetch` with the reason of every failed read."""
        if not targets:
            return q.FetchReport(series={})
        if query.end <= query.start:
            return nothing_to_read(targets, query)
        reason: str | None = None
        if not valid_period(query.step):
            reason = (f"CloudWatch cannot use a period of {query.step:g}s: use 1, 5, 10, 30 or "
                      "a multiple of 60 seconds as the analysis interval")
        else:
            try:
                client = self.client()
            except q.QueryError as exc:
                reason = exc.message
        if reason is not None:
            return failed_everywhere(targets, query, reason)
        jobs = q.plan_jobs(self._known(query), targets, lambda metric: False)
        return q.run_jobs(jobs, targets, query, lambda job: self._run(client, job, query),
                          concurrency=self.options.concurrency, unknown=self._unknown)

    def close(self) -> None:
        """Drop the client (boto3 clients need no explicit close)."""
        with self._lock:
            self._client = None

    def client(self) -> Any:
        """The boto3 CloudWatch client, created on first use; QueryError when it cannot be."""
        with self._lock:
            if self._client is None:
                self._client = self._new_client()
            return self._client

    def _new_client(self) -> Any:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        opts = self.options
        try:
            keys = {
                "aws_access_key_id": q.resolve_secret(
                    opts.access_key_id, self._secret, "the access_key_id of the cloudwatch source"),
                "aws_secret_access_key": q.resolve_secret(
                    opts.secret_access_key, self._secret,
                    "the secret_access_key of the cloudwatch source"),
                "aws_session_token": q.resolve_secret(
                    opts.session_token, self._secret, "the session_token of the cloudwatch source"),
            }
        except SecretError as exc:
            raise q.QueryError(exc.message) from None
        try:
            session = boto3.session.Session(
                aws_access_key_id=keys["aws_access_key_id"],
                aws_secret_access_key=keys["aws_secret_access_key"],
                aws_session_token=keys["aws_session_token"],
                profile_name=opts.profile, region_name=opts.region)
            return session.client(
                "cloudwatch", endpoint_url=opts.endpoint_url,
                config=Config(connect_timeout=opts.timeout, read_timeout=opts.timeout,
                              retries={"max_attempts": 2, "mode": "standard"}))
        except BotoCoreError as exc:
            raise q.QueryError(f"cannot set up CloudWatch: {exc}") from None

    def _stat(self, metric: str, target: MetricTarget, step: float) -> dict[str, Any]:
        spec = self._queries[metric]
        variables = {**target.variables(), "step": q.step_text(step)}
        dimensions = [{"Name": name, "Value": q.render(template, variables)}
                      for name, template in self._dimensions[metric].items()]
        stat: dict[str, Any] = {
            "Metric": {"Namespace": spec.namespace or self.options.namespace,
                       "MetricName": spec.metric, "Dimensions": dimensions},
            "Period": int(step), "Stat": spec.stat}
        if spec.unit:
            stat["Unit"] = spec.unit
        return stat

    def _run(self, client: Any, job: q.Job, query: SeriesQuery) -> q.JobAnswer:
        answer = q.JobAnswer()
        scale = self._queries[job.metric].scale
        targets = list(job.targets)
        for first in range(0, len(targets), MAX_QUERIES):
            batch = targets[first:first + MAX_QUERIES]
            queries = [{"Id": f"q{i}", "MetricStat": self._stat(job.metric, t, query.step),
                        "ReturnData": True} for i, t in enumerate(batch)]
            for result in self._call(client, queries, query):
                index = _index(result.get("Id"))
                if index is None or index >= len(batch):
                    continue
                key = batch[index].instance
                status = result.get("StatusCode", "Complete")
                if status not in ("Complete", "PartialData"):
                    messages = "; ".join(str(m.get("Value", m)) for m in
                                         result.get("Messages") or []) or "no detail"
                    answer.failed[key] = f"CloudWatch answered {status} for {key} ({messages})"
                    continue
                values = [q.parse_number(v) for v in result.get("Values") or []]
                times = [_seconds(t) for t in result.get("Timestamps") or []]
                answer.add(key, [(t, None if v is None else v * scale)
                                 for t, v in zip(times, values, strict=False)
                                 if math.isfinite(t)])
        return answer

    def _call(self, client: Any, queries: list[dict[str, Any]],
              query: SeriesQuery) -> list[Mapping[str, Any]]:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        request: dict[str, Any] = {
            "MetricDataQueries": queries, "ScanBy": "TimestampAscending",
            "StartTime": datetime.fromtimestamp(query.start, UTC),
            "EndTime": datetime.fromtimestamp(query.end, UTC)}
        results: dict[str, dict[str, Any]] = {}
        try:
            for _ in range(1000):  # pages; a runaway NextToken cannot loop forever
                page = client.get_metric_data(**request)
                for result in page.get("MetricDataResults", []):
                    merged = results.setdefault(result["Id"], {**result, "Timestamps": [],
                                                               "Values": []})
                    merged["Timestamps"].extend(result.get("Timestamps") or [])
                    merged["Values"].extend(result.get("Values") or [])
                    if result.get("StatusCode") not in (None, "Complete", "PartialData"):
                        merged["StatusCode"] = result["StatusCode"]
                        merged["Messages"] = result.get("Messages")
                token = page.get("NextToken")
                if not token:
                    break
                request["NextToken"] = token
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise q.QueryError(f"CloudWatch refused GetMetricData ({error.get('Code', '?')}: "
                               f"{q.excerpt(str(error.get('Message', '')))})") from None
        except NoCredentialsError:
            raise q.QueryError("no AWS credentials for CloudWatch: set access_key_id and "
                               "secret_access_key references, a profile, or the environment's "
                               "AWS credentials") from None
        except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError) as exc:
            raise q.QueryError(f"cannot reach CloudWatch: {q.excerpt(str(exc))}") from None
        except BotoCoreError as exc:
            raise q.QueryError(f"CloudWatch read failed: {q.excerpt(str(exc))}") from None
        return list(results.values())


def _index(query_id: Any) -> int | None:
    if isinstance(query_id, str) and query_id.startswith("q") and query_id[1:].isdigit():
        return int(query_id[1:])
    return None


def _seconds(stamp: Any) -> float:
    if isinstance(stamp, datetime):
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()
    return float(stamp) if isinstance(stamp, int | float) else math.nan


def create(options: Any, environment: Any) -> CloudWatchSource:
    """Registry factory: ``options`` is a validated :class:`CloudWatchOptions`."""
    return CloudWatchSource(options, environment)

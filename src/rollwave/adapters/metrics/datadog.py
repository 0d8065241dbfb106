"""Datadog metrics query API (kind ``datadog``): ``GET /api/v1/query`` templated per instance.

Each logical metric is a Datadog metric query template (Jinja2, sandboxed, strict) sent as
``GET {url}/api/v1/query?from=<s>&to=<s>&query=<q>`` with the ``DD-API-KEY`` and
``DD-APPLICATION-KEY`` headers. The answer's ``series[]`` are told apart by their ``tag_set``
(or ``scope``) value of the instance tag, and ``pointlist`` ``[[ms, value], …]`` points land on
the grid slot they start (rollup buckets start at their timestamp: align the query's start to
the step).

Template variables:

``scope``      ``instance_key:acme/prod OR instance_key:globex/prod`` (one query for all the
               service's targets) or ``instance_key:acme/prod`` (per target)
``by``         ``{instance_key}``, to group by the instance tag (option ``tag``)
``tag``        the instance tag; ``step`` the step in seconds; ``service``; ``namespace``
per target     ``key``, ``customer``, ``instance``, ``environment``, ``tier``, ``region``,
               the instance's labels

The defaults read the demo service's metrics as the Datadog Agent's OpenMetrics check reports
them with ``namespace: rollwave_demo`` and ``histogram_buckets_as_distributions: true``, each
instance tagged ``instance_key:customer/instance``::

    requests     sum:N.demo_requests.count{route:/api/* AND (S)} by B.as_count().rollup(sum, T)
    errors       sum:N.demo_requests.count{route:/api/* AND status:5* AND (S)} by B
                     .as_count().rollup(sum, T)
    latency_p95  p95:N.demo_request_duration_seconds{route:/api/* AND (S)} by B
                     .rollup(avg, T) * 1000
    latency_p99  the same with p99
    memory       max:N.demo_memory_bytes{S} by B.rollup(max, T)

Errors are failed reads, never exceptions: 403 (keys refused), 400 (bad query), 5xx,
timeouts. A 429 is retried once after ``X-RateLimit-Reset`` seconds when that is within
``max_retry_wait``; otherwise the source stops asking until the reset (reads fail meanwhile,
naming the limit).

Options: ``api_key`` and ``app_key`` (``{$secret: …}`` references, required), ``site``
(``datadoghq.com``; ``datadoghq.eu``, ``us5.datadoghq.com``…) or ``url`` (the API's base URL),
``tag``, ``namespace``, ``queries``, ``timeout`` (10s), ``concurrency`` (4),
``max_retry_wait`` (10s).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rollwave.adapters.metrics import query as q
from rollwave.adapters.metrics.templated import TemplatedHttpSource
from rollwave.core.durations import Duration
from rollwave.ports.series import SeriesQuery

_API: Final = '{route:/api/* AND ({{ scope }})}'
DEFAULT_QUERIES: Final = {
    "requests": "sum:{{ namespace }}.demo_requests.count" + _API
                + " by {{ by }}.as_count().rollup(sum, {{ step }})",
    "errors": "sum:{{ namespace }}.demo_requests.count{route:/api/* AND status:5* AND "
              "({{ scope }})} by {{ by }}.as_count().rollup(sum, {{ step }})",
    "latency_p95": "p95:{{ namespace }}.demo_request_duration_seconds" + _API
                   + " by {{ by }}.rollup(avg, {{ step }}) * 1000",
    "latency_p99": "p99:{{ namespace }}.demo_request_duration_seconds" + _API
                   + " by {{ by }}.rollup(avg, {{ step }}) * 1000",
    "memory": "max:{{ namespace }}.demo_memory_bytes{ {{- scope -}} } by {{ by }}"
              ".rollup(max, {{ step }})",
}
"""The logical metrics answered out of the box (the demo service through the Agent)."""

FLEET_NAMES: Final = frozenset({"scope", "by", "tag", "step", "service", "namespace"})
_TAG: Final = re.compile(r"[a-zA-Z][a-zA-Z0-9_.\-/]*")


class DatadogOptions(BaseModel):
    """Options of a ``datadog`` source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: q.Secret
    app_key: q.Secret
    site: str = "datadoghq.com"
    url: str | None = None
    tag: str = "instance_key"
    namespace: str = "rollwave_demo"
    queries: dict[str, str] = {}
    timeout: Duration = Field(default=10.0, gt=0)
    concurrency: int = Field(default=4, ge=1, le=32)
    max_retry_wait: Duration = 10.0

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"'{value}' is not an http(s) URL such as https://api.datadoghq.eu")
        return value

    @field_validator("site")
    @classmethod
    def _site(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9.-]+\.[a-z]+", value):
            raise ValueError(f"'{value}' is not a Datadog site such as datadoghq.eu")
        return value

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        if not _TAG.fullmatch(value):
            raise ValueError(f"'{value}' is not a Datadog tag name")
        return value

    @field_validator("queries")
    @classmethod
    def _queries(cls, value: dict[str, str]) -> dict[str, str]:
        q.check_query_templates(value)
        return value

    @property
    def base_url(self) -> str:
        return self.url or f"https://api.{self.site}"


class DatadogSource(TemplatedHttpSource):
    """Metric queries against Datadog's API; a SeriesSource that never raises."""

    kind = "datadog"
    fleet_names = FLEET_NAMES

    def __init__(self, options: DatadogOptions, environment: Any = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__({**DEFAULT_QUERIES, **options.queries}, options.base_url)
        self.options = options
        self.concurrency = options.concurrency
        self._secret = getattr(environment, "secret", None)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._blocked_until = -math.inf
        self._blocked_reason = ""

    def _headers(self) -> dict[str, str]:
        return {
            "DD-API-KEY": q.resolve_secret(self.options.api_key, self._secret,
                                           "the api_key of the datadog source") or "",
            "DD-APPLICATION-KEY": q.resolve_secret(self.options.app_key, self._secret,
                                                   "the app_key of the datadog source") or "",
            "Accept": "application/json",
        }

    def _variables(self, job: q.Job, query: SeriesQuery) -> dict[str, Any]:
        tag = self.options.tag
        common = {"tag": tag, "by": "{" + tag + "}", "step": q.step_text(query.step),
                  "service": job.targets[0].service, "namespace": self.options.namespace}
        scope = " OR ".join(f"{tag}:{t.instance}" for t in job.targets)
        if job.grouped:
            return {**common, "scope": scope}
        return {**job.targets[0].variables(), **common, "scope": scope}

    def _run(self, job: q.Job, query: SeriesQuery, headers: Mapping[str, str]) -> q.JobAnswer:
        text = q.render(self._templates[job.metric], self._variables(job, query))
        params = {"from": str(math.floor(query.start)), "to": str(math.ceil(query.end)),
                  "query": text}
        body = self._get(params, headers, text)
        series = body.get("series")
        if series is None:
            series = []
        if not isinstance(series, list):
            raise q.QueryError("Datadog answered without a series list")
        answer = q.JobAnswer()
        wanted = {t.instance for t in job.targets}
        for item in series:
            if not isinstance(item, dict):
                continue
            points = [(float(p[0]) / 1000.0, q.parse_number(p[1]))
                      for p in item.get("pointlist") or []
                      if isinstance(p, list) and len(p) == 2
                      and isinstance(p[0], int | float) and not isinstance(p[0], bool)]
            if not job.grouped:
                answer.add(job.targets[0].instance, points)
                continue
            owner = self._owner(item)
            if owner is None and len(job.targets) == 1:
                owner = job.targets[0].instance
            if owner is None:
                raise q.QueryError(
                    f"the answer has series without the tag '{self.options.tag}', so they "
                    f"cannot be told apart: group the query by {{{self.options.tag}}}; "
                    f"query: {q.excerpt(text, 200)}")
            if owner in wanted:
                answer.add(owner, points)
        return answer

    def _owner(self, item: Mapping[str, Any]) -> str | None:
        prefix = self.options.tag + ":"
        tags = item.get("tag_set")
        if not isinstance(tags, list) or not tags:
            scope = item.get("scope")
            tags = str(scope).split(",") if isinstance(scope, str) else []
        for tag in tags:
            if isinstance(tag, str) and tag.strip().startswith(prefix):
                return tag.strip()[len(prefix):]
        return None

    def _get(self, params: Mapping[str, str], headers: Mapping[str, str],
             text: str) -> dict[str, Any]:
        for attempt in (1, 2):
            self._check_blocked()
            answer = self._http.request("GET", "/api/v1/query", params=params, headers=headers,
                                        timeout=self.options.timeout)
            if answer.status == 429:
                wait = _reset_seconds(answer.headers)
                reason = _rate_limit_text(answer.headers, wait)
                if attempt == 1 and wait <= self.options.max_retry_wait:
                    self._sleep(wait)
                    continue
                self._block(wait, reason)
                raise q.QueryError(reason)
            return _body(answer, text)
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_blocked(self) -> None:
        with self._lock:
            left = self._blocked_until - self._clock()
            if left > 0:
                raise q.QueryError(f"{self._blocked_reason} (not asking again for "
                                   f"{math.ceil(left)}s)")

    def _block(self, seconds: float, reason: str) -> None:
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)
            self._blocked_reason = reason


def _reset_seconds(headers: Mapping[str, str]) -> float:
    try:
        return max(0.0, float(headers.get("x-ratelimit-reset", "60")))
    except ValueError:
        return 60.0


def _rate_limit_text(headers: Mapping[str, str], wait: float) -> str:
    limit = headers.get("x-ratelimit-limit", "?")
    period = headers.get("x-ratelimit-period", "?")
    name = headers.get("x-ratelimit-name", "query")
    return (f"Datadog rate limit '{name}' reached ({limit} requests per {period}s); "
            f"it resets in {wait:g}s")


def _body(answer: q.HttpAnswer, text: str) -> dict[str, Any]:
    body = answer.body if isinstance(answer.body, dict) else {}
    errors = body.get("errors")
    detail = ("; ".join(str(e) for e in errors) if isinstance(errors, list) and errors
              else str(body.get("error") or q.excerpt(answer.text) or "(empty body)"))
    if answer.status == 403:
        raise q.QueryError(f"Datadog refused the keys (HTTP 403: {q.excerpt(detail)}): check "
                           "api_key, app_key and the site")
    if answer.status == 400:
        raise q.QueryError(f"Datadog refused the query (HTTP 400: {q.excerpt(detail)}); "
                           f"query: {q.excerpt(text, 200)}")
    if answer.status != 200 or not isinstance(answer.body, dict):
        raise q.QueryError(f"Datadog answered HTTP {answer.status}: {q.excerpt(detail)}")
    if body.get("status") == "error" or body.get("error"):
        raise q.QueryError(f"Datadog could not run the query ({q.excerpt(detail)}); "
                           f"query: {q.excerpt(text, 200)}")
    return body


def create(options: Any, environment: Any) -> DatadogSource:
    """Registry factory: ``options`` is a validated :class:`DatadogOptions`."""
    return DatadogSource(options, environment)

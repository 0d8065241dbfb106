"""Prometheus HTTP API (kind ``prometheus``): PromQL range queries templated per instance.

Each logical metric is a PromQL template (Jinja2, sandboxed, strict) run with
``POST /api/v1/query_range``. Point ``k`` of the answer is evaluated at the *end* of slot ``k``
of the query's grid (``start + (k + 1)·step``), so ``increase(x[{{ range }}])`` there is the
increase over that slot, which lands on the slot's start, as the engine expects.

Template variables:

``selector``   ``instance_key=~"acme/prod|globex/prod"`` (one query for all the service's
               targets) or ``instance_key="acme/prod"`` (per target); put it inside the braces
``label``      the instance label (option ``instance_label``, default ``instance_key``)
``instances``  the instance keys as a regular expression (``acme/prod|globex/prod``)
``step``       the step in seconds (``60``); ``range`` the same as a PromQL duration (``60s``)
``service``    the service measured
per target     ``key`` (``acme/prod``), ``customer``, ``instance`` (``prod``), ``environment``,
               ``tier``, ``region``, the instance's labels, ``base_url``

A template that uses only the first five runs once per service for every target and must keep
the instance label in its answer (``sum by ({{ label }}) (…)``); a template that uses a
per-target variable runs once per target (at most ``concurrency`` at a time) and its series
are added up. The default queries read the demo service's metrics (scrape every instance with
a target label ``instance_key: customer/instance``)::

    requests     sum by (L) (increase(demo_requests_total{route=~"/api/.*", S}[R]))
    errors       sum by (L) (increase(demo_requests_total{route=~"/api/.*", status=~"5..", S}[R]))
    latency_p95  1000 * histogram_quantile(0.95, sum by (L, le) (rate(
                     demo_request_duration_seconds_bucket{route=~"/api/.*", S}[R])))
    latency_p99  the same at 0.99
    memory       max by (L) (demo_memory_bytes{S})

Options: ``url`` (required), ``instance_label``, ``queries`` (logical metric → PromQL
template; overrides a default or adds a metric), ``timeout`` (10s per request), ``concurrency``
(4 requests at a time), ``bearer_token`` (a ``{$secret: …}`` reference).
A step of at least two scrape intervals keeps ``increase`` and ``rate`` defined.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rollwave.adapters.metrics import query as q
from rollwave.adapters.metrics.templated import TemplatedHttpSource
from rollwave.core.durations import Duration
from rollwave.ports.series import SeriesQuery

_SELECT: Final = '{route=~"/api/.*", {{ selector }}}'
DEFAULT_QUERIES: Final = {
    "requests": "sum by ({{ label }}) (increase(demo_requests_total" + _SELECT
                + "[{{ range }}]))",
    "errors": 'sum by ({{ label }}) (increase(demo_requests_total{route=~"/api/.*", '
              'status=~"5..", {{ selector }}}[{{ range }}]))',
    "latency_p95": "1000 * histogram_quantile(0.95, sum by ({{ label }}, le) "
                   "(rate(demo_request_duration_seconds_bucket" + _SELECT + "[{{ range }}])))",
    "latency_p99": "1000 * histogram_quantile(0.99, sum by ({{ label }}, le) "
                   "(rate(demo_request_duration_seconds_bucket" + _SELECT + "[{{ range }}])))",
    "memory": "max by ({{ label }}) (demo_memory_bytes{ {{- selector -}} })",
}
"""The logical metrics answered out of the box, for the demo service's metric names."""

FLEET_NAMES: Final = frozenset({"selector", "label", "instances", "step", "range", "service"})
"""Template variables that do not depend on the target: such a query serves every target."""

MAX_POINTS: Final = 10_000
"""Points per series per request (Prometheus refuses more than 11,000)."""

_LABEL: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class PrometheusOptions(BaseModel):
    """Options of a ``prometheus`` source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    instance_label: str = "instance_key"
    queries: dict[str, str] = {}
    timeout: Duration = Field(default=10.0, gt=0)
    concurrency: int = Field(default=4, ge=1, le=64)
    bearer_token: q.Secret | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"'{value}' is not an http(s) URL such as http://prometheus:9090")
        return value

    @field_validator("instance_label")
    @classmethod
    def _label(cls, value: str) -> str:
        if not _LABEL.fullmatch(value):
            raise ValueError(f"'{value}' is not a Prometheus label name")
        return value

    @field_validator("queries")
    @classmethod
    def _queries(cls, value: dict[str, str]) -> dict[str, str]:
        q.check_query_templates(value)
        return value


def promql_string(text: str) -> str:
    """``text`` as the inside of a double-quoted PromQL string."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


class PrometheusSource(TemplatedHttpSource):
    """Range queries against one Prometheus server; a SeriesSource that never raises."""

    kind = "prometheus"
    fleet_names = FLEET_NAMES

    def __init__(self, options: PrometheusOptions, environment: Any = None) -> None:
        super().__init__({**DEFAULT_QUERIES, **options.queries}, options.url)
        self.options = options
        self.concurrency = options.concurrency
        self._secret = getattr(environment, "secret", None)

    def _empty_window(self, query: SeriesQuery) -> bool:
        return _slots(query) == 0

    def _headers(self) -> dict[str, str]:
        token = q.resolve_secret(self.options.bearer_token, self._secret,
                                 "the bearer_token of the prometheus source")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _variables(self, job: q.Job, query: SeriesQuery) -> dict[str, Any]:
        label = self.options.instance_label
        keys = [t.instance for t in job.targets]
        instances = "|".join(re.escape(k) for k in keys)
        common = {"label": label, "step": q.step_text(query.step),
                  "range": q.duration_text(query.step), "service": job.targets[0].service}
        if job.grouped:
            return {**common, "instances": instances,
                    "selector": f'{label}=~"{promql_string(instances)}"'}
        target = job.targets[0]
        return {**target.variables(), **common, "instances": instances,
                "selector": f'{label}="{promql_string(target.instance)}"'}

    def _run(self, job: q.Job, query: SeriesQuery, headers: Mapping[str, str]) -> q.JobAnswer:
        promql = q.render(self._templates[job.metric], self._variables(job, query))
        answer = q.JobAnswer()
        n = _slots(query)
        for first in range(0, n, MAX_POINTS):
            last = min(n, first + MAX_POINTS)  # slots [first, last)
            result = self._query_range(promql, query.start + (first + 1) * query.step,
                                       query.start + last * query.step, query.step, headers)
            self._split(result, job, query.step, answer, promql)
        return answer

    def _query_range(self, promql: str, start: float, end: float, step: float,
                     headers: Mapping[str, str]) -> list[Any]:
        form = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}",
                "step": q.step_text(step), "timeout": q.duration_text(self.options.timeout)}
        answer = self._http.request("POST", "/api/v1/query_range", data=form, headers=headers,
                                    timeout=self.options.timeout)
        body = answer.body if isinstance(answer.body, dict) else {}
        if answer.status != 200 or body.get("status") != "success":
            if body.get("status") == "error":
                raise q.QueryError(
                    f"Prometheus refused the query ({body.get('errorType', 'error')}: "
                    f"{q.excerpt(str(body.get('error', '')))}); query: {q.excerpt(promql, 200)}")
            raise q.QueryError(f"Prometheus answered HTTP {answer.status}: "
                               f"{q.excerpt(answer.text) or '(empty body)'}")
        data = body.get("data")
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, list):
            raise q.QueryError("Prometheus answered without data.result")
        return result

    def _split(self, result: list[Any], job: q.Job, step: float, answer: q.JobAnswer,
               promql: str) -> None:
        label = self.options.instance_label
        wanted = {t.instance for t in job.targets}
        for item in result:
            if not isinstance(item, dict):
                continue
            metric, values = item.get("metric"), item.get("values")
            labels: dict[str, Any] = metric if isinstance(metric, dict) else {}
            if not isinstance(values, list):
                values = []
            points = [(float(v[0]) - step, q.parse_number(v[1])) for v in values
                      if isinstance(v, list) and len(v) == 2 and _is_time(v[0])]
            if not job.grouped:
                answer.add(job.targets[0].instance, points)
            elif label in labels:
                if labels[label] in wanted:
                    answer.add(str(labels[label]), points)
            elif len(job.targets) == 1:
                answer.add(job.targets[0].instance, points)
            else:
                raise q.QueryError(
                    f"the answer has series without the instance label '{label}', so they "
                    f"cannot be told apart: keep it, e.g. sum by ({label}) (…); query: "
                    f"{q.excerpt(promql, 200)}")


def _slots(query: SeriesQuery) -> int:
    return max(0, math.ceil((query.end - query.start) / query.step - 1e-9))


def _is_time(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def create(options: Any, environment: Any) -> PrometheusSource:
    """Registry factory: ``options`` is a validated :class:`PrometheusOptions`."""
    return PrometheusSource(options, environment)

"""What the query-based metric sources share: templates, secrets, jobs, and detailed answers.

The Prometheus, Datadog and CloudWatch adapters all answer a
:class:`~rollwave.ports.series.SeriesQuery` by running *jobs* (one query of one logical metric
for a group of targets) with bounded concurrency. A job that fails (unreachable backend,
timeout, bad query, refused keys) marks the points of every target it covered as failed reads;
a job that succeeds leaves gaps (``NaN``) where the backend had no data. The adapters never
raise from :meth:`fetch`.

Templates are Jinja2 in an immutable sandbox with :class:`~jinja2.StrictUndefined`: an unknown
name is an error (reported by ``problems()`` when it is a syntax error, and as a failed read
naming the variable when a target lacks it), never an empty string in a query.

A template whose names are all *fleet-wide* (e.g. ``step``, ``selector``, ``service``) is run
once per service for all targets, and the answer is split by the instance label or tag; a
template that names a per-target variable (``key``, ``customer``, ``instance``, ``tier``, a
label…) is run once per target.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError
from jinja2.meta import find_undeclared_variables
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from rollwave.analysis.series import Series
from rollwave.errors import RollwaveError, SecretError
from rollwave.ports.metrics import MetricTarget
from rollwave.ports.series import SeriesByInstance, SeriesQuery, empty_series

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


# --- secrets ---------------------------------------------------------------------------------


class SecretRef(BaseModel):
    """``{$secret: "kind:reference"}``: resolved when the source first reads, never stored."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    ref: str = Field(alias="$secret", pattern=r"^[A-Za-z0-9_-]+:.+$")


def _secret_ref(value: Any) -> Any:
    if isinstance(value, str):
        raise ValueError(
            "write a secret reference such as {$secret: \"env:DD_API_KEY\"}, not the key "
            "itself: keys do not belong in rollwave.yaml")
    return value


Secret = Annotated[SecretRef, BeforeValidator(_secret_ref)]
"""An option holding a secret: only a ``{$secret: ...}`` reference is accepted."""


def resolve_secret(ref: SecretRef | None, secret: Callable[[str], str] | None,
                   what: str) -> str | None:
    """The value of ``ref`` (None when unset); SecretError naming ``what`` when unresolvable."""
    if ref is None:
        return None
    if secret is None:
        raise SecretError(f"{what} ({ref.ref}) cannot be resolved here",
                          hint="build the source with the workspace's secret resolvers")
    try:
        return secret(ref.ref)
    except SecretError as exc:
        raise SecretError(f"{what} ({ref.ref}): {exc.message}", hint=exc.hint) from None


# --- templates -------------------------------------------------------------------------------

_METRIC_NAME = re.compile(r"[a-z][a-z0-9_]*")


def check_metric_name(name: str) -> None:
    """ValueError unless ``name`` is a metric name as the checks refer to it."""
    if not _METRIC_NAME.fullmatch(name):
        raise ValueError(f"'{name}' is not a metric name: use lower-case letters, "
                         "digits and _ (e.g. latency_p95)")


def check_query_templates(queries: Mapping[str, str]) -> None:
    """ValueError naming the first bad metric name or query template of a source's queries."""
    for name, text in queries.items():
        check_metric_name(name)
        try:
            compile_template(text)
        except ValueError as exc:
            raise ValueError(f"queries.{name}: {exc}") from None


def compile_template(text: str) -> Template:
    """A sandboxed template; ValueError with the line when the syntax is wrong."""
    try:
        return _ENV.from_string(text)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from None


def template_names(text: str) -> set[str]:
    """The variables a template reads (empty when it does not parse)."""
    try:
        return set(find_undeclared_variables(_ENV.parse(text)))
    except TemplateSyntaxError:
        return set()


def render(template: Template, variables: Mapping[str, Any]) -> str:
    """Render; raises :class:`QueryError` naming the missing variable or the failure."""
    try:
        return template.render(**variables)
    except TemplateError as exc:
        known = ", ".join(sorted(variables))
        raise QueryError(f"cannot render the query template: {exc} (variables: {known})"
                         ) from None


def step_text(step: float) -> str:
    """The step as a compact number of seconds: ``60``, ``0.5``."""
    return f"{step:g}" if step != int(step) else str(int(step))


def duration_text(step: float) -> str:
    """The step as a Prometheus duration: ``60s``, ``500ms``."""
    if step != int(step):
        return f"{round(step * 1000)}ms"
    return f"{int(step)}s"


# --- jobs and answers ------------------------------------------------------------------------


class QueryError(RollwaveError):
    """One query could not be answered; its points become failed reads, with this message."""

    code = "metrics.query_failed"


@dataclass(frozen=True, slots=True)
class Job:
    """One query of one logical metric for some targets (all of a service, or one)."""

    metric: str
    targets: tuple[MetricTarget, ...]
    grouped: bool


@dataclass
class JobAnswer:
    """A job's answer: per instance key, ``(slot start time, value)`` samples on the query's
    grid (several series of one instance are added up), and instances whose read failed."""

    samples: dict[str, list[tuple[float, float | None]]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def add(self, instance: str, points: Iterable[tuple[float, float | None]]) -> None:
        self.samples.setdefault(instance, []).extend(points)


@dataclass
class FetchReport:
    """Series of every target and metric, and why reads failed (by instance and metric)."""

    series: SeriesByInstance
    errors: dict[tuple[str, str], str] = field(default_factory=dict)
    queries: int = 0

    def error_of(self, instance: str, metric: str) -> str | None:
        return self.errors.get((instance, metric))

    def messages(self) -> list[str]:
        """Distinct error messages, in the order first seen."""
        return list(dict.fromkeys(self.errors.values()))


class DetailedSource(Protocol):
    """A series source that also says why reads failed (what the per-window wrapper uses)."""

    def fetch_detailed(self, targets: Sequence[MetricTarget],
                       query: SeriesQuery) -> FetchReport:
        ...

    def metric_names(self) -> tuple[str, ...]:
        ...

    def close(self) -> None:
        ...


def plan_jobs(metrics: Iterable[str], targets: Sequence[MetricTarget],
              per_target: Callable[[str], bool],
              by_service: Callable[[str], bool] = lambda metric: True) -> list[Job]:
    """One job per metric for fleet-wide templates (one per service when the template names
    the service), else one per target."""
    jobs: list[Job] = []
    for metric in metrics:
        if per_target(metric):
            jobs.extend(Job(metric, (t,), grouped=False) for t in targets)
            continue
        groups: dict[str, dict[str, MetricTarget]] = {}
        for target in targets:
            group = target.service if by_service(metric) else ""
            groups.setdefault(group, {}).setdefault(target.instance, target)
        jobs.extend(Job(metric, tuple(group.values()), grouped=True)
                    for group in groups.values())
    return jobs


def run_jobs(jobs: Sequence[Job], targets: Sequence[MetricTarget], query: SeriesQuery,
             run: Callable[[Job], JobAnswer], *, concurrency: int,
             unknown: Callable[[str], str | None] = lambda metric: None) -> FetchReport:
    """Run ``jobs`` on at most ``concurrency`` threads and assemble the series.

    ``unknown(metric)`` says why a metric cannot be read at all (no query for it): its points
    become failed reads with that message, without a job.
    """
    report = FetchReport(series={t.instance: {} for t in targets})
    lock = threading.Lock()
    samples: dict[tuple[str, str], list[tuple[float, float | None]]] = {}

    def one(job: Job) -> None:
        try:
            answer = run(job)
        except QueryError as exc:
            with lock:
                for target in job.targets:
                    report.errors.setdefault((target.instance, job.metric), exc.message)
            return
        with lock:
            for target in job.targets:
                key = (target.instance, job.metric)
                if target.instance in answer.failed:
                    report.errors.setdefault(key, answer.failed[target.instance])
                else:
                    samples.setdefault(key, []).extend(answer.samples.get(target.instance, ()))

    workers = max(1, min(concurrency, len(jobs)))
    if workers == 1:
        for job in jobs:
            one(job)
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rollwave-metrics") as pool:
            list(pool.map(one, jobs))
    report.queries = len(jobs)
    for metric in query.metrics:
        reason = unknown(metric)
        for target in targets:
            key = (target.instance, metric)
            if reason is not None:
                report.errors.setdefault(key, reason)
            if key in report.errors:
                report.series[target.instance][metric] = empty_series(query, failed=True)
            else:
                report.series[target.instance][metric] = Series.from_samples(
                    merge(samples.get(key, ())), start=query.start, end=query.end,
                    step=query.step)
    return report


def add_up(values: Iterable[float | None]) -> float | None:
    """Sum of the finite values (None when there is none): several series of one instance."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) if finite else None


def merge(samples: Iterable[tuple[float, float | None]]) -> list[tuple[float, float | None]]:
    """Samples at the same time added up (a query that answered several series per instance)."""
    by_time: dict[float, list[float | None]] = {}
    for t, v in samples:
        by_time.setdefault(t, []).append(v)
    return [(t, add_up(vs)) for t, vs in sorted(by_time.items())]


def parse_number(value: Any) -> float | None:
    """A sample value as a float; None for null, NaN, infinities and junk."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --- HTTP ------------------------------------------------------------------------------------

MAX_ANSWER = 64 * 1024 * 1024
"""Largest JSON answer read from a metrics API (a bigger one is a failed read)."""


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A metrics API's answer: status, headers, and the body parsed as JSON (None if not)."""

    status: int
    headers: Mapping[str, str]
    body: Any
    text: str


class HttpClient:
    """One lazily created, thread-safe httpx client per source (closed by ``close``)."""

    def __init__(self, base_url: str, *, user_agent: str = "rollwave-metrics") -> None:
        self.base_url = base_url.rstrip("/")
        self._user_agent = user_agent
        self._client: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        import httpx

        from rollwave.verification.http import is_loopback

        with self._lock:
            if self._client is None:
                self._client = httpx.Client(trust_env=not is_loopback(self.base_url),
                                            follow_redirects=False,
                                            headers={"User-Agent": self._user_agent})
            return self._client

    def request(self, method: str, path: str, *, timeout: float,
                params: Mapping[str, str] | None = None, data: Mapping[str, str] | None = None,
                headers: Mapping[str, str] | None = None) -> HttpAnswer:
        """Send one request; raise QueryError when no complete HTTP answer arrives."""
        import json

        import httpx

        url = self.base_url + path
        try:
            with self._get().stream(method, url, params=params, data=data, headers=headers,
                                    timeout=timeout) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_ANSWER:
                        raise QueryError(f"{method} {url} answered more than "
                                         f"{MAX_ANSWER // (1024 * 1024)} MB")
                status, answer_headers = response.status_code, dict(response.headers)
        except httpx.TimeoutException:
            raise QueryError(f"no answer within {step_text(timeout)}s from {url}") from None
        except httpx.ConnectError as exc:
            raise QueryError(f"cannot connect to {url}: {_reason(exc)}") from None
        except httpx.HTTPError as exc:
            raise QueryError(f"{method} {url} failed: {_reason(exc)}") from None
        text = bytes(body).decode("utf-8", errors="replace")
        try:
            parsed: Any = json.loads(text) if text.strip() else None
        except ValueError:
            parsed = None
        return HttpAnswer(status=status, headers={k.lower(): v for k, v in answer_headers.items()},
                          body=parsed, text=text)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower():
        return "connection refused"
    return text[:200]


def excerpt(text: str, limit: int = 160) -> str:
    """One line of at most ``limit`` characters, for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"

"""The embedded metric source (kind ``scrape``): read the instance's own Prometheus ``/metrics``.

No Prometheus server is needed: the session scrapes the endpoint at the window start and at
every interval and derives the measures from counter and histogram deltas between scrapes
(:mod:`rollwave.verification.measures`). Measures (``MetricCheck.metric``):

``error_ratio``     5xx of all requests, from ``requests_metric{status_label=...}``
``p95_latency_ms``  95th percentile latency from the ``latency_metric`` histogram
``p99_latency_ms``  99th percentile latency, likewise
``request_rate``    requests per second
any metric name     the latest value of that gauge (summed over the kept series)

Source options (``rollwave.yaml``) and per-check ``params`` (which override them)::

    requests_metric: demo_requests_total     # a counter labelled by status
    status_label: status                     # e.g. "code" for many exporters
    error_status: "5.."                      # regular expression of failed statuses
    latency_metric: demo_request_duration_seconds   # histogram base name
    latency_unit: seconds                    # or milliseconds; guessed from the name
    match: {route: "/api/.*"}                # keep only series whose labels match
    exclude: {route: "/health|/metrics"}     # drop series whose labels match

Source-only options: ``path`` (``/metrics``) and ``timeout`` (``2s``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rollwave.core.durations import Duration
from rollwave.core.model import MetricCheck
from rollwave.errors import VerificationError
from rollwave.ports.metrics import (
    Evidence,
    Measurement,
    MetricTarget,
    MetricWindow,
    SeriesPoint,
)
from rollwave.verification import measures as m
from rollwave.verification import words
from rollwave.verification.exposition import (
    PROCESS_START,
    ExpositionError,
    Scrape,
    parse_exposition,
)
from rollwave.verification.http import MAX_BODY, UnreachableError, client, fetch
from rollwave.verification.probes import join

Fetch = Callable[[str, float], tuple[int, str]]
"""``fetch(url, timeout) -> (status, text)``; raises UnreachableError when there is no answer."""

_METRIC_NAME: Final = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


class MeasureSettings(BaseModel):
    """How the measures are derived; per-check ``params`` override the source's settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_metric: str = "demo_requests_total"
    status_label: str = "status"
    error_status: str = "5.."
    latency_metric: str = "demo_request_duration_seconds"
    latency_unit: Literal["seconds", "milliseconds"] | None = None
    match: dict[str, str] = {}
    exclude: dict[str, str] = {"route": "/health|/metrics"}

    @field_validator("requests_metric", "latency_metric")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _METRIC_NAME.fullmatch(value):
            raise ValueError(f"'{value}' is not a Prometheus metric name")
        return value

    @field_validator("error_status")
    @classmethod
    def _regex(cls, value: str) -> str:
        _compile(value, "error_status")
        return value

    @field_validator("match", "exclude")
    @classmethod
    def _regexes(cls, value: dict[str, str]) -> dict[str, str]:
        for label, pattern in value.items():
            _compile(pattern, label)
        return value

    def spec(self) -> m.MeasureSpec:
        """The pure-core form."""
        unit = self.latency_unit or (
            "milliseconds" if self.latency_metric.endswith(("_milliseconds", "_ms"))
            else "seconds"
        )
        return m.MeasureSpec(
            requests_metric=self.requests_metric, status_label=self.status_label,
            error_status=self.error_status, latency_metric=self.latency_metric,
            latency_scale=1.0 if unit == "milliseconds" else 1000.0,
            match=dict(self.match), exclude=dict(self.exclude),
        )


class ScrapeOptions(MeasureSettings):
    """Options of a ``scrape`` source: where /metrics is and the default measure settings."""

    path: str = "/metrics"
    timeout: Duration = Field(default=2.0, gt=0)


class ScrapeSource:
    """Scrapes the instance's ``/metrics`` endpoint directly."""

    def __init__(self, options: ScrapeOptions | None = None, *,
                 fetch: Fetch | None = None) -> None:
        self.options = options or ScrapeOptions()
        self._fetch = fetch

    def settings(self, check: MetricCheck) -> MeasureSettings:
        """The check's measure settings: the source's, overridden by ``check.params``."""
        base = self.options.model_dump(include=set(MeasureSettings.model_fields))
        try:
            return MeasureSettings.model_validate({**base, **check.params})
        except ValidationError as exc:
            problems = "; ".join(
                f"params.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise VerificationError(
                f"metric check '{check.name}' has bad params: {problems}",
                hint=f"known params: {', '.join(MeasureSettings.model_fields)}",
            ) from None

    def problems(self, check: MetricCheck) -> list[str]:
        """Unknown measures and bad params, in words."""
        found = []
        if check.metric not in m.MEASURES and not _METRIC_NAME.fullmatch(check.metric):
            found.append(f"unknown measure '{check.metric}'; the scrape source derives "
                         f"{', '.join(m.MEASURES)} or reads a gauge by its metric name")
        try:
            self.settings(check)
        except VerificationError as exc:
            found.append(exc.message)
        return found

    def open(self, target: MetricTarget, checks: Sequence[MetricCheck],
             window: MetricWindow) -> ScrapeSession:
        """Start a window for ``target``'s service; raises VerificationError without endpoint."""
        if not target.base_url:
            raise VerificationError(
                f"service '{target.service}' of {target.instance} has no endpoint to scrape",
                hint="the deployer must report an endpoint for the instance's service",
            )
        for check in checks:
            problems = self.problems(check)
            if problems:
                raise VerificationError("; ".join(problems))
        url = join(target.base_url, self.options.path)
        return ScrapeSession(url, {c.name: (c, self.settings(c).spec()) for c in checks},
                             timeout=self.options.timeout, fetch=self._fetch)


class ScrapeSession:
    """One window of scrapes of one endpoint, measuring several checks."""

    def __init__(self, url: str, checks: Mapping[str, tuple[MetricCheck, m.MeasureSpec]], *,
                 timeout: float, fetch: Fetch | None = None) -> None:
        self.url = url
        self.checks = dict(checks)
        self.timeout = timeout
        self._http: httpx.Client | None = None
        self._fetch = fetch or self._fetch_http
        self._keep = {PROCESS_START}
        for check, spec in self.checks.values():
            self._keep.update({spec.requests_metric, spec.bucket_metric, check.metric})
        self.baseline: Scrape | None = None
        self.last: Scrape | None = None
        self.intervals: dict[str, list[m.Interval]] = {name: [] for name in self.checks}
        self.gauges: dict[str, list[SeriesPoint]] = {}

    def sample(self, elapsed: float) -> dict[str, Measurement]:
        """Scrape now and measure every check over the window so far."""
        try:
            status, text = self._fetch(self.url, self.timeout)
            if status != 200:
                raise UnreachableError(f"GET {self.url} answered HTTP {status}: "
                                  f"{words.excerpt(text, 120)!r}")
            scrape = parse_exposition(text, at=elapsed, keep=self._keep)
        except (UnreachableError, ExpositionError) as exc:
            return {name: Measurement.failed(exc.message, label=_label(check.metric))
                    for name, (check, _) in self.checks.items()}
        previous, self.last = self.last, scrape
        if previous is None:
            self.baseline = scrape
        else:
            for name, (_, spec) in self.checks.items():
                self.intervals[name].append(m.interval(previous, scrape, spec))
        results = {}
        for name, (check, spec) in self.checks.items():
            if check.metric not in m.MEASURES and scrape.declares(check.metric):
                self.gauges.setdefault(name, []).append(
                    SeriesPoint(at=elapsed, value=m.gauge(scrape, check.metric, spec)))
            results[name] = measure(check, spec, scrape, self.intervals[name],
                                    gauge_points=self.gauges.get(name, ()))
        return results

    def close(self) -> None:
        """Close the HTTP connection."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def _fetch_http(self, url: str, timeout: float) -> tuple[int, str]:
        if self._http is None:
            self._http = client(url)
        answer = fetch(self._http, "GET", url, timeout=timeout)
        if answer.truncated:
            raise UnreachableError(f"{url} answered more than {MAX_BODY // (1024 * 1024)} MB")
        return answer.status, answer.text


def measure(check: MetricCheck, spec: m.MeasureSpec, scrape: Scrape,
            parts: Sequence[m.Interval], *,
            gauge_points: Sequence[SeriesPoint] = ()) -> Measurement:
    """The check's measure over the window so far, from its intervals and the latest scrape.

    ``gauge_points`` are the gauge's values at each scrape so far (for a gauge check's series).

    A metric the exposition does not declare is a failed reading (usually a wrong metric name,
    so it ends as Error, not as a pass).
    """
    metric = check.metric
    label = _label(metric)
    window = m.totals(parts)
    notes = _notes(window)
    if metric not in m.MEASURES:
        return _gauge(metric, spec, scrape, window, gauge_points)
    needed = spec.bucket_metric if metric in m.QUANTILES else spec.requests_metric
    if not scrape.declares(needed):
        option = "latency_metric" if metric in m.QUANTILES else "requests_metric"
        return Measurement.failed(
            f"the endpoint exposes no metric '{needed}'; set params.{option} to the right name",
            label=label,
        )
    series = m.series_of(parts, spec)
    if metric == m.ERROR_RATIO:
        if window.requests > 0 and not window.status_labelled:
            return Measurement.failed(
                f"no series of '{spec.requests_metric}' has a '{spec.status_label}' label; "
                "set params.status_label", label=label)
        evidence = (None if check.fail_above is None
                    else Evidence(window.errors, window.requests, check.fail_above))
        return Measurement(
            value=m.error_ratio(window), label=label, unit="ratio", span=window.span,
            count=window.requests, evidence=evidence, series=series, notes=notes,
            detail=f"{words.number(window.errors)} of "
                   f"{words.plural(window.requests, 'request')}",
        )
    if metric == m.REQUEST_RATE:
        return Measurement(
            value=m.request_rate(window), label=label, unit="req/s", span=window.span,
            detail=words.plural(window.requests, "request"), series=series, notes=notes,
        )
    q = m.QUANTILES[metric]
    total = m.observations(window)
    evidence = None
    if check.fail_above is not None:
        above = m.count_above(check.fail_above / spec.latency_scale, window.buckets)
        if above is not None:
            evidence = Evidence(above[0], above[1], 1.0 - q)
    return Measurement(
        value=m.quantile_ms(q, window, spec), label=label, unit="ms", span=window.span,
        count=total, evidence=evidence, series=series, notes=notes,
        detail=words.plural(total, "request"),
    )


def _gauge(metric: str, spec: m.MeasureSpec, scrape: Scrape, window: m.Totals,
           points: Sequence[SeriesPoint]) -> Measurement:
    if not scrape.declares(metric):
        return Measurement.failed(f"the endpoint exposes no metric '{metric}'", label=metric)
    return Measurement(value=m.gauge(scrape, metric, spec), label=metric, span=window.span,
                       detail="at the last scrape", notes=_notes(window),
                       series={metric: tuple(points)})


def _label(metric: str) -> str:
    if metric == m.ERROR_RATIO:
        return "error ratio"
    if metric == m.REQUEST_RATE:
        return "request rate"
    if metric in m.QUANTILES:
        return f"p{round(m.QUANTILES[metric] * 100)} latency"
    return metric


def _notes(window: m.Totals) -> tuple[str, ...]:
    if not window.restarts:
        return ()
    times = "once" if window.restarts == 1 else f"{window.restarts} times"
    return (f"the process restarted {times} during the window (counters reset)",)


def _compile(pattern: str, what: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{what}: '{pattern}' is not a regular expression ({exc})") from None


def create(options: Any, environment: Any) -> ScrapeSource:
    """Registry factory: ``options`` is a validated :class:`ScrapeOptions`."""
    return ScrapeSource(options)

"""The MetricSource port: measure one service of one instance over a verification window.

One shape fits two families of sources:

* **stateful scrapes** (the embedded ``scrape`` kind reads the instance's own ``/metrics``): they
  need a sample at the window start and at every interval, and derive the measure from the
  counter and histogram deltas between samples;
* **query APIs** (Prometheus HTTP API with PromQL templated by the target's labels, Datadog's
  metrics query API, CloudWatch GetMetricData): each sample asks for the window so far
  (``[start, now]``, a range query with ``step`` = the interval) and reduces the answer to one
  value; the window's start is the wall-clock time the session was opened.

The verifier calls :meth:`MetricSource.open` once per (service, source) with every check that
reads that source, then :meth:`MetricSession.sample` at ``0, interval, 2·interval, …`` until the
window's ``duration`` (and a few times more while a source keeps failing), then
:meth:`MetricSession.close`. A session never raises for a source it cannot read: it returns
:meth:`Measurement.failed`, and the verifier counts consecutive failures against the profile's
``consecutive_error_limit`` (so an outage of the metrics source reads as *Error*, never as a
regression nor as a pass).

Implementations live in ``rollwave/adapters/metrics/`` (one module per kind) and register in
that package's registry; :class:`MetricSources` maps the names ``MetricCheck.source`` uses to
built sources.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rollwave.core.model import MetricCheck
from rollwave.errors import VerificationError


@dataclass(frozen=True, slots=True)
class MetricTarget:
    """The service of one instance a session measures.

    ``instance`` is the key ``customer/instance``; ``base_url`` is ``http://host:port`` when the
    service has an endpoint; ``labels`` are the instance's facts (``customer``, ``instance``,
    ``environment``, ``tier``, ``region`` and its labels), the variables query templates use.
    """

    instance: str
    service: str
    base_url: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def variables(self) -> dict[str, str]:
        """Template variables: the labels plus ``key``, ``service`` and ``base_url``.

        >>> MetricTarget("acme/prod", "web", labels={"customer": "acme"}).variables()["key"]
        'acme/prod'
        """
        return {**self.labels, "key": self.instance, "service": self.service,
                "base_url": self.base_url or ""}


@dataclass(frozen=True, slots=True)
class MetricWindow:
    """How long the verification window lasts and how often it is sampled (seconds)."""

    duration: float
    interval: float


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One point of a measure's time series: the value over the interval ending at ``at``.

    ``at`` is seconds since the window start; ``count`` the requests in that interval when the
    source knows them. ``value`` is None when the interval had no data (e.g. no requests).
    """

    at: float
    value: float | None
    count: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {"at": self.at, "value": self.value, "count": self.count}


@dataclass(frozen=True, slots=True)
class Evidence:
    """``bad`` of ``total`` events were bad, and the check fails exactly when bad/total > limit.

    A source that can express its measure this way lets the verifier fail the check before the
    window ends, once even the most favourable reading of the events seen so far breaches the
    limit. For an error ratio this is errors of requests against ``fail_above``; for a p95
    latency above ``T`` it is the requests slower than ``T`` against 5 %.
    """

    bad: float
    total: float
    limit: float


@dataclass(frozen=True, slots=True)
class Measurement:
    """One reading of a check's measure over the window so far.

    ``value`` None with no ``error`` means "no data yet" (e.g. the window start, or no
    requests); ``error`` set means the source could not be read this time. ``label`` and
    ``unit`` say what the value is in words (``"error ratio"``, unit ``"ratio"`` shown as a
    percentage; ``"p95 latency"`` in ``"ms"``; ``"request rate"`` in ``"req/s"``); ``detail``
    says what it was derived from (``"156 of 500 requests"``). ``count`` is the number of
    requests behind the value; when set, the profile's ``min_requests`` gates the judgement.
    ``series`` holds per-interval points of one or more measures, for charts and later judges.
    """

    value: float | None = None
    label: str = "value"
    unit: str = ""
    span: float = 0.0
    count: float | None = None
    detail: str = ""
    error: str | None = None
    evidence: Evidence | None = None
    series: Mapping[str, tuple[SeriesPoint, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the source was read (even if there was no data)."""
        return self.error is None

    @staticmethod
    def failed(error: str, *, label: str = "value", span: float = 0.0) -> Measurement:
        """A reading that failed because the source could not be read (or answered nonsense)."""
        return Measurement(label=label, span=span, error=error)


class MetricSession(Protocol):
    """The measurements of one service of one instance during one verification window."""

    def sample(self, elapsed: float) -> Mapping[str, Measurement]:
        """Read the source now, ``elapsed`` seconds after the window start.

        Returns one measurement per check name given to :meth:`MetricSource.open`, each over
        the window so far. Never raises for an unreachable or misbehaving source.
        """
        ...

    def close(self) -> None:
        """Release connections; called once, also when verification stops early."""
        ...


class MetricSource(Protocol):
    """A kind of metrics backend, configured once per workspace."""

    def problems(self, check: MetricCheck) -> list[str]:
        """What is wrong with ``check`` for this source (unknown measure, bad params), in words.

        Used by workspace validation and before a window opens; empty when the check is fine.
        """
        ...

    def open(self, target: MetricTarget, checks: Sequence[MetricCheck],
             window: MetricWindow) -> MetricSession:
        """Start measuring ``checks`` for ``target``; the window starts now.

        May raise :class:`~rollwave.errors.VerificationError` when the source cannot serve this
        target at all (no endpoint, missing credentials); the verifier reports those checks as
        *Error*.
        """
        ...


class MetricSources(Mapping[str, MetricSource]):
    """Built metric sources by the name ``MetricCheck.source`` uses.

    Build it with :func:`rollwave.adapters.metrics.build_sources`, which always provides the
    embedded ``scrape`` source.
    """

    def __init__(self, sources: Mapping[str, MetricSource]) -> None:
        self._sources = dict(sources)

    @classmethod
    def default(cls) -> MetricSources:
        """Only the embedded ``scrape`` source with its default options (demo-service metrics).

        Same as ``rollwave.adapters.metrics.build_sources()``; pass the workspace's metric
        source settings to that function to get the configured ones.
        """
        from rollwave.adapters.metrics import build_sources  # the port must not import it early

        return build_sources()

    def __getitem__(self, name: str) -> MetricSource:
        return self._sources[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)

    def source(self, name: str) -> MetricSource:
        """The source called ``name``; raises VerificationError naming the known ones."""
        try:
            return self._sources[name]
        except KeyError:
            known = ", ".join(sorted(self._sources)) or "none"
            raise VerificationError(
                f"no metric source named '{name}'",
                hint=f"use one of: {known}, or define it under metric sources in rollwave.yaml",
            ) from None

    def problems(self, checks: Sequence[MetricCheck]) -> list[str]:
        """Every problem of ``checks``: unknown sources and what each source objects to."""
        found: list[str] = []
        for check in checks:
            if check.source not in self._sources:
                known = ", ".join(sorted(self._sources)) or "none"
                found.append(f"metric check '{check.name}' reads unknown source "
                             f"'{check.source}' (known: {known})")
                continue
            found.extend(f"metric check '{check.name}': {problem}"
                         for problem in self._sources[check.source].problems(check))
        return found

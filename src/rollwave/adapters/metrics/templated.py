"""What the query-based metric sources share (Prometheus, Datadog, CloudWatch).

:class:`QuerySource` knows the source's logical metrics, says which ones it has no query for,
and reads through ``fetch_detailed``. :class:`TemplatedHttpSource` adds what the two HTTP
sources with Jinja2 query templates share: the compiled templates, how jobs are planned (one
fleet-wide query, per service or per target, from the variables a template reads) and the
read itself; each subclass gives its headers and runs one job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import Template

from rollwave.adapters.metrics import query as q
from rollwave.errors import SecretError
from rollwave.ports.metrics import MetricTarget
from rollwave.ports.series import SeriesByInstance, SeriesQuery, fill_missing


def failed_everywhere(targets: Sequence[MetricTarget], query: SeriesQuery,
                      reason: str) -> q.FetchReport:
    """Every series of every target marked failed, for one reason (e.g. a missing secret)."""
    return q.run_jobs([], targets, query, lambda job: q.JobAnswer(), concurrency=1,
                      unknown=lambda metric: reason)


def nothing_to_read(targets: Sequence[MetricTarget], query: SeriesQuery) -> q.FetchReport:
    """Empty series for every target: the window holds no point (not a failure)."""
    return q.FetchReport(series=fill_missing({}, targets, query, failed=False))


class QuerySource(ABC):
    """A series source with a query per logical metric; never raises from a read."""

    kind = ""
    _queries: Mapping[str, Any]

    def metric_names(self) -> tuple[str, ...]:
        """The logical metrics this source has a query for."""
        return tuple(sorted(self._queries))

    def problems(self, metrics: Sequence[str]) -> list[str]:
        """Metrics without a query, in words."""
        known = ", ".join(self.metric_names())
        return [f"the {self.kind} source has no query for '{m}' (known: {known}); add one "
                "under queries:" for m in metrics if m not in self._queries]

    def fetch(self, targets: Sequence[MetricTarget], query: SeriesQuery) -> SeriesByInstance:
        """Series for every target and metric; failed reads are marked, never raised."""
        return self.fetch_detailed(targets, query).series

    @abstractmethod
    def fetch_detailed(self, targets: Sequence[MetricTarget],
                       query: SeriesQuery) -> q.FetchReport:
        """:meth:`fetch` with the reason of every failed read."""

    def _known(self, query: SeriesQuery) -> list[str]:
        return [m for m in query.metrics if m in self._queries]

    def _unknown(self, metric: str) -> str | None:
        problems = self.problems([metric])
        return problems[0] if problems else None


class TemplatedHttpSource(QuerySource):
    """An HTTP metrics API queried with one Jinja2 template per logical metric."""

    fleet_names: frozenset[str] = frozenset()
    """Template variables that do not depend on the target: such a query serves every target."""
    concurrency = 4

    def __init__(self, texts: Mapping[str, str], base_url: str) -> None:
        self._queries = dict(texts)
        self._templates: dict[str, Template] = {
            name: q.compile_template(text) for name, text in self._queries.items()}
        self._http = q.HttpClient(base_url)

    def fetch_detailed(self, targets: Sequence[MetricTarget],
                       query: SeriesQuery) -> q.FetchReport:
        """:meth:`fetch` with the reason of every failed read."""
        if not targets:
            return q.FetchReport(series={})
        if self._empty_window(query):
            return nothing_to_read(targets, query)
        try:
            headers = self._headers()
        except SecretError as exc:
            return failed_everywhere(targets, query, exc.message)
        jobs = q.plan_jobs(self._known(query), targets, self._per_target, self._by_service)
        return q.run_jobs(jobs, targets, query, lambda job: self._run(job, query, headers),
                          concurrency=self.concurrency, unknown=self._unknown)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    @abstractmethod
    def _headers(self) -> dict[str, str]:
        """Request headers (credentials resolved now); SecretError when one cannot be."""

    @abstractmethod
    def _run(self, job: q.Job, query: SeriesQuery, headers: Mapping[str, str]) -> q.JobAnswer:
        """Run one planned query."""

    def _empty_window(self, query: SeriesQuery) -> bool:
        return query.end <= query.start

    def _per_target(self, metric: str) -> bool:
        return bool(q.template_names(self._queries[metric]) - self.fleet_names)

    def _by_service(self, metric: str) -> bool:
        return "service" in q.template_names(self._queries[metric])

"""Metric sources, one module per kind, registered by kind.

Two registries, one per port, keyed by the ``kind`` written under ``metric_sources:``:

* :data:`registry` — per-window :class:`~rollwave.ports.metrics.MetricSource` for per-instance
  verification: ``scrape`` (the instance's own ``/metrics``), ``prometheus``, ``datadog``,
  ``cloudwatch`` (the query APIs read through :mod:`~rollwave.adapters.metrics.windowed`);
* :data:`series_registry` — :class:`~rollwave.ports.series.SeriesSource` for fleet analysis:
  ``prometheus``, ``datadog``, ``cloudwatch``, and ``scrape`` when the scrape collector module
  (``scrape_collector``) registers itself here on import (it is imported below when present).

:func:`build_sources` turns the workspace's metric source settings (name → ``{kind: ...,
options}``) into :class:`~rollwave.ports.metrics.MetricSources`; the embedded ``scrape`` source
is always there (a source named ``scrape`` only changes its options). :func:`build_series`
does the same for series sources (``scrape`` included only when its kind is registered).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from rollwave.errors import ConfigError
from rollwave.ports.metrics import MetricSource, MetricSources
from rollwave.ports.registry import Registry
from rollwave.ports.series import SeriesSource

registry: Registry[MetricSource] = Registry("metric source")
series_registry: Registry[SeriesSource] = Registry("series source")


@dataclass(frozen=True)
class MetricEnvironment:
    """What a metric source may need from the workspace it serves.

    ``secret`` resolves a secret reference (``env:NAME``, ``file:PATH``…) to its value, for API
    keys of hosted sources; the scrape source needs nothing.
    """

    secret: Callable[[str], str] | None = None


def build_sources(config: Mapping[str, Mapping[str, Any]] | None = None,
                  environment: MetricEnvironment | None = None) -> MetricSources:
    """The workspace's metric sources by name, with ``scrape`` always available.

    Each entry is ``{"kind": KIND, ...options}``; ``kind`` defaults to the entry's name, so
    ``{"scrape": {"timeout": "5s"}}`` tunes the embedded source. Raises ConfigError naming the
    source and the option when options are invalid.

    >>> sorted(build_sources())
    ['scrape']
    """
    env = environment or MetricEnvironment()
    built: dict[str, MetricSource] = {}
    for name, options in {"scrape": {}, **(config or {})}.items():
        built[name] = _create(registry, name, options, env)
    return MetricSources(built)


def build_series(config: Mapping[str, Mapping[str, Any]] | None = None,
                 environment: MetricEnvironment | None = None) -> dict[str, SeriesSource]:
    """The workspace's series sources by name (fleet analysis).

    Like :func:`build_sources`; sources whose kind has no series form (``scrape`` until the
    scrape collector registers it in :data:`series_registry`) are left out. Secrets are
    resolved when a source first reads, not here.
    """
    env = environment or MetricEnvironment()
    built: dict[str, SeriesSource] = {}
    for name, options in {"scrape": {}, **(config or {})}.items():
        if str(options.get("kind", name)) in series_registry.kinds():
            built[name] = _create(series_registry, name, options, env)
    return built


def _create(reg: Registry[Any], name: str, options: Mapping[str, Any],
            env: MetricEnvironment) -> Any:
    kind = str(options.get("kind", name))
    try:
        return reg.create(kind, dict(options), env)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(options)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(
            f"metric source '{name}' (kind {kind}) has bad options: {problems}",
            hint=f"see the options of the {kind} source: "
                 f"{', '.join(reg.options_model(kind).model_fields)}",
        ) from None


def _windowed(factory: Callable[[Any, Any], Any], kind: str) -> Callable[[Any, Any], Any]:
    from rollwave.adapters.metrics.windowed import WindowedSource

    def create(options: Any, environment: Any) -> MetricSource:
        return WindowedSource(factory(options, environment), kind)

    return create


# Importing the adapters registers them.
from rollwave.adapters.metrics import (  # noqa: E402
    cloudwatch,
    datadog,
    prometheus,
    scrape,
)

registry.register("scrape", scrape.create, scrape.ScrapeOptions,
                  "the instance's own Prometheus /metrics endpoint, scraped directly")
for _module, _options, _text in (
        (prometheus, prometheus.PrometheusOptions, "Prometheus HTTP API range queries (PromQL)"),
        (datadog, datadog.DatadogOptions, "Datadog metrics query API (/api/v1/query)"),
        (cloudwatch, cloudwatch.CloudWatchOptions, "AWS CloudWatch GetMetricData (boto3)")):
    _kind = _module.__name__.rsplit(".", 1)[-1]
    series_registry.register(_kind, _module.create, _options, _text)
    registry.register(_kind, _windowed(_module.create, _kind), _options, _text)

try:  # the embedded scrape collector registers its series form when it is part of the build
    importlib.import_module("rollwave.adapters.metrics.scrape_collector")
except ModuleNotFoundError as _exc:
    if _exc.name != "rollwave.adapters.metrics.scrape_collector":
        raise

__all__ = ["MetricEnvironment", "build_series", "build_sources", "registry", "scrape",
           "series_registry"]

"""Metric sources, one module per kind, registered by kind (``scrape``; Prometheus, Datadog and
CloudWatch adapters register here too).

:func:`build_sources` turns the workspace's metric source settings (name → ``{kind: ...,
options}``) into :class:`~rollwave.ports.metrics.MetricSources`; the embedded ``scrape`` source
is always there (a source named ``scrape`` only changes its options).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from rollwave.errors import ConfigError
from rollwave.ports.metrics import MetricSource, MetricSources
from rollwave.ports.registry import Registry

registry: Registry[MetricSource] = Registry("metric source")


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
        kind = str(options.get("kind", name))
        try:
            built[name] = registry.create(kind, dict(options), env)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(options)'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ConfigError(
                f"metric source '{name}' (kind {kind}) has bad options: {problems}",
                hint=f"see the options of the {kind} source: "
                     f"{', '.join(registry.options_model(kind).model_fields)}",
            ) from None
    return MetricSources(built)


# Importing the adapters registers them.
from rollwave.adapters.metrics import scrape  # noqa: E402

registry.register("scrape", scrape.create, scrape.ScrapeOptions,
                  "the instance's own Prometheus /metrics endpoint, scraped directly")

__all__ = ["MetricEnvironment", "build_sources", "registry", "scrape"]

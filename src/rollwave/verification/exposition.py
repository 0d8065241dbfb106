"""Parsing one scrape of a Prometheus text exposition into plain data (pure, no I/O).

A :class:`Scrape` keeps, per sample name, every series' value keyed by its sorted labels, the
names the exposition declares (so "metric absent" and "metric present without samples yet" can
be told apart) and the process start time (so a restarted process resets every counter).
"""

from __future__ import annotations

import math
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from typing import Final

from prometheus_client.parser import text_string_to_metric_families

from rollwave.errors import VerificationError

SeriesKey = tuple[tuple[str, str], ...]
"""A series' labels as sorted ``(name, value)`` pairs."""

PROCESS_START: Final = "process_start_time_seconds"
_SUFFIXES: Final = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("_count", "_sum", "_created"),
    "info": ("_info",),
}


class ExpositionError(VerificationError):
    """The text is not a Prometheus exposition."""

    code = "verify.bad_exposition"
    default_hint = "point the check at the instance's Prometheus /metrics endpoint"


@dataclass(frozen=True, slots=True)
class Scrape:
    """One parsed scrape, taken ``at`` seconds after the window start."""

    at: float
    samples: Mapping[str, Mapping[SeriesKey, float]] = field(default_factory=dict)
    declared: frozenset[str] = frozenset()
    process_start: float | None = None

    def series(self, name: str) -> Mapping[SeriesKey, float]:
        """Every series of the sample ``name`` (empty when there is none)."""
        return self.samples.get(name, {})

    def declares(self, name: str) -> bool:
        """True when the exposition names ``name``, even without samples yet."""
        return name in self.declared


def series_key(labels: Mapping[str, str]) -> SeriesKey:
    """The sorted label pairs identifying a series."""
    return tuple(sorted(labels.items()))


def parse_exposition(text: str, *, at: float = 0.0,
                     keep: Container[str] | None = None) -> Scrape:
    """Parse a text exposition; keep only the sample names in ``keep`` (all when None).

    NaN samples are dropped (they carry no information for deltas). Raises
    :class:`ExpositionError` when the text is not an exposition.

    >>> scrape = parse_exposition('# TYPE r counter\\nr_total{status="200"} 7\\n', at=5.0)
    >>> dict(scrape.series("r_total"))
    {(('status', '200'),): 7.0}
    """
    samples: dict[str, dict[SeriesKey, float]] = {}
    declared: set[str] = set()
    process_start: float | None = None
    try:
        for family in text_string_to_metric_families(text):
            declared.add(family.name)
            declared.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
            for sample in family.samples:
                name = str(sample.name)
                declared.add(name)
                value = float(sample.value)
                if math.isnan(value):
                    continue
                if name == PROCESS_START and not sample.labels:
                    process_start = value
                if keep is not None and name not in keep:
                    continue
                samples.setdefault(name, {})[series_key(sample.labels)] = value
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise ExpositionError(f"not a Prometheus text exposition ({exc})") from None
    return Scrape(at=at, samples=samples, declared=frozenset(declared),
                  process_start=process_start)

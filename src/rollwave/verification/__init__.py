"""Per-instance verification after each deploy: HTTP health, smoke requests and metric checks.

The public surface::

    from rollwave.verification import VerificationTarget, verify_instance
    from rollwave.adapters.metrics import build_sources

    verdict = verify_instance(VerificationTarget("acme/prod", {"web": "http://127.0.0.1:8101"}),
                              profile, sources=build_sources())

Results keep Successful, Failed, Error (a metrics source could not be read) and Inconclusive
(too little data, or stopped) apart; Error and Inconclusive never count as a pass. The pure
parts (parsing a scrape, deriving measures, judging a check) live in ``exposition``,
``measures`` and ``judge`` and are usable on their own, e.g. :func:`window_series` for charts.
"""

from rollwave.ports.metrics import MetricSources
from rollwave.verification.exposition import ExpositionError, Scrape, parse_exposition
from rollwave.verification.http import UnreachableError
from rollwave.verification.judge import Rules, judge
from rollwave.verification.measures import MeasureSpec, histogram_quantile, window_series
from rollwave.verification.runner import VerificationTarget, verify_instance

__all__ = [
    "ExpositionError",
    "MeasureSpec",
    "MetricSources",
    "Rules",
    "Scrape",
    "UnreachableError",
    "VerificationTarget",
    "histogram_quantile",
    "judge",
    "parse_exposition",
    "verify_instance",
    "window_series",
]

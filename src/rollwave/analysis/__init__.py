"""Verification judges: pure functions from metric series to verdicts with explanations.

The public surface, re-exported here:

* series: :class:`Series` (samples on a fixed step; gaps and read errors apart);
* judges: :func:`evaluate_threshold` (Argo Rollouts semantics), :func:`judge_gauge` and
  :func:`judge_ratio` (Rollwave's canary judge), :func:`kayenta_judge` (Kayenta's
  NetflixACAJudge, the reference), :func:`evaluate_burn_rate` (SLO multiwindow burn rates);
* blame: :func:`assign_blame` over :class:`InstanceEvidence`;
* the engine the orchestrator calls once per analysis interval: :func:`evaluate_fleet`.

Nothing here reads the clock or does I/O: ``now`` and the series are parameters.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below load lazily: scipy costs a second at start-up
    from rollwave.analysis.blame import (
        Action,
        Blame,
        BlamePolicy,
        FleetVerdict,
        InstanceEvidence,
        RolledBack,
        assign_blame,
    )
    from rollwave.analysis.burnrate import (
        SRE_WINDOWS,
        BurnRateCheck,
        BurnWindow,
        evaluate_burn_rate,
        scale_windows,
    )
    from rollwave.analysis.canary import GaugeCheck, RatioCheck, Windows, judge_gauge, judge_ratio
    from rollwave.analysis.engine import (
        Check,
        InstanceData,
        VerificationPolicy,
        evaluate_fleet,
        evaluate_instance,
        peers_of,
    )
    from rollwave.analysis.kayenta import Direction, KayentaMetric, KayentaResult
    from rollwave.analysis.kayenta import judge as kayenta_judge
    from rollwave.analysis.results import CheckResult, Outcome, Verdict, combine
    from rollwave.analysis.series import PolicyError, Series, SeriesError
    from rollwave.analysis.threshold import (
        Condition,
        Measurement,
        ThresholdCheck,
        ThresholdRun,
        evaluate_measurement,
        evaluate_threshold,
        measure,
    )

_WHERE: dict[str, tuple[str, str]] = {
    "Action": ("rollwave.analysis.blame", "Action"),
    "Blame": ("rollwave.analysis.blame", "Blame"),
    "BlamePolicy": ("rollwave.analysis.blame", "BlamePolicy"),
    "BurnRateCheck": ("rollwave.analysis.burnrate", "BurnRateCheck"),
    "BurnWindow": ("rollwave.analysis.burnrate", "BurnWindow"),
    "Check": ("rollwave.analysis.engine", "Check"),
    "CheckResult": ("rollwave.analysis.results", "CheckResult"),
    "Condition": ("rollwave.analysis.threshold", "Condition"),
    "Direction": ("rollwave.analysis.kayenta", "Direction"),
    "FleetVerdict": ("rollwave.analysis.blame", "FleetVerdict"),
    "GaugeCheck": ("rollwave.analysis.canary", "GaugeCheck"),
    "InstanceData": ("rollwave.analysis.engine", "InstanceData"),
    "InstanceEvidence": ("rollwave.analysis.blame", "InstanceEvidence"),
    "KayentaMetric": ("rollwave.analysis.kayenta", "KayentaMetric"),
    "KayentaResult": ("rollwave.analysis.kayenta", "KayentaResult"),
    "Measurement": ("rollwave.analysis.threshold", "Measurement"),
    "Outcome": ("rollwave.analysis.results", "Outcome"),
    "PolicyError": ("rollwave.analysis.series", "PolicyError"),
    "RatioCheck": ("rollwave.analysis.canary", "RatioCheck"),
    "RolledBack": ("rollwave.analysis.blame", "RolledBack"),
    "SRE_WINDOWS": ("rollwave.analysis.burnrate", "SRE_WINDOWS"),
    "Series": ("rollwave.analysis.series", "Series"),
    "SeriesError": ("rollwave.analysis.series", "SeriesError"),
    "ThresholdCheck": ("rollwave.analysis.threshold", "ThresholdCheck"),
    "ThresholdRun": ("rollwave.analysis.threshold", "ThresholdRun"),
    "Verdict": ("rollwave.analysis.results", "Verdict"),
    "VerificationPolicy": ("rollwave.analysis.engine", "VerificationPolicy"),
    "Windows": ("rollwave.analysis.canary", "Windows"),
    "assign_blame": ("rollwave.analysis.blame", "assign_blame"),
    "combine": ("rollwave.analysis.results", "combine"),
    "evaluate_burn_rate": ("rollwave.analysis.burnrate", "evaluate_burn_rate"),
    "evaluate_fleet": ("rollwave.analysis.engine", "evaluate_fleet"),
    "evaluate_instance": ("rollwave.analysis.engine", "evaluate_instance"),
    "evaluate_measurement": ("rollwave.analysis.threshold", "evaluate_measurement"),
    "evaluate_threshold": ("rollwave.analysis.threshold", "evaluate_threshold"),
    "judge_gauge": ("rollwave.analysis.canary", "judge_gauge"),
    "judge_ratio": ("rollwave.analysis.canary", "judge_ratio"),
    "kayenta_judge": ("rollwave.analysis.kayenta", "judge"),
    "measure": ("rollwave.analysis.threshold", "measure"),
    "peers_of": ("rollwave.analysis.engine", "peers_of"),
    "scale_windows": ("rollwave.analysis.burnrate", "scale_windows"),
}



def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use (PEP 562)."""
    try:
        module, attribute = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module 'rollwave.analysis' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


__all__ = [
    "SRE_WINDOWS",
    "Action",
    "Blame",
    "BlamePolicy",
    "BurnRateCheck",
    "BurnWindow",
    "Check",
    "CheckResult",
    "Condition",
    "Direction",
    "FleetVerdict",
    "GaugeCheck",
    "InstanceData",
    "InstanceEvidence",
    "KayentaMetric",
    "KayentaResult",
    "Measurement",
    "Outcome",
    "PolicyError",
    "RatioCheck",
    "RolledBack",
    "Series",
    "SeriesError",
    "ThresholdCheck",
    "ThresholdRun",
    "Verdict",
    "VerificationPolicy",
    "Windows",
    "assign_blame",
    "combine",
    "evaluate_burn_rate",
    "evaluate_fleet",
    "evaluate_instance",
    "evaluate_measurement",
    "evaluate_threshold",
    "judge_gauge",
    "judge_ratio",
    "kayenta_judge",
    "measure",
    "peers_of",
    "scale_windows",
]

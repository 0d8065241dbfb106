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

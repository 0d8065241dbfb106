"""Kayenta's NetflixACAJudge, ported faithfully as the reference canary judge.

What it does (spinnaker/kayenta, ``kayenta-judge`` and ``kayenta-mannwhitney``):

1. Each metric's control (baseline) and experiment (canary) values are cleaned: NaNs removed
   (``nanStrategy: remove``) or replaced by 0 (the default), then outliers optionally removed
   with an IQR detector (factor 3, widened to the 1st/99th percentiles).
2. :func:`classify_metric` (``MannWhitneyClassifier``, tolerance 0.25, confidence 0.98): no data
   -> *Nodata* (or *NodataFailMetric* for ``mustHaveData``); identical or all-equal data ->
   *Pass*; otherwise a two-sided Mann-Whitney interval for the shift experiment - control.
   The metric is *High* when the interval's lower bound exceeds ``0.25 x |estimate|`` and the
   effect size (mean ratio by default) reaches ``allowedIncrease``; *Low* symmetrically;
   *Pass* otherwise. A critical metric classified High/Low beyond ``criticalIncrease`` /
   ``criticalDecrease`` (or with no data) fails the whole canary.
3. :func:`score` (``WeightedSumScorer``): each group's score is the percentage of its
   classified metrics that passed; the summary is the weighted sum of group scores (groups
   without a weight share what is left of 100; a group with no classified metric counts 100).
   A critical failure, or 50 % or more metrics with no data, scores 0.
4. :func:`classify_score` (``ThresholdScoreClassifier``): ``>= pass`` is Pass, ``>= marginal``
   is Marginal, below is Fail.

Where Kayenta needs randomness (Gaussian noise of scale ``value x 1e-5`` when both samples
are constant) a fixed seed keeps this module pure and reproducible.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rollwave.analysis.results import CheckResult, Outcome
from rollwave.analysis.series import FloatArray, PolicyError
from rollwave.analysis.stats import cles, iqr_outliers, mean_ratio, wilcoxon_interval

TOLERANCE = 0.25  # fraction of the Hodges-Lehmann estimate the interval must clear
CONFIDENCE = 0.98  # NetflixACAJudge's confLevel
NODATA_THRESHOLD = 50.0  # percent of metrics with no data that fails the canary


class Direction(enum.StrEnum):
    """Which way a metric may not move."""

    INCREASE = "increase"  # an increase is bad (latency, errors)
    DECREASE = "decrease"  # a decrease is bad (throughput, success rate)
    EITHER = "either"


class Label(enum.StrEnum):
    """Kayenta's metric classification labels."""

    PASS = "Pass"  # noqa: S105 - a label, not a password
    HIGH = "High"
    LOW = "Low"
    NODATA = "Nodata"
    NODATA_FAIL = "NodataFailMetric"
    ERROR = "Error"


_COUNTED = (Label.PASS, Label.HIGH, Label.LOW, Label.NODATA_FAIL)


class ScoreLabel(enum.StrEnum):
    """Kayenta's summary classification."""

    PASS = "Pass"  # noqa: S105 - a label, not a password
    MARGINAL = "Marginal"
    FAIL = "Fail"


@dataclass(frozen=True, slots=True)
class KayentaMetric:
    """One metric's ``analysisConfigurations.canary`` block."""

    name: str
    direction: Direction = Direction.EITHER
    nan_strategy: str = "none"  # "remove" or "none" (replace NaN by 0)
    outliers: str = "none"  # "remove" or "none"
    outlier_factor: float = 3.0
    critical: bool = False
    must_have_data: bool = False
    muted: bool = False
    effect_measure: str = "meanRatio"  # or "cles"
    allowed_increase: float | None = None  # default 1.0 (meanRatio) or 0.5 (cles)
    allowed_decrease: float | None = None
    critical_increase: float | None = None
    critical_decrease: float | None = None
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.nan_strategy not in ("remove", "none", "replace"):
            raise PolicyError(f"metric '{self.name}': nanStrategy must be remove or replace")
        if self.effect_measure not in ("meanRatio", "cles"):
            raise PolicyError(f"metric '{self.name}': effectSize.measure must be meanRatio or cles")

    def _default(self, value: float | None) -> float:
        if value is not None:
            return value
        return 0.5 if self.effect_measure == "cles" else 1.0

    @property
    def thresholds(self) -> tuple[float, float]:
        return self._default(self.allowed_decrease), self._default(self.allowed_increase)

    @property
    def critical_thresholds(self) -> tuple[float, float]:
        return self._default(self.critical_decrease), self._default(self.critical_increase)

    @property
    def group_names(self) -> tuple[str, ...]:
        return self.groups or (self.name,)


@dataclass(frozen=True, slots=True)
class MetricClassification:
    """One metric's classification, with the mean ratio Kayenta reports as its deviation."""

    name: str
    label: Label
    reason: str | None
    deviation: float
    critical: bool = False
    groups: tuple[str, ...] = ()
    muted: bool = False
    interval: tuple[float, float, float] | None = None  # (lower, estimate, upper)


@dataclass(frozen=True, slots=True)
class KayentaResult:
    """The canary's summary score and classification, with every metric's result."""

    score: float
    label: ScoreLabel
    reason: str | None
    group_scores: dict[str, float]
    metrics: tuple[MetricClassification, ...] = field(default_factory=tuple)

    def to_check_result(self, name: str = "kayenta") -> CheckResult:
        """Pass -> Successful, Marginal -> Inconclusive, Fail -> Failed."""
        outcome = {
            ScoreLabel.PASS: Outcome.SUCCESSFUL,
            ScoreLabel.MARGINAL: Outcome.INCONCLUSIVE,
            ScoreLabel.FAIL: Outcome.FAILED,
        }[self.label]
        not_passed = [m for m in self.metrics if m.label is not Label.PASS and not m.muted]
        detail = ", ".join(f"{m.name} {m.label.value}" for m in not_passed) or "every metric Pass"
        text = f"score {self.score:.2f} ({self.label.value}): {detail}"
        if self.reason:
            text += f"; {self.reason}"
        return CheckResult(
            name=name,
            outcome=outcome,
            explanation=text,
            value=self.score,
            samples=len(self.metrics),
            data={
                "groups": self.group_scores,
                "labels": {m.name: m.label.value for m in self.metrics},
            },
        )


def _clean(values: FloatArray, metric: KayentaMetric) -> FloatArray:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)] if metric.nan_strategy == "remove" else np.nan_to_num(v, nan=0.0)
    if metric.outliers == "remove" and v.size:
        v = v[~iqr_outliers(v, metric.outlier_factor, reduce_sensitivity=True)]
    return v


def _add_noise(values: FloatArray, seed: int) -> FloatArray:
    scale = float(values[0]) * 1e-5
    rng = np.random.default_rng(seed)
    return values + rng.normal(0.0, abs(scale), size=values.size)


def classify_metric(  # noqa: PLR0911 - one return per Kayenta branch, kept in its order
    metric: KayentaMetric, control: FloatArray, experiment: FloatArray
) -> MetricClassification:
    """``MannWhitneyClassifier.classify`` after the judge's NaN and outlier transforms."""
    ctl, exp = _clean(control, metric), _clean(experiment, metric)

    def result(
        label: Label, reason: str | None, deviation: float, critical: bool = False,
        interval: tuple[float, float, float] | None = None,
    ) -> MetricClassification:
        return MetricClassification(
            metric.name, label, reason, deviation, critical, metric.group_names, metric.muted,
            interval,
        )

    if exp.size == 0 or ctl.size == 0:
        if metric.nan_strategy == "remove":
            reason = f"Missing data for {metric.name}"
            if metric.must_have_data and not metric.critical:
                return result(Label.NODATA_FAIL, reason, 1.0)
            return result(Label.NODATA, reason, 1.0, metric.critical)
        return result(Label.PASS, None, 1.0)
    if np.array_equal(np.sort(exp), np.sort(ctl)):
        return result(Label.PASS, "The Canary and Baseline data are identical", 1.0)
    if np.unique(np.concatenate([exp, ctl])).size == 1:
        return result(Label.PASS, None, 1.0)

    if np.unique(exp).size == 1 and np.unique(ctl).size == 1:
        exp, ctl = _add_noise(exp, 1), _add_noise(ctl, 2)
    try:
        mw = wilcoxon_interval(exp, ctl, confidence=CONFIDENCE)
    except (ValueError, ArithmeticError):
        return MetricClassification(
            metric.name, Label.ERROR, "Metric Classification Failed", math.nan, False,
            metric.group_names, metric.muted,
        )
    deviation = mean_ratio(ctl, exp)
    effect = cles(ctl, exp) if metric.effect_measure == "cles" else deviation
    bound = TOLERANCE * abs(mw.estimate)
    allowed_dec, allowed_inc = metric.thresholds
    high = (
        metric.direction in (Direction.INCREASE, Direction.EITHER)
        and mw.lower > bound
        and (math.isnan(effect) or effect >= allowed_inc)
    )
    low = (
        metric.direction in (Direction.DECREASE, Direction.EITHER)
        and mw.upper < -bound
        and (math.isnan(effect) or effect <= allowed_dec)
    )
    interval = (mw.lower, mw.estimate, mw.upper)
    if not (high or low):
        return result(Label.PASS, None, deviation, interval=interval)
    label = Label.HIGH if high else Label.LOW
    crit_dec, crit_inc = metric.critical_thresholds
    critical = metric.critical and (
        math.isnan(effect) or (effect >= crit_inc if high else effect <= crit_dec)
    )
    reason = f"The metric {metric.name} was classified as {label.value}" + (
        " (Critical)" if critical else ""
    )
    return result(label, reason, deviation, critical, interval)


def score(
    results: Sequence[MetricClassification], group_weights: Mapping[str, float] | None = None
) -> tuple[float, dict[str, float], str | None]:
    """``WeightedSumScorer.score`` over the non-muted results: (summary, groups, reason)."""
    weights = dict(group_weights or {})
    active = [r for r in results if not r.muted]
    groups: dict[str, list[Label]] = {}
    for r in active:
        for g in r.groups:
            groups.setdefault(g, []).append(r.label)
    group_scores: dict[str, float] = {}
    no_data: dict[str, bool] = {}
    for g, labels in groups.items():
        counted = [lb for lb in labels if lb in _COUNTED]
        no_data[g] = not counted
        passed = sum(1 for lb in counted if lb is Label.PASS)
        group_scores[g] = 0.0 if not counted else passed / len(counted) * 100.0
    critical = [r for r in active if r.critical and r.label is not Label.PASS]
    if critical:
        return 0.0, group_scores, f"Canary Failed: {critical[0].reason}"
    nodata = sum(1 for r in active if r.label is Label.NODATA)
    if active and nodata / len(active) * 100.0 >= NODATA_THRESHOLD:
        reason = f"Canary Failed: {NODATA_THRESHOLD:g}% or more metrics returned NODATA"
        return 0.0, group_scores, reason
    unweighted = [g for g in group_scores if g not in weights]
    share = (100.0 - sum(weights.values())) / len(unweighted) if unweighted else 0.0
    total = 0.0
    for g, s in group_scores.items():
        effective = 100.0 if no_data[g] else s
        total += effective * (weights.get(g, share) / 100.0)
    return round(total, 2), group_scores, None


def classify_score(summary: float, pass_threshold: float, marginal_threshold: float) -> ScoreLabel:
    """``ThresholdScoreClassifier``."""
    if summary >= pass_threshold:
        return ScoreLabel.PASS
    if summary >= marginal_threshold:
        return ScoreLabel.MARGINAL
    return ScoreLabel.FAIL


def judge(
    metrics: Sequence[KayentaMetric],
    data: Mapping[str, tuple[FloatArray, FloatArray]],
    *,
    pass_threshold: float = 95.0,
    marginal_threshold: float = 75.0,
    group_weights: Mapping[str, float] | None = None,
) -> KayentaResult:
    """Judge one canary: ``data[name] = (control values, experiment values)``.

    Example::

        >>> m = KayentaMetric("latency", direction=Direction.INCREASE)
        >>> ctl, exp = np.array([1.0, 1.1, 0.9, 1.0]), np.array([2.0, 2.1, 1.9, 2.2])
        >>> r = judge([m], {"latency": (ctl, exp)})
        >>> r.label.value, r.score
        ('Fail', 0.0)
    """
    if not marginal_threshold <= pass_threshold:
        raise PolicyError("Kayenta's marginal threshold must not exceed its pass threshold")
    empty = np.zeros(0, dtype=np.float64)
    results = tuple(
        classify_metric(m, *data.get(m.name, (empty, empty))) for m in metrics
    )
    summary, groups, reason = score(results, group_weights)
    label = classify_score(summary, pass_threshold, marginal_threshold)
    return KayentaResult(summary, label, reason, groups, results)

"""From the workspace YAML to the fleet engine: the policy, the series sources, their problems.

Three entry points:

* :func:`fleet_policy` — pure: a verification profile's ``fleet:`` section (or its defaults)
  → the engine's :class:`~rollwave.analysis.VerificationPolicy`;
* :func:`build_series_sources` / :func:`build_metric_sources` — the project's
  ``metric_sources:`` → series sources for fleet analysis / per-window sources for per-instance
  verification (secret references are resolved when a source first reads);
* :func:`check_metric_sections` — what ``rollwave validate`` reports about ``metric_sources:``
  and every ``fleet:`` section, each problem located at its file and line (called by the
  workspace loader).

Example::

    policy = fleet_policy(project.verification["default"])
    sources = build_series_sources(project, build_resolvers(project.secrets))
    source = sources[project.verification["default"].fleet.source]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pydantic import ValidationError

from rollwave.analysis import (
    SRE_WINDOWS,
    BlamePolicy,
    BurnRateCheck,
    BurnWindow,
    Check,
    Condition,
    GaugeCheck,
    Outcome,
    PolicyError,
    RatioCheck,
    ThresholdCheck,
    VerificationPolicy,
)
from rollwave.analysis.kayenta import Direction
from rollwave.core.durations import format_duration
from rollwave.core.model import (
    BurnRateFleetCheck,
    FleetAnalysis,
    FleetCheck,
    GaugeFleetCheck,
    Project,
    RatioFleetCheck,
    ThresholdFleetCheck,
    Verification,
)
from rollwave.errors import Problem
from rollwave.ports.metrics import MetricSources
from rollwave.ports.series import STANDARD_METRICS, SeriesSource
from rollwave.yamlio import YamlDocument

Secrets = Callable[[str], str] | Any
"""A secret resolver: ``SecretResolvers`` (``.resolve(reference)``) or a plain function."""

_NO_DATA = {"error": Outcome.ERROR, "inconclusive": Outcome.INCONCLUSIVE,
            "failed": Outcome.FAILED, "successful": Outcome.SUCCESSFUL}


# --- the converter (pure) --------------------------------------------------------------------


def fleet_policy(profile: Verification | FleetAnalysis | None, *,
                 bake: float | None = None) -> VerificationPolicy:
    """The engine policy of a profile's ``fleet:`` section (its defaults when there is none).

    ``bake`` overrides the section's bake (e.g. a wave's, or an emergency's compressed one).
    Raises :class:`~rollwave.analysis.PolicyError` naming the check for impossible numbers
    (``rollwave validate`` reports them first, located).

    >>> policy = fleet_policy(None)
    >>> [c.name for c in policy.checks], policy.interval, policy.bake
    (['error-ratio', 'p95-latency'], 300.0, 1800.0)
    """
    fleet = _section(profile)
    checks = tuple(to_check(c) for c in fleet.checks)
    return VerificationPolicy(
        checks=checks, interval=fleet.interval, bake=fleet.bake if bake is None else bake,
        baseline=fleet.baseline, warmup=fleet.warmup, incident_window=fleet.incident_window,
        blame=blame_policy(fleet))


def blame_policy(fleet: FleetAnalysis) -> BlamePolicy:
    """The engine's blame numbers of a ``fleet:`` section."""
    b = fleet.blame
    return BlamePolicy(min_customers=b.min_customers, min_clearing_peers=b.min_clearing_peers,
                       patience=b.patience, incident_min_instances=b.incident_min_instances,
                       incident_fraction=b.incident_fraction)


def to_check(spec: FleetCheck) -> Check:
    """One YAML check as the engine's check dataclass (PolicyError for impossible numbers)."""
    limit = spec.consecutive_error_limit
    try:
        if isinstance(spec, RatioFleetCheck):
            return RatioCheck(
                spec.name, spec.numerator, spec.denominator, Direction(spec.direction),
                spec.allowed_increase, spec.allowed_decrease, spec.min_change, spec.confidence,
                spec.min_denominator, limit)
        if isinstance(spec, GaugeFleetCheck):
            return GaugeCheck(
                spec.name, spec.metric, Direction(spec.direction), spec.allowed_increase,
                spec.allowed_decrease, spec.confidence, spec.peer_margin, spec.min_samples,
                spec.min_baseline, limit, spec.trend_horizon, spec.load)
        if isinstance(spec, BurnRateFleetCheck):
            windows = SRE_WINDOWS if spec.windows == "sre" else tuple(
                BurnWindow(w.long, w.short, w.factor) for w in spec.windows)
            return BurnRateCheck(spec.name, spec.errors, spec.total, spec.objective, windows,
                                 spec.min_events, limit)
        return ThresholdCheck(
            spec.name, spec.metric, spec.numerator, spec.denominator,
            None if spec.success is None else Condition.parse(spec.success),
            None if spec.failure is None else Condition.parse(spec.failure),
            spec.failure_limit, spec.inconclusive_limit, limit, spec.count,
            _NO_DATA[spec.no_data])
    except PolicyError as exc:
        if exc.message.startswith(f"check '{spec.name}'"):
            raise
        raise PolicyError(f"check '{spec.name}': {exc.message}", hint=exc.hint) from None


def metrics_of(spec: FleetCheck) -> dict[str, str]:
    """The logical metrics a check reads, by the field that names them."""
    if isinstance(spec, RatioFleetCheck):
        return {"numerator": spec.numerator, "denominator": spec.denominator}
    if isinstance(spec, GaugeFleetCheck):
        return {"metric": spec.metric, **({"load": spec.load} if spec.load else {})}
    if isinstance(spec, BurnRateFleetCheck):
        return {"errors": spec.errors, "total": spec.total}
    named = {"metric": spec.metric, "numerator": spec.numerator,
             "denominator": spec.denominator}
    return {k: v for k, v in named.items() if v is not None}


def fleet_metrics(profile: Verification | FleetAnalysis | None) -> tuple[str, ...]:
    """Every logical metric the section's checks read, in order (what to fetch)."""
    seen: dict[str, None] = {}
    for spec in _section(profile).checks:
        seen.update(dict.fromkeys(metrics_of(spec).values()))
    return tuple(seen)


def _section(profile: Verification | FleetAnalysis | None) -> FleetAnalysis:
    if isinstance(profile, FleetAnalysis):
        return profile
    if profile is not None and profile.fleet is not None:
        return profile.fleet
    return FleetAnalysis()


# --- building sources ------------------------------------------------------------------------


def _environment(secrets: Secrets | None) -> Any:
    from rollwave.adapters.metrics import MetricEnvironment

    if secrets is None:
        return MetricEnvironment()
    resolve = getattr(secrets, "resolve", secrets)
    return MetricEnvironment(secret=resolve)


def build_series_sources(project: Project,
                         secrets: Secrets | None = None) -> Mapping[str, SeriesSource]:
    """The project's series sources by name, for fleet analysis.

    ``secrets`` resolves ``{$secret: ...}`` options (``build_resolvers(project.secrets, ...)``
    or any ``reference -> value`` function); references are resolved at the first read, so a
    missing secret is a failed read with its reason, not a crash. ``scrape`` is included when
    the scrape collector is part of the build. Raises ConfigError for invalid options (which
    ``rollwave validate`` reports first).
    """
    from rollwave.adapters.metrics import build_series

    return build_series(project.metric_sources, _environment(secrets))


def build_metric_sources(project: Project, secrets: Secrets | None = None) -> MetricSources:
    """The project's per-window metric sources (``scrape`` always), for per-instance checks."""
    from rollwave.adapters.metrics import build_sources

    return build_sources(project.metric_sources, _environment(secrets))


# --- validation (located problems) -----------------------------------------------------------


def check_metric_sections(project: Project, doc: YamlDocument) -> list[Problem]:
    """Problems of ``metric_sources:``, every profile's ``fleet:`` and its metric checks' sources.

    Unknown kinds and bad options (per kind), unknown source names, metric names the source
    has no query for, duplicate check names, unreadable conditions, impossible numbers, and
    settings that make checks always inconclusive (warnings).
    """
    problems, known = _check_sources(project.metric_sources, doc)
    for name, profile in project.verification.items():
        at: tuple[str | int, ...] = ("verification", name)
        for index, check in enumerate(profile.metrics):
            problems.extend(_metric_check(doc, (*at, "metrics", index), check, known))
        if profile.fleet is not None:
            problems.extend(_check_fleet(doc, (*at, "fleet"), profile.fleet, project, known))
    return problems


def check_raw_metric_sources(doc: YamlDocument) -> list[Problem]:
    """The ``metric_sources:`` problems of a project file that did not validate as a whole."""
    data = doc.data if isinstance(doc.data, dict) else {}
    sources = data.get("metric_sources")
    if not isinstance(sources, dict):
        return []
    valid = {str(k): v for k, v in sources.items() if isinstance(v, dict)}
    return _check_sources(valid, doc)[0]


class _Known:
    """What validation knows about each source: its kind, its built forms (valid options)."""

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {"scrape": "scrape"}
        self.series: dict[str, Any] = {}
        self.window: dict[str, Any] = {}
        self.invalid: set[str] = set()

    def names(self) -> str:
        return ", ".join(sorted(self.kinds))

    def unknown(self, source: str, metric: str) -> bool:
        """True when ``source`` (whose options are valid) cannot answer ``metric``."""
        if source in self.invalid:
            return False
        series = self.series.get(source)
        if series is None:
            return metric not in STANDARD_METRICS
        return bool(series.problems([metric]))

    def metric_names(self, source: str) -> str:
        series: Any = self.series.get(source)
        names = getattr(series, "metric_names", lambda: STANDARD_METRICS)()
        return ", ".join(names)


def _check_sources(sources: Mapping[str, Mapping[str, Any]],
                   doc: YamlDocument) -> tuple[list[Problem], _Known]:
    from rollwave.adapters.metrics import MetricEnvironment, registry, series_registry

    problems: list[Problem] = []
    known = _Known()
    env = MetricEnvironment(secret=lambda reference: "")  # validation never resolves secrets
    for name, options in {"scrape": {}, **sources}.items():
        at = ("metric_sources", name)
        kind = options.get("kind", name)
        if not isinstance(kind, str) or kind not in registry.kinds():
            where = (*at, "kind") if "kind" in options else at
            what = f"unknown metric source kind '{kind}'" if "kind" in options else (
                f"metric source '{name}' needs a kind")
            problems.append(doc.problem(where, what,
                                        hint=f"one of: {', '.join(registry.kinds())}"))
            continue
        known.kinds[name] = kind
        rest = {k: v for k, v in options.items() if k != "kind"}
        try:
            registry.options_model(kind).model_validate(rest)
        except ValidationError as exc:
            from rollwave.workspace.loader import pydantic_problems

            problems.extend(pydantic_problems(doc, exc, base=at))
            known.invalid.add(name)
            continue
        known.window[name] = registry.create(kind, dict(options), env)
        if kind in series_registry.kinds():
            known.series[name] = series_registry.create(kind, dict(options), env)
    return problems, known


def _metric_check(doc: YamlDocument, at: tuple[str | int, ...], check: Any,
                  known: _Known) -> Iterator[Problem]:
    if check.source not in known.kinds:
        yield doc.problem((*at, "source"), f"metric check '{check.name}' reads unknown source "
                          f"'{check.source}'", hint=f"known sources: {known.names()}; define "
                          "others under metric_sources: in rollwave.yaml")
        return
    source = known.window.get(check.source)
    if source is None or check.source == "scrape":
        return  # bad options were reported; the scrape source's checks are its own business
    for problem in source.problems(check):
        yield doc.problem((*at, "metric"), f"metric check '{check.name}': {problem}")


def _check_fleet(doc: YamlDocument, at: tuple[str | int, ...], fleet: FleetAnalysis,
                 project: Project, known: _Known) -> list[Problem]:
    problems: list[Problem] = []
    if fleet.source not in known.kinds:
        problems.append(doc.problem((*at, "source"), f"fleet analysis reads unknown source "
                                    f"'{fleet.source}'", hint=f"known sources: {known.names()}; "
                                    "define others under metric_sources: in rollwave.yaml"))
    elif known.kinds[fleet.source] == "cloudwatch":
        from rollwave.adapters.metrics.cloudwatch import valid_period

        if not valid_period(fleet.step):
            problems.append(doc.problem(
                (*at, "step"), f"CloudWatch cannot serve a step of "
                f"{format_duration(fleet.step)}", hint="use 1s, 5s, 10s, 30s or a multiple "
                "of 1m"))
    seen: dict[str, int] = {}
    for index, spec in enumerate(fleet.checks):
        where = (*at, "checks", index)
        if spec.name in seen:
            problems.append(doc.problem((*where, "name"), f"duplicate check name '{spec.name}' "
                                        f"(also checks[{seen[spec.name]}])",
                                        hint="give every check its own name"))
        seen.setdefault(spec.name, index)
        if fleet.source in known.kinds:
            problems.extend(
                doc.problem((*where, field), f"check '{spec.name}' reads '{metric}', which "
                            f"source '{fleet.source}' has no query for",
                            hint=f"its metrics: {known.metric_names(fleet.source)}; add a "
                                 f"query under metric_sources.{fleet.source}.queries")
                for field, metric in metrics_of(spec).items()
                if known.unknown(fleet.source, metric))
        problems.extend(_engine_check(doc, where, spec))
    problems.extend(_engine_policy(doc, at, fleet, checks_ok=not problems))
    return problems


def _engine_check(doc: YamlDocument, where: tuple[str | int, ...],
                  spec: FleetCheck) -> list[Problem]:
    if isinstance(spec, ThresholdFleetCheck):
        for field in ("success", "failure"):
            text = getattr(spec, field)
            if text is not None:
                try:
                    Condition.parse(text)
                except PolicyError as exc:
                    return [doc.problem((*where, field), exc.message, hint=exc.hint)]
    try:
        to_check(spec)
    except PolicyError as exc:
        return [doc.problem(where, exc.message, hint=exc.hint)]
    return []


def _engine_policy(doc: YamlDocument, at: tuple[str | int, ...], fleet: FleetAnalysis, *,
                   checks_ok: bool) -> list[Problem]:
    problems: list[Problem] = []
    try:
        fleet_policy(fleet)
    except PolicyError as exc:
        if checks_ok:  # otherwise the checks' own problems say it, located
            problems.append(doc.problem(at, exc.message, hint=exc.hint))
    if fleet.step > fleet.interval:
        problems.append(doc.problem((*at, "step"), f"step ({format_duration(fleet.step)}) is "
                                    f"longer than the interval ({format_duration(fleet.interval)})",
                                    hint="fetch at least one point per analysis interval"))
    samples = fleet.baseline / fleet.step
    short = [c for c in fleet.checks
             if isinstance(c, GaugeFleetCheck) and samples < c.min_baseline]
    if short:
        problems.append(doc.problem(
            (*at, "baseline"), f"a baseline of {format_duration(fleet.baseline)} holds "
            f"{samples:.0f} points of {format_duration(fleet.step)}, fewer than the "
            f"{short[0].min_baseline} check '{short[0].name}' needs: it would stay inconclusive",
            hint="lengthen the baseline, shorten the step, or lower min_baseline",
            severity="warning"))
    if fleet.bake < fleet.interval:
        problems.append(doc.problem(
            (*at, "bake"), f"bake ({format_duration(fleet.bake)}) is shorter than the interval "
            f"({format_duration(fleet.interval)}): instances are judged once per interval",
            hint="make the bake at least one interval", severity="warning"))
    return problems


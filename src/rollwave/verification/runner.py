"""Verify one instance right after its deploy (and again after a rollback).

:func:`verify_instance` runs, for every service of the instance that has an endpoint:

1. the HTTP health check (retried while the instance warms up; no answer or the wrong status
   fails it);
2. the smoke requests (skipped for a service whose health check did not pass);
3. the metric checks over the verification window, sampled at ``0, interval, 2·interval, …``
   up to ``duration``; skipped when anything above already failed.

A check that fails decisively ends the window at once (a broken instance is rolled back
quickly); a pass always needs the full window. ``should_stop`` is polled between samples and
between health attempts; a stop ends verification with an *Inconclusive* verdict "stopped".
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from rollwave.analysis.results import CheckResult, Outcome, Verdict
from rollwave.core.fleet import FleetInstance
from rollwave.core.model import MetricCheck, Verification
from rollwave.errors import RollwaveError
from rollwave.ports.metrics import (
    Measurement,
    MetricSession,
    MetricSources,
    MetricTarget,
    MetricWindow,
)
from rollwave.verification import http, words
from rollwave.verification.judge import Rules, judge
from rollwave.verification.probes import Timing, check_health, check_smoke

#: Longest stretch between two polls of ``should_stop`` while waiting for the next sample.
STOP_POLL: Final = 0.25
_EPSILON: Final = 1e-9


@dataclass(frozen=True, slots=True)
class VerificationTarget:
    """The instance to verify: its key and, per service, its base URL (None: no endpoint).

    ``labels`` are the instance's facts (customer, instance, environment, tier, region and its
    labels); query-based metric sources template their queries with them.
    """

    instance: str
    endpoints: Mapping[str, str | None]
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_instance(cls, instance: FleetInstance,
                     endpoint: Callable[[FleetInstance, str], str | None],
                     services: Sequence[str] | None = None) -> VerificationTarget:
        """The target for a fleet instance, asking ``endpoint`` (e.g. ``deployer.endpoint``)
        for each of its services (or only ``services``)."""
        names = instance.services if services is None else services
        return cls(instance=instance.key,
                   endpoints={name: endpoint(instance, name) for name in names},
                   labels=dict(instance.facts.attributes))


def verify_instance(target: VerificationTarget, profile: Verification, *,
                    sources: MetricSources, clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep,
                    should_stop: Callable[[], bool] = lambda: False,
                    progress: Callable[[str], None] = lambda msg: None) -> Verdict:
    """Verify every service of ``target`` that has an endpoint against ``profile``.

    Returns the combined :class:`Verdict`: Failed when any check saw a regression (including
    an instance that does not answer), Error when a metrics source could not be read too many
    times in a row, Inconclusive for too little data or a stop, Successful only when every
    check passed over the full window. Never raises for an unreachable instance or source.

    Example (``sources`` from :func:`rollwave.adapters.metrics.build_sources`)::

        verdict = verify_instance(
            VerificationTarget("acme/prod", {"web": "http://127.0.0.1:8101"}),
            project.verification["default"], sources=build_sources())
        verdict.outcome, verdict.summary
    """
    run = _Run(target, profile, sources, Timing(clock, sleep, should_stop), progress)
    return run.verdict()


class _StoppedError(Exception):
    """Raised inside a run when ``should_stop`` answered True."""


@dataclass
class _Metric:
    """One metric check of one service during the window."""

    key: str
    service: str
    check: MetricCheck
    history: list[Measurement] = field(default_factory=list)
    result: CheckResult | None = None

    @property
    def data(self) -> dict[str, str]:
        return {"service": self.service, "kind": "metric", "source": self.check.source,
                "metric": self.check.metric}


@dataclass
class _Session:
    session: MetricSession
    metrics: list[_Metric]


class _Run:
    def __init__(self, target: VerificationTarget, profile: Verification,
                 sources: MetricSources, timing: Timing, progress: Callable[[str], None]) -> None:
        self.target = target
        self.profile = profile
        self.sources = sources
        self.timing = timing
        self.say = progress
        self.results: list[CheckResult] = []
        self.stopped = False
        self.started = timing.clock()
        self.services = [(name, url) for name, url in target.endpoints.items() if url]

    def verdict(self) -> Verdict:
        if not self.services:
            listed = ", ".join(self.target.endpoints) or "none"
            return Verdict.of([CheckResult(
                "endpoint", Outcome.INCONCLUSIVE,
                f"{self.target.instance} has no service endpoint to verify (services: {listed})",
            )])
        try:
            self._probes()
            failed = [r.name for r in self.results if r.outcome is Outcome.FAILED]
            if failed:
                self._skip_metrics(f"not measured because {', '.join(failed)} failed")
            else:
                self._metrics()
        except _StoppedError:
            waited = words.seconds(self.timing.clock() - self.started)
            self.say(f"{self.target.instance}: verification stopped after {waited}")
            return Verdict(Outcome.INCONCLUSIVE, tuple(self.results),
                           f"stopped after {waited}, before verification could decide")
        verdict = Verdict.of(self.results)
        self.say(f"{self.target.instance}: verification {verdict.outcome.value}: "
                 f"{verdict.summary}")
        return verdict

    # --- health and smoke ---------------------------------------------------------------------

    def _probes(self) -> None:
        health, smokes = self.profile.health, self.profile.smoke
        for service, url in self.services:
            with http.client(url) as client:
                healthy = True
                if health is not None:
                    self._check_stop()
                    result = check_health(f"{service}/health", url, health, http=client,
                                          timing=self.timing, data={"service": service})
                    self._add(result)
                    healthy = result.outcome is Outcome.SUCCESSFUL
                for smoke in smokes:
                    name = f"{service}/smoke/{smoke.name}"
                    if not healthy:
                        self._add(CheckResult(name, Outcome.INCONCLUSIVE,
                                              "not sent because the health check did not pass",
                                              data={"service": service, "kind": "smoke"}))
                        continue
                    self._check_stop()
                    self._add(check_smoke(name, url, smoke, http=client,
                                          data={"service": service}))
        self._check_stop()

    def _add(self, result: CheckResult) -> None:
        self.results.append(result)
        self.say(f"{self.target.instance}: {result.name} {result.outcome.value}: "
                 f"{result.explanation}")

    def _check_stop(self) -> None:
        if self.timing.should_stop():
            self.stopped = True
            self.results.append(CheckResult(
                "stopped", Outcome.INCONCLUSIVE,
                f"stopped after {words.seconds(self.timing.clock() - self.started)}"))
            raise _StoppedError

    # --- metrics ------------------------------------------------------------------------------

    def _skip_metrics(self, reason: str) -> None:
        for service, _ in self.services:
            for check in self.profile.metrics:
                self.results.append(CheckResult(
                    f"{service}/{check.name}", Outcome.INCONCLUSIVE, reason,
                    data={"service": service, "kind": "metric", "source": check.source,
                          "metric": check.metric}))

    def _metrics(self) -> None:
        if not self.profile.metrics:
            return
        window = MetricWindow(self.profile.duration, self.profile.interval)
        sessions: list[_Session] = []
        metrics: list[_Metric] = []
        try:
            for service, url in self.services:
                target = MetricTarget(self.target.instance, service, url, self.target.labels)
                for source, checks in _by_source(self.profile.metrics).items():
                    group = [_Metric(f"{service}/{c.name}", service, c) for c in checks]
                    metrics.extend(group)
                    session = self._open(source, target, checks, window, group)
                    if session is not None:
                        sessions.append(_Session(session, group))
            self._window(sessions, metrics)
        finally:
            for entry in sessions:
                entry.session.close()

    def _open(self, source: str, target: MetricTarget, checks: list[MetricCheck],
              window: MetricWindow, group: list[_Metric]) -> MetricSession | None:
        try:
            return self.sources.source(source).open(target, checks, window)
        except RollwaveError as exc:
            for metric in group:
                metric.result = CheckResult(
                    metric.key, Outcome.ERROR, f"cannot measure: {exc.message}",
                    data=metric.data)
            return None

    def _window(self, sessions: list[_Session], metrics: list[_Metric]) -> None:
        rules = Rules(self.profile.min_requests, self.profile.consecutive_error_limit)
        duration, interval = self.profile.duration, self.profile.interval
        limit = duration + (rules.consecutive_error_limit + 2) * interval
        start = self.timing.clock()
        elapsed = 0.0
        try:
            while True:
                self._check_stop()
                elapsed = self.timing.clock() - start
                self._sample(sessions, elapsed, rules)
                if any(m.result is not None and m.result.outcome is Outcome.FAILED
                       for m in metrics):
                    break
                if elapsed + _EPSILON >= duration:
                    # The window is over: judge what read well; give failing reads more tries.
                    for metric in metrics:
                        if metric.result is None and metric.history and metric.history[-1].ok:
                            metric.result = judge(metric.key, metric.check, metric.history,
                                                  rules, final=True, data=metric.data)
                    if all(m.result is not None for m in metrics) or elapsed >= limit:
                        break
                elif all(m.result is not None for m in metrics):
                    break
                self._wait(start + _next_tick(elapsed, interval, duration))
        finally:
            self._conclude(metrics, rules, elapsed)

    def _sample(self, sessions: list[_Session], elapsed: float, rules: Rules) -> None:
        shown = []
        for entry in sessions:
            pending = [m for m in entry.metrics if m.result is None]
            if not pending:
                continue
            try:
                readings = entry.session.sample(elapsed)
            except RollwaveError as exc:  # the port says never raise; count it as a bad read
                readings = {m.check.name: Measurement.failed(exc.message) for m in pending}
            for metric in pending:
                reading = readings.get(metric.check.name) or Measurement.failed(
                    "the source returned no measurement for this check")
                metric.history.append(reading)
                metric.result = judge(metric.key, metric.check, metric.history, rules,
                                      final=False, data=metric.data)
                shown.append(f"{metric.key} {_reading_words(reading)}")
        if shown:
            self.say(f"{self.target.instance}: metrics at {words.seconds(elapsed)} of "
                     f"{words.seconds(self.profile.duration)}: {'; '.join(shown)}")

    def _conclude(self, metrics: list[_Metric], rules: Rules, elapsed: float) -> None:
        failed = [m.key for m in metrics
                  if m.result is not None and m.result.outcome is Outcome.FAILED]
        for metric in metrics:
            if metric.result is None and not failed and not self.stopped:
                metric.result = judge(metric.key, metric.check, metric.history, rules,
                                      final=True, data=metric.data)
            if metric.result is None:
                why = (f"{', '.join(failed)} failed" if failed
                       else "verification was stopped")
                so_far = next((m for m in reversed(metric.history) if m.ok), None)
                seen = f"; so far {_reading_words(so_far)}" if so_far else ""
                metric.result = CheckResult(
                    metric.key, Outcome.INCONCLUSIVE,
                    f"not judged: the window ended after {words.seconds(elapsed)} because "
                    f"{why}{seen}", value=so_far.value if so_far else None,
                    data={**metric.data, "cut_short": True})
            self.results.append(metric.result)
            self.say(f"{self.target.instance}: {metric.result.name} "
                     f"{metric.result.outcome.value}: {metric.result.explanation}")

    def _wait(self, until: float) -> None:
        """Sleep until the clock reaches ``until``, polling ``should_stop`` on the way."""
        while True:
            remaining = until - self.timing.clock()
            if remaining <= 0:
                return
            self.timing.sleep(min(remaining, STOP_POLL))
            if self.timing.clock() < until:
                self._check_stop()


def _by_source(checks: Sequence[MetricCheck]) -> dict[str, list[MetricCheck]]:
    grouped: dict[str, list[MetricCheck]] = {}
    for check in checks:
        grouped.setdefault(check.source, []).append(check)
    return grouped


def _next_tick(elapsed: float, interval: float, duration: float) -> float:
    """The next sampling time after ``elapsed``: the next multiple of the interval, and the
    window's end (never skipped); after the window, every interval."""
    following = (math.floor(elapsed / interval + _EPSILON) + 1) * interval
    if elapsed + _EPSILON < duration:
        return min(following, duration)
    return following


def _reading_words(reading: Measurement) -> str:
    if not reading.ok:
        return f"unreadable ({reading.error})"
    if reading.value is None:
        detail = f" ({reading.detail})" if reading.detail else ""
        return f"no {reading.label} yet{detail}"
    detail = f" ({reading.detail})" if reading.detail else ""
    return f"{reading.label} {words.quantity(reading.value, reading.unit)}{detail}"

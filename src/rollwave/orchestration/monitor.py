"""Fleet-level verification during a rollout: collect series, judge the fleet, act on blame.

Per worker process, a :class:`FleetWatch` keeps the embedded scrape collector tracking every
instance with an endpoint (so instances have a baseline before they are updated) and runs one
:class:`RolloutMonitor` per active rollout whose verification profile has fleet analysis. Every
analysis interval a monitor builds :class:`~rollwave.analysis.engine.InstanceData` for the
rollout's instances (updated ones with their update time, the others as stable peers), calls
:func:`~rollwave.analysis.engine.evaluate_fleet` and acts:

- roll back exactly the instances it names (customer-specific regressions, at once);
- a regression on several customers' updated instances → ask to roll the release back;
- a regression also on instances not yet updated → ask to pause (infrastructure), roll nothing
  back;
- sources unreadable → hold: neither promote nor roll back.

Requests go through the same control records a person's would (actor ``rollwave-verify``,
the explanation as reason), so the workflow handles them durably. Every decisive verdict is an
event ``verify.verdict`` (what ``rollwave verify explain`` prints). The wave gate reads the
monitor's latest verdict: the next wave starts only on ``promote`` without held waves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rollwave.analysis.blame import Action, FleetVerdict, RolledBack
from rollwave.analysis.engine import InstanceData, VerificationPolicy, evaluate_fleet
from rollwave.core.model import Verification
from rollwave.core.states import ControlAction, RolloutState, TargetState
from rollwave.orchestration.instance import drive_target
from rollwave.orchestration.runtime import Runtime
from rollwave.ports.metrics import MetricTarget
from rollwave.ports.series import SeriesQuery, SeriesSource
from rollwave.storage import rollouts as repo
from rollwave.storage.events import append_event, list_events

log = logging.getLogger("rollwave.monitor")
ACTOR = "rollwave-verify"
UPDATED_STATES = {TargetState.DEPLOYING, TargetState.VERIFYING, TargetState.SUCCEEDED,
                  TargetState.HELD}
GONE_STATES = {TargetState.ROLLING_BACK, TargetState.ROLLED_BACK, TargetState.ROLLBACK_FAILED}

PolicyFactory = Callable[[Verification], VerificationPolicy | None]


def default_policy_factory(profile: Verification) -> VerificationPolicy | None:
    """The profile's fleet analysis as an engine policy (None when it has none)."""
    import importlib

    if getattr(profile, "fleet", None) is None:
        return None
    try:
        module: Any = importlib.import_module("rollwave.verification.policy")
    except ImportError:  # pragma: no cover - the YAML converter is optional
        return None
    result: VerificationPolicy | None = module.fleet_policy(profile)
    return result


@dataclass
class Judgement:
    """The latest verdict of a rollout, when it was reached, and what was done about it."""

    at: float
    verdict: FleetVerdict


@dataclass
class RolloutMonitor:
    """Judges one rollout's fleet every analysis interval (see the module docstring)."""

    rt: Runtime
    rollout_id: str
    policy: VerificationPolicy
    source: SeriesSource
    targets: Callable[[], list[MetricTarget]]
    step: float = 60.0  # the series grid (the fleet section's step)
    latest: Judgement | None = None
    prior: list[RolledBack] = field(default_factory=list)
    _requested: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _last_signature: tuple[Any, ...] = ()

    def start(self) -> None:
        self._restore()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"rollwave-monitor-{self.rollout_id}")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if not self.tick():
                    return
            except Exception:  # a failed analysis must not kill the monitor; try next interval
                log.exception("fleet analysis of %s failed", self.rollout_id)
            self._stop.wait(max(0.2, self.policy.interval - (time.monotonic() - started)))

    def _restore(self) -> None:
        """Rebuild what was rolled back earlier in this rollout from the last verdict event."""
        with self.rt.db.read() as conn:
            events = list_events(conn, rollout_id=self.rollout_id, kinds=["verify.verdict"],
                                 newest_first=True, limit=1)
        if events:
            self.prior = [RolledBack(r["instance"], r["customer"], dict(r["regressed"]),
                                     float(r["updated_at"]), bool(r["settled"]))
                          for r in events[0].data.get("rolled_back", [])]

    # -- one analysis interval -------------------------------------------------------------------

    def tick(self, now: float | None = None) -> bool:
        """Judge once; False when the rollout has ended (the monitor then stops)."""
        with self.rt.db.read() as conn:
            rollout = repo.get_rollout(conn, self.rollout_id)
            rows = repo.targets(conn, self.rollout_id)
        if rollout is None or rollout.state.terminal:
            return False
        if rollout.state in (RolloutState.PAUSED, RolloutState.ROLLING_BACK):
            return True  # a person decides now; keep the last verdict
        now = now if now is not None else self.rt.clock().timestamp()
        verdict = self.judge(rows, now)
        self.latest = Judgement(now, verdict)
        self._act(verdict, rows, now)
        return True

    def judge(self, rows: list[repo.TargetRecord], now: float) -> FleetVerdict:
        """One analysis of the fleet at ``now`` (epoch seconds)."""
        fleet_targets = self.targets()
        by_key = {t.instance: t for t in rows}
        updated: dict[str, float] = {}
        excluded = set()
        for row in rows:
            if row.state in UPDATED_STATES and row.started_at is not None:
                updated[row.instance] = row.started_at.timestamp()
            elif row.state in GONE_STATES or row.state == TargetState.SKIPPED:
                excluded.add(row.instance)
        earliest = min(updated.values(), default=now)
        start = min(earliest, now) - self.policy.baseline - self.policy.interval
        step = self.step
        start = now - step * max(1, int((now - start) // step) + 1)
        query = SeriesQuery(metrics=self._metrics(), start=start, end=now, step=step)
        series = self.source.fetch(fleet_targets, query)
        workspace = self.rt.workspace()
        fleet = []
        for target in fleet_targets:
            inst = workspace.fleet.get(target.instance)
            if inst is None or target.instance not in series:
                continue
            fleet.append(InstanceData(
                instance=target.instance, customer=inst.customer,
                series=series[target.instance],
                updated_at=updated.get(target.instance) if target.instance in by_key else None,
                cohort=inst.tier))
        return evaluate_fleet(fleet, self.policy, now, exclude=excluded, prior=self.prior)

    def _metrics(self) -> tuple[str, ...]:
        names: set[str] = set()
        for check in self.policy.checks:
            for attr in ("metric", "numerator", "denominator", "load", "errors", "total"):
                value = getattr(check, attr, None)
                if isinstance(value, str):
                    names.add(value)
            for value in getattr(check, "metrics", ()) or ():
                if isinstance(value, str):
                    names.add(value)
        return tuple(sorted(names))

    def _act(self, verdict: FleetVerdict, rows: list[repo.TargetRecord], now: float) -> None:
        if verdict.settled:
            settled = set(verdict.settled)
            self.prior = [RolledBack(r.instance, r.customer, r.regressed, r.updated_at,
                                     r.settled or r.instance in settled) for r in self.prior]
        if verdict.action is Action.ROLLBACK_INSTANCES:
            done = self._roll_back(verdict, rows)
            self.prior.extend(r for r in verdict.rolled_back(now) if r.instance in done)
        elif verdict.action is Action.ROLLBACK_RELEASE:
            self._request(ControlAction.ROLLBACK, verdict)
        elif verdict.action is Action.PAUSE:
            self._request(ControlAction.PAUSE, verdict)
        if verdict.action is not Action.PAUSE:
            self._requested.discard(ControlAction.PAUSE.value)  # a later incident pauses again
        self._record(verdict, now)

    def _roll_back(self, verdict: FleetVerdict, rows: list[repo.TargetRecord]) -> set[str]:
        from rollwave.orchestration.wave import target_context

        states = {r.instance: r for r in rows}
        chosen = []
        with self.rt.db.begin() as conn:
            for name in verdict.rollback:
                row = states.get(name)
                if row is None or row.state not in (TargetState.SUCCEEDED, TargetState.HELD):
                    continue  # still deploying or verifying: the next interval sees it
                if repo.transition_target(
                        conn, self.rollout_id, name, row.state, TargetState.ROLLING_BACK,
                        f"{name}: fleet verification blames "
                        f"{verdict.blame.value}: {verdict.explanation}; rolling it back",
                        kind="instance.verification_failed", explanation=verdict.explanation,
                        outcome="failed"):
                    chosen.append(name)
        if not chosen:
            return set()
        with self.rt.db.read() as conn:
            rollout = repo.get_rollout(conn, self.rollout_id)
            fresh = [repo.get_target(conn, self.rollout_id, n) for n in chosen]
        assert rollout is not None
        ctx = target_context(self.rt, rollout)
        with ThreadPoolExecutor(max_workers=min(8, len(chosen))) as pool:
            list(pool.map(lambda t: drive_target(self.rt, ctx, t), [t for t in fresh if t]))
        return set(chosen)

    def _request(self, action: ControlAction, verdict: FleetVerdict) -> None:
        if action.value in self._requested:
            return
        self._requested.add(action.value)
        with self.rt.db.begin() as conn:
            repo.add_control(conn, self.rollout_id, action, ACTOR,
                             f"{verdict.blame.value}: {verdict.explanation}")

    def _record(self, verdict: FleetVerdict, now: float) -> None:
        signature = (verdict.action, verdict.blame, verdict.rollback, verdict.hold_waves,
                     verdict.settled)
        if signature == self._last_signature:
            return  # the same decision again: the previous event still says it
        self._last_signature = signature
        with self.rt.db.begin() as conn:
            append_event(
                conn, "verify.verdict",
                f"fleet verification: {verdict.action.value} (blame {verdict.blame.value}): "
                f"{verdict.explanation}",
                actor=ACTOR, rollout_id=self.rollout_id,
                data={"at": now, "verdict": verdict.to_dict(), "rolled_back": [
                    {"instance": r.instance, "customer": r.customer,
                     "regressed": dict(r.regressed), "updated_at": r.updated_at,
                     "settled": r.settled} for r in self.prior]})


class FleetWatch:
    """The per-process collector and the monitors of active rollouts."""

    def __init__(self, rt: Runtime, *, step: float = 5.0,
                 policy_factory: PolicyFactory = default_policy_factory,
                 sources: Mapping[str, SeriesSource] | None = None) -> None:
        from rollwave.adapters.metrics.scrape_collector import ScrapeCollector

        self.rt = rt
        self.policy_factory = policy_factory
        self.collector = ScrapeCollector(step=step)
        self.sources: dict[str, SeriesSource] = {"scrape": self.collector, **(sources or {})}
        self.monitors: dict[str, RolloutMonitor] = {}
        self._lock = threading.Lock()
        self._refreshed = 0.0

    def targets(self) -> list[MetricTarget]:
        """Every instance with an endpoint (its first service's), as metric targets."""
        workspace = self.rt.workspace()
        out = []
        for inst in workspace.fleet:
            deployer = self.rt.deployer(inst.deployer)
            for service in inst.services:
                url = deployer.endpoint(inst, service) or inst.url
                if url:
                    labels = dict(inst.facts.attributes)
                    out.append(MetricTarget(inst.key, service, url, labels))
                    break
        return out

    def refresh(self, *, every: float = 2.0) -> None:
        """Track the current fleet; start monitors for active rollouts with fleet analysis."""
        if time.monotonic() - self._refreshed < every:
            return
        self._refreshed = time.monotonic()
        step = self._scrape_step()
        if step is not None:
            # keep every instance's history, so instances have a baseline before they update
            self.collector.step = step
            targets = self.targets()
            self.collector.track(targets)
            if targets:
                self.collector.start()
        with self.rt.db.read() as conn:
            active = repo.find_rollouts(conn, states=[s for s in RolloutState if s.active])
        for rollout in active:
            self.ensure(rollout.id)

    def _scrape_step(self) -> float | None:
        """The finest step of the profiles that analyse the fleet from the embedded scrape."""
        steps = []
        for profile in self.rt.workspace().project.verification.values():
            fleet = getattr(profile, "fleet", None)
            if fleet is not None and (getattr(fleet, "source", None) or "scrape") == "scrape":
                steps.append(min(float(fleet.step), float(fleet.interval)))
        return min(steps) if steps else None

    def ensure(self, rollout_id: str) -> RolloutMonitor | None:
        """The running monitor of a rollout (started if needed); None without fleet analysis."""
        with self._lock:
            monitor = self.monitors.get(rollout_id)
            if monitor is not None and monitor.alive:
                return monitor
            with self.rt.db.read() as conn:
                rollout = repo.get_rollout(conn, rollout_id)
            if rollout is None or rollout.state.terminal:
                return None
            from rollwave.orchestration.wave import verification_profile

            profile = verification_profile(self.rt, rollout.policy)
            policy = self.policy_factory(profile)
            if policy is None:
                return None
            fleet = getattr(profile, "fleet", None)
            source_name = getattr(fleet, "source", None) or "scrape"
            source = self._source(source_name)
            step = float(getattr(fleet, "step", None) or policy.interval)
            step = min(step, policy.interval)
            monitor = RolloutMonitor(self.rt, rollout_id, policy, source, self.targets,
                                     step=step)
            monitor.start()
            self.monitors[rollout_id] = monitor
            return monitor

    def _source(self, name: str) -> SeriesSource:
        """A named series source: the embedded collector, or one from metric_sources."""
        if name in self.sources:
            return self.sources[name]
        from rollwave.orchestration.secrets import workspace_secret_resolver
        from rollwave.verification.policy import build_series_sources

        project = self.rt.workspace().project
        resolve = workspace_secret_resolver(self.rt.app)

        def secret(reference: str) -> str:
            values, _ = resolve({"value": {"$secret": reference}})
            return str(values["value"])

        self.sources.update({k: v for k, v in build_series_sources(project, secret).items()
                             if k not in self.sources})
        return self.sources.get(name, self.collector)

    def stop(self) -> None:
        self.collector.stop()
        for monitor in self.monitors.values():
            monitor.stop()


_watches: dict[int, FleetWatch] = {}


def watch_for(rt: Runtime) -> FleetWatch:
    """The process's FleetWatch for this runtime (created on first use)."""
    key = id(rt)
    if key not in _watches:
        _watches[key] = FleetWatch(rt, step=rt.fleet_step, policy_factory=rt.fleet_policy)
    return _watches[key]


def tick_hook(rt: Runtime) -> None:
    """Worker tick: keep the fleet tracked and every active rollout's monitor running."""
    watch_for(rt).refresh()


def release_watch(rt: Runtime) -> None:
    watch = _watches.pop(id(rt), None)
    if watch is not None:
        watch.stop()

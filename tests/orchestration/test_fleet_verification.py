"""Fleet-level verification inside real rollouts (in-process worker, memory deployer).

A synthetic SeriesSource serves every instance's request and error counts; the scenario decides
who regresses: the updated instances of one customer (customer-specific), the updated instances
of everyone (the release), or every instance updated or not (infrastructure), or the source is
down. The engine's verdicts must drive the rollout: roll back exactly one instance and go on;
roll the release back everywhere; pause without rolling back; hold without promoting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tests.orchestration.helpers import Orchestrator, ScriptedVerifier, make_workspace, wait_for

from rollwave.analysis.canary import RatioCheck
from rollwave.analysis.engine import VerificationPolicy
from rollwave.analysis.series import Series
from rollwave.core.states import RolloutState, TargetState
from rollwave.ports.metrics import MetricTarget
from rollwave.ports.series import SeriesByInstance, SeriesQuery
from rollwave.services import releases, rollouts
from rollwave.services.context import App
from rollwave.storage import rollouts as repo
from rollwave.storage.events import list_events

POLICY = VerificationPolicy(checks=(RatioCheck("errors", numerator="errors",
                                               denominator="requests"),),
                            interval=0.5, bake=2.0, baseline=6.0)

Scenario = Callable[[str, bool, float], float]
"""(instance, updated, t) -> error ratio at time t."""


class SyntheticSource:
    """Requests and errors per interval for every instance; updated means 'runs the rollout's
    new version since started_at' (read from the database, as the monitor does)."""

    def __init__(self, app: App, scenario: Scenario, *, down: bool = False) -> None:
        self.app = app
        self.scenario = scenario
        self.down = down
        self.rollout_id: str | None = None

    def _updated(self) -> dict[str, float]:
        if self.rollout_id is None:
            return {}
        with self.app.db().read() as conn:
            rows = repo.targets(conn, self.rollout_id)
        return {r.instance: r.started_at.timestamp() for r in rows
                if r.started_at is not None and r.state in (
                    TargetState.DEPLOYING, TargetState.VERIFYING, TargetState.SUCCEEDED,
                    TargetState.HELD)}

    def fetch(self, targets: Sequence[MetricTarget], query: SeriesQuery) -> SeriesByInstance:
        n = max(1, math.ceil((query.end - query.start) / query.step - 1e-9))
        times = query.start + np.arange(n) * query.step
        updated = self._updated()
        out: SeriesByInstance = {}
        for target in targets:
            requests, errors = [], []
            for t in times:
                since = updated.get(target.instance)
                ratio = self.scenario(target.instance, since is not None and t >= since, t)
                requests.append(1000.0)
                errors.append(round(1000.0 * ratio))
            fail = [True] * n if self.down else None
            out[target.instance] = {
                "requests": Series.of(requests, start=query.start, step=query.step, errors=fail),
                "errors": Series.of(errors, start=query.start, step=query.step, errors=fail),
            }
        return out

    def problems(self, metrics: Sequence[str]) -> list[str]:
        return []


def _fleet_targets(app: App) -> Callable[[], list[MetricTarget]]:
    def targets() -> list[MetricTarget]:
        return [MetricTarget(inst.key, "web", f"http://{inst.key}", dict(inst.facts.attributes))
                for inst in app.workspace().fleet]
    return targets


def _run(tmp_path: Path, scenario: Scenario, *, down: bool = False,
         expect: Callable[[rollouts.RolloutStatus], bool], what: str) -> rollouts.RolloutStatus:
    policies = {"standard": {"waves": [
        {"name": "canary", "select": {"customers": ["c00", "c01"]}, "parallelism": 2},
        {"name": "rest", "select": "rest", "parallelism": 4}]}}
    root = make_workspace(tmp_path / "ws", customers=8, policies=policies)
    app = App.open(root)
    source = SyntheticSource(app, scenario, down=down)
    orchestrator = Orchestrator(app, ScriptedVerifier(), fleet_policy=lambda _: POLICY)
    from rollwave.orchestration.monitor import watch_for

    watch = watch_for(orchestrator.rt)
    watch.sources["scrape"] = source
    watch.targets = _fleet_targets(app)  # type: ignore[method-assign]
    rollout = rollouts.start(app, releases.create_release(app, {"web": "2.0"}).id)
    source.rollout_id = rollout.id
    with orchestrator:
        wait_for(lambda: expect(rollouts.status(app, rollout.id)), timeout=60, what=what,
                 describe=lambda: rollouts.status(app, rollout.id).rollout.to_dict())  # noqa: PLW0108
        view = rollouts.status(app, rollout.id, event_limit=500)
    return view


def _verdicts(app_root: Path, rollout_id: str) -> list[dict[str, object]]:
    app = App.open(app_root)
    with app.db().read() as conn:
        return [e.data for e in list_events(conn, rollout_id=rollout_id,
                                            kinds=["verify.verdict"])]


def test_customer_specific_regression_rolls_back_only_that_instance(tmp_path: Path) -> None:
    def scenario(instance: str, updated: bool, t: float) -> float:
        return 0.3 if updated and instance == "c04/prod" else 0.002

    view = _run(tmp_path, scenario, expect=lambda v: v.rollout.state.terminal,
                what="the rollout to finish")
    assert view.rollout.state == RolloutState.SUCCEEDED, view.rollout.summary
    states = {t.instance: t.state for t in view.targets}
    assert states["c04/prod"] == TargetState.ROLLED_BACK
    assert all(s == TargetState.SUCCEEDED for k, s in states.items() if k != "c04/prod")
    verdicts = _verdicts(tmp_path / "ws", view.rollout.id)
    blames = {v["verdict"]["blame"] for v in verdicts}  # type: ignore[index]
    assert "customer" in blames


def test_global_regression_rolls_the_release_back(tmp_path: Path) -> None:
    def scenario(instance: str, updated: bool, t: float) -> float:
        return 0.3 if updated else 0.002

    view = _run(tmp_path, scenario, expect=lambda v: v.rollout.state.terminal,
                what="the rollout to end")
    assert view.rollout.state == RolloutState.ROLLED_BACK, view.rollout.summary
    assert all(t.state in (TargetState.ROLLED_BACK, TargetState.SKIPPED) for t in view.targets)
    assert any(e.kind == "control.rollback" and e.actor == "rollwave-verify"
               for e in view.events)


def test_infrastructure_incident_pauses_without_rollback(tmp_path: Path) -> None:
    start = time.time()

    def scenario(instance: str, updated: bool, t: float) -> float:
        return 0.3 if t > start + 1.0 else 0.002  # everyone, updated or not

    view = _run(tmp_path, scenario,
                expect=lambda v: v.rollout.state == RolloutState.PAUSED, what="a pause")
    assert not any(t.state in (TargetState.ROLLED_BACK, TargetState.ROLLING_BACK)
                   for t in view.targets)
    assert any(e.kind == "control.pause" and e.actor == "rollwave-verify" for e in view.events)


def test_metrics_source_outage_neither_promotes_nor_rolls_back(tmp_path: Path) -> None:
    def scenario(instance: str, updated: bool, t: float) -> float:
        return 0.002

    view = _run(tmp_path, scenario, down=True,
                expect=lambda v: "fleet verification: hold" in v.rollout.waiting_for,
                what="a hold")
    assert view.rollout.state == RolloutState.WAITING
    assert view.rollout.current_wave == 0  # the next wave did not start
    assert not any(t.state == TargetState.ROLLED_BACK for t in view.targets)

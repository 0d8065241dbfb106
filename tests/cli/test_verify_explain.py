"""`rollwave verify explain`: fleet decisions recorded as events, printed with their evidence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rollwave.analysis import (
    GaugeCheck,
    InstanceData,
    RatioCheck,
    Series,
    VerificationPolicy,
    evaluate_fleet,
)
from rollwave.services import releases, rollouts
from rollwave.services.context import App
from rollwave.storage.events import append_event
from rollwave.workspace.scaffold import init_workspace

from .support import assert_no_traceback, run

Capsys = pytest.CaptureFixture[str]

U = 1_800_000_000.0  # the update
POLICY = VerificationPolicy(
    checks=(RatioCheck("error-ratio", "errors", "requests"),
            GaugeCheck("p95-latency", "latency_p95", load="requests")),
    interval=300, bake=1800, baseline=3600)
CUSTOMERS = ("acme", "globex", "hooli", "initech", "umbrella")


def fleet(bad: set[str], *, seed: int = 7) -> list[InstanceData]:
    """Five customers updated at U; those in ``bad`` fail 8 % of requests afterwards."""
    rng = np.random.default_rng(seed)
    start, n = U - 3600, 90  # one point per minute, an hour before and half an hour after
    out = []
    for customer in CUSTOMERS:
        after = np.arange(n) * 60 + start >= U
        requests = rng.poisson(600, n).astype(float)
        rate = np.where(after & (customer in bad), 0.08, 0.004)
        errors = rng.binomial(requests.astype(int), rate).astype(float)
        latency = rng.lognormal(np.log(20), 0.1, n)
        out.append(InstanceData(
            f"{customer}/prod", customer, updated_at=U,
            series={"requests": Series.of(requests, start=start, step=60),
                    "errors": Series.of(errors, start=start, step=60),
                    "latency_p95": Series.of(latency, start=start, step=60)}))
    return out


@pytest.fixture
def started(tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "fleet"
    init_workspace(root)
    app = App.open(root)
    try:
        release = releases.create_release(app, {"web": "1.1"})
        rollout = rollouts.start(app, release.id)
    finally:
        app.close()
    return root, rollout.id


def record(root: Path, rollout_id: str, at: float, verdict: dict[str, Any]) -> None:
    app = App.open(root)
    try:
        with app.db().begin() as conn:
            append_event(conn, "verify.verdict", f"fleet verification: {verdict['action']}",
                         actor="rollwave-verify", rollout_id=rollout_id,
                         data={"at": at, "verdict": verdict, "rolled_back": []})
            append_event(conn, "rollout.note", "not a verdict", rollout_id=rollout_id)
    finally:
        app.close()


def test_explains_each_decision_with_its_evidence(capsys: Capsys,
                                                  started: tuple[Path, str]) -> None:
    root, rollout_id = started
    now = U + 900
    customer = evaluate_fleet(fleet({"hooli"}), POLICY, now)
    assert customer.action.value == "rollback-instances"
    release = evaluate_fleet(fleet({"acme", "globex", "umbrella"}), POLICY, now)
    assert release.action.value == "rollback-release"
    record(root, rollout_id, now, customer.to_dict())
    record(root, rollout_id, now + 300, release.to_dict())

    result = run(capsys, "-w", str(root), "verify", "explain", rollout_id[:8])
    assert result.code == 0, result.text
    out = " ".join(result.out.split())
    assert f"Rollout {rollout_id} of release" in out
    assert "2 fleet verification decisions:" in out
    assert "1. 2027-01-15 08:15:00 UTC" in out
    assert "rollback-instances · blame customer" in out
    assert "roll back: hooli/prod" in out
    assert "flag for review: hooli" in out
    assert "✗ hooli/prod hooli, updated: failed" in out
    assert "✗ error-ratio: " in out
    assert "since the update against" in out  # the numbers: after against before
    assert "peers" in out
    assert "✓ healthy: " in out  # the other four, in brief
    assert "2. 2027-01-15 08:20:00 UTC" in out
    assert "rollback-release · blame release" in out
    assert out.index("rollback-instances") < out.index("rollback-release")
    assert "not a verdict" not in out

    everything = run(capsys, "-w", str(root), "verify", "explain", rollout_id, "--all")
    assert " ".join(everything.out.split()).count("✓ p95-latency") >= 4

    one = run(capsys, "-w", str(root), "verify", "explain", rollout_id, "-i", "acme/prod")
    flat = " ".join(one.out.split())
    assert "acme/prod acme, updated" in flat
    assert "globex/prod globex" not in flat


def test_json_for_scripts(capsys: Capsys, started: tuple[Path, str]) -> None:
    root, rollout_id = started
    verdict = evaluate_fleet(fleet({"hooli"}), POLICY, U + 900)
    record(root, rollout_id, U + 900, verdict.to_dict())
    result = run(capsys, "-w", str(root), "verify", "explain", "latest", "--json",
                 "--instance", "hooli/prod")
    assert result.code == 0, result.text
    body = json.loads(result.out)
    assert body["rollout"] == rollout_id
    assert body["state"]
    (decision,) = body["decisions"]
    assert decision["at"] == U + 900
    assert decision["action"] == "rollback-instances"
    assert decision["blame"] == "customer"
    assert decision["verdict"]["rollback"] == ["hooli/prod"]
    assert list(decision["verdict"]["instances"]) == ["hooli/prod"]
    checks = decision["verdict"]["instances"]["hooli/prod"]["checks"]
    assert {c["name"]: c["outcome"] for c in checks}["error-ratio"] == "failed"


def test_no_decisions_yet_and_unknown_rollouts(capsys: Capsys,
                                               started: tuple[Path, str]) -> None:
    root, rollout_id = started
    empty = run(capsys, "-w", str(root), "verify", "explain", rollout_id)
    assert empty.code == 0
    assert "No fleet verification decisions recorded for this rollout yet" in " ".join(
        empty.out.split())
    assert json.loads(run(capsys, "-w", str(root), "verify", "explain", rollout_id,
                          "--json").out)["decisions"] == []
    missing = run(capsys, "-w", str(root), "verify", "explain", "nope")
    assert missing.code == 1
    assert_no_traceback(missing)
    assert "no rollout 'nope'" in missing.flat_err


def test_hostile_text_is_printed_not_interpreted(capsys: Capsys,
                                                 started: tuple[Path, str]) -> None:
    root, rollout_id = started
    verdict = evaluate_fleet(fleet(set()), POLICY, U + 900).to_dict()
    verdict["explanation"] = "[bold red]boom[/] [link=x]y[/link]"
    record(root, rollout_id, U + 900, verdict)
    result = run(capsys, "-w", str(root), "verify", "explain", rollout_id)
    assert result.code == 0, result.text
    assert "[bold red]boom[/] [link=x]y[/link]" in result.out

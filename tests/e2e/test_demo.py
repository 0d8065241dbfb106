"""The demo scenario end to end: real processes, real metrics, real rollback."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from rollwave.core.states import RolloutState, TargetState
from rollwave.demo.runner import run_demo
from rollwave.demo.scenario import BROKEN_CUSTOMER

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _demo_processes(root: Path) -> list[str]:
    found = subprocess.run(["pgrep", "-af", "rollwave.demo_service"], capture_output=True,
                           text=True, check=False).stdout.splitlines()
    return [line for line in found if str(root) in line]


@pytest.mark.parametrize("scenario", ["release", "infrastructure"])
def test_demo_blames_the_release_or_the_infrastructure(tmp_path: Path, scenario: str) -> None:
    buffer = io.StringIO()
    root = tmp_path / "demo"
    result = run_demo(Console(file=buffer, width=120), directory=root, scenario=scenario)
    output = buffer.getvalue()
    assert result.ok, output
    final = result.rollouts["1.1"]
    actions = {(v["action"], v["blame"]) for v in result.verdicts}
    if scenario == "release":  # a staged global regression halts and rolls back the release
        assert final.rollout.state == RolloutState.ROLLED_BACK
        assert ("rollback-release", "release") in actions
    else:  # an infrastructure incident pauses without rollback
        assert ("pause", "infrastructure") in actions
        assert not any(t.state == TargetState.ROLLED_BACK for t in final.targets)
        assert final.rollout.state == RolloutState.SUCCEEDED
    assert result.total_seconds < 120
    assert not _demo_processes(root), "the demo left instances running"


def test_demo_rolls_back_only_the_mishandled_customer(tmp_path: Path) -> None:
    buffer = io.StringIO()
    root = tmp_path / "demo"
    result = run_demo(Console(file=buffer, width=120), directory=root)
    output = buffer.getvalue()
    assert result.ok, output
    final = result.rollouts["1.1"]
    assert final.rollout.state == RolloutState.SUCCEEDED
    broken = next(t for t in final.targets if t.instance == f"{BROKEN_CUSTOMER}/prod")
    assert broken.state == TargetState.ROLLED_BACK
    assert "customer umbrella" in broken.explanation  # blamed on the customer, with numbers
    # blamed on the customer at once (its peers had already cleared the release), or rolled
    # back at once with the blame pending and settled on the customer once they did
    verdicts = [(v["action"], v["blame"], v.get("settled") or []) for v in result.verdicts]
    assert any((action, blame) == ("rollback-instances", "customer")
               or f"{BROKEN_CUSTOMER}/prod" in settled
               for action, blame, settled in verdicts), verdicts
    assert sum(t.state == TargetState.SUCCEEDED for t in final.targets) == 11
    assert result.total_seconds < 120
    assert "Demo finished" in output
    assert not _demo_processes(root), "the demo left instances running"

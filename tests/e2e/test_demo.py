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
    assert "error ratio" in broken.explanation  # the decision is explained with its numbers
    assert sum(t.state == TargetState.SUCCEEDED for t in final.targets) == 11
    assert result.total_seconds < 120
    assert "Demo finished" in output
    assert not _demo_processes(root), "the demo left instances running"

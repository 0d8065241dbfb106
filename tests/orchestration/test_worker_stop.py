"""A worker that stops leaves its workflows at once, unrecorded, and the next worker resumes them.

Without this, a paused rollout's workflow thread sleeps durably for up to an hour and keeps the
stopping process alive (``rollwave worker`` after Ctrl-C, a test run at exit).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from tests.orchestration.helpers import Orchestrator, ScriptedVerifier, make_workspace, wait_for

from rollwave.core.states import ControlAction, RolloutState
from rollwave.services import releases, rollouts
from rollwave.services.context import App

POLICIES = {"standard": {"waves": [{"name": "all", "select": "rest", "parallelism": 2,
                                    "gates": [{"kind": "approval"}]}]}}


def _state(app: App, rollout_id: str) -> RolloutState:
    return rollouts.status(app, rollout_id).rollout.state


def _stacks() -> str:
    """Where the workflow threads are (for a failure message)."""
    import sys
    import traceback

    frames = sys._current_frames()
    return "\n".join(f"{t.name}:\n{''.join(traceback.format_stack(frames[t.ident]))}"
                     for t in _workflow_threads() if t.ident in frames)


def _workflow_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dbos-executor")]


def _close_inside_an_event_loop(orchestrator: Orchestrator) -> None:
    """As `rollwave serve` does: uvicorn's shutdown closes the worker on the loop's thread."""
    async def close() -> None:
        orchestrator.__exit__(None, None, None)

    # a thread of its own: the test process's main thread may have a loop left by another test
    closer = threading.Thread(target=asyncio.run, args=(close(),))
    closer.start()
    closer.join(60)


@pytest.mark.parametrize("where", ["plain", "event-loop"])
def test_paused_workflow_leaves_when_the_worker_stops_and_resumes_in_the_next(
        tmp_path: Path, where: str) -> None:
    root = make_workspace(tmp_path / "ws", customers=3, policies=POLICIES)
    app = App.open(root)
    rollout = rollouts.start(app, releases.create_release(app, {"web": "1.0"}).id)
    # real waits: a paused workflow sleeps durably for an hour between wake-ups
    first = Orchestrator(app, ScriptedVerifier(), max_wait=3600.0)
    first.__enter__()
    try:
        wait_for(lambda: _state(app, rollout.id) == RolloutState.WAITING, what="the gate")
        rollouts.control(app, rollout.id, ControlAction.PAUSE, reason="stop for the night")
        wait_for(lambda: _state(app, rollout.id) == RolloutState.PAUSED, what="pause")
        assert first.rt.active_workflows == {rollout.id}
    finally:
        started = time.monotonic()
        if where == "event-loop":
            _close_inside_an_event_loop(first)
        else:
            first.__exit__(None, None, None)
    stopped_in = time.monotonic() - started
    assert stopped_in < 10, f"closing the worker took {stopped_in:.1f}s; {_stacks()}"
    assert first.rt.active_workflows == set()
    wait_for(lambda: not any(t.is_alive() for t in _workflow_threads()), timeout=10,
             what="the workflow thread to end", describe=_stacks)
    # nothing was recorded as an outcome: the rollout is still paused, not failed
    assert _state(app, rollout.id) == RolloutState.PAUSED

    with Orchestrator(app, ScriptedVerifier()):
        rollouts.control(app, rollout.id, ControlAction.RESUME, reason="morning")
        wait_for(lambda: _state(app, rollout.id) == RolloutState.WAITING, what="the gate again")
        rollouts.control(app, rollout.id, ControlAction.APPROVE, reason="go")
        wait_for(lambda: _state(app, rollout.id) == RolloutState.SUCCEEDED, what="done",
                 describe=lambda: rollouts.status(app, rollout.id).rollout)

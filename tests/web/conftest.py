"""A small fleet with finished, rolled-back and waiting rollouts, users of every role, a
customer with a hostile name and a hostile note: what the dashboard tests read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rollwave.analysis.results import Outcome
from rollwave.api.app import create_app
from rollwave.core.states import ControlAction, RolloutState
from rollwave.services import notes, releases, rollouts
from rollwave.services.context import App
from tests.orchestration.helpers import Orchestrator, run_until_done, wait_for
from tests.web.support import ChartingVerifier, add_users, login, make_workspace

HOSTILE = "<script>alert('pwn')</script> & \"Co\""
HOSTILE_NOTE = "<img src=x onerror=alert(1)> call {{ 7*7 }} before deploying"


@dataclass
class Dash:
    root: Path
    app: App
    done: str  # succeeded rollout
    failed: str  # succeeded with one instance rolled back
    waiting: str  # waiting for approval of wave 2 (requested by dora)
    release: str


def _as(app: App, actor: str) -> App:
    return App(root=app.root, database_url=app.database_url, actor=actor,
               _workspace=app._workspace, _db=app._db)


@pytest.fixture(scope="session")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dash]:
    root = make_workspace(tmp_path_factory.mktemp("dash") / "ws", customers=6, hostile=HOSTILE)
    app = App.open(root, actor="dora")
    add_users(app)
    verifier = ChartingVerifier()
    first = releases.create_release(app, {"web": "1.0"}, notes="first <b>release</b>")
    done = rollouts.start(app, first.id)
    rollouts.control(_as(app, "ann"), done.id, ControlAction.APPROVE, wave=1)
    run_until_done(app, verifier)
    second = releases.create_release(app, {"web": "1.1"})
    failed = rollouts.start(app, second.id)
    rollouts.control(_as(app, "ann"), failed.id, ControlAction.APPROVE, wave=1)
    verifier.failing = {"c02/prod": Outcome.FAILED}
    verifier.bad_versions = {"1.1"}
    run_until_done(app, verifier)
    third = releases.create_release(app, {"web": "1.2"})
    waiting = rollouts.start(app, third.id)
    verifier.failing = {}
    with Orchestrator(app, verifier):
        wait_for(lambda: rollouts.status(app, waiting.id).rollout.state == RolloutState.WAITING,
                 what="the approval gate")
    notes.add_note(_as(app, "dora"), "c01", HOSTILE_NOTE)
    yield Dash(root=root, app=app, done=done.id, failed=failed.id, waiting=waiting.id,
               release=third.id)
    app.close()


@pytest.fixture
def web(dash: Dash) -> Iterator[TestClient]:
    """A client of a fresh app over the fixture's workspace (not logged in)."""
    ctx = App.open(dash.root, actor="web")
    with TestClient(create_app(ctx), base_url="http://testserver") as client:
        yield client
    ctx.close()


def client_as(web: TestClient, user: str) -> tuple[TestClient, str]:
    return web, login(web, user)

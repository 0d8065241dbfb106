"""The SDK against the real server app (``create_app``, as ``rollwave serve`` runs it) over the
database store: a change made by ``rollwave flags`` in another process arrives live."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext

from rollwave.flags.dbstore import store_for
from rollwave.flags.sync import sync_flags
from rollwave.sdk.client import RollwaveClient
from rollwave.sdk.openfeature import RollwaveProvider
from rollwave.services import access
from rollwave.services.context import App
from tests.flags.helpers import FLAG_YAML, ApiServer, eventually, make_workspace, postgres_url

GLOBEX = {"targetingKey": "u2", "customer": "globex"}


@pytest.fixture(params=["sqlite", "postgresql"])
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    root = make_workspace(tmp_path / "ws", flags={"new-checkout": FLAG_YAML})
    if request.param == "sqlite":
        app = App(root=root, database_url=f"sqlite:///{tmp_path / 'rw.db'}", actor="ci")
        yield app
    else:
        with postgres_url("rw_sdk") as url:
            app = App(root=root, database_url=url, actor="ci")
            yield app
            store_for(app).close()
            app.close()
            return
    store_for(app).close()
    app.close()


def _cli(app: App, *args: str) -> None:
    command = [sys.executable, "-m", "rollwave", "-w", str(app.root), "--database",
               str(app.database_url), "--as", "oncall", "flags", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_cli_change_in_another_process_reaches_the_sdk_live(ctx: App) -> None:
    sync_flags(store_for(ctx), ctx.root, actor="ci")
    access.create_user(ctx, "sdk", ["viewer"])
    token = access.create_token(ctx, "sdk", "app").secret
    with ApiServer(ctx) as server, RollwaveClient(server.url, environment="production",
                                                  token=token) as client:
        assert client.wait_until_ready(10)
        assert client.boolean("new-checkout", {"customer": "acme"}) is True
        assert client.boolean("new-checkout", GLOBEX) is False
        api.set_provider(RollwaveProvider(client=client), domain="live-test")
        openfeature = api.get_client("live-test")
        context = EvaluationContext("u2", {"customer": "globex"})
        assert openfeature.get_boolean_value("new-checkout", False, context) is False
        started = time.monotonic()
        _cli(ctx, "set", "new-checkout", "-e", "production", "-t", "customer=globex",
             "-r", "globex joins the beta")
        eventually(lambda: client.boolean("new-checkout", GLOBEX), 10, "the change")
        assert time.monotonic() - started < 10  # includes the CLI's own start-up
        assert openfeature.get_boolean_value("new-checkout", False, context) is True
        details = client.details("new-checkout", GLOBEX)
        assert details.rule_id == "target-customer"
        _cli(ctx, "kill", "new-checkout", "-e", "production")
        eventually(lambda: not client.boolean("new-checkout", {"customer": "acme"}), 10,
                   "the kill switch")
        api.clear_providers()


def test_rollwave_serve_with_two_http_workers_and_its_orchestrator(tmp_path: Path) -> None:
    """`rollwave serve --workers 2`: whichever HTTP worker holds the SDK's stream hears a write
    made elsewhere, and serve's own orchestrator carries out a flag rollout."""
    from tests.flags.helpers import free_port

    root = make_workspace(tmp_path / "ws", flags={"new-checkout": FLAG_YAML})
    database = f"sqlite:///{tmp_path / 'rw.db'}"
    app = App(root=root, database_url=database, actor="ci")
    sync_flags(store_for(app), root, actor="ci")
    access.create_user(app, "sdk", ["viewer"])
    token = access.create_token(app, "sdk", "app").secret
    port = free_port()
    log = (tmp_path / "serve.log").open("ab")
    server = subprocess.Popen([sys.executable, "-m", "rollwave", "-w", str(root), "serve",
                               "--database", database, "--port", str(port), "--workers", "2",
                               "--no-access-log", "--log-level", "warning"],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with RollwaveClient(f"http://127.0.0.1:{port}", environment="production",
                            token=token, backoff_max=0.5) as client:
            assert client.wait_until_ready(90)
            _cli(app, "set", "new-checkout", "-e", "production", "-t", "customer=globex")
            eventually(lambda: client.boolean("new-checkout", GLOBEX), 15, "the change")
            _cli(app, "rollout", "start", "new-checkout", "--steps", "30,100", "-e",
                 "production")
            eventually(lambda: client.boolean("new-checkout", {"targetingKey": "anyone",
                                                               "customer": "initech"}), 60,
                       "serve's orchestrator to finish the rollout")
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        store_for(app).close()
        app.close()

"""Issue 4's "done means", end to end, with real processes:

define a flag in YAML (and change it via the CLI), target it at a customer and a percentage,
evaluate it from Python (native SDK and OpenFeature) and over OFREP, watch a change arrive
live, roll it out in guarded steps and see an automatic revert — with a notification — when a
guard fails.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext

from rollwave.flags.dbstore import store_for
from rollwave.flags.rollouts import RolloutState, list_rollouts
from rollwave.sdk.client import RollwaveClient
from rollwave.sdk.openfeature import RollwaveProvider
from rollwave.services import access
from rollwave.services.context import App
from tests.flags.helpers import (
    ApiServer,
    MetricsServer,
    WebhookReceiver,
    eventually,
    make_workspace,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FLAG = """\
description: New checkout flow
owner: payments
environments:
  production:
    enabled: true
rules:
  - id: acme-beta
    when: [{attribute: customer, op: in, values: [acme]}]
    serve: on
fallthrough: off
rollout_plan:
  variant: on
  environment: production
  guards:
    error-rate:
      profile: errors              # the verification profile of rollwave.yaml
      instances: tier == enterprise
  steps:
    - {percentage: 10, guards: [error-rate]}
    - {percentage: 50, guards: [error-rate]}
    - {percentage: 100, after: 1h, guards: [error-rate]}
"""

USERS = [f"user-{i}" for i in range(1000)]


def _share(client: RollwaveClient) -> float:
    return sum(client.boolean("new-checkout", {"targetingKey": u, "customer": "initech"})
               for u in USERS) / len(USERS)


def test_define_target_evaluate_watch_roll_out_and_revert(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLWAVE_TEST_SIGNING", "k")
    with MetricsServer() as metrics, WebhookReceiver() as hook:
        root = make_workspace(tmp_path / "ws", metrics_url=metrics.url, webhook=hook.url,
                              flags={"new-checkout": FLAG})
        database = f"sqlite:///{tmp_path / 'rw.db'}"
        app = App(root=root, database_url=database, actor="test")

        def cli(*args: str) -> str:
            command = [sys.executable, "-m", "rollwave", "-w", str(root), "--database",
                       database, "--as", "pm", *args]
            done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                                  check=False)
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout

        # 1. defined in YAML (reviewed in git), imported; then targeted via the CLI
        assert "workspace is valid" in cli("validate")
        assert "new — new in git" in cli("flags", "sync")
        cli("flags", "set", "new-checkout", "-e", "production", "-t", "customer=globex",
            "-p", "20", "-r", "globex joins; 20 % of everyone else")

        access.create_user(app, "web", ["viewer"])
        token = access.create_token(app, "web", "sdk").secret
        with ApiServer(app) as server, RollwaveClient(server.url, environment="production",
                                                      token=token) as client:
            assert client.wait_until_ready(10)
            # 2. evaluate from Python: native SDK …
            assert client.boolean("new-checkout", {"targetingKey": "u", "customer": "acme"})
            assert client.boolean("new-checkout", {"targetingKey": "u", "customer": "globex"})
            assert 0.15 < _share(client) < 0.25
            details = client.details("new-checkout", {"customer": "globex"})
            assert (details.variant, details.rule_id) == ("true", "target-customer")
            # … OpenFeature in-process …
            api.set_provider(RollwaveProvider(client=client), domain="native")
            native = api.get_client("native")
            acme = EvaluationContext("u-1", {"customer": "acme"})
            assert native.get_boolean_value("new-checkout", False, acme) is True
            # … and OFREP, as any OpenFeature SDK in any language would
            api.set_provider(OFREPProvider(
                server.url, headers_factory=lambda: {"Authorization": f"Bearer {token}",
                                                     "X-Rollwave-Environment": "production"}),
                domain="ofrep")
            remote = api.get_client("ofrep")
            result = remote.get_boolean_details("new-checkout", False, acme)
            assert (result.value, result.reason) == (True, "TARGETING_MATCH")
            assert result.flag_metadata["ruleId"] == "acme-beta"

            # 3. watch a change arrive live (made by the CLI, in another process)
            started = time.monotonic()
            cli("flags", "kill", "new-checkout", "-e", "production", "-r", "drill")
            eventually(lambda: not client.boolean("new-checkout", {"customer": "acme"}), 10)
            assert time.monotonic() - started < 15
            assert remote.get_boolean_value("new-checkout", True, acme) is False
            cli("flags", "kill", "new-checkout", "-e", "production", "--revive")
            eventually(lambda: client.boolean("new-checkout", {"customer": "acme"}), 10)

            # 4. roll out in guarded steps (the flag's rollout_plan), carried out by a worker
            cli("flags", "rollout", "start", "new-checkout", "-r", "PAY-12")
            log = (tmp_path / "worker.log").open("ab")
            worker = subprocess.Popen([sys.executable, "-m", "rollwave", "-w", str(root),
                                       "--database", database, "worker", "--quiet"],
                                      stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
            try:
                eventually(lambda: 0.45 < _share(client) < 0.55, 120,
                           "step 2 (50 %) to go live after step 1's guard passed")
                # 5. the service starts failing: the guard catches it and reverts
                metrics.error_ratio = 0.3
                eventually(lambda: 0.07 < _share(client) < 0.13, 120,
                           "the automatic revert to step 1 (10 %)")
                notice = eventually(hook.delivered, 60, "the webhook notification")[0]
            finally:
                worker.terminate()
                worker.wait(30)
            api.clear_providers()

        [rollout] = list_rollouts(app)
        assert rollout.state is RolloutState.REVERTED
        assert "error-rate on acme/prod" in rollout.summary
        assert "above the 5% limit" in rollout.summary
        assert "Reverted to step 1 of 3 (10 %)" in rollout.summary
        assert notice["event"] == "flag.rollout.reverted"
        assert notice["data"]["reverted_to_percentage"] == 10.0
        assert "error ratio" in notice["message"]
        audit = cli("flags", "audit", "new-checkout", "--limit", "50")
        for expected in ("globex joins", "drill", "guarded rollout", "automatic revert"):
            assert expected in audit
        assert "git (drifted)" in cli("flags", "list")
        store_for(app).close()
        app.close()

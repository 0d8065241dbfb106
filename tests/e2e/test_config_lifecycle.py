"""Customer config through its whole life on a real local fleet, driven from the CLI:
explain, a config-only release with a grouped diff in `plan`, an invalid-config refusal, an
exact config rollback after the workspace changed, and drift.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rollwave.core.states import RolloutState
from rollwave.demo.scenario import free_ports
from rollwave.services import rollouts
from rollwave.services.context import App
from rollwave.workspace.scaffold import CustomerSeed, customer_document, write_workspace
from rollwave.yamlio import dump_yaml

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _workspace(root: Path) -> Path:
    ports = free_ports(3)
    seeds = [CustomerSeed("acme", "Acme", tier="enterprise", port=ports[0],
                          config={"web": {"reports": {"max_rows": 500}}}),
             CustomerSeed("beta", "Beta", port=ports[1]),
             CustomerSeed("gamma", "Gamma", port=ports[2])]
    project = {
        "project": "cfg",
        "environments": {"production": {}},
        "services": {"web": {"deployer": "local"}},
        "deployers": {"local": {"kind": "local"}},
        "verification": {"default": {"duration": "0s", "health": {"path": "/health"}}},
        "policies": {"standard": {"drift": "refuse",
                                  "waves": [{"name": "all", "select": "rest",
                                             "parallelism": 3}]},
                     "skipper": {"drift": "skip",
                                 "waves": [{"name": "all", "select": "rest",
                                            "parallelism": 3}]}},
    }
    defaults = {"values": {"traffic": {"rps": 5}, "reports": {"max_rows": 1000},
                           "greeting": "hello {{ customer }}"}}
    schema = {"type": "object", "properties": {
        "reports": {"type": "object", "properties": {"max_rows": {"type": "integer",
                                                                   "maximum": 100000}}}}}
    write_workspace(root, project, [customer_document(s) for s in seeds], {
        "config/web/defaults.yaml": dump_yaml(defaults),
        "config/web/schema.json": json.dumps(schema),
    })
    return root


def _run(root: Path, *args: str) -> str:
    """The CLI as a user runs it: its own process (DBOS and logging are per process)."""
    result = subprocess.run([sys.executable, "-m", "rollwave", "-w", str(root), *args],
                            capture_output=True, text=True, timeout=300, check=False,
                            env={**os.environ, "COLUMNS": "200"})
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    return output + (f"\n[exit {result.returncode}]" if result.returncode else "")


def _config_file(root: Path, customer: str) -> dict[str, object]:
    path = root / ".rollwave" / "instances" / customer / "prod" / "web" / "config.json"
    return json.loads(path.read_text())


def _stop(root: Path) -> None:
    _run(root, "demo", "--stop", "--dir", str(root))


def test_config_lifecycle_from_the_cli(tmp_path: Path) -> None:
    root = _workspace(tmp_path / "ws")
    try:
        _lifecycle(root)
    finally:
        _stop(root)


def _lifecycle(root: Path) -> None:
    out = _run(root, "config", "explain", "acme", "web", "reports.max_rows")
    assert "customers/acme.yaml" in out
    assert "config/web/defaults.yaml" in out

    _run(root, "release", "create", "-v", "web=1.0", "--name", "r1")
    out = _run(root, "deploy", "r1")
    assert "[exit" not in out, out
    first = _config_file(root, "acme")
    assert first["reports"] == {"max_rows": 500}
    assert first["greeting"] == "hello acme"

    # a config-only change: everyone gets a new default, acme keeps its override
    defaults = root / "config" / "web" / "defaults.yaml"
    defaults.write_text(defaults.read_text().replace("max_rows: 1000", "max_rows: 2000"))
    out = _run(root, "release", "create", "--config-only", "--name", "r2")
    assert "[exit" not in out, out
    plan = _run(root, "plan", "r2")
    assert "config only" in plan
    assert "2 instances" in plan  # beta and gamma share one change, read as one group
    assert "max_rows" in plan
    _run(root, "deploy", "r2")
    assert _config_file(root, "beta")["reports"] == {"max_rows": 2000}
    assert _config_file(root, "acme")["reports"] == {"max_rows": 500}

    # an invalid config is refused with every offending instance and path
    defaults.write_text(defaults.read_text().replace("max_rows: 2000", "max_rows: many"))
    refused = _run(root, "release", "create", "--config-only", "--name", "r3")
    assert "[exit 1]" in refused
    assert "beta/prod" in refused
    assert "gamma/prod" in refused
    assert "reports.max_rows" in refused

    # rollback of r2 restores r1's config exactly, although the workspace moved on since
    app = App.open(root)
    r2 = next(r for r in rollouts.history(app) if r.release_id == "r2")
    _run(root, "rollback", r2.id, "--reason", "customer asked")
    back = next(r for r in rollouts.history(app) if r.kind == "rollback")
    assert rollouts.status(app, back.id).rollout.state == RolloutState.SUCCEEDED
    assert _config_file(root, "beta") == {**_config_file(root, "beta"),
                                          "reports": {"max_rows": 1000}}
    assert _config_file(root, "acme") == first

    # drift: an instance stopped behind Rollwave's back
    pid = json.loads((root / ".rollwave" / "instances" / "gamma" / "prod" / "web" /
                      "state.json").read_text())["pid"]
    os.kill(pid, signal.SIGTERM)
    import time

    time.sleep(1.0)
    out = _run(root, "drift")
    assert "gamma/prod" in out
    assert "[exit 1]" in out
    defaults.write_text(defaults.read_text().replace("max_rows: many", "max_rows: 3000"))
    _run(root, "release", "create", "--config-only", "--name", "r4")
    refused = _run(root, "deploy", "r4")
    assert "drifted" in refused
    assert "[exit 1]" in refused
    out = _run(root, "deploy", "r4", "--policy", "skipper")
    r4 = next(r for r in rollouts.history(app) if r.release_id == "r4")
    assert "gamma/prod" not in {t.instance for t in rollouts.status(app, r4.id).targets}
    assert _config_file(root, "beta")["reports"] == {"max_rows": 3000}
    app.close()

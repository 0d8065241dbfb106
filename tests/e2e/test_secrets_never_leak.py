"""A secret reaches the instance's config file and nowhere else: not the database (snapshots,
events, deploy logs), not the plan's config diff, not the CLI output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from rollwave.services.context import App
from rollwave.workspace.scaffold import CustomerSeed, customer_document, write_workspace
from rollwave.yamlio import dump_yaml

pytestmark = [pytest.mark.e2e]

SECRET_1 = "s3cr3t-Password-ONE-4711"
SECRET_2 = "s3cr3t-Password-TWO-0815"


def _run(root: Path, env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "rollwave", "-w", str(root), *args],
                            capture_output=True, text=True, timeout=300, check=False,
                            env={**os.environ, **env, "COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_secrets_stay_references_everywhere_but_the_instance(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    deploy = (f"cat {{config_file}}; mkdir -p {fleet}/{{customer}}; "
              f"cp {{config_file}} {fleet}/{{key}}.json; "
              f"echo {{version}} {{config_hash}} > {fleet}/{{key}}.state")
    project = {
        "project": "secrets",
        "environments": {"production": {}},
        "services": {"web": {"deployer": "shell"}},
        "deployers": {"shell": {"kind": "command", "deploy": deploy,
                                "status": f"cat {fleet}/{{key}}.state 2>/dev/null || true"}},
        "verification": {"default": {"health": None}},
        "policies": {"standard": {"waves": [{"name": "all", "select": "rest"}]}},
    }
    defaults = {"values": {"db": {"user": "app", "password": {"$secret": "env:DB_PASSWORD"}}}}
    write_workspace(root, project, [customer_document(CustomerSeed("acme", "Acme"))],
                    {"config/web/defaults.yaml": dump_yaml(defaults)})

    seen = _run(root, {"DB_PASSWORD": SECRET_1}, "release", "create", "-v", "web=1.0",
                "--name", "r1")
    seen += _run(root, {"DB_PASSWORD": SECRET_1}, "deploy", "r1")
    written = json.loads((fleet / "acme" / "prod.json").read_text())
    assert written["db"]["password"] == SECRET_1  # the instance gets the value

    # rotate the secret behind a new reference and ship again
    (root / "config/web/defaults.yaml").write_text(dump_yaml({"values": {"db": {
        "user": "app", "password": {"$secret": "env:DB_PASSWORD_V2"}}}}))
    seen += _run(root, {"DB_PASSWORD_V2": SECRET_2}, "release", "create", "--config-only",
                 "--name", "r2")
    plan = _run(root, {}, "plan", "r2")
    assert "db.password" in plan
    seen += plan
    seen += _run(root, {"DB_PASSWORD_V2": SECRET_2}, "deploy", "r2")
    seen += _run(root, {}, "events", "--limit", "1000")
    assert json.loads((fleet / "acme" / "prod.json").read_text())["db"]["password"] == SECRET_2

    app = App.open(root)
    rollout = _run(root, {}, "history")
    for rid in [line.split()[0] for line in rollout.splitlines() if line.strip().startswith("ro-")]:
        seen += _run(root, {}, "logs", rid)
    with app.db().read() as conn:
        dump = "\n".join(str(row) for table in ("events", "config_blobs", "deploy_logs",
                                                "release_configs", "rollout_targets",
                                                "releases", "instance_state")
                         for row in conn.execute(sa.text(f"SELECT * FROM {table}")))
    app.close()
    for secret in (SECRET_1, SECRET_2):
        assert secret not in dump
        assert secret not in seen
    assert "env:DB_PASSWORD" in dump  # snapshots keep the reference
    assert "***" in seen  # the deploy log showed the config with the value masked

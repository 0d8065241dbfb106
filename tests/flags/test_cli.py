"""``rollwave flags …`` through the real command line (Typer's runner, SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rollwave.cli.app import app as cli
from rollwave.errors import RollwaveError
from rollwave.services.context import App

runner = CliRunner()


class Cli:
    def __init__(self, ctx: App) -> None:
        self.base = ["-w", str(ctx.root), "--database", str(ctx.database_url)]

    def __call__(self, *args: str, actor: str = "alice", code: int = 0) -> Any:
        result = runner.invoke(cli, [*self.base, "--as", actor, *args],
                               env={"COLUMNS": "220", "NO_COLOR": "1"})
        if code == 0 and result.exception is not None and \
                not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == code, result.output
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def run(app: App) -> Cli:
    return Cli(app)


def test_help_teaches_the_flow() -> None:
    result = runner.invoke(cli, ["flags", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for command in ("list", "show", "set", "rollout", "kill", "revert", "audit", "stale",
                    "sync"):
        assert f" {command} " in result.stdout
    assert "Typical flow" in result.stdout
    rollout = runner.invoke(cli, ["flags", "rollout", "start", "--help"],
                            env={"COLUMNS": "200"})
    assert "--steps 1,5,25,100" in rollout.stdout


def test_define_target_evaluate_audit_and_revert(run: Cli) -> None:
    created = run("flags", "set", "beta-reports", "--create", "-e", "production", "--on",
                  "-t", "customer=acme,globex", "-p", "20", "-r", "PAY-1")
    assert "beta-reports created (version 1)" in created.stdout
    hit = run.json("flags", "eval", "beta-reports", "customer=acme", "targetingKey=u1", "-e",
                   "production")
    assert (hit["value"], hit["rule"]) == (True, "target-customer")
    share = sum(run.json("flags", "eval", "beta-reports", f"targetingKey=u{i}", "-e",
                         "production")["value"] for i in range(60))
    assert 3 <= share <= 25  # about 20 % of 60
    run("flags", "set", "beta-reports", "-e", "production", "-p", "50", "-r", "more",
        actor="bob")
    audit = run("flags", "audit", "beta-reports").stdout
    assert "v2 updated by bob" in audit
    assert "weight 20.0 → 50.0" in audit
    assert "more" in audit
    assert "created" in audit
    reverted = run("flags", "revert", "beta-reports", "-r", "too fast")
    assert "now version 3" in reverted.stdout
    shown = run.json("flags", "show", "beta-reports")
    assert shown["environments"]["production"]["fallthrough"]["split"][0]["weight"] == 20.0
    assert shown["history"][0]["action"] == "reverted"


def test_set_refuses_typos_and_empty_edits(run: Cli) -> None:
    missing = run("flags", "set", "nope", "--on", code=1)
    assert isinstance(missing.exception, RollwaveError)
    assert "add --create" in (missing.exception.hint or "")
    run("flags", "set", "f", "--create")
    nothing = run("flags", "set", "f", code=1)
    assert "nothing to change" in str(nothing.exception.problems)  # type: ignore[union-attr]


def test_kill_and_revive(run: Cli) -> None:
    run("flags", "set", "f", "--create", "--on")
    assert "killed in production" in run("flags", "kill", "f", "-e", "production").stdout
    assert run.json("flags", "eval", "f", "-e", "production")["reason"] == "DISABLED"
    run("flags", "kill", "f", "-e", "production", "--revive")
    assert run.json("flags", "eval", "f", "-e", "production")["value"] is True


def test_sync_check_and_drift(run: Cli, app: App) -> None:
    assert run("flags", "sync", "--check", code=1).exit_code == 1  # new flag not imported
    assert "1 change written" in run("flags", "sync").stdout
    run("flags", "sync", "--check")
    run("flags", "set", "new-checkout", "-e", "production", "-p", "5", actor="bob")
    listing = run("flags", "list").stdout
    assert "git (drifted)" in listing
    refused = run("flags", "sync", code=1).stdout
    assert "drifted" in refused
    assert "+      - variant: 'true'" in refused or "weight: 5.0" in refused
    assert "1 refused" in refused
    run("flags", "sync", "--force")
    run("flags", "sync", "--check")
    yaml_text = run("flags", "show", "new-checkout", "--yaml").stdout
    assert "rules:" in yaml_text
    assert "key:" not in yaml_text


def test_stale_lists_constant_flags_with_their_code_references(run: Cli, app: App,
                                                               tmp_path: Path) -> None:
    run("flags", "set", "old-banner", "--create", "--on")
    run("flags", "set", "half", "--create", "--on", "-p", "50")
    src = tmp_path / "src"
    (src / "app").mkdir(parents=True)
    (src / "app" / "views.py").write_text('if flags.boolean("old-banner", ctx):\n    pass\n')
    (src / "node_modules").mkdir()
    (src / "node_modules" / "lib.js").write_text('flag("old-banner")\n')
    (src / "generated").mkdir()
    (src / "generated" / "x.py").write_text('"old-banner"\n')
    (src / ".gitignore").write_text("generated/\n")
    found = run.json("flags", "stale", "--days", "0", "--src", str(src))
    assert [f["key"] for f in found] == ["old-banner"]
    assert found[0]["serves"] == {"*": "true"}
    assert [(r["path"], r["line"]) for r in found[0]["references"]] == [("app/views.py", 1)]
    assert run.json("flags", "stale", "--days", "30") == []


def test_rollout_commands(run: Cli) -> None:
    run("flags", "sync")
    started = run("flags", "rollout", "start", "new-checkout", "--steps", "1,10,100",
                  "--every", "1h", "--guard", "default", "-e", "production", "-r", "go")
    assert "recorded" in started.stdout
    assert "No worker is running" in started.stdout
    status = run.json("flags", "rollout", "status")
    assert status[0]["plan"]["steps"][1]["after"] == "1h"
    assert status[0]["state"] == "running"
    assert "paused" in run("flags", "rollout", "pause", "new-checkout", "-r", "wait").stdout
    assert "running" in run("flags", "rollout", "resume", "new-checkout").stdout
    assert "aborted" in run("flags", "rollout", "abort", "new-checkout").stdout
    assert run.json("flags", "rollout", "status") == []
    assert len(run.json("flags", "rollout", "status", "--all")) == 1
    bad = run("flags", "rollout", "start", "new-checkout", "--steps", "1,x", code=1)
    assert isinstance(bad.exception, RollwaveError)

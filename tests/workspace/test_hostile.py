"""Hostile values: ids are refused by the id pattern; free text is kept exactly, as data."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from rollwave.core.model import Customer, Instance, Project, is_identifier
from rollwave.core.planning import ReleaseSpec, plan_release
from rollwave.errors import ValidationFailed
from rollwave.workspace.loader import load_workspace
from rollwave.yamlio import dump_yaml

from .test_bad_cases import BASE

HOSTILE_TEXT = [
    "x; rm -rf / && echo $HOME | tee /etc/passwd",
    "$(reboot) `id` ${IFS}",
    "line one\nline two\r\nline three",
    "tab\there, nul-free control \x1b[31mred\x1b[0m",
    "[bold red]markup[/] [link=https://evil.example]click[/link]",
    "<script>alert(1)</script> & \"quotes\" 'single'",
    "Ünïcødé — 東京 — עברית — 🚀",
    "../../etc/passwd",
    "{{ 7*7 }} {placeholder} %s %(x)s",
    "x" * 20_000,
    "",
    " leading and trailing ",
    "22:00",
    "no",
]

BAD_IDS = ["../evil", "..", ".", "a/b", "a\\b", "Acme", "a b", "a;b", "$(x)", "a\nb", "",
           "-dash-first", "_under", "x" * 64, "ünï", "a:b", "a*b", "~root", "%2e%2e"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_ids_are_refused_everywhere(bad: str) -> None:
    assert not is_identifier(bad)
    with pytest.raises(ValidationError, match="should match pattern"):
        Customer.model_validate({"id": bad, "instances": {"prod": {"environment": "p"}}})
    with pytest.raises(ValidationError):
        Customer.model_validate({"id": "ok", "instances": {bad: {"environment": "p"}}})
    with pytest.raises(ValidationError):
        Instance.model_validate({"environment": bad})


@pytest.mark.parametrize("good", ["acme", "a", "0", "acme-corp", "acme_corp", "acme.eu", "a..b",
                                  "x" * 63])
def test_plain_ids_are_accepted(good: str) -> None:
    assert is_identifier(good)


def test_free_text_survives_a_workspace_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(BASE, root)
    labels = {f"k{i}": text for i, text in enumerate(HOSTILE_TEXT)}
    for index, text in enumerate(HOSTILE_TEXT):
        cid = f"c{index:02d}"
        doc = {"id": cid, "name": text, "notes": text, "labels": labels, "tags": [text or "t"],
               "contacts": [text], "instances": {"prod": {
                   "environment": "production", "labels": {"note": text},
                   "target": {"host": text, "port": 443}, "deployer": "ssh"}}}
        (root / "customers" / f"{cid}.yaml").write_text(dump_yaml(doc), encoding="utf-8")
    workspace = load_workspace(root)
    for index, text in enumerate(HOSTILE_TEXT):
        customer = workspace.fleet.customers[f"c{index:02d}"]
        assert customer.name == text
        assert customer.notes == text
        assert dict(customer.labels) == labels
        instance = workspace.fleet.get(f"c{index:02d}/prod")
        assert instance is not None
        assert instance.labels["note"] == text
        assert instance.target["host"] == text
        assert instance.facts.attributes["note"] == text


def test_planning_treats_hostile_text_as_data(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(BASE, root)
    marker = tmp_path / "executed"
    payload = f"$(touch {marker}); `touch {marker}`"
    (root / "customers" / "evil.yaml").write_text(dump_yaml({
        "id": "evil", "name": payload, "labels": {"owner": payload},
        "instances": {"prod": {"environment": "production", "target": {"port": 18300}}}}))
    text = (root / "rollwave.yaml").read_text().replace(
        "{match: internal}", "{match: \"owner == '" + payload.replace('"', '\\"') + "'\"}")
    (root / "rollwave.yaml").write_text(text)
    workspace = load_workspace(root)
    plan = plan_release(workspace.fleet, ReleaseSpec("r", {"web": "1"}), {}, "standard",
                        datetime(2026, 11, 25, 10, tzinfo=UTC))
    assert [t.instance for t in plan.waves[0].targets] == ["evil/prod"]
    assert not marker.exists()


def test_huge_and_deep_values_are_bounded(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(BASE, root)
    deep = "[" * 200 + "]" * 200
    (root / "customers" / "deep.yaml").write_text(
        f"id: deep\nlabels: {{x: y}}\nnotes: {deep}\ninstances: {{p: {{environment: staging}}}}\n")
    with pytest.raises(ValidationFailed) as caught:
        load_workspace(root)
    assert any("deeper than 128" in p.message and p.file == "customers/deep.yaml"
               for p in caught.value.problems)


def test_project_accepts_hostile_descriptions(tmp_path: Path) -> None:
    project = Project.model_validate({
        "project": "p", "environments": {"e": {"description": HOSTILE_TEXT[0]}},
        "services": {"web": {"description": HOSTILE_TEXT[2]}},
        "policies": {"s": {"description": HOSTILE_TEXT[4],
                           "waves": [{"name": HOSTILE_TEXT[6][:100], "select": "rest"}]}}})
    assert project.policies["s"].waves[0].name == HOSTILE_TEXT[6][:100]

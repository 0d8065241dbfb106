"""The public API end to end on small workspaces written to a temporary directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from rollwave.config import (
    ConfigLimits,
    RenderedConfig,
    explain,
    load_sources,
    render_fleet,
    render_instance,
    render_report,
    resolve_instance_key,
    validate_configs,
)
from rollwave.config.schema import at_secret
from rollwave.core.hashing import config_hash
from rollwave.errors import ConfigError, InstanceNotFound, ValidationFailed

from .helpers import customer, workspace

FILES = {
    "customers/acme.yaml": customer("acme", tier="gold", instances={
        "prod": {"environment": "prod", "target": {"port": 8101},
                 "config": {"api": {"replicas": 3}}},
        "stage": {"environment": "staging"}}),
    "customers/solo.yaml": customer("solo"),
    "config/api/defaults.yaml": {"values": {
        "replicas": 1, "url": "https://{{ customer }}.example.com",
        "release": "{{ version | default('unreleased') }}",
        "port": "{{ port | default(80) }}", "password": {"$secret": "env:PW"}}},
    "config/api/overlays/gold.yaml": {"match": "tier == gold", "values": {"replicas": 2}},
    "config/api/schema.json": json.dumps({
        "type": "object", "properties": {"replicas": {"type": "integer", "maximum": 4},
                                         "password": {"type": "string"}}}),
}


@pytest.fixture
def ws(tmp_path: Path):
    return workspace(tmp_path, FILES)


def test_render_instance(ws) -> None:
    config = render_instance(ws, "acme/prod", "api", version="2.0")
    assert config.values == {"replicas": 3, "url": "https://acme.example.com",
                             "release": "2.0", "port": 8101,
                             "password": {"$secret": "env:PW"}}
    assert config.hash == config_hash(config.values)
    assert config.schema == "config/api/schema.json"
    assert [layer.file for layer in config.layers] == [
        "config/api/defaults.yaml", "config/api/overlays/gold.yaml", "customers/acme.yaml"]
    assert [s.location() for s in config.provenance[("replicas",)]] == [
        "config/api/defaults.yaml:2", "config/api/overlays/gold.yaml:3",
        "customers/acme.yaml:10"]
    assert render_instance(ws, "solo", "api").values["release"] == "unreleased"


def test_snapshot_round_trip(ws) -> None:
    config = render_instance(ws, "acme/prod", "api", version="2.0")
    data = json.loads(json.dumps(config.to_dict()))
    again = RenderedConfig.from_dict(data)
    assert (again.values, again.hash, again.layers) == (config.values, config.hash,
                                                        config.layers)
    assert config_hash(again.values) == again.hash


def test_instance_keys(ws) -> None:
    assert resolve_instance_key(ws, "solo") == "solo/prod"
    with pytest.raises(InstanceNotFound, match="has 2 instances"):
        resolve_instance_key(ws, "acme")
    with pytest.raises(InstanceNotFound):
        render_instance(ws, "acme/nope", "api")
    with pytest.raises(ConfigError, match="unknown service 'web'"):
        render_instance(ws, "solo", "web")
    with pytest.raises(ConfigError, match="unknown service 'web'"):
        render_fleet(ws, services=["web"])


def test_validate_flag_and_grouping(tmp_path: Path) -> None:
    files = {**FILES, "config/api/overlays/gold.yaml": {"match": "tier == gold",
                                                         "values": {"replicas": 9}}}
    ws = workspace(tmp_path, files)
    render_instance(ws, "acme/stage", "api")  # rendering alone does not validate
    with pytest.raises(ValidationFailed) as caught:
        render_instance(ws, "acme/stage", "api", validate=True)
    assert caught.value.problems[0].file == "config/api/overlays/gold.yaml"
    grouped = validate_configs(ws)
    assert [p.message for p in grouped] == ["acme/stage: api: 9 is greater than the maximum of 4"]
    configs, _ = render_fleet(ws, instances=["solo/prod"])
    assert list(configs) == [("solo/prod", "api")]


def test_explain(ws) -> None:
    found = explain(ws, "acme/prod", "api", "replicas")
    assert [k.path for k in found.keys] == ["replicas"]
    text = found.render_text()
    assert "replicas = 3" in text
    assert "override  instance acme/prod" in text
    assert "customers/acme.yaml:10" in text
    assert "match: tier == gold" in text
    whole = explain(ws, "acme/prod", "api")
    assert "password = secret(env:PW)" in whole.render_text()
    assert whole.to_dict()["keys"][0]["settings"][0]["file"] == "config/api/defaults.yaml"
    with pytest.raises(ConfigError, match="no key 'nope'"):
        explain(ws, "acme/prod", "api", "nope")


def test_loader_reports_config_file_problems(tmp_path: Path) -> None:
    files = {**FILES, "config/api/overlays/bad.yaml": {"match": "tier ==", "values": {}}}
    with pytest.raises(ValidationFailed) as caught:
        workspace(tmp_path, files)
    assert [p.file for p in caught.value.problems] == ["config/api/overlays/bad.yaml"]


def test_huge_file_is_refused_before_reading(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"customers/solo.yaml": customer("solo")})
    path = tmp_path / "config" / "api" / "defaults.yaml"
    path.parent.mkdir(parents=True)
    with path.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)  # sparse: no disk, no memory
    ws.extras.clear()
    problems = validate_configs(ws)
    assert problems[0].code == "yaml.too_big"
    assert "over the 4,194,304 byte limit" in problems[0].message


def test_sources_are_cached_per_workspace_and_limits(ws) -> None:
    assert load_sources(ws) is load_sources(ws)
    assert load_sources(ws) is not load_sources(ws, ConfigLimits(max_value_chars=10))


TEMPLATED_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "server": {"type": "object", "required": ["port"], "additionalProperties": False,
                   "properties": {"port": {"type": "integer", "maximum": 9000},
                                  "name": {"type": "string", "pattern": "^[a-m]"}}},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}},
        "free": {},
        "pw": {"type": "string", "minLength": 20},
    },
}


@pytest.mark.parametrize("fixed_error", [False, True])
def test_per_stack_validation_matches_jsonschema(tmp_path: Path, fixed_error: bool) -> None:
    customers = {f"customers/{cid}.yaml": customer(cid, instances={
        "prod": {"environment": "prod", "target": {"port": port}}})
        for cid, port in (("alpha", 80), ("mike", 9001), ("zulu", 443), ("bravoverylong", 1))}
    values = {"server": {"port": "{{ port }}", "name": "{{ customer }}"},
              "tags": ["{{ customer }}", "x"], "free": "{{ customer }}",
              "pw": {"$secret": "env:{{ customer | upper }}"}}
    if fixed_error:
        values["unexpected"] = 1
        values["server"]["extra"] = "{{ customer }}"
    files = {**customers, "config/api/schema.json": json.dumps(TEMPLATED_SCHEMA),
             "config/api/defaults.yaml": {"values": values}}
    ws = workspace(tmp_path, files)
    report = render_report(ws)
    validator = Draft202012Validator(TEMPLATED_SCHEMA)
    for (instance, _), config in report.configs.items():
        expected = sorted(
            (".".join(str(p) for p in e.absolute_path), e.message)
            for e in validator.iter_errors(config.values)
            if not at_secret(config.values, tuple(e.absolute_path)))
        got = sorted((issue.path, issue.message) for issue in report.issues
                     if issue.instance == instance)
        assert sorted(m for _, m in got) == sorted(m for _, m in expected), instance
    invalid = sorted({i.instance for i in report.issues})
    assert invalid == (["alpha/prod", "bravoverylong/prod", "mike/prod", "zulu/prod"]
                       if fixed_error else ["bravoverylong/prod", "mike/prod", "zulu/prod"])


def test_secret_settings_are_checked_at_load(tmp_path: Path) -> None:
    from .helpers import PROJECT

    project = {**PROJECT, "secrets": {"aws-sm": {"regionn": "eu-west-1"}, "vault": {}}}
    with pytest.raises(ValidationFailed) as caught:
        workspace(tmp_path, {"customers/solo.yaml": customer("solo")}, project=project)
    assert sorted((p.path, p.message) for p in caught.value.problems) == [
        ("secrets.aws-sm.regionn", "unknown key 'regionn'"),
        ("secrets.vault", "unknown secret kind 'vault'")]


def test_render_report_restores_the_garbage_collector(ws) -> None:
    import gc

    assert gc.isenabled()
    render_report(ws)
    assert gc.isenabled()
    gc.disable()
    try:
        render_report(ws)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_versions_per_instance(tmp_path: Path) -> None:
    files = {"customers/a.yaml": customer("a"), "customers/b.yaml": customer("b"),
             "config/api/defaults.yaml": {"values": {"v": "{{ version | default('-') }}",
                                                     "n": 30}},
             "config/api/schemas/1.0.json": json.dumps({"properties": {"n": {"maximum": 50}}}),
             "config/api/schemas/2.0.json": json.dumps({"properties": {"n": {"maximum": 10}}})}
    ws = workspace(tmp_path, files)
    report = render_report(ws, versions={"api": "2.0"},
                           instance_versions={("a/prod", "api"): "1.0"})
    assert report.configs[("a/prod", "api")].values["v"] == "1.0"
    assert report.configs[("b/prod", "api")].values["v"] == "2.0"
    assert [i.instance for i in report.issues] == ["b/prod"]
    assert validate_configs(ws, instance_versions={("a/prod", "api"): "2.0"})[0].message == (
        "a/prod: api: 30 is greater than the maximum of 10")

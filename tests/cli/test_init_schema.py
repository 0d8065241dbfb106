"""`rollwave init` and `rollwave schema`."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from rollwave.workspace.scaffold import init_workspace
from rollwave.yamlio import load_yaml
from tests.workspace.test_bad_cases import BASE

from .support import assert_no_traceback, run

Capsys = pytest.CaptureFixture[str]


def test_init_creates_a_valid_workspace(capsys: Capsys, tmp_path: Path) -> None:
    root = tmp_path / "fleet"
    result = run(capsys, "init", str(root))
    assert result.code == 0, result.text
    assert (root / "rollwave.yaml").is_file()
    assert (root / ".gitignore").is_file()
    assert sorted(p.name for p in (root / "customers").iterdir()) == [
        "acme.yaml", "globex.yaml", "internal.yaml"]
    assert "Next: edit customers/*.yaml" in result.out
    check = run(capsys, "-w", str(root), "validate")
    assert check.code == 0, check.text
    assert "3 customers, 3 instances" in check.out


def test_init_refuses_to_overwrite_without_force(capsys: Capsys, tmp_path: Path) -> None:
    root = tmp_path / "fleet"
    assert run(capsys, "init", str(root)).code == 0
    (root / "customers" / "acme.yaml").write_text("# my edits\n" + (
        root / "customers" / "acme.yaml").read_text())
    again = run(capsys, "init", str(root))
    assert again.code == 1
    assert_no_traceback(again)
    assert "already exists" in again.flat_err
    assert "--force" in again.flat_err
    assert (root / "customers" / "acme.yaml").read_text().startswith("# my edits")
    forced = run(capsys, "init", str(root), "--force")
    assert forced.code == 0, forced.text
    assert not (root / "customers" / "acme.yaml").read_text().startswith("# my edits")


def test_init_does_not_overwrite_customer_files_either(capsys: Capsys, tmp_path: Path) -> None:
    (tmp_path / "customers").mkdir()
    (tmp_path / "customers" / "acme.yaml").write_text("id: acme\n# mine\n")
    result = run(capsys, "init", str(tmp_path))
    assert result.code == 1
    assert "customers/acme.yaml" in result.flat_err
    assert (tmp_path / "customers" / "acme.yaml").read_text() == "id: acme\n# mine\n"
    assert not (tmp_path / "rollwave.yaml").exists()


def test_init_into_a_file_or_with_a_bad_project_id(capsys: Capsys, tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = run(capsys, "init", str(a_file))
    assert result.code == 1
    assert_no_traceback(result)
    assert "is a file" in result.flat_err
    bad = run(capsys, "init", str(tmp_path / "ws"), "--project", "My Project")
    assert bad.code == 1
    assert_no_traceback(bad)
    assert "'My Project' is not a valid project id" in bad.flat_err
    assert not (tmp_path / "ws").exists()


def test_schema_prints_valid_json_schema(capsys: Capsys) -> None:
    for kind in ("project", "customer"):
        result = run(capsys, "schema", kind)
        assert result.code == 0, result.text
        body = json.loads(result.out)
        jsonschema.Draft202012Validator.check_schema(body)
        assert body["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_unknown_kind_is_a_clear_error(capsys: Capsys) -> None:
    result = run(capsys, "schema", "planet")
    assert result.code == 1
    assert_no_traceback(result)
    assert "no schema named 'planet'" in result.flat_err
    assert "project" in result.flat_err


def test_schema_out_writes_every_schema(capsys: Capsys, tmp_path: Path) -> None:
    result = run(capsys, "schema", "--out", str(tmp_path / "schemas"))
    assert result.code == 0, result.text
    names = sorted(p.name for p in (tmp_path / "schemas").iterdir())
    assert {"customer.schema.json", "project.schema.json"} <= set(names)


def _validators(capsys: Capsys) -> dict[str, jsonschema.Draft202012Validator]:
    out = {}
    for kind in ("project", "customer"):
        out[kind] = jsonschema.Draft202012Validator(json.loads(run(capsys, "schema", kind).out))
    return out


@pytest.mark.parametrize("source", ["starter", "base"])
def test_workspaces_validate_against_the_schema(capsys: Capsys, tmp_path: Path,
                                                source: str) -> None:
    """An editor using `rollwave schema` must accept what `rollwave validate` accepts,
    including the shorthands (select: rest, gates: [approval], bake: 5m, 22:00)."""
    root = BASE if source == "base" else tmp_path / "ws"
    if source == "starter":
        init_workspace(root)
    validators = _validators(capsys)
    errors = [f"rollwave.yaml: {e.message}" for e in
              validators["project"].iter_errors(load_yaml(root / "rollwave.yaml").data)]
    for path in sorted((root / "customers").glob("*.yaml")):
        errors += [f"{path.name}: {e.message}" for e in
                   validators["customer"].iter_errors(load_yaml(path).data)]
    assert not errors, errors


@pytest.mark.parametrize(("kind", "data", "fragment"), [
    ("customer", {"id": "acme", "instances": {"prod": {"environment": "p"}}, "teir": "x"},
     "Additional properties"),
    ("customer", {"id": "../evil", "instances": {"prod": {"environment": "p"}}}, "does not match"),
    ("customer", {"id": "acme"}, "'instances' is a required property"),
    ("project", {"project": "p", "environments": {"e": {}}, "services": {"web": {}},
                 "policies": {"s": {"waves": [{"name": "w", "select": "everything"}]}}},
     "is not valid"),
    ("project", {"project": "p", "environments": {"e": {}}, "services": {"web": {}},
                 "policies": {"s": {"waves": [{"name": "w", "select": "rest",
                                               "bake": "soon"}]}}},
     "is not valid"),
])
def test_schema_rejects_obvious_mistakes(capsys: Capsys, kind: str, data: dict[str, object],
                                         fragment: str) -> None:
    errors = [e.message for e in _validators(capsys)[kind].iter_errors(data)]
    assert any(fragment in e for e in errors), errors

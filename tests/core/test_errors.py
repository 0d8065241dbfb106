"""The error hierarchy: unique stable codes, hints, renderings the CLI and API rely on."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import rollwave
from rollwave import errors
from rollwave.errors import (
    PluginNotFound,
    Problem,
    RollwaveError,
    ValidationFailed,
    all_error_classes,
)

CODE = re.compile(r"^[a-z][a-z_]*\.[a-z][a-z_]*$")


def _import_everything() -> None:
    """Load every module so subclasses defined outside errors.py are seen too."""
    for module in pkgutil.walk_packages(rollwave.__path__, "rollwave."):
        if module.name.endswith("__main__") or module.name.startswith("rollwave.cli"):
            continue
        try:
            importlib.import_module(module.name)
        except ImportError:  # an optional dependency missing: its errors cannot be raised
            continue


def test_every_error_class_has_a_unique_well_formed_code() -> None:
    _import_everything()
    classes = all_error_classes()
    assert RollwaveError in classes
    assert ValidationFailed in classes
    by_code: dict[str, list[str]] = {}
    for cls in classes:
        assert CODE.match(cls.code), f"{cls.__qualname__}: code {cls.code!r}"
        by_code.setdefault(cls.code, []).append(f"{cls.__module__}.{cls.__qualname__}")
    dupes = {code: names for code, names in by_code.items() if len(names) > 1}
    assert not dupes, f"codes shared by several classes: {dupes}"


def test_subclasses_declare_their_own_code() -> None:
    _import_everything()
    for cls in all_error_classes():
        if cls is RollwaveError:
            continue
        assert "code" in vars(cls), f"{cls.__qualname__} inherits its parent's code"


def test_http_statuses_are_errors() -> None:
    _import_everything()
    for cls in all_error_classes():
        assert 400 <= cls.http_status <= 599, cls


def test_the_documented_tree_matches_the_classes() -> None:
    """The module docstring lists each class of errors.py with its code."""
    documented = dict(re.findall(r"[├└]── (\w+)\s+([a-z_.*]+)", errors.__doc__ or ""))
    assert documented, "the hierarchy in the docstring was not found"
    for name, code in documented.items():
        cls = getattr(errors, name)
        if "*" not in code:
            assert cls.code == code, f"{name}: documented {code}, is {cls.code}"
    mine = {c.__name__ for c in all_error_classes() if c.__module__ == "rollwave.errors"}
    assert mine - {"RollwaveError"} == set(documented)


def test_codes_are_stable() -> None:
    """Scripts and API clients match on these: changing one is a breaking change."""
    assert errors.WorkspaceNotFound.code == "workspace.not_found"
    assert errors.ValidationFailed.code == "workspace.invalid"
    assert errors.ReleaseNotFound.code == "release.not_found"
    assert errors.ReleaseExists.code == "release.exists"
    assert errors.InvalidTransition.code == "rollout.invalid_transition"
    assert errors.PlanError.code == "plan.invalid"
    assert errors.StorageError.code == "storage.unavailable"


def test_render_and_to_dict() -> None:
    exc = errors.ReleaseNotFound("no release 'r9'")
    assert exc.render() == "release.not_found: no release 'r9'\nhint: list releases with " \
        "`rollwave release list`"
    assert exc.to_dict() == {"code": "release.not_found", "message": "no release 'r9'",
                             "hint": "list releases with `rollwave release list`"}
    assert errors.PlanError("x", hint="do y").hint == "do y"


def test_validation_failed_carries_every_problem() -> None:
    problems = [Problem("a", file="f.yaml", line=1), Problem("b", path="--version",
                                                             hint="h")]
    exc = ValidationFailed(problems, what="release")
    assert exc.message == "release has 2 problems"
    assert exc.render().splitlines() == [
        "workspace.invalid: release has 2 problems", "  f.yaml:1: a", "  --version: b",
        "    hint: h",
        "hint: fix each problem listed (file:line: message), then run `rollwave validate`"]
    body = exc.to_dict()
    assert [p["message"] for p in body["problems"]] == ["a", "b"]
    assert ValidationFailed([Problem("x")]).message == "workspace has 1 problem"


def test_plugin_not_found_lists_known_kinds() -> None:
    exc = PluginNotFound("deployer", "ssh", ["local", "command"])
    assert exc.message == "no deployer of kind 'ssh'"
    assert exc.hint == "use one of: command, local"
    assert PluginNotFound("deployer", "x", []).hint == "use one of: none"


def test_problem_location_and_render() -> None:
    assert Problem("m").location() == "-"
    assert Problem("m", path="a.b").location() == "a.b"
    assert Problem("m", file="f", line=3, column=4).location() == "f:3:4"
    assert Problem("m", file="f", column=4).location() == "f"
    warning = Problem("m", file="f", line=1, severity="warning", path="x")
    assert warning.render() == "f:1: warning: m (at x)"


@pytest.mark.parametrize("cls", [c for c in all_error_classes()
                                 if c not in (ValidationFailed, PluginNotFound)])
def test_every_error_renders_with_its_code(cls: type[RollwaveError]) -> None:
    exc = cls("something happened")
    assert exc.render().startswith(f"{cls.code}: something happened")

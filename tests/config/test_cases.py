"""Data-driven config cases: each folder of ``cases/`` is a workspace plus ``expected.yaml``.

``expected.yaml`` keys (all optional):

- ``versions``: service → version of the release being rendered;
- ``limits``: overrides of :class:`rollwave.config.ConfigLimits` (e.g. a small max_file_bytes);
- ``rendered``: ``{instance: {service: values}}`` — these configs render to exactly these values;
- ``not_rendered``: ``["instance service", ...]`` — these fail to render;
- ``problems``: the exact set of errors; each ``{file, line, code, message}`` (message is a
  substring; omitted fields are not compared);
- ``warnings``: warnings that must be among the warnings (same fields);
- ``explain``: ``[{instance, service, key, settings: [[file, line, action], ...]}]`` — the
  settings of exactly that key path, lowest first.

A new case is a new folder; nothing here needs to change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rollwave.config import ConfigLimits, explain_rendered, render_report
from rollwave.errors import Problem
from rollwave.workspace.loader import load_workspace

CASES = Path(__file__).parent / "cases"
CASE_NAMES = sorted(p.name for p in CASES.iterdir() if (p / "expected.yaml").is_file())


def _matches(want: dict[str, Any], got: Problem) -> bool:
    return (("file" not in want or want["file"] == got.file)
            and ("line" not in want or want["line"] == got.line)
            and ("code" not in want or want["code"] == got.code)
            and ("path" not in want or want["path"] == got.path)
            and str(want.get("message", "")) in got.message)


def _assign(wanted: list[dict[str, Any]], actual: list[Problem], what: str) -> list[Problem]:
    """Match each wanted problem to a distinct actual one; fail naming what is missing."""
    left = list(actual)
    for want in wanted:
        hit = next((p for p in left if _matches(want, p)), None)
        assert hit is not None, (f"expected {what} {want} not found among:\n"
                                 + "\n".join(p.render() for p in left))
        left.remove(hit)
    return left


def _problems(case: Path, expected: dict[str, Any]):
    limits = ConfigLimits(**expected.get("limits", {}))
    workspace = load_workspace(case, strict=False)
    report = render_report(workspace, versions=expected.get("versions"), limits=limits)
    seen: set[tuple[Any, ...]] = set()
    problems = []
    for problem in [*workspace.warnings, *report.problems()]:
        key = (problem.file, problem.line, problem.message, problem.severity)
        if key not in seen:
            seen.add(key)
            problems.append(problem)
    return workspace, report, problems


@pytest.mark.parametrize("name", CASE_NAMES)
def test_case(name: str) -> None:
    case = CASES / name
    expected = yaml.safe_load((case / "expected.yaml").read_text(encoding="utf-8")) or {}
    _, report, problems = _problems(case, expected)

    errors = [p for p in problems if p.severity == "error"]
    unexpected = _assign(expected.get("problems", []), errors, "problem")
    assert not unexpected, "unexpected problems:\n" + "\n".join(p.render() for p in unexpected)
    warnings = [p for p in problems if p.severity == "warning"]
    _assign(expected.get("warnings", []), warnings, "warning")

    for instance, services in (expected.get("rendered") or {}).items():
        for service, values in services.items():
            config = report.configs.get((instance, service))
            assert config is not None, f"{instance} {service} did not render"
            assert config.values == values, f"{instance} {service}"
    for item in expected.get("not_rendered", []):
        instance, service = item.split()
        assert (instance, service) not in report.configs, f"{item} rendered"

    for item in expected.get("explain", []):
        config = report.configs[(item["instance"], item["service"])]
        found = explain_rendered(config, item["key"])
        key = next(k for k in found.keys if k.path == item["key"])
        got = [[s.file, s.line, s.action] for s in key.settings]
        assert got == item["settings"], f"explain {item['key']}"
        if "value" in item:
            assert key.value == item["value"]

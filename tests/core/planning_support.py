"""Build a fleet, release and state from a planning case (see ``test_planning_cases.py``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from rollwave.core.fleet import Fleet, build_fleet
from rollwave.core.model import Customer, Project
from rollwave.core.planning import InstanceState, Plan, ReleaseSpec, ServiceChange, plan_release
from rollwave.yamlio import load_yaml

BASE_PROJECT: dict[str, Any] = {
    "project": "cases",
    "environments": {"production": {}, "staging": {"production": False}},
    "services": {"web": {}},
}

DEFAULT_INSTANCES = {"prod": {"environment": "production"}}


def load_case(path: Path) -> dict[str, Any]:
    """A case file, read the way workspace files are (``22:00`` stays text)."""
    data = load_yaml(path, display=path.name).data
    assert isinstance(data, dict), f"{path.name}: a case is a mapping"
    return data


def build_case_fleet(case: dict[str, Any]) -> Fleet:
    project = Project.model_validate({**BASE_PROJECT, **case.get("project", {})})
    customers = {}
    for cid, spec in (case.get("customers") or {}).items():
        body = {"id": cid, "instances": DEFAULT_INSTANCES, **(spec or {})}
        customers[cid] = Customer.model_validate(body)
    return build_fleet(project, customers)


def parse_time(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value))
    assert moment.tzinfo is not None, f"{value!r}: write times with a zone, e.g. ...Z"
    return moment


def plan_case(case: dict[str, Any]) -> Plan:
    fleet = build_case_fleet(case)
    release = case.get("release") or {}
    spec = ReleaseSpec(
        name=str(release.get("name", "r1")),
        versions={k: str(v) for k, v in (release.get("versions") or {}).items()},
        config_hashes={k: {s: str(h) for s, h in v.items()}
                       for k, v in (release.get("config") or {}).items()},
    )
    current = {
        key: InstanceState(
            versions={k: str(v) for k, v in (state.get("versions") or {}).items()},
            config_hashes={k: str(v) for k, v in (state.get("config") or {}).items()},
        )
        for key, state in (case.get("current") or {}).items()
    }
    return plan_release(fleet, spec, current, case["policy"], parse_time(case["now"]),
                        emergency=bool(case.get("emergency", False)), only=case.get("only"))


def change_text(change: ServiceChange) -> str:
    """``web 1.0 -> 1.1`` plus `` config h1 -> h2`` when the config changes."""
    text = f"{change.service} {change.from_version or '-'} -> {change.to_version}"
    if change.config_changes:
        text += f" config {change.from_config or '-'} -> {change.to_config}"
    return text

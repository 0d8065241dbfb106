"""Shared helpers for dashboard tests: a small workspace with users, rollouts and a verifier
whose verdicts carry per-interval series (so evidence charts have something to draw)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from rollwave.analysis.results import CheckResult, Outcome, Verdict
from rollwave.core.fleet import FleetInstance
from rollwave.core.model import Verification
from rollwave.services import access
from rollwave.services.context import App
from rollwave.workspace.scaffold import (
    CustomerSeed,
    customer_document,
    project_document,
    write_workspace,
)
from rollwave.yamlio import dump_yaml
from tests.orchestration.helpers import ScriptedVerifier

PASSWORD = "correct horse battery staple"
USERS = {"vera": ["viewer"], "dora": ["deployer", "approver"], "ann": ["approver"],
         "adam": ["admin"]}


def policies(*, gate: bool = True, parallelism: int = 1) -> dict[str, Any]:
    second: dict[str, Any] = {"name": "rest", "select": "rest", "parallelism": parallelism,
                              "failure_budget": "50%"}
    if gate:
        second["gates"] = ["approval"]
    return {"standard": {"waves": [
        {"name": "internal", "select": {"match": "internal"}, "parallelism": 1},
        second]}}


def make_workspace(root: Path, customers: int = 6, *, delay: float = 0.0, gate: bool = True,
                   parallelism: int = 1, hostile: str | None = None) -> Path:
    """A memory-deployer workspace; ``hostile`` names a customer with a hostile display name."""
    seeds = [CustomerSeed("internal", "Internal", tier="internal", tags=["internal"])]
    seeds += [CustomerSeed(f"c{i:02d}", f"Customer {i}", tier="enterprise" if i % 2 else
                           "standard", region="eu-west" if i % 3 else "us-east",
                           tags=["early-adopter"] if i < 2 else [])
              for i in range(customers - 1)]
    if hostile:
        seeds.append(CustomerSeed("evil", hostile, tier="standard"))
    project = project_document(
        "dash", deployers={"local": {"kind": "memory", "delay": delay}},
        policies=policies(gate=gate, parallelism=parallelism),
        verification={"default": {"duration": "1s", "interval": "1s"}})
    docs = [customer_document(s) for s in seeds]
    docs[2]["config"] = {"web": {"feature": {"beta": True}, "branding": {"color": "#d62728"}}}
    defaults = {"description": "fleet-wide defaults", "values": {
        "feature": {"beta": False}, "branding": {"color": "#1f77b4", "name": "{{ customer }}"},
        "limits": {"max_rows": 10000}}}
    write_workspace(root, project, docs,
                    extra_files={"config/web/defaults.yaml": dump_yaml(defaults)})
    return root


def add_users(app: App) -> None:
    for name, roles in USERS.items():
        access.create_user(app, name, roles, password=PASSWORD)


class ChartingVerifier(ScriptedVerifier):
    """A scripted verifier whose checks carry the series real metric checks keep."""

    def __call__(self, instance: FleetInstance, profile: Verification,
                 endpoints: Mapping[str, str], should_stop: Callable[[], bool],
                 progress: Callable[[str], None]) -> Verdict:
        base = super().__call__(instance, profile, endpoints, should_stop, progress)
        failed = base.outcome == Outcome.FAILED
        errors = [0.001, 0.002, 0.12 if failed else 0.003, 0.18 if failed else 0.002]
        latency = [21.0, 23.5, 48.0 if failed else 22.8, 52.0 if failed else 24.1]
        series_e = {"error_ratio": [{"at": 5.0 * (i + 1), "value": v, "count": 40}
                                    for i, v in enumerate(errors)]}
        series_l = {"p95_latency_ms": [{"at": 5.0 * (i + 1), "value": v, "count": 40}
                                       for i, v in enumerate(latency)]}
        outcome = Outcome.FAILED if failed else Outcome.SUCCESSFUL
        return Verdict.of([
            CheckResult("web/errors", outcome, f"error ratio {errors[-1]:.1%} over 20s",
                        value=errors[-1], threshold=0.05, samples=4,
                        data={"series": series_e, "unit": "ratio", "label": "error ratio"}),
            CheckResult("web/latency", Outcome.SUCCESSFUL, f"p95 {latency[-1]} ms over 20s",
                        value=latency[-1], threshold=150.0, samples=4,
                        data={"series": series_l, "unit": "ms", "label": "p95 latency"}),
        ])


def login(client: TestClient, user: str, password: str = PASSWORD) -> str:
    """Log ``client`` in through the form; returns the session's CSRF token."""
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text
    response = client.post("/login", data={"username": user, "password": password,
                                           "csrf_token": token.group(1), "next": "/"},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    home = client.get("/", headers={"accept": "text/html"})
    csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', home.text.replace("&#34;", '"'))
    assert csrf, home.text[:500]
    return csrf.group(1)

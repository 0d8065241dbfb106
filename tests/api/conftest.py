"""An API over a temp workspace (memory deployer): users of every role with tokens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rollwave.api import app as app_module
from rollwave.api.app import create_app
from rollwave.services import access
from rollwave.services.context import App
from rollwave.workspace.scaffold import (
    CustomerSeed,
    customer_document,
    project_document,
    write_workspace,
)
from tests.orchestration.helpers import Orchestrator, ScriptedVerifier

#: user name → roles; ``dap`` both deploys and approves (separation of duties).
USERS = {"ada": ["admin"], "dora": ["deployer"], "abe": ["approver"], "vic": ["viewer"],
         "dap": ["deployer", "approver"]}
PASSWORD = "correct horse battery staple"

#: (method, path) → the permission the route demands ("own" = any user, for their own things;
#: "write" = deployer, approver or admin; None = no principal: log in and health).
ROUTES: dict[tuple[str, str], str | None] = {
    ("GET", "/healthz"): None,
    ("POST", "/api/v1/session"): None,
    ("DELETE", "/api/v1/session"): "read",
    ("GET", "/api/v1/whoami"): "read",
    ("GET", "/api/v1/releases"): "read",
    ("POST", "/api/v1/releases"): "deploy",
    ("GET", "/api/v1/releases/{release_id}"): "read",
    ("GET", "/api/v1/releases/{release_id}/plan"): "read",
    ("GET", "/api/v1/rollouts"): "read",
    ("POST", "/api/v1/rollouts"): "deploy",
    ("GET", "/api/v1/rollouts/{rollout_id}"): "read",
    ("POST", "/api/v1/rollouts/{rollout_id}/approve"): "approve",
    ("POST", "/api/v1/rollouts/{rollout_id}/pause"): "deploy",
    ("POST", "/api/v1/rollouts/{rollout_id}/resume"): "deploy",
    ("POST", "/api/v1/rollouts/{rollout_id}/abort"): "deploy",
    ("POST", "/api/v1/rollouts/{rollout_id}/rollback"): "deploy",
    ("GET", "/api/v1/rollouts/{rollout_id}/logs"): "read",
    ("GET", "/api/v1/events"): "read",
    ("GET", "/api/v1/customers/{customer}/notes"): "read",
    ("POST", "/api/v1/customers/{customer}/notes"): "write",
    ("GET", "/api/v1/users"): "admin",
    ("POST", "/api/v1/users"): "admin",
    ("PUT", "/api/v1/users/{username}/roles"): "admin",
    ("POST", "/api/v1/users/{username}/disable"): "admin",
    ("POST", "/api/v1/users/{username}/enable"): "admin",
    ("GET", "/api/v1/tokens"): "read",
    ("POST", "/api/v1/tokens"): "read",
    ("DELETE", "/api/v1/tokens/{prefix}"): "read",
}


def policies() -> dict[str, Any]:
    return {
        "standard": {"waves": [
            {"name": "internal", "select": {"match": "internal"}, "bake": "0s"},
            {"name": "canary", "select": {"match": "early-adopter"}, "bake": "0s",
             "gates": ["approval"]},
            {"name": "rest", "select": {"match": "environment == production"},
             "parallelism": 4},
        ]},
        "nogate": {"waves": [{"name": "all", "select": {"match": "environment == production"},
                              "parallelism": 4}]},
        "staging": {"waves": [{"name": "lab", "select": {"match": "environment == staging"},
                               "gates": ["approval"]}]},
        "hotfix": {"emergency": True, "waves": [{"name": "all", "select": "rest",
                                                 "parallelism": 4}]},
    }


def make_api_workspace(root: Path, customers: int = 5) -> Path:
    seeds = [CustomerSeed("internal", "Internal", tags=["internal"])]
    seeds += [CustomerSeed(f"c{i:02d}", f"Customer {i}", tags=["early-adopter"] if i < 2 else [],
                           config={"web": {"greeting": f"hello {i}"}})
              for i in range(customers - 1)]
    seeds.append(CustomerSeed("lab", "Lab", environment="staging"))
    project = project_document(
        "api", deployers={"local": {"kind": "memory"}}, policies=policies(),
        verification={"default": {"duration": "1s", "interval": "1s"}})
    write_workspace(root, project, [customer_document(s) for s in seeds])
    return root


@dataclass
class Api:
    """The app, a client, and a token per user."""

    ctx: App
    app: FastAPI
    client: TestClient
    tokens: dict[str, str]

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def get(self, user: str, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.auth(user), **kwargs)

    def post(self, user: str, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.client.post(path, headers=self.auth(user), json=json, **kwargs)

    def orchestrator(self) -> Orchestrator:
        return Orchestrator(self.ctx, ScriptedVerifier())


def build_api(root: Path, *, dashboard: bool = False) -> Api:
    """The app over a fresh workspace; the REST API only unless ``dashboard``."""
    ctx = App.open(make_api_workspace(root), actor="setup")
    ctx.db()
    tokens = {}
    for name, roles in USERS.items():
        access.create_user(ctx, name, roles, password=PASSWORD)
        tokens[name] = access.create_token(ctx, name, "test").secret
    modules = app_module.ROUTER_MODULES
    if not dashboard:
        app_module.ROUTER_MODULES = tuple(m for m in modules if m.startswith("rollwave.api."))
    try:
        app = create_app(ctx)
    finally:
        app_module.ROUTER_MODULES = modules
    return Api(ctx=ctx, app=app, client=TestClient(app), tokens=tokens)


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id still, with test-sized costs (the real costs are the library's defaults)."""
    from argon2 import PasswordHasher

    monkeypatch.setattr(access, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                          parallelism=1))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    built = build_api(tmp_path / "ws")
    try:
        yield built
    finally:
        built.client.close()
        built.ctx.close()

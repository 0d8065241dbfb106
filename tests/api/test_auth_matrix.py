"""Every route needs authentication, and each role gets exactly the permissions it should."""

from __future__ import annotations

import re
from typing import Any

import pytest

from rollwave.services.access import PERMISSIONS
from tests.api.conftest import USERS, Api, build_api

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

BODIES: dict[str, Any] = {
    "/api/v1/session": {"username": "nobody", "password": "not the password"},
    "/api/v1/releases": {"versions": {"web": "9.9"}},
    "/api/v1/rollouts": {"release": "nope"},
    "/api/v1/users": {"username": "someone", "roles": ["viewer"]},
    "/api/v1/tokens": {"name": "t"},
}


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def _call(api: Api, method: str, path: str, headers: dict[str, str]) -> Any:
    body = BODIES.get(path)
    if body is None and method in {"POST", "PUT"}:
        body = {"roles": ["viewer"]} if path.endswith("/roles") else {"body": "b"} \
            if path.endswith("/notes") else {}
    return api.client.request(method, _url(path), headers=headers,
                              json=body if method in {"POST", "PUT"} else None)


@pytest.fixture(scope="module")
def full_api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The whole HTTP surface (dashboard and every router that is installed)."""
    built = build_api(tmp_path_factory.mktemp("full") / "ws", dashboard=True)
    yield built
    built.client.close()
    built.ctx.close()


def _operations(app: Any) -> list[tuple[str, str]]:
    spec = app.openapi()
    return sorted((method.upper(), path) for path, item in spec["paths"].items()
                  for method in item if method in {"get", "post", "put", "patch", "delete"})


def test_every_route_but_health_rejects_unauthenticated_calls(full_api: Api) -> None:
    operations = _operations(full_api.app)
    assert len(operations) >= len(ROUTES) - 1
    accepted = []
    for method, path in operations:
        if path == "/healthz":
            assert full_api.client.get(path).status_code == 200
            continue
        response = _call(full_api, method, path, headers={})
        if response.status_code < 400 or response.status_code >= 500:
            accepted.append((method, path, response.status_code))
        elif path != "/api/v1/session":
            assert response.status_code == 401, (method, path, response.text)
    assert accepted == []


def test_routes_are_the_documented_ones(api: Api) -> None:
    from fastapi import FastAPI

    from rollwave.api import routes_access, routes_notes, routes_rollouts

    mine = FastAPI()
    for module in (routes_rollouts, routes_access, routes_notes):
        mine.include_router(module.router(api.ctx))
    found = set(_operations(mine)) | {("GET", "/healthz")}
    assert found == set(ROUTES), "add new routes to ROUTES with their permission"


@pytest.mark.parametrize("user", sorted(USERS))
def test_each_role_is_refused_exactly_what_it_lacks(api: Api, user: str) -> None:
    roles = set(USERS[user])
    for (method, path), permission in ROUTES.items():
        if permission in (None, "read"):
            continue
        allowed = bool(roles & {"deployer", "approver", "admin"}) if permission == "write" \
            else bool(roles & PERMISSIONS[permission])
        response = _call(api, method, path, headers=api.auth(user))
        if allowed:
            assert response.status_code != 403, (user, method, path, response.text)
        else:
            assert response.status_code == 403, (user, method, path, response.text)
            assert response.json()["code"] == "auth.forbidden"

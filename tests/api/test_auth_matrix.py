"""Every route needs authentication, and each role gets exactly the permissions it should."""

from __future__ import annotations

import re
from typing import Any

import pytest

from rollwave.services.access import PERMISSIONS
from tests.api.conftest import ROUTES, USERS, Api, build_api

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

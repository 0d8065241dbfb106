"""The flag router through FastAPI's TestClient: management REST, snapshot, OFREP."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, Header
from fastapi.testclient import TestClient

from rollwave.errors import AuthError
from rollwave.flags.http import flags_router
from rollwave.flags.store import InMemoryFlagStore

FLAG = {"environments": {"prod": {"enabled": True}},
        "rules": [{"id": "acme", "when": [{"attribute": "customer", "op": "in",
                                            "values": ["acme"]}], "serve": True}],
        "fallthrough": {"split": {"true": 20, "false": 80}}}


def require_token(authorization: str | None = Header(default=None)) -> str:
    if authorization != "Bearer secret":
        raise _Unauthorized
    return "alice"


class _UnauthorizedError(Exception):
    pass


_Unauthorized = _UnauthorizedError()


@pytest.fixture
def store() -> InMemoryFlagStore:
    return InMemoryFlagStore()


@pytest.fixture
def client(store: InMemoryFlagStore) -> TestClient:
    app = FastAPI()

    @app.exception_handler(_UnauthorizedError)
    async def unauthorized(request: Any, exc: Exception) -> Any:
        from fastapi.responses import JSONResponse
        error = AuthError("missing or bad token")
        return JSONResponse(error.to_dict(), status_code=error.http_status)

    app.include_router(flags_router(store, auth=require_token, default_environment="prod"))
    return TestClient(app, headers={"Authorization": "Bearer secret"})


def test_crud_with_actor_reason_and_versions(client: TestClient,
                                             store: InMemoryFlagStore) -> None:
    created = client.put("/api/v1/flags/new-checkout", json=FLAG,
                         headers={"X-Change-Reason": "launch"})
    assert created.status_code == 201
    change = created.json()["change"]
    assert (change["actor"], change["reason"], change["before"]) == ("alice", "launch", None)
    got = client.get("/api/v1/flags/new-checkout")
    assert got.headers["etag"] == '"1"'
    assert got.json()["version"] == 1
    assert [f["key"] for f in client.get("/api/v1/flags").json()["flags"]] == ["new-checkout"]
    stale = client.patch("/api/v1/flags/new-checkout", json={"description": "x"},
                         headers={"If-Match": '"7"'})
    assert stale.status_code == 409
    patched = client.patch("/api/v1/flags/new-checkout", json={"description": "x"},
                           headers={"If-Match": '"1"'})
    assert patched.status_code == 200
    assert patched.json()["change"]["before"]["rules"][0]["id"] == "acme"
    assert client.delete("/api/v1/flags/new-checkout").status_code == 200
    assert client.get("/api/v1/flags/new-checkout").status_code == 404
    assert [c.reason for c in store.list_changes("new-checkout")] == ["launch", "", ""]


def test_auth_is_required(client: TestClient) -> None:
    response = client.get("/api/v1/flags", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json()["code"] == "auth.required"


def test_bad_definitions_get_problems(client: TestClient) -> None:
    response = client.put("/api/v1/flags/bad", json={"rules": [{"when": [
        {"attribute": "e", "op": "matches", "value": "(a+)+"}], "serve": "nope"}]})
    assert response.status_code == 422
    paths = {p["path"] for p in response.json()["problems"]}
    assert paths == {"rules[0]", "rules[0].when[0].value"}
    assert client.put("/api/v1/flags/snapshot", json={}).status_code == 422
    assert client.put("/api/v1/flags/x", content=b"{nope").status_code == 422


def test_kill_switch_per_flag_and_environment(client: TestClient) -> None:
    client.put("/api/v1/flags/f", json=FLAG)
    ofrep = "/ofrep/v1/evaluate/flags/f"
    body = {"context": {"targetingKey": "u", "customer": "acme"}}
    assert client.post(ofrep, json=body).json()["value"] is True
    client.post("/api/v1/flags/f/kill?environment=prod")
    killed = client.post(ofrep, json=body).json()
    assert (killed["value"], killed["reason"]) == (False, "DISABLED")
    client.post("/api/v1/flags/f/unkill?environment=prod")
    assert client.post(ofrep, json=body).json()["value"] is True
    client.post("/api/v1/flags/f/kill")
    assert client.post(ofrep, json=body).json()["reason"] == "DISABLED"
    assert client.post("/api/v1/flags/ghost/kill").status_code == 404


def test_snapshot_etag_and_304(client: TestClient) -> None:
    client.put("/api/v1/flags/f", json=FLAG)
    first = client.get("/api/v1/flags/snapshot?environment=prod")
    etag = first.headers["etag"]
    assert first.json()["flags"]["f"]["enabled"] is True
    assert "environments" not in first.json()["flags"]["f"]  # collapsed for the environment
    again = client.get("/api/v1/flags/snapshot?environment=prod",
                       headers={"If-None-Match": etag})
    assert again.status_code == 304
    dev = client.get("/api/v1/flags/snapshot?environment=dev")
    assert dev.headers["etag"] != etag
    assert dev.json()["flags"]["f"].get("enabled", False) is False
    client.patch("/api/v1/flags/f", json={"description": "changed"})
    changed = client.get("/api/v1/flags/snapshot?environment=prod",
                         headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


def test_ofrep_single_flag_responses(client: TestClient) -> None:
    client.put("/api/v1/flags/f", json=FLAG)
    url = "/ofrep/v1/evaluate/flags/f"
    ok = client.post(url, json={"context": {"targetingKey": "u", "customer": "acme"}})
    assert ok.json() == {"key": "f", "value": True, "reason": "TARGETING_MATCH",
                         "variant": "true", "metadata": {"ruleId": "acme"}}
    missing = client.post(url, json={"context": {"customer": "x"}})
    assert missing.status_code == 400
    assert missing.json()["errorCode"] == "TARGETING_KEY_MISSING"
    assert client.post("/ofrep/v1/evaluate/flags/ghost", json={}).json()["errorCode"] == \
        "FLAG_NOT_FOUND"
    bad = client.post(url, json={"context": [1]})
    assert (bad.status_code, bad.json()["errorCode"]) == (400, "INVALID_CONTEXT")
    other_env = client.post(url, json={"context": {"targetingKey": "u", "customer": "acme"}},
                            headers={"X-Rollwave-Environment": "dev"})
    assert other_env.json()["reason"] == "DISABLED"


def test_ofrep_bulk_with_etag(client: TestClient) -> None:
    client.put("/api/v1/flags/f", json=FLAG)
    client.put("/api/v1/flags/s", json={"type": "string", "variants": {"a": "A"},
                                        "environments": {"prod": {}}})
    body = {"context": {"targetingKey": "u", "customer": "acme"}}
    first = client.post("/ofrep/v1/evaluate/flags", json=body)
    items = {i["key"]: i for i in first.json()["flags"]}
    assert items["f"]["value"] is True
    assert items["s"]["value"] == "A"
    etag = first.headers["etag"]
    assert client.post("/ofrep/v1/evaluate/flags", json=body,
                       headers={"If-None-Match": etag}).status_code == 304
    other = client.post("/ofrep/v1/evaluate/flags", json={"context": {"targetingKey": "v"}},
                        headers={"If-None-Match": etag})
    assert other.status_code == 200  # the ETag covers the context too
    no_key = client.post("/ofrep/v1/evaluate/flags", json={"context": {}}).json()
    errors = {i["key"]: i for i in no_key["flags"] if "errorCode" in i}
    assert errors["f"]["errorCode"] == "TARGETING_KEY_MISSING"


def test_segments_api(client: TestClient) -> None:
    assert client.put("/api/v1/segments/beta", json={"included": ["u1"]}).status_code == 201
    flag = {"environments": {"prod": {}}, "fallthrough": False,
            "rules": [{"when": [{"segment": "beta"}], "serve": True}]}
    assert client.put("/api/v1/flags/g", json=flag).status_code == 201
    assert client.put("/api/v1/flags/h", json={
        "rules": [{"when": [{"segment": "ghost"}], "serve": True}]}).status_code == 422
    ofrep = client.post("/ofrep/v1/evaluate/flags/g", json={"context": {"targetingKey": "u1"}})
    assert ofrep.json()["value"] is True
    assert client.delete("/api/v1/segments/beta").status_code == 422  # still used
    assert client.get("/api/v1/segments").json()["segments"][0]["key"] == "beta"

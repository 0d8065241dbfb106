"""The flag routes mounted in ``create_app`` (what ``rollwave serve`` runs), with Rollwave auth."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from rollwave.api.app import create_app
from rollwave.api.routes_flags import cached_reader
from rollwave.errors import AuthError
from rollwave.services import access
from rollwave.services.context import App

FLAG = {"environments": {"production": {"enabled": True}},
        "rules": [{"id": "acme", "when": [{"attribute": "customer", "op": "in",
                                            "values": ["acme"]}], "serve": True}],
        "fallthrough": {"split": {"true": 20, "false": 80}}}


class Tokens:
    def __init__(self, ctx: App) -> None:
        access.create_user(ctx, "dev", ["deployer"])
        access.create_user(ctx, "sdk", ["viewer"])
        self.writer = {"Authorization": f"Bearer {access.create_token(ctx, 'dev', 'w').secret}"}
        self.reader = {"Authorization": f"Bearer {access.create_token(ctx, 'sdk', 'r').secret}"}


@pytest.fixture
def tokens(app: App) -> Tokens:
    return Tokens(app)


@pytest.fixture
def client(app: App) -> TestClient:
    return TestClient(create_app(app))


def test_auth_reads_need_a_token_writes_need_the_flags_permission(
        client: TestClient, tokens: Tokens) -> None:
    assert client.get("/api/v1/flags").status_code == 401
    assert client.post("/ofrep/v1/evaluate/flags/f", json={"context": {}}).status_code == 401
    denied = client.put("/api/v1/flags/f", json=FLAG, headers=tokens.reader)
    assert denied.status_code == 403
    assert "needs role" in denied.json()["message"]
    created = client.put("/api/v1/flags/f", json=FLAG,
                         headers=tokens.writer | {"X-Change-Reason": "launch"})
    assert created.status_code == 201
    assert created.json()["change"]["actor"] == "dev"
    assert created.json()["flag"]["managed_by"] == "api"


def test_evaluation_snapshot_and_history_over_the_database(client: TestClient,
                                                           tokens: Tokens) -> None:
    client.put("/api/v1/flags/f", json=FLAG, headers=tokens.writer)
    body = {"context": {"targetingKey": "u1", "customer": "acme"}}
    ofrep = client.post("/ofrep/v1/evaluate/flags/f?environment=production", json=body,
                        headers=tokens.reader)
    assert ofrep.json() == {"key": "f", "value": True, "reason": "TARGETING_MATCH",
                            "variant": "true", "metadata": {"ruleId": "acme"}}
    bulk = client.post("/ofrep/v1/evaluate/flags", json=body,
                       headers=tokens.reader | {"X-Rollwave-Environment": "production"})
    assert bulk.json()["flags"][0]["value"] is True
    snapshot = client.get("/api/v1/flags/snapshot?environment=production",
                          headers=tokens.reader)
    etag = snapshot.headers["ETag"]
    again = client.get("/api/v1/flags/snapshot?environment=production",
                       headers=tokens.reader | {"If-None-Match": etag})
    assert again.status_code == 304
    client.post("/api/v1/flags/f/kill", headers=tokens.writer | {"X-Change-Reason": "INC-3"})
    changed = client.get("/api/v1/flags/snapshot?environment=production",
                         headers=tokens.reader | {"If-None-Match": etag})
    assert changed.status_code == 200
    history = client.get("/api/v1/flags/f/history", headers=tokens.reader).json()["history"]
    assert [(h["action"], h["actor"], h["reason"]) for h in history] == [
        ("updated", "dev", "INC-3"), ("created", "dev", "")]
    assert history[0]["changes"] == [{"path": "killed", "before": False, "after": True}]
    reverted = client.post("/api/v1/flags/f/revert", headers=tokens.writer)
    assert reverted.status_code == 200
    assert client.get("/api/v1/flags/f", headers=tokens.reader).json()["version"] == 3
    assert client.post("/api/v1/flags/f/revert", headers=tokens.reader).status_code == 403


def test_editing_a_git_managed_flag_is_allowed_but_flagged(client: TestClient,
                                                           tokens: Tokens) -> None:
    synced = client.post("/api/v1/flags/sync", headers=tokens.writer)
    assert synced.status_code == 200
    assert synced.json()["items"][0]["state"] == "new"
    assert client.get("/api/v1/flags/new-checkout/drift",
                      headers=tokens.reader).json()["state"] == "in-sync"
    patched = client.patch("/api/v1/flags/new-checkout", json={"description": "hotfix"},
                           headers=tokens.writer)
    assert patched.status_code == 200
    assert patched.headers["X-Rollwave-Warning"] == "drifted-from-git"
    assert "managed in git (flags/new-checkout.yaml)" in patched.json()["warnings"][0]
    drift = client.get("/api/v1/flags/new-checkout/drift", headers=tokens.reader).json()
    assert (drift["state"], drift["action"]) == ("drifted", "refused")
    assert "+description: hotfix" in drift["diff"]
    refused = client.post("/api/v1/flags/sync", headers=tokens.writer)
    assert refused.status_code == 409
    assert client.post("/api/v1/flags/sync?force=true", headers=tokens.writer).status_code == 200


def test_flag_rollouts_over_the_api(client: TestClient, tokens: Tokens) -> None:
    client.put("/api/v1/flags/f", json=FLAG, headers=tokens.writer)
    plan = {"variant": "true", "environment": "production",
            "steps": [{"percentage": 5, "guards": ["default"]}, {"percentage": 100}]}
    bad = client.post("/api/v1/flags/f/rollouts", json={**plan, "steps": []},
                      headers=tokens.writer)
    assert bad.status_code == 422
    started = client.post("/api/v1/flags/f/rollouts", json=plan,
                          headers=tokens.writer | {"X-Change-Reason": "go"})
    assert started.status_code == 201
    rollout = started.json()
    assert (rollout["state"], rollout["created_by"]) == ("running", "dev")
    assert client.post("/api/v1/flags/f/rollouts", json=plan,
                       headers=tokens.writer).status_code == 409
    listed = client.get("/api/v1/flag-rollouts?active=true", headers=tokens.reader).json()
    assert [r["id"] for r in listed["rollouts"]] == [rollout["id"]]
    assert client.post(f"/api/v1/flag-rollouts/{rollout['id']}/pause",
                       headers=tokens.reader).status_code == 403
    paused = client.post(f"/api/v1/flag-rollouts/{rollout['id']}/pause", headers=tokens.writer)
    assert paused.json()["state"] == "paused"
    resumed = client.post("/api/v1/flag-rollouts/f/resume", headers=tokens.writer)
    assert resumed.json()["state"] == "running"
    aborted = client.post(f"/api/v1/flag-rollouts/{rollout['id']}/abort?revert=true",
                          headers=tokens.writer)
    assert aborted.json()["state"] == "aborted"
    assert client.get(f"/api/v1/flag-rollouts/{rollout['id']}",
                      headers=tokens.reader).json()["state"] == "aborted"


def _run(coroutine: Any) -> Any:
    """asyncio.run on a fresh thread (another test may have left a loop on this one)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _request(token: str) -> Any:
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [
        (b"authorization", f"Bearer {token}".encode())], "query_string": b""}
    return Request(scope)


def test_read_tokens_are_cached_briefly_writes_always_checked(app: App, client: TestClient,
                                                              tokens: Tokens) -> None:
    issued = access.create_token(app, "sdk", "short")
    reader = cached_reader(ttl=60)
    zero = cached_reader(ttl=0)

    async def check(dependency: Any) -> str:
        request = _request(issued.secret)
        request.scope["app"] = client.app
        principal = await dependency(request)
        return str(principal.username)

    assert _run(check(reader)) == "sdk"
    access.revoke_token(app, issued.prefix)
    assert _run(check(reader)) == "sdk"  # remembered for the TTL
    with pytest.raises(AuthError):
        _run(check(zero))
    write = client.put("/api/v1/flags/x", json=FLAG,
                       headers={"Authorization": f"Bearer {issued.secret}"})
    assert write.status_code == 401

"""The SDK against a real uvicorn server on a loopback port: live updates, restarts, fork."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from rollwave.flags.devserver import FlagServer
from rollwave.flags.model import Flag, FlagSet
from rollwave.flags.store import InMemoryFlagStore
from rollwave.sdk.client import RollwaveClient

FLAG = {"key": "new-checkout", "environments": {"prod": {"enabled": True}},
        "rules": [{"id": "acme", "when": [{"attribute": "customer", "op": "in",
                                            "values": ["acme"]}], "serve": True}],
        "fallthrough": False}
ACME = {"targetingKey": "u1", "customer": "acme"}
GLOBEX = {"targetingKey": "u2", "customer": "globex"}


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.005)
    return check()


@pytest.fixture
def store() -> InMemoryFlagStore:
    return InMemoryFlagStore(FlagSet(flags={"new-checkout": Flag.model_validate(FLAG)}))


@pytest.fixture
def server(store: InMemoryFlagStore) -> Iterator[FlagServer]:
    with FlagServer(store, default_environment="prod") as running:
        yield running


def _set_customers(server: FlagServer, customers: list[str]) -> None:
    body = json.loads(json.dumps(FLAG))
    body["rules"][0]["when"][0]["values"] = customers
    response = httpx.put(f"{server.url}/api/v1/flags/new-checkout", json=body,
                         headers={"X-Change-Reason": "test"})
    assert response.status_code == 200, response.text


def test_live_update_over_the_stream(server: FlagServer) -> None:
    with RollwaveClient(server.url, environment="prod") as client:
        assert client.wait_until_ready(5)
        assert client.boolean("new-checkout", ACME) is True
        assert client.boolean("new-checkout", GLOBEX) is False
        started = time.monotonic()
        _set_customers(server, ["acme", "globex"])
        assert eventually(lambda: client.boolean("new-checkout", GLOBEX) is True)
        assert time.monotonic() - started < 2.0


def test_survives_a_server_restart(store: InMemoryFlagStore) -> None:
    server = FlagServer(store, default_environment="prod").start()
    client = RollwaveClient(server.url, environment="prod", backoff_max=0.3)
    try:
        assert client.wait_until_ready(5)
        server.stop()
        assert client.boolean("new-checkout", ACME) is True  # keeps serving the last copy
        server = FlagServer(store, port=server.port, default_environment="prod").start()
        _set_customers(server, ["globex"])
        assert eventually(lambda: client.boolean("new-checkout", GLOBEX) is True, 10)
        assert client.boolean("new-checkout", ACME) is False
    finally:
        client.close()
        server.stop()


def test_polling_fallback(server: FlagServer) -> None:
    with RollwaveClient(server.url, environment="prod", stream=False,
                        poll_interval=0.05) as client:
        assert client.wait_until_ready(5)
        _set_customers(server, ["globex"])
        assert eventually(lambda: client.boolean("new-checkout", GLOBEX) is True)


def test_offline_bootstrap_and_cache(server: FlagServer, tmp_path: Path) -> None:
    cache = tmp_path / "flags.json"
    with RollwaveClient(server.url, environment="prod", cache_path=cache) as client:
        assert client.wait_until_ready(5)
        assert eventually(cache.exists)
    offline = RollwaveClient(None, bootstrap=cache)
    assert offline.ready
    assert offline.boolean("new-checkout", ACME) is True
    unreachable = RollwaveClient("http://127.0.0.1:9", environment="prod", cache_path=cache,
                                 backoff_max=0.1)
    try:
        assert unreachable.boolean("new-checkout", ACME) is True
    finally:
        unreachable.close()


def test_workspace_directory_bootstrap(tmp_path: Path) -> None:
    (tmp_path / "flags").mkdir()
    (tmp_path / "flags" / "dark-mode.yaml").write_text("environments:\n  prod: {}\n")
    client = RollwaveClient(bootstrap=tmp_path, environment="prod")
    assert client.boolean("dark-mode", {}) is True
    assert client.details("dark-mode", {}).reason == "STATIC"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_restarts_the_sync_thread_in_the_child(server: FlagServer) -> None:
    client = RollwaveClient(server.url, environment="prod")
    try:
        assert client.wait_until_ready(5)
        pid = os.fork()
        if pid == 0:  # the child: a fresh sync thread must follow changes
            code = 1
            try:
                sync = client._sync
                if sync is not None and sync.running and eventually(
                        lambda: client.boolean("new-checkout", GLOBEX) is True, 10):
                    code = 0
            finally:
                os._exit(code)
        time.sleep(0.3)
        _set_customers(server, ["globex"])
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        client.close()


def test_evaluation_never_raises_on_garbage() -> None:
    client = RollwaveClient(None)
    assert client.details("missing", {}, 1).error_code == "PROVIDER_NOT_READY"
    client = RollwaveClient(None, bootstrap={"format": "rollwave.flags.snapshot/v1",
                                             "flags": {}, "segments": {}})
    assert client.boolean("missing", None, True) is True
    assert client.string("missing", {"a": object()}, "d") == "d"
    assert client.details("missing", {}, 3).error_code == "FLAG_NOT_FOUND"
    assert client.json("missing", 42, []) == []  # type: ignore[arg-type]

"""``rollwave serve`` on SQLite: first admin, login, one orchestrator per workspace, SIGTERM."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.api.conftest import make_api_workspace
from tests.serve.helpers import start_serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_first_start_prints_an_admin_password_once_and_shuts_down_gracefully(
        tmp_path: Path) -> None:
    root = make_api_workspace(tmp_path / "ws")
    first = start_serve(root, name="first")
    second = None
    try:
        first.wait_ready()
        out = first.output()
        found = re.search(r"created user admin with password (\S+)", out)
        assert found, out
        password = found.group(1)
        assert len(password) >= 20
        assert "running in this process" in out

        with first.client() as client:
            assert client.get("/api/v1/whoami").status_code == 401
            login = client.post("/api/v1/session", json={"username": "admin",
                                                          "password": password})
            assert login.status_code == 200, login.text
            assert "HttpOnly" in login.headers["set-cookie"]
            assert client.get("/api/v1/whoami").json()["roles"] == ["admin"]
            assert client.post("/api/v1/session", json={"username": "admin",
                                                        "password": "admin"}
                               ).status_code == 401

        second = start_serve(root, name="second")
        second.wait_ready()
        out2 = second.output()
        assert "created user" not in out2  # only on the very first start
        assert "serving without one here" in out2  # SQLite: one orchestrator per workspace
    finally:
        codes = [s.terminate() for s in (second, first) if s is not None]
    assert codes == [0] * len(codes)
    assert "Orchestrator stopped" in first.output()


def test_several_http_workers_on_sqlite(tmp_path: Path) -> None:
    root = make_api_workspace(tmp_path / "ws")
    served = start_serve(root, "--workers", "2", name="multi")
    try:
        served.wait_ready(timeout=180)
        assert "2 HTTP worker processes" in served.output()
        with served.client() as client:
            for _ in range(10):
                assert client.get("/api/v1/rollouts").status_code == 401
    finally:
        code = served.terminate()
    assert code == 0, served.output()
    assert "Orchestrator stopped" in served.output()

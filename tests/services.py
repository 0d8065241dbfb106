"""Helpers for tests that need a real service.

On a user's machine without the service they skip with a reason; in CI
(``ROLLWAVE_REQUIRE_SERVICES=1``) they fail instead, so a missing install step cannot hide.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest


def required() -> bool:
    return os.environ.get("ROLLWAVE_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    """Skip (or fail under ROLLWAVE_REQUIRE_SERVICES=1) because a service is missing."""
    if required():
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def need_executable(name: str, hint: str) -> str:
    path = shutil.which(name)
    if not path:
        unavailable(f"{name} not found ({hint})")
    assert path
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


POSTGRES_URL = os.environ.get("ROLLWAVE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def need_postgres() -> str:
    """Base URL of a reachable PostgreSQL server (create your own databases under it)."""
    if not port_open("127.0.0.1", 5432):
        unavailable("PostgreSQL is not listening on 127.0.0.1:5432")
    return POSTGRES_URL

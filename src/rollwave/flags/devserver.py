"""Run the flag API on a loopback port in a background thread (tests, demos, benchmarks).

Example::

    with FlagServer(store) as server:
        client = RollwaveClient(server.url, environment="prod")
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from rollwave.errors import RollwaveError
from rollwave.flags.http import flags_app
from rollwave.flags.store import FlagStore, InMemoryFlagStore


class ServerStartError(RollwaveError):
    """The development flag server did not start listening in time."""

    code = "flag.server_start"
    default_hint = "check that the port is free and loopback networking works"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class FlagServer:
    """A uvicorn server for the flag API in a daemon thread; stop() and start() again."""

    def __init__(self, store: FlagStore | None = None, *, host: str = "127.0.0.1",
                 port: int | None = None, default_environment: str | None = None,
                 **router_options: Any) -> None:
        self.store = store if store is not None else InMemoryFlagStore()
        self.host = host
        self.port = port or free_port(host)
        self.default_environment = default_environment
        self.router_options = router_options
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> FlagServer:
        """Start serving and wait until the port accepts connections."""
        app = flags_app(self.store, default_environment=self.default_environment,
                        **self.router_options)
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning",
                                lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="flag-server",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._server.started:
                return self
            time.sleep(0.01)
        raise ServerStartError(f"flag server on {self.url} did not start in {timeout}s")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving (open streams are cut) and wait for the thread."""
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None
        self._thread = None

    def __enter__(self) -> FlagServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Keeping an SDK's local flag copy current: SSE stream first, snapshot polling as fallback.

The :class:`Synchronizer` runs one daemon thread. It connects to
``GET /api/v1/flags/stream?environment=E`` and applies every ``snapshot`` event; when the
stream breaks (server restart, network) it polls the snapshot once (``If-None-Match``) and
reconnects with exponential backoff and jitter, up to ``backoff_max`` seconds. A server that
does not offer the stream (404/405/501) is polled every ``poll_interval`` seconds instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

import httpx

log = logging.getLogger("rollwave.sdk")

Apply = Callable[[dict[str, Any]], None]


class Synchronizer:
    """Background thread that feeds snapshot documents to ``apply``."""

    def __init__(self, base_url: str, environment: str | None, apply: Apply, *,
                 token: str | None = None, stream: bool = True, poll_interval: float = 30.0,
                 backoff_initial: float = 0.1, backoff_max: float = 30.0,
                 read_timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.environment = environment
        self.apply = apply
        self.token = token
        self.stream = stream
        self.poll_interval = poll_interval
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.read_timeout = read_timeout
        self.etag: str | None = None
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http: httpx.Client | None = None
        self._response: httpx.Response | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread (again, e.g. in a forked child)."""
        self._stop.clear()
        self._http = httpx.Client(headers=self._headers(), timeout=httpx.Timeout(
            10.0, read=self.read_timeout))
        self._thread = threading.Thread(target=self._run, name="rollwave-flags-sync",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 0.5) -> None:
        """Stop the thread and close connections.

        A thread blocked reading the stream notices at the next event or keepalive; it is a
        daemon, so waiting for it is bounded by ``timeout``.
        """
        self._stop.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):  # best effort from another thread
                response.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if self._http is not None:
            with contextlib.suppress(Exception):
                self._http.close()
        self._thread = None
        self._http = None

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's thread and sockets (do not close them)."""
        self._thread = None
        self._http = None
        self._response = None
        self.connected = threading.Event()
        self._stop = threading.Event()

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": "rollwave-python-sdk"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _params(self) -> dict[str, str]:
        return {"environment": self.environment} if self.environment else {}

    # -- the loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        delay = self.backoff_initial
        stream = self.stream
        while not self._stop.is_set():
            if stream:
                outcome = self._stream_once()
                if outcome == "unsupported":
                    stream = False
                    continue
                if outcome == "ok":  # the stream ended cleanly after delivering data
                    delay = self.backoff_initial
            else:
                self.poll_once()
                if self._stop.wait(self.poll_interval):
                    return
                continue
            if self._stop.is_set():
                return
            self.poll_once()
            if self._stop.wait(delay * (0.5 + random.random())):  # noqa: S311 - jitter
                return
            delay = min(delay * 2, self.backoff_max)

    def poll_once(self) -> bool:
        """Fetch the snapshot (conditional GET); True if a new one was applied."""
        http = self._http
        if http is None:
            return False
        headers = {"If-None-Match": self.etag} if self.etag else {}
        try:
            response = http.get(f"{self.base_url}/api/v1/flags/snapshot",
                                params=self._params(), headers=headers)
        except httpx.HTTPError as exc:
            log.debug("snapshot poll failed: %s", exc)
            return False
        if response.status_code == 304:
            return False
        if response.status_code != 200:
            log.warning("snapshot poll: HTTP %s", response.status_code)
            return False
        try:
            self._deliver(response.json())
        except ValueError as exc:
            log.warning("snapshot poll: bad document: %s", exc)
            return False
        return True

    def _deliver(self, document: dict[str, Any]) -> None:
        etag = document.get("etag")
        if etag is not None and etag == self.etag:
            return
        self.apply(document)
        self.etag = etag

    def _stream_once(self) -> str:  # noqa: PLR0912
        http = self._http
        if http is None:
            return "error"
        delivered = False
        try:
            with http.stream("GET", f"{self.base_url}/api/v1/flags/stream",
                             params=self._params(),
                             headers={"Accept": "text/event-stream"}) as response:
                self._response = response
                if response.status_code in (404, 405, 501):
                    return "unsupported"
                if response.status_code != 200:
                    log.warning("flag stream: HTTP %s", response.status_code)
                    return "error"
                self.connected.set()
                event, data = "message", list[str]()
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return "stopped"
                    if not line:
                        if data and event == "snapshot":
                            self._deliver(json.loads("\n".join(data)))
                            delivered = True
                        event, data = "message", list[str]()
                    elif line.startswith(":"):
                        continue
                    else:
                        name, _, value = line.partition(":")
                        value = value.removeprefix(" ")
                        if name == "event":
                            event = value
                        elif name == "data":
                            data.append(value)
        except (httpx.HTTPError, ValueError, OSError) as exc:
            log.debug("flag stream broke: %s", exc)
        finally:
            self._response = None
            self.connected.clear()
        return "ok" if delivered else "error"

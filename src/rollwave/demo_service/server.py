"""The HTTP shell of the demo service: stdlib ``ThreadingHTTPServer``, one thread per connection."""

from __future__ import annotations

import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urlsplit

from rollwave.demo_service.app import DemoApp, make_rng


class DemoHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that hands every GET to a ``DemoApp``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: DemoApp, seed: int | None = None) -> None:
        self.app = app
        self._local = threading.local()
        self._seeds = make_rng(seed)
        self._seeds_lock = threading.Lock()
        super().__init__(address, DemoRequestHandler)

    def rng(self) -> random.Random:
        """A random generator of the calling thread (seeded from the server's seed)."""
        rng: random.Random | None = getattr(self._local, "rng", None)
        if rng is None:
            with self._seeds_lock:
                rng = make_rng(self._seeds.getrandbits(64))
            self._local.rng = rng
        return rng


class DemoRequestHandler(BaseHTTPRequestHandler):
    """Answers GET for every route of ``DemoApp``; other methods get 501 from the stdlib."""

    protocol_version = "HTTP/1.1"
    server_version = "rollwave-demo"
    #: Idle keep-alive connections are closed after this many seconds.
    timeout = 30.0

    def do_GET(self) -> None:
        """Route the request through the app and write its answer."""
        server = cast(DemoHTTPServer, self.server)
        path = urlsplit(self.path).path
        response = server.app.handle(path, server.rng())
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: a dozen instances logging every scrape would drown the deployer's logs."""

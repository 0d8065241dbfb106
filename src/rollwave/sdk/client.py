"""The Rollwave Python flag SDK: in-process evaluation from a local, live copy of the flags.

Example::

    client = RollwaveClient("http://rollwave:8080", environment="production", token="...",
                            bootstrap="flags-snapshot.json")
    if client.boolean("new-checkout", {"targetingKey": user.id, "customer": "acme"}, False):
        ...
    client.details("new-checkout", ctx, False)   # value, variant, reason, rule_id, error_code

Evaluation never raises and never blocks on the network: it reads the latest compiled
snapshot, kept current by a background thread (SSE stream, polling fallback, reconnect with
backoff). The client can start offline from a bootstrap (a snapshot JSON file, a workspace
directory with ``flags/*.yaml``, or a snapshot dict) and can remember the last snapshot in
``cache_path``. Pre-fork servers (gunicorn, uWSGI) are safe: after ``fork()`` the child gets a
fresh background thread and connection.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rollwave.errors import RollwaveError
from rollwave.flags.details import EvaluationDetails, error_details
from rollwave.flags.engine import Snapshot, compile_snapshot
from rollwave.flags.snapshots import snapshot_from_document
from rollwave.sdk.sync import Synchronizer

log = logging.getLogger("rollwave.sdk")

Context = Mapping[str, Any]
_EMPTY: Context = {}
_clients: weakref.WeakSet[RollwaveClient] = weakref.WeakSet()
_fork_hook_installed = False


def _after_fork_in_child() -> None:
    for client in list(_clients):
        client._after_fork()


def _install_fork_hook() -> None:
    global _fork_hook_installed  # noqa: PLW0603 - one process-wide hook
    if not _fork_hook_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_hook_installed = True


class RollwaveClient:
    """Evaluates flags locally; see the module docstring."""

    def __init__(self, base_url: str | None = None, *, environment: str | None = None,
                 token: str | None = None, bootstrap: str | Path | Mapping[str, Any] | None = None,
                 cache_path: str | Path | None = None, stream: bool = True,
                 poll_interval: float = 30.0, backoff_max: float = 30.0,
                 start: bool = True) -> None:
        self.environment = environment
        self.cache_path = Path(cache_path) if cache_path else None
        self._flags: dict[str, Any] = {}
        self._snapshot = Snapshot(environment=environment)
        self._listeners: list[Callable[[Snapshot], None]] = []
        self._ready = threading.Event()
        self._pid = os.getpid()
        self._sync = None if base_url is None else Synchronizer(
            base_url, environment, self._apply_document, token=token, stream=stream,
            poll_interval=poll_interval, backoff_max=backoff_max)
        self._started = False
        for source in (bootstrap, self.cache_path):
            if source is not None and self._load_bootstrap(source):
                break
        _clients.add(self)
        _install_fork_hook()
        if start:
            self.start()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start syncing with the server (no-op when offline or already running)."""
        if self._sync is not None and not self._sync.running:
            self._sync.start()
        self._started = True

    def close(self) -> None:
        """Stop syncing; evaluation keeps working from the last snapshot."""
        self._started = False
        if self._sync is not None:
            self._sync.stop()

    def __enter__(self) -> RollwaveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _after_fork(self) -> None:
        self._pid = os.getpid()
        if self._sync is not None:
            self._sync.reset_after_fork()
            if self._started:
                self._sync.start()

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Block until a snapshot (from the server or bootstrap) is loaded; True if ready."""
        return self._ready.wait(timeout)

    @property
    def ready(self) -> bool:
        """Whether any snapshot has been loaded."""
        return self._ready.is_set()

    @property
    def snapshot(self) -> Snapshot:
        """The compiled snapshot in use."""
        return self._snapshot

    def on_change(self, callback: Callable[[Snapshot], None]) -> None:
        """Call ``callback(snapshot)`` (on the sync thread) whenever new flags arrive."""
        self._listeners.append(callback)

    def refresh(self) -> bool:
        """Poll the snapshot now (blocking); True if it changed."""
        return self._sync.poll_once() if self._sync is not None else False

    # -- loading --------------------------------------------------------------------------------

    def _load_bootstrap(self, source: str | Path | Mapping[str, Any]) -> bool:
        try:
            if isinstance(source, Mapping):
                self._install(snapshot_from_document(dict(source)))
                return True
            path = Path(source)
            if path.is_dir():
                from rollwave.flags.files import load_flags_dir
                self._install(compile_snapshot(load_flags_dir(path), self.environment))
                return True
            if path.is_file():
                self._install(snapshot_from_document(json.loads(path.read_text("utf-8"))))
                return True
        except (RollwaveError, OSError, ValueError) as exc:
            log.warning("cannot bootstrap flags from %s: %s", source, exc)
        return False

    def _apply_document(self, document: dict[str, Any]) -> None:
        try:
            snapshot = snapshot_from_document(document)
        except RollwaveError as exc:
            log.warning("ignoring a bad flag snapshot: %s", exc)
            return
        self._install(snapshot)
        if self.cache_path is not None:
            try:
                tmp = self.cache_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(document), "utf-8")
                tmp.replace(self.cache_path)
            except OSError as exc:
                log.debug("cannot write flag cache %s: %s", self.cache_path, exc)

    def _install(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._flags = snapshot.flags  # one reference swap: readers never see a half update
        self._ready.set()
        for callback in list(self._listeners):
            try:
                callback(snapshot)
            except Exception:
                log.exception("flag change listener failed")

    # -- evaluation (never raises) --------------------------------------------------------------

    def details(self, key: str, context: Context | None = None, default: Any = None,
                flag_type: str | None = None) -> EvaluationDetails:
        """Full evaluation details: value, variant, reason, rule id, error code.

        Before any snapshot has loaded, unknown flags report ``PROVIDER_NOT_READY``.
        """
        try:
            if not self._ready.is_set() and key not in self._flags:
                return error_details(key, default, "PROVIDER_NOT_READY",
                                     "no flags loaded yet (server unreachable, no bootstrap)")
            return self._snapshot.evaluate(key, context, default, flag_type)
        except Exception as exc:  # pragma: no cover - Snapshot.evaluate already guards
            return error_details(key, default, "GENERAL", str(exc))

    def evaluator(self, key: str) -> tuple[str, Any] | None:
        """``(flag type, compiled evaluator)`` of ``key`` in the current snapshot, or None.

        For integrations (the OpenFeature provider) that add their own error handling; the
        evaluator must be called inside ``try`` and its ERROR details mapped to defaults.
        """
        entry: tuple[str, Any] | None = self._flags.get(key)
        return entry

    def _typed(self, key: str, context: Context | None, default: Any, flag_type: str) -> Any:
        entry = self._flags.get(key)
        if entry is None or entry[0] != flag_type:
            return default
        try:
            result = entry[1](_EMPTY if context is None else context)
        except Exception:
            return default
        return default if result.error_code is not None else result.value

    def boolean(self, key: str, context: Context | None = None, default: bool = False) -> bool:
        """A boolean flag's value, or ``default`` on any error."""
        entry = self._flags.get(key)
        if entry is None or entry[0] != "boolean":
            return default
        try:
            result = entry[1](_EMPTY if context is None else context)
        except Exception:
            return default
        return default if result.error_code is not None else bool(result.value)

    def string(self, key: str, context: Context | None = None, default: str = "") -> str:
        """A string flag's value, or ``default``."""
        return str(self._typed(key, context, default, "string"))

    def number(self, key: str, context: Context | None = None,
               default: float = 0.0) -> float | int:
        """A number flag's value, or ``default``."""
        value = self._typed(key, context, default, "number")
        return value if isinstance(value, int | float) else default

    def json(self, key: str, context: Context | None = None, default: Any = None) -> Any:
        """A JSON flag's value (treat as read-only), or ``default``."""
        return self._typed(key, context, default, "json")

    def all_details(self, context: Context | None = None) -> list[EvaluationDetails]:
        """Evaluate every flag for ``context``."""
        return self._snapshot.evaluate_all(context)

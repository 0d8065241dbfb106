"""The ``local`` deployer: each service of an instance runs as a detached process on this host.

A service is started from ``Service.local.command`` (by default the bundled demo service) in a
new session, with stdin from ``/dev/null`` and its output in a log file, so it outlives the
orchestrator: killing the orchestrator leaves every instance running, and the next orchestrator
finds them again. Per instance and service, files live under
``<state_dir>/instances/<customer>/<instance>/<service>/``:

``config.json``   the rendered config (written atomically, mode 0600)
``pid``           the process id
``state.json``    version, config_hash, pid, port, started_at and the process' start time
``process.log``   the process' stdout and stderr (the previous run's is ``process.log.1``)

:meth:`LocalDeployer.actual` asks the running process (``GET /version``); the state file only
says which pid and port to look at. A pid is trusted only when ``/proc`` shows the same start
time and process group as when it was started, so a stale pid file never kills a process that
merely reuses the number.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from rollwave.core.durations import Duration
from rollwave.core.fleet import FleetInstance
from rollwave.core.hashing import config_hash
from rollwave.core.model import LocalRun
from rollwave.errors import DeployError
from rollwave.ports.deployer import ActualState, DeployContext, DeployResult, DesiredState, redact

if TYPE_CHECKING:
    from rollwave.adapters.deployers import DeployerEnvironment

#: Placeholders of ``Service.local.command`` (plus ``{target.X}`` and ``{labels.X}``).
PLACEHOLDERS: Final = ("python", "port", "version", "config_file", "instance", "customer",
                       "state_dir", "service", "key", "name", "service_dir")
#: The environment variable that marks a process as started for one service directory.
MARKER: Final = "ROLLWAVE_LOCAL_DIR"
_PROC: Final = Path("/proc")
_PORT_HINT: Final = ("set target: {port: 8001} on the instance (its services count up from it) "
                     "or target: {ports: {SERVICE: 8001}}")

_FORMATTER: Final = string.Formatter()
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
_CHILDREN_LOCK = threading.Lock()


class LocalOptions(BaseModel):
    """Options of a ``kind: local`` deployer (see ``docs/deployers.md``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    probe_timeout: Duration = 1.0
    stop_timeout: Duration = 5.0
    log_lines: int = Field(default=20, ge=1, le=1000)


@dataclass(frozen=True, slots=True)
class _Paths:
    folder: Path

    @property
    def config(self) -> Path:
        return self.folder / "config.json"

    @property
    def pid(self) -> Path:
        return self.folder / "pid"

    @property
    def state(self) -> Path:
        return self.folder / "state.json"

    @property
    def log(self) -> Path:
        return self.folder / "process.log"


class LocalDeployer:
    """Starts, finds and stops local processes; see the module docstring."""

    def __init__(self, options: LocalOptions, env: DeployerEnvironment) -> None:
        self.options = options
        self.env = env
        self.root = env.state_dir / "instances"
        import httpx  # here, not at module level: `rollwave validate` imports every adapter

        self._http = httpx.Client(timeout=options.probe_timeout, trust_env=False,
                                  limits=httpx.Limits(max_connections=None,
                                                      max_keepalive_connections=0))
        self._http_errors: tuple[type[Exception], ...] = (httpx.HTTPError, ValueError)
        self._locks: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()

    # -- the port -------------------------------------------------------------------------------

    def actual(self, instance: FleetInstance, services: Sequence[str]) -> ActualState:
        """Ask each service's process for ``/version`` (a dead or silent one is not running)."""
        versions: dict[str, str] = {}
        hashes: dict[str, str] = {}
        notes: list[str] = []
        for service in services:
            port = self._port(instance, service)
            found, why = self._probe(self._paths(instance, service), port)
            if found is None:
                notes.append(f"{service}: {why}")
                continue
            versions[service] = found[0]
            if found[1]:
                hashes[service] = found[1]
        return ActualState(versions, hashes, "; ".join(notes))

    def deploy(self, instance: FleetInstance, desired: DesiredState,
               ctx: DeployContext) -> DeployResult:
        """(Re)start each service whose version or config differs, and wait until it answers."""
        services = [s for s in instance.services if s in desired.versions]
        services += sorted(set(desired.versions) - set(services))
        ports = {service: self._port(instance, service) for service in services}
        messages: list[str] = []
        logs: list[str] = []
        for service in services:
            result = self._deploy_service(instance, service, ports[service], desired, ctx)
            if result.log:
                logs.append(result.log)
            if not result.ok:
                return DeployResult(False, result.message, "\n".join(logs))
            messages.append(result.message)
        return DeployResult(True, "; ".join(messages) or "nothing to deploy", "\n".join(logs))

    def endpoint(self, instance: FleetInstance, service: str) -> str | None:
        """``http://127.0.0.1:<port>`` of the service, or None when it has no port."""
        try:
            port = self._port(instance, service)
        except DeployError:
            return None
        return f"http://{self.options.host}:{port}"

    def stop(self, instance: FleetInstance) -> None:
        """Stop every service process of ``instance`` (state and config files are kept)."""
        base = self.root / path_component(instance.customer) / path_component(instance.name)
        folders = {self._paths(instance, s).folder for s in instance.services}
        if base.is_dir():
            folders.update(p for p in base.iterdir() if p.is_dir())
        for folder in sorted(folders):
            if not folder.is_dir():
                continue
            with self._locked(folder):
                paths = _Paths(folder)
                self._stop_recorded(paths, lambda line: None)
                for pid in find_marked(folder):
                    terminate(pid, self.options.stop_timeout)
                paths.pid.unlink(missing_ok=True)
                paths.state.unlink(missing_ok=True)

    # -- one service ----------------------------------------------------------------------------

    def _deploy_service(self, instance: FleetInstance, service: str, port: int,
                        desired: DesiredState, ctx: DeployContext) -> DeployResult:
        def log(line: str) -> None:
            ctx.log(redact(f"{service}: {line}", ctx.redact))

        version = desired.versions[service]
        want_hash = desired.config_hashes.get(service)
        config = desired.configs.get(service, {})
        paths = self._paths(instance, service)
        run = self._run(service)
        paths.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked(paths.folder):
            found, _ = self._probe(paths, port)
            if found is not None and found[0] == version and want_hash in (None, found[1]):
                log(f"already runs {version} on port {port}; skipped")
                return DeployResult(True, f"{service} already at {version}")
            lookup = self._lookup(instance, service, port, version, paths)
            argv = render_argv(run.command, lookup)
            write_atomic(paths.config, json.dumps(config, sort_keys=True, default=str)
                         .encode("utf-8"), durable=True)
            self._stop_recorded(paths, log)
            if not self._port_free(port):
                for pid in find_marked(paths.folder):
                    log(f"stopping process {pid} left over from an earlier run")
                    terminate(pid, self.options.stop_timeout)
                if not self._port_free(port, wait=1.0):
                    message = (f"cannot start {service}: port {port} is in use by a process "
                               "this deployer did not start")
                    log(message)
                    return DeployResult(False, message)
            log(f"starting {version} on port {port}: {' '.join(argv)}")
            try:
                proc = self._start(argv, run, paths)
            except OSError as exc:
                message = f"cannot start {service}: {argv[0]}: {exc.strerror or exc}"
                log(message)
                return DeployResult(False, redact(message, ctx.redact))
            state = {"service": service, "instance": instance.key, "version": version,
                     "config_hash": want_hash or config_hash(config), "pid": proc.pid,
                     "port": port, "started_at": datetime.now(UTC).isoformat(),
                     "proc_start": proc_start(proc.pid)}
            write_atomic(paths.pid, f"{proc.pid}\n".encode(), durable=True, mode=0o644)
            write_atomic(paths.state, json.dumps(state, sort_keys=True).encode("utf-8"),
                         durable=True)
            return self._await_ready(proc, service, port=port, version=version,
                                     want_hash=want_hash, run=run, paths=paths, ctx=ctx)

    def _await_ready(self, proc: subprocess.Popen[bytes], service: str, *, port: int,
                     version: str, want_hash: str | None, run: LocalRun, paths: _Paths,
                     ctx: DeployContext) -> DeployResult:
        started = time.monotonic()
        deadline = started + run.start_timeout
        pause = 0.02
        reported: tuple[str, str | None, int | None] | None = None
        problem = ""
        while True:
            code = proc.poll()
            if code is not None:
                problem = f"{service} {version} exited with code {code} while starting"
                break
            reported = self._version(port)
            if reported is not None and _same_group(reported[2], proc.pid):
                if reported[0] == version and want_hash in (None, reported[1]):
                    message = (f"{service} {version} ready on port {port} in "
                               f"{time.monotonic() - started:.2f}s (pid {proc.pid})")
                    ctx.log(redact(f"{service}: {message}", ctx.redact))
                    return DeployResult(True, message)
                problem = (f"{service} started but reports version {reported[0]} and config hash "
                           f"{reported[1]}; expected {version} and {want_hash}")
                break
            if time.monotonic() >= deadline:
                seen = f" (port {port} answered {reported[0]})" if reported else ""
                problem = (f"{service} {version} did not answer on port {port} within "
                           f"{run.start_timeout:g}s{seen}; stopped it")
                break
            time.sleep(pause)
            pause = min(pause * 1.5, 0.25)
        terminate(proc.pid, self.options.stop_timeout)
        tail = redact(log_tail(paths.log, self.options.log_lines), ctx.redact)  # -> result.log
        ctx.log(redact(f"{service}: {problem}", ctx.redact))
        last = " | ".join(line.strip() for line in tail.splitlines()[-5:] if line.strip())
        return DeployResult(False, redact(problem, ctx.redact) + (f"; log: {last}" if last else ""),
                            tail)

    def _start(self, argv: list[str], run: LocalRun, paths: _Paths) -> subprocess.Popen[bytes]:
        if paths.log.exists() and paths.log.stat().st_size:
            os.replace(paths.log, paths.log.with_name("process.log.1"))
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **run.env, MARKER: str(paths.folder)}
        log_fd = os.open(paths.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_fd,
                                    stderr=subprocess.STDOUT, cwd=paths.folder, env=env,
                                    start_new_session=True, close_fds=True)
        finally:
            os.close(log_fd)
        with _CHILDREN_LOCK:
            _CHILDREN[proc.pid] = proc
        return proc

    def _stop_recorded(self, paths: _Paths, log: Callable[[str], None]) -> None:
        state = read_json(paths.state) or {}
        pid = state.get("pid")
        if isinstance(pid, int) and is_ours(pid, state.get("proc_start")):
            log(f"stopping {state.get('version')} (pid {pid})")
            terminate(pid, self.options.stop_timeout)
        elif isinstance(pid, int):
            log(f"recorded pid {pid} is gone or belongs to another process; not signalling it")

    # -- looking -------------------------------------------------------------------------------

    def _probe(self, paths: _Paths, port: int) -> tuple[tuple[str, str | None] | None, str]:
        state = read_json(paths.state)
        if state is None:
            return None, "not deployed"
        pid = state.get("pid")
        if not isinstance(pid, int) or not is_ours(pid, state.get("proc_start")):
            return None, "not running"
        if state.get("port") != port:
            return None, f"runs on port {state.get('port')}, configured {port}"
        reported = self._version(port)
        if reported is None:
            return None, f"pid {pid} does not answer GET /version on port {port}"
        if not _same_group(reported[2], pid):
            return None, f"port {port} is answered by pid {reported[2]}, not {pid}"
        return (reported[0], reported[1]), ""

    def _version(self, port: int) -> tuple[str, str | None, int | None] | None:
        try:
            response = self._http.get(f"http://{self.options.host}:{port}/version")
            data = response.json() if response.status_code == 200 else None
        except self._http_errors:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("version"), str):
            return None
        digest, pid = data.get("config_hash"), data.get("pid")
        return (data["version"], digest if isinstance(digest, str) else None,
                pid if isinstance(pid, int) else None)

    def _port_free(self, port: int, wait: float = 0.0) -> bool:
        """True when nothing accepts connections on ``port`` (checking for up to ``wait`` s)."""
        end = time.monotonic() + wait
        while True:
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex((self.options.host, port)) != 0:
                    return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.05)

    # -- configuration -------------------------------------------------------------------------

    def _paths(self, instance: FleetInstance, service: str) -> _Paths:
        return _Paths(self.root / path_component(instance.customer)
                      / path_component(instance.name) / path_component(service))

    def _run(self, service: str) -> LocalRun:
        found = self.env.services.get(service)
        return found.local if found is not None else LocalRun()

    def _lookup(self, instance: FleetInstance, service: str, port: int, version: str,
                paths: _Paths) -> Callable[[str], str]:
        fixed = {"python": self.env.python or sys.executable, "port": str(port),
                 "version": version, "config_file": str(paths.config),
                 "instance": instance.key, "customer": instance.customer,
                 "state_dir": str(self.env.state_dir), "service": service, "key": instance.key,
                 "name": instance.name, "service_dir": str(paths.folder)}

        def lookup(field: str) -> str:
            if field in fixed:
                return fixed[field]
            head, _, rest = field.partition(".")
            try:
                value = dig(instance.target, rest) if head == "target" else instance.labels[rest]
            except KeyError:
                raise DeployError(
                    f"instance {instance.key} has no {head}.{rest} for {{{field}}}",
                    hint=f"add '{rest}' under {head}: of the instance") from None
            return str(value)
        return lookup

    def _port(self, instance: FleetInstance, service: str) -> int:
        target = instance.target
        ports = target.get("ports")
        if isinstance(ports, Mapping) and service in ports:
            return _valid_port(instance, service, ports[service])
        if "port" in target:
            if service not in instance.services:
                raise DeployError(f"{instance.key} does not run service '{service}', so it has "
                                  "no port for it", hint=_PORT_HINT)
            base = _valid_port(instance, service, target["port"])
            return _valid_port(instance, service, base + instance.services.index(service))
        raise DeployError(f"instance {instance.key} has no port for service '{service}'",
                          hint=_PORT_HINT)

    @contextmanager
    def _locked(self, folder: Path) -> Iterator[None]:
        """Serialise work on one service folder, across threads and processes."""
        with self._guard:
            lock = self._locks.setdefault(folder, threading.Lock())
        with lock:
            fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)


def _valid_port(instance: FleetInstance, service: str, value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise DeployError(f"instance {instance.key} has an invalid port {value!r} for "
                          f"service '{service}'", hint=_PORT_HINT)
    return value


# --- argv templates and files ----------------------------------------------------------------


def render_argv(command: Sequence[str], lookup: Callable[[str], str]) -> list[str]:
    """``command`` with each ``{placeholder}`` replaced by ``lookup(name)`` (no shell involved).

    Unknown placeholders (and format specs) are a ``DeployError`` naming the known ones.
    """
    known = ", ".join([*(f"{{{p}}}" for p in PLACEHOLDERS), "{target.X}", "{labels.X}"])
    hint = ("fix services.<name>.local.command in rollwave.yaml; write {{ and }} for literal "
            "braces")
    argv: list[str] = []
    for element in command:
        try:
            parsed = list(_FORMATTER.parse(element))
        except ValueError as exc:
            raise DeployError(f"local command item {element!r} is not a valid template: {exc}",
                              hint=hint) from None
        pieces: list[str] = []
        for literal, field, spec, conversion in parsed:
            pieces.append(literal)
            if field is None:
                continue
            head, dot, rest = field.partition(".")
            if spec or conversion or not (field in PLACEHOLDERS or (
                    dot and rest and head in ("target", "labels"))):
                raise DeployError(f"unknown placeholder {{{field}}} in the local command; known "
                                  f"placeholders: {known}", hint=hint)
            pieces.append(lookup(field))
        argv.append("".join(pieces))
    return argv


def dig(data: Mapping[str, Any], path: str) -> Any:
    """``data[path]``, or the nested value at dotted ``path``; ``KeyError`` when absent."""
    if path in data:
        return data[path]
    head, dot, rest = path.partition(".")
    if dot and isinstance(data.get(head), Mapping):
        return dig(data[head], rest)
    raise KeyError(path)


# --- files -----------------------------------------------------------------------------------


def path_component(name: str) -> str:
    """A file-name-safe form of a name (ids pass unchanged; ``/``, spaces etc. are %-escaped)."""
    safe = quote(name, safe="")
    return {"": "%", ".": "%2E", "..": "%2E%2E"}.get(safe, safe)


def write_atomic(path: str | Path, data: bytes, *, durable: bool = False,
                 mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically (temp file + rename; fsync when ``durable``)."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        dir_fd = os.open(folder or ".", os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_json(path: str | Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing or unreadable."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- processes -------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[bool, int, int] | None:
    """``(alive, process group, start time)`` from ``/proc/<pid>/stat``, None if gone.

    A zombie leader whose other threads are still exiting counts as alive: its files (and
    listening sockets) are only closed when the last thread is gone.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    alive = fields[0] not in (b"Z", b"X") or int(fields[17]) > 1
    return alive, int(fields[2]), int(fields[19])


def proc_start(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (None without ``/proc``)."""
    stat = _stat(pid)
    return stat[2] if stat else None


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (reaping it if it is our child)."""
    with _CHILDREN_LOCK:
        child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        with _CHILDREN_LOCK:
            _CHILDREN.pop(pid, None)
        return False
    if _PROC.is_dir():
        stat = _stat(pid)
        return stat is not None and stat[0]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_ours(pid: int, start: Any) -> bool:
    """True when ``pid`` runs and is the session leader started at ``start`` (stale-pid safe)."""
    if pid <= 1 or not running(pid):
        return False
    stat = _stat(pid)
    if stat is None:  # no /proc (not Linux): the best we can do is the process group
        try:
            return os.getpgid(pid) == pid
        except OSError:
            return False
    return stat[1] == pid and isinstance(start, int) and stat[2] == start


def _same_group(reported: int | None, leader: int) -> bool:
    """True when the pid a service reports is the leader or in its process group."""
    if reported is None or reported == leader:
        return True
    stat = _stat(reported)
    return stat is None or stat[1] == leader


def terminate(pid: int, timeout: float) -> None:
    """SIGTERM the process group led by ``pid``; SIGKILL what is left after ``timeout``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + timeout
    while running(pid) and time.monotonic() < end:
        time.sleep(0.02)
    try:
        os.killpg(pid, signal.SIGKILL)  # the leader if it hung, and any children it left
    except ProcessLookupError:
        return
    end = time.monotonic() + 2.0
    while running(pid) and time.monotonic() < end:
        time.sleep(0.02)


def find_marked(folder: Path) -> list[int]:
    """Session leaders whose environment marks them as started for ``folder``."""
    if not _PROC.is_dir():
        return []
    needle = f"{MARKER}={folder}".encode()
    found: list[int] = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            pid = int(entry.name)
            stat = _stat(pid)
            if stat is not None and stat[1] == pid and stat[0]:
                found.append(pid)
    return found


def log_tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of the file at ``path`` (empty when it is missing)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16384))
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


def _factory(options: LocalOptions, env: DeployerEnvironment) -> LocalDeployer:
    return LocalDeployer(options, env)


def _register() -> None:
    from rollwave.adapters.deployers import registry

    registry.register("local", _factory, LocalOptions,
                      "each service runs as a detached process on this host (demo, dev)")


_register()

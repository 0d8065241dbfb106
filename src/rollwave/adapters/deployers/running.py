"""Running a deploy command: its own process group, the tail of its output, timeouts.

Shared by the ``command`` deployer for its deploy, rollback, status and stop commands. A string
command that is one simple command (:func:`simple_argv`) runs without a shell; everything else
runs as given.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from rollwave.ports.deployer import redact

#: How long output is still read after the command exits (background children may hold it).
DRAIN_SECONDS: Final = 0.5
#: Shells whose ``-c`` runs a simple command exactly as executing its words would.
_PLAIN_SHELLS: Final = frozenset({"/bin/sh", "/usr/bin/sh", "/bin/dash", "/usr/bin/dash"})
#: Characters a simple command may hold outside quotes (anything else needs the shell).
_PLAIN_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789_@%+,./:=- \t'\"")
#: Reserved words and builtins of a POSIX shell: as a command name they need the shell.
_SHELL_WORDS: Final = frozenset({
    "!", "{", "}", "case", "do", "done", "elif", "else", "esac", "fi", "for", "if", "in",
    "then", "until", "while", ".", ":", "[", "alias", "bg", "break", "cd", "chdir", "command",
    "continue", "echo", "eval", "exec", "exit", "export", "false", "fc", "fg", "getopts",
    "hash", "jobs", "kill", "local", "printf", "pwd", "read", "readonly", "return", "set",
    "shift", "test", "times", "trap", "true", "type", "ulimit", "umask", "unalias", "unset",
    "wait"})


def simple_argv(command: str) -> list[str] | None:
    """The words of ``command`` when it is one simple command the shell would only split.

    Simple means: words of plain characters and ``'...'``/``"..."`` quotes (no ``$``, backticks
    or backslashes inside double quotes), no redirection, pipe, list, glob, tilde, comment,
    variable assignment or escape, and a first word that is neither a shell keyword nor a
    builtin. Such a command is run without the shell, exactly as the shell would run it, which
    saves a process per command. Anything else returns None (run by the shell).
    """
    quote = ""
    for char in command:
        if quote == "'":
            quote = "" if char == "'" else quote
        elif quote == '"':
            if char in '$`\\':
                return None
            quote = "" if char == '"' else quote
        elif char in "'\"":
            quote = char
        elif char not in _PLAIN_CHARS:
            return None
    if quote:
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words or words[0] in _SHELL_WORDS or "=" in command.split(None, 1)[0]:
        return None
    return words


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How one command ended; ``output`` is the tail of stdout (and stderr when merged)."""

    returncode: int | None
    output: bytes
    errors: bytes = b""
    omitted: int = 0
    timed_out: bool = False
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


class _Tail:
    """Keeps the last ``limit`` bytes written to it."""

    __slots__ = ("buffer", "limit", "omitted")

    def __init__(self, limit: int) -> None:
        self.buffer = bytearray()
        self.limit = limit
        self.omitted = 0

    def add(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > 2 * self.limit:
            self.trim()

    def trim(self) -> bytes:
        extra = len(self.buffer) - self.limit
        if extra > 0:
            del self.buffer[:extra]
            self.omitted += extra
        return bytes(self.buffer)


def run_command(argv: Sequence[str], *, env: Mapping[str, str], timeout: float,
                limit: int = 65536, kill_grace: float = 5.0, merge_stderr: bool = True,
                cwd: str | None = None) -> RunOutcome:
    """Run ``argv`` in its own process group, keeping the tail of its output.

    ``argv`` of the form ``[shell, "-c", command]`` with a plain POSIX ``shell`` and a
    :func:`simple_argv` command runs the command's words directly (the shell still runs it
    when the program is a script without ``#!``, which only a shell can run). On timeout the
    whole group gets SIGTERM, then SIGKILL after ``kill_grace`` seconds. Output still held open
    by background children is read for at most ``DRAIN_SECONDS`` after exit.
    """
    started = time.monotonic()
    direct = (simple_argv(argv[2]) if len(argv) == 3 and argv[1] == "-c"
              and argv[0] in _PLAIN_SHELLS else None)
    try:
        try:
            proc = _spawn(direct or argv, env, cwd, merge_stderr)
        except OSError as exc:
            if direct is None or exc.errno != errno.ENOEXEC:
                raise
            proc = _spawn(argv, env, cwd, merge_stderr)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        program = (direct or argv)[0]
        return RunOutcome(None, b"", error=f"cannot run {program}: {reason}",
                          seconds=time.monotonic() - started)
    assert proc.stdout is not None
    tails = {proc.stdout.fileno(): _Tail(limit)}
    if proc.stderr is not None:
        tails[proc.stderr.fileno()] = _Tail(limit)
    timed_out = _pump(proc, tails, started + timeout, kill_grace)
    proc.stdout.close()
    if proc.stderr is not None:
        proc.stderr.close()
    returncode = proc.wait()
    out, *err = (tail.trim() for tail in tails.values())
    omitted = next(iter(tails.values())).omitted
    return RunOutcome(returncode, out, err[0] if err else b"", omitted, timed_out,
                      seconds=time.monotonic() - started)


def _spawn(argv: Sequence[str], env: Mapping[str, str], cwd: str | None,
           merge_stderr: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        env=env, cwd=cwd, start_new_session=True, close_fds=True)


def _pump(proc: subprocess.Popen[bytes], tails: dict[int, _Tail], deadline: float,
          kill_grace: float) -> bool:
    """Read output until EOF (or the drain ends); True when the command timed out."""
    poller = select.poll()
    for fd in tails:
        poller.register(fd, select.POLLIN)
    pidfd = _pidfd(proc.pid)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    open_fds = set(tails)
    timed_out = exited = False
    try:
        while open_fds:
            now = time.monotonic()
            if not exited and now >= deadline:
                timed_out = exited = True
                kill_group(proc.pid, kill_grace, proc)
                deadline = time.monotonic() + DRAIN_SECONDS
                continue
            if exited and now >= deadline:
                break
            wait = deadline - now if pidfd is not None else min(deadline - now, 0.05)
            for fd, _ in poller.poll(max(1, int(wait * 1000 + 1))):
                if fd == pidfd:
                    poller.unregister(fd)
                    exited, deadline = True, min(deadline, time.monotonic() + DRAIN_SECONDS)
                    continue
                data = os.read(fd, 65536)
                if data:
                    tails[fd].add(data)
                else:
                    poller.unregister(fd)
                    open_fds.discard(fd)
            if pidfd is None and not exited and proc.poll() is not None:
                exited, deadline = True, min(deadline, time.monotonic() + DRAIN_SECONDS)
    finally:
        if pidfd is not None:
            os.close(pidfd)
    return timed_out


def _pidfd(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


def kill_group(pgid: int, grace: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the process group ``pgid``, SIGKILL it after ``grace`` seconds if still there."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + grace
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    if proc is not None:
        proc.wait()


def output_text(data: bytes, omitted: int, secrets: Sequence[str]) -> str:
    """Decoded, redacted output; a truncated head is cut to a whole line and marked."""
    text = data.decode("utf-8", errors="replace").rstrip("\n")
    if omitted:
        cut = text.find("\n")
        text = text[cut + 1:] if 0 <= cut < 4096 else text
        text = _redact_partial_head(text, secrets)
    text = redact(text, secrets)
    if omitted:
        text = f"[... {omitted} bytes of earlier output omitted ...]\n{text}"
    return text


def _redact_partial_head(text: str, secrets: Sequence[str]) -> str:
    """Hide the end of a secret whose beginning was cut off with the omitted head."""
    for secret in secrets:
        for size in range(len(secret) - 1, 2, -1):
            if text.startswith(secret[-size:]):
                return "***" + text[size:]
    return text


def last_lines(text: str, count: int = 5) -> str:
    """The last ``count`` non-empty lines of ``text``, joined by `` | `` for a message."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-count:])

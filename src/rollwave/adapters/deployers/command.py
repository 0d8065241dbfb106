"""The ``command`` deployer: shell command templates from the workspace, run once per service.

Example (``rollwave.yaml``)::

    deployers:
      ssh:
        kind: command
        deploy: "ssh deploy@{target.host} /opt/app/deploy {service} {version} {config_file}"
        status: "ssh deploy@{target.host} /opt/app/status {service}"
        timeout: 5m

Every value interpolated into a string template is quoted with :func:`shlex.quote`, so a
customer or label value holding ``;``, ``$(...)``, backticks, quotes or newlines reaches the
command as one literal word. A template written as a list of strings is run as an argv with no
shell at all. The same values are exported as ``ROLLWAVE_*`` environment variables.

When there is no ``status`` command, :meth:`CommandDeployer.actual` reports what this deployer
last deployed successfully, recorded under ``<state_dir>/command-state/``; a service is dropped
from that record before its command runs, so a deploy interrupted by a crash is repeated.

The file helpers (atomic writes, safe path components) are shared with the ``local`` deployer;
running a command (process group, output tail, timeouts, no shell for a simple command) is in
:mod:`rollwave.adapters.deployers.running`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import string
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rollwave.adapters.deployers.local import dig, path_component, read_json, write_atomic
from rollwave.adapters.deployers.running import (
    RunOutcome,
    last_lines,
    output_text,
    run_command,
)
from rollwave.core.durations import Duration
from rollwave.core.fleet import FleetInstance
from rollwave.core.hashing import config_hash
from rollwave.errors import DeployError
from rollwave.ports.deployer import ActualState, DeployContext, DeployResult, DesiredState, redact

if TYPE_CHECKING:
    from rollwave.adapters.deployers import DeployerEnvironment

#: Placeholders every command may use (besides ``{target.X}`` and ``{labels.X}``).
INSTANCE_PLACEHOLDERS: Final = ("customer", "instance", "key", "environment", "service")
#: Placeholders that only exist while deploying (not in ``status``, ``stop`` or ``endpoint``).
DEPLOY_PLACEHOLDERS: Final = ("version", "previous_version", "config_file", "config_hash")
PREFIXES: Final = ("target", "labels")
_TEMPLATE_HINT: Final = ("fix the command under deployers: in rollwave.yaml; write {{ and }} "
                         "for literal braces (e.g. ${{HOME}}, or simply $HOME)")
_ENV_NAME: Final = re.compile(r"[^A-Z0-9_]")
_FORMATTER: Final = string.Formatter()

CommandSource = str | list[str]


# --- options ---------------------------------------------------------------------------------


class CommandOptions(BaseModel):
    """Options of a ``kind: command`` deployer (see ``docs/deployers.md``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deploy: CommandSource
    status: CommandSource | None = None
    rollback: CommandSource | None = None
    stop: CommandSource | None = None
    endpoint: str | None = None
    timeout: Duration = 300.0
    status_timeout: Duration = 30.0
    kill_grace: Duration = 5.0
    env: dict[str, str] = {}
    shell: str = "/bin/sh"
    output_limit: int = Field(default=65536, ge=1024)

    @field_validator("deploy", "status", "rollback", "stop")
    @classmethod
    def _not_empty(cls, value: CommandSource | None) -> CommandSource | None:
        if isinstance(value, str) and not value.strip():
            raise ValueError("the command is empty")
        if isinstance(value, list) and (not value or not value[0].strip()):
            raise ValueError("an argv list needs at least the program as its first item")
        return value

    @model_validator(mode="after")
    def _positive(self) -> CommandOptions:
        if self.timeout <= 0 or self.status_timeout <= 0:
            raise ValueError("timeout and status_timeout must be above 0 seconds")
        return self


# --- templates -------------------------------------------------------------------------------

Part = tuple[str, str | None, bool]  # literal text, placeholder, quote once more (``!q``)
_CONTEXTS: Final = {"'": "inside 'single quotes'", '"': 'inside "double quotes"',
                    "`": "inside `backticks` (use $(...))", "$((": "inside $((arithmetic))",
                    "<<": "after a here-document (<<)"}


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed command template: per argv element, literal text and placeholder names.

    A string template (``shell=True``) is one element run by the shell with every value
    quoted; a list template is an argv whose elements get values substituted verbatim.
    ``{name!q}`` quotes the value once more, for command lines a second shell parses again
    (``ssh host cmd {x!q}``). ``problem`` describes a configuration mistake; it is raised as
    ``DeployError`` on use.
    """

    name: str
    shell: bool
    elements: tuple[tuple[Part, ...], ...]
    problem: str | None = None

    @classmethod
    def parse(cls, name: str, source: CommandSource, known: Sequence[str],
              prefixes: Sequence[str] = PREFIXES) -> Template:
        """Parse ``source``; unknown, formatted or quoted placeholders become ``problem``."""
        shell = isinstance(source, str)
        texts = [source] if isinstance(source, str) else list(source)
        try:
            elements = tuple(_parse_element(name, text, known, prefixes, shell) for text in texts)
        except _TemplateError as exc:
            return cls(name, shell, (), str(exc))
        return cls(name, shell, elements)

    def render(self, lookup: Callable[[str], str], shell: str = "/bin/sh") -> list[str]:
        """The argv to run, with each placeholder replaced by ``lookup(name)``."""
        if self.problem is not None:
            raise DeployError(self.problem, hint=_TEMPLATE_HINT)
        argv: list[str] = []
        for element in self.elements:
            pieces: list[str] = []
            for literal, field, twice in element:
                pieces.append(literal)
                if field is not None:
                    value = lookup(field)
                    if "\x00" in value:
                        raise DeployError(f"the value of {{{field}}} contains a NUL byte",
                                          hint="remove it from the instance's target or labels")
                    value = shlex.quote(value) if twice else value
                    pieces.append(shlex.quote(value) if self.shell else value)
            argv.append("".join(pieces))
        return [shell, "-c", argv[0]] if self.shell else argv


class _TemplateError(Exception):
    """A template mistake, turned into ``Template.problem``."""


def describe_placeholders(known: Sequence[str], prefixes: Sequence[str] = PREFIXES) -> str:
    """``{a}, {b}, {target.X}`` for messages."""
    return ", ".join([*(f"{{{k}}}" for k in known), *(f"{{{p}.X}}" for p in prefixes)])


def _parse_element(name: str, text: str, known: Sequence[str], prefixes: Sequence[str],
                   shell: bool) -> tuple[Part, ...]:
    try:
        pieces = list(_FORMATTER.parse(text))
    except ValueError as exc:
        raise _TemplateError(f"the {name} command {text!r} is not a valid template: {exc}"
                             ) from None
    parts: list[Part] = []
    state = ""
    for index, (literal, field, spec, conversion) in enumerate(pieces):
        state = _shell_context(literal, state, index == 0) if shell else state
        if field is None:
            parts.append((literal, None, False))
            continue
        head, dot, rest = field.partition(".")
        if not (field in known or (dot and rest and head in prefixes)):
            raise _TemplateError(
                f"unknown placeholder {{{field}}} in the {name} command; known placeholders: "
                f"{describe_placeholders(known, prefixes)}")
        if spec or conversion not in (None, "q"):
            raise _TemplateError(f"placeholder {{{field}}} in the {name} command has a format "
                                 f"spec or conversion; write {{{field}}} (or {{{field}!q}})")
        if state in _CONTEXTS:
            raise _TemplateError(
                f"placeholder {{{field}}} in the {name} command is {_CONTEXTS[state]}, where "
                "quoting cannot protect it; move it out: Rollwave quotes every value itself")
        if shell and literal.endswith("$"):
            raise _TemplateError(f"placeholder {{{field}}} in the {name} command follows '$'; "
                                 "use the ROLLWAVE_* environment variables instead")
        parts.append((literal, field, conversion == "q"))
    return tuple(parts)


def _shell_context(text: str, state: str, at_start: bool) -> str:
    """The shell context after ``text``, enough to refuse placeholders where quoting fails.

    States: ``""`` plain words; a quote or a backtick when inside one; ``#`` a comment; ``$((``
    arithmetic; ``<<`` anywhere after a here-document operator (sticky: its end is not tracked).
    """
    index = 0
    while index < len(text) and state != "<<":
        char = text[index]
        if state == "'":
            state = "" if char == "'" else state
        elif state == "#":
            state = "" if char == "\n" else state
        elif state == "$((":
            if text.startswith("))", index):
                state, index = "", index + 1
        elif char == "\\":
            index += 1
        elif state in ('"', "`"):
            state = "" if char == state else state
        elif char in "'\"`":
            state = char
        elif char == "#" and (text[index - 1] in " \t\n;&|()" if index else at_start):
            state = "#"
        elif text.startswith("$((", index):
            state, index = "$((", index + 2
        elif text.startswith("<<<", index):
            index += 2
        elif text.startswith("<<", index):
            state = "<<"
        index += 1
    return state


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def parse_status(text: str) -> tuple[str | None, str | None]:
    """``(version, config_hash)`` from status output: JSON, or ``VERSION [HASH]`` plain text."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None, None
    for candidate in (text.strip(), lines[-1]):
        if candidate.startswith("{"):
            try:
                data = json.loads(candidate)
            except ValueError:
                continue
            if isinstance(data, dict):
                version, digest = data.get("version"), data.get("config_hash")
                return (_scalar(version) or None, _scalar(digest) or None)
    words = lines[-1].split()
    if len(words) in (1, 2):
        return words[0], words[1] if len(words) == 2 else None
    return None, None


# --- the deployer ----------------------------------------------------------------------------


class CommandDeployer:
    """Runs the configured commands per service; see the module docstring."""

    def __init__(self, options: CommandOptions, env: DeployerEnvironment) -> None:
        self.options = options
        self.root = str(env.state_dir / "command-state")
        every = (*INSTANCE_PLACEHOLDERS, *DEPLOY_PLACEHOLDERS)
        self._deploy = Template.parse("deploy", options.deploy, every)
        self._rollback = (Template.parse("rollback", options.rollback, every)
                          if options.rollback is not None else None)
        self._status = (Template.parse("status", options.status, INSTANCE_PLACEHOLDERS)
                        if options.status is not None else None)
        self._stop = (Template.parse("stop", options.stop, INSTANCE_PLACEHOLDERS)
                      if options.stop is not None else None)
        self._endpoint = (Template.parse("endpoint", [options.endpoint], INSTANCE_PLACEHOLDERS)
                          if options.endpoint is not None else None)
        self._base_env = {**os.environ, **options.env}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._folders: dict[str, str] = {}  # instance key -> its folder (as a string: cheap)
        self._made: set[str] = set()

    # -- the port -----------------------------------------------------------------------------

    def actual(self, instance: FleetInstance, services: Sequence[str]) -> ActualState:
        """Run ``status`` per service if configured, else report the recorded state."""
        if self._status is None:
            return _recorded(self._read_record(instance), services)
        versions: dict[str, str] = {}
        hashes: dict[str, str] = {}
        notes: list[str] = []
        for service in services:
            argv = self._status.render(self._lookup(instance, service, {}), self.options.shell)
            outcome = run_command(argv, env=self._env(instance, service, {}),
                                  timeout=self.options.status_timeout,
                                  limit=self.options.output_limit,
                                  kill_grace=self.options.kill_grace, merge_stderr=False)
            out = outcome.output.decode("utf-8", errors="replace")
            version, digest = parse_status(out) if outcome.ok else (None, None)
            if version is not None:
                versions[service] = version
                if digest is not None:
                    hashes[service] = digest
                continue
            why = _failure(outcome, "status", self.options.status_timeout) if not outcome.ok \
                else "status printed no version"
            tail = last_lines(outcome.errors.decode("utf-8", errors="replace") or out, 2)
            notes.append(f"{service}: {why}" + (f": {tail}" if tail else ""))
        return ActualState(versions, hashes, "; ".join(notes))

    def deploy(self, instance: FleetInstance, desired: DesiredState,
               ctx: DeployContext) -> DeployResult:
        """Run the deploy (or rollback) command for each service not already as desired."""
        template = self._deploy
        if ctx.reason == "rollback" and self._rollback is not None:
            template = self._rollback
        if template.problem is not None:
            raise DeployError(template.problem, hint=_TEMPLATE_HINT)
        services = [s for s in instance.services if s in desired.versions]
        services += sorted(set(desired.versions) - set(services))
        with self._lock(instance.key):
            record = self._read_record(instance)  # read once, kept current by _record
            current = (_recorded(record, services) if self._status is None
                       else self.actual(instance, services))
            logs: list[str] = []
            done: list[str] = []
            for service in services:
                result = self._deploy_service(instance, service, desired, current=current,
                                              template=template, ctx=ctx, record=record)
                if result.log:
                    logs.append(result.log)
                if not result.ok:
                    return DeployResult(False, result.message, "\n".join(logs))
                done.append(result.message)
        return DeployResult(True, "; ".join(done) or "nothing to deploy", "\n".join(logs))

    def endpoint(self, instance: FleetInstance, service: str) -> str | None:
        """The ``endpoint`` template rendered for ``instance``, else the instance's ``url``."""
        if self._endpoint is None:
            return instance.url
        return self._endpoint.render(self._lookup(instance, service, {}))[0]

    def stop(self, instance: FleetInstance) -> None:
        """Run ``stop`` per service (if configured) and forget the recorded state."""
        with self._lock(instance.key):
            for service in instance.services if self._stop is not None else ():
                assert self._stop is not None
                argv = self._stop.render(self._lookup(instance, service, {}), self.options.shell)
                outcome = run_command(argv, env=self._env(instance, service, {}),
                                      timeout=self.options.timeout,
                                      limit=self.options.output_limit,
                                      kill_grace=self.options.kill_grace)
                if not outcome.ok:
                    text = outcome.output.decode("utf-8", errors="replace")
                    raise DeployError(
                        f"stop command for {instance.key} {service}: "
                        f"{_failure(outcome, 'stop', self.options.timeout)}: {last_lines(text)}",
                        hint="run the stop command by hand to see why it fails")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._state_file(instance))

    # -- one service ----------------------------------------------------------------------------

    def _deploy_service(self, instance: FleetInstance, service: str, desired: DesiredState, *,
                        current: ActualState, template: Template, ctx: DeployContext,
                        record: dict[str, Any]) -> DeployResult:
        version = desired.versions[service]
        config = desired.configs.get(service)
        digest = desired.config_hashes.get(service) or (
            config_hash(config) if config is not None else "")
        previous = current.versions.get(service, "")
        if previous == version and (not desired.config_hashes.get(service)
                                    or current.config_hashes.get(service) == digest):
            ctx.log(f"{service}: already runs {version}; skipped")
            return DeployResult(True, f"{service} already at {version}")
        config_file = os.path.join(self._folder(instance, create=True),
                                   f"{path_component(service)}.config.json")
        write_atomic(config_file, json.dumps(config or {}, sort_keys=True).encode("utf-8"))
        extra = {"version": version, "previous_version": previous,
                 "config_file": config_file, "config_hash": digest}
        argv = template.render(self._lookup(instance, service, extra), self.options.shell)
        env = self._env(instance, service, extra)
        env["ROLLWAVE_REASON"] = ctx.reason
        env["ROLLWAVE_ATTEMPT"] = str(ctx.attempt)
        self._record(instance, service, None, record)
        shown = redact(argv[2] if template.shell else shlex.join(argv), ctx.redact)
        ctx.log(f"{service}: $ {shown}")
        outcome = run_command(argv, env=env, timeout=self.options.timeout,
                              limit=self.options.output_limit, kill_grace=self.options.kill_grace)
        # The output goes into the result's log only: the orchestrator stores ctx.log lines
        # and result.log together, so sending it to both would store it twice.
        text = output_text(outcome.output, outcome.omitted, ctx.redact)
        verb = "rolled back" if ctx.reason == "rollback" else "deployed"
        if outcome.ok:
            self._record(instance, service, {"version": version, "config_hash": digest,
                                             "reason": ctx.reason}, record)
            message = f"{verb} {service} {version} in {outcome.seconds:.2f}s"
            ctx.log(f"{service}: {message}")
            return DeployResult(True, message, text)
        why = _failure(outcome, f"{template.name} command for {service}", self.options.timeout)
        tail = last_lines(text)
        message = redact(why, ctx.redact) + (f"; last output: {tail}" if tail else "")
        ctx.log(f"{service}: {message}")
        return DeployResult(False, message, text)

    # -- values ---------------------------------------------------------------------------------

    def _lookup(self, instance: FleetInstance, service: str,
                extra: Mapping[str, str]) -> Callable[[str], str]:
        fixed = {"customer": instance.customer, "instance": instance.name, "key": instance.key,
                 "environment": instance.environment, "service": service, **extra}

        def lookup(field: str) -> str:
            if field in fixed:
                return fixed[field]
            head, _, rest = field.partition(".")
            source = instance.target if head == "target" else instance.labels
            try:
                return _scalar(dig(source, rest) if head == "target" else source[rest])
            except KeyError:
                where = "target" if head == "target" else "labels"
                raise DeployError(
                    f"instance {instance.key} has no {where}.{rest} for placeholder {{{field}}}",
                    hint=f"add '{rest}' under {where}: of the instance in "
                         f"customers/{instance.customer}.yaml") from None
        return lookup

    def _env(self, instance: FleetInstance, service: str,
             extra: Mapping[str, str]) -> dict[str, str]:
        env = self._base_env.copy()
        env.update({"ROLLWAVE_CUSTOMER": instance.customer, "ROLLWAVE_INSTANCE": instance.name,
                    "ROLLWAVE_KEY": instance.key, "ROLLWAVE_ENVIRONMENT": instance.environment,
                    "ROLLWAVE_SERVICE": service})
        for name, value in extra.items():
            env[f"ROLLWAVE_{name.upper()}"] = value
        for prefix, values in (("TARGET", instance.target), ("LABELS", instance.labels)):
            for key, value in values.items():
                name = f"ROLLWAVE_{prefix}_{_ENV_NAME.sub('_', str(key).upper())}"
                env[name] = _scalar(value).replace("\x00", "")
        return env

    # -- recorded state -------------------------------------------------------------------------

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            return lock

    def _folder(self, instance: FleetInstance, *, create: bool = False) -> str:
        folder = self._folders.get(instance.key)
        if folder is None:
            folder = os.path.join(self.root, path_component(instance.customer),
                                  path_component(instance.name))
            self._folders[instance.key] = folder
        if create and folder not in self._made:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            self._made.add(folder)
        return folder

    def _state_file(self, instance: FleetInstance) -> str:
        return os.path.join(self._folder(instance), "state.json")

    def _read_record(self, instance: FleetInstance) -> dict[str, Any]:
        """The record of what this deployer deployed to ``instance`` (empty when none)."""
        data = read_json(self._state_file(instance)) or {}
        if not isinstance(data.get("services"), dict):
            data["services"] = {}
        return data

    def _record(self, instance: FleetInstance, service: str, entry: dict[str, str] | None,
                record: dict[str, Any]) -> None:
        """Set (or, with None, drop) one service in ``record`` and write it atomically.

        No fsync: losing the last write to a power cut only makes a deploy run again, which is
        harmless.
        """
        services: dict[str, Any] = record["services"]
        if entry is None:
            if service not in services:
                return
            del services[service]
        else:
            services[service] = {**entry, "deployed_at": datetime.now(UTC).isoformat()}
        data = {"instance": instance.key, "services": services}
        write_atomic(os.path.join(self._folder(instance, create=True), "state.json"),
                     json.dumps(data, sort_keys=True).encode("utf-8"))


def _recorded(record: Mapping[str, Any], services: Sequence[str]) -> ActualState:
    recorded = record.get("services")
    if not recorded:
        return ActualState(detail="nothing deployed by this deployer yet")
    versions: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for service in services:
        entry = recorded.get(service)
        if isinstance(entry, dict) and isinstance(entry.get("version"), str):
            versions[service] = entry["version"]
            if entry.get("config_hash"):
                hashes[service] = str(entry["config_hash"])
    return ActualState(versions, hashes, "as recorded by the command deployer")


def _failure(outcome: RunOutcome, what: str, timeout: float) -> str:
    if outcome.error:
        return f"{what} could not start: {outcome.error}"
    if outcome.timed_out:
        return f"{what} timed out after {timeout:g}s; its process group was killed"
    if outcome.returncode is not None and outcome.returncode < 0:
        return f"{what} was killed by signal {-outcome.returncode}"
    return f"{what} exited with code {outcome.returncode}"


def _factory(options: CommandOptions, env: DeployerEnvironment) -> CommandDeployer:
    return CommandDeployer(options, env)


def _register() -> None:
    from rollwave.adapters.deployers import registry

    registry.register("command", _factory, CommandOptions,
                      "shell command templates (ssh, scripts, kubectl, ...) run per service")


_register()

"""Notifiers, one module per kind, registered by kind (``log``, ``webhook``).

:func:`channels_from_settings` reads the workspace's ``notifications:`` section (channel name →
``{kind, events, ...options}``); with no section there is one ``log`` channel, so every
notification at least lands in the event log. :func:`build_notifier` builds one channel's
notifier (resolving secrets); :mod:`rollwave.adapters.notify.outbox` enqueues and delivers.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from rollwave.errors import ConfigError
from rollwave.ports.notify import Notifier
from rollwave.ports.registry import NoOptions, Registry

registry: Registry[Notifier] = Registry("notifier")

DEFAULT_CHANNELS: dict[str, dict[str, Any]] = {"log": {"kind": "log"}}


@dataclass(frozen=True)
class NotifierEnvironment:
    """What notifiers may need: ``secret`` resolves a reference (``env:NAME``…) to its value."""

    secret: Callable[[str], str] | None = None


@dataclass(frozen=True)
class Channel:
    """A configured channel: its kind, options and which events it wants."""

    name: str
    kind: str
    options: dict[str, Any]
    events: tuple[str, ...] = ("*",)
    min_severity: str = "info"
    extra: dict[str, Any] = field(default_factory=dict)

    def wants(self, event: str, severity: str = "info") -> bool:
        """Whether a notification of ``event`` goes to this channel."""
        order = {"info": 0, "warning": 1, "critical": 2}
        if order.get(severity, 0) < order.get(self.min_severity, 0):
            return False
        return any(fnmatch.fnmatchcase(event, pattern) for pattern in self.events)


def channels_from_settings(settings: Mapping[str, Any] | None) -> list[Channel]:
    """The channels of a ``notifications:`` section; raises ConfigError naming the problem."""
    problems = channel_problems(settings)
    if problems:
        raise ConfigError("notifications: " + "; ".join(problems),
                          hint="see docs/flags.md (Notifications) for the channel settings")
    channels = []
    for name, raw in (settings or DEFAULT_CHANNELS).items():
        options = dict(raw)
        kind = str(options.pop("kind", name))
        events = options.pop("events", ["*"])
        severity = str(options.pop("min_severity", "info"))
        channels.append(Channel(name=str(name), kind=kind, options=options,
                                events=tuple(events), min_severity=severity))
    return channels


def channel_problems(settings: Mapping[str, Any] | None) -> list[str]:
    """Every problem of a ``notifications:`` section, in words (empty when fine)."""
    problems: list[str] = []
    if settings is None:
        return problems
    if not isinstance(settings, Mapping):
        return ["expected a mapping of channel name to settings"]
    for name, raw in settings.items():
        if not isinstance(raw, Mapping):
            problems.append(f"channel '{name}': expected a mapping with 'kind'")
            continue
        options = dict(raw)
        kind = str(options.pop("kind", name))
        events = options.pop("events", ["*"])
        severity = options.pop("min_severity", "info")
        if kind not in registry.kinds():
            problems.append(f"channel '{name}': unknown kind '{kind}' (known: "
                            f"{', '.join(registry.kinds())})")
            continue
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            problems.append(f"channel '{name}': 'events' must be a list of patterns such as "
                            "flag.rollout.*")
        if severity not in ("info", "warning", "critical"):
            problems.append(f"channel '{name}': min_severity must be info, warning or critical")
        try:
            registry.options_model(kind).model_validate(options)
        except ValidationError as exc:
            problems.extend(f"channel '{name}': {'.'.join(str(p) for p in e['loc']) or kind}: "
                            f"{str(e['msg']).removeprefix('Value error, ')}"
                            for e in exc.errors(include_url=False))
    return problems


def build_notifier(channel: Channel, environment: NotifierEnvironment | None = None) -> Notifier:
    """The notifier of one channel (secrets resolved now)."""
    return registry.create(channel.kind, dict(channel.options),
                           environment or NotifierEnvironment())


# Importing the adapters registers them.
from rollwave.adapters.notify import log, webhook  # noqa: E402

registry.register("log", log.create, NoOptions, "record the notification in the event log")
registry.register("webhook", webhook.create, webhook.WebhookOptions,
                  "POST the notification as JSON to a URL")

__all__ = ["Channel", "NotifierEnvironment", "build_notifier", "channel_problems",
           "channels_from_settings", "registry"]

"""The Notifier port: tell people (chat, paging, webhooks) that something happened.

A :class:`Notification` is what happened, in words and as data; a :class:`Notifier` delivers
it to one channel and raises :class:`NotifyError` when it could not (the outbox retries).
Implementations live in ``rollwave/adapters/notify/`` (one module per kind, registered by
kind: ``log``, ``webhook``); channels are configured in ``rollwave.yaml``::

    notifications:
      ops:                         # channel name
        kind: webhook
        url: https://hooks.example.com/rollwave
        events: ["flag.rollout.*"] # which notifications (glob patterns; default: all)
      audit:
        kind: log                  # records the notification in the event log only

Notifications are enqueued in the transaction of the change they report (the
``notification_outbox`` table) and delivered by the worker, with retries, so a crash never
loses one and never sends one for a change that did not commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from rollwave.errors import RollwaveError


class NotifyError(RollwaveError):
    """A notification could not be delivered (it is retried)."""

    code = "notify.failed"
    default_hint = "check the channel's settings under notifications: in rollwave.yaml"


@dataclass(frozen=True, slots=True)
class Notification:
    """Something that happened: ``event`` (e.g. ``flag.rollout.reverted``), a one-line
    ``subject``, the ``message`` in words (numbers included), ``severity`` (``info``,
    ``warning``, ``critical``) and structured ``data``."""

    event: str
    subject: str
    message: str
    at: datetime
    severity: str = "info"
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body a webhook receives."""
        return {"source": "rollwave", "event": self.event, "subject": self.subject,
                "message": self.message, "severity": self.severity,
                "at": self.at.isoformat(), "data": dict(self.data)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notification:
        """Inverse of :meth:`to_dict` (as stored in the outbox)."""
        return cls(event=str(data["event"]), subject=str(data["subject"]),
                   message=str(data["message"]), at=datetime.fromisoformat(str(data["at"])),
                   severity=str(data.get("severity", "info")), data=dict(data.get("data") or {}))


class Notifier(Protocol):
    """Delivers notifications to one channel."""

    def send(self, notification: Notification) -> str:
        """Deliver it; return a short receipt in words (``HTTP 200 from hooks.example.com``).

        Raises NotifyError when it could not be delivered.
        """
        ...

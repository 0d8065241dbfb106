"""The ``log`` notifier: the notification is recorded in Rollwave's event log (and the Python
log ``rollwave.notify``) and goes nowhere else. It needs no options and never fails."""

from __future__ import annotations

import logging
from typing import Any

from rollwave.ports.notify import Notification, Notifier
from rollwave.ports.registry import NoOptions

log = logging.getLogger("rollwave.notify")


class LogNotifier:
    """Records notifications as events only."""

    def send(self, notification: Notification) -> str:
        """Log it; the outbox records the event."""
        level = logging.WARNING if notification.severity in ("warning", "critical") \
            else logging.INFO
        log.log(level, "%s: %s", notification.subject, notification.message)
        return "recorded in the event log"


def create(options: NoOptions, environment: Any) -> Notifier:
    """Factory for the registry."""
    return LogNotifier()

"""The notification outbox: enqueue in the change's transaction, deliver afterwards, retry.

:func:`enqueue` inserts one row per channel that wants the notification, in the caller's
transaction — so a notification exists exactly when the change it reports committed.
:func:`deliver_due` (called by the worker on every tick) claims due rows (a short lease, so
two workers never send the same row at once), sends them outside any transaction and records
the outcome with an event (``notify.sent`` / ``notify.retry`` / ``notify.failed``, naming the
channel, never a URL or secret). Failures are retried with exponential backoff (5 s, 10 s, …,
at most 10 minutes apart), up to :data:`MAX_ATTEMPTS` times. Delivery is at least once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rollwave.adapters.notify import Channel, NotifierEnvironment, build_notifier
from rollwave.errors import RollwaveError
from rollwave.ports.notify import Notification, Notifier
from rollwave.storage.events import append_event
from rollwave.storage.flag_tables import notification_outbox as outbox

if TYPE_CHECKING:
    from rollwave.storage.db import Database

log = logging.getLogger("rollwave.notify")

MAX_ATTEMPTS = 8
CLAIM_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one delivery attempt."""

    id: int
    channel: str
    event: str
    ok: bool
    detail: str
    attempts: int


def enqueue(conn: Connection, channels: Sequence[Channel], notification: Notification) -> int:
    """Queue ``notification`` for every channel that wants it; returns how many rows."""
    count = 0
    due = datetime.now(UTC)  # delivery runs on the wall clock, whatever clock stamped the event
    for channel in channels:
        if not channel.wants(notification.event, notification.severity):
            continue
        conn.execute(outbox.insert().values(
            channel=channel.name, event=notification.event, payload=notification.to_dict(),
            created_at=notification.at, attempts=0, next_attempt_at=due,
            last_error=""))
        count += 1
    return count


def pending(db: Database, limit: int = 100) -> list[dict[str, Any]]:
    """Rows not yet delivered nor given up, oldest first (for status displays and tests)."""
    with db.read() as conn:
        rows = conn.execute(sa.select(outbox).where(outbox.c.sent_at.is_(None),
                                                    outbox.c.failed_at.is_(None))
                            .order_by(outbox.c.id).limit(limit)).all()
    return [dict(r._mapping) for r in rows]


def deliver_due(db: Database, channels: Sequence[Channel], *,
                environment: NotifierEnvironment | None = None, limit: int = 20,
                now: Callable[[], datetime] = lambda: datetime.now(UTC),
                notifiers: Mapping[str, Notifier] | None = None) -> list[Delivery]:
    """Send due notifications; returns what happened to each one tried."""
    moment = now()
    with db.read() as conn:
        rows = conn.execute(sa.select(outbox.c.id).where(
            outbox.c.sent_at.is_(None), outbox.c.failed_at.is_(None),
            outbox.c.next_attempt_at <= moment,
            sa.or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < moment))
            .order_by(outbox.c.id).limit(limit)).scalars().all()
    if not rows:
        return []
    by_name = {c.name: c for c in channels}
    built: dict[str, Notifier | RollwaveError] = dict(notifiers or {})
    results = []
    for row_id in rows:
        row = _claim(db, int(row_id), moment)
        if row is None:
            continue
        channel = by_name.get(row.channel)
        notifier = built.get(row.channel)
        if notifier is None and channel is not None:
            try:
                notifier = build_notifier(channel, environment)
            except RollwaveError as exc:
                notifier = exc
            built[row.channel] = notifier
        results.append(_attempt(db, row, channel, notifier, now))
    return results


def _claim(db: Database, row_id: int, moment: datetime) -> Any:
    with db.begin() as conn:
        claimed = conn.execute(outbox.update().where(
            outbox.c.id == row_id, outbox.c.sent_at.is_(None), outbox.c.failed_at.is_(None),
            sa.or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < moment))
            .values(claimed_until=moment + timedelta(seconds=CLAIM_SECONDS))).rowcount
        if not claimed:
            return None
        return conn.execute(sa.select(outbox).where(outbox.c.id == row_id)).one()


def _attempt(db: Database, row: Any, channel: Channel | None,
             notifier: Notifier | RollwaveError | None,
             now: Callable[[], datetime]) -> Delivery:
    notification = Notification.from_dict(row.payload)
    attempts = int(row.attempts) + 1
    try:
        if channel is None or notifier is None:
            raise RollwaveError(f"channel '{row.channel}' is no longer configured")
        if isinstance(notifier, RollwaveError):
            raise notifier
        receipt = notifier.send(notification)
    except RollwaveError as exc:
        return _failed(db, row, attempts, exc.message, now(), final=channel is None)
    except Exception as exc:  # a notifier bug must not stop the worker
        log.exception("notifier for channel %s failed", row.channel)
        return _failed(db, row, attempts, f"{type(exc).__name__}: {exc}", now())
    with db.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.id == row.id).values(
            sent_at=now(), attempts=attempts, claimed_until=None))
        append_event(conn, "notify.sent", f"notified {row.channel} ({channel.kind}): "
                     f"{notification.subject} — {receipt}",
                     data={"channel": row.channel, "event": row.event, "outbox": int(row.id),
                           "attempts": attempts, "receipt": receipt,
                           "message": notification.message})
    return Delivery(int(row.id), row.channel, row.event, True, receipt, attempts)


def _failed(db: Database, row: Any, attempts: int, reason: str, moment: datetime, *,
            final: bool = False) -> Delivery:
    give_up = final or attempts >= MAX_ATTEMPTS
    delay = min(600.0, 5.0 * 2 ** (attempts - 1))
    with db.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.id == row.id).values(
            attempts=attempts, claimed_until=None, last_error=reason[:1000],
            failed_at=moment if give_up else None,
            next_attempt_at=moment + timedelta(seconds=delay)))
        if give_up:
            message = (f"gave up notifying {row.channel} after {attempts} attempt"
                       f"{'s' if attempts != 1 else ''}: {reason}")
        else:
            message = (f"could not notify {row.channel} (attempt {attempts} of "
                       f"{MAX_ATTEMPTS}): {reason}; trying again in {delay:g} s")
        append_event(conn, "notify.failed" if give_up else "notify.retry", message,
                     data={"channel": row.channel, "event": row.event, "outbox": int(row.id),
                           "attempts": attempts, "error": reason[:1000]})
    return Delivery(int(row.id), row.channel, row.event, False, reason, attempts)

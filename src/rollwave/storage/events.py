"""The append-only event log: who did what, when and why.

:func:`append_event` is called inside the same transaction as the state change it records, so
an event is never lost and never describes a change that did not commit. Audit, history,
notifications and delivery metrics are read models built from these rows.

Events never carry secrets: callers put hashes and names in ``data``, never config values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rollwave.storage.tables import events

_INSERT = events.insert()  # one statement object, reused: its compiled form is cached
_SECRETISH = ("password", "secret", "token", "api_key", "apikey", "private_key")


@dataclass(frozen=True, slots=True)
class Event:
    """One row of the event log."""

    seq: int
    at: datetime
    actor: str
    kind: str
    rollout_id: str | None
    instance: str | None
    message: str
    data: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at.isoformat(), "actor": self.actor,
                "kind": self.kind, "rollout_id": self.rollout_id, "instance": self.instance,
                "message": self.message, "data": dict(self.data)}


def _check_no_secrets(data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        lowered = key.lower()
        if any(word in lowered for word in _SECRETISH) and not lowered.endswith("_hash"):
            raise ValueError(f"event data key '{key}' looks like a secret; store a hash instead")
        if isinstance(value, Mapping):
            _check_no_secrets(value)


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null (PostgreSQL's JSON refuses them; SQLite would not)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def append_event(
    conn: Connection,
    kind: str,
    message: str,
    *,
    actor: str = "rollwave",
    rollout_id: str | None = None,
    instance: str | None = None,
    data: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> int:
    """Append one event in the caller's transaction and return its sequence number."""
    result = conn.execute(_INSERT, _row(kind, message, actor=actor, rollout_id=rollout_id,
                                        instance=instance, data=data, at=at))
    key = result.inserted_primary_key
    return int(key[0]) if key else 0


def append_events(conn: Connection, items: Sequence[Mapping[str, Any]]) -> None:
    """Append several events, in order, in one statement of the caller's transaction.

    Each item holds :func:`append_event`'s arguments: ``kind`` and ``message``, and optionally
    ``actor``, ``rollout_id``, ``instance``, ``data`` and ``at``.
    """
    if items:
        conn.execute(_INSERT, [_row(**item) for item in items])


def _row(kind: str, message: str, *, actor: str = "rollwave", rollout_id: str | None = None,
         instance: str | None = None, data: Mapping[str, Any] | None = None,
         at: datetime | None = None) -> dict[str, Any]:
    payload = _json_safe(dict(data or {}))
    _check_no_secrets(payload)
    return {"at": at or datetime.now(UTC), "actor": actor, "kind": kind,
            "rollout_id": rollout_id, "instance": instance, "message": message,
            "data": payload}


def list_events(
    conn: Connection,
    *,
    rollout_id: str | None = None,
    instance: str | None = None,
    kinds: Sequence[str] | None = None,
    kind_prefix: str | None = None,
    after: int | None = None,
    before: int | None = None,
    search: str | None = None,
    limit: int = 500,
    newest_first: bool = False,
) -> list[Event]:
    """Events filtered by rollout, instance, kind and free text, in sequence order."""
    query = sa.select(events)
    if rollout_id is not None:
        query = query.where(events.c.rollout_id == rollout_id)
    if instance is not None:
        query = query.where(events.c.instance == instance)
    if kinds:
        query = query.where(events.c.kind.in_(list(kinds)))
    if kind_prefix:
        query = query.where(events.c.kind.startswith(kind_prefix))
    if after is not None:
        query = query.where(events.c.seq > after)
    if before is not None:
        query = query.where(events.c.seq < before)
    if search:
        pattern = f"%{search}%"
        query = query.where(sa.or_(events.c.message.ilike(pattern), events.c.actor.ilike(pattern),
                                   events.c.instance.ilike(pattern),
                                   events.c.kind.ilike(pattern)))
    query = query.order_by(events.c.seq.desc() if newest_first else events.c.seq).limit(limit)
    return [
        Event(seq=row.seq, at=row.at, actor=row.actor, kind=row.kind, rollout_id=row.rollout_id,
              instance=row.instance, message=row.message, data=row.data or {})
        for row in conn.execute(query)
    ]


def last_seq(conn: Connection) -> int:
    """The newest sequence number (0 when the log is empty)."""
    value = conn.execute(sa.select(sa.func.max(events.c.seq))).scalar()
    return int(value or 0)

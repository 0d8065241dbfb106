"""Notes per customer: what people know about a customer's instances that files do not say.

A note belongs to a customer and optionally to one of its instances ("acme/prod"); it records
who wrote it and when, and is never edited (write a new one). Adding a note appends a
``note.created`` event, so notes show up in the audit log next to the rollouts they explain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from rollwave.errors import NotFound, Problem, ValidationFailed
from rollwave.services.context import App
from rollwave.storage.events import append_event
from rollwave.storage.tables import notes

MAX_BODY = 10_000
"""Longest note, in characters (a note is a paragraph, not a document)."""


@dataclass(frozen=True, slots=True)
class NoteRecord:
    """One note about a customer (and maybe one of its instances)."""

    id: int
    customer: str
    instance: str | None
    author: str
    body: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "customer": self.customer, "instance": self.instance,
                "author": self.author, "body": self.body,
                "created_at": self.created_at.isoformat()}


def _record(row: Any) -> NoteRecord:
    return NoteRecord(id=int(row.id), customer=row.customer, instance=row.instance,
                      author=row.author, body=row.body, created_at=row.created_at)


def _check_customer(app: App, customer: str) -> None:
    customers = app.workspace().fleet.customers
    if customer not in customers:
        raise NotFound(f"no customer '{customer}' in this workspace",
                       hint="customers are the ids of customers/*.yaml; see `rollwave validate`")


def _instance_key(app: App, customer: str, instance: str | None) -> str | None:
    """``prod`` or ``acme/prod`` → ``acme/prod``; None stays None (a note on the customer)."""
    if instance is None or not instance.strip():
        return None
    name = instance.strip()
    owner, sep, rest = name.partition("/")
    if sep:
        if owner != customer:
            raise ValidationFailed([Problem(
                message=f"instance '{name}' belongs to customer '{owner}', not '{customer}'",
                path="instance", hint="give the instance name alone, e.g. 'prod'")],
                what="note")
        name = rest
    if name not in app.workspace().fleet.customers[customer].instances:
        known = ", ".join(sorted(app.workspace().fleet.customers[customer].instances))
        raise ValidationFailed([Problem(
            message=f"customer '{customer}' has no instance '{name}'", path="instance",
            hint=f"its instances are: {known}")], what="note")
    return f"{customer}/{name}"


def add_note(app: App, customer: str, body: str, *, instance: str | None = None) -> NoteRecord:
    """Record a note by ``app.actor`` on ``customer`` (and ``instance``), with an event."""
    _check_customer(app, customer)
    key = _instance_key(app, customer, instance)
    text = body.strip()
    problems = []
    if not text:
        problems.append(Problem(message="the note is empty", path="body",
                                hint="write what others should know about this customer"))
    elif len(text) > MAX_BODY:
        problems.append(Problem(message=f"the note has {len(text):,} characters "
                                        f"(at most {MAX_BODY:,})", path="body",
                                hint="shorten it, or link to a longer document"))
    if problems:
        raise ValidationFailed(problems, what="note")
    now = datetime.now(UTC)
    first_line = text.splitlines()[0]
    shown = first_line if len(first_line) <= 80 else first_line[:79] + "…"
    with app.db().begin() as conn:
        result = conn.execute(notes.insert().values(
            customer=customer, instance=key, author=app.actor, body=text, created_at=now))
        primary = result.inserted_primary_key
        note_id = int(primary[0]) if primary else 0
        append_event(conn, "note.created",
                     f"{app.actor} added a note on {key or customer}: {shown}",
                     actor=app.actor, instance=key,
                     data={"customer": customer, "instance": key, "note": note_id})
        row = conn.execute(sa.select(notes).where(notes.c.id == note_id)).one()
    return _record(row)


def list_notes(app: App, customer: str, *, instance: str | None = None, limit: int = 50,
               before: int | None = None) -> list[NoteRecord]:
    """A customer's notes, newest first; ``before`` (a note id) pages back in time."""
    _check_customer(app, customer)
    key = _instance_key(app, customer, instance)
    query = sa.select(notes).where(notes.c.customer == customer)
    if key is not None:
        query = query.where(notes.c.instance == key)
    if before is not None:
        query = query.where(notes.c.id < before)
    query = query.order_by(notes.c.id.desc()).limit(max(1, min(limit, 500)))
    with app.db().read() as conn:
        return [_record(row) for row in conn.execute(query)]

"""Feature flag tables (migration 0003), registered on the shared ``metadata``.

``flags`` and ``flag_segments`` hold the current definitions (JSON in the API form) with a
per-item ``version`` and, for items imported from the workspace by ``rollwave flags sync``, the
``git_path`` and ``git_hash`` (canonical content hash of the definition as synced) — a current
definition whose hash differs from ``git_hash`` has drifted from git. ``flag_meta`` holds the
store-wide ``revision`` (one row, bumped in every flag write transaction: the ETag source and
what other processes poll). ``flag_history`` keeps every change with before and after, for
audit and one-step revert. ``flag_rollouts`` is the state of guarded progressive rollouts,
driven level-triggered by the worker tick. ``notification_outbox`` holds notifications
enqueued in the transaction of the change they report, delivered (and retried) by the worker.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, String, Table, Text

from rollwave.storage.tables import SeqId, UtcDateTime, metadata

flags = Table(
    "flags", metadata,
    Column("key", String(200), primary_key=True),
    Column("definition", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("git_path", String(300), nullable=True),
    Column("git_hash", String(64), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("updated_by", String(200), nullable=False),
)

flag_segments = Table(
    "flag_segments", metadata,
    Column("key", String(200), primary_key=True),
    Column("definition", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("git_path", String(300), nullable=True),
    Column("git_hash", String(64), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("updated_by", String(200), nullable=False),
)

flag_meta = Table(
    "flag_meta", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("revision", BigInteger, nullable=False),
)

flag_history = Table(
    "flag_history", metadata,
    Column("id", SeqId, primary_key=True, autoincrement=True),
    Column("kind", String(10), nullable=False),  # flag | segment
    Column("key", String(200), nullable=False),
    Column("version", Integer, nullable=False),  # the item's version after the change
    Column("revision", BigInteger, nullable=False),
    Column("action", String(30), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("event_seq", BigInteger, nullable=True),
    Column("rollout_id", String(100), nullable=True),
)
Index("ix_flag_history_key", flag_history.c.kind, flag_history.c.key, flag_history.c.id)

flag_rollouts = Table(
    "flag_rollouts", metadata,
    Column("id", String(100), primary_key=True),
    Column("flag_key", String(200), nullable=False),
    Column("environment", String(100), nullable=True),
    Column("active_key", String(320), nullable=True, unique=True),  # NULL once finished
    Column("plan", JSON, nullable=False),
    Column("baseline", JSON, nullable=False),
    Column("state", String(20), nullable=False),
    Column("step", Integer, nullable=False),
    Column("safe_step", Integer, nullable=False),
    Column("step_at", UtcDateTime(), nullable=True),
    Column("passed_at", UtcDateTime(), nullable=True),
    Column("next_guard_at", UtcDateTime(), nullable=True),
    Column("flag_version", Integer, nullable=False),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),
    Column("verdict", JSON, nullable=True),
    Column("held", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime(), nullable=True),
)
Index("ix_flag_rollouts_state", flag_rollouts.c.state)
Index("ix_flag_rollouts_flag", flag_rollouts.c.flag_key, flag_rollouts.c.created_at)

notification_outbox = Table(
    "notification_outbox", metadata,
    Column("id", SeqId, primary_key=True, autoincrement=True),
    Column("channel", String(100), nullable=False),
    Column("event", String(60), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("claimed_until", UtcDateTime(), nullable=True),
    Column("sent_at", UtcDateTime(), nullable=True),
    Column("failed_at", UtcDateTime(), nullable=True),
    Column("last_error", Text, nullable=False),
)
Index("ix_outbox_pending", notification_outbox.c.sent_at, notification_outbox.c.failed_at,
      notification_outbox.c.next_attempt_at)

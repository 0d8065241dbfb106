"""The database schema (SQLAlchemy Core). Alembic migrations in ``migrations/`` create it.

State lives here; every change of state appends a row to ``events`` in the same transaction
(see :mod:`rollwave.storage.events`). ``instance_state`` is the read model behind the
customer × version matrix, kept current as deployments finish.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which stores naive text) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

# Integer primary keys that autoincrement on SQLite and PostgreSQL alike.
SeqId = BigInteger().with_variant(Integer(), "sqlite")

releases = Table(
    "releases", metadata,
    Column("id", String(100), primary_key=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("notes", Text, nullable=False, default=""),
    Column("workspace_hash", String(64), nullable=False),
    Column("versions", JSON, nullable=False),
    Column("config_digest", String(64), nullable=True),
)

config_blobs = Table(
    "config_blobs", metadata,
    Column("hash", String(64), primary_key=True),
    Column("content", JSON, nullable=False),
)

release_configs = Table(
    "release_configs", metadata,
    Column("release_id", String(100), ForeignKey("releases.id"), primary_key=True),
    Column("instance", String(200), primary_key=True),
    Column("service", String(100), primary_key=True),
    Column("config_hash", String(64), nullable=False),
)

rollouts = Table(
    "rollouts", metadata,
    Column("id", String(100), primary_key=True),
    Column("release_id", String(100), ForeignKey("releases.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("policy", String(100), nullable=False),
    Column("state", String(30), nullable=False),
    Column("emergency", Boolean, nullable=False, default=False),
    Column("reason", Text, nullable=False, default=""),
    Column("requested_by", String(200), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("plan", JSON, nullable=False),
    Column("current_wave", Integer, nullable=False, default=0),
    Column("outcome", String(30), nullable=True),
    Column("summary", Text, nullable=False, default=""),
    Column("waiting_for", Text, nullable=False, default=""),
    Column("parent_id", String(100), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)
Index("ix_rollouts_state", rollouts.c.state)
Index("ix_rollouts_created", rollouts.c.created_at)

rollout_targets = Table(
    "rollout_targets", metadata,
    Column("rollout_id", String(100), ForeignKey("rollouts.id"), primary_key=True),
    Column("instance", String(200), primary_key=True),
    Column("wave", Integer, nullable=False),
    Column("position", Integer, nullable=False),
    Column("state", String(30), nullable=False),
    Column("changes", JSON, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("outcome", String(30), nullable=True),
    Column("explanation", Text, nullable=False, default=""),
    Column("verdict", JSON, nullable=True),
    Column("next_window", UtcDateTime(), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)
Index("ix_targets_state", rollout_targets.c.rollout_id, rollout_targets.c.state)
Index("ix_targets_instance", rollout_targets.c.instance)

instance_state = Table(
    "instance_state", metadata,
    Column("instance", String(200), primary_key=True),
    Column("service", String(100), primary_key=True),
    Column("customer", String(100), nullable=False),
    Column("version", String(100), nullable=True),
    Column("config_hash", String(64), nullable=True),
    Column("previous_version", String(100), nullable=True),
    Column("previous_config_hash", String(64), nullable=True),
    Column("health", String(30), nullable=False, default="unknown"),
    Column("release_id", String(100), nullable=True),
    Column("rollout_id", String(100), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)
Index("ix_instance_state_customer", instance_state.c.customer)

events = Table(
    "events", metadata,
    Column("seq", SeqId, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("kind", String(60), nullable=False),
    Column("rollout_id", String(100), nullable=True),
    Column("instance", String(200), nullable=True),
    Column("message", Text, nullable=False),
    Column("data", JSON, nullable=True),
)
Index("ix_events_rollout", events.c.rollout_id, events.c.seq)
Index("ix_events_kind", events.c.kind)
Index("ix_events_instance", events.c.instance, events.c.seq)

controls = Table(
    "controls", metadata,
    Column("id", SeqId, primary_key=True, autoincrement=True),
    Column("rollout_id", String(100), ForeignKey("rollouts.id"), nullable=False),
    Column("action", String(20), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("wave", Integer, nullable=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("consumed_at", UtcDateTime(), nullable=True),
)
Index("ix_controls_pending", controls.c.rollout_id, controls.c.consumed_at)

deploy_logs = Table(
    "deploy_logs", metadata,
    Column("id", SeqId, primary_key=True, autoincrement=True),
    Column("rollout_id", String(100), nullable=False),
    Column("instance", String(200), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("purpose", String(20), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("text", Text, nullable=False),
)
Index("ix_deploy_logs_rollout", deploy_logs.c.rollout_id, deploy_logs.c.instance)

workers = Table(
    "workers", metadata,
    Column("id", String(100), primary_key=True),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("heartbeat_at", UtcDateTime(), nullable=False),
    Column("load", Float, nullable=False, default=0.0),
)


# --- access (users, API tokens, dashboard sessions) and notes ----------------------------------

users = Table(
    "users", metadata,
    Column("id", SeqId, primary_key=True, autoincrement=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=True),  # argon2id; NULL: token-only account
    Column("roles", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", SeqId, primary_key=True, autoincrement=True),
    Column("user_id", SeqId, ForeignKey("users.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("prefix", String(16), nullable=False),  # shown to people to tell tokens apart
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 of the secret
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("last_used_at", UtcDateTime(), nullable=True),
    Column("revoked", Boolean, nullable=False, default=False),
)

sessions = Table(
    "sessions", metadata,
    Column("id_hash", String(64), primary_key=True),  # sha256 of the cookie value
    Column("user_id", SeqId, ForeignKey("users.id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)

notes = Table(
    "notes", metadata,
    Column("id", SeqId, primary_key=True, autoincrement=True),
    Column("customer", String(100), nullable=False),
    Column("instance", String(200), nullable=True),
    Column("author", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)
Index("ix_notes_customer", notes.c.customer, notes.c.created_at)

from rollwave.storage import flag_tables  # noqa: E402, F401 - flags register on metadata

"""Feature flags: definitions, store revision, history, guarded rollouts, notification outbox.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SeqId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _definitions(name: str) -> None:
    op.create_table(
        name,
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("git_path", sa.String(300), nullable=True),
        sa.Column("git_hash", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f(f"pk_{name}")),
    )


def upgrade() -> None:
    _definitions("flags")
    _definitions("flag_segments")
    meta = op.create_table(
        "flag_meta",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_meta")),
    )
    op.bulk_insert(meta, [{"id": 1, "revision": 0}])
    op.create_table(
        "flag_history",
        sa.Column("id", SeqId, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(30), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("event_seq", sa.BigInteger(), nullable=True),
        sa.Column("rollout_id", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_history")),
    )
    op.create_index("ix_flag_history_key", "flag_history", ["kind", "key", "id"])
    op.create_table(
        "flag_rollouts",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("flag_key", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(100), nullable=True),
        sa.Column("active_key", sa.String(320), nullable=True),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("baseline", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("safe_step", sa.Integer(), nullable=False),
        sa.Column("step_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("passed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_guard_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("flag_version", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verdict", sa.JSON(), nullable=True),
        sa.Column("held", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_rollouts")),
        sa.UniqueConstraint("active_key", name=op.f("uq_flag_rollouts_active_key")),
    )
    op.create_index("ix_flag_rollouts_state", "flag_rollouts", ["state"])
    op.create_index("ix_flag_rollouts_flag", "flag_rollouts", ["flag_key", "created_at"])
    op.create_table(
        "notification_outbox",
        sa.Column("id", SeqId, autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("event", sa.String(60), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_outbox")),
    )
    op.create_index("ix_outbox_pending", "notification_outbox",
                    ["sent_at", "failed_at", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_pending", table_name="notification_outbox")
    op.drop_table("notification_outbox")
    op.drop_index("ix_flag_rollouts_flag", table_name="flag_rollouts")
    op.drop_index("ix_flag_rollouts_state", table_name="flag_rollouts")
    op.drop_table("flag_rollouts")
    op.drop_index("ix_flag_history_key", table_name="flag_history")
    op.drop_table("flag_history")
    op.drop_table("flag_meta")
    op.drop_table("flag_segments")
    op.drop_table("flags")

"""Indexes for per-instance history: events by instance, rollout targets by instance.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_instance", "events", ["instance", "seq"])
    op.create_index("ix_targets_instance", "rollout_targets", ["instance"])


def downgrade() -> None:
    op.drop_index("ix_targets_instance", table_name="rollout_targets")
    op.drop_index("ix_events_instance", table_name="events")

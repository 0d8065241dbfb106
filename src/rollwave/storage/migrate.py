"""Create or upgrade the schema with Alembic, safely when several processes start at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

if TYPE_CHECKING:
    from rollwave.storage.db import Database

_LOCK_KEY = 7_466_202_611  # any constant: one advisory lock for Rollwave migrations


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "rollwave.storage:migrations")
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.read_engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database) -> None:
    """Bring the schema to the newest revision (a no-op when it already is)."""
    head = head_revision()
    if current_revision(db) == head:
        return
    cfg = alembic_config()
    with db.begin() as conn:
        if not db.is_sqlite:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

"""Releases and their content-addressed config snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rollwave.storage.tables import config_blobs, release_configs, releases


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """An immutable release: service versions, notes, the workspace it was cut from."""

    id: str
    created_at: datetime
    created_by: str
    notes: str
    workspace_hash: str
    versions: Mapping[str, str]
    config_digest: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "created_at": self.created_at.isoformat(),
                "created_by": self.created_by, "notes": self.notes,
                "workspace_hash": self.workspace_hash, "versions": dict(self.versions),
                "config_digest": self.config_digest}


def _record(row: Any) -> ReleaseRecord:
    return ReleaseRecord(id=row.id, created_at=row.created_at, created_by=row.created_by,
                         notes=row.notes, workspace_hash=row.workspace_hash,
                         versions=dict(row.versions), config_digest=row.config_digest)


def insert_release(conn: Connection, record: ReleaseRecord) -> None:
    conn.execute(releases.insert().values(
        id=record.id, created_at=record.created_at, created_by=record.created_by,
        notes=record.notes, workspace_hash=record.workspace_hash,
        versions=dict(record.versions), config_digest=record.config_digest))


def get_release(conn: Connection, release_id: str) -> ReleaseRecord | None:
    row = conn.execute(sa.select(releases).where(releases.c.id == release_id)).first()
    return _record(row) if row else None


def list_releases(conn: Connection, limit: int = 100) -> list[ReleaseRecord]:
    rows = conn.execute(sa.select(releases).order_by(releases.c.created_at.desc()).limit(limit))
    return [_record(row) for row in rows]


def store_blobs(conn: Connection, blobs: Mapping[str, Any]) -> None:
    """Insert config contents by hash, skipping those already stored (content-addressed)."""
    if not blobs:
        return
    existing: set[str] = set()
    hashes = list(blobs)
    for start in range(0, len(hashes), 500):
        chunk = hashes[start:start + 500]
        existing.update(conn.execute(
            sa.select(config_blobs.c.hash).where(config_blobs.c.hash.in_(chunk))).scalars())
    new = [{"hash": h, "content": blobs[h]} for h in hashes if h not in existing]
    if new:
        conn.execute(config_blobs.insert(), new)


def get_blobs(conn: Connection, hashes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for start in range(0, len(hashes), 500):
        chunk = hashes[start:start + 500]
        for row in conn.execute(sa.select(config_blobs).where(config_blobs.c.hash.in_(chunk))):
            out[row.hash] = row.content
    return out


def store_release_configs(conn: Connection, release_id: str,
                          hashes: Mapping[tuple[str, str], str]) -> None:
    """Record which config (by hash) the release gives each (instance, service)."""
    rows = [{"release_id": release_id, "instance": inst, "service": svc, "config_hash": h}
            for (inst, svc), h in sorted(hashes.items())]
    for start in range(0, len(rows), 1000):
        conn.execute(release_configs.insert(), rows[start:start + 1000])


def release_config_hashes(conn: Connection, release_id: str) -> dict[str, dict[str, str]]:
    """instance → service → config hash for a release."""
    out: dict[str, dict[str, str]] = {}
    query = sa.select(release_configs).where(release_configs.c.release_id == release_id)
    for row in conn.execute(query):
        out.setdefault(row.instance, {})[row.service] = row.config_hash
    return out

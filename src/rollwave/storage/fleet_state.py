"""The fleet-state read model: what each instance runs after its last finished deployment.

This is the customer × version matrix, kept current as deployments finish (not rebuilt from
history), and what planning reads as "what it runs now".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rollwave.core.planning import InstanceState
from rollwave.storage.tables import instance_state


@dataclass(frozen=True, slots=True)
class ServiceState:
    instance: str
    service: str
    customer: str
    version: str | None
    config_hash: str | None
    previous_version: str | None
    previous_config_hash: str | None
    health: str
    release_id: str | None
    rollout_id: str | None
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"instance": self.instance, "service": self.service, "customer": self.customer,
                "version": self.version, "config_hash": self.config_hash,
                "previous_version": self.previous_version, "health": self.health,
                "release_id": self.release_id, "rollout_id": self.rollout_id,
                "updated_at": self.updated_at.isoformat()}


def _row(row: Any) -> ServiceState:
    return ServiceState(
        instance=row.instance, service=row.service, customer=row.customer, version=row.version,
        config_hash=row.config_hash, previous_version=row.previous_version,
        previous_config_hash=row.previous_config_hash, health=row.health,
        release_id=row.release_id, rollout_id=row.rollout_id, updated_at=row.updated_at)


_UPSERT_UPDATE = instance_state.update().where(
    instance_state.c.instance == sa.bindparam("w_instance"),
    instance_state.c.service == sa.bindparam("w_service"),
).values(
    # the old values become previous_* only when something changes
    previous_version=sa.case(
        (sa.or_(instance_state.c.version != sa.bindparam("v_version"),
                instance_state.c.config_hash.is_distinct_from(sa.bindparam("v_config"))),
         instance_state.c.version), else_=instance_state.c.previous_version),
    previous_config_hash=sa.case(
        (sa.or_(instance_state.c.version != sa.bindparam("v_version"),
                instance_state.c.config_hash.is_distinct_from(sa.bindparam("v_config"))),
         instance_state.c.config_hash), else_=instance_state.c.previous_config_hash),
    version=sa.bindparam("v_version"), config_hash=sa.bindparam("v_config"),
    health=sa.bindparam("v_health"), release_id=sa.bindparam("v_release"),
    rollout_id=sa.bindparam("v_rollout"), updated_at=sa.bindparam("v_at"),
)
_INSERT = instance_state.insert()


def record_deployed(conn: Connection, instance: str, customer: str,
                    versions: Mapping[str, str], config_hashes: Mapping[str, str | None], *,
                    health: str, release_id: str | None, rollout_id: str | None,
                    at: datetime | None = None) -> None:
    """Upsert each service's state; the old values become ``previous_*`` when they change."""
    now = at or datetime.now(UTC)
    for service, version in versions.items():
        cfg = config_hashes.get(service)
        updated = conn.execute(_UPSERT_UPDATE, {
            "w_instance": instance, "w_service": service, "v_version": version,
            "v_config": cfg, "v_health": health, "v_release": release_id,
            "v_rollout": rollout_id, "v_at": now}).rowcount
        if not updated:
            conn.execute(_INSERT, {
                "instance": instance, "service": service, "customer": customer,
                "version": version, "config_hash": cfg, "health": health,
                "release_id": release_id, "rollout_id": rollout_id, "updated_at": now})


@dataclass(frozen=True, slots=True)
class Deployed:
    """One instance's services as just deployed (for :func:`record_deployed_many`)."""

    instance: str
    customer: str
    versions: Mapping[str, str]
    config_hashes: Mapping[str, str | None]
    health: str
    release_id: str | None
    rollout_id: str | None
    at: datetime


def record_deployed_many(conn: Connection, deployed: Sequence[Deployed]) -> None:
    """:func:`record_deployed` for many instances in three statements."""
    if not deployed:
        return
    known = {(row.instance, row.service) for row in conn.execute(
        sa.select(instance_state.c.instance, instance_state.c.service).where(
            instance_state.c.instance.in_([d.instance for d in deployed])))}
    updates: list[dict[str, Any]] = []
    inserts: list[dict[str, Any]] = []
    for d in deployed:
        for service, version in d.versions.items():
            cfg = d.config_hashes.get(service)
            if (d.instance, service) in known:
                updates.append({"w_instance": d.instance, "w_service": service,
                                "v_version": version, "v_config": cfg, "v_health": d.health,
                                "v_release": d.release_id, "v_rollout": d.rollout_id,
                                "v_at": d.at})
            else:
                inserts.append({"instance": d.instance, "service": service,
                                "customer": d.customer, "version": version,
                                "config_hash": cfg, "health": d.health,
                                "release_id": d.release_id, "rollout_id": d.rollout_id,
                                "updated_at": d.at})
    if updates:
        conn.execute(_UPSERT_UPDATE, updates)
    if inserts:
        conn.execute(_INSERT, inserts)


def set_health(conn: Connection, instance: str, health: str) -> None:
    conn.execute(instance_state.update().where(instance_state.c.instance == instance)
                 .values(health=health, updated_at=datetime.now(UTC)))


def current_states(conn: Connection,
                   instances: Sequence[str] | None = None) -> dict[str, InstanceState]:
    """instance → what it runs now, in planning's terms."""
    query = sa.select(instance_state.c.instance, instance_state.c.service,
                      instance_state.c.version, instance_state.c.config_hash)
    if instances is not None and len(instances) < 500:
        query = query.where(instance_state.c.instance.in_(list(instances)))
    versions: dict[str, dict[str, str]] = {}
    hashes: dict[str, dict[str, str]] = {}
    for row in conn.execute(query):
        if row.version is not None:
            versions.setdefault(row.instance, {})[row.service] = row.version
        if row.config_hash is not None:
            hashes.setdefault(row.instance, {})[row.service] = row.config_hash
    keys = set(versions) | set(hashes)
    return {k: InstanceState(versions=versions.get(k, {}), config_hashes=hashes.get(k, {}))
            for k in keys}


def service_states(conn: Connection, *, customer: str | None = None,
                   instance: str | None = None) -> list[ServiceState]:
    query = sa.select(instance_state)
    if customer:
        query = query.where(instance_state.c.customer == customer)
    if instance:
        query = query.where(instance_state.c.instance == instance)
    query = query.order_by(instance_state.c.instance, instance_state.c.service)
    return [_row(row) for row in conn.execute(query)]

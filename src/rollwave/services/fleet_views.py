"""Read queries behind the dashboard's fleet matrix, customer pages and overview.

The matrix is ``instance_state`` (what each instance runs, with health) joined in memory with
the workspace's customers (their tier, region and tags, for filters) from the light
:class:`~rollwave.services.fleet_index.FleetIndex`.

Paging is done on the filtered instance list, so a page queries ``instance_state`` only for
its own instances; health and drift filters read the (narrow) state of every instance once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from rollwave.core import tagexpr
from rollwave.core.planning import KEEP_VERSION
from rollwave.core.states import RolloutState
from rollwave.errors import NotFound, Problem, ValidationFailed
from rollwave.services.context import App
from rollwave.services.fleet_index import (
    MAX_FILE_BYTES,
    RESCAN_SECONDS,
    FleetIndex,
    IndexRow,
    fleet_index,
    rows_from_document,
)
from rollwave.storage.tables import (
    events,
    instance_state,
    notes,
    releases,
    rollout_targets,
    rollouts,
)

HEALTH_ORDER = ("unhealthy", "unverified", "unknown", "healthy")

__all__ = ["MAX_FILE_BYTES", "RESCAN_SECONDS", "FleetIndex", "IndexRow", "fleet_index",
           "rows_from_document"]


# --- the matrix --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cell:
    """One instance × service: what it runs and how it is."""

    version: str | None
    health: str  # healthy / unverified / unhealthy / unknown / absent (not deployed)
    drift: bool  # differs from the service's reference version
    previous_version: str | None = None
    release_id: str | None = None
    rollout_id: str | None = None
    config_hash: str | None = None
    updated_at: datetime | None = None
    runs: bool = True  # False: the instance does not run this service

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "health": self.health, "drift": self.drift,
                "previous_version": self.previous_version, "release_id": self.release_id,
                "rollout_id": self.rollout_id, "config_hash": self.config_hash,
                "updated_at": self.updated_at.isoformat() if self.updated_at else None,
                "runs": self.runs}


@dataclass(frozen=True, slots=True)
class MatrixRow:
    row: IndexRow
    cells: tuple[Cell, ...]

    @property
    def worst_health(self) -> str:
        present = {c.health for c in self.cells if c.runs}
        return next((h for h in HEALTH_ORDER if h in present), "absent")

    def to_dict(self, services: Sequence[str]) -> dict[str, Any]:
        r = self.row
        return {"instance": r.key, "customer": r.customer, "customer_name": r.customer_name,
                "environment": r.environment, "tier": r.tier, "region": r.region,
                "tags": sorted(r.tags),
                "services": {s: c.to_dict() for s, c in zip(services, self.cells, strict=True)}}


@dataclass(frozen=True)
class MatrixQuery:
    """Filters and paging of the matrix (all optional)."""

    q: str = ""
    match: str = ""
    tier: str = ""
    region: str = ""
    tag: str = ""
    environment: str = ""
    health: str = ""  # a health value, or "attention" = anything but healthy
    drift: bool = False
    service: str = ""  # restricts health/drift filters to one service
    page: int = 1
    per_page: int = 100


@dataclass(frozen=True)
class MatrixPage:
    query: MatrixQuery
    services: tuple[str, ...]
    rows: tuple[MatrixRow, ...]
    total: int  # instances matching the filters
    fleet_instances: int
    fleet_customers: int
    reference: Mapping[str, str]  # service -> the version drift is measured against
    reference_source: Mapping[str, str]
    versions: Mapping[str, list[tuple[str, int]]]  # service -> (version, instances), fleet-wide
    health_counts: Mapping[str, int]
    facets: Mapping[str, list[str]]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.query.per_page))

    def to_dict(self) -> dict[str, Any]:
        return {"page": self.query.page, "per_page": self.query.per_page, "pages": self.pages,
                "total": self.total, "fleet_instances": self.fleet_instances,
                "fleet_customers": self.fleet_customers, "services": list(self.services),
                "reference_versions": dict(self.reference),
                "versions": {s: [{"version": v, "instances": n} for v, n in vs]
                             for s, vs in self.versions.items()},
                "health": dict(self.health_counts),
                "rows": [r.to_dict(self.services) for r in self.rows]}


def _check_query(query: MatrixQuery) -> tagexpr.Expr | None:
    problems = []
    expr = None
    if query.match.strip():
        try:
            expr = tagexpr.parse(query.match)
        except tagexpr.TagExprError as exc:
            problems.append(Problem(message=f"tag expression: {exc}", path="match",
                                    hint="e.g. tier == enterprise and region in (eu-west, "
                                         "eu-central)"))
    if query.per_page < 1 or query.per_page > 1000:
        problems.append(Problem(message="per_page must be between 1 and 1000", path="per_page"))
    if query.page < 1:
        problems.append(Problem(message="page starts at 1", path="page"))
    if problems:
        raise ValidationFailed(problems, what="fleet filter")
    return expr


def _filter_rows(index: FleetIndex, query: MatrixQuery,
                 expr: tagexpr.Expr | None) -> list[IndexRow]:
    rows: Iterable[IndexRow] = index.rows
    needle = query.q.strip().lower()
    if needle:
        words = needle.split()
        rows = [r for r in rows if all(w in r.search for w in words)]
    if query.tier:
        rows = [r for r in rows if r.tier == query.tier]
    if query.region:
        rows = [r for r in rows if r.region == query.region]
    if query.tag:
        rows = [r for r in rows if query.tag in r.tags]
    if query.environment:
        rows = [r for r in rows if r.environment == query.environment]
    if expr is not None:
        facts = index.facts
        rows = [r for r in rows if tagexpr.evaluate(expr, facts[r.key])]
    return list(rows)


def reference_versions(app: App, services: Sequence[str],
                       counts: Mapping[str, list[tuple[str, int]]]) -> tuple[dict[str, str],
                                                                               dict[str, str]]:
    """Per service, the version drift is measured against, and where it comes from.

    The release of the newest rollout that succeeded sets it; a service that release keeps
    (or does not name) falls back to the fleet's most common version.
    """
    reference: dict[str, str] = {}
    source: dict[str, str] = {}
    query = (sa.select(releases.c.id, releases.c.versions)
             .join(rollouts, rollouts.c.release_id == releases.c.id)
             .where(rollouts.c.state == RolloutState.SUCCEEDED.value,
                    rollouts.c.kind == "deploy")
             .order_by(rollouts.c.finished_at.desc()).limit(20))
    with app.db().read() as conn:
        for release_id, versions in conn.execute(query):
            for service, version in (versions or {}).items():
                if service in services and service not in reference and version != KEEP_VERSION:
                    reference[service] = version
                    source[service] = f"release {release_id}"
    for service in services:
        if service not in reference and counts.get(service):
            reference[service] = counts[service][0][0]
            source[service] = "most common version"
    return reference, source


SUMMARY_SECONDS = 2.0
"""How long fleet-wide version and health counts are reused (they scan instance_state)."""

_summaries: dict[str, tuple[float, Any]] = {}
_summaries_lock = threading.Lock()


def version_counts(app: App) -> tuple[dict[str, list[tuple[str, int]]], dict[str, int]]:
    """Fleet-wide: service -> (version, instances) most common first; health -> instances.

    Cached per database for :data:`SUMMARY_SECONDS` (a GROUP BY over every instance)."""
    key = app.db().url
    now = time.monotonic()
    with _summaries_lock:
        cached = _summaries.get(key)
    if cached is not None and now - cached[0] < SUMMARY_SECONDS:
        result: tuple[dict[str, list[tuple[str, int]]], dict[str, int]] = cached[1]
        return result
    result = _count_versions(app)
    with _summaries_lock:
        _summaries[key] = (now, result)
    return result


def _count_versions(app: App) -> tuple[dict[str, list[tuple[str, int]]], dict[str, int]]:
    query = (sa.select(instance_state.c.service, instance_state.c.version,
                       instance_state.c.health, sa.func.count())
             .group_by(instance_state.c.service, instance_state.c.version,
                       instance_state.c.health))
    versions: dict[str, Counter[str]] = {}
    health: Counter[str] = Counter()
    with app.db().read() as conn:
        for service, version, state, count in conn.execute(query):
            versions.setdefault(service, Counter())[version or "-"] += int(count)
            health[state] += int(count)
    return ({s: c.most_common() for s, c in versions.items()}, dict(health))


def _states_for(app: App, keys: Sequence[str] | None) -> dict[tuple[str, str], Any]:
    cols = (instance_state.c.instance, instance_state.c.service, instance_state.c.version,
            instance_state.c.health, instance_state.c.previous_version,
            instance_state.c.release_id, instance_state.c.rollout_id,
            instance_state.c.config_hash, instance_state.c.updated_at)
    out: dict[tuple[str, str], Any] = {}
    row: Any
    with app.db().read() as conn:
        if keys is None:
            for row in conn.execute(sa.select(*cols[:4])):
                out[(row.instance, row.service)] = row
            return out
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            for row in conn.execute(sa.select(*cols).where(instance_state.c.instance.in_(chunk))):
                out[(row.instance, row.service)] = row
    return out


def _instances_matching(app: App, query: MatrixQuery, services: Sequence[str],
                        reference: Mapping[str, str]) -> set[str]:
    """Instances with a state row matching the health/drift filters (for ``absent``: every
    instance with any state, which the caller then excludes)."""
    conditions: list[Any] = [instance_state.c.service.in_(list(services))]
    if query.health == "attention":
        conditions.append(instance_state.c.health != "healthy")
    elif query.health and query.health != "absent":
        conditions.append(instance_state.c.health == query.health)
    if query.drift:
        behind = [sa.and_(instance_state.c.service == s, instance_state.c.version != v)
                  for s, v in reference.items() if s in services]
        conditions.append(sa.or_(*behind) if behind else sa.false())
    select = sa.select(instance_state.c.instance).where(*conditions).distinct()
    with app.db().read() as conn:
        return set(conn.execute(select).scalars())


def _cell(row: IndexRow, service: str, state: Any, reference: Mapping[str, str]) -> Cell:
    runs = row.services is None or service in row.services
    if state is None:
        return Cell(version=None, health="absent", drift=False, runs=runs)
    version = state.version
    ref = reference.get(service)
    return Cell(version=version, health=state.health or "unknown",
                drift=bool(ref and version and version != ref),
                previous_version=getattr(state, "previous_version", None),
                release_id=getattr(state, "release_id", None),
                rollout_id=getattr(state, "rollout_id", None),
                config_hash=getattr(state, "config_hash", None),
                updated_at=getattr(state, "updated_at", None), runs=runs)


def matrix(app: App, query: MatrixQuery) -> MatrixPage:
    """One page of the customer × service matrix with filters applied.

    Raises ValidationFailed for a bad tag expression or paging values.
    """
    expr = _check_query(query)
    index = fleet_index(app)
    counts, health_counts = version_counts(app)
    services = index.services or tuple(sorted(counts))
    reference, source = reference_versions(app, services, counts)
    rows = _filter_rows(index, query, expr)
    if query.health or query.drift:
        wanted = [query.service] if query.service in services else list(services)
        keep = _instances_matching(app, query, wanted, reference)
        rows = [r for r in rows if (r.key in keep) != (query.health == "absent")]
    total = len(rows)
    start = (query.page - 1) * query.per_page
    page_rows = rows[start:start + query.per_page]
    page_states = _states_for(app, [r.key for r in page_rows])
    out = tuple(MatrixRow(row=r, cells=tuple(_cell(r, s, page_states.get((r.key, s)), reference)
                                             for s in services)) for r in page_rows)
    return MatrixPage(query=query, services=services, rows=out, total=total,
                      fleet_instances=len(index.rows), fleet_customers=index.customer_count,
                      reference=reference, reference_source=source, versions=counts,
                      health_counts=health_counts, facets=index.facets())


# --- one customer ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerView:
    """What the customer page shows (config layers are loaded separately: they need the
    whole workspace)."""

    customer: str
    name: str
    rows: tuple[IndexRow, ...]
    services: tuple[str, ...]
    states: Mapping[tuple[str, str], Cell]
    deployments: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    events: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer": self.customer, "name": self.name,
            "instances": [{"instance": r.key, "environment": r.environment, "tier": r.tier,
                           "region": r.region, "tags": sorted(r.tags),
                           "services": {s: self.states[(r.key, s)].to_dict()
                                        for s in self.services if (r.key, s) in self.states}}
                          for r in self.rows],
            "deployments": self.deployments, "notes": self.notes, "events": self.events}


def customer_view(app: App, customer: str, *, history: int = 50) -> CustomerView:
    """A customer's instances with their state, deployment history, notes and events."""
    index = fleet_index(app)
    rows = index.by_customer.get(customer)
    if not rows:
        raise NotFound(f"no customer '{customer}' in this workspace",
                       hint="search the fleet matrix for it")
    keys = [r.key for r in rows]
    counts, _ = version_counts(app)
    services = index.services or tuple(sorted(counts))
    reference, _ = reference_versions(app, services, counts)
    raw = _states_for(app, keys)
    states = {(r.key, s): _cell(r, s, raw.get((r.key, s)), reference)
              for r in rows for s in services}
    target_query = (sa.select(rollout_targets.c.rollout_id, rollout_targets.c.instance,
                              rollout_targets.c.state, rollout_targets.c.changes,
                              rollout_targets.c.started_at, rollout_targets.c.finished_at,
                              rollout_targets.c.explanation, rollouts.c.release_id,
                              rollouts.c.kind, rollouts.c.state.label("rollout_state"),
                              rollouts.c.created_at)
                    .join(rollouts, rollouts.c.id == rollout_targets.c.rollout_id)
                    .where(rollout_targets.c.instance.in_(keys))
                    .order_by(rollouts.c.created_at.desc()).limit(history))
    note_query = (sa.select(notes).where(notes.c.customer == customer)
                  .order_by(notes.c.id.desc()).limit(100))
    event_query = (sa.select(events).where(sa.or_(
        events.c.instance.in_(keys), events.c.kind == "note.created"),
        events.c.kind != "instance.progress")  # verification chatter: see the evidence
                   .order_by(events.c.seq.desc()).limit(history * 4))
    with app.db().read() as conn:
        deployments = [dict(r._mapping) for r in conn.execute(target_query)]
        note_rows = [dict(r._mapping) for r in conn.execute(note_query)]
        event_rows = [dict(r._mapping) for r in conn.execute(event_query)
                      if r.instance in keys or (r.data or {}).get("customer") == customer]
    return CustomerView(customer=customer, name=rows[0].customer_name, rows=tuple(rows),
                        services=services, states=states, deployments=deployments,
                        notes=note_rows, events=event_rows[:history])


def production_rollout(app: App, plan: Mapping[str, Any]) -> bool:
    """True when a rollout plan touches an instance in a production environment."""
    index = fleet_index(app)
    prod = index.production_environments
    if not prod:
        return True
    by_key = {r.key: r for r in index.rows}
    for wave in plan.get("waves", []):
        for target in wave.get("targets", []):
            row = by_key.get(target.get("instance", ""))
            if row is None or row.environment in prod:
                return True  # unknown instances count as production (the safe side)
    return False


# --- overview ----------------------------------------------------------------------------------


def rollout_facts(app: App, since: datetime) -> list[dict[str, Any]]:
    """Rollouts created since ``since`` (plus rollbacks of them), with how many of their
    instances were rolled back: the input of the delivery metrics."""
    failed = (sa.select(rollout_targets.c.rollout_id, sa.func.count().label("n"))
              .where(rollout_targets.c.state.in_(["rolled_back", "rollback_failed"]))
              .group_by(rollout_targets.c.rollout_id).subquery())
    query = (sa.select(rollouts.c.id, rollouts.c.kind, rollouts.c.state, rollouts.c.created_at,
                       rollouts.c.started_at, rollouts.c.finished_at, rollouts.c.parent_id,
                       sa.func.coalesce(failed.c.n, 0).label("instances_rolled_back"))
             .outerjoin(failed, failed.c.rollout_id == rollouts.c.id)
             .where(rollouts.c.created_at >= since))
    with app.db().read() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def target_counts(app: App, rollout_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """rollout id -> target state -> count, for progress bars."""
    if not rollout_ids:
        return {}
    query = (sa.select(rollout_targets.c.rollout_id, rollout_targets.c.state, sa.func.count())
             .where(rollout_targets.c.rollout_id.in_(list(rollout_ids)))
             .group_by(rollout_targets.c.rollout_id, rollout_targets.c.state))
    out: dict[str, dict[str, int]] = {}
    with app.db().read() as conn:
        for rollout_id, state, count in conn.execute(query):
            out.setdefault(rollout_id, {})[state] = int(count)
    return out


def search_rollouts(app: App, *, q: str = "", state: str = "", before: datetime | None = None,
                    limit: int = 50) -> list[Any]:
    """Rollouts newest first, filtered by text (id, release, who, reason, summary) and state;
    ``before`` (a created_at) pages back in time."""
    from rollwave.storage.rollouts import _rollout

    query = sa.select(rollouts)
    if q.strip():
        pattern = f"%{q.strip()}%"
        query = query.where(sa.or_(rollouts.c.id.ilike(pattern),
                                   rollouts.c.release_id.ilike(pattern),
                                   rollouts.c.requested_by.ilike(pattern),
                                   rollouts.c.reason.ilike(pattern),
                                   rollouts.c.summary.ilike(pattern),
                                   rollouts.c.policy.ilike(pattern)))
    if state:
        query = query.where(rollouts.c.state == state)
    if before is not None:
        query = query.where(rollouts.c.created_at < before)
    query = query.order_by(rollouts.c.created_at.desc()).limit(max(1, min(limit, 500)))
    with app.db().read() as conn:
        return [_rollout(row) for row in conn.execute(query)]


def rollout_event_window(app: App, rollout_id: str, after: int = 0,
                         limit: int = 200) -> list[dict[str, Any]]:
    """A rollout's events after sequence ``after`` (for the live timeline)."""
    query = (sa.select(events).where(events.c.rollout_id == rollout_id, events.c.seq > after)
             .order_by(events.c.seq).limit(limit))
    with app.db().read() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def last_rollout_seq(app: App, rollout_id: str) -> int:
    """The newest event sequence number of one rollout (0 when it has none)."""
    query = sa.select(sa.func.max(events.c.seq)).where(events.c.rollout_id == rollout_id)
    with app.db().read() as conn:
        return int(conn.execute(query).scalar() or 0)

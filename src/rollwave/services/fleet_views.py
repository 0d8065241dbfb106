"""Read queries behind the dashboard's fleet matrix, customer pages and overview.

The matrix is ``instance_state`` (what each instance runs, with health) joined in memory with
the workspace's customers (their tier, region and tags, for filters). Loading a whole workspace
validates every file and takes tens of seconds at 10,000 customers, so the matrix reads a
light :class:`FleetIndex` instead: each ``customers/*.yaml`` parsed once with libyaml for the
few facts it needs, re-read only when a file changes. When the full workspace is already loaded
the index is built from it (the authoritative source) instead.

Paging is done on the filtered instance list, so a page queries ``instance_state`` only for
its own instances; health and drift filters read the (narrow) state of every instance once.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from rollwave.core import tagexpr
from rollwave.core.planning import KEEP_VERSION
from rollwave.core.states import RolloutState
from rollwave.errors import NotFound, Problem, ValidationFailed
from rollwave.services.context import App
from rollwave.storage.tables import (
    events,
    instance_state,
    notes,
    releases,
    rollout_targets,
    rollouts,
)

RESCAN_SECONDS = 3.0
"""How long the file index is trusted before customer files are checked for changes again."""

MAX_FILE_BYTES = 1_000_000
"""Customer files larger than this are left out of the index (the loader reports them)."""

HEALTH_ORDER = ("unhealthy", "unverified", "unknown", "healthy")


@dataclass(frozen=True, slots=True)
class IndexRow:
    """One instance as the matrix filters it."""

    key: str
    customer: str
    customer_name: str
    instance: str
    environment: str
    tier: str | None
    region: str | None
    tags: frozenset[str]
    services: tuple[str, ...] | None  # None: every project service
    labels: Mapping[str, str]
    search: str  # lower-case text the search box matches

    def facts(self) -> tagexpr.Facts:
        attributes: dict[str, str] = dict(self.labels)
        attributes.update({"customer": self.customer, "instance": self.instance,
                           "environment": self.environment})
        if self.tier:
            attributes["tier"] = self.tier
        if self.region:
            attributes["region"] = self.region
        return tagexpr.Facts(attributes=attributes, tags=self.tags)


@dataclass(frozen=True)
class FleetIndex:
    """Every instance of the workspace, sorted by key, plus the project's service names."""

    rows: tuple[IndexRow, ...]
    services: tuple[str, ...]
    production_environments: frozenset[str]
    source: str  # "workspace" or "files"
    by_customer: dict[str, list[IndexRow]] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for row in self.rows:
            self.by_customer.setdefault(row.customer, []).append(row)

    @property
    def customer_count(self) -> int:
        return len(self.by_customer)

    @functools.cached_property
    def facts(self) -> dict[str, tagexpr.Facts]:
        """Each instance's facts for tag expressions, built once per index."""
        return {r.key: r.facts() for r in self.rows}

    @functools.cached_property
    def keys(self) -> frozenset[str]:
        return frozenset(r.key for r in self.rows)

    @functools.cached_property
    def _facets(self) -> dict[str, list[str]]:
        tiers = sorted({r.tier for r in self.rows if r.tier})
        regions = sorted({r.region for r in self.rows if r.region})
        tags = sorted({t for r in self.rows for t in r.tags})
        environments = sorted({r.environment for r in self.rows})
        return {"tier": tiers, "region": regions, "tag": tags[:200],
                "environment": environments}

    def facets(self) -> dict[str, list[str]]:
        """The values a filter can choose from: tiers, regions, tags, environments."""
        return self._facets


# --- building the index ------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _strings(value: Any, limit: int = 100) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value[:limit] if isinstance(v, str))


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in list(value.items())[:50]
            if isinstance(v, str | int | float | bool)}


def rows_from_document(doc: Any) -> list[IndexRow]:
    """The index rows of one parsed customer file (nothing for a file that is not a customer)."""
    if not isinstance(doc, dict):
        return []
    cid = _text(doc.get("id"))
    instances = doc.get("instances")
    if not cid or not isinstance(instances, dict):
        return []
    name = _text(doc.get("name")) or cid
    tier, region = _text(doc.get("tier")), _text(doc.get("region"))
    ctags = frozenset(_strings(doc.get("tags")))
    clabels = _labels(doc.get("labels"))
    out = []
    for inst_name, spec in sorted(instances.items(), key=lambda kv: str(kv[0])):
        if not isinstance(spec, dict):
            continue
        key = f"{cid}/{inst_name}"
        env = _text(spec.get("environment")) or "production"
        services = spec.get("services")
        tags = ctags | frozenset(_strings(spec.get("tags")))
        labels = {**clabels, **_labels(spec.get("labels"))}
        search = " ".join((key, name, tier or "", region or "", *sorted(tags))).lower()
        out.append(IndexRow(key=key, customer=cid, customer_name=name, instance=str(inst_name),
                            environment=env, tier=tier, region=region, tags=tags,
                            services=_strings(services) if isinstance(services, list) else None,
                            labels=labels, search=search))
    return out


_from_workspace: dict[Path, tuple[Any, FleetIndex]] = {}


def _index_from_workspace(app: App) -> FleetIndex:
    workspace = app.workspace()
    cached = _from_workspace.get(app.root)
    if cached is not None and cached[0] is workspace:
        return cached[1]
    fleet = workspace.fleet
    rows = []
    for inst in fleet.instances:
        customer = fleet.customers[inst.customer]
        name = customer.name or customer.id
        search = " ".join((inst.key, name, inst.tier or "", inst.region or "",
                           *sorted(inst.tags))).lower()
        rows.append(IndexRow(key=inst.key, customer=inst.customer, customer_name=name,
                             instance=inst.name, environment=inst.environment, tier=inst.tier,
                             region=inst.region, tags=inst.tags, services=inst.services,
                             labels=dict(inst.labels), search=search))
    project = workspace.project
    prod = frozenset(n for n, e in project.environments.items() if e.production)
    index = FleetIndex(rows=tuple(rows), services=tuple(project.services),
                       production_environments=prod, source="workspace")
    _from_workspace[app.root] = (workspace, index)
    return index


class _FileCache:
    """Parsed customer files by path, re-read when their size or mtime changes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.files: dict[str, tuple[tuple[int, int], list[IndexRow]]] = {}
        self.project: tuple[tuple[int, int], tuple[str, ...], frozenset[str]] | None = None
        self.index: FleetIndex | None = None
        self.signature: tuple[Any, ...] = ()
        self.checked = 0.0


_CACHES: dict[Path, _FileCache] = {}
_CACHES_LOCK = threading.Lock()


_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load(path: str) -> Any:
    with open(path, "rb") as handle:
        return yaml.load(handle, Loader=_LOADER)  # noqa: S506 - a safe loader (C or Python)


def _project_facts(root: Path) -> tuple[tuple[str, ...], frozenset[str]]:
    try:
        doc = _load(str(root / "rollwave.yaml"))
    except (OSError, yaml.YAMLError):
        return (), frozenset()
    doc = doc if isinstance(doc, dict) else {}
    services = doc.get("services")
    envs = doc.get("environments")
    names = tuple(str(s) for s in services) if isinstance(services, dict) else ()
    prod = frozenset(str(n) for n, e in envs.items()
                     if not isinstance(e, dict) or e.get("production", True) is not False) \
        if isinstance(envs, dict) else frozenset()
    return names, prod


def _scan(directory: Path) -> dict[str, tuple[int, int]]:
    """Path -> (mtime_ns, size) of every customer YAML file under ``directory``."""
    seen: dict[str, tuple[int, int]] = {}
    try:
        stack = list(os.scandir(directory))
    except OSError:
        return seen
    while stack:  # customers/ may have sub-folders
        entry = stack.pop()
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            try:
                stack.extend(os.scandir(entry.path))
            except OSError:
                continue
        elif entry.name.endswith((".yaml", ".yml")):
            stat = entry.stat()
            seen[entry.path] = (stat.st_mtime_ns, stat.st_size)
    return seen


def _index_from_files(root: Path) -> FleetIndex:
    with _CACHES_LOCK:
        cache = _CACHES.setdefault(root, _FileCache())
    with cache.lock:
        if cache.index is not None and time.monotonic() - cache.checked < RESCAN_SECONDS:
            return cache.index
        seen = _scan(root / "customers")
        try:
            pstat = (root / "rollwave.yaml").stat()
            psig = (pstat.st_mtime_ns, pstat.st_size)
        except OSError:
            psig = (0, 0)
        signature = (psig, tuple(sorted(seen.items())))
        if cache.index is not None and cache.signature == signature:
            cache.checked = time.monotonic()
            return cache.index
        if cache.project is None or cache.project[0] != psig:
            services, prod = _project_facts(root)
            cache.project = (psig, services, prod)
        for path in [p for p in cache.files if p not in seen]:
            del cache.files[path]
        for path, sig in seen.items():
            known = cache.files.get(path)
            if known is not None and known[0] == sig:
                continue
            rows: list[IndexRow] = []
            if sig[1] <= MAX_FILE_BYTES:
                try:
                    rows = rows_from_document(_load(path))
                except (OSError, yaml.YAMLError, RecursionError):
                    rows = []
            cache.files[path] = (sig, rows)
        all_rows = sorted((r for _, rows in cache.files.values() for r in rows),
                          key=lambda r: r.key)
        unique: dict[str, IndexRow] = {}
        for row in all_rows:
            unique.setdefault(row.key, row)
        _, services, prod = cache.project
        cache.index = FleetIndex(rows=tuple(unique.values()), services=services,
                                 production_environments=prod, source="files")
        cache.signature = signature
        cache.checked = time.monotonic()
        return cache.index


def fleet_index(app: App) -> FleetIndex:
    """The instances of ``app``'s workspace: from the loaded workspace, else from its files."""
    if app._workspace is not None:
        return _index_from_workspace(app)
    return _index_from_files(app.root)


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
        events.c.instance.in_(keys), events.c.kind == "note.created"))
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

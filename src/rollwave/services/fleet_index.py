"""A light index of a workspace's instances for the fleet matrix and customer pages.

Loading a whole workspace validates every file and takes tens of seconds at 10,000 customers,
so the matrix reads this index instead: each ``customers/*.yaml`` parsed once with libyaml for
the few facts it needs (id, name, tier, region, tags, labels, instances and environments), and
re-read only when its size or mtime changes. When the full workspace is already loaded the
index is built from it (the authoritative source) instead.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rollwave.core import tagexpr
from rollwave.services.context import App

RESCAN_SECONDS = 3.0
"""How long the file index is trusted before customer files are checked for changes again."""

MAX_FILE_BYTES = 1_000_000
"""Customer files larger than this are left out of the index (the loader reports them)."""



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

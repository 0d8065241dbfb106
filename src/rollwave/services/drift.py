"""Drift: instances whose actual state differs from their last successful deployment.

Deployers report what an instance runs (version and, when they can, the hash of the config it
loaded). The expected state is the fleet-state read model: the version and config version
(release snapshot hash) recorded when its last deployment was verified. The snapshot is
resolved (secrets included) to the hash the instance itself would report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from rollwave.core.hashing import config_hash
from rollwave.errors import RollwaveError
from rollwave.services.context import App
from rollwave.storage import fleet_state
from rollwave.storage import releases as release_repo


@dataclass(frozen=True, slots=True)
class DriftItem:
    """One service on one instance that does not run what was last deployed."""

    instance: str
    service: str
    expected_version: str | None
    actual_version: str | None
    config: str  # "same", "changed" or "unknown" (the deployer cannot report a config hash)
    detail: str

    @property
    def message(self) -> str:
        parts = []
        if self.expected_version != self.actual_version:
            parts.append(f"runs {self.actual_version or 'nothing'} instead of "
                         f"{self.expected_version}")
        if self.config == "changed":
            parts.append("its config differs from the one deployed")
        text = f"{self.instance} {self.service}: " + "; ".join(parts)
        return text + (f" ({self.detail})" if self.detail else "")

    def to_dict(self) -> dict[str, Any]:
        return {"instance": self.instance, "service": self.service,
                "expected_version": self.expected_version,
                "actual_version": self.actual_version, "config": self.config,
                "detail": self.detail, "message": self.message}


Resolver = Callable[[Mapping[str, Any]], tuple[dict[str, Any], list[str]]]


def find_drift(app: App, instances: Sequence[str] | None = None, *,
               resolver: Resolver | None = None, parallelism: int = 16) -> list[DriftItem]:
    """Every drifted (instance, service), checked in parallel; instances never deployed by
    Rollwave are not drift (there is nothing to compare with)."""
    from rollwave.orchestration.runtime import DeployerCache
    from rollwave.orchestration.secrets import workspace_secret_resolver

    workspace = app.workspace()
    with app.db().read() as conn:
        states = fleet_state.service_states(conn)
        wanted = {s.config_hash for s in states if s.config_hash}
        blobs = release_repo.get_blobs(conn, sorted(wanted))
    chosen = set(instances) if instances is not None else None
    by_instance: dict[str, list[fleet_state.ServiceState]] = {}
    for state in states:
        if chosen is None or state.instance in chosen:
            by_instance.setdefault(state.instance, []).append(state)
    resolve = resolver or workspace_secret_resolver(app)
    deployers = DeployerCache(app)

    def expected_hash(version_hash: str | None) -> str | None:
        if version_hash is None or version_hash not in blobs:
            return None
        try:
            values, _ = resolve(blobs[version_hash])
        except RollwaveError:
            return None
        return config_hash(values)

    def check(key: str) -> list[DriftItem]:
        inst = workspace.fleet.get(key)
        if inst is None:
            return []
        rows = by_instance[key]
        deployer = deployers.get(inst.deployer)
        actual = deployer.actual(inst, [r.service for r in rows])
        out = []
        for row in rows:
            running = actual.versions.get(row.service)
            reported = actual.config_hashes.get(row.service)
            want = expected_hash(row.config_hash)
            if reported is None or want is None:
                config = "unknown"
            else:
                config = "same" if reported == want else "changed"
            if running != row.version or config == "changed":
                out.append(DriftItem(key, row.service, row.version, running, config,
                                     actual.detail))
        return out

    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        results = list(pool.map(check, sorted(by_instance)))
    return [item for items in results for item in items]

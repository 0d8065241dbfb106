"""Planning: which instance gets a release in which wave, and what changes on it.

:func:`plan_release` is a pure function of the fleet, the release, what each instance runs now,
the policy and the time. It never touches the database or the network, so every rule here is
tested with data-driven fixtures (``tests/core/planning_cases/*.yaml``).

Selection walks the policy's waves in order; each wave takes from the instances that still
need a change ("the remaining fleet"): ``customers`` and ``match`` filter, ``percent`` takes that
share of the remaining fleet (rounded up, chosen by a stable hash so the same customers are
canaries release after release), ``limit`` caps the count and ``rest`` takes everything left.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rollwave.core import tagexpr
from rollwave.core.fleet import Fleet, FleetInstance
from rollwave.core.model import ApprovalGate, CommandGate, Freeze, HttpGate, Policy, Wave
from rollwave.core.windows import window_status

GateSpec = ApprovalGate | CommandGate | HttpGate

KEEP_VERSION = "="
"""A release version meaning "keep whatever version the instance runs" (config-only releases)."""


@dataclass(frozen=True, slots=True)
class ReleaseSpec:
    """What a release asks for: service versions and, optionally, per-instance config hashes."""

    name: str
    versions: Mapping[str, str]
    config_hashes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """instance key → service → config hash the release gives it."""


@dataclass(frozen=True, slots=True)
class InstanceState:
    """What one instance runs now (as last recorded or observed)."""

    versions: Mapping[str, str] = field(default_factory=dict)
    config_hashes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServiceChange:
    """One service on one instance: from what to what."""

    service: str
    from_version: str | None
    to_version: str
    from_config: str | None = None
    to_config: str | None = None

    @property
    def version_changes(self) -> bool:
        return self.from_version != self.to_version

    @property
    def config_changes(self) -> bool:
        return self.to_config is not None and self.from_config != self.to_config


@dataclass(frozen=True, slots=True)
class TargetPlan:
    """One instance in a wave."""

    instance: str
    customer: str
    changes: tuple[ServiceChange, ...]
    window_open: bool
    next_window: datetime | None
    window_note: str


@dataclass(frozen=True, slots=True)
class WavePlan:
    """One wave, with its settings resolved to numbers for its actual size."""

    index: int
    name: str
    parallelism: int
    bake: float
    failure_budget: int
    gates: tuple[GateSpec, ...]
    targets: tuple[TargetPlan, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """The whole rollout plan of a release under a policy at a given time."""

    release: str
    policy: str
    emergency: bool
    waves: tuple[WavePlan, ...]
    unchanged: tuple[str, ...]
    excluded: tuple[str, ...]
    freezes: tuple[str, ...]
    created_at: datetime

    @property
    def target_count(self) -> int:
        return sum(len(w.targets) for w in self.waves)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form stored with the rollout (and returned by the API)."""
        return {
            "release": self.release,
            "policy": self.policy,
            "emergency": self.emergency,
            "created_at": self.created_at.isoformat(),
            "unchanged": list(self.unchanged),
            "excluded": list(self.excluded),
            "freezes": list(self.freezes),
            "waves": [
                {
                    "index": w.index,
                    "name": w.name,
                    "parallelism": w.parallelism,
                    "bake": w.bake,
                    "failure_budget": w.failure_budget,
                    "gates": [g.model_dump(mode="json") for g in w.gates],
                    "targets": [
                        {
                            "instance": t.instance,
                            "customer": t.customer,
                            "window_open": t.window_open,
                            "next_window": t.next_window.isoformat() if t.next_window else None,
                            "window_note": t.window_note,
                            "changes": [
                                {"service": c.service, "from_version": c.from_version,
                                 "to_version": c.to_version, "from_config": c.from_config,
                                 "to_config": c.to_config}
                                for c in t.changes
                            ],
                        }
                        for t in w.targets
                    ],
                }
                for w in self.waves
            ],
        }


def resolve_amount(amount: int | str, size: int, *, minimum: int, round_up: bool) -> int:
    """A count, or a percentage of ``size`` (``"25%"``), as a whole number ≥ ``minimum``."""
    if isinstance(amount, int):
        return max(minimum, amount)
    share = float(amount.rstrip("%")) / 100.0 * size
    whole = math.ceil(share - 1e-9) if round_up else math.floor(share + 1e-9)
    return max(minimum, whole)


def stable_rank(key: str) -> str:
    """Order used to pick a percentage: stable across releases, spread across customers."""
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def _changes(inst: FleetInstance, release: ReleaseSpec,
             state: InstanceState) -> tuple[ServiceChange, ...]:
    out = []
    desired_configs = release.config_hashes.get(inst.key, {})
    for service, wanted in sorted(release.versions.items()):
        if not inst.runs(service):
            continue
        current = state.versions.get(service)
        version = current if wanted == KEEP_VERSION else wanted
        if version is None:  # config-only release for a service this instance never ran
            continue
        change = ServiceChange(
            service=service,
            from_version=current,
            to_version=version,
            from_config=state.config_hashes.get(service),
            to_config=desired_configs.get(service),
        )
        if change.version_changes or change.config_changes:
            out.append(change)
    return tuple(out)


def _select(wave: Wave, remaining: list[FleetInstance]) -> list[FleetInstance]:
    sel = wave.select
    if sel.rest:
        return list(remaining)
    candidates = remaining
    if sel.customers is not None:
        wanted = set(sel.customers)
        candidates = [i for i in candidates if i.customer in wanted]
    if sel.match:
        expr = tagexpr.parse(sel.match)
        candidates = [i for i in candidates if tagexpr.evaluate(expr, i.facts)]
    if sel.percent is not None or sel.limit is not None:
        ranked = sorted(candidates, key=lambda i: stable_rank(i.key))
        count = len(ranked)
        if sel.percent is not None:
            count = min(count, math.ceil(sel.percent / 100.0 * len(remaining) - 1e-9))
        if sel.limit is not None:
            count = min(count, sel.limit)
        chosen = {i.key for i in ranked[:count]}
        candidates = [i for i in candidates if i.key in chosen]
    return candidates


def compress_waves(policy: Policy) -> list[Wave]:
    """Emergency shape: the first wave stays as the canary, every later wave runs as one.

    Bake times are multiplied by ``policy.compress``; the merged wave keeps the largest
    parallelism and the most permissive failure budget of the waves it replaces.
    """
    waves = list(policy.waves)
    first = waves[0].model_copy(update={"bake": waves[0].bake * policy.compress})
    if len(waves) == 1:
        return [first]
    rest = waves[1:]
    parallelism = max(rest, key=lambda w: _amount_weight(w.parallelism)).parallelism
    budget = max(rest, key=lambda w: _amount_weight(w.failure_budget)).failure_budget
    merged = Wave.model_validate({
        "name": "+".join(w.name for w in rest),
        "select": {"rest": True},
        "parallelism": parallelism,
        "bake": max(w.bake for w in rest) * policy.compress,
        "failure_budget": budget,
        "gates": [g.model_dump() for w in rest for g in w.gates],
    })
    return [first, merged]


def _amount_weight(amount: int | str) -> float:
    return float(amount.rstrip("%")) * 1000 if isinstance(amount, str) else float(amount)


def active_freezes(freezes: Sequence[Freeze], now: datetime,
                   environments: set[str]) -> list[Freeze]:
    """Freezes in force at ``now`` that cover any of ``environments``."""
    return [f for f in freezes if f.start <= now < f.end
            and (f.environments is None or environments & set(f.environments))]


def plan_release(
    fleet: Fleet,
    release: ReleaseSpec,
    current: Mapping[str, InstanceState],
    policy_name: str,
    now: datetime,
    *,
    emergency: bool = False,
    only: Sequence[str] | None = None,
) -> Plan:
    """Plan ``release`` across ``fleet`` under the named policy at ``now``.

    ``only`` restricts the rollout to the given instance keys (used for rollbacks and for
    re-running a subset). ``emergency`` is forced on by an emergency policy.
    """
    policy = fleet.policy(policy_name)
    emergency = emergency or policy.emergency
    envs = set(policy.environments) if policy.environments else None
    only_set = set(only) if only is not None else None
    remaining: list[FleetInstance] = []
    unchanged: list[str] = []
    changes_by_key: dict[str, tuple[ServiceChange, ...]] = {}
    touched_envs: set[str] = set()
    for inst in fleet:
        if only_set is not None and inst.key not in only_set:
            continue
        if envs is not None and inst.environment not in envs:
            continue
        if not any(inst.runs(s) for s in release.versions):
            continue
        changes = _changes(inst, release, current.get(inst.key, InstanceState()))
        if not changes:
            unchanged.append(inst.key)
            continue
        changes_by_key[inst.key] = changes
        touched_envs.add(inst.environment)
        remaining.append(inst)

    waves_spec = compress_waves(policy) if emergency else list(policy.waves)
    waves: list[WavePlan] = []
    for index, wave in enumerate(waves_spec):
        chosen = _select(wave, remaining)
        chosen_keys = {i.key for i in chosen}
        remaining = [i for i in remaining if i.key not in chosen_keys]
        targets = tuple(_target(inst, changes_by_key[inst.key], now, emergency) for inst in chosen)
        waves.append(WavePlan(
            index=index,
            name=wave.name,
            parallelism=resolve_amount(wave.parallelism, len(targets), minimum=1, round_up=True),
            bake=wave.bake,
            failure_budget=resolve_amount(wave.failure_budget, len(targets), minimum=0,
                                          round_up=False),
            gates=tuple(wave.gates),
            targets=targets,
        ))
    freezes = [] if emergency else active_freezes(fleet.project.freezes, now, touched_envs)
    return Plan(
        release=release.name,
        policy=policy_name,
        emergency=emergency,
        waves=tuple(waves),
        unchanged=tuple(unchanged),
        excluded=tuple(i.key for i in remaining),
        freezes=tuple(f"{f.name} until {f.end.isoformat()}" + (f": {f.reason}" if f.reason else "")
                      for f in freezes),
        created_at=now,
    )


def _target(inst: FleetInstance, changes: tuple[ServiceChange, ...], now: datetime,
            emergency: bool) -> TargetPlan:
    status = window_status(inst.windows, now)
    if emergency and not status.open_now:
        return TargetPlan(inst.key, inst.customer, changes, True, None,
                          "emergency: maintenance window overridden")
    return TargetPlan(inst.key, inst.customer, changes, status.open_now, status.next_open,
                      status.describe())

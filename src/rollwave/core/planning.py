"""Planning: which instance gets a release in which wave, and what changes on it.

:func:`plan_release` is a pure function of the fleet, the release, what each instance runs now,
the policy and the time. It never touches the database or the network, so every rule here is
tested with data-driven fixtures (``tests/core/planning_cases/*.yaml``).

Selection walks the policy's waves in order; each wave takes from the instances that still
need a change ("the remaining fleet"): ``customers`` and ``match`` filter, ``percent`` takes that
share of the remaining fleet (rounded up, chosen by a stable hash so the same customers are
canaries release after release), ``limit`` caps the count and ``rest`` takes everything left.

Each wave's ``parallelism`` and ``failure_budget`` are resolved to numbers for the wave's actual
size: a percentage of parallelism rounds up (at least 1, at most the wave's size), a percentage
of failure budget rounds down (``10%`` of 5 instances is 0: the first failure halts).

In an emergency the normal selection is made first; the first wave stays as the canary and every
later wave's instances form one wave, so an emergency never reaches an instance the policy would
not. Bake times are multiplied by ``compress``, maintenance windows and freezes are overridden
(and the plan says so).
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
    freezes_overridden: tuple[str, ...] = ()
    """Freezes in force that an emergency ignores (always empty outside emergencies)."""

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
            "freezes_overridden": list(self.freezes_overridden),
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


def resolve_parallelism(amount: int | str, size: int) -> int:
    """How many instances of a wave of ``size`` are deployed at once (1 … size)."""
    return max(1, min(resolve_amount(amount, size, minimum=1, round_up=True), size))


def resolve_budget(amount: int | str, size: int) -> int:
    """How many instances of a wave of ``size`` may fail before the rollout halts."""
    return resolve_amount(amount, size, minimum=0, round_up=False)


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


@dataclass(frozen=True, slots=True)
class _WaveShape:
    """A wave as planned before targets are resolved: settings plus chosen instances."""

    name: str
    parallelism: int
    bake: float
    failure_budget: int
    gates: tuple[GateSpec, ...]
    chosen: list[FleetInstance]


def _normal_shapes(waves: Sequence[Wave], remaining: list[FleetInstance]) -> list[_WaveShape]:
    shapes = []
    for wave in waves:
        chosen = _select(wave, remaining)
        chosen_keys = {i.key for i in chosen}
        remaining = [i for i in remaining if i.key not in chosen_keys]
        size = len(chosen)
        shapes.append(_WaveShape(
            name=wave.name,
            parallelism=resolve_parallelism(wave.parallelism, size),
            bake=wave.bake,
            failure_budget=resolve_budget(wave.failure_budget, size),
            gates=tuple(wave.gates),
            chosen=chosen,
        ))
    return shapes


def _compress(policy: Policy, waves: Sequence[Wave],
              shapes: Sequence[_WaveShape]) -> list[_WaveShape]:
    """Emergency shape: the first wave stays as the canary, every later wave runs as one.

    Bake times are multiplied by ``policy.compress``. The merged wave takes the instances the
    later waves would have taken, in their order; its parallelism and failure budget are the
    largest the replaced waves' settings give for the merged size; it keeps their gates.
    """
    first = shapes[0]
    out = [_WaveShape(first.name, first.parallelism, first.bake * policy.compress,
                      first.failure_budget, first.gates, first.chosen)]
    if len(shapes) == 1:
        return out
    later, specs = shapes[1:], waves[1:]
    chosen = [inst for shape in later for inst in shape.chosen]
    size = len(chosen)
    gates: list[GateSpec] = []
    for spec in specs:
        for gate in spec.gates:
            if gate not in gates:
                gates.append(gate)
    out.append(_WaveShape(
        name="+".join(w.name for w in specs),
        parallelism=max(resolve_parallelism(w.parallelism, size) for w in specs),
        bake=max(w.bake for w in specs) * policy.compress,
        failure_budget=max(resolve_budget(w.failure_budget, size) for w in specs),
        gates=tuple(gates),
        chosen=chosen,
    ))
    return out


def _freeze_text(freeze: Freeze) -> str:
    return f"{freeze.name} until {freeze.end.isoformat()}" + (
        f": {freeze.reason}" if freeze.reason else "")


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
    if now.tzinfo is None:
        raise ValueError("plan_release needs an aware `now` (e.g. datetime.now(UTC))")
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

    shapes = _normal_shapes(policy.waves, remaining)
    if emergency:
        shapes = _compress(policy, policy.waves, shapes)
    waves = tuple(
        WavePlan(
            index=index,
            name=shape.name,
            parallelism=shape.parallelism,
            bake=shape.bake,
            failure_budget=shape.failure_budget,
            gates=shape.gates,
            targets=tuple(_target(inst, changes_by_key[inst.key], now, emergency)
                          for inst in shape.chosen),
        )
        for index, shape in enumerate(shapes)
    )
    selected = {t.instance for wave in waves for t in wave.targets}
    freezes = active_freezes(fleet.project.freezes, now, touched_envs)
    return Plan(
        release=release.name,
        policy=policy_name,
        emergency=emergency,
        waves=waves,
        unchanged=tuple(unchanged),
        excluded=tuple(i.key for i in remaining if i.key not in selected),
        freezes=() if emergency else tuple(_freeze_text(f) for f in freezes),
        created_at=now,
        freezes_overridden=tuple(_freeze_text(f) for f in freezes) if emergency else (),
    )


def _target(inst: FleetInstance, changes: tuple[ServiceChange, ...], now: datetime,
            emergency: bool) -> TargetPlan:
    status = window_status(inst.windows, now)
    if emergency and not status.open_now:
        return TargetPlan(inst.key, inst.customer, changes, True, None,
                          "emergency: maintenance window overridden")
    return TargetPlan(inst.key, inst.customer, changes, status.open_now, status.next_open,
                      status.describe())

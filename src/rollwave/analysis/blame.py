"""Fleet-level blame: tell a bad release from a bad customization from an infrastructure incident.

Tools that judge one target at a time can only say "this instance looks worse". A fleet of
customized instances, updated in waves, says more: who else on the new version regressed,
and whether instances *not yet updated* regressed at the same time. The rules, applied in
this order to the evidence of one analysis interval:

1. **Infrastructure.** A metric regressed on instances that are *not* running the new version
   (at least ``incident_min_instances`` of them and ``incident_fraction`` of those judged,
   each on its own or, as a :class:`FleetShift`, pooled with each of them beyond the floor):
   the release cannot be the cause. -> ``PAUSE``; nothing is rolled back.
2. **Release.** The same metric regressed on updated instances of ``min_customers`` or more
   different customers. -> ``ROLLBACK_RELEASE``: halt and roll back everywhere.
3. **Customer.** A metric regressed on one customer's instances while at least
   ``min_clearing_peers`` updated instances of *other* customers are shown healthy on it
   (their interval lies inside the floor, or below half the regression). ->
   ``ROLLBACK_INSTANCES`` for that customer's regressed instances, continue the rest, and flag
   the customization for review. Until enough peers have cleared, the decision waits; after
   ``patience`` seconds on the new version without them, the release is blamed (the safe side).
4. **No decision.** Nothing regressed, but an updated instance's source cannot be read, or a
   baked instance still lacks data. -> ``HOLD``: neither promote nor roll back.
5. Otherwise ``PROMOTE`` once every updated instance has baked, else ``CONTINUE``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rollwave.analysis.results import Outcome, Verdict
from rollwave.analysis.series import PolicyError


class Blame(enum.StrEnum):
    """Who or what a fleet verdict holds responsible."""

    NONE = "none"  # nothing regressed
    RELEASE = "release"  # the new version itself
    CUSTOMER = "customer"  # one customer's customization meeting the new version
    INFRASTRUCTURE = "infrastructure"  # something outside the release (also hits old versions)
    UNKNOWN = "unknown"  # sources unreadable or too little data: no one can be blamed


class Action(enum.StrEnum):
    """What the orchestrator should do after this analysis interval."""

    CONTINUE = "continue"  # keep baking; nothing to decide yet
    PROMOTE = "promote"  # every updated instance passed its bake
    ROLLBACK_RELEASE = "rollback-release"  # halt and roll the release back everywhere
    ROLLBACK_INSTANCES = "rollback-instances"  # roll back these instances, continue the rest
    PAUSE = "pause"  # infrastructure incident: pause the rollout, roll nothing back
    HOLD = "hold"  # cannot judge: neither promote nor roll back


@dataclass(frozen=True, slots=True)
class InstanceEvidence:
    """What the judges found on one instance at one analysis interval."""

    instance: str
    customer: str
    updated: bool  # runs the new version
    verdict: Verdict
    regressed: Mapping[str, float] = field(default_factory=dict)  # metric -> relative effect
    cleared: frozenset[str] = frozenset()  # metrics shown within their floor
    upper: Mapping[str, float] = field(default_factory=dict)  # metric -> upper bound of effect
    baked: bool = False
    since_update: float = 0.0  # seconds on the new version
    pre_existing: tuple[str, ...] = ()  # checks that were failing before the update too

    def describe(self, metric: str) -> str:
        effect = self.regressed.get(metric)
        change = f" {effect * 100:+.0f}%" if effect is not None and math.isfinite(effect) else ""
        return f"{self.instance}{change}"


@dataclass(frozen=True, slots=True)
class FleetShift:
    """A metric that moved on the instances *not* running the new version, pooled."""

    metric: str
    effect: float  # pooled relative move
    significant: bool  # the pooled move is beyond the floor with confidence
    moved: tuple[str, ...]  # instances whose own move is beyond the floor
    judged: int  # instances with enough data
    explanation: str


@dataclass(frozen=True, slots=True)
class BlamePolicy:
    """The numbers of the blame rules (see the module docstring)."""

    min_customers: int = 2
    min_clearing_peers: int = 2
    patience: float = 900.0
    incident_min_instances: int = 2
    incident_fraction: float = 0.3

    def __post_init__(self) -> None:
        if self.min_customers < 2:
            raise PolicyError("blame.min_customers must be at least 2 (one customer is rule 3)")
        if self.min_clearing_peers < 1 or self.incident_min_instances < 1:
            raise PolicyError("blame peers and incident minimums must be at least 1")
        if not 0.0 < self.incident_fraction <= 1.0:
            raise PolicyError("blame.incident_fraction must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class FleetVerdict:
    """One analysis interval's decision for the whole rollout, with its evidence."""

    action: Action
    blame: Blame
    explanation: str
    rollback: tuple[str, ...] = ()  # instances to roll back
    flagged_customers: tuple[str, ...] = ()  # customizations to review
    evidence: tuple[InstanceEvidence, ...] = ()

    @property
    def decisive(self) -> bool:
        """True when the orchestrator has to act (anything but continue)."""
        return self.action is not Action.CONTINUE

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form for ``rollwave verify explain`` and the API."""
        return {
            "action": self.action.value,
            "blame": self.blame.value,
            "explanation": self.explanation,
            "rollback": list(self.rollback),
            "flagged_customers": list(self.flagged_customers),
            "instances": {
                e.instance: {"customer": e.customer, "updated": e.updated, **e.verdict.to_dict()}
                for e in self.evidence
            },
        }


def _metrics(evidence: Sequence[InstanceEvidence]) -> list[str]:
    seen: dict[str, None] = {}
    for e in evidence:
        for m in e.regressed:
            seen.setdefault(m, None)
    return list(seen)


def _clears(peer: InstanceEvidence, metric: str, effect: float) -> bool:
    if metric in peer.regressed:
        return False
    if metric in peer.cleared:
        return True
    upper = peer.upper.get(metric)
    return upper is not None and math.isfinite(upper) and math.isfinite(effect) and (
        upper < effect / 2.0
    )


def _incident(
    stable: Sequence[InstanceEvidence], policy: BlamePolicy
) -> tuple[str, list[InstanceEvidence], int] | None:
    judged = [s for s in stable if s.verdict.outcome in (Outcome.SUCCESSFUL, Outcome.FAILED)]
    best: tuple[str, list[InstanceEvidence], int] | None = None
    for metric in _metrics(stable):
        hit = [s for s in judged if metric in s.regressed]
        need = max(policy.incident_min_instances, math.ceil(policy.incident_fraction * len(judged)))
        if len(hit) >= need and (best is None or len(hit) > len(best[1])):
            best = (metric, hit, len(judged))
    return best


def _infrastructure(
    updated: Sequence[InstanceEvidence], stable: Sequence[InstanceEvidence],
    policy: BlamePolicy, flagged: tuple[str, ...], shifts: Sequence[FleetShift],
) -> FleetVerdict | None:
    incident = _incident(stable, policy)
    pooled = [
        s for s in shifts
        if s.significant and len(s.moved) >= max(
            policy.incident_min_instances, math.ceil(policy.incident_fraction * s.judged))
    ]
    if incident is not None:
        metric, hit, judged = incident
        text = (
            f"{metric} also regressed on {len(hit)} of {judged} instances not running the new "
            f"version ({', '.join(e.describe(metric) for e in hit[:5])})"
        )
    elif pooled:
        shift = max(pooled, key=lambda s: len(s.moved))
        metric = shift.metric
        text = (
            f"{metric} also moved {shift.effect * 100:+.0f}% on the instances not running the "
            f"new version ({shift.explanation}: {', '.join(shift.moved[:5])})"
        )
    else:
        return None
    also = [e.describe(metric) for e in updated if metric in e.regressed]
    if also:
        text += f", as on updated {', '.join(also[:5])}"
    text += ": not the release (infrastructure) -> pause, roll nothing back"
    return FleetVerdict(Action.PAUSE, Blame.INFRASTRUCTURE, text, (), flagged)


def _release(
    updated: Sequence[InstanceEvidence], policy: BlamePolicy, flagged: tuple[str, ...]
) -> FleetVerdict | None:
    for metric in _metrics(updated):
        hit = [e for e in updated if metric in e.regressed]
        customers = sorted({e.customer for e in hit})
        if len(customers) >= policy.min_customers:
            healthy = sum(1 for e in updated if not e.regressed and e.verdict.outcome.passed)
            text = (
                f"{metric} regressed on {len(hit)} updated instances of {len(customers)} customers "
                f"({', '.join(e.describe(metric) for e in hit[:6])}); {healthy} updated instances "
                f"healthy, no regression on instances not yet updated: the release -> halt and "
                f"roll back the release"
            )
            return FleetVerdict(
                Action.ROLLBACK_RELEASE, Blame.RELEASE, text,
                tuple(e.instance for e in updated), flagged,
            )
    return None


def _clearing_peers(
    customer: str, hit: list[InstanceEvidence], updated: Sequence[InstanceEvidence],
    policy: BlamePolicy,
) -> tuple[bool, int, str]:
    """Whether enough peers of other customers clear every regressed metric of ``customer``."""
    reasons = []
    fewest = None
    for metric in sorted({m for e in hit for m in e.regressed}):
        effect = max(e.regressed.get(metric, -math.inf) for e in hit)
        peers = [p for p in updated if p.customer != customer and _clears(p, metric, effect)]
        fewest = len(peers) if fewest is None else min(fewest, len(peers))
        names = ", ".join(p.instance for p in peers[:4])
        reasons.append(
            f"{metric} healthy on {len(peers)} peers of other customers on the new version"
            + (f" ({names})" if names else "")
        )
    count = fewest or 0
    return count >= policy.min_clearing_peers, count, "; ".join(reasons)


def _regressions(hit: Sequence[InstanceEvidence]) -> str:
    return ", ".join(e.describe(m) for e in hit for m in e.regressed)


def _customer(
    updated: Sequence[InstanceEvidence], policy: BlamePolicy, flagged: tuple[str, ...]
) -> FleetVerdict | None:
    by_customer: dict[str, list[InstanceEvidence]] = {}
    for e in updated:
        if e.regressed:
            by_customer.setdefault(e.customer, []).append(e)
    if not by_customer:
        return None
    blamed: list[tuple[str, list[InstanceEvidence], str]] = []
    waiting: list[tuple[str, list[InstanceEvidence], int]] = []
    for customer, hit in by_customer.items():
        enough, count, why = _clearing_peers(customer, hit, updated, policy)
        if enough:
            blamed.append((customer, hit, why))
        else:
            waiting.append((customer, hit, count))
    overdue = [w for w in waiting if max(e.since_update for e in w[1]) >= policy.patience]
    if overdue:
        customer, hit, peers = overdue[0]
        text = (
            f"{_regressions(hit)} regressed on customer {customer}; only {peers} updated peers "
            f"of other customers could clear the release within {policy.patience / 60:g} min: "
            "blaming the release -> halt and roll back the release"
        )
        return FleetVerdict(
            Action.ROLLBACK_RELEASE, Blame.RELEASE, text,
            tuple(e.instance for e in updated), flagged,
        )
    if blamed:
        rollback = tuple(e.instance for _, hit, _ in blamed for e in hit)
        customers = tuple(sorted({c for c, _, _ in blamed}))
        parts = [
            f"{_regressions(hit)} regressed on customer {c} only; {why}" for c, hit, why in blamed
        ]
        text = "; ".join(parts) + (
            ": the customization -> roll back those instances, continue the rest, flag "
            f"{', '.join(customers)} for review"
        )
        return FleetVerdict(
            Action.ROLLBACK_INSTANCES, Blame.CUSTOMER, text, rollback,
            tuple(sorted({*flagged, *customers})),
        )
    names = ", ".join(_regressions(hit) for _, hit, _ in waiting)
    return FleetVerdict(
        Action.CONTINUE, Blame.UNKNOWN,
        f"{names} regressed; waiting for peers of other customers on the new version to tell "
        "the release from the customization",
        (), flagged,
    )


def _no_regression(updated: Sequence[InstanceEvidence], flagged: tuple[str, ...]) -> FleetVerdict:
    unreadable = [e for e in updated if e.verdict.outcome is Outcome.ERROR]
    if unreadable:
        text = "; ".join(f"{e.instance}: {e.verdict.summary}" for e in unreadable[:4])
        return FleetVerdict(
            Action.HOLD, Blame.UNKNOWN,
            f"metrics unreadable on {len(unreadable)} updated instances ({text}) -> neither "
            "promote nor roll back",
            (), flagged,
        )
    lacking = [e for e in updated if e.baked and e.verdict.outcome is Outcome.INCONCLUSIVE]
    if lacking:
        text = "; ".join(f"{e.instance}: {e.verdict.summary}" for e in lacking[:4])
        return FleetVerdict(
            Action.HOLD, Blame.UNKNOWN,
            f"{len(lacking)} instances finished their bake without enough data ({text}) -> "
            "neither promote nor roll back",
            (), flagged,
        )
    if updated and all(e.baked and e.verdict.outcome.passed for e in updated):
        return FleetVerdict(
            Action.PROMOTE, Blame.NONE,
            f"all {len(updated)} updated instances passed their bake with no regression",
            (), flagged,
        )
    baking = sum(1 for e in updated if not e.baked)
    return FleetVerdict(
        Action.CONTINUE, Blame.NONE,
        f"no regression so far; {baking} of {len(updated)} updated instances still baking",
        (), flagged,
    )


def assign_blame(
    updated: Sequence[InstanceEvidence],
    stable: Sequence[InstanceEvidence] = (),
    policy: BlamePolicy | None = None,
    shifts: Sequence[FleetShift] = (),
) -> FleetVerdict:
    """Decide from the evidence on updated and on stable (not yet updated) instances.

    Example::

        >>> from rollwave.analysis.results import Verdict
        >>> ok = Verdict.of([])
        >>> a = InstanceEvidence("a/prod", "a", True, ok, regressed={"errors": 3.0})
        >>> b = InstanceEvidence("b/prod", "b", True, ok, regressed={"errors": 2.5})
        >>> assign_blame([a, b]).blame.value
        'release'
    """
    pol = policy or BlamePolicy()
    flagged = tuple(sorted({e.customer for e in updated if e.pre_existing}))
    verdict = (
        _infrastructure(updated, stable, pol, flagged, shifts)
        or _release(updated, pol, flagged)
        or _customer(updated, pol, flagged)
        or _no_regression(updated, flagged)
    )
    return replace(verdict, evidence=(*updated, *stable))

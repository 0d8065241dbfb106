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
   different customers (counting instances already rolled back for it during this rollout).
   -> ``ROLLBACK_RELEASE``: halt and roll back everywhere.
3. **Customer.** An instance that regressed is rolled back at once, whatever the cause ->
   ``ROLLBACK_INSTANCES``. The blame is *settled* on its customer (flag the customization for
   review, continue the rest) when at least ``min_clearing_peers`` updated instances of *other*
   customers are shown healthy on that metric (their interval inside the floor, or below half
   the regression); until then it is *pending*: ``hold_waves`` asks the orchestrator to start no
   new wave. A pending blame still unsettled ``patience`` seconds after that instance's update
   falls on the release (the safe side) -> ``ROLLBACK_RELEASE``. The orchestrator keeps what it
   rolled back (:meth:`FleetVerdict.rolled_back`) and hands it back as ``prior``.
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
from rollwave.core.durations import format_duration


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
class RolledBack:
    """An instance rolled back earlier in this rollout, and what it regressed on."""

    instance: str
    customer: str
    regressed: Mapping[str, float]  # metric -> relative effect
    updated_at: float
    settled: bool = False  # blame settled on its customer (peers cleared the release)


@dataclass(frozen=True, slots=True)
class FleetVerdict:
    """One analysis interval's decision for the whole rollout, with its evidence."""

    action: Action
    blame: Blame
    explanation: str
    rollback: tuple[str, ...] = ()  # instances to roll back
    flagged_customers: tuple[str, ...] = ()  # customizations to review
    evidence: tuple[InstanceEvidence, ...] = ()
    hold_waves: bool = False  # start no new wave: a rolled-back instance's blame is pending
    settled: tuple[str, ...] = ()  # earlier rollbacks whose blame is now settled on the customer

    def rolled_back(self, now: float) -> tuple[RolledBack, ...]:
        """Records of this verdict's instance rollbacks, to hand back as ``prior`` later."""
        if self.action is not Action.ROLLBACK_INSTANCES:
            return ()
        by_name = {e.instance: e for e in self.evidence}
        out = []
        for name in self.rollback:
            e = by_name.get(name)
            if e is not None:
                out.append(RolledBack(name, e.customer, dict(e.regressed), now - e.since_update,
                                      settled=self.blame is Blame.CUSTOMER))
        return tuple(out)

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
            "hold_waves": self.hold_waves,
            "settled": list(self.settled),
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
    updated: Sequence[InstanceEvidence], policy: BlamePolicy, flagged: tuple[str, ...],
    prior: Sequence[RolledBack],
) -> FleetVerdict | None:
    for metric in _metrics(updated):
        hit = [e for e in updated if metric in e.regressed]
        earlier = [p for p in prior if metric in p.regressed]
        customers = sorted({e.customer for e in hit} | {p.customer for p in earlier})
        if len(customers) >= policy.min_customers:
            healthy = sum(1 for e in updated if not e.regressed and e.verdict.outcome.passed)
            text = (
                f"{metric} regressed on updated instances of {len(customers)} customers "
                f"({', '.join(e.describe(metric) for e in hit[:6])}"
            )
            if earlier:
                text += f"; earlier rolled back: {', '.join(p.instance for p in earlier[:4])}"
            text += (
                f"); {healthy} updated instances healthy, no regression on instances not yet "
                "updated: the release -> halt and roll back the release"
            )
            return FleetVerdict(
                Action.ROLLBACK_RELEASE, Blame.RELEASE, text,
                tuple(e.instance for e in updated), flagged,
            )
    return None


def _clearing_peers(
    customer: str, regressed: Mapping[str, float], updated: Sequence[InstanceEvidence],
    policy: BlamePolicy,
) -> tuple[bool, int, str]:
    """Whether enough peers of other customers clear every regressed metric of ``customer``."""
    reasons = []
    fewest = None
    for metric in sorted(regressed):
        effect = regressed[metric]
        peers = [p for p in updated if p.customer != customer and _clears(p, metric, effect)]
        fewest = len(peers) if fewest is None else min(fewest, len(peers))
        names = ", ".join(p.instance for p in peers[:4])
        reasons.append(
            f"{metric} healthy on {len(peers)} peers of other customers on the new version"
            + (f" ({names})" if names else "")
        )
    count = fewest or 0
    return count >= policy.min_clearing_peers, count, "; ".join(reasons)


def _worst(hit: Sequence[InstanceEvidence]) -> dict[str, float]:
    out: dict[str, float] = {}
    for e in hit:
        for m, v in e.regressed.items():
            out[m] = max(out.get(m, -math.inf), v)
    return out


def _regressions(hit: Sequence[InstanceEvidence]) -> str:
    return ", ".join(e.describe(m) for e in hit for m in e.regressed)


def _settle(
    pending: Sequence[RolledBack], updated: Sequence[InstanceEvidence], policy: BlamePolicy,
    now: float,
) -> tuple[list[tuple[RolledBack, str]], list[tuple[str, str, int]]]:
    """Earlier rollbacks whose blame peers now settle, and those past their patience."""
    settled: list[tuple[RolledBack, str]] = []
    overdue: list[tuple[str, str, int]] = []  # (customer, what regressed, clearing peers)
    for p in pending:
        enough, count, why = _clearing_peers(p.customer, p.regressed, updated, policy)
        if enough:
            settled.append((p, why))
        elif now - p.updated_at >= policy.patience:
            overdue.append((p.customer, f"{p.instance} (rolled back)", count))
    return settled, overdue


def _customer(
    updated: Sequence[InstanceEvidence], policy: BlamePolicy, flagged: tuple[str, ...],
    prior: Sequence[RolledBack], now: float,
) -> FleetVerdict | None:
    by_customer: dict[str, list[InstanceEvidence]] = {}
    for e in updated:
        if e.regressed:
            by_customer.setdefault(e.customer, []).append(e)
    pending = [p for p in prior if not p.settled]
    if not by_customer and not pending:
        return None
    blamed: list[tuple[str, list[InstanceEvidence], str]] = []
    waiting: list[tuple[str, list[InstanceEvidence], int]] = []
    for customer, hit in by_customer.items():
        enough, count, why = _clearing_peers(customer, _worst(hit), updated, policy)
        if enough:
            blamed.append((customer, hit, why))
        else:
            waiting.append((customer, hit, count))
    settled, overdue = _settle(pending, updated, policy, now)
    overdue += [
        (c, _regressions(hit), n) for c, hit, n in waiting
        if max(e.since_update for e in hit) >= policy.patience
    ]
    if overdue:
        customer, what, peers = overdue[0]
        text = (
            f"{what} regressed on customer {customer}; only {peers} updated peers of other "
            f"customers could clear the release within {format_duration(policy.patience)} of its "
            "update: blaming the release -> halt and roll back the release"
        )
        return FleetVerdict(
            Action.ROLLBACK_RELEASE, Blame.RELEASE, text,
            tuple(e.instance for e in updated), flagged,
        )
    customers = tuple(sorted({c for c, _, _ in blamed} | {p.customer for p, _ in settled}))
    flags = tuple(sorted({*flagged, *customers}))
    still = bool(waiting) or len(settled) < len(pending)
    parts = [f"{_regressions(hit)} regressed on customer {c} only; {why}" for c, hit, why in blamed]
    parts += [f"{p.instance} (rolled back) on customer {p.customer} only; {why}"
              for p, why in settled]
    parts += [f"{_regressions(hit)} regressed on customer {c}; {n} updated peers of other "
              "customers clear the release so far" for c, hit, n in waiting]
    text = "; ".join(parts)
    if still:
        text += (": roll back what regressed now; start no new wave until peers on the new "
                 "version tell the release from the customization")
    elif customers:
        text += (f": the customization -> roll back those instances, continue the rest, flag "
                 f"{', '.join(customers)} for review")
    rollback = tuple(e.instance for _, hit, _ in [*blamed, *waiting] for e in hit)
    blame = Blame.UNKNOWN if still else Blame.CUSTOMER
    action = Action.ROLLBACK_INSTANCES if rollback else Action.CONTINUE
    if action is Action.CONTINUE and not still:
        after = _no_regression(updated, flags)
        return replace(after, settled=tuple(p.instance for p, _ in settled),
                       explanation=f"{text}; {after.explanation}")
    return FleetVerdict(action, blame, text, rollback, flags, (), still,
                        tuple(p.instance for p, _ in settled))


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
    *,
    prior: Sequence[RolledBack] = (),
    now: float = 0.0,
) -> FleetVerdict:
    """Decide from the evidence on updated and on stable (not yet updated) instances.

    ``prior`` lists the instances rolled back earlier in this rollout (from
    :meth:`FleetVerdict.rolled_back`); ``now`` times their pending blame.

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
        or _release(updated, pol, flagged, prior)
        or _customer(updated, pol, flagged, prior, now)
        or _no_regression(updated, flagged)
    )
    return replace(verdict, evidence=(*updated, *stable))

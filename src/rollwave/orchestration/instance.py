"""One instance of a rollout, driven to a terminal state, level-triggered and idempotent.

:func:`drive_target` reads the target's recorded state and the instance's *actual* state before
acting, so running it again after a crash at any point never deploys twice by mistake: a
deploy that completed is seen in ``actual()`` and skipped; a verification that was cut short
is simply run again. Every transition is recorded with its event in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rollwave.analysis.results import Outcome, Verdict
from rollwave.core.fleet import FleetInstance
from rollwave.core.hashing import config_hash
from rollwave.core.model import Verification
from rollwave.core.states import TargetState
from rollwave.errors import RollwaveError
from rollwave.orchestration.carry import Carry
from rollwave.orchestration.runtime import Runtime
from rollwave.ports.deployer import DeployContext, DesiredState, redact
from rollwave.storage import fleet_state
from rollwave.storage import releases as release_repo
from rollwave.storage import rollouts as repo
from rollwave.storage.events import append_event


@dataclass(frozen=True)
class TargetContext:
    """What the wave runner knows about the rollout this target belongs to."""

    rollout_id: str
    release_id: str
    kind: str
    verification: Verification
    on_inconclusive: str
    should_stop: Callable[[], bool]
    trivial: bool = False  # no checks at all: a successful deploy is the only signal
    carry: Carry[repo.Finished] | None = None  # the wave's writes riding with its next claim


def _side(changes: list[dict[str, Any]], side: str) -> tuple[dict[str, str], dict[str, str]]:
    versions: dict[str, str] = {}
    configs: dict[str, str] = {}
    for change in changes:
        version = change.get(f"{side}_version")
        if version is None:
            continue
        versions[change["service"]] = version
        cfg = change.get(f"{side}_config")
        if cfg is not None:
            configs[change["service"]] = cfg
    return versions, configs


def desired_state(rt: Runtime, changes: list[dict[str, Any]],
                  side: str) -> tuple[DesiredState, list[str], dict[str, str]]:
    """The state to deploy for ``side`` ("to" or "from"), secrets resolved.

    Returns the deployer's desired state (hashes of exactly what is handed over), the secret
    values to redact from logs, and the config versions (release snapshot hashes) to record.
    """
    versions, config_versions = _side(changes, side)
    blobs = rt.blob_cache
    missing = sorted(set(config_versions.values()) - blobs.keys())
    if missing:  # snapshots are content-addressed: what is cached never goes stale
        with rt.db.read() as conn:
            blobs.update(release_repo.get_blobs(conn, missing))
    configs: dict[str, Mapping[str, Any]] = {}
    hashes: dict[str, str] = {}
    secrets: list[str] = []
    for service, version_hash in config_versions.items():
        values, found = rt.resolve_secrets(blobs.get(version_hash, {}))
        configs[service] = values
        hashes[service] = config_hash(values)
        secrets.extend(found)
    return DesiredState(versions=versions, configs=configs, config_hashes=hashes), secrets, \
        config_versions


def _transition(rt: Runtime, ctx: TargetContext, instance: str, old: TargetState,
                new: TargetState, message: str, *, record: Callable[[Any], None] | None = None,
                data: Mapping[str, Any] | None = None, final: bool = False,
                **fields: Any) -> bool:
    """Record one transition (with ``record``'s writes) in one transaction.

    A ``final`` transition (the instance is done) may be carried into the wave's next write
    (see :mod:`rollwave.orchestration.carry`); it then returns True before it is written.
    """
    at = datetime.now(UTC)

    def work(conn: Any) -> bool:
        moved = repo.transition_target(conn, ctx.rollout_id, instance, old, new, message,
                                       data=data, at=at, **fields)
        if moved and record is not None:
            record(conn)
        return moved

    if ctx.carry is None:
        return rt.db.write(work)
    if final and ctx.carry.defer(work):
        return True
    return ctx.carry.write(rt.db, work)


def _verify(rt: Runtime, ctx: TargetContext, inst: FleetInstance, services: list[str],
            purpose: str) -> Verdict:
    deployer = rt.deployer(inst.deployer)
    endpoints = {s: url for s in services if (url := deployer.endpoint(inst, s))}
    if inst.url and not endpoints and services:
        endpoints = {services[0]: inst.url}

    def progress(message: str) -> None:  # verification progress is visible in the event log
        with rt.db.begin() as conn:
            append_event(conn, "instance.progress", f"{purpose}: {message}",
                         rollout_id=ctx.rollout_id, instance=inst.key)

    return rt.verifier(inst, ctx.verification, endpoints, ctx.should_stop, progress)


def claim_message(ctx: TargetContext, target: repo.TargetRecord) -> str:
    """The event text of a target's claim: ``deploying c1/prod: web 1.0 → 1.1``."""
    verb = "rolling back" if ctx.kind == "rollback" else "deploying"
    shown = ", ".join(f"{c['service']} {c.get('from_version') or '∅'} → {c['to_version']}"
                      for c in target.changes)
    return f"{verb} {target.instance}: {shown}"


def drive_target(rt: Runtime, ctx: TargetContext, target: repo.TargetRecord, *,
                 claimed: bool = False) -> TargetState:
    """Move one target forward until it is terminal, HELD, or asked to stop before starting.

    ``claimed``: the wave has just moved this target to DEPLOYING (nothing is deployed yet).
    """
    inst = rt.workspace().fleet.get(target.instance)
    state = target.state
    if inst is None:
        if state in (TargetState.PENDING, TargetState.WAITING_WINDOW):
            _transition(rt, ctx, target.instance, state, TargetState.SKIPPED,
                        f"{target.instance} is no longer in the workspace; skipped",
                        explanation="instance removed from the workspace")
            return TargetState.SKIPPED
        return state
    services = [c["service"] for c in target.changes]
    desired, secrets, versions_to = DesiredState(versions={}), list[str](), dict[str, str]()
    if state != TargetState.ROLLING_BACK and not state.terminal:
        try:
            desired, secrets, versions_to = desired_state(rt, target.changes, "to")
        except RollwaveError as exc:  # e.g. an unresolvable secret: nothing was deployed
            return _cannot_prepare(rt, ctx, target, exc, claimed=claimed)

    if state in (TargetState.PENDING, TargetState.WAITING_WINDOW):
        if not _transition(rt, ctx, inst.key, state, TargetState.DEPLOYING,
                           claim_message(ctx, target), attempts=target.attempts + 1,
                           kind="instance.deploying"):
            return _reload(rt, ctx, inst.key)
        state = TargetState.DEPLOYING

    if state == TargetState.DEPLOYING:
        state = _deploy_step(rt, ctx, inst, target, desired, secrets, services)

    if state == TargetState.VERIFYING:
        state = _verify_step(rt, ctx, inst, target, services, versions_to)

    if state == TargetState.ROLLING_BACK:
        state = _rollback_step(rt, ctx, inst, target, services)
    return state


def _cannot_prepare(rt: Runtime, ctx: TargetContext, target: repo.TargetRecord,
                    exc: RollwaveError, *, claimed: bool) -> TargetState:
    why = f"cannot prepare the deploy of {target.instance}: {exc.message}"
    fresh = target.state in (TargetState.PENDING, TargetState.WAITING_WINDOW)
    if not fresh and not (claimed and target.state == TargetState.DEPLOYING):
        return target.state  # maybe deployed already: left for a person or the next pass
    with rt.db.begin() as conn:
        if fresh:
            repo.transition_target(conn, ctx.rollout_id, target.instance, target.state,
                                   TargetState.DEPLOYING, why, kind="instance.deploying",
                                   attempts=target.attempts + 1)
        repo.transition_target(conn, ctx.rollout_id, target.instance, TargetState.DEPLOYING,
                               TargetState.ROLLING_BACK, why + "; nothing was changed",
                               kind="instance.deploy_failed", explanation=why)
    return drive_target(rt, ctx, _fresh(rt, ctx, target.instance))


def _fresh(rt: Runtime, ctx: TargetContext, instance: str) -> repo.TargetRecord:
    with rt.db.read() as conn:
        row = repo.get_target(conn, ctx.rollout_id, instance)
    assert row is not None
    return row


def _reload(rt: Runtime, ctx: TargetContext, instance: str) -> TargetState:
    with rt.db.read() as conn:
        row = repo.get_target(conn, ctx.rollout_id, instance)
    return row.state if row else TargetState.SKIPPED


def _deploy_step(rt: Runtime, ctx: TargetContext, inst: FleetInstance,
                 target: repo.TargetRecord, desired: DesiredState, secrets: list[str],
                 services: list[str]) -> TargetState:
    deployer = rt.deployer(inst.deployer)
    actual = deployer.actual(inst, services)
    if actual.satisfies(desired):
        message = f"{inst.key} already runs the target version and config; not redeploying"
        _transition(rt, ctx, inst.key, TargetState.DEPLOYING, TargetState.VERIFYING, message,
                    kind="instance.deployed", data={"skipped_deploy": True})
        return TargetState.VERIFYING
    lines: list[str] = []
    result = deployer.deploy(inst, desired, DeployContext(
        state_dir=rt.app.state_dir, redact=secrets, log=lines.append,
        attempt=target.attempts + 1, reason="rollback" if ctx.kind == "rollback" else "deploy"))
    log_text = redact("\n".join([*lines, result.log]).strip(), secrets)

    logged_at = datetime.now(UTC)

    def log(conn: Any) -> None:  # the deployment log commits with the state change
        repo.add_deploy_log(conn, ctx.rollout_id, inst.key, target.attempts + 1, "deploy",
                            result.ok, log_text, at=logged_at)

    if not result.ok:
        message = f"deploy of {inst.key} failed: {redact(result.message, secrets)}"
        _transition(rt, ctx, inst.key, TargetState.DEPLOYING, TargetState.ROLLING_BACK,
                    message + "; restoring the previous version", kind="instance.deploy_failed",
                    explanation=message, record=log)
        return TargetState.ROLLING_BACK
    deployed = f"{inst.key} deployed ({result.message})"
    if ctx.trivial:
        return _deployed_and_done(rt, ctx, inst, target, deployed, log_text)
    _transition(rt, ctx, inst.key, TargetState.DEPLOYING, TargetState.VERIFYING,
                f"{deployed}; verifying", kind="instance.deployed", record=log)
    return TargetState.VERIFYING


def _deployed_and_done(rt: Runtime, ctx: TargetContext, inst: FleetInstance,
                       target: repo.TargetRecord, deployed: str,
                       log_text: str) -> TargetState:
    """No checks are configured: deployed and done in one write (both events kept).

    The write rides with the wave's next claim when it can (see carry), else goes now.
    """
    versions, config_versions = _side(target.changes, "to")
    why = "no checks are configured; a successful deploy is the only signal"
    finished = repo.Finished(
        instance=inst.key, customer=inst.customer, at=datetime.now(UTC), deployed=deployed,
        succeeded=f"{inst.key} verified: {why}", outcome=Outcome.SUCCESSFUL.value,
        explanation=why, attempt=target.attempts + 1, log=log_text, versions=versions,
        config_versions=config_versions)
    if ctx.carry is not None and ctx.carry.add(finished):
        return TargetState.SUCCEEDED
    if not rt.db.write(lambda conn: repo.finish_targets(conn, ctx.rollout_id, ctx.release_id,
                                                        [finished])):
        return _reload(rt, ctx, inst.key)
    return TargetState.SUCCEEDED


def _verify_step(rt: Runtime, ctx: TargetContext, inst: FleetInstance,
                 target: repo.TargetRecord, services: list[str],
                 config_versions: Mapping[str, str]) -> TargetState:
    verdict = _verify(rt, ctx, inst, services, "verification")
    versions, _ = _side(target.changes, "to")
    data = {"verdict": verdict.to_dict()}
    if verdict.outcome == Outcome.SUCCESSFUL:
        def record(conn: Any) -> None:
            fleet_state.record_deployed(conn, inst.key, inst.customer, versions,
                                        dict(config_versions), health="healthy",
                                        release_id=ctx.release_id, rollout_id=ctx.rollout_id)
        _transition(rt, ctx, inst.key, TargetState.VERIFYING, TargetState.SUCCEEDED,
                    f"{inst.key} verified: {verdict.summary}", record=record, data=data,
                    final=True, outcome=verdict.outcome.value, explanation=verdict.summary,
                    verdict=verdict.to_dict())
        return TargetState.SUCCEEDED
    if verdict.outcome == Outcome.FAILED or ctx.on_inconclusive == "rollback":
        _transition(rt, ctx, inst.key, TargetState.VERIFYING, TargetState.ROLLING_BACK,
                    f"{inst.key} failed verification ({verdict.outcome.value}): "
                    f"{verdict.summary}; rolling back to the previous version and config",
                    kind="instance.verification_failed", data=data,
                    outcome=verdict.outcome.value, explanation=verdict.summary,
                    verdict=verdict.to_dict())
        return TargetState.ROLLING_BACK

    def record_held(conn: Any) -> None:
        fleet_state.record_deployed(conn, inst.key, inst.customer, versions,
                                    dict(config_versions), health="unverified",
                                    release_id=ctx.release_id, rollout_id=ctx.rollout_id)
    _transition(rt, ctx, inst.key, TargetState.VERIFYING, TargetState.HELD,
                f"{inst.key} could not be verified ({verdict.outcome.value}): {verdict.summary}; "
                "neither promoting nor rolling back until a person decides",
                record=record_held, data=data, outcome=verdict.outcome.value,
                explanation=verdict.summary, verdict=verdict.to_dict())
    return TargetState.HELD


def _rollback_step(rt: Runtime, ctx: TargetContext, inst: FleetInstance,
                   target: repo.TargetRecord, services: list[str]) -> TargetState:
    deployer = rt.deployer(inst.deployer)
    previous, secrets, config_versions = desired_state(rt, target.changes, "from")
    if not previous.versions:
        deployer.stop(inst)
        _transition(rt, ctx, inst.key, TargetState.ROLLING_BACK, TargetState.ROLLED_BACK,
                    f"{inst.key} had no earlier version; stopped it", kind="instance.rolled_back")
        return TargetState.ROLLED_BACK
    actual = deployer.actual(inst, services)
    if not actual.satisfies(previous):
        lines: list[str] = []
        result = deployer.deploy(inst, previous, DeployContext(
            state_dir=rt.app.state_dir, redact=secrets, log=lines.append,
            attempt=target.attempts, reason="rollback"))
        with rt.db.begin() as conn:
            repo.add_deploy_log(conn, ctx.rollout_id, inst.key, target.attempts, "rollback",
                                result.ok, redact("\n".join([*lines, result.log]), secrets))
        if not result.ok:
            return _rollback_failed(rt, ctx, inst, f"restoring the previous version failed: "
                                    f"{redact(result.message, secrets)}")
    verdict = _verify(rt, ctx, inst, services, "rollback verification")
    if verdict.outcome != Outcome.SUCCESSFUL:
        return _rollback_failed(rt, ctx, inst, f"the previous version does not verify either "
                                f"({verdict.outcome.value}): {verdict.summary}")

    def record(conn: Any) -> None:
        fleet_state.record_deployed(conn, inst.key, inst.customer, dict(previous.versions),
                                    dict(config_versions), health="healthy", release_id=None,
                                    rollout_id=ctx.rollout_id)
    shown = ", ".join(f"{s} {v}" for s, v in sorted(previous.versions.items()))
    _transition(rt, ctx, inst.key, TargetState.ROLLING_BACK, TargetState.ROLLED_BACK,
                f"{inst.key} rolled back to {shown} with its previous config and verified",
                record=record, kind="instance.rolled_back")
    return TargetState.ROLLED_BACK


def _rollback_failed(rt: Runtime, ctx: TargetContext, inst: FleetInstance,
                     why: str) -> TargetState:
    def record(conn: Any) -> None:
        fleet_state.set_health(conn, inst.key, "unhealthy")
    _transition(rt, ctx, inst.key, TargetState.ROLLING_BACK, TargetState.ROLLBACK_FAILED,
                f"{inst.key}: {why}; a person must look now", record=record,
                kind="instance.rollback_failed", explanation=why)
    return TargetState.ROLLBACK_FAILED

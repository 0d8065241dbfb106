"""Gates in front of a wave: freezes, approvals, CI status (command or HTTP)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any

import httpx

from rollwave.core.model import ApprovalGate, CommandGate, HttpGate, Wave
from rollwave.core.planning import active_freezes
from rollwave.orchestration.runtime import Runtime
from rollwave.storage import rollouts as repo


@dataclass(frozen=True)
class GateResult:
    open: bool
    waiting_for: str
    retry_in: float  # seconds until it is worth checking again (approvals wake us earlier)

    def to_dict(self) -> dict[str, Any]:
        return {"open": self.open, "waiting_for": self.waiting_for, "retry_in": self.retry_in}


OPEN = GateResult(True, "", 0.0)


def check_gates(rt: Runtime, rollout_id: str, wave_index: int) -> GateResult:
    """The first closed gate in front of ``wave_index``, or OPEN."""
    with rt.db.read() as conn:
        rollout = repo.get_rollout(conn, rollout_id)
        assert rollout is not None
        approvals = repo.approvals(conn, rollout_id, wave_index)
    wave_doc = rollout.plan["waves"][wave_index]
    now = rt.clock()
    if not rollout.emergency and rollout.kind != "rollback":
        fleet = rt.workspace().fleet
        envs = {inst.environment for t in wave_doc["targets"]
                if (inst := fleet.get(t["instance"])) is not None}
        frozen = active_freezes(rt.workspace().project.freezes, now, envs)
        if frozen:
            freeze = frozen[0]
            return GateResult(False, f"freeze '{freeze.name}' until {freeze.end:%Y-%m-%d %H:%M}",
                              max(1.0, (freeze.end - now).total_seconds()))
    gates = Wave.model_validate({"name": "g", "select": "rest",
                                 "gates": wave_doc.get("gates", [])}).gates
    for gate in gates:
        result = _check(gate, approvals, wave_doc["name"])
        if not result.open:
            return result
    return OPEN


def _check(gate: ApprovalGate | CommandGate | HttpGate, approvals: list[repo.ControlRecord],
           wave_name: str) -> GateResult:
    if isinstance(gate, ApprovalGate):
        return _approval(gate, approvals, wave_name)
    if isinstance(gate, CommandGate):
        return _command(gate)
    return _http(gate)


def _approval(gate: ApprovalGate, approvals: list[repo.ControlRecord],
              wave_name: str) -> GateResult:
    people = sorted({a.actor for a in approvals})
    if len(people) >= gate.min_approvals:
        return OPEN
    need = gate.min_approvals - len(people)
    have = f" (approved so far by {', '.join(people)})" if people else ""
    return GateResult(False, f"approval of wave '{wave_name}': {need} more needed{have}; "
                      "run `rollwave approve`", 3600.0)


def _command(gate: CommandGate) -> GateResult:
    try:
        proc = subprocess.run(gate.command, capture_output=True, text=True,
                              timeout=gate.timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return GateResult(False, f"{gate.name} check could not run: {exc}", gate.retry_every)
    if proc.returncode == 0:
        return OPEN
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or [""]
    return GateResult(False, f"{gate.name} check exited {proc.returncode}: {tail[0][:200]}",
                      gate.retry_every)


def _http(gate: HttpGate) -> GateResult:
    try:
        response = httpx.get(gate.url, timeout=gate.timeout)
    except httpx.HTTPError as exc:
        return GateResult(False, f"{gate.name} status unreachable: {exc}", gate.retry_every)
    if 200 <= response.status_code < 300:
        return OPEN
    return GateResult(False, f"{gate.name} status answered {response.status_code}",
                      gate.retry_every)

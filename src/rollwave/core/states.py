"""The state machines of a rollout and of each instance (target) in it."""

from __future__ import annotations

import enum


class RolloutState(enum.StrEnum):
    """Where a rollout stands."""

    PENDING = "pending"  # recorded; waiting for an orchestrator to pick it up
    RUNNING = "running"  # deploying a wave
    WAITING = "waiting"  # waiting on a gate: approval, freeze, CI, maintenance windows
    BAKING = "baking"  # a wave is done; letting it bake before the next one
    PAUSED = "paused"  # stopped by a person or by the failure policy; waits for a decision
    ROLLING_BACK = "rolling_back"  # undoing the release everywhere it went
    SUCCEEDED = "succeeded"  # every wave done (individual instances may have been rolled back)
    ABORTED = "aborted"  # stopped by a person; instances stay as they are
    ROLLED_BACK = "rolled_back"  # the release was rolled back everywhere it went
    FAILED = "failed"  # ended without finishing; a person must look (e.g. rollback failed)

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_ROLLOUT_STATES

    @property
    def active(self) -> bool:
        return not self.terminal


TERMINAL_ROLLOUT_STATES = frozenset({RolloutState.SUCCEEDED, RolloutState.ABORTED,
                                     RolloutState.ROLLED_BACK, RolloutState.FAILED})


class TargetState(enum.StrEnum):
    """Where one instance of a rollout stands."""

    PENDING = "pending"  # not started
    WAITING_WINDOW = "waiting_window"  # outside its maintenance window
    DEPLOYING = "deploying"  # the deployer is putting the new version/config in place
    VERIFYING = "verifying"  # health, smoke and metric checks over the verification window
    SUCCEEDED = "succeeded"  # runs the release and passed verification
    HELD = "held"  # deployed but verification was inconclusive or errored; a person decides
    ROLLING_BACK = "rolling_back"  # restoring the previous version and config
    ROLLED_BACK = "rolled_back"  # previous version and config restored and verified
    ROLLBACK_FAILED = "rollback_failed"  # could not restore; needs a person now
    SKIPPED = "skipped"  # left alone (aborted before start, drifted, removed from the fleet)

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_TARGET_STATES

    @property
    def failed(self) -> bool:
        """Counts against the wave's failure budget."""
        return self in (TargetState.ROLLED_BACK, TargetState.ROLLBACK_FAILED)


TERMINAL_TARGET_STATES = frozenset({TargetState.SUCCEEDED, TargetState.ROLLED_BACK,
                                    TargetState.ROLLBACK_FAILED, TargetState.SKIPPED})

TARGET_TRANSITIONS: dict[TargetState, frozenset[TargetState]] = {
    TargetState.PENDING: frozenset({TargetState.WAITING_WINDOW, TargetState.DEPLOYING,
                                    TargetState.SKIPPED, TargetState.VERIFYING}),
    TargetState.WAITING_WINDOW: frozenset({TargetState.DEPLOYING, TargetState.SKIPPED,
                                           TargetState.VERIFYING, TargetState.WAITING_WINDOW}),
    TargetState.DEPLOYING: frozenset({TargetState.VERIFYING, TargetState.ROLLING_BACK}),
    TargetState.VERIFYING: frozenset({TargetState.SUCCEEDED, TargetState.ROLLING_BACK,
                                      TargetState.HELD}),
    TargetState.HELD: frozenset({TargetState.SUCCEEDED, TargetState.ROLLING_BACK}),
    TargetState.SUCCEEDED: frozenset({TargetState.ROLLING_BACK}),
    TargetState.ROLLING_BACK: frozenset({TargetState.ROLLED_BACK, TargetState.ROLLBACK_FAILED}),
    TargetState.ROLLED_BACK: frozenset(),
    TargetState.ROLLBACK_FAILED: frozenset({TargetState.ROLLING_BACK}),
    TargetState.SKIPPED: frozenset(),
}


class ControlAction(enum.StrEnum):
    """What a person can ask of a running rollout (recorded; the orchestrator acts on it)."""

    APPROVE = "approve"
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"
    ROLLBACK = "rollback"

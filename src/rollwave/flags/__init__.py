"""Feature flags: model, compiled evaluation engine, files, store, HTTP API and importers.

Public API::

    from rollwave.flags import Flag, FlagSet, Segment, compile_snapshot, EvaluationDetails
    snapshot = compile_snapshot(flagset, environment="production")
    snapshot.evaluate("new-checkout", {"targetingKey": "u-1"}, default=False)

See ``docs/flags.md`` for the flag format and semantics.
"""

from rollwave.flags.details import ErrorCode, EvaluationDetails, Reason
from rollwave.flags.engine import Snapshot, check_flag, compile_snapshot
from rollwave.flags.model import (
    Bucketing,
    Condition,
    EnvironmentSettings,
    Flag,
    FlagSet,
    Gate,
    Operator,
    Prerequisite,
    RolloutPlan,
    RolloutStep,
    Rule,
    Segment,
    Serve,
    Variant,
)

__all__ = [
    "Bucketing", "Condition", "EnvironmentSettings", "ErrorCode", "EvaluationDetails", "Flag",
    "FlagSet", "Gate", "Operator", "Prerequisite", "Reason", "RolloutPlan", "RolloutStep",
    "Rule", "Segment", "Serve", "Snapshot", "Variant", "check_flag", "compile_snapshot",
]

"""Feature flags: model, compiled evaluation engine, files, store, HTTP API and importers.

Public API::

    from rollwave.flags import Flag, FlagSet, Segment, compile_snapshot, EvaluationDetails
    snapshot = compile_snapshot(flagset, environment="production")
    snapshot.evaluate("new-checkout", {"targetingKey": "u-1"}, default=False)

The database-backed store of a Rollwave workspace (audit log, history, revert, change
notification across processes) is ``rollwave.flags.store_for(app)``.

See ``docs/flags.md`` for the flag format and semantics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rollwave.flags.details import ErrorCode, EvaluationDetails, Reason
from rollwave.flags.engine import Snapshot, check_flag, compile_snapshot
from rollwave.flags.model import (
    Bucketing,
    Condition,
    EnvironmentSettings,
    Flag,
    FlagSet,
    Gate,
    Guard,
    Operator,
    Prerequisite,
    RolloutPlan,
    RolloutStep,
    Rule,
    Segment,
    Serve,
    Variant,
)

if TYPE_CHECKING:
    from rollwave.flags.dbstore import DatabaseFlagStore
    from rollwave.services.context import App


def store_for(app: App) -> DatabaseFlagStore:
    """The flag store of ``app``'s database (one per database per process, shared).

    It implements :class:`rollwave.flags.store.FlagStore` plus ``records()``, ``history()``,
    ``revert()`` and ``transaction()``; see :mod:`rollwave.flags.dbstore`. Imported lazily so
    the SDK does not load SQLAlchemy.
    """
    from rollwave.flags.dbstore import store_for as _store_for

    return _store_for(app)


__all__ = [
    "Bucketing", "Condition", "EnvironmentSettings", "ErrorCode", "EvaluationDetails", "Flag",
    "FlagSet", "Gate", "Guard", "Operator", "Prerequisite", "Reason", "RolloutPlan", "RolloutStep",
    "Rule", "Segment", "Serve", "Snapshot", "Variant", "check_flag", "compile_snapshot",
    "store_for",
]

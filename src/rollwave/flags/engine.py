"""The evaluation engine: a pure, compiled snapshot of every flag for one environment.

Example::

    snapshot = compile_snapshot(flagset, environment="production")
    snapshot.evaluate("new-checkout", {"targetingKey": "u-1", "customer": "acme"}, False)
    # EvaluationDetails(value=True, variant='true', reason='TARGETING_MATCH', rule_id='acme', ...)

Evaluation never raises: unknown flags, type mismatches, definitions that failed to compile
and unexpected context shapes all return the caller's default with reason ``ERROR`` and an
OpenFeature error code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rollwave.errors import Problem, RollwaveError
from rollwave.flags.compiler import Evaluator, compile_flag, compile_segment, resolve
from rollwave.flags.details import ErrorCode, EvaluationDetails, Reason, error_details
from rollwave.flags.model import Flag, FlagSet

_TYPE_OF_VALUE: dict[type, str] = {bool: "boolean", str: "string", int: "number",
                                   float: "number", dict: "json", list: "json"}


def _erroring(key: str, code: str, message: str) -> Evaluator:
    details = EvaluationDetails(flag_key=key, value=None, variant=None, reason=Reason.ERROR,
                                error_code=code, error_message=message)
    return lambda ctx: details


def prerequisite_cycles(flags: Mapping[str, Flag]) -> set[str]:
    """Keys of flags that take part in (or depend on) a prerequisite cycle."""
    state: dict[str, int] = {}
    bad: set[str] = set()

    def visit(key: str, stack: list[str]) -> bool:
        mark = state.get(key)
        if mark == 1:
            bad.update(stack[stack.index(key):])
            return True
        if mark == 2:
            return key in bad
        state[key] = 1
        stack.append(key)
        flag = flags.get(key)
        cyclic = False
        for prereq in flag.prerequisites if flag else []:
            cyclic = visit(prereq.flag, stack) or cyclic
        stack.pop()
        state[key] = 2
        if cyclic:
            bad.add(key)
        return cyclic

    for key in flags:
        visit(key, [])
    return bad


@dataclass
class Snapshot:
    """Compiled evaluators for every flag in one environment, plus compile problems."""

    environment: str | None
    flags: dict[str, tuple[str, Evaluator]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    version: str = ""

    def evaluate(self, key: str, context: Mapping[str, Any] | None, default: Any = None,
                 flag_type: str | None = None) -> EvaluationDetails:
        """Evaluate ``key`` for ``context``; ``flag_type`` (if given) must match the flag's."""
        entry = self.flags.get(key)
        if entry is None:
            return error_details(key, default, ErrorCode.FLAG_NOT_FOUND,
                                 f"flag '{key}' does not exist")
        if flag_type is not None and entry[0] != flag_type:
            return error_details(key, default, ErrorCode.TYPE_MISMATCH,
                                 f"flag '{key}' is a {entry[0]} flag, not {flag_type}")
        try:
            details = entry[1](context if context is not None else {})
        except Exception as exc:  # evaluation never raises
            return error_details(key, default, ErrorCode.GENERAL,
                                 f"evaluation failed: {type(exc).__name__}: {exc}")
        if details.error_code is not None:
            return error_details(key, default, details.error_code,
                                 details.error_message or details.error_code)
        return details

    def evaluate_all(self, context: Mapping[str, Any] | None) -> list[EvaluationDetails]:
        """Evaluate every flag (bulk evaluation); errors are included as ERROR details."""
        return [self.evaluate(key, context) for key in self.flags]

    def flag_type(self, key: str) -> str | None:
        """The type of flag ``key``, or None if it does not exist."""
        entry = self.flags.get(key)
        return entry[0] if entry else None


def compile_snapshot(flagset: FlagSet, environment: str | None = None, *,
                     version: str = "") -> Snapshot:
    """Compile every flag of ``flagset`` for ``environment``.

    Flags that fail to compile (unsafe regex, bad operands, prerequisite cycles) evaluate to
    ERROR/PARSE_ERROR and are listed in ``problems``; the rest work normally.
    """
    snapshot = Snapshot(environment=environment, version=version)
    segments: dict[str, Callable[[Mapping[str, Any]], bool]] = {}
    for key, segment in flagset.segments.items():
        try:
            segments[key] = compile_segment(segment)
        except RollwaveError as exc:
            snapshot.problems.append(Problem(message=f"segment '{key}': {exc.message}",
                                             path=f"segments.{key}", hint=exc.hint,
                                             code="flag.definition"))
    cyclic = prerequisite_cycles(flagset.flags)
    for key, flag in flagset.flags.items():
        if key in cyclic:
            message = f"flag '{key}' is part of a prerequisite cycle"
            snapshot.flags[key] = (flag.type, _erroring(key, ErrorCode.PARSE_ERROR, message))
            snapshot.problems.append(Problem(message=message, path=f"flags.{key}",
                                             code="flag.definition",
                                             hint="remove one of the prerequisites"))
            continue
        try:
            evaluator = compile_flag(resolve(flag, environment), segments, snapshot.flags)
        except RollwaveError as exc:
            snapshot.flags[key] = (flag.type, _erroring(key, ErrorCode.PARSE_ERROR, exc.message))
            snapshot.problems.append(Problem(message=exc.message, path=f"flags.{key}",
                                             hint=exc.hint, code="flag.definition"))
            continue
        snapshot.flags[key] = (flag.type, evaluator)
    return snapshot


def check_flag(flag: Flag, flagset: FlagSet | None = None) -> list[Problem]:
    """Problems that would stop ``flag`` from compiling, in any of its environments.

    Also reports segments and prerequisite flags it names that ``flagset`` does not define.
    """
    segments = dict(flagset.segments) if flagset else {}
    flags = dict(flagset.flags) if flagset else {}
    flags[flag.key] = flag
    problems: list[Problem] = []
    if flagset is not None:
        for name in sorted(flag.segment_refs() - set(segments)):
            problems.append(Problem(message=f"unknown segment '{name}'", path="rules",  # noqa: PERF401
                                    code="flag.reference",
                                    hint="define it in flags/segments/NAME.yaml"))
        for prereq in flag.prerequisites:
            if prereq.flag not in flags:
                problems.append(Problem(message=f"unknown prerequisite flag '{prereq.flag}'",  # noqa: PERF401
                                        path="prerequisites", code="flag.reference"))
    subset = FlagSet(flags={flag.key: flag}, segments={
        k: s for k, s in segments.items() if k in flag.segment_refs()})
    environments: list[str | None] = [None, *flag.environments]
    seen: set[str] = set()
    for environment in environments:
        for problem in compile_snapshot(subset, environment).problems:
            if problem.message not in seen:
                seen.add(problem.message)
                problems.append(problem)
    if flag.key in prerequisite_cycles(flags):
        problems.append(Problem(message=f"flag '{flag.key}' is part of a prerequisite cycle",
                                path="prerequisites", code="flag.reference"))
    return problems


def value_type(value: Any) -> str:
    """The flag type a Python value belongs to (``json`` for anything else)."""
    return _TYPE_OF_VALUE.get(type(value), "json")

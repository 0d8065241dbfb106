"""Condition operators compiled into predicates over one context value.

:func:`compile_predicate` turns an attribute :class:`~rollwave.flags.model.Condition` into a
function ``value -> bool`` (``value`` is ``None`` when the context lacks the attribute). Bad
operands (non-numbers for ``lt``, unparsable versions, dates or CIDRs, unsafe regexes) raise
:class:`~rollwave.flags.errors.FlagDefinitionError` here, at definition time; at evaluation time
a context value of the wrong kind simply does not match.
"""

from __future__ import annotations

import ipaddress
import math
import operator
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rollwave.flags.errors import FlagDefinitionError
from rollwave.flags.model import Condition, Operator
from rollwave.flags.regexguard import MAX_SUBJECT, compile_safe

Predicate = Callable[[Any], bool]
SemverKey = tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?$"
)


def text(value: Any) -> str:
    """The string form used by string operators (booleans as ``true``/``false``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def semver_key(value: Any) -> SemverKey | None:
    """A sortable key for a strict SemVer 2.0 version (no leading ``v``), else ``None``."""
    if not isinstance(value, str):
        return None
    match = _SEMVER.match(value.strip())
    if not match:
        return None
    major, minor, patch, pre = match.groups()
    if pre is None:
        return (int(major), int(minor), int(patch), 1, ())
    parts = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return (int(major), int(minor), int(patch), 0, parts)


def to_number(value: Any) -> float | None:
    """A finite float from a number or numeric string, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def to_datetime(value: Any) -> datetime | None:
    """An aware datetime from ISO 8601 text, a datetime, or epoch seconds; naive means UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _operand_error(cond: Condition, what: str, bad: Any) -> FlagDefinitionError:
    return FlagDefinitionError(
        f"operator '{cond.op}' on '{cond.attribute}' needs {what}, got {bad!r}")


def compile_predicate(cond: Condition) -> Predicate:
    """Compile an attribute condition (negation included) into ``value -> bool``."""
    base = _base_predicate(cond)
    if cond.negate:
        return lambda value: not base(value)
    return base


def _base_predicate(cond: Condition) -> Predicate:  # noqa: PLR0915, PLR0911, PLR0912
    op = cond.op
    operands = cond.operands()
    fold = cond.case_insensitive
    if op is Operator.EXISTS:
        return lambda value: value is not None
    if op in (Operator.EQUALS, Operator.IN, Operator.NOT_EQUALS, Operator.NOT_IN):
        wanted = frozenset(text(v).lower() if fold else text(v) for v in operands)
        if fold:
            def member(value: Any) -> bool:
                return value is not None and text(value).lower() in wanted
        else:
            def member(value: Any) -> bool:
                return value is not None and (value in wanted if value.__class__ is str
                                              else text(value) in wanted)
        if op in (Operator.NOT_EQUALS, Operator.NOT_IN):
            return lambda value: not member(value)
        return member
    if op in (Operator.CONTAINS, Operator.STARTS_WITH, Operator.ENDS_WITH):
        needles = tuple(text(v).lower() if fold else text(v) for v in operands)
        if op is Operator.STARTS_WITH:
            def test(s: str) -> bool:
                return s.startswith(needles)
        elif op is Operator.ENDS_WITH:
            def test(s: str) -> bool:
                return s.endswith(needles)
        else:
            def test(s: str) -> bool:
                return any(n in s for n in needles)

        def strings(value: Any) -> bool:
            if value is None or isinstance(value, dict | list):
                return False
            s = text(value)
            return test(s.lower() if fold else s)
        return strings
    if op is Operator.MATCHES:
        patterns = []
        for operand in operands:
            if not isinstance(operand, str):
                raise _operand_error(cond, "a regex string", operand)
            patterns.append(compile_safe(operand, ignore_case=fold))

        def matches(value: Any) -> bool:
            if value is None or isinstance(value, dict | list):
                return False
            s = text(value)
            return len(s) <= MAX_SUBJECT and any(p.search(s) for p in patterns)
        return matches
    if op in (Operator.LT, Operator.LTE, Operator.GT, Operator.GTE):
        compare = _COMPARE[op.value]
        numbers = []
        for operand in operands:
            number = to_number(operand)
            if number is None:
                raise _operand_error(cond, "a number", operand)
            numbers.append(number)

        def numeric(value: Any) -> bool:
            number = to_number(value)
            return number is not None and any(compare(number, n) for n in numbers)
        return numeric
    if op is not None and op.value.startswith("semver_"):
        compare = _COMPARE[op.value.removeprefix("semver_")]
        versions = []
        for operand in operands:
            key = semver_key(operand)
            if key is None:
                raise _operand_error(cond, "a semantic version like 1.2.3 or 1.2.3-rc.1", operand)
            versions.append(key)

        def semver(value: Any) -> bool:
            key = semver_key(value)
            return key is not None and any(compare(key, v) for v in versions)
        return semver
    if op in (Operator.BEFORE, Operator.AFTER):
        compare = operator.lt if op is Operator.BEFORE else operator.gt
        moments = []
        for operand in operands:
            moment = to_datetime(operand)
            if moment is None:
                raise _operand_error(cond, "an ISO 8601 date-time", operand)
            moments.append(moment)

        def dated(value: Any) -> bool:
            moment = to_datetime(value)
            return moment is not None and any(compare(moment, m) for m in moments)
        return dated
    if op is Operator.IN_CIDR:
        networks = []
        for operand in operands:
            try:
                networks.append(ipaddress.ip_network(text(operand).strip(), strict=False))
            except ValueError:
                raise _operand_error(cond, "an IP address or CIDR like 10.0.0.0/8",
                                     operand) from None

        def cidr(value: Any) -> bool:
            if not isinstance(value, str):
                return False
            try:
                address = ipaddress.ip_address(value.strip())
            except ValueError:
                return False
            return any(address in n for n in networks)
        return cidr
    raise FlagDefinitionError(f"unknown operator {op!r}")  # pragma: no cover


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "lt": operator.lt, "lte": operator.le,
    "gt": operator.gt, "gte": operator.ge,
}

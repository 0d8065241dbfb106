"""Accept only regexes that cannot backtrack catastrophically.

Python's ``re`` backtracks, so a pattern like ``(a+)+$`` takes exponential time on
``"aaaa…b"``. Patterns are checked at definition time and refused, with a clear reason, when
they contain any of:

- a quantifier inside a quantified group (``(a+)+``, ``(\\w*x)*``),
- an alternation under a quantifier unless each branch is one character (``(a|ab)*``),
- two unbounded quantifiers in a row whose characters overlap (``\\w*\\w*``, ``.*.*=``),
- back-references, or more than :data:`MAX_PATTERN` characters.

At evaluation time, values longer than :data:`MAX_SUBJECT` characters never match, which
bounds the remaining polynomial cases.
"""

from __future__ import annotations

import re
from re import _constants as _c  # type: ignore[attr-defined]  # the parser re itself uses
from re import _parser as _p  # type: ignore[attr-defined]
from typing import Any

from rollwave.flags.errors import UnsafeRegexError

MAX_PATTERN = 512
MAX_SUBJECT = 1024
_UNBOUNDED = 16
_SAMPLE = [chr(i) for i in range(256)] + ["é", "ß", "中", "\u2028", "😀"]


def compile_safe(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """Compile ``pattern`` after checking it is safe; raise :class:`UnsafeRegexError` otherwise."""
    if not isinstance(pattern, str):
        raise UnsafeRegexError(f"regex must be a string, got {pattern!r}")
    if len(pattern) > MAX_PATTERN:
        raise UnsafeRegexError(f"regex is {len(pattern)} characters, over the {MAX_PATTERN} limit")
    flags = re.IGNORECASE if ignore_case else 0
    try:
        parsed = _p.parse(pattern, flags)
    except re.error as exc:
        raise UnsafeRegexError(f"invalid regex {pattern!r}: {exc}",
                          hint="check the regex syntax (Python re flavour)") from None
    reason = _check_sequence(list(parsed), quantified=False)
    if reason:
        raise UnsafeRegexError(f"regex {pattern!r} is refused: {reason}")
    return re.compile(pattern, flags)


def _is_repeat(op: Any) -> bool:
    return op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None))


def _check_sequence(items: list[tuple[Any, Any]], *, quantified: bool) -> str | None:  # noqa: PLR0911, PLR0912
    previous_unbounded: list[tuple[Any, Any]] | None = None
    for op, arg in items:
        if op in (_c.GROUPREF, _c.GROUPREF_EXISTS):
            return "back-references are not allowed"
        if _is_repeat(op):
            low, high, body = arg
            body = list(body)
            if quantified and high > 1:
                return "a quantifier inside a quantified group (nested quantifiers)"
            if high > 1 and _has_branch(body):
                return "an alternation under a quantifier (use a character class instead)"
            reason = _check_sequence(body, quantified=quantified or high > 1)
            if reason:
                return reason
            if high > _UNBOUNDED:
                if previous_unbounded is not None and _overlap(previous_unbounded, body):
                    return "two adjacent unbounded quantifiers over overlapping characters"
                previous_unbounded = body
            elif low > 0:
                previous_unbounded = None
            continue
        if op is _c.SUBPATTERN:
            reason = _check_sequence(list(arg[-1]), quantified=quantified)
            if reason:
                return reason
        elif op is _c.BRANCH:
            for branch in arg[1]:
                reason = _check_sequence(list(branch), quantified=quantified)
                if reason:
                    return reason
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            reason = _check_sequence(list(arg[1]), quantified=quantified)
            if reason:
                return reason
        elif op is getattr(_c, "ATOMIC_GROUP", None):
            reason = _check_sequence(list(arg), quantified=quantified)
            if reason:
                return reason
        if op is not _c.AT:
            previous_unbounded = None
    return None


def _has_branch(items: list[tuple[Any, Any]]) -> bool:
    for op, arg in items:
        if op is _c.BRANCH:
            if any(not _single_char(list(b)) for b in arg[1]):
                return True
        elif op is _c.SUBPATTERN and _has_branch(list(arg[-1])):
            return True
    return False


def _single_char(items: list[tuple[Any, Any]]) -> bool:
    return len(items) == 1 and items[0][0] in (_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.IN)


def _overlap(first: list[tuple[Any, Any]], second: list[tuple[Any, Any]]) -> bool:
    """Whether some sample character can be matched by both repeated bodies."""
    a = _chars(first)
    b = _chars(second)
    return bool(a & b)


def _chars(items: list[tuple[Any, Any]]) -> set[str]:
    """Sample characters a repeated body can start with (all samples when unsure)."""
    if not items:
        return set()
    op, arg = items[0]
    if op is _c.SUBPATTERN:
        return _chars(list(arg[-1]))
    if op in (_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.IN):
        return {ch for ch in _SAMPLE if _matches_one(op, arg, ch)}
    return set(_SAMPLE)


def _matches_one(op: Any, arg: Any, ch: str) -> bool:
    code = ord(ch)
    if op is _c.LITERAL:
        return bool(code == arg)
    if op is _c.NOT_LITERAL:
        return bool(code != arg)
    if op is _c.ANY:
        return ch != "\n"
    negate = False
    hit = False
    for sub_op, sub_arg in arg:
        if sub_op is _c.NEGATE:
            negate = True
        elif sub_op is _c.LITERAL:
            hit = hit or code == sub_arg
        elif sub_op is _c.RANGE:
            hit = hit or sub_arg[0] <= code <= sub_arg[1]
        elif sub_op is _c.CATEGORY:
            hit = hit or _category(sub_arg, ch)
        else:
            hit = True
    return hit != negate


def _category(category: Any, ch: str) -> bool:
    name = str(category)
    if "DIGIT" in name:
        result = ch.isdigit()
    elif "SPACE" in name:
        result = ch.isspace()
    elif "WORD" in name:
        result = ch.isalnum() or ch == "_"
    else:
        return True
    return (not result) if "NOT" in name else result

"""Tag expressions select instances by their facts.

Grammar (case-sensitive names, ``and``/``or``/``not``/``in`` are keywords; ``not`` binds
tighter than ``and``, which binds tighter than ``or``)::

    expr   := term ('or' term)*
    term   := factor ('and' factor)*
    factor := 'not' factor | '(' expr ')' | NAME OP VALUE
            | NAME ['not'] 'in' '(' VALUE (',' VALUE)* ')' | NAME
    OP     := '==' | '!='

A bare ``NAME`` is true when the instance carries that tag (``early-adopter``) or has that
attribute set to a true-ish value. Attributes are ``customer``, ``instance``, ``environment``,
``tier``, ``region`` and any ``key: value`` label; tags are free words. ``tag == x``,
``tag != x`` and ``tag in (x, y)`` test tags explicitly. A comparison with an attribute the
instance does not have is false for ``==``/``in`` and true for ``!=``/``not in``. Names and
values are words of letters, digits and ``_ . - : / @ *``, or quoted (``'with space'``).

Errors (:class:`TagExprError`) name the 1-based position of the problem.

Examples::

    early-adopter and not tier == enterprise
    region in (eu-west, eu-central) or customer == acme
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import Literal

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lp>\() | (?P<rp>\)) | (?P<comma>,) |
        (?P<op>==|!=) |
        '(?P<sq>[^']*)' | "(?P<dq>[^"]*)" |
        (?P<word>[\w.\-:/@*]+)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in"}
MAX_DEPTH = 64
"""Deepest nesting of parentheses and ``not`` accepted (no real selector comes close)."""

_DESCRIBE = {"value": "a name or value", "rp": "')'", "lp": "'('", "op": "'==' or '!='",
             "comma": "','"}


class TagExprError(ValueError):
    """A tag expression that does not parse; the message says where and why.

    ``position`` is the 1-based character position of the problem (``None`` when unknown).
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


@dataclass(frozen=True, slots=True)
class Facts:
    """What a tag expression can see of one instance."""

    attributes: Mapping[str, str]
    tags: Set[str]


@dataclass(frozen=True, slots=True)
class _Tag:
    name: str


@dataclass(frozen=True, slots=True)
class _Compare:
    name: str
    op: Literal["==", "!="]
    value: str


@dataclass(frozen=True, slots=True)
class _In:
    name: str
    values: frozenset[str]
    negated: bool


@dataclass(frozen=True, slots=True)
class _Not:
    inner: Expr


@dataclass(frozen=True, slots=True)
class _Bool:
    op: Literal["and", "or"]
    parts: tuple[Expr, ...]


Expr = _Tag | _Compare | _In | _Not | _Bool


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    position: int  # 1-based


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            skipped = len(text[pos:]) - len(text[pos:].lstrip())
            where = pos + skipped
            char = text[where]
            hint = " (an unclosed quote?)" if char in "'\"" else ""
            raise TagExprError(f"unexpected character {char!r} at position {where + 1}{hint} "
                               f"in {text!r}", where + 1)
        kind = match.lastgroup or ""
        value = match.group(kind)
        start = match.start(kind) + 1
        if kind in ("sq", "dq"):
            tokens.append(_Token("value", value, start - 1))
        elif kind == "word" and value in _KEYWORDS:
            tokens.append(_Token(value, value, start))
        elif kind == "word":
            tokens.append(_Token("value", value, start))
        else:
            tokens.append(_Token(kind, value, start))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> str | None:
        index = self.pos + ahead
        return self.tokens[index].kind if index < len(self.tokens) else None

    def fail(self, expected: str) -> TagExprError:
        if self.pos < len(self.tokens):
            token = self.tokens[self.pos]
            return TagExprError(f"expected {expected} but found {token.text!r} at position "
                                f"{token.position} in {self.text!r}", token.position)
        end = len(self.text.rstrip()) + 1
        return TagExprError(f"expected {expected} but the expression ends at position {end} "
                            f"in {self.text!r}", end)

    def take(self, kind: str) -> str:
        if self.peek() != kind:
            raise self.fail(_DESCRIBE.get(kind, repr(kind)))
        value = self.tokens[self.pos].text
        self.pos += 1
        return value

    def parse(self) -> Expr:
        if not self.tokens:
            raise TagExprError("empty tag expression", 1)
        expr = self.expr()
        if self.pos != len(self.tokens):
            raise self.fail("'and', 'or' or the end")
        return expr

    def expr(self) -> Expr:
        parts = [self.term()]
        while self.peek() == "or":
            self.pos += 1
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else _Bool("or", tuple(parts))

    def term(self) -> Expr:
        parts = [self.factor()]
        while self.peek() == "and":
            self.pos += 1
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else _Bool("and", tuple(parts))

    def _deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            token = self.tokens[self.pos]
            raise TagExprError(f"expression nested deeper than {MAX_DEPTH} levels at position "
                               f"{token.position}", token.position)

    def factor(self) -> Expr:
        kind = self.peek()
        if kind == "not":
            self._deeper()
            self.pos += 1
            inner = _Not(self.factor())
            self.depth -= 1
            return inner
        if kind == "lp":
            self._deeper()
            self.pos += 1
            group = self.expr()
            self.take("rp")
            self.depth -= 1
            return group
        if kind != "value":
            raise self.fail("a tag, an attribute test, 'not' or '('")
        name = self.take("value")
        nxt = self.peek()
        if nxt == "op":
            op = self.take("op")
            return _Compare(name, "==" if op == "==" else "!=", self.take("value"))
        negated = nxt == "not" and self.peek(1) == "in"
        if negated:
            self.pos += 1
            nxt = "in"
        if nxt == "in":
            self.pos += 1
            self.take("lp")
            values = [self.take("value")]
            while self.peek() == "comma":
                self.pos += 1
                values.append(self.take("value"))
            self.take("rp")
            return _In(name, frozenset(values), negated)
        return _Tag(name)


def parse(text: str) -> Expr:
    """Parse ``text`` or raise :class:`TagExprError` naming the position."""
    return _Parser(text).parse()


def evaluate(expr: Expr, facts: Facts) -> bool:
    """True when the instance described by ``facts`` matches ``expr``."""
    if isinstance(expr, _Tag):
        return expr.name in facts.tags or _truthy(facts.attributes.get(expr.name))
    if isinstance(expr, _Compare):
        hit = _has_value(expr.name, frozenset((expr.value,)), facts)
        return hit if expr.op == "==" else not hit
    if isinstance(expr, _In):
        hit = _has_value(expr.name, expr.values, facts)
        return not hit if expr.negated else hit
    if isinstance(expr, _Not):
        return not evaluate(expr.inner, facts)
    if expr.op == "and":
        return all(evaluate(part, facts) for part in expr.parts)
    return any(evaluate(part, facts) for part in expr.parts)


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in ("", "false", "no", "0")


def _has_value(name: str, values: frozenset[str], facts: Facts) -> bool:
    value = facts.attributes.get(name)
    if value is None and name == "tag":  # tag == x, tag in (x, y): test the tags themselves
        return bool(values & facts.tags)
    return value in values


def names(expr: Expr) -> set[str]:
    """Every attribute or tag name the expression mentions (for 'unknown tag' warnings)."""
    if isinstance(expr, _Tag | _Compare | _In):
        return {expr.name}
    if isinstance(expr, _Not):
        return names(expr.inner)
    out: set[str] = set()
    for part in expr.parts:
        out |= names(part)
    return out


def tested_tags(expr: Expr) -> set[str]:
    """Tags tested explicitly with ``tag == x`` / ``tag in (x, y)`` (for 'unknown tag' warnings)."""
    if isinstance(expr, _Compare):
        return {expr.value} if expr.name == "tag" else set()
    if isinstance(expr, _In):
        return set(expr.values) if expr.name == "tag" else set()
    if isinstance(expr, _Not):
        return tested_tags(expr.inner)
    if isinstance(expr, _Tag):
        return set()
    out: set[str] = set()
    for part in expr.parts:
        out |= tested_tags(part)
    return out


def matches(text: str, facts: Facts) -> bool:
    """Parse and evaluate in one go (for one-off use; planning parses once)."""
    return evaluate(parse(text), facts)

"""Tag expressions select instances by their facts.

Grammar (case-sensitive names, ``and``/``or``/``not``/``in`` are keywords)::

    expr   := term ('or' term)*
    term   := factor ('and' factor)*
    factor := 'not' factor | '(' expr ')' | NAME OP VALUE | NAME ['not'] 'in' '(' VALUES ')' | NAME
    OP     := '==' | '!='

A bare ``NAME`` is true when the instance carries that tag (``early-adopter``) or has that
attribute set to a true-ish value. Attributes are ``customer``, ``instance``, ``environment``,
``tier``, ``region`` and any ``key: value`` label; tags are free words.

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
        (?P<word>[A-Za-z0-9_.\-:/@*]+)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in"}


class TagExprError(ValueError):
    """A tag expression that does not parse; the message says where and why."""


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


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise TagExprError(f"unexpected character {text[pos]!r} at position {pos + 1}")
        pos = match.end()
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind in ("sq", "dq"):
            tokens.append(("value", value))
        elif kind == "word" and value in _KEYWORDS:
            tokens.append((value, value))
        elif kind == "word":
            tokens.append(("value", value))
        else:
            tokens.append((kind, value))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def take(self, kind: str) -> str:
        if self.peek() != kind:
            found = self.tokens[self.pos][1] if self.pos < len(self.tokens) else "end of text"
            raise TagExprError(f"expected {kind} but found {found!r} in {self.text!r}")
        value = self.tokens[self.pos][1]
        self.pos += 1
        return value

    def parse(self) -> Expr:
        if not self.tokens:
            raise TagExprError("empty tag expression")
        expr = self.expr()
        if self.pos != len(self.tokens):
            raise TagExprError(f"unexpected {self.tokens[self.pos][1]!r} in {self.text!r}")
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

    def factor(self) -> Expr:
        kind = self.peek()
        if kind == "not":
            self.pos += 1
            return _Not(self.factor())
        if kind == "lp":
            self.pos += 1
            inner = self.expr()
            self.take("rp")
            return inner
        name = self.take("value")
        nxt = self.peek()
        if nxt == "op":
            op = self.take("op")
            return _Compare(name, "==" if op == "==" else "!=", self.take("value"))
        negated = False
        if nxt == "not" and self.pos + 1 < len(self.tokens) and self.tokens[self.pos + 1][0] == "in":
            self.pos += 1
            negated = True
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
        if expr.name in facts.tags:
            return True
        value = facts.attributes.get(expr.name)
        return value not in (None, "", "false", "no", "0")
    if isinstance(expr, _Compare):
        value = facts.attributes.get(expr.name)
        if value is None and expr.name == "tag":
            hit = expr.value in facts.tags
            return hit if expr.op == "==" else not hit
        return (value == expr.value) if expr.op == "==" else (value != expr.value)
    if isinstance(expr, _In):
        value = facts.attributes.get(expr.name)
        hit = value in expr.values
        return not hit if expr.negated else hit
    if isinstance(expr, _Not):
        return not evaluate(expr.inner, facts)
    if expr.op == "and":
        return all(evaluate(part, facts) for part in expr.parts)
    return any(evaluate(part, facts) for part in expr.parts)


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


def matches(text: str, facts: Facts) -> bool:
    """Parse and evaluate in one go (for one-off use; planning parses once)."""
    return evaluate(parse(text), facts)

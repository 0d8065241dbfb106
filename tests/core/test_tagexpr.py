"""Tag expressions: grammar, precedence, evaluation, and errors that name their position."""

from __future__ import annotations

import pytest

from rollwave.core import tagexpr
from rollwave.core.tagexpr import Facts, TagExprError, evaluate, matches, names, parse

ACME = Facts(attributes={"customer": "acme", "tier": "enterprise", "region": "eu-west",
                         "plan": "gold", "beta": "yes", "off": "false", "empty": ""},
             tags=frozenset({"early-adopter", "pilot"}))
BARE = Facts(attributes={"customer": "bare"}, tags=frozenset())


@pytest.mark.parametrize(("text", "facts", "expected"), [
    ("early-adopter", ACME, True),
    ("internal", ACME, False),
    ("tier", ACME, True),                 # a set attribute is true-ish
    ("beta", ACME, True),
    ("off", ACME, False),                 # false / no / 0 / empty are false
    ("empty", ACME, False),
    ("tier == enterprise", ACME, True),
    ("tier != enterprise", ACME, False),
    ("tier != enterprise", BARE, True),   # a missing attribute is != anything
    ("tier == enterprise", BARE, False),
    ("region in (eu-west, eu-central)", ACME, True),
    ("region in (us-east)", ACME, False),
    ("region not in (us-east)", ACME, True),
    ("region not in (us-east)", BARE, True),
    ("region in (eu-west)", BARE, False),
    ("tag == pilot", ACME, True),
    ("tag != pilot", ACME, False),
    ("tag in (canary, pilot)", ACME, True),
    ("tag not in (canary, pilot)", ACME, False),
    ("tag in (canary)", BARE, False),
    ("not early-adopter", ACME, False),
    ("not not early-adopter", ACME, True),
    ("early-adopter and tier == enterprise", ACME, True),
    ("early-adopter and tier == standard", ACME, False),
    ("internal or pilot", ACME, True),
    ("customer == 'acme'", ACME, True),
    ('customer == "acme"', ACME, True),
    ("  tier==enterprise  ", ACME, True),
])
def test_evaluate(text: str, facts: Facts, expected: bool) -> None:
    assert matches(text, facts) is expected


@pytest.mark.parametrize(("text", "same_as"), [
    # not > and > or
    ("a or b and c", "a or (b and c)"),
    ("not a and b", "(not a) and b"),
    ("not a or b", "(not a) or b"),
    ("a and b or c and d", "(a and b) or (c and d)"),
])
def test_precedence(text: str, same_as: str) -> None:
    assert parse(text) == parse(same_as)
    for bits in range(16):
        tags = {name for i, name in enumerate("abcd") if bits & (1 << i)}
        facts = Facts(attributes={}, tags=frozenset(tags))
        assert evaluate(parse(text), facts) == evaluate(parse(same_as), facts)


def test_parentheses_change_the_meaning() -> None:
    facts = Facts(attributes={}, tags=frozenset({"a"}))
    assert matches("a or b and c", facts)
    assert not matches("(a or b) and c", facts)


@pytest.mark.parametrize(("text", "position", "fragment"), [
    ("", 1, "empty"),
    ("   ", 1, "empty"),
    ("a and", 6, "ends at position 6"),
    ("a or or b", 6, "found 'or' at position 6"),
    ("(a", 3, "expected ')'"),
    ("a b", 3, "found 'b' at position 3"),
    ("tier ==", 8, "expected a name or value"),
    ("tier == == x", 9, "found '==' at position 9"),
    ("x in (a,", 9, "ends at position 9"),
    ("x in ()", 7, "found ')' at position 7"),
    ("x in a", 6, "expected '('"),
    ("a & b", 3, "unexpected character '&' at position 3"),
    ("a | b", 3, "'|'"),
    ("'abc", 1, "unclosed quote"),
    ("and", 1, "found 'and' at position 1"),
    (")", 1, "found ')' at position 1"),
    ("a)", 2, "found ')' at position 2"),
    ("tier = x", 6, "'='"),
    ("a;rm -rf /", 2, "';'"),
    ("$(reboot)", 1, "'$'"),
])
def test_parse_errors_name_the_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(TagExprError) as caught:
        parse(text)
    assert caught.value.position == position
    assert fragment in str(caught.value)


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    deep = "(" * 10_000 + "a" + ")" * 10_000
    with pytest.raises(TagExprError, match="nested deeper than"):
        parse(deep)
    with pytest.raises(TagExprError, match="nested deeper than"):
        parse("not " * 5_000 + "a")
    ok = "(" * tagexpr.MAX_DEPTH + "a" + ")" * tagexpr.MAX_DEPTH
    assert matches(ok, Facts(attributes={}, tags=frozenset({"a"})))


def test_long_flat_expressions_are_fine() -> None:
    text = " or ".join(f"t{i}" for i in range(5_000))
    assert matches(text, Facts(attributes={}, tags=frozenset({"t4999"})))


def test_unicode_and_quoted_names() -> None:
    facts = Facts(attributes={"city": "Zürich — 東京", "owner": "$(rm -rf /)"},
                  tags=frozenset({"früh"}))
    assert matches("früh", facts)
    assert matches("city == 'Zürich — 東京'", facts)
    assert matches("owner == '$(rm -rf /)'", facts)
    assert matches("'früh' and not spät", facts)


def test_keywords_are_case_sensitive_names_are_words() -> None:
    # `AND` is not a keyword: it is read as a name, so two names in a row is an error
    with pytest.raises(TagExprError, match="position 3"):
        parse("a AND b")
    assert matches("in-house", Facts(attributes={}, tags=frozenset({"in-house"})))


def test_names_lists_every_tested_name() -> None:
    expr = parse("a and (tier == x or region not in (r1, r2)) and not tag == t")
    assert names(expr) == {"a", "tier", "region", "tag"}


def test_error_is_a_value_error_for_pydantic() -> None:
    assert issubclass(TagExprError, ValueError)

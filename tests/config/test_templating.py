"""The template sandbox: what renders, what is refused, and that the fast path equals Jinja."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollwave.config.model import ConfigLimits, SecretRef, Template
from rollwave.config.templating import (
    Session,
    TemplateEngine,
    TemplateRenderError,
    finalize,
    find_markers,
)

FACTS: dict[str, Any] = {
    "customer": "acme", "instance": "prod", "key": "acme/prod", "environment": "prod",
    "tier": "enterprise", "tags": ["beta", "early"], "labels": {"team": "blue"},
    "target": {"host": "h", "port": 81}, "port": 81, "service": "api",
}


def render(source: str, facts: dict[str, Any] | None = None, **limits: int) -> Any:
    engine = TemplateEngine(ConfigLimits(**limits))
    return engine.render(Template(source, "f.yaml", 3), facts or FACTS)


@pytest.mark.parametrize(("source", "expected"), [
    ("{{ customer }}", "acme"),
    ("{{ port }}", 81),
    ("{{ port | default(8080) }}", 81),
    ("{{ region | default('none') }}", "none"),
    ("x-{{ region | default(7) }}", "x-7"),
    ("{{ labels.team }}", "blue"),
    ("{{ target.port + 1 }}", 82),
    ("{{ tags }}", ["beta", "early"]),
    ("{{ 'beta' in tags }}", True),
    ("{{ {'a': [1, 2.5, none]} }}", {"a": [1, 2.5, None]}),
    ("{{ customer | upper }}-{{ environment }}", "ACME-prod"),
    ("{{ range(3) | list }}", [0, 1, 2]),
    ("{{ tags | join(',') }}", "beta,early"),
    ("{{ 'a-b' | replace('-', '_') }}", "a_b"),
    ("{{ labels | tojson }}", '{"team": "blue"}'),
    ("{% if tier == 'enterprise' %}big{% else %}small{% endif %}", "big"),
    ("{# just a comment #}", ""),
    ("{{ customer.upper() }}", "ACME"),
    ("{{ labels.get('missing', 'd') }}", "d"),
    ("{{ 2 ** 10 }}", 1024),
    ("{{ 'ab' * 3 }}", "ababab"),
])
def test_renders(source: str, expected: Any) -> None:
    value = render(source)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(("source", "message"), [
    ("{{ nope }}", "'nope' is undefined"),
    ("{{ region }}", "'region' is undefined"),
    ("{{ labels.nope }}", "has no attribute 'nope'"),
    ("{% for x in tags %}{{ x }}{% endfor %}", "'{% for %}' is not allowed"),
    ("{% set x = 1 %}", "'{% set %}' is not allowed"),
    ("{% macro m() %}{% endmacro %}", "'{% macro %}' is not allowed"),
    ("{% include 'x' %}", "'{% include %}' is not allowed"),
    ("{{ customer.__class__ }}", "unsafe"),
    ("{{ '{}'.format(1) }}", "unsafe"),
    ("{{ labels.update({}) }}", "unsafe"),
    ("{{ tags.append(1) }}", "unsafe"),
    ("{{ '%s' % 1 }}", "'%' string formatting is not allowed"),
    ("{{ 'x' * 10**9 }}", "over the"),
    ("{{ [1] * 10**9 }}", "over the"),
    ("{{ (2 ** 64) ** 100 }}", "is too large"),
    ("{{ range(10**9) }}", "Range too big"),
    ("{{ range(90000) | join('x' * 10) }}", "a joined string would be"),
    ("{{ ('x' * 200000) | replace('x', 'yy') }}", "a replaced string would be"),
    ("{{ customer | center(10**9) }}", "No filter named 'center'"),
    ("{{ customer | indent(10**9) }}", "No filter named 'indent'"),
    ("{{ [1,2] | random }}", "No filter named 'random'"),
    ("{{ lipsum() }}", "'lipsum' is undefined"),
    ("{{ 1 / 0 }}", "ZeroDivisionError"),
    ("{{ customer ", "template syntax error"),
    ("{{ range }}", "template produced a"),
    ("{{ 1e400 }}", "template error: NameError"),
    ("{{ 1e300 * 1e300 }}", "which JSON cannot hold"),
])
def test_refuses(source: str, message: str) -> None:
    with pytest.raises(TemplateRenderError) as caught:
        render(source)
    assert message in caught.value.message
    assert caught.value.template is not None
    assert caught.value.template.line == 3


def test_output_cap() -> None:
    with pytest.raises(TemplateRenderError, match="over the 100"):
        render("{{ 'x' * 60 }}{{ 'y' * 60 }}", max_value_chars=100)
    assert render("{{ 'x' * 60 }}", max_value_chars=100) == "x" * 60


NAMES = st.sampled_from(["customer", "port", "tier", "missing", "labels"])
TEXT = st.text(alphabet="ab-/ .:", max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(TEXT, NAMES.map(lambda n: "{{ " + n + " }}"),
                          NAMES.map(lambda n: "{{ " + n + " | default('d') }}"),
                          st.just("{{ labels.team }}")), min_size=1, max_size=4),
       st.dictionaries(st.sampled_from(["customer", "port", "tier", "labels"]),
                       st.one_of(st.integers(), st.text(max_size=3), st.none(), st.booleans(),
                                 st.just({"team": "t"})), max_size=4))
def test_fast_path_equals_jinja(pieces: list[str], facts: dict[str, Any]) -> None:
    source = "".join(pieces)
    fast = TemplateEngine(ConfigLimits())
    slow = TemplateEngine(ConfigLimits())
    compiled = slow.compile(Template(source, "f", 1))
    compiled.parts = None  # force the Jinja path
    if compiled.native and compiled.expression is None:
        compiled.expression = slow.env.compile_expression(source[2:-2], undefined_to_none=False)
    elif not compiled.native and compiled.template is None:
        compiled.template = slow.env.from_string(source)
    results = []
    for engine in (fast, slow):
        try:
            results.append(("ok", engine.render(Template(source, "f", 1), facts)))
        except TemplateRenderError as exc:
            results.append(("error", exc.message))
    assert results[0] == results[1]


def _session(tree: dict[str, Any], **limits: int) -> tuple[dict[str, Any], Session]:
    session = Session(TemplateEngine(ConfigLimits(**limits)), tree, FACTS)
    trie, _ = find_markers(tree)
    assert isinstance(trie, dict)
    return finalize(tree, trie, session), session


def t(source: str) -> Template:
    return Template(source, "f.yaml", 1)


def test_session_reads_config_and_shares_untouched_subtrees() -> None:
    fixed = {"deep": {"x": 1}}
    tree = {"a": t("{{ config.b.c }}!"), "b": {"c": t("{{ customer }}")}, "fixed": fixed,
            "copy": t("{{ config.b }}"), "pw": SecretRef("env:PW"),
            "ref": SecretRef(t("aws-sm:{{ customer }}/db"))}
    values, session = _session(tree)
    assert values == {"a": "acme!", "b": {"c": "acme"}, "fixed": {"deep": {"x": 1}},
                      "copy": {"c": "acme"}, "pw": {"$secret": "env:PW"},
                      "ref": {"$secret": "aws-sm:acme/db"}}
    assert values["fixed"] is fixed
    assert not session.failures
    assert tree["a"] == t("{{ config.b.c }}!")  # the tree itself is untouched


def test_chains_within_the_limit_render() -> None:
    tree = {"c1": t("{{ config.c2 }}"), "c2": t("{{ config.c3 }}"), "c3": t("{{ config.c4 }}"),
            "c4": "end"}
    values, session = _session(tree, max_reference_depth=3)
    assert values == {"c1": "end", "c2": "end", "c3": "end", "c4": "end"}
    _, session = _session({**tree, "c4": t("{{ config.c5 }}"), "c5": "x"},
                          max_reference_depth=3)
    assert [f.message for f in session.failures] == [
        "templates refer to each other more than 3 levels deep: c1 → c2 → c3 → c4"]


def test_templates_cannot_read_secrets_or_loop() -> None:
    _, session = _session({"pw": SecretRef("env:PW"), "leak": t("{{ config.pw }}"),
                           "loop": t("{{ config.loop }}")})
    messages = sorted(f.message for f in session.failures)
    assert messages == ["config.pw is a secret; templates cannot read secret values (they are "
                        "resolved only at deploy time)", "template recursion: loop → loop"]

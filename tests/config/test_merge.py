"""Merge semantics: the fast path and the tracing path agree; conflicts; list modes."""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rollwave.config.compile import compile_modes, compile_values
from rollwave.config.merge import find_conflicts, merge_stack, same, trace_stack
from rollwave.config.model import Layer
from rollwave.yamlio import parse_yaml

KEYS = st.sampled_from(["a", "b", "c", "items", "users"])
SCALARS = st.one_of(st.integers(-3, 3), st.booleans(), st.none(), st.sampled_from(["x", "y"]))


def _item() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"name": st.sampled_from(["n1", "n2", "n3"])},
                                 optional={"v": SCALARS, "w": SCALARS})


VALUES = st.recursive(
    SCALARS | st.lists(_item(), max_size=3),
    lambda inner: st.dictionaries(KEYS, inner, max_size=4) | st.lists(inner, max_size=3),
    max_leaves=12,
)
LAYER = st.dictionaries(KEYS, VALUES, max_size=4)


def _layer(data: dict[str, Any], index: int, inline: bool) -> Layer:
    if inline and "items" in data and isinstance(data["items"], list):
        data = {**data, "items": {"$merge": "append", "$items": data["items"]}}
    doc = parse_yaml(json.dumps({"values": data}), f"l{index}.yaml")
    problems: list[Any] = []
    tree, has_ops = compile_values(doc.data["values"], file=doc.file, doc=doc,
                                   base=("values",), problems=problems)
    return Layer(kind="overlay", name=f"l{index}", file=doc.file, tree=tree, doc=doc,
                 base=("values",), has_ops=has_ops)


def _modes() -> dict[str, Any]:
    doc = parse_yaml("merge:\n  users: {by: name}\n  c: append\n  a.*.users: {by: name}\n")
    return compile_modes(doc.data["merge"], doc, ("merge",), [])


@settings(max_examples=150, deadline=None)
@given(st.lists(LAYER, min_size=1, max_size=4), st.booleans())
def test_fast_merge_and_trace_agree(layers: list[dict[str, Any]], inline: bool) -> None:
    compiled = [_layer(data, i, inline) for i, data in enumerate(layers)]
    modes = _modes()
    fast = merge_stack(compiled, modes)
    traced, settings_ = trace_stack(compiled, modes)
    assert same(fast, traced)
    for path in settings_:
        assert all(isinstance(part, str | int) for part in path)


@settings(max_examples=80, deadline=None)
@given(st.lists(LAYER, min_size=1, max_size=3))
def test_merge_never_mutates_inputs(layers: list[dict[str, Any]]) -> None:
    compiled = [_layer(data, i, True) for i, data in enumerate(layers)]
    before = [repr(layer.tree) for layer in compiled]
    merge_stack(compiled, _modes())
    trace_stack(compiled, _modes())
    assert [repr(layer.tree) for layer in compiled] == before


def _tree(text: str) -> tuple[dict[str, Any], Layer]:
    layer = _layer(yaml.safe_load(text), 0, False)
    return layer.tree, layer


def test_scalars_and_mappings() -> None:
    low, _ = _tree("a: {x: 1, y: 2}\nb: [1, 2]\nc: keep")
    high, _ = _tree("a: {y: 3, z: 4}\nb: [9]\nc: null")
    assert merge_stack([_l(low), _l(high)], None) == {
        "a": {"x": 1, "y": 3, "z": 4}, "b": [9], "c": None}


def _l(tree: dict[str, Any]) -> Layer:
    return Layer(kind="overlay", name="x", file="x.yaml", tree=tree)


def test_type_changes_replace() -> None:
    assert merge_stack([_l({"a": {"x": 1}}), _l({"a": "flat"})], None) == {"a": "flat"}
    assert merge_stack([_l({"a": "flat"}), _l({"a": {"x": 1}})], None) == {"a": {"x": 1}}


def test_same_distinguishes_types() -> None:
    assert same({"a": [1, {"b": True}]}, {"a": [1, {"b": True}]})
    assert not same(1, True)
    assert not same(1, 1.0)
    assert not same([1], [1, 2])


def test_conflicts_in_nested_keyed_lists() -> None:
    modes = _modes()
    left = {"users": [{"name": "n1", "v": 1}, {"name": "n2", "v": 1}], "c": [1], "b": 1}
    right = {"users": [{"name": "n2", "v": 2}, {"name": "n3", "v": 9}], "c": [2], "b": 1}
    found = find_conflicts(left, right, modes)
    assert found == [(("users[name=n2]", "v"), ("users", 1, "v"), ("users", 0, "v"))]


def test_equal_values_and_appends_do_not_conflict() -> None:
    modes = _modes()
    assert find_conflicts({"c": [1], "a": {"x": 1}}, {"c": [2], "a": {"x": 1}}, modes) == []
    assert find_conflicts({"a": {"x": 1}}, {"a": "x"}, modes) == [(("a",), ("a",), ("a",))]

"""Content hashes: stable, order-independent for mappings, sensitive to every value."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rollwave.core.hashing import canonical_json, config_hash, content_hash

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def test_known_value_is_stable_across_versions() -> None:
    # a stored release and a running instance compare these: they must never change
    assert content_hash({"a": 1}) == "015abd7f5cc57a2d"
    assert config_hash({}) == content_hash({})
    assert len(content_hash({"a": 1}, 64)) == 64


def test_key_order_does_not_matter_but_list_order_does() -> None:
    assert content_hash({"b": 1, "a": [1, 2]}) == content_hash({"a": [1, 2], "b": 1})
    assert content_hash({"a": [1, 2]}) != content_hash({"a": [2, 1]})


def test_types_are_distinguished() -> None:
    hashes = {content_hash(v) for v in (1, "1", 1.5, True, None, [1], {"1": 1})}
    assert len(hashes) == 7


def test_unicode_is_hashed_as_utf8_not_escaped() -> None:
    assert canonical_json({"city": "Zürich"}) == '{"city":"Zürich"}'.encode()


@given(JSON)
def test_hash_is_deterministic(data: object) -> None:
    assert content_hash(data) == content_hash(data)
    assert len(content_hash(data)) == 16

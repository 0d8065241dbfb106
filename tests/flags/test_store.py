"""The in-memory FlagStore: versions, conflicts, audit records, subscribers, kill switch."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rollwave.flags.errors import FlagConflict, FlagNotFound, SegmentNotFound
from rollwave.flags.model import Flag, Segment
from rollwave.flags.store import FlagStore, InMemoryFlagStore, set_killed

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_writes_record_actor_reason_before_after_and_versions() -> None:
    store = InMemoryFlagStore(clock=lambda: NOW)
    assert isinstance(store, FlagStore)
    first = store.put_flag(Flag(key="f"), actor="alice", reason="create")
    assert (first.before, first.version, first.revision, first.at) == (None, 1, 1, NOW)
    second = store.put_flag(Flag(key="f", description="x"), actor="bob", reason="describe",
                            expected_version=1)
    assert second.before == Flag(key="f")
    assert second.after is not None
    item = store.get_flag("f")
    assert item is not None
    assert (item.version, item.updated_by) == (2, "bob")
    with pytest.raises(FlagConflict):
        store.put_flag(Flag(key="f"), actor="carol", expected_version=1)
    with pytest.raises(FlagConflict):
        store.put_flag(Flag(key="new"), actor="carol", expected_version=3)
    store.put_flag(Flag(key="new"), actor="carol", expected_version=0)  # 0: must not exist
    deleted = store.delete_flag("f", actor="dave", reason="cleanup")
    assert (deleted.after, deleted.before) == (None, Flag(key="f", description="x"))
    with pytest.raises(FlagNotFound):
        store.delete_flag("f", actor="dave")
    assert [c.actor for c in store.list_changes("f")] == ["alice", "bob", "dave"]
    assert store.revision() == 4


def test_subscribers_hear_every_revision_and_can_leave() -> None:
    store = InMemoryFlagStore()
    heard: list[int] = []
    leave = store.subscribe(heard.append)
    store.put_segment(Segment(key="s"), actor="a")
    store.put_flag(Flag(key="f"), actor="a")
    leave()
    store.delete_segment("s", actor="a")
    assert heard == [1, 2]
    with pytest.raises(SegmentNotFound):
        store.delete_segment("s", actor="a")


def test_a_failing_subscriber_does_not_break_writes() -> None:
    store = InMemoryFlagStore()

    def boom(revision: int) -> None:
        raise RuntimeError("nope")
    store.subscribe(boom)
    assert store.put_flag(Flag(key="f"), actor="a").revision == 1


def test_kill_switch_everywhere_and_per_environment() -> None:
    store = InMemoryFlagStore()
    store.put_flag(Flag.model_validate({"key": "f", "environments": {"prod": {}}}), actor="a")
    change = set_killed(store, "f", True, actor="oncall", reason="incident 42",
                        environment="prod")
    assert change.reason == "incident 42"
    item = store.get_flag("f")
    assert item is not None
    assert item.value.environments["prod"].killed is True
    assert item.value.killed is False
    set_killed(store, "f", True, actor="oncall")
    item = store.get_flag("f")
    assert item is not None
    assert item.value.killed is True
    with pytest.raises(FlagNotFound):
        set_killed(store, "ghost", True, actor="oncall")

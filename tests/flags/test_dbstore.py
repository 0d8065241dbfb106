"""The database flag store on SQLite and PostgreSQL: versions, audit, history, revert, revision,
and changes seen across processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa

from rollwave.flags.dbstore import DatabaseFlagStore
from rollwave.flags.errors import FlagConflict, FlagNotFound
from rollwave.flags.files import parse_flag
from rollwave.flags.model import Flag, Segment
from rollwave.flags.store import FlagStore, set_killed
from rollwave.services.context import App
from rollwave.storage.events import list_events
from rollwave.storage.flag_tables import flag_history
from tests.flags.helpers import eventually


def _flag(key: str = "f", **fields: object) -> Flag:
    return Flag.model_validate({"key": key, **fields})


def test_is_a_flag_store(store: DatabaseFlagStore) -> None:
    assert isinstance(store, FlagStore)


def test_versions_and_optimistic_concurrency(store: DatabaseFlagStore) -> None:
    first = store.put_flag(_flag(enabled=True), actor="alice", reason="new", expected_version=0)
    assert (first.version, first.before) == (1, None)
    with pytest.raises(FlagConflict, match="version 1"):
        store.put_flag(_flag(), actor="bob", expected_version=0)
    second = store.put_flag(_flag(enabled=False), actor="bob", expected_version=1)
    assert second.version == 2
    assert second.revision > first.revision
    item = store.get_flag("f")
    assert item is not None
    assert (item.version, item.updated_by, item.value.enabled) == (2, "bob", False)
    assert item.meta["managed_by"] == "api"
    assert item.meta["created_by"] == "alice"


def test_every_change_has_history_and_an_event_in_the_same_transaction(
        store: DatabaseFlagStore, app: App) -> None:
    store.put_flag(_flag(enabled=True), actor="alice", reason="launch for beta")
    store.put_flag(_flag(enabled=False), actor="bob", reason="INC-7: errors")
    with pytest.raises(FlagConflict):  # a refused write leaves no trace
        store.put_flag(_flag(), actor="mallory", expected_version=7)
    store.delete_flag("f", actor="carol", reason="cleanup")
    history = store.history("f")
    assert [(h.action, h.actor, h.reason) for h in history] == [
        ("deleted", "carol", "cleanup"), ("updated", "bob", "INC-7: errors"),
        ("created", "alice", "launch for beta")]
    change = history[1]
    assert change.before is not None
    assert change.before["enabled"] is True
    assert change.after is not None
    assert "enabled" not in change.after
    assert change.changes() == [{"path": "enabled", "before": True, "after": False}]
    with app.db().read() as conn:
        events = list_events(conn, kind_prefix="flag.")
        seqs = conn.execute(sa.select(flag_history.c.event_seq)
                            .order_by(flag_history.c.id)).scalars().all()
    assert [e.kind for e in events] == ["flag.created", "flag.updated", "flag.deleted"]
    assert [e.seq for e in events] == seqs
    updated = events[1]
    assert updated.actor == "bob"
    assert "enabled true → false" in updated.message
    assert "INC-7: errors" in updated.message
    assert updated.data["changes"] == [{"path": "enabled", "before": True, "after": False}]


def test_revert_undoes_one_step_and_can_be_undone(store: DatabaseFlagStore) -> None:
    store.put_flag(_flag(enabled=True), actor="alice")
    store.put_flag(_flag(enabled=True, killed=True), actor="bob", reason="kill")
    change = store.revert("f", actor="carol", reason="false alarm")
    assert change.version == 3
    assert store.get_flag("f").value.killed is False  # type: ignore[union-attr]
    assert "false alarm" in change.reason
    assert "bob" in change.reason
    store.revert("f", actor="carol")  # reverting the revert kills again
    assert store.get_flag("f").value.killed is True  # type: ignore[union-attr]
    store.revert("f", actor="carol", to_version=1)
    assert store.get_flag("f").value.killed is False  # type: ignore[union-attr]
    assert store.history("f")[0].action == "reverted"


def test_revert_of_a_creation_deletes_and_of_a_deletion_restores(
        store: DatabaseFlagStore) -> None:
    store.put_flag(_flag(enabled=True), actor="alice")
    store.revert("f", actor="alice")
    assert store.get_flag("f") is None
    store.revert("f", actor="alice")
    restored = store.get_flag("f")
    assert restored is not None
    assert restored.value.enabled is True
    assert restored.version == 3  # versions keep counting through the deletion
    with pytest.raises(FlagNotFound):
        store.revert("never-existed", actor="alice")
    with pytest.raises(FlagConflict, match="no version 9"):
        store.revert("f", actor="alice", to_version=9)


def test_segments_and_the_flagset(store: DatabaseFlagStore) -> None:
    store.put_segment(Segment(key="beta", by="customer", included=["acme"]), actor="alice")
    flag = parse_flag({"enabled": True, "rules": [{"when": [{"segment": "beta"}],
                                                   "serve": True}], "fallthrough": False},
                      key="f")
    store.put_flag(flag, actor="alice")
    flagset, revision = store.flagset()
    assert revision == store.revision() == 2
    assert set(flagset.flags) == {"f"}
    assert set(flagset.segments) == {"beta"}
    assert store.flagset()[0] is flagset  # cached per revision
    set_killed(store, "f", True, actor="bob", environment="production")
    flagset2, revision2 = store.flagset()
    assert revision2 == 3
    assert flagset2.flags["f"].environments["production"].killed
    assert store.history("beta", kind="segment")[0].action == "created"
    store.delete_segment("beta", actor="alice")
    assert store.get_segment("beta") is None


def test_writes_of_another_store_are_pushed_to_subscribers(app: App) -> None:
    watcher_side = DatabaseFlagStore(app.db(), poll_interval=0.05)
    other_process = DatabaseFlagStore(app.db())  # a second store: as if another process
    seen: list[int] = []
    arrived = threading.Event()

    def heard(revision: int) -> None:
        seen.append(revision)
        arrived.set()
    watcher_side.subscribe(heard)
    try:
        started = time.monotonic()
        change = other_process.put_flag(_flag(), actor="cli")
        assert arrived.wait(5)
        assert seen[-1] == change.revision
        assert time.monotonic() - started < 2
        assert watcher_side.revision() == change.revision
    finally:
        watcher_side.close()


def test_a_cli_write_in_another_process_reaches_the_store(app: App) -> None:
    watcher_side = DatabaseFlagStore(app.db(), poll_interval=5.0 if not app.db().is_sqlite
                                     else 0.05)
    seen: list[int] = []
    watcher_side.subscribe(seen.append)
    try:
        if not app.db().is_sqlite:  # LISTEN/NOTIFY: no need to poll often
            eventually(lambda: watcher_side._watcher and watcher_side._watcher.listening, 5,
                       "LISTEN")
        command = [sys.executable, "-m", "rollwave", "-w", str(app.root), "--database",
                   str(app.database_url), "--as", "ci", "flags", "set", "from-cli", "--create",
                   "--on", "-r", "made elsewhere"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        finished = time.monotonic()
        eventually(lambda: seen, 5, "the change notification")
        assert time.monotonic() - finished < 2.5  # PostgreSQL: NOTIFY, not the 5 s poll
        item = watcher_side.get_flag("from-cli")
        assert item is not None
        assert item.updated_by == "ci"
        assert watcher_side.history("from-cli")[0].reason == "made elsewhere"
    finally:
        watcher_side.close()


def test_concurrent_writers_never_lose_an_update(store: DatabaseFlagStore, app: App) -> None:
    store.put_flag(_flag(metadata={"n": 0}), actor="a")
    errors: list[BaseException] = []

    def bump(worker: int) -> None:
        mine = DatabaseFlagStore(app.db())
        for _ in range(5):
            while True:
                current = mine.get_flag("f")
                assert current is not None
                value = current.value.model_copy(
                    update={"metadata": {"n": current.value.metadata["n"] + 1}})
                try:
                    mine.put_flag(value, actor=f"w{worker}", expected_version=current.version)
                    break
                except FlagConflict:
                    continue
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)
                    return

    threads = [threading.Thread(target=bump, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    final = store.get_flag("f")
    assert final is not None
    assert final.value.metadata["n"] == 20
    assert final.version == 21
    assert len(store.history("f", limit=100)) == 21

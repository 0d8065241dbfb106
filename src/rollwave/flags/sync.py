"""Keeping the workspace's ``flags/*.yaml`` (reviewed in git) and the database consistent.

The database is what servers evaluate; git is where flags are reviewed. ``rollwave flags sync``
imports the workspace definitions and records, per item, the path and the content hash of the
definition it imported (``git_hash``). From then on each item is in one of these states:

==============  ==========================================================  ================
state           meaning                                                     sync does
==============  ==========================================================  ================
``new``         in git, not in the database                                 create it
``in-sync``     database = git = what was last synced                       nothing
``updated``     git changed since the last sync, the database did not       update it
``converged``   both changed, to the same definition                        record the hash
``adopt``       created via API; git now has the same definition            record the hash
``drifted``     changed via API/CLI/rollout since the sync; git unchanged   refuse (--force)
``conflict``    changed in git *and* via API since the sync                 refuse (--force)
``api-differs`` created via API; git has a different definition             refuse (--force)
``removed``     synced from git earlier, file gone since                    delete (--prune)
``rollout``     would change a flag while a guarded rollout drives it       refuse (--force)
==============  ==========================================================  ================

Hashes are of the parsed definition (canonical JSON), so comments and formatting never count.
Items created through the API and absent from git are left alone (``api-only``). Edits of a
git-managed flag through the API or CLI are allowed; they are marked *drifted* (the API answers
with a warning, ``flags list`` shows it, events say so) until the file is updated to match
(then the next sync records ``converged``) or ``sync --force`` puts the git version back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from rollwave.flags.dbstore import DatabaseFlagStore, FlagRecord, Kind
from rollwave.flags.diffing import content_hash, definition_data, unified_diff
from rollwave.flags.files import load_flags_dir
from rollwave.flags.model import Flag, FlagSet, Segment
from rollwave.storage.flag_tables import flag_rollouts

REFUSED = frozenset({"drifted", "conflict", "api-differs", "rollout"})


@dataclass(frozen=True, slots=True)
class SyncItem:
    """One flag or segment compared between git and the database."""

    kind: Kind
    key: str
    state: str
    action: str  # create | update | delete | mark | none | refused | kept
    detail: str
    path: str | None = None
    diff: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"kind": self.kind, "key": self.key, "state": self.state,
                "action": self.action, "detail": self.detail, "path": self.path,
                "diff": self.diff}


@dataclass
class SyncReport:
    """What a sync found and did."""

    items: list[SyncItem] = field(default_factory=list)
    applied: bool = False

    @property
    def refused(self) -> list[SyncItem]:
        """Items left alone because they would overwrite a change made outside git."""
        return [i for i in self.items if i.action == "refused"]

    @property
    def changes(self) -> list[SyncItem]:
        """Items that are (or would be) written."""
        return [i for i in self.items if i.action in ("create", "update", "delete", "mark")]

    @property
    def clean(self) -> bool:
        """Nothing to write and nothing refused: git and the database agree."""
        return not self.changes and not self.refused and \
            not any(i.state == "removed" for i in self.items)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"applied": self.applied, "clean": self.clean,
                "items": [i.to_dict() for i in self.items]}


def workspace_path(kind: Kind, key: str) -> str:
    """Where an item lives in the workspace, relative to its root."""
    return f"flags/{key}.yaml" if kind == "flag" else f"flags/segments/{key}.yaml"


def _active_rollouts(store: DatabaseFlagStore) -> dict[str, str]:
    with store.db.read() as conn:
        rows = conn.execute(sa.select(flag_rollouts.c.flag_key, flag_rollouts.c.id)
                            .where(flag_rollouts.c.active_key.is_not(None))).all()
    return {str(key): str(rollout_id) for key, rollout_id in rows}


def _removed(kind: Kind, key: str, record: FlagRecord | None, *, force: bool,
             prune: bool) -> SyncItem | None:
    path = workspace_path(kind, key)
    if record is None or record.git_hash is None:
        return None  # api-only
    if not prune:
        return SyncItem(kind, key, "removed", "kept", f"{path} was deleted from git; the "
                        "database still has it (delete it with `sync --prune`)", path)
    if record.drifted and not force:
        return SyncItem(kind, key, "removed", "refused", f"{path} was deleted from git but "
                        f"the {kind} was changed since the last sync (by "
                        f"{record.updated_by}); delete it with --prune --force", path)
    return SyncItem(kind, key, "removed", "delete", f"{path} was deleted from git", path)


def _compare(  # noqa: PLR0911 - one return per state of the module docstring's table
        kind: Kind, key: str, wanted: Flag | Segment | None, record: FlagRecord | None, *,
        force: bool, prune: bool, rollout: str | None) -> SyncItem | None:
    if wanted is None:
        return _removed(kind, key, record, force=force, prune=prune)
    path = workspace_path(kind, key)
    data = definition_data(wanted)
    git_hash = content_hash(data)
    if record is None:
        return SyncItem(kind, key, "new", "create", f"new in git ({path})", path)
    diff = unified_diff(data, record.data, before_name=f"git: {path}",
                        after_name=f"database: version {record.version} by "
                                   f"{record.updated_by}")
    if record.content_hash == git_hash:
        if record.git_hash == git_hash:
            return SyncItem(kind, key, "in-sync", "none", "database matches git", path)
        state = "adopt" if record.git_hash is None else "converged"
        return SyncItem(kind, key, state, "mark", "database already matches git; recording "
                        "it as synced", path)
    git_changed = record.git_hash != git_hash
    last = f"last by {record.updated_by} at {record.updated_at:%Y-%m-%d %H:%M}Z"
    if record.git_hash is None:
        state, detail = "api-differs", (f"created via the API by {record.created_by}; {path} "
                                        "defines it differently")
    elif not record.drifted:
        state, detail = "updated", f"changed in git ({path})"
    elif git_changed:
        state, detail = "conflict", f"changed in git and via the API ({last}) since the last sync"
    else:
        state, detail = "drifted", (f"changed via the API/CLI since the last sync ({last}); "
                                    "git still has the synced definition")
    if rollout is not None and not force:
        return SyncItem(kind, key, "rollout", "refused", f"{detail}; guarded rollout {rollout} "
                        "is driving it (finish, abort, or sync with --force)", path, diff)
    if state in REFUSED and not force:
        return SyncItem(kind, key, state, "refused", detail + "; not overwritten (update the "
                        "file to match, or sync with --force to restore git)", path, diff)
    return SyncItem(kind, key, state, "update", detail + (" (forced)" if state in REFUSED
                                                          else ""), path, diff)


def plan_sync(store: DatabaseFlagStore, wanted: FlagSet, *, force: bool = False,
              prune: bool = False) -> list[SyncItem]:
    """Compare the workspace's flag set with the database; nothing is written."""
    rollouts = _active_rollouts(store)
    items: list[SyncItem] = []
    for kind, models in (("segment", wanted.segments), ("flag", wanted.flags)):
        records = {r.key: r for r in store.records(kind)}  # type: ignore[arg-type]
        for key in sorted(set(models) | set(records)):
            item = _compare(kind, key, models.get(key), records.get(key), force=force,  # type: ignore[arg-type]
                            prune=prune, rollout=rollouts.get(key) if kind == "flag" else None)
            if item is not None:
                items.append(item)
    return items


def sync_flags(store: DatabaseFlagStore, root: Path, *, actor: str, reason: str = "",
               force: bool = False, prune: bool = False, dry_run: bool = False) -> SyncReport:
    """Import ``root/flags`` into the database (see the module docstring for the rules).

    Raises ValidationFailed (every problem with file:line) when a flag file is invalid;
    nothing is written then. Items that would overwrite a change made outside git are refused
    unless ``force``; the others are written in one transaction.
    """
    wanted = load_flags_dir(root)
    report = SyncReport(items=plan_sync(store, wanted, force=force, prune=prune))
    if dry_run or not report.changes:
        return report
    note = f" — {reason}" if reason else ""
    with store.transaction() as tx:
        for item in report.changes:
            kind, key = item.kind, item.key
            path = item.path or workspace_path(kind, key)
            value: Flag | Segment | None = (wanted.flags if kind == "flag"
                                            else wanted.segments).get(key)
            if item.action == "delete":
                tx.write(kind, key, None, actor=actor, action="deleted",
                         reason=f"deleted from git ({path}){note}", git=None)
                continue
            assert value is not None
            git_hash = content_hash(definition_data(value))
            if item.action == "mark":
                tx.mark_git(kind, key, path, git_hash, actor=actor)
                continue
            tx.write(kind, key, value, actor=actor, action="synced",
                     reason=f"sync from git ({path}, {git_hash[:12]}){note}",
                     git=(path, git_hash))
    report.applied = True
    return report


def drift(store: DatabaseFlagStore, key: str, root: Path | None = None,
          kind: Kind = "flag") -> SyncItem | None:
    """How one item compares with git now (with the workspace file when ``root`` is given)."""
    record = store.record(key, kind)
    wanted: Flag | Segment | None = None
    if root is not None:
        flagset = load_flags_dir(root)
        wanted = (flagset.flags if kind == "flag" else flagset.segments).get(key)
        rollout = _active_rollouts(store).get(key) if kind == "flag" else None
        return _compare(kind, key, wanted, record, force=False, prune=False, rollout=rollout)
    if record is None or record.git_hash is None:
        return None
    state = "drifted" if record.drifted else "in-sync"
    return SyncItem(kind, key, state, "none", f"managed in git ({record.git_path})",
                    record.git_path)

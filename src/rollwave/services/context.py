"""What every application service needs: the workspace, the database and who is acting."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path

from rollwave.storage.db import Database, default_url
from rollwave.workspace.loader import Workspace, find_workspace, load_workspace


def current_user() -> str:
    """The acting person for CLI commands: ``ROLLWAVE_ACTOR`` or the OS user."""
    env = os.environ.get("ROLLWAVE_ACTOR")
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass
class App:
    """A handle on one workspace and its database, created once per CLI call or server."""

    root: Path
    database_url: str | None = None
    actor: str = field(default_factory=current_user)
    _workspace: Workspace | None = field(default=None, repr=False)
    _db: Database | None = field(default=None, repr=False)

    @classmethod
    def open(cls, workspace: Path | None = None, database: str | None = None,
             actor: str | None = None) -> App:
        """Find the workspace at or above ``workspace`` (or the cwd) and bind a database URL."""
        root = find_workspace(workspace)
        url = database or os.environ.get("ROLLWAVE_DATABASE_URL")
        return cls(root=root, database_url=url, actor=actor or current_user())

    @property
    def state_dir(self) -> Path:
        return self.root / ".rollwave"

    def workspace(self, *, reload: bool = False) -> Workspace:
        """The validated workspace (raises ValidationFailed listing every problem)."""
        if self._workspace is None or reload:
            self._workspace = load_workspace(self.root)
        return self._workspace

    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.database_url or default_url(self.state_dir))
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
            self._db = None

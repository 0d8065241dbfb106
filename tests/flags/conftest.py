"""Database-backed flag fixtures: every test using ``app`` runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rollwave.flags.dbstore import DatabaseFlagStore, store_for
from rollwave.services.context import App
from tests.flags.helpers import FLAG_YAML, make_workspace, postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'rollwave.db'}"
        return
    with postgres_url() as url:
        yield url


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws", flags={"new-checkout": FLAG_YAML})


@pytest.fixture
def app(workspace: Path, database_url: str) -> Iterator[App]:
    ctx = App(root=workspace, database_url=database_url, actor="alice")
    yield ctx
    store_for(ctx).close()
    ctx.close()


@pytest.fixture
def store(app: App) -> DatabaseFlagStore:
    return store_for(app)

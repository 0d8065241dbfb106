"""Releases: immutable records of service versions plus the configs they give each instance."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy.engine import Connection

from rollwave.core.hashing import content_hash
from rollwave.core.planning import KEEP_VERSION
from rollwave.errors import Problem, ReleaseExists, ReleaseNotFound, ValidationFailed
from rollwave.services.context import App
from rollwave.services.release_configs import render_release
from rollwave.storage import fleet_state
from rollwave.storage import releases as repo
from rollwave.storage.events import append_event

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$")


def parse_versions(pairs: list[str]) -> dict[str, str]:
    """``["web=1.1", "api=2.0"]`` → ``{"web": "1.1", "api": "2.0"}`` (problems listed together)."""
    versions: dict[str, str] = {}
    problems = []
    for pair in pairs:
        service, sep, version = pair.partition("=")
        if not sep or not service.strip() or not version.strip():
            problems.append(Problem(message=f"'{pair}' is not SERVICE=VERSION", path="--version",
                                    hint="write e.g. --version web=1.1"))
            continue
        versions[service.strip()] = version.strip()
    if problems:
        raise ValidationFailed(problems, what="release")
    return versions


def create_release(app: App, versions: Mapping[str, str], *, name: str | None = None,
                   notes: str = "", config_only: bool = False) -> repo.ReleaseRecord:
    """Record an immutable release of ``versions`` cut from the current workspace.

    ``config_only`` ships the workspace's current configuration without changing versions
    (every service the fleet runs keeps its version).
    """
    workspace = app.workspace()
    project = workspace.project
    problems: list[Problem] = []
    if config_only:
        versions = dict.fromkeys(project.services, KEEP_VERSION)
    if not versions:
        problems.append(Problem(message="a release needs at least one SERVICE=VERSION",
                                path="--version",
                                hint="e.g. --version web=1.1, or --config-only to ship config"))
    for service, version in versions.items():
        if service not in project.services:
            known = ", ".join(sorted(project.services))
            problems.append(Problem(message=f"unknown service '{service}'", path="--version",
                                    hint=f"known services: {known}"))
        if version != KEEP_VERSION and not _NAME.match(version):
            problems.append(Problem(message=f"'{version}' is not a usable version string",
                                    path="--version",
                                    hint="letters, digits and . _ + - only"))
    if name is not None and not _NAME.match(name):
        problems.append(Problem(message=f"'{name}' is not a usable release name", path="--name",
                                hint="letters, digits and . _ + - only, up to 100"))
    if problems:
        raise ValidationFailed(problems, what="release")
    with app.db().read() as conn:
        current = {key: dict(state.versions)
                   for key, state in fleet_state.current_states(conn).items()}
    rendered = render_release(workspace, versions, current)
    if any(p.severity == "error" for p in rendered.problems):
        raise ValidationFailed(rendered.problems, what="release configuration")
    now = datetime.now(UTC)
    digest = content_hash(sorted((f"{i}/{s}", h) for (i, s), h in rendered.hashes.items()), 64)
    db = app.db()
    with db.begin() as conn:
        release_id = name or _next_name(conn, now)
        if repo.get_release(conn, release_id) is not None:
            raise ReleaseExists(f"release '{release_id}' already exists")
        record = repo.ReleaseRecord(
            id=release_id, created_at=now, created_by=app.actor, notes=notes,
            workspace_hash=workspace.content_hash, versions=dict(versions),
            config_digest=digest)
        repo.insert_release(conn, record)
        repo.store_blobs(conn, rendered.blobs)
        repo.store_release_configs(conn, release_id, rendered.hashes)
        shown = ", ".join(f"{s} {v}" for s, v in sorted(versions.items()))
        append_event(conn, "release.created", f"release {release_id} created: {shown}",
                     actor=app.actor, data={"release": release_id, "versions": dict(versions),
                                            "workspace_hash": workspace.content_hash,
                                            "config_digest": digest,
                                            "configs": len(rendered.hashes)})
    return record


def _next_name(conn: Connection, now: datetime) -> str:
    stem = now.strftime("%Y.%m.%d")
    for n in range(1, 10_000):
        candidate = f"{stem}-{n}"
        if repo.get_release(conn, candidate) is None:
            return candidate
    raise ReleaseExists(f"too many releases named {stem}-N today")  # pragma: no cover


def get_release(app: App, release_id: str) -> repo.ReleaseRecord:
    with app.db().read() as conn:
        record = repo.get_release(conn, release_id)
    if record is None:
        raise ReleaseNotFound(f"no release named '{release_id}'")
    return record


def list_releases(app: App, limit: int = 50) -> list[repo.ReleaseRecord]:
    with app.db().read() as conn:
        return repo.list_releases(conn, limit)

"""The audit log and deployment logs, for people and for the API."""

from __future__ import annotations

from typing import Any

from rollwave.services.context import App
from rollwave.services.rollouts import resolve
from rollwave.storage import rollouts as repo
from rollwave.storage.events import Event, list_events


def events(app: App, *, rollout: str | None = None, search: str | None = None,
           instance: str | None = None, kind_prefix: str | None = None,
           limit: int = 100) -> list[Event]:
    """Events, newest last, filtered by rollout (id or prefix), text, instance and kind."""
    rollout_id = resolve(app, rollout).id if rollout else None
    with app.db().read() as conn:
        rows = list_events(conn, rollout_id=rollout_id, search=search, instance=instance,
                           kind_prefix=kind_prefix, limit=limit, newest_first=True)
    return list(reversed(rows))


def deploy_logs(app: App, rollout: str, instance: str | None = None) -> list[dict[str, Any]]:
    rollout_id = resolve(app, rollout).id
    with app.db().read() as conn:
        return repo.deploy_log_entries(conn, rollout_id, instance)

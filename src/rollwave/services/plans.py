"""Plan previews: the waves of a release plus the grouped per-instance config diff."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rollwave.core.planning import Plan
from rollwave.services import rollouts
from rollwave.services.context import App
from rollwave.services.releases import get_release
from rollwave.storage import releases as release_repo
from rollwave.storage.releases import ReleaseRecord


@dataclass(frozen=True)
class PlanPreview:
    """What `rollwave plan` shows before anything ships."""

    plan: Plan
    release: ReleaseRecord
    config: Any | None  # rollwave.config.DiffSummary when config changes are known

    def to_dict(self) -> dict[str, Any]:
        body = {"release": self.release.to_dict(), "plan": self.plan.to_dict()}
        if self.config is not None:
            body["config_changes"] = self.config.to_dict()
        return body


def preview(app: App, release_id: str, *, policy: str | None = None, emergency: bool = False,
            now: datetime | None = None) -> PlanPreview:
    """The plan of ``release_id`` now, with the config each instance would get, diffed."""
    the_plan = rollouts.plan(app, release_id, policy=policy, emergency=emergency, now=now)
    release = get_release(app, release_id)
    return PlanPreview(plan=the_plan, release=release, config=_config_summary(app, the_plan))


def _config_summary(app: App, the_plan: Plan) -> Any | None:
    try:
        from rollwave.config import diff, group_diffs
    except ImportError:
        return None
    wanted: set[str] = set()
    pairs: list[tuple[tuple[str, str], str | None, str]] = []
    for wave in the_plan.waves:
        for target in wave.targets:
            for change in target.changes:
                if change.to_config is None:
                    continue
                pairs.append(((target.instance, change.service), change.from_config,
                              change.to_config))
                wanted.add(change.to_config)
                if change.from_config:
                    wanted.add(change.from_config)
    if not pairs:
        return None
    with app.db().read() as conn:
        blobs = release_repo.get_blobs(conn, sorted(wanted))
    diffs = {}
    for key, old, new in pairs:
        before = blobs.get(old) if old else None
        diffs[key] = () if old == new else tuple(diff(before, blobs.get(new, {})))
    return group_diffs(diffs)

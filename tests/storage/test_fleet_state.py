"""The fleet-state read model remembers what ran before the last change."""

from __future__ import annotations

from pathlib import Path

from rollwave.storage import fleet_state
from rollwave.storage.db import Database


def test_previous_values_move_only_when_something_changes(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'rw.db'}")

    def deploy(version: str, cfg: str | None) -> fleet_state.ServiceState:
        with db.begin() as conn:
            fleet_state.record_deployed(conn, "acme/prod", "acme", {"web": version},
                                        {"web": cfg}, health="healthy", release_id=None,
                                        rollout_id=None)
        with db.read() as conn:
            return fleet_state.service_states(conn, instance="acme/prod")[0]

    first = deploy("1.0", "c1")
    assert (first.version, first.previous_version) == ("1.0", None)
    second = deploy("1.1", "c2")
    assert (second.version, second.previous_version, second.previous_config_hash) == (
        "1.1", "1.0", "c1")
    again = deploy("1.1", "c2")  # a repeat is not a change
    assert (again.previous_version, again.previous_config_hash) == ("1.0", "c1")
    config_only = deploy("1.1", None)
    assert (config_only.config_hash, config_only.previous_config_hash) == (None, "c2")
    db.dispose()

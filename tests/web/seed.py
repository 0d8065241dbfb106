"""Fast fleet seeding for dashboard tests and the dashboard benchmark.

``seed_large_fleet`` writes N customer files straight from text (no YAML dumper) and inserts
the matching ``instance_state`` rows in bulk, so a 10,000 × 5 fleet takes seconds, not minutes.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rollwave.storage.db import Database, default_url
from rollwave.storage.tables import instance_state, releases

SERVICES = ("web", "api", "worker", "search", "billing")
TIERS = ("enterprise", "standard", "standard", "standard", "trial")
REGIONS = ("eu-west", "eu-central", "us-east", "us-west", "ap-south")

PROJECT = """\
project: bench
environments:
  staging: {production: false}
  production: {production: true}
services:
%s
deployers:
  local: {kind: memory}
verification:
  default: {duration: 1s, interval: 1s, health: null}
policies:
  standard:
    waves:
      - {name: canary, select: {match: early-adopter}, parallelism: 5}
      - {name: rest, select: rest, parallelism: "10%%", failure_budget: "5%%"}
default_policy: standard
"""


def customer_id(index: int) -> str:
    return f"cust{index:05d}"


def write_fleet_files(root: Path, customers: int, services: tuple[str, ...] = SERVICES) -> None:
    """A workspace of ``customers`` customers with one ``prod`` instance each."""
    (root / "customers").mkdir(parents=True, exist_ok=True)
    svc = "\n".join(f"  {s}: {{deployer: local}}" for s in services)
    (root / "rollwave.yaml").write_text(PROJECT % svc, encoding="utf-8")
    for i in range(customers):
        tags = "[early-adopter]" if i % 50 == 0 else "[]"
        text = (f"id: {customer_id(i)}\nname: Customer {i}\ntier: {TIERS[i % len(TIERS)]}\n"
                f"region: {REGIONS[i % len(REGIONS)]}\ntags: {tags}\n"
                "instances:\n  prod: {environment: production}\n")
        (root / "customers" / f"{customer_id(i)}.yaml").write_text(text, encoding="utf-8")


def seed_fleet_state(db: Database, customers: int, services: tuple[str, ...] = SERVICES,
                     *, seed: int = 7) -> None:
    """Release rows and ``instance_state`` rows: most on 1.1, some behind, a few unhealthy."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    with db.begin() as conn:
        for name, version, age in (("bench-1.0", "1.0", 2), ("bench-1.1", "1.1", 1)):
            conn.execute(releases.insert().values(
                id=name, created_at=now - timedelta(days=age), created_by="bench", notes="",
                workspace_hash="0" * 64, versions=dict.fromkeys(services, version),
                config_digest=None))
        rows = []
        for i in range(customers):
            cid = customer_id(i)
            for service in services:
                behind = rng.random() < 0.05
                health = "unhealthy" if rng.random() < 0.01 else (
                    "unverified" if rng.random() < 0.01 else "healthy")
                rows.append({
                    "instance": f"{cid}/prod", "service": service, "customer": cid,
                    "version": "1.0" if behind else "1.1",
                    "config_hash": f"{rng.getrandbits(64):016x}",
                    "previous_version": None if behind else "1.0",
                    "previous_config_hash": None, "health": health,
                    "release_id": "bench-1.0" if behind else "bench-1.1",
                    "rollout_id": None, "updated_at": now})
            if len(rows) >= 5000:
                conn.execute(instance_state.insert(), rows)
                rows = []
        if rows:
            conn.execute(instance_state.insert(), rows)


def seed_large_fleet(root: Path, customers: int = 10_000) -> Path:
    """Workspace files plus database rows for a fleet of ``customers`` × 5 services."""
    write_fleet_files(root, customers)
    db = Database(default_url(root / ".rollwave"))
    try:
        seed_fleet_state(db, customers)
    finally:
        db.dispose()
    return root

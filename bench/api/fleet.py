"""A workspace with one finished rollout of a few hundred instances, and an admin token.

Used by ``bench_status.py``; also importable for profiling (``profile_status.py``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from rollwave.services import access, releases, rollouts
from rollwave.services.context import App
from rollwave.workspace.scaffold import CustomerSeed, customer_document, write_workspace


def build(root: Path, instances: int) -> tuple[str, str]:
    """Fresh workspace at ``root`` whose rollout of ``instances`` instances has finished.

    Returns ``(rollout_id, admin_token)``. The rollout runs through the real orchestrator
    (``rollwave worker --exit-when-idle``) with the in-process ``memory`` deployer, three waves.
    """
    if root.exists():
        shutil.rmtree(root)
    project = {
        "project": "bench-api",
        "environments": {"production": {}},
        "services": {"web": {"deployer": "mem"}, "api": {"deployer": "mem"}},
        "deployers": {"mem": {"kind": "memory"}},
        "verification": {"default": {"health": None}},
        "policies": {"standard": {"drift": "repair", "waves": [
            {"name": "internal", "select": {"match": "internal"}, "bake": "0s"},
            {"name": "canary", "select": {"percent": 10}, "parallelism": 10, "bake": "0s"},
            {"name": "rest", "select": "rest", "parallelism": 50},
        ]}},
    }
    seeds = [CustomerSeed("internal", "Internal", tags=["internal"])]
    seeds += [CustomerSeed(f"c{i:04d}", f"Customer {i}", config={"web": {"greeting": f"hi {i}"}})
              for i in range(instances - 1)]
    write_workspace(root, project, [customer_document(s) for s in seeds])
    app = App.open(root, actor="bench")
    release = releases.create_release(app, {"web": "2.0", "api": "1.4"})
    rollout = rollouts.start(app, release.id)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "rollwave", "-w", str(root), "worker",
                    "--exit-when-idle", "--quiet"], check=True)
    view = rollouts.status(app, rollout.id)
    if not view.rollout.state.terminal:
        raise SystemExit(f"rollout did not finish: {view.counts}")
    print(f"rollout {rollout.id}: {view.counts} in {time.monotonic() - started:.1f}s")
    access.create_user(app, "bench", ["admin"], password=None)
    token = access.create_token(app, "bench", "bench").secret
    app.close()
    return rollout.id, token

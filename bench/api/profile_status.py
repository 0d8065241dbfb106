"""cProfile of GET /api/v1/rollouts/{id} in-process (TestClient), to see where time goes.

    .venv/bin/python bench/api/profile_status.py [--instances 300] [--requests 200]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fleet import build  # noqa: E402

from rollwave.api.app import create_app  # noqa: E402
from rollwave.services.context import App  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    root = HERE.parents[1] / "bench" / "out" / "api" / "profile-ws"
    rollout_id, token = build(root, args.instances)
    from fastapi.testclient import TestClient

    ctx = App.open(root, actor="bench")
    ctx.db()
    client = TestClient(create_app(ctx))
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/rollouts/{rollout_id}"
    response = client.get(url, headers=headers)
    print(f"{len(response.content):,} bytes per response")
    for _ in range(20):
        client.get(url, headers=headers)
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    for _ in range(args.requests):
        client.get(url, headers=headers)
    profile.disable()
    elapsed = time.perf_counter() - started
    print(f"{args.requests} requests in {elapsed:.2f}s: {elapsed / args.requests * 1000:.2f} ms "
          "each (in-process, profiler on)")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(35)


if __name__ == "__main__":
    main()

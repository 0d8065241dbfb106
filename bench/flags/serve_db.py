"""Serve ``rollwave serve``'s app (``create_app``: flags over the database store, Rollwave auth)
on a loopback port, for bench_db.py.

    .venv/bin/python bench/flags/serve_db.py --workspace DIR --database URL --port 8765
    .venv/bin/python bench/flags/serve_db.py --memory --port 8765   # in-memory store, no auth
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workspace")
    parser.add_argument("--database")
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()
    if args.memory:
        import peers

        from rollwave.flags.http import flags_app
        from rollwave.flags.model import Flag, FlagSet
        from rollwave.flags.store import InMemoryFlagStore

        flag = Flag.model_validate({**peers.rollwave_flag(), "enabled": False,
                                    "environments": {"prod": {"enabled": True}}})
        app = flags_app(InMemoryFlagStore(FlagSet(flags={flag.key: flag})),
                        default_environment="prod")
    else:
        from rollwave.api.app import create_app
        from rollwave.services.context import App

        app = create_app(App(root=Path(args.workspace), database_url=args.database,
                             actor="server"))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

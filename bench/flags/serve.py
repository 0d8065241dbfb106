"""Serve the flag API with the benchmark flag on a loopback port (for the load benchmarks).

    bench/.venv-flags/bin/python bench/flags/serve.py --port 8765
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers

from rollwave.flags.http import flags_app
from rollwave.flags.model import Flag, FlagSet
from rollwave.flags.store import InMemoryFlagStore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    flag = Flag.model_validate({**peers.rollwave_flag(), "enabled": False,
                                "environments": {"prod": {"enabled": True}}})
    store = InMemoryFlagStore(FlagSet(flags={flag.key: flag}))
    app = flags_app(store, default_environment="prod")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

"""Command line of the demo service (the ``local`` deployer depends on it exactly)::

    python -m rollwave.demo_service --port PORT --version VERSION --config CONFIG_FILE \\
        --instance CUSTOMER/INSTANCE [--host 127.0.0.1]

Exit codes: 0 after SIGTERM/SIGINT, 1 when the address cannot be bound, 2 for bad arguments or
an unreadable/invalid config file, 3 when a ``crash_on_start`` fault is active.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Final

from prometheus_client import disable_created_metrics

from rollwave.core.hashing import config_hash
from rollwave.demo_service.app import DemoApp, Identity, make_rng
from rollwave.demo_service.faults import active_faults, combine
from rollwave.demo_service.incident import IncidentWatch
from rollwave.demo_service.metrics import ServiceMetrics
from rollwave.demo_service.server import DemoHTTPServer
from rollwave.demo_service.settings import load_config, parse_traffic
from rollwave.demo_service.traffic import TrafficGenerator
from rollwave.errors import ConfigError

PROG: Final = "rollwave-demo"
EXIT_OK: Final = 0
EXIT_BIND: Final = 1
EXIT_CONFIG: Final = 2
EXIT_CRASH: Final = 3
_INSTANCE: Final = re.compile(r"[^/\s]+/[^/\s]+")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (usage errors exit 2, as argparse does)."""
    parser = argparse.ArgumentParser(
        prog="python -m rollwave.demo_service",
        description="Rollwave's demo service: one customer instance with configurable faults.",
    )
    parser.add_argument("--port", type=_port, required=True, help="TCP port to listen on")
    parser.add_argument("--version", required=True, type=_non_empty,
                        help="the release version this instance runs")
    parser.add_argument("--config", required=True, type=Path,
                        help="the instance's rendered config as JSON (missing file = {})")
    parser.add_argument("--instance", required=True, type=_instance,
                        help="CUSTOMER/INSTANCE this process serves")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the service until SIGTERM/SIGINT; return the process exit code."""
    args = build_parser().parse_args(argv)
    stop = threading.Event()
    _install_signal_handlers(stop)
    instance: str = args.instance
    version: str = args.version
    try:
        config = load_config(args.config)
        faults = active_faults(config, version)
        traffic = parse_traffic(config)
    except ConfigError as exc:
        hint = f" (hint: {exc.hint})" if exc.hint else ""
        _say(f"error: {exc.code}: {exc.message}{hint}")
        return EXIT_CONFIG
    effect = combine(faults)
    for fault in faults:
        _say(f"{instance}: fault active: {fault.describe()}")
    if effect.crash_on_start:
        culprits = ", ".join(f.label for f in faults if f.crash_on_start)
        _say(f"{instance}: crashing on start: version {version} with this config triggers "
             f"crash_on_start ({culprits}); exiting with code {EXIT_CRASH}")
        return EXIT_CRASH

    # process-wide; halves the series a dozen instances expose
    disable_created_metrics()  # type: ignore[no-untyped-call]
    digest = config_hash(config)
    identity = Identity(version=version, config_hash=digest, instance=instance, pid=os.getpid(),
                        started_at=datetime.now(UTC))
    metrics = ServiceMetrics(version=version, config_hash=digest, instance=instance,
                             memory_growth_mb_per_min=effect.memory_growth_mb_per_min)
    incident_file = config.get("incident_file")
    incident = IncidentWatch(Path(incident_file)) if isinstance(incident_file, str) else None
    app = DemoApp(identity, effect, traffic, metrics, incident=incident)
    seeds = make_rng(traffic.seed)
    try:
        server = DemoHTTPServer((args.host, args.port), app, seed=seeds.getrandbits(64))
    except OSError as exc:
        _say(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
        return EXIT_BIND
    generator = TrafficGenerator(app, traffic.rps, make_rng(seeds.getrandbits(64)))
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                               name="demo-http", daemon=True)
    serving.start()
    generator.start()
    host, port = server.server_address[:2]
    _say(f"{instance}: version {version} config {digest} listening on "
         f"http://{host!s}:{port} (pid {identity.pid}, background traffic {traffic.rps:g} rps)")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        generator.stop()
        server.shutdown()
        server.server_close()
    _say(f"{instance}: stopped")
    return EXIT_OK


def _install_signal_handlers(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _say(line: str) -> None:
    print(f"{PROG}: {' '.join(line.split())}", file=sys.stderr, flush=True)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 0-65535: {port}")
    return port


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _instance(text: str) -> str:
    if not _INSTANCE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected CUSTOMER/INSTANCE, got {text!r}")
    return text

"""Reading the instance's config file and the ``traffic`` settings of the demo service."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from rollwave.demo_service.values import json_kind, read_number
from rollwave.errors import ConfigError

TRAFFIC_KEYS: Final = frozenset({"rps", "baseline_error_rate", "baseline_latency_ms", "seed"})
MAX_RPS: Final = 1000.0
_HINT: Final = "fix the 'traffic' section of the instance config (see docs/demo-service.md)"


@dataclass(frozen=True)
class TrafficSettings:
    """How much background traffic the service makes and how healthy the baseline is.

    ``rps`` 0 disables background traffic; ``seed`` makes the random draws reproducible.
    """

    rps: float = 20.0
    baseline_error_rate: float = 0.002
    baseline_latency_ms: float = 5.0
    seed: int | None = None


def load_config(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; a missing file is the empty config ``{}``.

    Raises ``ConfigError`` when the file cannot be read, is not strict JSON (``NaN`` is
    refused) or is not a JSON object.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"cannot read config file {path}: {reason}",
            hint="check that the file exists and is readable UTF-8 JSON",
        ) from exc
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise ConfigError(
            f"config file {path} is not valid JSON: {exc}",
            hint="the deployer writes the instance's rendered config as one JSON object",
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a JSON object, got {type(data).__name__}",
            hint="wrap the settings in {...}",
        )
    return data


def parse_traffic(config: Mapping[str, Any]) -> TrafficSettings:
    """The ``traffic`` section of ``config`` with defaults for what it leaves out."""
    raw = config.get("traffic")
    if raw is None:
        return TrafficSettings()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'traffic' must be an object, got {json_kind(raw)}", hint=_HINT)
    unknown = sorted(set(raw) - TRAFFIC_KEYS)
    if unknown:
        raise ConfigError(
            f"traffic has unknown key {unknown[0]!r}",
            hint=f"known keys: {', '.join(sorted(TRAFFIC_KEYS))}",
        )
    defaults = TrafficSettings()
    seed = raw.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"traffic.seed must be an integer, got {seed!r}", hint=_HINT)
    return TrafficSettings(
        rps=read_number(raw, "rps", "traffic", default=defaults.rps, maximum=MAX_RPS, hint=_HINT),
        baseline_error_rate=read_number(
            raw, "baseline_error_rate", "traffic",
            default=defaults.baseline_error_rate, maximum=1.0, hint=_HINT,
        ),
        baseline_latency_ms=read_number(
            raw, "baseline_latency_ms", "traffic", default=defaults.baseline_latency_ms, hint=_HINT
        ),
        seed=seed,
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")

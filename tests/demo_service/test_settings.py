"""Reading the config file and the traffic settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rollwave.demo_service.settings import TrafficSettings, load_config, parse_traffic
from rollwave.errors import ConfigError


def test_missing_file_is_empty_config(tmp_path: Path) -> None:
    assert load_config(tmp_path / "absent.json") == {}


def test_reads_a_json_object(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"reports": {"legacy_export": true}}', encoding="utf-8")
    assert load_config(path) == {"reports": {"legacy_export": True}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        ('{"x": NaN}', "NaN is not allowed"),
        ("[]", "must hold a JSON object, got list"),
        ("3", "must hold a JSON object, got int"),
    ],
)
def test_invalid_json_is_a_config_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path)
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(binary)


def test_traffic_defaults_and_overrides() -> None:
    assert parse_traffic({}) == TrafficSettings(rps=20, baseline_error_rate=0.002)
    assert parse_traffic({"traffic": None}) == TrafficSettings()
    settings = parse_traffic({"traffic": {"rps": 0, "baseline_error_rate": 0,
                                          "baseline_latency_ms": 8, "seed": 42}})
    assert settings == TrafficSettings(rps=0, baseline_error_rate=0, baseline_latency_ms=8,
                                       seed=42)
    assert parse_traffic({"traffic": {"rps": 2.5}}).rps == 2.5


@pytest.mark.parametrize(
    ("traffic", "message"),
    [
        ([], "'traffic' must be an object"),
        ({"rps": -1}, "traffic.rps"),
        ({"rps": 100_000}, "traffic.rps must be a number between 0 and 1000"),
        ({"baseline_error_rate": 1.2}, "traffic.baseline_error_rate"),
        ({"baseline_latency_ms": "fast"}, "traffic.baseline_latency_ms"),
        ({"seed": 1.5}, "traffic.seed must be an integer"),
        ({"seed": True}, "traffic.seed"),
        ({"qps": 3}, "unknown key 'qps'"),
    ],
)
def test_invalid_traffic_settings(traffic: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_traffic({"traffic": traffic})
    assert message in caught.value.message

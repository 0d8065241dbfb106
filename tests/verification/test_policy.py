"""Workspace YAML → engine policy and sources: the documented example, located problems."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollwave.adapters.metrics.cloudwatch import CloudWatchSource
from rollwave.adapters.metrics.datadog import DatadogSource
from rollwave.adapters.metrics.prometheus import PrometheusSource
from rollwave.adapters.metrics.windowed import WindowedSource
from rollwave.adapters.secrets import SecretEnvironment, build_resolvers
from rollwave.analysis import (
    SRE_WINDOWS,
    BurnRateCheck,
    BurnWindow,
    Condition,
    GaugeCheck,
    Outcome,
    PolicyError,
    RatioCheck,
    ThresholdCheck,
)
from rollwave.analysis.kayenta import Direction
from rollwave.core.model import FleetAnalysis, Verification
from rollwave.errors import ConfigError, ValidationFailed
from rollwave.verification.policy import (
    build_metric_sources,
    build_series_sources,
    fleet_metrics,
    fleet_policy,
)
from rollwave.workspace.loader import load_workspace, validate_workspace
from rollwave.workspace.scaffold import init_workspace

DOCS = Path(__file__).resolve().parents[2] / "docs" / "verification.md"


def documented_example() -> dict[str, Any]:
    """The complete example of docs/verification.md's "Policy YAML" section."""
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("## Policy YAML"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    data = yaml.safe_load(block.group(1))
    assert isinstance(data, dict)
    return data


def workspace(tmp_path: Path, **changes: Any) -> Path:
    """The starter workspace with top-level keys of rollwave.yaml replaced or merged."""
    root = tmp_path / "fleet"
    init_workspace(root)
    path = root / "rollwave.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if key == "verification":
            data["verification"]["default"].update(value["default"])
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return root


def fleet_with(**fleet: Any) -> dict[str, Any]:
    return {"verification": {"default": {"fleet": fleet}}}


def test_the_documented_example_loads_and_converts(tmp_path: Path) -> None:
    example = documented_example()
    root = workspace(tmp_path, **example)
    loaded = load_workspace(root)
    assert not [p for p in loaded.warnings if p.file == "rollwave.yaml"]
    profile = loaded.project.verification["default"]
    assert profile.fleet is not None
    assert profile.fleet.source == "prom"
    assert profile.fleet.cohort == "tier"
    assert profile.fleet.step == 15.0
    policy = fleet_policy(profile)
    assert (policy.interval, policy.bake, policy.baseline, policy.warmup,
            policy.incident_window) == (60.0, 300.0, 600.0, 0.0, 120.0)
    ratio, p95, memory, cpu, slo, hard = policy.checks
    assert ratio == RatioCheck("error-ratio", "errors", "requests", allowed_increase=0.5,
                               min_change=0.002)
    assert p95 == GaugeCheck("p95-latency", "latency_p95", allowed_increase=0.25, load="requests")
    assert memory == GaugeCheck("memory", "memory", allowed_increase=0.25, trend_horizon=3600.0)
    assert cpu == GaugeCheck("cpu", "cpu", allowed_increase=0.5)
    assert isinstance(slo, BurnRateCheck)
    assert slo.objective == pytest.approx(0.999)
    assert slo.windows == SRE_WINDOWS
    assert hard == ThresholdCheck("hard-limit", metric="latency_p95",
                                  success=Condition("<", 2000.0), failure_limit=1)
    assert policy.blame.patience == 900.0
    assert policy.blame.incident_fraction == pytest.approx(0.3)
    assert fleet_metrics(profile) == ("errors", "requests", "latency_p95", "memory", "cpu")
    secrets = build_resolvers({}, SecretEnvironment(environ={"DD_API_KEY": "a",
                                                             "DD_APP_KEY": "b"}))
    series = build_series_sources(loaded.project, secrets)
    assert isinstance(series["prom"], PrometheusSource)
    assert isinstance(series["dd"], DatadogSource)
    assert isinstance(series["cw"], CloudWatchSource)
    assert series["prom"].problems(list(fleet_metrics(profile))) == []
    window = build_metric_sources(loaded.project, secrets)
    assert sorted(window) == ["cw", "dd", "prom", "scrape"]
    assert isinstance(window["prom"], WindowedSource)


def test_defaults_without_a_fleet_section() -> None:
    policy = fleet_policy(Verification())
    assert [type(c) for c in policy.checks] == [RatioCheck, GaugeCheck]
    assert (policy.interval, policy.bake, policy.baseline) == (300.0, 1800.0, 3600.0)
    assert fleet_policy(None, bake=120).bake == 120.0
    assert fleet_metrics(None) == ("errors", "requests", "latency_p95")


def test_every_parameter_reaches_the_engine() -> None:
    fleet = FleetAnalysis.model_validate({"checks": [
        {"kind": "ratio", "name": "r", "numerator": "bad", "denominator": "all",
         "direction": "either", "allowed_increase": "10%", "allowed_decrease": 0.2,
         "min_change": "0.5%", "confidence": "95%", "min_denominator": 10,
         "consecutive_error_limit": 2},
        {"kind": "gauge", "name": "g", "metric": "throughput", "direction": "decrease",
         "allowed_decrease": "30%", "peer_margin": 2, "min_samples": 4, "min_baseline": 12},
        {"kind": "burn_rate", "name": "b", "objective": "99.5%", "min_events": 5,
         "windows": [{"long": "30m", "short": "5m", "factor": 10}]},
        {"kind": "threshold", "name": "t", "numerator": "errors", "denominator": "requests",
         "failure": "result[0] >= 0.1", "inconclusive_limit": 2, "count": 5,
         "no_data": "inconclusive"}],
        "blame": {"min_customers": 3, "incident_fraction": "50%"}})
    r, g, b, t = fleet_policy(fleet).checks
    assert r == RatioCheck("r", "bad", "all", Direction.EITHER, 0.1, 0.2, 0.005, 0.95, 10.0, 2)
    assert g == GaugeCheck("g", "throughput", Direction.DECREASE, 0.25, 0.3, 0.99, 2.0, 4, 12)
    assert b == BurnRateCheck("b", "errors", "requests", 0.995, (BurnWindow(1800, 300, 10),),
                              5.0)
    assert t == ThresholdCheck("t", None, "errors", "requests", None, Condition(">=", 0.1),
                               0, 2, 4, 5, Outcome.INCONCLUSIVE)
    assert fleet_policy(fleet).blame.min_customers == 3


def test_impossible_numbers_name_the_check() -> None:
    fleet = FleetAnalysis.model_validate({"checks": [
        {"kind": "gauge", "name": "g", "metric": "memory", "confidence": 1.5}]})
    with pytest.raises(PolicyError, match=r"check 'g': confidence must be between 0.5 and 1"):
        fleet_policy(fleet)


def problems_of(root: Path) -> list[tuple[str, str, str]]:
    return [(p.location(), p.severity, p.message) for p in validate_workspace(root)
            if p.file == "rollwave.yaml"]


def find(found: list[tuple[str, str, str]], text: str) -> tuple[str, str, str]:
    hits = [f for f in found if text in f[2]]
    assert hits, f"no problem mentions {text!r}: {found}"
    return hits[0]


def line_of(root: Path, needle: str, after: str = "") -> int:
    lines = (root / "rollwave.yaml").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(i for i, line in enumerate(lines) if i >= start and needle in line) + 1


def test_problems_are_located_in_rollwave_yaml(tmp_path: Path) -> None:
    root = workspace(
        tmp_path,
        metric_sources={
            "prom": {"kind": "prometheus", "url": "http://127.0.0.1:9090",
                     "queries": {"cpu": "rate(cpu[{{ range }])"}},
            "dd": {"kind": "datadog", "api_key": "plain-text-key",
                   "app_key": {"$secret": "env:DD_APP_KEY"}},
            "gr": {"kind": "graphite"},
            "nokind": {"url": "http://x"},
            "cw": {"kind": "cloudwatch", "region": "eu-west-1"}},
        verification={"default": {
            "metrics": [{"name": "errors", "metric": "error_ratio", "fail_above": 0.05},
                        {"name": "lat", "metric": "p95_latency_ms", "source": "nowhere",
                         "fail_above": 500},
                        {"name": "wat", "metric": "wattage", "source": "cw",
                         "fail_above": 5}],
            "fleet": {
                "source": "cw", "step": "45s", "interval": "1m",
                "checks": [
                    {"kind": "ratio", "name": "errors"},
                    {"kind": "gauge", "name": "errors", "metric": "disk", "load": "visits"},
                    {"kind": "threshold", "name": "t", "metric": "memory",
                     "success": "about 3"},
                    {"kind": "burn_rate", "name": "slo", "objective": "100%"}]}}})
    found = problems_of(root)
    location, _, _ = find(found, "queries.cpu: template syntax error on line 1: unexpected '}'")
    assert location.startswith(f"rollwave.yaml:{line_of(root, 'queries:')}:")
    location, _, message = find(found, "write a secret reference")
    assert location.startswith(f"rollwave.yaml:{line_of(root, 'api_key: plain-text-key')}:")
    assert "plain-text-key" not in message
    location, _, _ = find(found, "unknown metric source kind 'graphite'")
    assert location.startswith(f"rollwave.yaml:{line_of(root, 'kind: graphite')}:")
    find(found, "metric source 'nokind' needs a kind")
    location, _, _ = find(found, "metric check 'lat' reads unknown source 'nowhere'")
    assert location.startswith(f"rollwave.yaml:{line_of(root, 'source: nowhere')}:")
    location, _, _ = find(found, "metric check 'wat': unknown measure 'wattage'")
    assert location.startswith(f"rollwave.yaml:{line_of(root, 'metric: wattage')}:")
    assert find(found, "CloudWatch cannot serve a step of 45s")[0].startswith(
        f"rollwave.yaml:{line_of(root, 'step: 45s')}:")
    assert find(found, "duplicate check name 'errors' (also checks[0])")[0].startswith(
        f"rollwave.yaml:{line_of(root, 'name: errors', after='kind: gauge')}:")
    assert find(found, "check 'errors' reads 'disk', which source 'cw' has no query for")[
        0].startswith(f"rollwave.yaml:{line_of(root, 'metric: disk')}:")
    find(found, "check 'errors' reads 'visits'")
    assert find(found, "cannot read condition 'about 3'")[0].startswith(
        f"rollwave.yaml:{line_of(root, 'success: about 3')}:")
    find(found, "objective must be a fraction such as 0.999")
    with pytest.raises(ValidationFailed):
        load_workspace(root)


def test_model_errors_still_report_source_options(tmp_path: Path) -> None:
    root = workspace(
        tmp_path, metric_sources={"prom": {"kind": "prometheus", "url": "ftp://x"}},
        **fleet_with(bake="zz", checks=[{"kind": "magic", "name": "m"},
                                        {"kind": "ratio", "name": "r", "confidence": "lots"}]))
    found = problems_of(root)
    assert find(found, "'zz' is not a duration")[0].startswith(
        f"rollwave.yaml:{line_of(root, 'bake: zz')}:")
    assert find(found, "'magic' found using 'kind' does not match any of the expected tags")[
        0].startswith(f"rollwave.yaml:{line_of(root, 'kind: magic')}:")
    find(found, "'confidence' should be a valid number")
    assert find(found, "'ftp://x' is not an http(s) URL")[0].startswith(
        f"rollwave.yaml:{line_of(root, 'url: ftp://x')}:")


def test_warnings_and_a_clean_scrape_fleet(tmp_path: Path) -> None:
    root = workspace(tmp_path, **fleet_with(step="1m", interval="5m", bake="1m",
                                            baseline="5m"))
    found = problems_of(root)
    assert {(s, m.split(":")[0]) for _, s, m in found} >= {
        ("warning", "a baseline of 5m holds 5 points of 1m, fewer than the 10 check "
                    "'p95-latency' needs"),
        ("warning", "bake (1m) is shorter than the interval (5m)")}
    assert all(s == "warning" for _, s, _ in found)
    load_workspace(root)  # warnings do not block
    clean = workspace(tmp_path / "clean", **fleet_with(
        interval="1m", checks=[{"kind": "gauge", "name": "mem", "metric": "memory"}]))
    assert problems_of(clean) == []
    nope = workspace(tmp_path / "nope", **fleet_with(
        checks=[{"kind": "gauge", "name": "cpu", "metric": "cpu"}], step="10m",
        interval="5m"))
    messages = [m for _, _, m in problems_of(nope)]
    assert "check 'cpu' reads 'cpu', which source 'scrape' has no query for" in messages
    assert "step (10m) is longer than the interval (5m)" in messages
    unknown = workspace(tmp_path / "unknown", **fleet_with(source="prom"))
    assert [m for _, _, m in problems_of(unknown)] == [
        "fleet analysis reads unknown source 'prom'"]


def test_builders_report_bad_options_and_missing_series_forms() -> None:
    from rollwave.core.model import Project

    base = {"project": "p", "environments": {"prod": {}}, "services": {"web": {}},
            "policies": {"standard": {"waves": [{"name": "all", "select": "rest"}]}}}
    bad = Project.model_validate({**base, "metric_sources": {"prom": {"kind": "prometheus"}}})
    with pytest.raises(ConfigError, match=r"metric source 'prom' \(kind prometheus\) has bad "
                                          r"options: url: Field required"):
        build_series_sources(bad)
    tuned = Project.model_validate({**base, "metric_sources": {"scrape": {"timeout": "3s"},
                                                               "own": {"kind": "scrape"}}})
    from rollwave.adapters.metrics import series_registry

    expected = {"own", "scrape"} if "scrape" in series_registry.kinds() else set()
    assert set(build_series_sources(tuned)) == expected  # scrape: when the collector registers
    assert sorted(build_metric_sources(tuned)) == ["own", "scrape"]


def test_docstring_examples() -> None:
    import doctest

    from rollwave.verification import policy

    result = doctest.testmod(policy)
    assert result.attempted > 0
    assert result.failed == 0

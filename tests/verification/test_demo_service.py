"""Verifying the real demo service, without and with injected faults (loopback processes)."""

from __future__ import annotations

from typing import Any

import pytest

from rollwave.adapters.metrics import build_sources
from rollwave.analysis.results import Outcome, Verdict
from rollwave.core.model import Verification
from rollwave.verification import VerificationTarget, verify_instance
from tests.demo_service.conftest import StartService, start_service  # noqa: F401

pytestmark = pytest.mark.e2e

LEGACY_FAULT = {"name": "1.1 mishandles legacy export",
                "when": {"version": "1.1*", "config": {"reports.legacy_export": True}},
                "error_rate": 0.35, "latency_ms": 250, "latency_jitter_ms": 50}
PROFILE = Verification.model_validate({
    "duration": 1.5, "interval": 0.25, "min_requests": 20, "consecutive_error_limit": 2,
    "health": {"timeout": 0.5},
    "smoke": [{"name": "version", "path": "/version", "expect_body": '"version"'}],
    "metrics": [{"name": "errors", "metric": "error_ratio", "fail_above": 0.05},
                {"name": "p95", "metric": "p95_latency_ms", "fail_above": 200},
                {"name": "rate", "metric": "request_rate", "fail_below": 10}],
})


def config(**extra: Any) -> dict[str, Any]:
    return {"reports": {"legacy_export": True}, "faults": [LEGACY_FAULT],
            "traffic": {"rps": 200, "baseline_error_rate": 0.0, "seed": 3}, **extra}


def verify(url: str) -> Verdict:
    return verify_instance(VerificationTarget("acme/prod", {"demo": url}), PROFILE,
                           sources=build_sources())


def test_demo_service_without_fault_is_successful(start_service: StartService) -> None:  # noqa: F811
    service = start_service("1.0", config())
    verdict = verify(service.url)
    assert verdict.outcome is Outcome.SUCCESSFUL, verdict.summary
    checks = {c.name: c for c in verdict.checks}
    errors = checks["demo/errors"]
    assert errors.explanation.startswith("error ratio 0% (0 of ")
    assert errors.data["requests"] >= 150  # ~200 rps of /api/work; /health and /metrics excluded
    assert "series" in errors.data


def test_demo_service_with_the_legacy_export_fault_fails_early(
        start_service: StartService) -> None:  # noqa: F811
    service = start_service("1.1", config())
    verdict = verify(service.url)
    assert verdict.outcome is Outcome.FAILED
    failed = [c for c in verdict.checks if c.outcome is Outcome.FAILED]
    assert failed
    assert all(c.data["decided_early"] for c in failed)
    assert any(c.name in ("demo/errors", "demo/p95") for c in failed)
    assert "is above the" in verdict.summary


def test_unhealthy_demo_service_fails_its_health_check(start_service: StartService) -> None:  # noqa: F811
    service = start_service("1.0", config(faults=[{"unhealthy": True}]))
    verdict = verify(service.url)
    assert verdict.outcome is Outcome.FAILED
    assert verdict.summary.startswith("demo/health: GET /health answered HTTP 503, expected 200")

"""verify_instance against a scripted loopback HTTP server (real sockets and clock)."""

from __future__ import annotations

import threading
import time
from typing import Any

from rollwave.adapters.metrics import build_sources
from rollwave.analysis.results import CheckResult, Outcome, Verdict
from rollwave.core.model import Verification
from rollwave.verification import VerificationTarget, verify_instance
from tests.services import free_port
from tests.verification.support import Script, scripted_instance

SMOKE = {"name": "hello", "path": "/api/hello", "expect_body": "hello", "timeout": 1}


def profile(**settings: Any) -> Verification:
    values: dict[str, Any] = {
        "duration": 1.0, "interval": 0.25, "min_requests": 20, "consecutive_error_limit": 2,
        "health": {"path": "/health", "timeout": 0.3},
        "smoke": [SMOKE],
        "metrics": [{"name": "errors", "metric": "error_ratio", "fail_above": 0.05},
                    {"name": "p95", "metric": "p95_latency_ms", "fail_above": 250}],
    }
    values.update(settings)
    return Verification.model_validate(values)


def verify(url: str, prof: Verification | None = None, **kwargs: Any) -> tuple[Verdict, float]:
    started = time.monotonic()
    verdict = verify_instance(VerificationTarget("acme/prod", {"web": url}), prof or profile(),
                              sources=build_sources(), **kwargs)
    return verdict, time.monotonic() - started


def by_name(verdict: Verdict) -> dict[str, CheckResult]:
    return {c.name: c for c in verdict.checks}


def test_healthy_instance_is_successful() -> None:
    script = Script(per_scrape=50)
    with scripted_instance(script) as url:
        verdict, took = verify(url)
    assert verdict.outcome is Outcome.SUCCESSFUL, verdict.summary
    checks = by_name(verdict)
    assert list(checks) == ["web/health", "web/smoke/hello", "web/errors", "web/p95"]
    assert checks["web/health"].explanation.startswith("GET /health answered HTTP 200 in ")
    assert checks["web/smoke/hello"].explanation.startswith(
        "GET /api/hello answered HTTP 200 containing 'hello' in ")
    assert checks["web/errors"].explanation.startswith(
        "error ratio 0% (0 of 200 requests) over 1")
    assert script.scrapes == 5
    assert 1.0 <= took < 3.0


def test_error_spike_fails_early() -> None:
    script = Script(per_scrape=50, errors_per_scrape=20)
    with scripted_instance(script) as url:
        verdict, took = verify(url, profile(duration=2.0))
    assert verdict.outcome is Outcome.FAILED
    errors = by_name(verdict)["web/errors"]
    assert errors.data["decided_early"] is True
    assert errors.explanation.startswith("error ratio 40% (20 of 50 requests) over the first ")
    assert script.scrapes == 2
    assert took < 1.5


def test_metrics_endpoint_down_is_error_after_the_consecutive_limit() -> None:
    script = Script(metrics_status=500)
    with scripted_instance(script) as url:
        verdict, _ = verify(url)
    assert verdict.outcome is Outcome.ERROR
    assert script.scrapes == 3
    errors = by_name(verdict)["web/errors"]
    assert errors.outcome is Outcome.ERROR
    assert "3 times in a row" in errors.explanation
    assert "answered HTTP 500: 'metrics are broken'" in errors.explanation
    assert by_name(verdict)["web/health"].outcome is Outcome.SUCCESSFUL


def test_garbage_metrics_are_error() -> None:
    script = Script(metrics_body="<html>this is not prometheus</html>")
    with scripted_instance(script) as url:
        verdict, _ = verify(url)
    assert verdict.outcome is Outcome.ERROR
    assert "not a Prometheus text exposition" in verdict.summary


def test_too_little_traffic_is_inconclusive() -> None:
    script = Script(per_scrape=2)
    with scripted_instance(script) as url:
        verdict, _ = verify(url)
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert by_name(verdict)["web/errors"].explanation.startswith(
        "only 8 requests over 1")
    assert not verdict.outcome.passed


def test_health_503_fails_with_status_and_body_and_skips_the_rest() -> None:
    script = Script(health=[(503, '{"status": "unhealthy", "version": "1.1"}')])
    with scripted_instance(script) as url:
        verdict, took = verify(url)
    assert verdict.outcome is Outcome.FAILED
    health = by_name(verdict)["web/health"]
    assert health.explanation.startswith("GET /health answered HTTP 503, expected 200, after ")
    assert health.explanation.endswith(
        """body '{"status": "unhealthy", "version": "1.1"}'""")
    assert health.data["status"] == 503
    assert script.health_calls >= 2  # retried while the instance might be warming up
    assert script.scrapes == 0
    assert by_name(verdict)["web/smoke/hello"].outcome is Outcome.INCONCLUSIVE
    assert by_name(verdict)["web/errors"].explanation == "not measured because web/health failed"
    assert took < 1.5
    assert verdict.summary.startswith("web/health: GET /health answered HTTP 503")


def test_instance_down_fails() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    verdict, took = verify(url)
    assert verdict.outcome is Outcome.FAILED
    health = by_name(verdict)["web/health"]
    assert "no answer from GET /health after" in health.explanation
    assert health.explanation.endswith("connection refused; the instance is down")
    assert took < 1.5


def test_health_retries_while_warming_up() -> None:
    script = Script(health=[(503, "starting"), (503, "starting"), (200, "ok")])
    with scripted_instance(script) as url:
        verdict, _ = verify(url, profile(metrics=[], health={"timeout": 1.0}))
    assert verdict.outcome is Outcome.SUCCESSFUL
    assert "after 3 attempts" in by_name(verdict)["web/health"].explanation


def test_smoke_wrong_body_or_status_fails() -> None:
    wrong_body = {"name": "hello", "path": "/api/hello", "expect_body": "goodbye"}
    missing = {"name": "missing", "path": "/nope"}
    with scripted_instance(Script()) as url:
        verdict, _ = verify(url, profile(metrics=[], smoke=[wrong_body, missing]))
    checks = by_name(verdict)
    assert verdict.outcome is Outcome.FAILED
    assert checks["web/smoke/hello"].explanation == (
        "GET /api/hello answered HTTP 200 but its body does not contain 'goodbye': "
        """body '{"greeting": "hello"}'""")
    assert checks["web/smoke/missing"].explanation == (
        "GET /nope answered HTTP 404, expected 200: body 'no such page'")


def test_should_stop_interrupts_promptly() -> None:
    stop = threading.Event()
    timer = threading.Timer(0.4, stop.set)
    timer.start()
    try:
        with scripted_instance(Script()) as url:
            verdict, took = verify(url, profile(duration=2.0, interval=1.0),
                                   should_stop=stop.is_set)
    finally:
        timer.cancel()
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert verdict.summary.startswith("stopped after ")
    assert took < 1.0


def test_progress_reports_each_step() -> None:
    messages: list[str] = []
    with scripted_instance(Script()) as url:
        verify(url, progress=messages.append)
    assert messages[0].startswith("acme/prod: web/health successful")
    assert any(m.startswith("acme/prod: metrics at ") for m in messages), messages
    assert messages[-1].startswith("acme/prod: verification successful")

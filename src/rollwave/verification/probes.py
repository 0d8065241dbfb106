"""HTTP health and smoke checks of one service of an instance.

Right after a deploy the instance may still be warming up, so the health check retries for up
to :data:`HEALTH_PATIENCE` × its ``timeout``; when it still gets no answer, or the wrong status,
the check *fails*: the instance itself is down or unhealthy, which is a regression, not an
outage of some metrics source. A smoke request is sent once (after a passing health check).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx

from rollwave.analysis.results import CheckResult, Outcome
from rollwave.core.model import HealthCheck, SmokeCheck
from rollwave.verification import words
from rollwave.verification.http import Answer, UnreachableError, fetch

#: The health check keeps trying for this many times its timeout.
HEALTH_PATIENCE: Final = 3.0
#: Longest pause between two health attempts.
RETRY_PAUSE: Final = 0.5
#: Shortest timeout an attempt gets when little of the patience is left.
MIN_ATTEMPT: Final = 0.05


@dataclass(frozen=True, slots=True)
class Timing:
    """Injected time: ``clock`` (monotonic seconds), ``sleep`` and the stop request."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    should_stop: Callable[[], bool] = lambda: False


def join(base_url: str, path: str) -> str:
    """``base_url`` + ``path`` with exactly one slash between them."""
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def check_health(name: str, base_url: str, health: HealthCheck, *, http: httpx.Client,
                 timing: Timing = Timing(), data: dict[str, Any] | None = None) -> CheckResult:
    """GET the health path until it answers ``expect_status`` or the patience runs out."""
    url = join(base_url, health.path)
    info = {**(data or {}), "kind": "health", "url": url}
    started = timing.clock()
    deadline = started + health.timeout * HEALTH_PATIENCE
    pause = min(RETRY_PAUSE, max(health.timeout / 4, 0.01))
    attempts = 0
    last: Answer | None = None
    error = ""
    while True:
        attempts += 1
        remaining = deadline - timing.clock()
        try:
            last = fetch(http, "GET", url, timeout=max(min(health.timeout, remaining), MIN_ATTEMPT))
            error = ""
        except UnreachableError as exc:
            last, error = None, exc.message
        waited = timing.clock() - started
        tries = f"{words.plural(attempts, 'attempt')} over {words.seconds(waited)}"
        info.update({"attempts": attempts, "waited": waited})
        if last is not None and last.status == health.expect_status:
            warmed = f" after {tries}" if attempts > 1 else ""
            return CheckResult(
                name, Outcome.SUCCESSFUL,
                f"GET {health.path} answered HTTP {last.status} in "
                f"{_ms(last.seconds)}{warmed}",
                value=float(last.status), samples=attempts, data={**info, "status": last.status},
            )
        if timing.clock() + pause >= deadline:
            break
        if timing.should_stop():
            return CheckResult(name, Outcome.INCONCLUSIVE,
                               f"stopped while waiting for GET {health.path} ({tries})",
                               samples=attempts, data=info)
        timing.sleep(pause)
    if last is None:
        explanation = f"no answer from GET {health.path} after {tries}: {error}; the instance " \
                      "is down"
        return CheckResult(name, Outcome.FAILED, explanation, samples=attempts, data=info)
    return CheckResult(
        name, Outcome.FAILED,
        f"GET {health.path} answered HTTP {last.status}, expected {health.expect_status}, "
        f"after {tries}: {_body(last)}",
        value=float(last.status), threshold=float(health.expect_status), samples=attempts,
        data={**info, "status": last.status, "body": words.excerpt(last.text)},
    )


def check_smoke(name: str, base_url: str, smoke: SmokeCheck, *, http: httpx.Client,
                data: dict[str, Any] | None = None) -> CheckResult:
    """Send the smoke request once; it must answer ``expect_status`` and contain ``expect_body``."""
    url = join(base_url, smoke.path)
    info = {**(data or {}), "kind": "smoke", "url": url}
    request = f"{smoke.method} {smoke.path}"
    try:
        answer = fetch(http, smoke.method, url, timeout=smoke.timeout)
    except UnreachableError as exc:
        return CheckResult(name, Outcome.FAILED, f"no answer to {request}: {exc.message}",
                           samples=1, data=info)
    info.update({"status": answer.status, "body": words.excerpt(answer.text)})
    if answer.status != smoke.expect_status:
        return CheckResult(
            name, Outcome.FAILED,
            f"{request} answered HTTP {answer.status}, expected {smoke.expect_status}: "
            f"{_body(answer)}",
            value=float(answer.status), threshold=float(smoke.expect_status), samples=1,
            data=info,
        )
    if smoke.expect_body is not None and smoke.expect_body not in answer.text:
        return CheckResult(
            name, Outcome.FAILED,
            f"{request} answered HTTP {answer.status} but its body does not contain "
            f"{smoke.expect_body!r}: {_body(answer)}",
            value=float(answer.status), samples=1, data=info,
        )
    contains = f" containing {smoke.expect_body!r}" if smoke.expect_body is not None else ""
    return CheckResult(
        name, Outcome.SUCCESSFUL,
        f"{request} answered HTTP {answer.status}{contains} in {_ms(answer.seconds)}",
        value=float(answer.status), samples=1, data=info,
    )


def _ms(seconds: float) -> str:
    return f"{words.number(round(seconds * 1000))} ms"


def _body(answer: Answer) -> str:
    text = words.excerpt(answer.text)
    return f"body {text!r}" if text else "empty body"

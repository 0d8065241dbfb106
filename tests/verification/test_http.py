"""The HTTP edge: every httpx failure becomes UnreachableError with the reason in words."""

from __future__ import annotations

import httpx
import pytest

from rollwave.errors import VerificationError
from rollwave.verification.http import UnreachableError, client, fetch, is_loopback


def _raising(exc_type: type[Exception]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type("boom", request=request)  # type: ignore[call-arg]

    return httpx.Client(transport=httpx.MockTransport(handler))


def _transport_errors() -> list[type[Exception]]:
    found: list[type[Exception]] = []
    stack: list[type[Exception]] = [httpx.TransportError]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("exc_type", [*_transport_errors(), httpx.DecodingError,
                                      httpx.TooManyRedirects])
def test_every_httpx_error_is_translated(exc_type: type[Exception]) -> None:
    with pytest.raises(UnreachableError) as info:
        fetch(_raising(exc_type), "GET", "http://127.0.0.1:9/health", timeout=1)
    assert isinstance(info.value, VerificationError)
    assert "http://127.0.0.1:9/health" in info.value.message


def test_reasons_in_words() -> None:
    with pytest.raises(UnreachableError, match=r"no answer within 1.5s from http://x/health"):
        fetch(_raising(httpx.ReadTimeout), "GET", "http://x/health", timeout=1.5)
    with pytest.raises(UnreachableError, match="request to nope://x/health failed: Request URL"):
        fetch(httpx.Client(), "GET", "nope://x/health", timeout=1)


def test_bodies_are_cut_at_the_limit() -> None:
    big = httpx.Client(transport=httpx.MockTransport(
        lambda request: httpx.Response(200, content=b"x" * 5000)))
    answer = fetch(big, "GET", "http://127.0.0.1:9/", timeout=1, limit=1000)
    assert answer.truncated
    assert len(answer.text) == 1000
    assert answer.status == 200


def test_loopback_endpoints_ignore_proxies_from_the_environment() -> None:
    assert is_loopback("http://127.0.0.1:8101")
    assert is_loopback("http://localhost:8101")
    assert is_loopback("http://[::1]:8101")
    assert not is_loopback("http://acme.example.com")
    with client("http://127.0.0.1:8101") as http:
        assert http.trust_env is False
    with client("http://acme.example.com") as http:
        assert http.trust_env is True

"""The HTTP edge of verification: one request to an instance, httpx errors translated once.

Every request goes through :func:`fetch`, which answers an :class:`Answer` or raises
:class:`UnreachableError` with the reason in words ("connection refused", "no answer within 2s").
Loopback endpoints never go through a proxy from the environment.
"""

from __future__ import annotations

import functools
import ipaddress
import ssl
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import httpx

from rollwave.errors import VerificationError
from rollwave.verification import words

#: Bodies are read up to this size (a larger one is cut, or refused where it must be whole).
MAX_BODY: Final = 16 * 1024 * 1024
USER_AGENT: Final = "rollwave-verify"


class UnreachableError(VerificationError):
    """The instance did not answer an HTTP request."""

    code = "verify.unreachable"
    default_hint = "check that the instance runs and listens on the endpoint its deployer reports"


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: status, body text (maybe cut at the size limit) and how long it took."""

    status: int
    text: str
    seconds: float
    truncated: bool = False


def is_loopback(url: str) -> bool:
    """True for ``localhost`` and loopback addresses."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.cache
def _tls() -> ssl.SSLContext:
    # Loading the CA bundle costs ~20 ms; build it once per process, not once per client.
    return ssl.create_default_context()


def client(base_url: str) -> httpx.Client:
    """A client for one instance endpoint (no redirects followed: statuses are checked as is)."""
    return httpx.Client(trust_env=not is_loopback(base_url), follow_redirects=False,
                        headers={"User-Agent": USER_AGENT}, verify=_tls())


def fetch(http: httpx.Client, method: str, url: str, *, timeout: float,
          limit: int = MAX_BODY) -> Answer:
    """Send one request; raise :class:`UnreachableError` when no HTTP answer arrives."""
    started = time.perf_counter()
    try:
        with http.stream(method, url, timeout=timeout) as response:
            body = bytearray()
            truncated = False
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if len(body) > limit:
                    truncated = True
                    del body[limit:]
                    break
            encoding = response.encoding or "utf-8"
            text = bytes(body).decode(encoding, errors="replace")
            status = response.status_code
        return Answer(status=status, text=text, seconds=time.perf_counter() - started,
                      truncated=truncated)
    except httpx.TimeoutException:
        raise UnreachableError(f"no answer within {words.seconds(timeout)} from {url}") from None
    except httpx.ConnectError as exc:
        raise UnreachableError(f"cannot connect to {url}: {_reason(exc)}") from None
    except httpx.RemoteProtocolError as exc:
        raise UnreachableError(f"{url} closed the connection without a proper answer: "
                          f"{_reason(exc)}") from None
    except (httpx.HTTPError, httpx.InvalidURL, LookupError, OSError) as exc:
        raise UnreachableError(f"request to {url} failed: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "refused" in text.lower():
        return "connection refused"
    return words.excerpt(text, 160) or type(exc).__name__

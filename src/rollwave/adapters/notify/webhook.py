"""The ``webhook`` notifier: POST the notification as JSON to a URL.

Options (under the channel in ``rollwave.yaml``)::

    notifications:
      ops:
        kind: webhook
        url: https://hooks.example.com/rollwave     # or url_secret: env:OPS_WEBHOOK_URL
        headers: {X-Team: payments}
        header_secrets: {Authorization: "env:OPS_WEBHOOK_AUTH"}
        signing_secret: env:OPS_WEBHOOK_SIGNING_KEY  # adds X-Rollwave-Signature: sha256=<hmac>
        timeout: 5s

The body is :meth:`rollwave.ports.notify.Notification.to_dict` (``source``, ``event``,
``subject``, ``message``, ``severity``, ``at``, ``data``). Any 2xx answer is a delivery; other
answers and network errors raise NotifyError (retried by the outbox). Secret values are
resolved when the notifier is built and never logged or recorded; receipts name only the host.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rollwave.core.durations import Duration
from rollwave.ports.notify import Notification, Notifier, NotifyError

SIGNATURE_HEADER = "X-Rollwave-Signature"


class WebhookOptions(BaseModel):
    """Settings of a webhook channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(default=None, pattern=r"^https?://")
    url_secret: str | None = None
    headers: dict[str, str] = {}
    header_secrets: dict[str, str] = {}
    signing_secret: str | None = None
    timeout: Duration = 5.0

    @model_validator(mode="after")
    def _one_url(self) -> WebhookOptions:
        if (self.url is None) == (self.url_secret is None):
            raise ValueError("give exactly one of 'url' or 'url_secret' (a secret reference "
                             "such as env:OPS_WEBHOOK_URL)")
        return self


class WebhookNotifier:
    """POSTs JSON notifications."""

    def __init__(self, url: str, headers: dict[str, str], signing_key: str | None,
                 timeout: float) -> None:
        self.url = url
        self.headers = {"Content-Type": "application/json", "User-Agent": "rollwave-notify",
                        **headers}
        self.signing_key = signing_key
        self.timeout = timeout
        self.host = urlsplit(url).hostname or "the webhook"

    def send(self, notification: Notification) -> str:
        """POST the notification; NotifyError unless the answer is 2xx."""
        body = json.dumps(notification.to_dict(), ensure_ascii=False).encode()
        headers = dict(self.headers)
        if self.signing_key:
            digest = hmac.new(self.signing_key.encode(), body, hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={digest}"
        try:
            response = httpx.post(self.url, content=body, headers=headers,
                                  timeout=self.timeout, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise NotifyError(f"webhook to {self.host} failed: {type(exc).__name__}: "
                              f"{str(exc)[:200]}") from None
        if not 200 <= response.status_code < 300:
            raise NotifyError(f"webhook to {self.host} answered HTTP {response.status_code}")
        return f"HTTP {response.status_code} from {self.host}"


def create(options: WebhookOptions, environment: Any) -> Notifier:
    """Factory for the registry; resolves secret references with ``environment.secret``."""
    secret: Callable[[str], str] | None = getattr(environment, "secret", None)

    def resolve(reference: str) -> str:
        if secret is None:
            raise NotifyError(f"cannot resolve secret reference '{reference}' here",
                              hint="secrets are resolved by the worker that delivers")
        return secret(reference)

    url = options.url if options.url is not None else resolve(str(options.url_secret))
    headers = dict(options.headers)
    headers.update({name: resolve(ref) for name, ref in options.header_secrets.items()})
    signing = resolve(options.signing_secret) if options.signing_secret else None
    return WebhookNotifier(url, headers, signing, float(options.timeout))

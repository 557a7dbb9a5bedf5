"""Webhook alerts: a JSON POST signed with HMAC-SHA256, retried with exponential backoff.

Each request carries
    X-Dinostream-Timestamp: <unix seconds>
    X-Dinostream-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>
    X-Dinostream-Event-Id, X-Dinostream-Delivery-Id (the same for a redelivery: drop repeats by it)
and the body `{"rule", "delivery_id", "attempt", "event": {...}, "links"?}`. A receiver checks it with

    verify_signature(secret, request.headers["X-Dinostream-Timestamp"], raw_body,
                     request.headers["X-Dinostream-Signature"], tolerance_s=300)

which raises `SignatureError` on a wrong signature or a stale timestamp (a replay). Each attempt
is signed anew with its own timestamp and `attempt` number, so a retry is never mistaken for a
replay of the attempt before it.

Connection errors, timeouts, 5xx and 429 are retried (honouring a numeric Retry-After, capped);
other answers fail at once. A delivery that fails goes to the dead-letter callback.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from dinostream.core.settings import HttpTargetSettings, WebhookTargetSettings
from dinostream.sinks.alert_sink import Alert, DeadLetter, DeliveryError, QueuedAlertSink

log = logging.getLogger(__name__)

SIGNATURE_PREFIX = "sha256="
USER_AGENT = "dinostream-alerts/1"


class SignatureError(ValueError):
    """A webhook request's signature does not verify; the message says why."""


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, f"{timestamp}.{body}")."""
    mac = hmac.new(_key(secret), f"{int(timestamp)}.".encode() + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify_signature(
    secret: str | bytes,
    timestamp: str | int,
    body: bytes,
    signature: str,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> int:
    """Check a request's signature (constant-time) and that its timestamp is within `tolerance_s`
    of `now` (default: the clock), which bounds how long a captured request could be replayed.
    Returns the timestamp; raises `SignatureError` naming the problem. Receivers that must refuse
    every replay also remember the signatures they saw for `tolerance_s`."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        raise SignatureError(f"timestamp must be unix seconds, got {timestamp!r}") from None
    if not isinstance(signature, str) or not signature.startswith(SIGNATURE_PREFIX):
        raise SignatureError(f"signature must look like '{SIGNATURE_PREFIX}<hex>'")
    expected = sign(secret, ts, body)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SignatureError("signature does not match the body (wrong secret or altered body)")
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance_s:
        raise SignatureError(f"timestamp {ts} is {abs(now - ts):.0f} s from now, more than {tolerance_s:g} s")
    return ts


def redact_url(url: str) -> str:
    """scheme://host[:port]/… : webhook URLs (Slack's especially) carry secrets in their path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/…"


class HttpAlertSink(QueuedAlertSink):
    """POSTs alerts to a URL with retries; subclasses say what a request looks like (`request`)."""

    def __init__(
        self,
        settings: HttpTargetSettings,
        *,
        dead_letter: DeadLetter | None = None,
        drain_timeout_s: float = 10.0,
        dashboard_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            settings.name, queue_size=settings.queue_size, dead_letter=dead_letter, drain_timeout_s=drain_timeout_s
        )
        self.settings = settings
        self.dashboard_url = dashboard_url
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None

    def request(self, alert: Alert, attempt: int) -> tuple[bytes, dict[str, str]]:
        """Body and headers of one attempt."""
        raise NotImplementedError

    async def deliver(self, alert: Alert) -> None:
        s = self.settings
        where = redact_url(s.url)
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        attempt = 0
        while True:
            attempt += 1
            body, headers = self.request(alert, attempt)
            retry_after: str | None = None
            try:
                async with self._session.post(
                    s.url,
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=s.timeout_s),
                    allow_redirects=False,
                ) as resp:
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
                    await resp.content.read(4096)  # a short look is enough; the connection is then released
                if 200 <= status < 300:
                    return
                error = f"HTTP {status}"
                retryable = status >= 500 or status == 429
            except (aiohttp.ClientError, TimeoutError) as e:
                error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                retryable = True
            if not retryable:
                raise DeliveryError(f"{where} answered {error} (not retried)", attempt)
            if attempt > s.max_retries:
                raise DeliveryError(f"{where}: {error}, gave up after {attempt} attempts", attempt)
            wait = min(s.backoff_max_s, s.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            if retry_after is not None and retry_after.strip().isdigit():
                wait = max(wait, min(float(retry_after), s.backoff_max_s))
            self.stats.retried += 1
            log.warning(
                "alert target %s: %s for event %s (attempt %d), retrying in %.2f s",
                self.name,
                error,
                alert.event.id,
                attempt,
                wait,
            )
            await asyncio.sleep(wait)

    async def aclose_transport(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class WebhookAlertSink(HttpAlertSink):
    """The signed JSON webhook (see the module docstring)."""

    settings: WebhookTargetSettings  # HttpAlertSink's constructor, with the webhook's settings

    def request(self, alert: Alert, attempt: int) -> tuple[bytes, dict[str, str]]:
        doc: dict[str, Any] = {**alert.to_dict(self.dashboard_url), "attempt": attempt}
        body = json.dumps(doc, separators=(",", ":")).encode()
        ts = int(self.clock())
        headers = {
            **self.settings.headers,
            "Content-Type": "application/json",
            "X-Dinostream-Timestamp": str(ts),
            "X-Dinostream-Signature": sign(self.settings.secret.get_secret_value().encode(), ts, body),
            "X-Dinostream-Event-Id": alert.event.id,
            "X-Dinostream-Delivery-Id": alert.delivery_id,
        }
        return body, headers

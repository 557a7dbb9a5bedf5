"""Webhook signatures (sign/verify, tampering, replays), the request a webhook sends, the Slack payload."""

from __future__ import annotations

import asyncio
import json

import pytest

from dinostream.core.records import Event, event_id
from dinostream.core.settings import WebhookTargetSettings
from dinostream.sinks.alert_sink import Alert, DeliveryError, QueuedAlertSink
from dinostream.sinks.slack_alert import slack_payload
from dinostream.sinks.webhook_alert import SignatureError, WebhookAlertSink, redact_url, sign, verify_signature

SECRET = "s3cret-s3cret-s3cret"
TS = 1_700_000_000
BODY = b'{"rule":"r","event":{"id":"x"}}'


def test_sign_matches_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), f"{TS}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, TS, BODY) == f"sha256={expected}"


def test_verify_accepts_a_fresh_signature() -> None:
    sig = sign(SECRET, TS, BODY)
    assert verify_signature(SECRET, str(TS), BODY, sig, tolerance_s=300, now=TS + 299) == TS


BAD_CASES = [
    pytest.param(SECRET, str(TS), BODY.replace(b'"r"', b'"R"'), None, TS, "does not match", id="tampered-body"),
    pytest.param("another-secret-value", str(TS), BODY, None, TS, "does not match", id="wrong-secret"),
    pytest.param(SECRET, str(TS + 1), BODY, None, TS, "does not match", id="tampered-timestamp"),
    pytest.param(SECRET, str(TS), BODY, None, TS + 301, "more than 300 s", id="stale-timestamp"),
    pytest.param(SECRET, str(TS), BODY, None, TS - 301, "more than 300 s", id="future-timestamp"),
    pytest.param(SECRET, "yesterday", BODY, None, TS, "unix seconds", id="non-numeric-timestamp"),
    pytest.param(SECRET, str(TS), BODY, "md5=abc", TS, "sha256=", id="wrong-scheme"),
]


@pytest.mark.parametrize(("secret", "timestamp", "body", "signature", "now", "message"), BAD_CASES)
def test_verify_rejects(
    secret: str, timestamp: str, body: bytes, signature: str | None, now: int, message: str
) -> None:
    sig = signature or sign(SECRET, TS, BODY)
    with pytest.raises(SignatureError, match=message):
        verify_signature(secret, timestamp, body, sig, tolerance_s=300, now=now)


def _alert(status: str = "open") -> Alert:
    ev = Event(
        id=event_id("cam-1", "anomaly", 7),
        type="anomaly",
        stream="cam-1",
        t=3.5,
        t_start=3.5,
        t_end=4.0,
        ts=TS,
        score=2.5,
        frames=(7, 8),
        status=status,
    )
    return Alert(rule="intrusion", target="ops", event=ev)


def test_webhook_request_is_signed_and_each_attempt_differs() -> None:
    settings = WebhookTargetSettings(
        name="ops", url="http://127.0.0.1:1/hook", secret=SECRET, headers={"Authorization": "Bearer t"}
    )
    sink = WebhookAlertSink(settings, dashboard_url="http://dash:8000/", clock=lambda: TS)
    alert = _alert()
    body1, h1 = sink.request(alert, 1)
    body2, h2 = sink.request(alert, 2)
    assert verify_signature(SECRET, h1["X-Dinostream-Timestamp"], body1, h1["X-Dinostream-Signature"], now=TS) == TS
    assert h1["X-Dinostream-Event-Id"] == alert.event.id
    assert h1["X-Dinostream-Delivery-Id"] == h2["X-Dinostream-Delivery-Id"] == alert.delivery_id
    assert h1["Authorization"] == "Bearer t"
    # A retry is not byte-identical to the attempt before it, so a receiver refusing replays accepts it.
    assert h1["X-Dinostream-Signature"] != h2["X-Dinostream-Signature"]
    doc = json.loads(body1)
    assert doc["rule"] == "intrusion" and doc["attempt"] == 1
    assert Event.from_dict(doc["event"]) == alert.event
    assert doc["links"]["thumbnails"] == [
        "http://dash:8000/api/v1/frames/cam-1/7",
        "http://dash:8000/api/v1/frames/cam-1/8",
    ]


def test_delivery_id_is_stable_per_message_and_target() -> None:
    a, b = _alert(), _alert()
    assert a.delivery_id == b.delivery_id
    assert _alert("closed").delivery_id != a.delivery_id
    assert Alert(rule="x", target="pager", event=a.event).delivery_id != a.delivery_id


def test_slack_payload_is_one_readable_line_with_a_dashboard_link() -> None:
    p = slack_payload(_alert(), "http://dash:8000")
    assert p["text"].startswith("anomaly on cam-1 (open): score 2.50 at 2023-11-14 22:13:20 UTC · rule intrusion")
    assert "<http://dash:8000/?stream=cam-1|" in p["text"]
    assert p["blocks"][0]["type"] == "section" and "anomaly on cam-1" in p["blocks"][0]["text"]["text"]
    assert "http://dash:8000/?stream=cam-1" in p["blocks"][1]["elements"][0]["text"]
    assert "dash" not in json.dumps(slack_payload(_alert(), None))


def test_logged_urls_hide_secrets() -> None:
    assert redact_url("https://user:pw@hooks.slack.com/services/T0/B0/XYZ") == "https://hooks.slack.com/…"


class GatedSink(QueuedAlertSink):
    """A real queued target whose delivery waits for the test to open a gate (a slow endpoint)."""

    def __init__(self, queue_size: int, dead: list[tuple[str, str]]) -> None:
        async def dead_letter(alert: Alert, error: str, attempts: int) -> None:
            dead.append((alert.event.id, error))

        super().__init__("slow", queue_size=queue_size, dead_letter=dead_letter, drain_timeout_s=30)
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.delivered: list[str] = []

    async def deliver(self, alert: Alert) -> None:
        self.started.set()
        await self.gate.wait()
        if alert.event.frames == (13,):
            raise DeliveryError("endpoint refused it", 1)
        self.delivered.append(alert.event.id)


def _numbered(i: int) -> Alert:
    ev = _alert().event
    return Alert(rule="r", target="slow", event=Event(**{**vars(ev), "id": f"ev-{i}", "frames": (i,)}))


async def test_full_queue_drops_the_oldest_and_dead_letters_it_without_blocking() -> None:
    dead: list[tuple[str, str]] = []
    sink = GatedSink(queue_size=2, dead=dead)
    await sink.send(_numbered(0))
    await sink.started.wait()  # ev-0 is being delivered; the queue is empty
    for i in range(1, 6):  # returns at once although the target is stuck
        await sink.send(_numbered(i))
    assert sink.pending == 3 and sink.stats.dropped == 3
    assert [d[0] for d in dead] == ["ev-1", "ev-2", "ev-3"] and "queue of 2 full" in dead[0][1]
    sink.gate.set()
    await sink.close()  # drains what is queued
    assert sink.delivered == ["ev-0", "ev-4", "ev-5"]
    assert (sink.stats.sent, sink.stats.dead_lettered, sink.pending) == (3, 3, 0)


async def test_a_failed_delivery_is_dead_lettered_and_the_worker_goes_on() -> None:
    dead: list[tuple[str, str]] = []
    sink = GatedSink(queue_size=8, dead=dead)
    sink.gate.set()
    for i in (12, 13, 14):
        await sink.send(_numbered(i))
    await sink.close()
    assert sink.delivered == ["ev-12", "ev-14"]
    assert dead == [("ev-13", "endpoint refused it")]
    assert (sink.stats.sent, sink.stats.failed, sink.stats.dead_lettered) == (2, 1, 1)

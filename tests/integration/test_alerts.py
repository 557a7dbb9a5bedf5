"""Alerts end to end on real parts: the embedded Kafka broker, a signed-webhook receiver and a
Slack-shaped receiver under uvicorn on port 0, and Debian's mosquitto for MQTT."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
from aiokafka import AIOKafkaConsumer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dinostream.core.embedded_broker import EmbeddedBroker, free_port
from dinostream.core.kafka_io import ensure_topics, make_producer
from dinostream.core.records import Event, event_id
from dinostream.core.settings import AlertSettings, KafkaSettings
from dinostream.sinks.alert_service import AlertService
from dinostream.sinks.webhook_alert import SignatureError, sign, verify_signature
from tests.serving import serve

pytestmark = pytest.mark.integration
SECRET = "integration-secret-0123"
MOSQUITTO = Path("/usr/sbin/mosquitto")


class Receiver:
    """What a team's endpoint does: verify the signature, refuse replays, record deliveries."""

    def __init__(self, secret: str, tolerance_s: float = 300) -> None:
        self.secret = secret
        self.tolerance_s = tolerance_s
        self.deliveries: list[dict[str, Any]] = []
        self.seen_signatures: set[str] = set()
        self.slack: list[dict[str, Any]] = []
        self.failures = 0
        self.refused: list[tuple[int, str]] = []

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        sig = request.headers.get("X-Dinostream-Signature", "")
        try:
            verify_signature(
                self.secret,
                request.headers.get("X-Dinostream-Timestamp", ""),
                body,
                sig,
                tolerance_s=self.tolerance_s,
            )
        except SignatureError as e:
            self.refused.append((401, str(e)))
            return JSONResponse({"error": str(e)}, status_code=401)
        if sig in self.seen_signatures:
            self.refused.append((409, "replay"))
            return JSONResponse({"error": "replayed request"}, status_code=409)
        self.seen_signatures.add(sig)
        doc = json.loads(body)
        assert request.headers["X-Dinostream-Event-Id"] == doc["event"]["id"]
        self.deliveries.append(doc)
        return JSONResponse({"ok": True})

    async def slack_hook(self, request: Request) -> Response:
        doc = json.loads(await request.body())
        shaped = (
            isinstance(doc.get("text"), str)
            and isinstance(doc.get("blocks"), list)
            and doc["blocks"]
            and all(isinstance(b, dict) and "type" in b for b in doc["blocks"])
        )
        if not shaped:
            return Response("invalid_payload", status_code=400)
        self.slack.append(doc)
        return Response("ok")

    async def fail(self, request: Request) -> Response:
        self.failures += 1
        return Response("down", status_code=500)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/hook", self.hook, methods=["POST"]),
                Route("/slack", self.slack_hook, methods=["POST"]),
                Route("/fail", self.fail, methods=["POST"]),
            ]
        )


async def _until(pred: Callable[[], bool], timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.05)


def _event(stream: str, kind: str, key: int, status: str, *, t_end: float = 5.0, score: float = 2.0) -> Event:
    return Event(
        id=event_id(stream, kind, key),
        type=kind,
        stream=stream,
        t=5.0,
        t_start=5.0,
        t_end=t_end,
        ts=time.time(),
        score=score,
        frames=(key,),
        status=status,
    )


@contextlib.asynccontextmanager
async def running(service: AlertService) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(service.run())
    try:
        yield task
    finally:
        await asyncio.wait_for(service.stop(), 30)
        if task.done() and not task.cancelled() and task.exception():
            raise task.exception()  # type: ignore[misc]


def _tag() -> str:
    return uuid.uuid4().hex[:8]


async def test_signed_webhook_and_slack_alert_once_per_occurrence(
    broker: EmbeddedBroker, kafka_settings: KafkaSettings
) -> None:
    await ensure_topics(broker.bootstrap, kafka_settings)
    receiver = Receiver(SECRET)
    async with serve(receiver.app()) as url:
        settings = AlertSettings(
            group_id=f"alerts-{_tag()}",
            dead_letter_topic=f"dl-{_tag()}",
            dashboard_url="http://dashboard.test:8000",
            targets=[
                {"kind": "webhook", "name": "ops", "url": f"{url}/hook", "secret": SECRET},
                {"kind": "slack", "name": "chat", "url": f"{url}/slack"},
            ],
            rules=[
                {"name": "anomalies", "types": ["anomaly"], "min_score": 1.5, "targets": ["ops", "chat"]},
                {"name": "cuts", "types": ["scene_change"], "statuses": ["closed"], "targets": ["ops"]},
            ],
        )
        a_open = _event("cam-1", "anomaly", 1, "open")
        messages = [
            a_open,
            _event("cam-1", "anomaly", 1, "update", t_end=6.0),
            _event("cam-1", "anomaly", 1, "closed", t_end=7.0),
            a_open,  # the same message produced twice (a producer retry, a replay)
            _event("cam-2", "anomaly", 2, "open"),
            _event("cam-2", "anomaly", 3, "open", score=1.0),  # below min_score
            _event("cam-1", "scene_change", 4, "closed"),
            _event("cam-1", "scene_change", 4, "closed"),  # again
            dataclasses.replace(_event("cam-3", "anomaly", 5, "open"), ts=time.time() - 7200),  # 2 h old: no page
        ]
        producer = make_producer(broker.bootstrap, kafka_settings, embedded=True)
        await producer.start()
        service = AlertService(settings, broker.bootstrap, kafka_settings, embedded=True)
        try:
            for ev in messages:
                await producer.send(kafka_settings.events_topic, ev.encode(), key=ev.key)
            await producer.send_and_wait(kafka_settings.events_topic, b"{not json", key=b"cam-1")
            async with running(service):
                await _until(
                    lambda: (
                        service.counters.consumed == len(messages) + 1
                        and all(s.pending == 0 for s in service.sinks.values())
                    )
                )
                # The duplicate arrives again later (a redelivery after the commit): still no second alert.
                await producer.send_and_wait(kafka_settings.events_topic, a_open.encode(), key=a_open.key)
                await _until(
                    lambda: (
                        service.counters.consumed == len(messages) + 2
                        and all(s.pending == 0 for s in service.sinks.values())
                    )
                )
        finally:
            await producer.stop()

        got = sorted((d["rule"], d["event"]["id"], d["event"]["status"]) for d in receiver.deliveries)
        assert got == sorted(
            [
                ("anomalies", event_id("cam-1", "anomaly", 1), "open"),
                ("anomalies", event_id("cam-2", "anomaly", 2), "open"),
                ("cuts", event_id("cam-1", "scene_change", 4), "closed"),
            ]
        )
        assert receiver.refused == []
        assert service.counters.malformed == 1
        assert service.counters.stale == 1  # older than max_event_age_s (an hour by default)
        assert service.stats()["targets"]["ops"]["sent"] == 3
        samples = {
            (m.name, tuple(sorted(x.labels.items()))): x.value for m in service.metric_families() for x in m.samples
        }
        assert samples[("dinostream_alerts", (("outcome", "sent"), ("target", "ops")))] == 3
        # Two extra copies of the open (x 2 targets) and one of the cut were dropped as duplicates.
        assert samples[("dinostream_alerts_events", (("outcome", "duplicate"),))] == 5
        assert sorted(m["text"].split(" (")[0] for m in receiver.slack) == ["anomaly on cam-1", "anomaly on cam-2"]
        assert "http://dashboard.test:8000/?stream=cam-" in receiver.slack[0]["text"]

        # The receiver refuses a replayed request and a stale one: what verify_signature is for.
        body = json.dumps(receiver.deliveries[0]).encode()
        async with aiohttp.ClientSession() as http:
            ts = int(time.time())
            headers = {
                "X-Dinostream-Timestamp": str(ts),
                "X-Dinostream-Signature": sign(SECRET, ts, body),
                "X-Dinostream-Event-Id": receiver.deliveries[0]["event"]["id"],
            }
            async with http.post(f"{url}/hook", data=body, headers=headers) as r:
                assert r.status == 200
            async with http.post(f"{url}/hook", data=body, headers=headers) as r:
                assert r.status == 409
            old = ts - 3600
            stale = {**headers, "X-Dinostream-Timestamp": str(old), "X-Dinostream-Signature": sign(SECRET, old, body)}
            async with http.post(f"{url}/hook", data=body, headers=stale) as r:
                assert r.status == 401
            forged = {**headers, "X-Dinostream-Signature": sign("not-the-secret-at-all", ts, body)}
            async with http.post(f"{url}/hook", data=body, headers=forged) as r:
                assert r.status == 401


async def test_failing_receiver_is_retried_then_dead_lettered(
    broker: EmbeddedBroker, kafka_settings: KafkaSettings
) -> None:
    await ensure_topics(broker.bootstrap, kafka_settings)
    receiver = Receiver(SECRET)
    async with serve(receiver.app()) as url:
        dead_letter_topic = f"dl-{_tag()}"
        settings = AlertSettings(
            group_id=f"alerts-{_tag()}",
            dead_letter_topic=dead_letter_topic,
            targets=[
                {
                    "kind": "webhook",
                    "name": "flaky",
                    "url": f"{url}/fail",
                    "secret": SECRET,
                    "max_retries": 2,
                    "backoff_s": 0.05,
                },
                # Answers 400 to a webhook's body: a client error is not retried.
                {"kind": "webhook", "name": "misrouted", "url": f"{url}/slack", "secret": SECRET, "max_retries": 2},
                {"kind": "webhook", "name": "ops", "url": f"{url}/hook", "secret": SECRET},
            ],
            rules=[{"name": "all", "statuses": ["open", "closed"], "targets": ["flaky", "misrouted", "ops"]}],
        )
        ev = _event("cam-9", "scene_change", 1, "closed")
        producer = make_producer(broker.bootstrap, kafka_settings, embedded=True)
        await producer.start()
        service = AlertService(settings, broker.bootstrap, kafka_settings, embedded=True)
        dead = AIOKafkaConsumer(
            dead_letter_topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", group_id=None
        )
        try:
            await producer.send_and_wait(kafka_settings.events_topic, ev.encode(), key=ev.key)
            async with running(service):
                flaky = service.sinks["flaky"]
                await _until(lambda: flaky.stats.dead_lettered == 1)
                await dead.start()  # the service created the topic
                dead_letters: list[Any] = []
                async with asyncio.timeout(30):
                    while len(dead_letters) < 2:
                        dead_letters.append(await dead.getone())
                # The healthy target got its alert although the other one was failing.
                await _until(lambda: len(receiver.deliveries) == 1)
        finally:
            await dead.stop()
            await producer.stop()

        assert {m.key for m in dead_letters} == {b"cam-9"}
        records = {r["target"]: r for r in (json.loads(m.value) for m in dead_letters)}
        assert records["flaky"]["rule"] == "all" and records["flaky"]["attempts"] == 3
        assert "HTTP 500" in records["flaky"]["error"]
        assert Event.from_dict(records["flaky"]["event"]) == ev
        assert records["misrouted"]["attempts"] == 1 and "HTTP 400 (not retried)" in records["misrouted"]["error"]
        assert receiver.failures == 3  # the first attempt and two retries
        assert vars(flaky.stats) == {"sent": 0, "failed": 1, "retried": 2, "dead_lettered": 1, "dropped": 0}
        assert service.sinks["misrouted"].stats.retried == 0
        assert receiver.deliveries[0]["event"]["id"] == ev.id


@contextlib.contextmanager
def mosquitto(tmp_path: Path, port: int | None = None, *, persistent: bool = False) -> Any:
    """Debian's mosquitto on a free loopback port; `persistent` keeps sessions across restarts."""
    if not MOSQUITTO.exists():
        pytest.fail("Debian's mosquitto is not installed (/usr/sbin/mosquitto): run `make apt` (part of `make test`)")
    port = port or free_port()
    conf = tmp_path / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true"]
    if persistent:
        # As root, mosquitto drops to user "mosquitto", which cannot write the test's directory.
        lines += ["persistence true", f"persistence_location {tmp_path}/", f"user {getpass.getuser()}"]
    conf.write_text("\n".join(lines) + "\n")
    log_path = tmp_path / "mosquitto.log"
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen([str(MOSQUITTO), "-c", str(conf)], stdout=logf, stderr=subprocess.STDOUT)
    try:
        yield port, proc, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _mqtt_subscriber(port: int, log_path: Path, identifier: str | None = None) -> aiomqtt.Client:
    deadline = time.monotonic() + 10
    while True:
        client = aiomqtt.Client(
            "127.0.0.1", port, timeout=5, identifier=identifier, clean_session=False if identifier else None
        )
        try:
            await client.__aenter__()
            return client
        except aiomqtt.MqttError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start; log:\n{log_path.read_text(errors='replace')}") from None
            await asyncio.sleep(0.1)


async def test_mqtt_subscriber_gets_the_event_on_its_stream_and_type_topic(
    broker: EmbeddedBroker, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    await ensure_topics(broker.bootstrap, kafka_settings)
    with mosquitto(tmp_path) as (port, _proc, log_path):
        subscriber = await _mqtt_subscriber(port, log_path)
        try:
            await subscriber.subscribe("dinostream/events/#", qos=1)
            settings = AlertSettings(
                group_id=f"alerts-{_tag()}",
                dead_letter_topic=f"dl-{_tag()}",
                targets=[{"kind": "mqtt", "name": "plant", "host": "127.0.0.1", "port": port}],
                rules=[{"name": "anomalies", "types": ["anomaly"], "targets": ["plant"]}],
            )
            ev = _event("dock-3", "anomaly", 1, "open")
            producer = make_producer(broker.bootstrap, kafka_settings, embedded=True)
            await producer.start()
            service = AlertService(settings, broker.bootstrap, kafka_settings, embedded=True)
            try:
                await producer.send(kafka_settings.events_topic, _event("dock-3", "reid", 2, "open").encode())
                await producer.send_and_wait(kafka_settings.events_topic, ev.encode(), key=ev.key)
                async with running(service):
                    async with asyncio.timeout(60):
                        message = await anext(aiter(subscriber.messages))
            finally:
                await producer.stop()
        finally:
            await subscriber.__aexit__(None, None, None)

    assert message.topic.value == "dinostream/events/dock-3/anomaly"
    assert message.qos == 1
    doc = json.loads(message.payload)
    assert doc["rule"] == "anomalies" and Event.from_dict(doc["event"]) == ev
    assert service.stats()["targets"]["plant"]["sent"] == 1


async def test_mqtt_target_reconnects_after_the_broker_restarts(
    broker: EmbeddedBroker, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    await ensure_topics(broker.bootstrap, kafka_settings)
    port = free_port()
    sub_id = f"sub-{_tag()}"
    settings = AlertSettings(
        group_id=f"alerts-{_tag()}",
        dead_letter_topic=f"dl-{_tag()}",
        targets=[
            {"kind": "mqtt", "name": "plant", "host": "127.0.0.1", "port": port, "backoff_s": 0.1, "timeout_s": 2}
        ],
        rules=[{"name": "all", "targets": ["plant"]}],
    )
    first, second = _event("dock-1", "anomaly", 1, "open"), _event("dock-1", "anomaly", 2, "open")
    producer = make_producer(broker.bootstrap, kafka_settings, embedded=True)
    await producer.start()
    service = AlertService(settings, broker.bootstrap, kafka_settings, embedded=True)
    plant = service.sinks["plant"]
    try:
        async with running(service):
            # A persistent subscriber session: the broker keeps what arrives while the subscriber is away.
            with mosquitto(tmp_path, port, persistent=True) as (_, _proc, log_path):
                subscriber = await _mqtt_subscriber(port, log_path, identifier=sub_id)
                await subscriber.subscribe("dinostream/events/#", qos=1)
                await producer.send_and_wait(kafka_settings.events_topic, first.encode(), key=first.key)
                async with asyncio.timeout(60):
                    got_first = await anext(aiter(subscriber.messages))
                with contextlib.suppress(aiomqtt.MqttError):
                    await subscriber.__aexit__(None, None, None)
            # The broker is down: the alert waits in the target, which keeps trying.
            await producer.send_and_wait(kafka_settings.events_topic, second.encode(), key=second.key)
            await _until(lambda: plant.stats.retried >= 2)
            assert plant.stats.sent == 1
            with mosquitto(tmp_path, port, persistent=True) as (_, _proc, log_path):
                await _until(lambda: plant.stats.sent == 2)
                subscriber = await _mqtt_subscriber(port, log_path, identifier=sub_id)
                later: list[str] = []  # QoS 1 is at least once: the restored session may repeat the first
                try:
                    async with asyncio.timeout(60):
                        async for m in subscriber.messages:
                            later.append(json.loads(m.payload)["event"]["id"])
                            if later[-1] == second.id:
                                break
                finally:
                    await subscriber.__aexit__(None, None, None)
    finally:
        await producer.stop()

    assert json.loads(got_first.payload)["event"]["id"] == first.id
    assert later[-1] == second.id and set(later) <= {first.id, second.id}
    assert plant.stats.dropped == 0 and plant.stats.failed == 0

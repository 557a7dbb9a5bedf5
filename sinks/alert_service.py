"""Kafka events topic → rules → alert targets (webhooks, Slack, MQTT). The I/O shell around `AlertRules`.

    service = AlertService(settings.alerts, bootstrap, settings.kafka, embedded=embedded)
    task = asyncio.create_task(service.run())      # long-lived; raises if Kafka fails
    ...
    await service.stop()                            # drains targets (bounded), leaves the group

Delivery semantics: at least once, deduplicated. Offsets are committed after every alert of a
batch was accepted by its target's queue (not after it was delivered: a slow target must not
hold back the others or the consumer). So:
- a crash before the commit re-reads the batch; messages already alerted in this process are
  dropped by `AlertRules`' dedup memory (event id, status, target), and after a restart the
  repeat carries the same `X-Dinostream-Delivery-Id` / `delivery_id` for receivers to drop;
- a crash after the commit loses the alerts still queued in memory (at most each target's
  `queue_size`); a target that fails or overflows hands its alerts to the dead-letter topic
  `AlertSettings.dead_letter_topic` as JSON `{"target", "rule", "delivery_id", "error", "attempts",
  "failed_at", "event"}`, keyed by stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dinostream.core.errors import BrokerError
from dinostream.core.kafka_io import TopicSpec, client_security, ensure_topic_specs, make_producer, topic_spec
from dinostream.core.records import Event, RecordError
from dinostream.core.settings import (
    AlertSettings,
    KafkaSettings,
    MqttTargetSettings,
    SlackTargetSettings,
    WebhookTargetSettings,
)
from dinostream.sinks.alert_rules import AlertRules
from dinostream.sinks.alert_sink import Alert, AlertSink, DeadLetter, QueuedAlertSink
from dinostream.sinks.mqtt_alert import MqttAlertSink
from dinostream.sinks.slack_alert import SlackAlertSink
from dinostream.sinks.webhook_alert import WebhookAlertSink

log = logging.getLogger(__name__)


def dead_letter_spec(settings: AlertSettings, kafka: KafkaSettings) -> TopicSpec:
    """The dead-letter topic as the alert service creates it (replication and limits of the other topics)."""
    return topic_spec(kafka, settings.dead_letter_topic)


def build_sinks(settings: AlertSettings, dead_letter: DeadLetter | None) -> dict[str, AlertSink]:
    """One `AlertSink` per configured target, by name."""
    sinks: dict[str, AlertSink] = {}
    common: dict[str, Any] = {
        "dead_letter": dead_letter,
        "drain_timeout_s": settings.drain_timeout_s,
        "dashboard_url": settings.dashboard_url,
    }
    for t in settings.targets:
        if isinstance(t, WebhookTargetSettings):
            sinks[t.name] = WebhookAlertSink(t, **common)
        elif isinstance(t, SlackTargetSettings):
            sinks[t.name] = SlackAlertSink(t, **common)
        elif isinstance(t, MqttTargetSettings):
            sinks[t.name] = MqttAlertSink(t, **common)
        else:  # pragma: no cover - the settings union is closed
            raise TypeError(f"unknown alert target {t!r}")
    return sinks


def dead_letter_record(alert: Alert, error: str, attempts: int, now: float) -> bytes:
    """The JSON a dead-letter message carries."""
    doc = {
        "target": alert.target,
        "rule": alert.rule,
        "delivery_id": alert.delivery_id,
        "error": error,
        "attempts": attempts,
        "failed_at": now,
        "event": alert.event.to_dict(),
    }
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass
class AlertServiceStats:
    consumed: int = 0
    malformed: int = 0
    stale: int = 0  # events older than max_event_age_s: not alerted (a backlog after downtime, a new group)
    alerts: int = 0  # accepted by a target's queue
    batches: int = 0


class AlertService:
    """Consumes the events topic in consumer group `settings.group_id` and alerts targets by rules.

    `sinks` replaces the targets built from the settings (tests, custom targets)."""

    def __init__(
        self,
        settings: AlertSettings,
        bootstrap: str,
        kafka: KafkaSettings,
        *,
        embedded: bool = False,
        sinks: Mapping[str, AlertSink] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.kafka = kafka
        self.embedded = embedded
        self.clock = clock
        self.counters = AlertServiceStats()
        self.rules = AlertRules(settings.rules, dedup_size=settings.dedup_size, dedup_ttl_s=settings.dedup_ttl_s)
        self.sinks: dict[str, AlertSink] = dict(sinks) if sinks is not None else build_sinks(settings, self.dead_letter)
        missing = sorted({t for r in settings.rules for t in r.targets} - self.sinks.keys())
        if missing:
            raise ValueError(f"alert rules name targets that do not exist: {missing}")
        self._producer: AIOKafkaProducer | None = None
        self._stop = asyncio.Event()
        self._done = asyncio.Event()
        self._running = False

    async def dead_letter(self, alert: Alert, error: str, attempts: int) -> None:
        """Write an undelivered alert to the dead-letter topic (waits for the broker's ack)."""
        producer = self._producer
        if producer is None:
            raise RuntimeError("the alert service is not running; dead letter not written")
        record = dead_letter_record(alert, error, attempts, self.clock())
        await producer.send_and_wait(self.settings.dead_letter_topic, record, key=alert.event.key)

    async def _ensure_dead_letter_topic(self) -> None:
        topic = self.settings.dead_letter_topic
        try:
            await ensure_topic_specs(
                self.bootstrap,
                self.kafka,
                [dead_letter_spec(self.settings, self.kafka)],
                client_id="dinostream-alerts-admin",
            )
        except BrokerError as e:
            raise BrokerError(f"alerts: cannot set up topic {topic!r}: {e}") from None

    async def run(self) -> None:
        """Consume until `stop()` (or cancellation). Kafka errors propagate: the owner stops the service."""
        if self._running:
            raise RuntimeError("AlertService.run() is already running")
        self._running = True
        consumer: AIOKafkaConsumer | None = None
        try:
            await self._ensure_dead_letter_topic()
            self._producer = make_producer(self.bootstrap, self.kafka, embedded=self.embedded)
            await self._producer.start()
            consumer = AIOKafkaConsumer(
                self.kafka.events_topic,
                bootstrap_servers=self.bootstrap,
                group_id=self.settings.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_partition_fetch_bytes=max(self.kafka.max_message_bytes * 2, 1_048_576),
                client_id="dinostream-alerts",
                session_timeout_ms=int(self.kafka.session_timeout_s * 1000),
                heartbeat_interval_ms=int(self.kafka.session_timeout_s * 200),
                **client_security(self.kafka),
            )
            await consumer.start()
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                if not batches:
                    continue
                for tp, messages in batches.items():
                    for msg in messages:
                        self.counters.consumed += 1
                        try:
                            event = Event.decode(msg.value)
                        except RecordError as e:
                            self.counters.malformed += 1
                            log.error("alerts: skipping malformed event at %s offset %s: %s", tp, msg.offset, e)
                            continue
                        await self._dispatch(event)
                await consumer.commit()
                self.counters.batches += 1
        finally:
            if consumer is not None:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await self._close_sinks()
            producer, self._producer = self._producer, None
            if producer is not None:
                with contextlib.suppress(Exception):
                    await producer.stop()
            self._running = False
            self._done.set()

    async def _dispatch(self, event: Event) -> None:
        now = self.clock()
        age = self.settings.max_event_age_s
        if age is not None and now - event.ts > age:
            # A new consumer group starts at the topic's beginning, and a long outage leaves a
            # backlog: nobody wants a page for what happened hours ago (it is in the index).
            self.counters.stale += 1
            return
        for rule, target in self.rules.match(event, now):
            await self.sinks[target].send(Alert(rule=rule.name, target=target, event=event, created=self.clock()))
            self.counters.alerts += 1

    async def _close_sinks(self) -> None:
        # Concurrently, so the drain timeout applies once, not once per target.
        results = await asyncio.gather(*(s.close() for s in self.sinks.values()), return_exceptions=True)
        for name, r in zip(self.sinks, results, strict=True):
            if isinstance(r, BaseException):
                log.error("alert target %s: close failed: %s", name, r)

    async def stop(self) -> None:
        """Finish the current batch, drain the targets (bounded by `drain_timeout_s`), leave the group."""
        self._stop.set()
        if self._running:
            await self._done.wait()
        else:
            await self._close_sinks()

    def stats(self) -> dict[str, Any]:
        """Counters for /health and metrics."""
        return {
            **vars(self.counters),
            "rules": vars(self.rules.stats),
            "targets": {
                name: {
                    **vars(s.stats),
                    "pending": s.pending,
                    "alive": s.alive if isinstance(s, QueuedAlertSink) else True,
                }
                for name, s in self.sinks.items()
            },
        }

    def metric_families(self) -> list[Metric]:
        """Prometheus families of `stats()`, for dinostream.dashboard.metrics
        (`collector.add(service.metric_families)`)."""
        st = self.stats()
        consumed = CounterMetricFamily(
            "dinostream_alerts_events", "Event messages the alert service read, by outcome.", labels=["outcome"]
        )
        consumed.add_metric(["consumed"], st["consumed"])
        consumed.add_metric(["malformed"], st["malformed"])
        consumed.add_metric(["duplicate"], st["rules"]["duplicates"])
        consumed.add_metric(["cooled_down"], st["rules"]["cooled_down"])
        alerts = CounterMetricFamily(
            "dinostream_alerts", "Alerts per target, by outcome.", labels=["target", "outcome"]
        )
        pending = GaugeMetricFamily("dinostream_alerts_pending", "Alerts queued for a target.", labels=["target"])
        for name, t in st["targets"].items():
            for outcome in ("sent", "failed", "retried", "dead_lettered", "dropped"):
                alerts.add_metric([name, outcome], t[outcome])
            pending.add_metric([name], t["pending"])
        return [consumed, alerts, pending]

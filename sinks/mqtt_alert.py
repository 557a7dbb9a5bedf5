"""MQTT alerts: each alert's JSON (as webhooks send it) on `<topic_prefix>/<stream>/<type>`, QoS 1.

    dinostream/events/cam-1/anomaly   {"rule": "intrusion", "delivery_id": "...", "event": {...}}

With QoS >= 1 a publish returns when the broker acknowledged it. The connection is made on the
first alert and remade with exponential backoff (and jitter) after any error; the alert that
failed is published again once connected (at least once: the broker may see it twice). MQTT
alerts are never given up, so while the broker is away the target's bounded queue fills and
drops its oldest alerts (counted in `dropped`, and dead-lettered).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random

import aiomqtt

from dinostream.core.settings import MqttTargetSettings
from dinostream.sinks.alert_sink import Alert, DeadLetter, QueuedAlertSink

log = logging.getLogger(__name__)


def mqtt_topic(prefix: str, alert: Alert) -> str:
    """`<prefix>/<stream>/<type>`; stream ids and types hold no MQTT wildcards or separators."""
    return f"{prefix.rstrip('/')}/{alert.event.stream}/{alert.event.type}"


class MqttAlertSink(QueuedAlertSink):
    """Publishes alerts to an MQTT broker (see the module docstring)."""

    def __init__(
        self,
        settings: MqttTargetSettings,
        *,
        dead_letter: DeadLetter | None = None,
        drain_timeout_s: float = 10.0,
        dashboard_url: str | None = None,
    ) -> None:
        super().__init__(
            settings.name, queue_size=settings.queue_size, dead_letter=dead_letter, drain_timeout_s=drain_timeout_s
        )
        self.settings = settings
        self.dashboard_url = dashboard_url
        self.connects = 0  # successful connections (1 + reconnects)
        self._client: aiomqtt.Client | None = None
        self._failures = 0

    async def deliver(self, alert: Alert) -> None:
        s = self.settings
        topic = mqtt_topic(s.topic_prefix, alert)
        payload = json.dumps(alert.to_dict(self.dashboard_url), separators=(",", ":")).encode()
        while True:
            try:
                client = await self._connected()
                await client.publish(topic, payload, qos=s.qos, timeout=s.timeout_s)
                self._failures = 0
                return
            except (aiomqtt.MqttError, OSError) as e:
                await self._disconnect()
                self._failures += 1
                self.stats.retried += 1
                wait = min(s.backoff_max_s, s.backoff_s * 2 ** (self._failures - 1)) * random.uniform(0.5, 1.0)
                log.warning(
                    "alert target %s: MQTT %s:%d: %s; reconnecting in %.2f s", self.name, s.host, s.port, e, wait
                )
                await asyncio.sleep(wait)

    async def _connected(self) -> aiomqtt.Client:
        if self._client is None:
            s = self.settings
            client = aiomqtt.Client(
                s.host,
                s.port,
                username=s.username,
                password=s.password.get_secret_value() if s.password else None,
                identifier=s.client_id,
                keepalive=s.keepalive_s,
                timeout=s.timeout_s,
            )
            await client.__aenter__()
            self._client = client
            self.connects += 1
            log.info("alert target %s: connected to MQTT %s:%d", self.name, s.host, s.port)
        return self._client

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # it is usually already broken
                await client.__aexit__(None, None, None)
            # aiomqtt keeps why the connection broke in a future; read it so asyncio does not log it
            # as "never retrieved" (we logged the error already).
            lost = getattr(client, "_disconnected", None)
            if isinstance(lost, asyncio.Future) and lost.done() and not lost.cancelled():
                lost.exception()

    async def aclose_transport(self) -> None:
        await self._disconnect()

"""Kafka → LiveHub: the gateway's view of the live streams.

Reads the events topic and the previews topic from their ends (no consumer group: every
gateway sees everything) and publishes events and the latest thumbnail per stream to the hub.
A frame's preview is its fields, its JPEG and where its whole record is: a few KB, where the
whole record on the embeddings topic (which the gateway never follows) is ~155 KB for ViT-S/16.
Events go to the hub with their partition and offset (the cursor clients resume from), and
`event_log` reads the events topic back for clients that missed more than the hub remembers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer

from dinostream.core.kafka_io import client_security
from dinostream.core.records import Event, FramePreview, RecordError
from dinostream.core.settings import KafkaSettings
from dinostream.dashboard.event_log import KafkaEventLog
from dinostream.dashboard.live_hub import LiveHub

log = logging.getLogger(__name__)


class LiveFeed:
    def __init__(
        self,
        hub: LiveHub,
        bootstrap: str,
        kafka: KafkaSettings,
        *,
        on_preview: Callable[[FramePreview], None] | None = None,
    ) -> None:
        """`on_preview` also gets every frame preview (e.g. `RecentFrames.note`)."""
        self.hub = hub
        self.kafka = kafka
        self.on_preview = on_preview
        self._consumer = AIOKafkaConsumer(
            kafka.previews_topic,
            kafka.events_topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="latest",
            enable_auto_commit=False,
            max_partition_fetch_bytes=max(kafka.max_message_bytes * 2, 1_048_576),
            client_id="dinostream-gateway",
            **client_security(kafka),
        )
        self.event_log = KafkaEventLog(
            bootstrap,
            kafka.events_topic,
            timeout_s=max(15.0, kafka.connect_timeout_s * 3),
            max_fetch_bytes=max(kafka.max_message_bytes * 2, 1_048_576),
            security=client_security(kafka),
        )

    async def start(self) -> None:
        """Connect and fix the starting offsets: events produced after this are all published."""
        await self._consumer.start()
        positions = {}
        for tp in self._consumer.assignment():
            if tp.topic == self.kafka.events_topic:
                positions[tp.partition] = await self._consumer.position(tp)
        self.hub.start_positions(positions)

    async def run(self) -> None:
        """Publish until cancelled; call `start()` first so nothing produced after it is missed."""
        try:
            async for msg in self._consumer:
                try:
                    if msg.topic == self.kafka.events_topic:
                        self.hub.publish_event(Event.decode(msg.value), partition=msg.partition, offset=msg.offset)
                    else:
                        self._publish_frame(msg.value)
                except RecordError as e:
                    if msg.topic == self.kafka.events_topic:
                        self.hub.skip(msg.partition, msg.offset)
                    log.error("live feed: skipping malformed record on %s offset %s: %s", msg.topic, msg.offset, e)
        finally:
            await self._consumer.stop()

    def _publish_frame(self, data: bytes) -> None:
        p = FramePreview.decode(data)
        self.hub.publish_frame(p.stream, p.seq, p.pts, p.thumbnail, model=p.model, untrained=p.untrained)
        if self.on_preview is not None:
            self.on_preview(p)

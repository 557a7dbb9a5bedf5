"""Kafka → LiveHub: the gateway's view of the live streams.

Reads the events topic and the embeddings topic from their ends (no consumer group: every
gateway sees everything) and publishes events and the latest thumbnail per stream to the hub.
Of each frame record only its `FrameHeader` is read (fields and JPEG), never its arrays.
Events go to the hub with their partition and offset (the cursor clients resume from), and
`event_log` reads the events topic back for clients that missed more than the hub remembers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer

from dinostream.core.kafka_io import client_security
from dinostream.core.records import Event, FrameHeader, RecordError
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
        on_frame_record: Callable[[bytes, FrameHeader], None] | None = None,
    ) -> None:
        """`on_frame_record` also gets every frame record, still encoded, with the header read from
        it (e.g. `RecentFrames.add`)."""
        self.hub = hub
        self.kafka = kafka
        self.on_frame_record = on_frame_record
        self._consumer = AIOKafkaConsumer(
            kafka.embeddings_topic,
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
        h = FrameHeader.decode(data)
        self.hub.publish_frame(h.stream, h.seq, h.pts, h.thumbnail, model=h.model, untrained=h.untrained)
        if self.on_frame_record is not None:
            self.on_frame_record(data, h)

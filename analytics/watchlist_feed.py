"""The watchlist topic ↔ a `Watchlist` in memory: how exemplars registered through the API reach
every analytics worker.

The topic is compacted and keyed by exemplar id; a value is one exemplar's JSON and an empty
value removes it. Every reader (each worker, each gateway) reads the whole topic from the start
with no consumer group, then follows it, so all of them hold the same list and a restarted one
gets it back.

    feed = WatchlistFeed(watchlist, bootstrap, kafka)
    await feed.start()                 # returns once the list is caught up with the topic
    task = asyncio.create_task(feed.run())
    await producer.send_and_wait(kafka.watchlist_topic, exemplar_message(ex), key=ex.id.encode())
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from analytics.watchlist import Exemplar, Watchlist
from dinostream.errors import BrokerError
from dinostream.settings import KafkaSettings

log = logging.getLogger(__name__)


def exemplar_message(exemplar: Exemplar) -> bytes:
    """The topic value that adds (or replaces) `exemplar`; its key is `exemplar.id`."""
    return json.dumps(exemplar.to_dict(), separators=(",", ":")).encode()


def apply_message(watchlist: Watchlist, key: bytes | None, value: bytes | None) -> str | None:
    """Apply one topic message to `watchlist`; returns what changed, or None for a message that
    is skipped (logged). An empty value removes the exemplar named by the key."""
    if key is None:
        log.error("watchlist: skipping a message without a key")
        return None
    ex_id = key.decode(errors="replace")
    if not value:
        watchlist.remove(ex_id)
        return f"removed {ex_id}"
    try:
        exemplar = Exemplar.from_dict(json.loads(value))
        if exemplar.id != ex_id:
            raise ValueError(f"key {ex_id!r} does not match exemplar id {exemplar.id!r}")
        watchlist.add(exemplar)
    except (ValueError, KeyError, TypeError) as e:
        log.error("watchlist: skipping exemplar %r: %s", ex_id, e)
        return None
    return f"added {ex_id}"


class WatchlistFeed:
    """Keeps `watchlist` equal to the watchlist topic (thin I/O shell around `apply_message`)."""

    def __init__(self, watchlist: Watchlist, bootstrap: str, kafka: KafkaSettings) -> None:
        self.watchlist = watchlist
        self.kafka = kafka
        self.applied = 0
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="dinostream-watchlist",
        )

    async def start(self) -> None:
        """Read the topic from its start up to its current end; raise BrokerError if it is missing."""
        topic = self.kafka.watchlist_topic
        await self._consumer.start()
        try:
            parts = None
            async with asyncio.timeout(self.kafka.connect_timeout_s):
                while not parts:
                    parts = self._consumer.partitions_for_topic(topic)
                    if not parts:
                        await self._consumer.force_metadata_update()
                        parts = self._consumer.partitions_for_topic(topic)
                        if not parts:
                            await asyncio.sleep(0.2)
        except TimeoutError:
            await self._consumer.stop()
            raise BrokerError(f"the watchlist topic {topic!r} does not exist on the broker") from None
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        end = await self._consumer.end_offsets(tps)
        while not await self._caught_up(end):
            self._apply(await self._consumer.getmany(*tps, timeout_ms=500))
        log.info("watchlist: %d exemplars", len(self.watchlist))

    async def run(self) -> None:
        """Follow the topic until cancelled."""
        try:
            while True:
                self._apply(await self._consumer.getmany(timeout_ms=1000))
        finally:
            await self._consumer.stop()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def _caught_up(self, end: dict[TopicPartition, int]) -> bool:
        for tp, offset in end.items():
            if await self._consumer.position(tp) < offset:
                return False
        return True

    def _apply(self, batch: dict[TopicPartition, list]) -> None:  # type: ignore[type-arg]
        for messages in batch.values():
            for msg in messages:
                change = apply_message(self.watchlist, msg.key, msg.value)
                if change is not None:
                    self.applied += 1
                    log.info("watchlist: %s", change)

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

import json
import logging

from dinostream.analytics.watchlist import Exemplar, Watchlist
from dinostream.core.kafka_io import Batch, TopicFollower
from dinostream.core.settings import KafkaSettings

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
        self.applied = 0
        self._follower = TopicFollower([kafka.watchlist_topic], bootstrap, kafka, "dinostream-watchlist", self._apply)

    async def start(self) -> None:
        """Read the topic from its start up to its current end; raise BrokerError if it is missing."""
        await self._follower.start()
        log.info("watchlist: %d exemplars", len(self.watchlist))

    async def run(self) -> None:
        """Follow the topic until cancelled."""
        await self._follower.run()

    async def stop(self) -> None:
        await self._follower.stop()

    def _apply(self, batch: Batch) -> None:
        for messages in batch.values():
            for msg in messages:
                change = apply_message(self.watchlist, msg.key, msg.value)
                if change is not None:
                    self.applied += 1
                    log.info("watchlist: %s", change)

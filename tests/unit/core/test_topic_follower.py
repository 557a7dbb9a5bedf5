"""TopicFollower on a topic the broker does not have: one BrokerError naming the topic once the
timeout passes (the metadata refresh while it waits used a method AIOKafkaConsumer lacks)."""

from __future__ import annotations

import pytest

from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.errors import BrokerError
from dinostream.core.kafka_io import TopicFollower
from dinostream.core.settings import KafkaSettings


async def test_a_missing_topic_is_named(broker: EmbeddedBroker, kafka_settings: KafkaSettings) -> None:
    topic = f"{kafka_settings.watchlist_topic}-never-created"
    follower = TopicFollower([topic], broker.bootstrap, kafka_settings, "test-follower", lambda batch: None)
    with pytest.raises(BrokerError, match=f"topic '{topic}' does not exist"):
        await follower.start(timeout_s=2)

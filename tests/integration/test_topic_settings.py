"""Topic settings on the real embedded broker (Tansu): replication -1 is taken as the cluster's
default, the per-topic configs are stored as sent, a topic too small for kafka.max_message_bytes
stops the start, and the Faust app's own topics exist with our configs once it has started."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from dinostream.analytics.worker import build_app, faust_topic_specs
from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.errors import BrokerError
from dinostream.core.kafka_io import ensure_topics, topic_specs
from dinostream.core.settings import AnalyticsSettings, KafkaSettings
from tests.records import unique_kafka

pytestmark = pytest.mark.integration


async def _configs(bootstrap: str, topics: list[str]) -> dict[str, dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        out: dict[str, dict[str, str]] = {}
        for resp in await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]):
            for r in resp.resources:
                out[r[3]] = {e[0]: e[1] for e in r[4]}
        replicas = {t["topic"]: len(t["partitions"][0]["replicas"]) for t in await admin.describe_topics(topics)}
        assert all(n >= 1 for n in replicas.values()), replicas  # -1 became the cluster's default
        return out
    finally:
        await admin.close()


async def test_topics_carry_their_configs(broker: EmbeddedBroker) -> None:
    kafka = unique_kafka(min_insync_replicas=1)
    await ensure_topics(broker.bootstrap, kafka)
    specs = {s.name: s for s in topic_specs(kafka)}
    got = await _configs(broker.bootstrap, list(specs))
    for name, spec in specs.items():
        for key, value in spec.configs.items():
            assert got[name].get(key) == value, (name, key)
    await ensure_topics(broker.bootstrap, kafka)  # again: nothing to create, every limit fits


async def test_a_topic_too_small_for_max_message_bytes_stops_the_start(broker: EmbeddedBroker) -> None:
    kafka = unique_kafka()
    await ensure_topics(broker.bootstrap, kafka)
    bigger = KafkaSettings(**{**kafka.model_dump(), "max_message_bytes": 4_000_000})
    with pytest.raises(BrokerError) as e:
        await ensure_topics(broker.bootstrap, bigger)
    assert repr(kafka.embeddings_topic) in str(e.value)
    assert "max.message.bytes 1001024" in str(e.value) and "kafka.max_message_bytes = 4000000" in str(e.value)


async def test_the_faust_apps_topics_are_created_with_our_configs(broker: EmbeddedBroker, tmp_path: Path) -> None:
    kafka = unique_kafka(partitions=2)
    await ensure_topics(broker.bootstrap, kafka)
    app = build_app(
        broker.bootstrap,
        kafka,
        AnalyticsSettings(app_id=f"t-{uuid.uuid4().hex[:8]}"),
        processors=lambda a: [],
        datadir=tmp_path,
    )
    await app.start()
    try:
        specs = {s.name: s for s in faust_topic_specs(app, kafka)}
        got = await _configs(broker.bootstrap, list(specs))
        for name, spec in specs.items():
            assert got[name] == spec.configs, name
    finally:
        await app.stop()

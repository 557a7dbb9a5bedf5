"""The topics dinostream creates, as a cluster operator sees them: what `ensure_topics`, the alert
service and the Faust app actually send to the admin API (captured with a fake admin client), the
replication and limits the settings ask for, and the refusal to start on a topic whose
max.message.bytes is below what `kafka.max_message_bytes` needs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from dinostream.analytics.worker import build_app, faust_topic_specs, worker_session_timeout_s
from dinostream.core import kafka_io
from dinostream.core.errors import BrokerError
from dinostream.core.kafka_io import TopicSpec, ensure_topics, topic_message_bytes, topic_specs
from dinostream.core.settings import AlertSettings, AnalyticsSettings, KafkaSettings
from dinostream.sinks.alert_service import AlertService, dead_letter_spec


class FakeAdmin:
    """Records create_topics; answers list_topics, describe_configs and describe_topics from `existing`
    (topic -> its max.message.bytes, None when the broker does not report one)."""

    existing: dict[str, int | None] = {}
    created: list[Any] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return list(FakeAdmin.existing)

    async def create_topics(self, new: list[Any], timeout_ms: int) -> Any:
        FakeAdmin.created += new
        for t in new:
            FakeAdmin.existing[t.name] = int(t.topic_configs["max.message.bytes"])
        return SimpleNamespace(topic_errors=[(t.name, 0, None) for t in new])

    async def describe_configs(self, resources: list[Any]) -> list[Any]:
        out = []
        for r in resources:
            limit = FakeAdmin.existing[r.name]
            entries = [] if limit is None else [("max.message.bytes", str(limit), False, 5, False, [])]
            out.append((0, None, 2, r.name, entries))
        return [SimpleNamespace(resources=out)]

    async def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        return [{"topic": t, "partitions": [{"replicas": [1, 2, 3]}]} for t in topics]


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> type[FakeAdmin]:
    FakeAdmin.existing, FakeAdmin.created = {}, []
    monkeypatch.setattr(kafka_io, "AIOKafkaAdminClient", FakeAdmin)
    return FakeAdmin


def sent(new_topics: list[Any]) -> dict[str, TopicSpec]:
    """What went over the wire, as TopicSpecs (aiokafka's own request conversion)."""
    out = {}
    for t in new_topics:
        name, partitions, rf, assignment, configs = AIOKafkaAdminClient._convert_new_topic_request(t)
        assert assignment == [], f"{name}: no replica assignment (the cluster places replicas)"
        out[name] = TopicSpec(name, partitions, rf, dict(configs))
    return out


async def test_ensure_topics_creates_every_topic_as_topic_specs_says(admin: type[FakeAdmin]) -> None:
    kafka = KafkaSettings()
    await ensure_topics("kafka:9092", kafka)
    got = sent(admin.created)
    assert got == {s.name: s for s in topic_specs(kafka)}
    assert set(got) == {
        "dinostream.embeddings",
        "dinostream.previews",
        "dinostream.events",
        "dinostream.control",
        "dinostream.watchlist",
        "dinostream.streams",
        "dinostream.stream-health",
    }


async def test_default_replication_is_the_clusters_and_never_forced_to_one(admin: type[FakeAdmin]) -> None:
    await ensure_topics("kafka:9092", KafkaSettings())
    for spec in sent(admin.created).values():
        assert spec.replication_factor == -1, spec.name  # -1: default.replication.factor (KIP-464)
        assert "min.insync.replicas" not in spec.configs, spec.name


async def test_replication_and_min_insync_from_the_settings_on_every_topic(admin: type[FakeAdmin]) -> None:
    await ensure_topics("kafka:9092", KafkaSettings(replication_factor=3, min_insync_replicas=2))
    for spec in sent(admin.created).values():
        assert (spec.replication_factor, spec.configs["min.insync.replicas"]) == (3, "2"), spec.name


async def test_per_topic_configs(admin: type[FakeAdmin]) -> None:
    kafka = KafkaSettings(max_message_bytes=3_000_000, embeddings_retention_ms=3_600_000)
    await ensure_topics("kafka:9092", kafka)
    got = sent(admin.created)
    for spec in got.values():  # a record of max_message_bytes fits every topic
        assert int(spec.configs["max.message.bytes"]) >= 3_000_000 + 61, spec.name
    emb = got["dinostream.embeddings"].configs
    assert emb["cleanup.policy"] == "delete"
    assert emb["retention.ms"] == "3600000"
    assert emb["retention.bytes"] == str(16 * 1024**3)
    assert emb["segment.bytes"] == str(256 * 1024**2)
    assert int(emb["segment.ms"]) <= 3_600_000  # a quiet partition still ages out
    previews = got["dinostream.previews"].configs
    assert (previews["cleanup.policy"], previews["retention.ms"], previews["segment.ms"]) == (
        "delete",
        "3600000",
        "3600000",
    )
    for registry in ("dinostream.streams", "dinostream.stream-health", "dinostream.watchlist"):
        assert got[registry].configs["cleanup.policy"] == "compact", registry
        assert "retention.ms" not in got[registry].configs, registry
    assert got["dinostream.watchlist"].partitions == 1
    assert got["dinostream.streams"].partitions == kafka.partitions


async def test_retention_none_leaves_the_clusters(admin: type[FakeAdmin]) -> None:
    await ensure_topics("kafka:9092", KafkaSettings(embeddings_retention_ms=None, embeddings_retention_bytes=None))
    emb = sent(admin.created)["dinostream.embeddings"].configs
    assert not {"retention.ms", "retention.bytes", "segment.ms"} & emb.keys()


async def test_an_existing_topic_with_a_lower_limit_refuses_to_start(admin: type[FakeAdmin]) -> None:
    kafka = KafkaSettings(max_message_bytes=2_000_000)
    admin.existing = {"dinostream.embeddings": 1_048_588, "dinostream.events": None}
    with pytest.raises(BrokerError) as e:
        await ensure_topics("kafka:9092", kafka)
    msg = str(e.value)
    assert "'dinostream.embeddings'" in msg and "1048588" in msg
    assert "kafka.max_message_bytes = 2000000" in msg
    assert "dinostream.events" not in msg  # no limit reported: nothing to hold against it


async def test_existing_topics_with_room_are_left_alone(admin: type[FakeAdmin]) -> None:
    admin.existing = {"dinostream.embeddings": 1_048_588}  # Kafka's default broker limit
    await ensure_topics("kafka:9092", KafkaSettings())
    assert "dinostream.embeddings" not in sent(admin.created)
    assert len(admin.created) == len(topic_specs(KafkaSettings())) - 1


async def test_the_alert_services_dead_letter_topic(admin: type[FakeAdmin]) -> None:
    kafka = KafkaSettings(replication_factor=3, min_insync_replicas=2)
    alerts = AlertSettings()
    service = AlertService(alerts, "kafka:9092", kafka, sinks={})
    await service._ensure_dead_letter_topic()
    got = sent(admin.created)
    assert got == {alerts.dead_letter_topic: dead_letter_spec(alerts, kafka)}
    spec = got[alerts.dead_letter_topic]
    assert (spec.replication_factor, spec.configs["min.insync.replicas"]) == (3, "2")
    assert spec.configs["max.message.bytes"] == str(topic_message_bytes(kafka))


async def test_the_faust_apps_own_topics(admin: type[FakeAdmin], tmp_path: Path) -> None:
    """Faust's changelog and assignor topics are created by us first, with our settings: Faust
    would create them with replication 1 and no limits."""
    kafka = KafkaSettings(replication_factor=3, min_insync_replicas=2, max_message_bytes=2_000_000)
    app = build_app("kafka:9092", kafka, AnalyticsSettings(app_id="a1"), processors=lambda a: [], datadir=tmp_path)
    specs = {s.name: s for s in faust_topic_specs(app, kafka)}
    changelogs = {t.changelog_topic.get_topic_name() for t in app.tables.values()}
    assert changelogs == {"a1-processor-state-changelog"}
    assert set(specs) == changelogs | {"a1-__assignor-__leader"}
    state = specs["a1-processor-state-changelog"]
    assert state.partitions == kafka.partitions
    assert state.configs["cleanup.policy"] == "compact"
    for spec in specs.values():
        assert spec.replication_factor == 3, spec.name
        assert spec.configs["min.insync.replicas"] == "2", spec.name
        assert spec.configs["max.message.bytes"] == str(topic_message_bytes(kafka)), spec.name
    await app.on_first_start()  # what the app does before Faust declares anything
    assert sent(admin.created) == specs


def test_min_insync_above_replication_is_refused() -> None:
    with pytest.raises(ValueError, match="min_insync_replicas"):
        KafkaSettings(replication_factor=2, min_insync_replicas=3)


def test_the_workers_session_timeout() -> None:
    assert worker_session_timeout_s(KafkaSettings()) == KafkaSettings().session_timeout_s
    kafka = KafkaSettings(bootstrap="kafka:9092", worker_session_timeout_s=45)
    app = build_app("kafka:9092", kafka, AnalyticsSettings(), processors=lambda a: [])
    assert app.conf.broker_session_timeout == 45.0
    assert app.conf.broker_heartbeat_interval == 3.0  # well within a third of it
    fast = build_app("kafka:9092", KafkaSettings(session_timeout_s=10), AnalyticsSettings(), processors=lambda a: [])
    assert (fast.conf.broker_session_timeout, fast.conf.broker_heartbeat_interval) == (10.0, 2.0)

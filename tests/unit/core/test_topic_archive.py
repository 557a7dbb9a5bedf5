"""The archive of compacted topics `up` keeps beside its in-memory broker: latest value per key,
tombstones delete, records go back to their partitions in order (a real broker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition

from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.errors import BrokerError
from dinostream.core.kafka_io import Batch, TopicFollower, topic_spec
from dinostream.core.topic_archive import TopicArchive
from tests.records import unique_kafka

pytestmark = pytest.mark.timeout(60)


def rec(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> ConsumerRecord:
    headers = [("h", b"\x00\x01")] if value else []
    return ConsumerRecord(topic, partition, offset, 0, 0, key, value, None, 0, 0, headers)


def test_the_latest_value_per_key_is_kept_and_tombstones_delete(tmp_path: Path) -> None:
    archive = TopicArchive(tmp_path / "state" / "topics.sqlite3")
    tp0, tp1 = TopicPartition("t", 0), TopicPartition("t", 1)
    archive.apply(
        {
            tp0: [rec("t", 0, 0, b"a", b"1"), rec("t", 0, 1, b"b", b"2"), rec("t", 0, 2, b"a", b"3")],
            tp1: [rec("t", 1, 0, b"c", b"4"), rec("t", 1, 1, None, b"keyless")],
        }
    )
    archive.apply({tp0: [rec("t", 0, 3, b"b", None), rec("t", 0, 4, b"d", b"5"), rec("t", 0, 5, b"d", None)]})
    archive.apply({tp0: [rec("t", 0, 7, b"e", b"7"), rec("t", 0, 6, b"e", None)]})  # in offset order
    rows = list(archive.records("t"))
    assert [(p, k, v) for p, k, v, _ in rows] == [(0, b"a", b"3"), (0, b"e", b"7"), (1, b"c", b"4")]
    assert rows[0][3] == [("h", b"\x00\x01")] and archive.counts() == {"t": 3}
    archive.close()
    reopened = TopicArchive(tmp_path / "state" / "topics.sqlite3")
    assert reopened.counts() == {"t": 3}, "kept in the file"
    reopened.close()


def test_a_corrupt_archive_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "topics.sqlite3"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(BrokerError, match="topics.sqlite3.*move it away"):
        TopicArchive(path).counts()


async def test_restore_writes_the_records_back_to_their_partitions(tmp_path: Path, broker: EmbeddedBroker) -> None:
    kafka = unique_kafka(bootstrap=broker.bootstrap, idempotent=False)
    spec = topic_spec(kafka, kafka.watchlist_topic, 2, compact=True)
    archive = TopicArchive(tmp_path / "topics.sqlite3")
    name = spec.name
    archive.apply(
        {
            TopicPartition(name, 0): [rec(name, 0, 5, b"x", b"1"), rec(name, 0, 9, b"y", b"2")],
            TopicPartition(name, 1): [rec(name, 1, 3, b"z", b"3")],
            TopicPartition(name, 4): [rec(name, 4, 0, b"gone", b"4")],  # a partition the topic does not have
        }
    )
    assert await archive.restore(broker.bootstrap, kafka, [spec]) == 3
    seen: Batch = {}

    def keep(batch: Batch) -> None:
        for tp, messages in batch.items():
            seen.setdefault(tp, []).extend(messages)

    follower = TopicFollower([name], broker.bootstrap, kafka, "test-archive", keep)
    await follower.start()
    await follower.stop()
    got = {(tp.partition, m.key, m.value, tuple(m.headers)) for tp, ms in seen.items() for m in ms}
    h = (("h", b"\x00\x01"),)
    assert got == {(0, b"x", b"1", h), (0, b"y", b"2", h), (1, b"z", b"3", h)}
    assert [m.key for m in seen[TopicPartition(name, 0)]] == [b"x", b"y"], "in their order"
    archive.close()

"""The worker's table on disk (`analytics.table_store = "rocksdb"`, issue 20): a worker restarted on
the same volume finds the processors' saved state there, even where the changelog cannot give it
back (here: a new broker with empty topics). Real brokers, a real Faust app, RocksDB via rocksdict."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from dinostream.analytics.worker import WorkerStats, build_app
from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.kafka_io import ensure_topics, make_producer
from dinostream.core.settings import AnalyticsSettings
from tests.records import shots, unique_kafka
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def test_a_restarted_worker_reads_its_state_from_its_volume(tmp_path: Path, broker: EmbeddedBroker) -> None:
    datadir = tmp_path / "faust"
    settings = AnalyticsSettings(app_id=f"store-{uuid.uuid4().hex[:8]}", snapshot_every_s=1e-6, table_store="rocksdb")
    kafka = unique_kafka(bootstrap=broker.bootstrap, partitions=2, idempotent=False)
    await ensure_topics(broker.bootstrap, kafka)
    stats = WorkerStats()
    app = build_app(broker.bootstrap, kafka, settings, stats=stats, datadir=datadir)
    await app.start()
    producer = make_producer(broker.bootstrap, kafka, embedded=True)
    await producer.start()
    try:
        for r in shots("cam", [6], 1):
            await producer.send_and_wait(kafka.embeddings_topic, r.encode(), key=r.key)
        await wait_for(lambda: stats.snapshots >= 6, 60, "six snapshots of the stream's state")
    finally:
        await producer.stop()
        await app.stop()
    assert sorted(p.name for p in (datadir / "v1" / "tables").glob("processor-state-*.db")) == [
        "processor-state-0.db",
        "processor-state-1.db",
    ], "one RocksDB per partition, under the worker's data dir"

    async with EmbeddedBroker(tmp_path / "second-broker.log") as fresh:  # the changelog is gone
        moved = kafka.model_copy(update={"bootstrap": fresh.bootstrap})
        await ensure_topics(fresh.bootstrap, moved)
        again = build_app(fresh.bootstrap, moved, settings, stats=WorkerStats(), datadir=datadir)
        await again.start()
        try:
            table = again.tables["processor-state"]

            def keys() -> set[str]:
                return {str(k) for k in table.keys()}

            await wait_for(lambda: {"cam/scene_change", "cam/@seq"} <= keys(), 60, "the state read from disk")
            assert table["cam/@seq"] == {"seq": 5}
        finally:
            await again.stop()

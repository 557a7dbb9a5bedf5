"""Compacted topics kept in a file, for a broker that keeps its topics in memory only.

`dinostream up`'s embedded broker (Tansu) has memory storage in this build (its `s3://` storage
needs an object store, and its SQL engines are not compiled in), so every restart began with empty
topics: the watchlist's exemplars and the analytics processors' saved state were lost. The topics
that say how things are now — compacted: only the latest value per key counts — are small, so `up`
keeps them in a SQLite file under the data dir: `TopicArchive.apply` writes what a `TopicFollower`
reads from them as it is written, and `restore` writes it back into the next broker before any node
starts. The data topics (embeddings, events) are not archived: hundreds of KB a frame, and what
they carry is in the index; see `dinostream.service` for what a restart keeps.

    archive = TopicArchive(data_dir / "state" / "topics.sqlite3")
    await archive.restore(bootstrap, kafka, specs)      # creates the topics, writes the records back
    follower = TopicFollower([s.name for s in specs], bootstrap, kafka, "dinostream-archive", archive.apply)
    await follower.start(); ... ; await follower.catch_up(); await follower.stop(); archive.close()

A record is kept per (topic, partition, key) at its latest value; a tombstone (no value) deletes it.
Records go back into the partition they came from (a Faust table's changelog partition is its
source partition), in their order there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from aiokafka.errors import KafkaError

from dinostream.core.errors import BrokerError
from dinostream.core.kafka_io import Batch, TopicSpec, ensure_topic_specs, start_producer
from dinostream.core.settings import KafkaSettings

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    key BLOB NOT NULL,
    offset INTEGER NOT NULL,
    value BLOB NOT NULL,
    headers TEXT NOT NULL,
    PRIMARY KEY (topic, partition, key)
)
"""


class TopicArchive:
    """The latest record per key of some topics, in a SQLite file (`path`, created with its folder).

    Not thread-safe: use it from one event loop. BrokerError when the file cannot be opened (a
    corrupt archive names itself and how to start afresh)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")  # a crash keeps the last committed batch
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise BrokerError(
                f"cannot open the topic archive {self.path}: {e}; move it away to start with empty watchlist and "
                "processor state"
            ) from None
        self.written = 0  # records (and tombstones) applied since opened
        self.restored = 0  # records written back by `restore`

    def apply(self, batch: Batch) -> None:
        """Keep what a consumer read (`getmany`'s batch): the latest value per key, tombstones delete.
        Keyless records cannot be compacted and are not kept."""
        rows = list(_in_offset_order(batch))
        if not rows:
            return
        with self._transaction():
            # In order: a key set then deleted in one batch ends deleted, and the reverse ends set.
            for row in rows:
                if row[4] is None:
                    self._db.execute(
                        "DELETE FROM records WHERE topic = ? AND partition = ? AND key = ?", (row[0], row[1], row[2])
                    )
                else:
                    self._db.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?)", row)
        self.written += len(rows)

    def records(self, topic: str) -> Iterator[tuple[int, bytes, bytes, list[tuple[str, bytes]]]]:
        """(partition, key, value, headers) of a topic's kept records, in partition then offset order."""
        rows = self._db.execute(
            "SELECT partition, key, value, headers FROM records WHERE topic = ? ORDER BY partition, offset", (topic,)
        )
        for partition, key, value, headers in rows:
            yield partition, bytes(key), bytes(value), [(k, bytes.fromhex(v)) for k, v in json.loads(headers)]

    def counts(self) -> dict[str, int]:
        """Records kept per topic."""
        return dict(self._db.execute("SELECT topic, COUNT(*) FROM records GROUP BY topic").fetchall())

    async def restore(self, bootstrap: str, kafka: KafkaSettings, specs: Sequence[TopicSpec]) -> int:
        """Create the topics of `specs` on the broker at `bootstrap` and write the kept records back,
        each into its partition, in order; the number written. A record whose partition the topic no
        longer has (its partition count was lowered) is left out with a warning. BrokerError when the
        broker refuses them."""
        await ensure_topic_specs(bootstrap, kafka, specs, client_id="dinostream-archive")
        todo = [(spec, list(self.records(spec.name))) for spec in specs]
        if not any(rows for _, rows in todo):
            return 0
        producer = await start_producer(bootstrap, kafka, embedded=True)
        written = 0
        try:
            for spec, rows in todo:
                skipped = 0
                for partition, key, value, headers in rows:
                    if partition >= spec.partitions:
                        skipped += 1
                        continue
                    await producer.send(spec.name, value, key=key, partition=partition, headers=headers)
                    written += 1
                if skipped:
                    log.warning(
                        "topic archive: %d records of %s are in partitions the topic no longer has (%d): not restored",
                        skipped,
                        spec.name,
                        spec.partitions,
                    )
            await producer.flush()
        except KafkaError as e:
            raise BrokerError(f"cannot write the archived topics back to Kafka at {bootstrap}: {e}") from None
        finally:
            with contextlib.suppress(Exception):
                await producer.stop()
        self.restored += written
        log.info("topic archive: %d records written back from %s", written, self.path)
        return written

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _in_offset_order(batch: Batch) -> Iterator[tuple[str, int, bytes, int, bytes | None, str]]:
    for tp, messages in batch.items():
        for m in sorted(messages, key=lambda m: m.offset):
            if m.key is None:
                continue
            headers = json.dumps([[k, v.hex()] for k, v in (m.headers or ())])
            yield tp.topic, tp.partition, m.key, m.offset, m.value, headers

"""Index upkeep: retention cutoffs (pure) and `IndexSink.maintain` on a real Qdrant Edge index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import IndexSettings, KafkaSettings
from dinostream.sinks.index_sink import IndexSink, retention_cutoffs
from dinostream.sinks.qdrant_edge_index import QdrantEdgeIndex

DAY = 86_400.0
NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (IndexSettings(), {}),
        (IndexSettings(retention_days=7), {None: NOW - 7 * DAY}),
        (
            IndexSettings(retention_days=7, retention_per_stream={"cam1": 30, "cam2": None}),
            {"cam1": NOW - 30 * DAY, "cam3": NOW - 7 * DAY},  # cam2 is kept forever
        ),
        (IndexSettings(retention_per_stream={"cam1": 1}), {"cam1": NOW - DAY}),
    ],
    ids=["keep-all", "one-for-all", "overrides", "only-an-override"],
)
def test_retention_cutoffs(settings: IndexSettings, expected: dict[str | None, float]) -> None:
    assert retention_cutoffs(settings, ["cam1", "cam2", "cam3"], NOW) == expected


def test_per_stream_retention_must_name_valid_streams_and_positive_days() -> None:
    with pytest.raises(ValueError, match="invalid stream id"):
        IndexSettings(retention_per_stream={"bad id!": 3})
    with pytest.raises(ValueError, match="cam1"):
        IndexSettings(retention_per_stream={"cam1": 0})


def record(stream: str, seq: int, age_days: float) -> FrameEmbedding:
    v = np.full(8, seq + 1, dtype=np.float16)
    return FrameEmbedding(stream, seq, seq * 1.0, NOW - age_days * DAY, "m", True, v, v, v.reshape(1, 1, -1))


async def test_maintain_deletes_what_is_past_each_streams_retention(tmp_path: Path) -> None:
    index = QdrantEdgeIndex(tmp_path, 8)
    try:
        index.upsert_frames([record(s, i, age) for s in ("cam1", "cam2") for i, age in enumerate((40, 10, 1))])
        settings = IndexSettings(retention_days=7, retention_per_stream={"cam2": 30})
        sink = IndexSink(index, "127.0.0.1:1", KafkaSettings(), settings, group="g", clock=lambda: NOW)  # never started

        sink.maintain()

        assert [f.seq for f in index.frames_between("cam1", None, None, 10)] == [2]
        assert [f.seq for f in index.frames_between("cam2", None, None, 10)] == [1, 2]
        assert sink.stats.maintenance_runs == 1
    finally:
        index.close()

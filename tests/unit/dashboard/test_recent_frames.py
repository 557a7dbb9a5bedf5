"""RecentFrames' counters: what /metrics and health say of the frames a click can show."""

from __future__ import annotations

import asyncio

import numpy as np

from dinostream.core.records import FrameEmbedding, FramePreview
from dinostream.dashboard.recent_frames import RecentFrames


def _record(stream: str, seq: int) -> FrameEmbedding:
    v = np.ones(8, np.float32)
    return FrameEmbedding(stream, seq, seq / 2, 0.0, "m", True, v, v, np.ones((2, 2, 8), np.float32), b"")


def test_stats_count_kept_evicted_read_back_and_gone() -> None:
    kept = RecentFrames(per_stream=2)
    for seq in range(3):
        kept.add(_record("a", seq).encode())
    assert kept.stats() == {"streams": 1, "frames": 2, "bytes": kept.nbytes, "evicted": 1, "read_back": 0, "gone": 0}
    assert kept.nbytes > 0

    topic = {(0, 7): _record("b", 5).encode()}  # what Kafka still holds; offset 3 is past retention

    async def read(partition: int, offset: int) -> bytes | None:
        return topic.get((partition, offset))

    noted = RecentFrames(per_stream=4, read=read)
    for seq, offset in ((4, 3), (5, 7)):
        noted.note(FramePreview("b", seq, seq / 2, 0.0, "m", True, partition=0, offset=offset))
    assert asyncio.run(noted.get("b", 5)) is not None
    assert asyncio.run(noted.get("b", 4)) is None
    assert noted.stats() == {"streams": 1, "frames": 2, "bytes": 0, "evicted": 0, "read_back": 1, "gone": 1}

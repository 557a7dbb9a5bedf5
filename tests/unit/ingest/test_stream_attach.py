"""A source that arrives by itself (a WHIP publisher's track) is a stream like any other:
`StreamManager.attach` runs it under its own supervisor, numbers its frames from a new session's
first id, lists it with its health, and keeps configured ids for the streams it opens itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dinostream.core.errors import SourceError
from dinostream.core.settings import IngestSettings
from dinostream.ingest.source import Frame, Source, session_first_seq
from dinostream.ingest.stream_manager import StreamManager
from dinostream.ingest.stream_registry import DuplicateStreamError, StreamConfig
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(30)


class PushedSource(Source):
    """Frames handed in from outside, like a WebRTC track; `end()` or `fail()` stops it."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.queue: asyncio.Queue[Frame | BaseException | None] = asyncio.Queue()
        self.size: tuple[int, int] | None = None
        self.closed = False

    def push(self, seq: int, pts: float) -> None:
        self.size = (4, 4)
        self.stats.decoded += 1
        self.queue.put_nowait(Frame(self.stream, seq, pts, 1000.0 + pts, np.zeros((4, 4, 3), np.uint8)))

    async def frames(self) -> AsyncIterator[Frame]:
        while (item := await self.queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    async def close(self) -> None:
        self.closed = True
        self.queue.put_nowait(None)


class CollectingStage:
    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def check_resolution(self, resolution: int | None) -> None:
        return None

    async def resize_target(self, spec: Any, resolution: int | None = None) -> tuple[int, int]:
        return (224, 224)

    async def put(self, frame: Frame) -> None:
        self.frames.append(frame)


async def test_an_attached_source_is_supervised_numbered_and_listed() -> None:
    stage = CollectingStage()
    manager = StreamManager(stage, IngestSettings(sample_fps=5))
    source = PushedSource("lobby")
    before = session_first_seq()
    run = asyncio.create_task(manager.attach("lobby", source, url="whip:lobby", size=lambda: source.size))
    for i in range(3):
        source.push(100 + i, 0.2 * i)  # the source's own numbers are not the stream's
    await wait_for(lambda: len(stage.frames) == 3, 10, "three frames at the stage")
    status = manager.get("lobby")
    assert status is not None and status.health["state"] == "live" and status.input_size == (4, 4)
    assert status.config.url == "whip:lobby" and status.persistent is False
    assert not manager.opens("lobby")  # a new publisher may replace it; a configured stream may not
    seqs = [f.seq for f in stage.frames]
    assert seqs[0] >= before and seqs == list(range(seqs[0], seqs[0] + 3))

    await source.close()  # the publisher left
    await asyncio.wait_for(run, 10)
    status = manager.get("lobby")
    assert status is not None and status.health["state"] == "ended" and status.health["frames_out"] == 3

    again = PushedSource("lobby")  # published again: replaces the ended stream
    run = asyncio.create_task(manager.attach("lobby", again, url="whip:lobby"))
    again.queue.put_nowait(SourceError("cannot read WebRTC stream lobby: decoder error"))
    await asyncio.wait_for(run, 10)
    health = manager.healths()["lobby"]
    assert health["failed"] is True and "decoder error" in health["last_error"]  # reported like a file's failure
    await manager.remove("lobby")
    assert manager.list() == []
    await manager.stop()


async def test_removing_an_attached_stream_closes_its_source() -> None:
    manager = StreamManager(CollectingStage(), IngestSettings())
    source = PushedSource("door")
    run = asyncio.create_task(manager.attach("door", source, url="whip:door"))
    await wait_for(lambda: manager.get("door") is not None, 10, "the stream to be listed")
    await manager.remove("door")
    await asyncio.wait_for(run, 10)
    assert source.closed and manager.get("door") is None
    await manager.stop()


async def test_an_id_the_manager_opens_itself_cannot_be_attached(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not opened: the supervisor fails it in the background")
    manager = StreamManager(CollectingStage(), IngestSettings(media_roots=[tmp_path]))
    await manager.add(StreamConfig(id="cam1", url=str(video)), trusted=True, persist=False)
    assert manager.opens("cam1")
    with pytest.raises(DuplicateStreamError, match="cam1"):
        await manager.attach("cam1", PushedSource("cam1"), url="whip:cam1")
    await manager.stop()

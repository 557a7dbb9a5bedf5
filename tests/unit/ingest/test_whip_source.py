"""WhipSource fed by real aiortc video tracks: sampling by media time, resizing, drop counting, ending."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import numpy as np
import pytest
from aiortc import VideoStreamTrack
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from av import VideoFrame

from dinostream.core.errors import SourceError
from dinostream.core.settings import IngestSettings
from dinostream.ingest.source import Frame
from dinostream.ingest.whip_source import MediaClock, WhipSource

TIME_BASE = Fraction(1, 90000)  # the RTP video clock aiortc stamps received frames with


def grey(width: int, height: int, level: int) -> VideoFrame:
    """A flat frame whose grey level survives resizing and YUV<->RGB conversion (within a few steps)."""
    image = np.full((height, width, 3), level, np.uint8)
    return VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")


class SyntheticTrack(VideoStreamTrack):
    """Frames i = 0..n-1 at `fps` media time, grey level 4*i, as fast as they are read; then the track ends.

    `sizes` gives a frame's (width, height) by index; `times` overrides its media time (seconds),
    `levels` its grey level.
    With `hold`, the track stays live after its frames until stopped.
    """

    def __init__(
        self,
        n: int,
        fps: float = 30.0,
        size: tuple[int, int] = (160, 120),
        *,
        times: list[float] | None = None,
        resize_at: int | None = None,
        hold: bool = False,
        fail_at: int | None = None,
        levels: list[int] | None = None,
    ) -> None:
        super().__init__()
        self.n, self.fps, self.size, self.levels = n, fps, size, levels
        self.times, self.resize_at, self.hold, self.fail_at = times, resize_at, hold, fail_at
        self.sent = 0
        self.drained = asyncio.Event()

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        i = self.sent
        if i == self.fail_at:
            raise RuntimeError("camera unplugged")
        if i >= self.n:
            self.drained.set()
            if self.hold:
                await asyncio.Event().wait()  # until the reader is cancelled
            self.stop()
            raise MediaStreamError
        self.sent += 1
        width, height = self.size
        if self.resize_at is not None and i >= self.resize_at:
            width, height = width // 2, height // 2
        frame = grey(width, height, self.levels[i] if self.levels is not None else (4 * i) % 256)
        t = self.times[i] if self.times is not None else i / self.fps
        frame.pts = round(t / TIME_BASE)
        frame.time_base = TIME_BASE
        await asyncio.sleep(0)  # let the consumer run, as a network track does
        return frame


async def collect(source: WhipSource) -> list[Frame]:
    return [f async for f in source.frames()]


def level(frame: Frame) -> int:
    return int(round(float(frame.image.mean())))


async def test_samples_by_media_time_and_resizes_with_the_scaler() -> None:
    track = SyntheticTrack(60, fps=30)  # 2 s of media
    source = WhipSource("cam1", track, IngestSettings(sample_fps=2.0), (32, 24))
    frames = await asyncio.wait_for(collect(source), 20)
    assert [f.pts for f in frames] == pytest.approx([0.0, 0.5, 1.0, 1.5])
    assert [f.seq for f in frames] == [0, 1, 2, 3]
    assert all(f.stream == "cam1" for f in frames)
    # The frames taken are the 0th, 15th, 30th and 45th: their grey levels tell.
    assert [level(f) for f in frames] == pytest.approx([0, 60, 120, 180], abs=3)
    for f in frames:
        assert f.image.shape == (24, 32, 3) and f.image.dtype == np.uint8 and f.image.flags.c_contiguous
    assert [f.ts for f in frames] == sorted(f.ts for f in frames)
    assert (source.stats.decoded, source.stats.sampled, source.stats.dropped) == (60, 4, 0)
    assert source.source_size == (160, 120) and source.size == (32, 24)
    assert source.stats.error is None


async def test_sampled_frames_carry_the_jump_seen_among_the_received_ones() -> None:
    levels = [40 + (i % 2) for i in range(22)] + [200 + (i % 2) for i in range(23)]  # a cut at frame 22
    track = SyntheticTrack(45, fps=30, levels=levels)
    source = WhipSource("cam1", track, IngestSettings(sample_fps=2.0), (32, 24))
    frames = await asyncio.wait_for(collect(source), 20)
    assert [f.pts for f in frames] == pytest.approx([0.0, 0.5, 1.0])
    assert frames[0].jump is None  # nothing before the first frame
    quiet, cut = frames[1].jump, frames[2].jump
    assert quiet is not None and not quiet.dominates(2.0)
    assert cut is not None and cut.dominates(2.0) and cut.t == pytest.approx(21.5 / 30)
    off = WhipSource("cam2", SyntheticTrack(45, fps=30, levels=levels), IngestSettings(cut_timing=False), (32, 24))
    assert [f.jump for f in await asyncio.wait_for(collect(off), 20)] == [None] * 3


async def test_size_is_chosen_from_the_first_frame_and_kept() -> None:
    asked: list[tuple[str, tuple[int, int]]] = []

    def size_for(stream: str, wh: tuple[int, int]) -> tuple[int, int]:
        asked.append((stream, wh))
        return (wh[0] // 4, wh[1] // 4)

    track = SyntheticTrack(20, fps=10, size=(320, 240), resize_at=10)  # the publisher halves its resolution
    source = WhipSource("cam2", track, IngestSettings(sample_fps=10.0), size_for)
    frames = await asyncio.wait_for(collect(source), 20)
    assert asked == [("cam2", (320, 240))]
    assert len(frames) == 20
    assert {f.image.shape for f in frames} == {(60, 80, 3)}


async def test_a_slow_consumer_loses_the_oldest_frames_and_they_are_counted() -> None:
    track = SyntheticTrack(40, fps=10)
    source = WhipSource("cam3", track, IngestSettings(sample_fps=10.0, queue_size=3), (16, 16))
    source.start()  # reading starts before anyone iterates, as a WHIP session does
    await asyncio.wait_for(source.ended.wait(), 20)
    frames = await asyncio.wait_for(collect(source), 5)
    assert [f.seq for f in frames] == [37, 38, 39]  # the newest survive
    assert [level(f) for f in frames] == pytest.approx([148, 152, 156], abs=3)
    assert (source.stats.decoded, source.stats.sampled, source.stats.dropped) == (40, 40, 37)


async def test_media_time_going_backwards_stays_monotonic() -> None:
    times = [0.0, 0.5, 1.0, 1.5, 0.0, 0.5, 1.0]  # the publisher restarted its encoder
    track = SyntheticTrack(len(times), times=times)
    source = WhipSource("cam4", track, IngestSettings(sample_fps=2.0), (16, 16))
    frames = await asyncio.wait_for(collect(source), 20)
    # After the jump the clock goes on one frame (1/30 s) later and the 2 fps grid goes on with it.
    assert [f.pts for f in frames] == pytest.approx([0.0, 0.5, 1.0, 1.5, 1.5 + 1 / 30 + 0.5, 1.5 + 1 / 30 + 1.0])
    assert [f.seq for f in frames] == [0, 1, 2, 3, 4, 5]


def test_media_clock_is_monotonic_across_restarts() -> None:
    clock = MediaClock(frame_dt=0.1)
    assert [clock.time(t) for t in (0.0, 1.0, 2.0, 0.5, 1.5, 1.5)] == pytest.approx([0.0, 1.0, 2.0, 2.1, 3.1, 3.2])


async def test_close_ends_iteration_while_the_track_is_live() -> None:
    track = SyntheticTrack(5, fps=10, hold=True)
    source = WhipSource("cam5", track, IngestSettings(sample_fps=10.0), (16, 16))
    got: list[Frame] = []

    async def consume() -> None:
        async for f in source.frames():
            got.append(f)

    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(track.drained.wait(), 20)
    assert not consumer.done()
    await source.close()
    await asyncio.wait_for(consumer, 5)  # ends cleanly, no exception
    assert source.ended.is_set() and not source.running
    assert 1 <= len(got) <= 5


async def test_a_failing_track_raises_source_error_naming_the_stream() -> None:
    track = SyntheticTrack(10, fps=10, fail_at=3)
    source = WhipSource("cam6", track, IngestSettings(sample_fps=10.0), (16, 16))
    got: list[Frame] = []
    with pytest.raises(SourceError, match=r"cannot read WebRTC stream cam6: RuntimeError: camera unplugged"):
        async for f in source.frames():
            got.append(f)
    assert [f.seq for f in got] == [0, 1, 2]
    assert source.stats.error is not None and "camera unplugged" in source.stats.error


async def test_iterating_twice_is_refused() -> None:
    source = WhipSource("cam7", SyntheticTrack(2), IngestSettings(), (16, 16))
    await asyncio.wait_for(collect(source), 20)
    with pytest.raises(RuntimeError, match="only once"):
        await collect(source)


@pytest.mark.parametrize("size", [(0, 10), (10, -1), (3,), "big"], ids=["zero-width", "negative", "one", "text"])
async def test_bad_sizes_are_refused(size: object) -> None:
    with pytest.raises(ValueError, match="size must be"):
        WhipSource("cam8", SyntheticTrack(1), IngestSettings(), size)  # type: ignore[arg-type]


async def test_a_size_callable_returning_nonsense_fails_the_source() -> None:
    source = WhipSource("cam9", SyntheticTrack(3), IngestSettings(), lambda s, wh: (0, 0))
    with pytest.raises(SourceError, match="size must be a positive"):
        await asyncio.wait_for(collect(source), 20)


async def test_audio_tracks_are_refused() -> None:
    with pytest.raises(ValueError, match="WhipSource reads video; got a track of kind .audio."):
        WhipSource("cam10", AudioStreamTrack(), IngestSettings(), (16, 16))

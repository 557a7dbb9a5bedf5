"""Where the picture jumped between samples: the tracker on its own, and AvSource's frames."""

from pathlib import Path

import av
import numpy as np
import pytest

from dinostream.core.settings import IngestSettings
from dinostream.ingest.av_source import AvSource
from dinostream.ingest.jumps import POINTS, JumpTracker, luma_points, sample_points

FPS = 25
CUT_FRAME = 37  # the first frame of the second shot: 1.48 s


def _noisy(rng: np.random.Generator, level: int) -> np.ndarray:
    return np.clip(level + rng.normal(0, 2, POINTS), 0, 255).astype(np.float32)


def test_a_cut_between_samples_is_the_dominant_step_at_its_time():
    rng = np.random.default_rng(0)
    tracker = JumpTracker()
    tracker.see(_noisy(rng, 60), 0.0)
    assert tracker.take() is None  # the stream's first frame: no step before it
    for k in range(1, 13):  # frames 1..12, the cut between frames 7 and 8
        tracker.see(_noisy(rng, 60 if k < 8 else 180), k / FPS)
    jump = tracker.take()
    assert jump is not None
    assert jump.t == pytest.approx(7.5 / FPS)
    assert jump.size == pytest.approx(120, abs=2)
    assert jump.runner_up < 5  # sensor noise
    assert jump.dominates(2.0)
    # The next span starts at the sampled frame: a still run has no dominant step.
    for k in range(13, 25):
        tracker.see(_noisy(rng, 180), k / FPS)
    quiet = tracker.take()
    assert quiet is not None and not quiet.dominates(2.0)


def test_steady_change_has_no_dominant_step():
    tracker = JumpTracker()
    tracker.see(np.zeros(POINTS, np.float32), 0.0)
    tracker.take()
    for k in range(1, 13):  # a fade: the same step every frame
        tracker.see(np.full(POINTS, 10.0 * k, np.float32), k / FPS)
    jump = tracker.take()
    assert jump is not None
    assert jump.size == pytest.approx(10) and jump.runner_up == pytest.approx(10)
    assert not jump.dominates(2.0)


@pytest.mark.parametrize("break_with", ["no luma", "size change", "time back"])
def test_a_span_not_seen_whole_gives_no_jump(break_with):
    tracker = JumpTracker()
    tracker.see(np.zeros(POINTS, np.float32), 0.0)
    tracker.take()
    tracker.see(np.zeros(POINTS, np.float32), 0.04)
    if break_with == "no luma":
        tracker.see(None, 0.08)
    elif break_with == "size change":
        tracker.see(np.zeros((18, 32), np.float32), 0.08)
    else:
        tracker.see(np.zeros(POINTS, np.float32), 0.02)
    tracker.see(np.full(POINTS, 200, np.float32), 0.12)
    assert tracker.take() is None
    tracker.see(np.full(POINTS, 100, np.float32), 0.16)  # the next span is whole again
    tracker.see(np.full(POINTS, 101, np.float32), 0.20)
    jump = tracker.take()
    assert jump is not None and jump.t == pytest.approx(0.14) and jump.dominates(2.0)


def test_luma_points_read_the_luma_plane_of_any_size():
    rgb = np.zeros((121, 203, 3), np.uint8)
    rgb[:, 100:] = 255  # the right half white
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    points = luma_points(frame)
    assert points is not None and points.shape == POINTS and points.dtype == np.float32
    cols = points.mean(axis=0)
    assert cols[: POINTS[1] // 2 - 1].max() < 30 and cols[POINTS[1] // 2 + 1 :].min() > 220
    assert luma_points(av.VideoFrame.from_ndarray(rgb, format="rgb24")) is None  # no luma plane
    assert luma_points(rgb) is None  # not a decoded frame (a WebRTC track could hand on anything)
    assert sample_points(np.zeros((4, 5), np.uint8)).shape == (4, 5)  # smaller than the grid: every pixel


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory) -> Path:
    """4 s at 25 fps, one keyframe (GOP longer than the file), a hard cut at frame CUT_FRAME."""
    path = tmp_path_factory.mktemp("cut") / "cut.mp4"
    rng = np.random.default_rng(5)
    a = rng.integers(30, 90, (120, 160, 3), dtype=np.uint8)
    b = rng.integers(150, 230, (120, 160, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options = {"g": "250", "sc_threshold": "0", "preset": "ultrafast", "bf": "0"}
        for i in range(4 * FPS):
            img = np.roll(a if i < CUT_FRAME else b, i // 5, axis=1)  # a slow pan
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


async def test_sampled_frames_carry_the_cut_seen_between_them(cut_video):
    settings = IngestSettings(sample_fps=2.0, queue_size=8)
    source = AvSource(str(cut_video), "cam", settings, (32, 32))
    frames = [f async for f in source.frames()]
    assert source.stats.decoded == 4 * FPS  # one GOP: every frame decoded
    assert [round(f.pts, 2) for f in frames] == [0.0, 0.52, 1.0, 1.52, 2.0, 2.52, 3.0, 3.52]
    assert frames[0].jump is None
    after = frames[3]  # the first sample of the new shot
    assert after.jump is not None and after.jump.dominates(2.0)
    assert after.jump.t == pytest.approx((CUT_FRAME - 0.5) / FPS)
    others = [f.jump for f in frames[1:] if f is not after]
    assert all(j is not None and not j.dominates(2.0) for j in others)  # a slow pan and noise


async def test_cut_timing_can_be_turned_off(cut_video):
    source = AvSource(str(cut_video), "cam", IngestSettings(sample_fps=2.0, queue_size=8, cut_timing=False), (32, 32))
    frames = [f async for f in source.frames()]
    assert len(frames) == 8 and all(f.jump is None for f in frames)


async def test_keyframe_sampling_sees_no_frames_in_between(tmp_path):
    """Keyframes only: the only step is from one sample to the next, which says nothing the two
    samples do not: no jump (a single step would always look like a cut, a dissolve's too)."""
    path = tmp_path / "gop.mp4"
    rng = np.random.default_rng(2)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options = {"g": str(FPS), "keyint_min": str(FPS), "sc_threshold": "0", "preset": "ultrafast"}
        for _ in range(4 * FPS):
            img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    source = AvSource(str(path), "cam", IngestSettings(sample_fps=1.0, queue_size=8, decode="keyframes"), (32, 32))
    frames = [f async for f in source.frames()]
    assert source.stats.decoded == len(frames) == 4
    assert [f.jump for f in frames] == [None] * 4


def test_one_step_spans_give_no_jump():
    tracker = JumpTracker()
    for k in range(4):  # every frame sampled
        tracker.see(np.full(POINTS, 50.0 * k, np.float32), k / FPS)
        assert tracker.take() is None

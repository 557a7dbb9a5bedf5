"""Camera-day families: the truth matches the pixels, routine agents keep out of the unused area,
the schedule is what the bench relies on, generation is deterministic, and the video decodes."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from generators.anomaly_families import (
    ANOMALY_KINDS,
    BOXED_KINDS,
    DEVELOPMENT_FAMILY,
    FAMILY_NAMES,
    HELD_OUT_FAMILY,
    FamilyVideo,
    VideoTruth,
)

pytestmark = pytest.mark.timeout(120)

SMALL = {"size": (320, 180), "duration_s": 60.0, "warmup_s": 10.0}


def _mid(video: FamilyVideo, kind: str) -> int:
    """A frame in the middle of the video's first anomaly of `kind`."""
    ev = next(e for e in video.events if e.kind == kind)
    return int((ev.start + ev.end) / 2 * video.fps)


def _video_with(family: str, kind: str) -> FamilyVideo:
    for seed in range(20):
        video = FamilyVideo(family, seed, **SMALL)  # type: ignore[arg-type]
        if any(e.kind == kind for e in video.events):
            return video
    raise AssertionError(f"no {family} video of 20 has a {kind}")


def test_development_and_held_out_families_differ() -> None:
    assert DEVELOPMENT_FAMILY != HELD_OUT_FAMILY
    assert {DEVELOPMENT_FAMILY, HELD_OUT_FAMILY} <= set(FAMILY_NAMES)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_same_seed_same_frames_and_schedule(family: str) -> None:
    a, b = FamilyVideo(family, 5, **SMALL), FamilyVideo(family, 5, **SMALL)  # type: ignore[arg-type]
    assert [(e.kind, e.start, e.end) for e in a.events] == [(e.kind, e.start, e.end) for e in b.events]
    for i in (0, a.frames // 2, a.frames - 1):
        fa, ta = a.render(i)
        fb, tb = b.render(i)
        assert np.array_equal(fa, fb) and ta == tb
    other = FamilyVideo(family, 6, **SMALL)  # type: ignore[arg-type]
    assert not np.array_equal(a.render(0)[0], other.render(0)[0])


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_schedule_after_warm_up_apart_and_inside_the_video(family: str) -> None:
    kinds = set()
    for seed in range(4):
        video = FamilyVideo(family, seed)
        evs = video.events
        assert evs, "every default-length video has anomalies"
        assert evs[0].start >= video.warmup_s + 4
        assert all(b.start - a.end >= 6 for a, b in zip(evs, evs[1:], strict=False))
        assert evs[-1].end <= video.duration_s - 3
        kinds |= {e.kind for e in evs}
    assert kinds == set(ANOMALY_KINDS)


@pytest.mark.parametrize("family", FAMILY_NAMES)
@pytest.mark.parametrize("kind", BOXED_KINDS)
def test_a_boxed_anomaly_changes_the_pixels_inside_its_box(family: str, kind: str) -> None:
    video = _video_with(family, kind)
    normal = FamilyVideo(family, video.seed, anomalies=False, **SMALL)  # type: ignore[arg-type]
    i = _mid(video, kind)
    img, truth = video.render(i)
    ref, ref_truth = normal.render(i)
    assert truth.anomalous and truth.kind == kind and not ref_truth.anomalous
    assert truth.box is not None
    diff = np.abs(img.astype(np.float32) - ref.astype(np.float32)).max(axis=2)
    h, w = diff.shape
    x0, y0, x1, y1 = truth.box
    inside = np.zeros_like(diff, dtype=bool)
    inside[int(y0 * h) : int(np.ceil(y1 * h)), int(x0 * w) : int(np.ceil(x1 * w))] = True
    assert (diff[inside] > 40).mean() > 0.2, "the thing is drawn inside its box"
    assert (diff[~inside] > 40).mean() < 0.002, "and nothing else changed"


@pytest.mark.parametrize("family", FAMILY_NAMES)
@pytest.mark.parametrize("kind", ["lens_covered", "camera_turned"])
def test_a_whole_view_anomaly_changes_much_of_the_view(family: str, kind: str) -> None:
    video = _video_with(family, kind)
    normal = FamilyVideo(family, video.seed, anomalies=False, **SMALL)  # type: ignore[arg-type]
    i = _mid(video, kind)
    img, truth = video.render(i)
    assert truth.anomalous and truth.kind == kind and truth.box is None
    diff = np.abs(img.astype(np.float32) - normal.render(i)[0].astype(np.float32)).max(axis=2)
    assert (diff > 40).mean() > 0.15


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_routine_agents_keep_out_of_the_unused_area(family: str) -> None:
    for seed in range(3):
        video = FamilyVideo(family, seed, **SMALL)  # type: ignore[arg-type]
        x0, x1 = video.place.unused_x
        for t in np.arange(0, video.duration_s, 0.25):
            for agent in video.agents:
                x, y, _, _ = agent.at(float(t))
                if x < -1e5:  # a car off screen
                    continue
                half = agent.scale(y) * 0.25  # half a person's width (sprites are 40 x 100)
                if agent.loop:  # cars drive on the road, above the unused lawn
                    assert y < video.place.unused_y[0]
                    continue
                assert x + half < x0 or x - half > x1, f"seed {seed}: an agent at x={x:.0f} in the unused strip"


def test_a_figure_in_the_unused_area_is_anomalous_while_in_view() -> None:
    video = _video_with(HELD_OUT_FAMILY, "figure_unused_area")
    ev = next(e for e in video.events if e.kind == "figure_unused_area")
    truths = [video.render(i)[1] for i in range(int(ev.start * video.fps) - 2, int(ev.end * video.fps) + 3)]
    flagged = [t for t in truths if t.anomalous]
    assert flagged and all(t.kind == "figure_unused_area" and t.box is not None for t in flagged)
    x0, x1 = video.place.unused_x
    w = video.width
    for t in flagged:
        assert t.box is not None
        centre = (t.box[0] + t.box[2]) / 2 * w
        assert x0 - 0.05 * w <= centre <= x1 + 0.05 * w
    assert not truths[0].anomalous and not truths[-1].anomalous


def test_video_decodes_frame_for_frame_and_truth_survives_json(tmp_path: Path) -> None:
    video = FamilyVideo(DEVELOPMENT_FAMILY, 1, size=(256, 144), duration_s=30.0, warmup_s=8.0)
    truth = video.write_video(tmp_path / "v.mp4")
    with av.open(str(tmp_path / "v.mp4")) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == video.frames == len(truth.frames)
    assert (frames[0].width, frames[0].height) == (256, 144)
    again = VideoTruth.from_dict(json.loads(json.dumps(truth.to_dict())))
    assert again == truth
    for a in truth.anomalies:
        inside = [f for f in truth.frames if a.start <= f.t < a.end]
        assert inside and all(f.anomalous and f.segment == a.segment for f in inside)
        assert truth.at(a.start).segment == a.segment and truth.at(a.end).segment != a.segment
    assert truth.at(-1.0) == truth.frames[0] and truth.at(1e6) == truth.frames[-1]

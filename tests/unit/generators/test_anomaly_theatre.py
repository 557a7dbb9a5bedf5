"""The `theatre` family: the truth matches the pixels, the schedule is what the bench relies on,
normal nuisances stay normal, the routine keeps out of the unused areas, generation is deterministic
and the video decodes."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import av
import numpy as np
import pytest

from generators.anomaly_families import ANOMALY_KINDS, BOXED_KINDS, VideoTruth
from generators.anomaly_theatre import BOXED, KINDS, THEATRE, TheatreVideo

pytestmark = pytest.mark.timeout(60)

SMALL = {"size": (320, 180), "duration_s": 60.0, "warmup_s": 10.0}
SMALL_DAY = {"size": (320, 180)}  # the bench's two minutes and 20 s warm-up, drawn small


@cache
def _small(seed: int, anomalies: bool = True) -> TheatreVideo:
    return TheatreVideo(seed, anomalies=anomalies, **SMALL)  # type: ignore[arg-type]


@cache
def _day(seed: int) -> TheatreVideo:
    return TheatreVideo(seed, **SMALL_DAY)  # type: ignore[arg-type]


def _video_with(kind: str) -> TheatreVideo:
    for seed in range(20):
        video = _small(seed)
        if any(e.kind == kind for e in video.events):
            return video
    raise AssertionError(f"no theatre video of 20 has a {kind}")


def _frames_of(video: TheatreVideo, kind: str) -> list[int]:
    """The first, middle and last frames of the video's first anomaly of `kind`."""
    ev = next(e for e in video.events if e.kind == kind)
    return [ev.first, (ev.first + ev.stop) // 2, ev.stop - 1]


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.float32) - b.astype(np.float32)).max(axis=2)


def test_kinds_are_the_ones_the_bench_scores() -> None:
    assert KINDS == ANOMALY_KINDS and BOXED == BOXED_KINDS


def test_same_seed_same_frames_and_truth() -> None:
    a, b = _small(5), TheatreVideo(5, **SMALL)  # type: ignore[arg-type]
    assert [(e.kind, e.name, e.first, e.stop) for e in a.events] == [
        (e.kind, e.name, e.first, e.stop) for e in b.events
    ]
    assert a.nuisances == b.nuisances
    for i in (0, a.frames // 2, a.frames - 1):
        fa, ta = a.render(i)
        fb, tb = b.render(i)
        assert np.array_equal(fa, fb) and ta == tb
    other = _small(6)
    assert not np.array_equal(a.render(0)[0], other.render(0)[0])
    assert [(e.kind, e.first) for e in a.events] != [(e.kind, e.first) for e in other.events]


def test_schedule_after_warm_up_one_at_a_time_with_normal_time_between() -> None:
    kinds = set()
    for seed in range(6):
        video = _day(seed)
        evs = video.events
        assert 3 <= len(evs) <= 4, f"seed {seed}: {len(evs)} anomalies"
        assert evs[0].start >= video.warmup_s + 3
        assert all(b.start - a.end >= 8 for a, b in zip(evs, evs[1:], strict=False)), "8 s of normal between"
        assert evs[-1].end <= video.duration_s - 3
        assert len({e.kind for e in evs}) == len(evs), "a video shows each kind at most once"
        kinds |= {e.kind for e in evs}
    assert kinds == set(KINDS)


def test_every_frame_truth_agrees_with_the_anomaly_list() -> None:
    for seed in (0, 1):
        video = _small(seed)
        truth = video.truth()
        assert len(truth.frames) == video.frames and truth.family == THEATRE and truth.fps == video.fps
        for f in truth.frames:
            inside = [a for a in truth.anomalies if a.start <= f.t < a.end]
            assert len(inside) <= 1
            assert f.anomalous == bool(inside), f"seed {seed} frame {f.index}"
            if f.t < truth.warmup_s:
                assert not f.anomalous, "nothing anomalous in the warm-up"
            if not inside:
                assert (f.kind, f.name, f.segment, f.box) == ("normal", "", -1, None)
                continue
            a = inside[0]
            assert (f.kind, f.name, f.segment) == (a.kind, a.name, a.segment)
            assert truth.at(f.t) == f
            if a.kind in BOXED_KINDS:
                assert f.box is not None, f"seed {seed} frame {f.index}: a {a.kind} without its box"
                x0, y0, x1, y1 = f.box
                assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
            else:
                assert f.box is None
        assert VideoTruth.from_dict(json.loads(json.dumps(truth.to_dict()))) == truth


@pytest.mark.parametrize("kind", BOXED)
def test_a_boxed_anomaly_changes_the_pixels_inside_its_box_and_nowhere_else(kind: str) -> None:
    video = _video_with(kind)
    normal = _small(video.seed, anomalies=False)
    h, w = video.height, video.width
    for i in _frames_of(video, kind):
        img, truth = video.render(i)
        ref, ref_truth = normal.render(i)
        assert truth.anomalous and truth.kind == kind and not ref_truth.anomalous
        assert truth.box is not None
        changed = _diff(img, ref) > 20
        x0, y0, x1, y1 = truth.box
        inside = np.zeros((h, w), dtype=bool)
        inside[int(y0 * h) : int(np.ceil(y1 * h)), int(x0 * w) : int(np.ceil(x1 * w))] = True
        assert changed[inside].mean() > 0.12 and changed[inside].sum() >= 6, "the thing is drawn inside its box"
        near = np.zeros_like(inside)  # the box grown by 2 px: the shake's bilinear shift spreads an edge
        near[max(int(y0 * h) - 2, 0) : int(np.ceil(y1 * h)) + 2, max(int(x0 * w) - 2, 0) : int(np.ceil(x1 * w)) + 2] = (
            True
        )
        assert not changed[~near].any(), "and nothing else changed"


def test_a_covered_lens_hides_a_quarter_to_three_fifths_of_the_view() -> None:
    video = _video_with("lens_covered")
    normal = _small(video.seed, anomalies=False)
    ev = next(e for e in video.events if e.kind == "lens_covered")
    assert ev.cover is not None
    m = (ev.cover.shape[0] - video.height) // 2
    share = float((ev.cover[m : m + video.height, m : m + video.width] > 0.5).mean())
    assert 0.2 <= share <= 0.65
    for i in _frames_of(video, "lens_covered"):
        img, truth = video.render(i)
        assert truth.anomalous and truth.kind == "lens_covered" and truth.box is None
        assert (_diff(img, normal.render(i)[0]) > 20).mean() > 0.15


def test_a_turned_camera_shows_the_corridor_then_the_theatre_again() -> None:
    video = _video_with("camera_turned")
    normal = _small(video.seed, anomalies=False)
    i = _frames_of(video, "camera_turned")[1]
    img, truth = video.render(i)
    assert truth.anomalous and truth.kind == "camera_turned" and truth.box is None
    assert (_diff(img, normal.render(i)[0]) > 30).mean() > 0.3
    after = next(e for e in video.events if e.kind == "camera_turned").stop
    assert np.array_equal(video.render(after)[0], normal.render(after)[0]), "and then back"


def test_an_exposure_step_changes_the_global_mean_but_is_normal() -> None:
    video = next(v for s in range(10) if (v := _small(s, anomalies=False)).steps)
    ts, step = video.steps[0]
    i = round(ts * video.fps)
    before, t_before = video.render(i - 1)
    after, t_after = video.render(i)
    assert not t_before.anomalous and not t_after.anomalous
    ratio = float(after.mean()) / float(before.mean())
    assert abs(step) >= 0.05 and abs(ratio - (1 + step)) < 0.03, f"step {step:+.3f}, mean ratio {ratio:.3f}"
    full = _small(video.seed)
    assert all(not (e.start - 3 < ts < e.end + 3) for e in full.events), "steps keep away from anomalies"


def test_the_routine_has_two_to_five_staff_and_keeps_out_of_the_unused_areas() -> None:
    for seed in range(3):
        video = _day(seed)
        room = video.room
        assert 2 <= len(room.staff) <= 5
        assert room.trolleys and room.trolleys[0].t0 < video.warmup_s, "a trolley comes in during the warm-up"
        for t in np.arange(-5.0, video.duration_s, 0.25):
            people = room.positions(float(t))
            for x, z in people:
                for name, (x0, z0, x1, z1) in room.unused.items():
                    assert not (x0 < x < x1 and z0 < z < z1), f"seed {seed} at {t:.2f} s: someone {name}"


def test_monitors_move_and_a_surgical_light_switch_lights_the_table_but_is_normal() -> None:
    video = _small(2, anomalies=False)
    screens = video.room.screens
    ys, xs = np.concatenate(screens.ys), np.concatenate(screens.xs)
    a, b = video.render(0)[0], video.render(1)[0]
    assert (_diff(a, b)[ys, xs] > 25).any(), "the monitors' pictures move"
    for seed in range(10):
        video = _small(seed, anomalies=False)
        switches = [(ts, lv) for ts, lv in video.light[1:] if abs(lv - video.surgical_light(ts - 0.5)) >= 0.4]
        if switches and switches[0][0] > 1 and switches[0][0] < video.duration_s - 3:
            break
    else:
        raise AssertionError("no theatre video of 10 switches its surgical light")
    ts, level = switches[0]
    assert video.surgical_light(ts + 1.5) == pytest.approx(level)
    i0, i1 = int(np.floor((ts - 0.5) * video.fps)), int(np.ceil((ts + 1.5) * video.fps))
    (before, t0), (after, t1) = video.render(i0), video.render(i1)
    assert not t0.anomalous and not t1.anomalous
    lit = video.room.pool.max(axis=2) > 8
    assert lit.any()
    change = (after.astype(np.float32) - before.astype(np.float32)).mean(axis=2)
    assert abs(float(change[lit].mean())) > 4, "the light's pool on the table follows the switch"


def test_video_decodes_frame_for_frame(tmp_path: Path) -> None:
    video = TheatreVideo(1, size=(192, 108), duration_s=12.0, warmup_s=4.0)
    truth = video.write_video(tmp_path / "v.mp4")
    with av.open(str(tmp_path / "v.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == video.frames == len(truth.frames)
    assert frames[0].shape == (108, 192, 3)
    drawn = video.render(5)[0]
    assert np.abs(frames[5].astype(np.float32) - drawn.astype(np.float32)).mean() < 8, "H.264 keeps the picture"

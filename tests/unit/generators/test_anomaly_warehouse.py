"""The `warehouse` family: the truth matches the pixels, the schedule is what the bench relies on,
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
from generators.anomaly_warehouse import BOXED, KINDS, WAREHOUSE, WarehouseVideo

pytestmark = pytest.mark.timeout(60)

SMALL = {"size": (320, 180), "duration_s": 60.0, "warmup_s": 10.0}
SMALL_DAY = {"size": (320, 180)}  # the bench's two minutes and 20 s warm-up, drawn small


@cache
def _small(seed: int, anomalies: bool = True) -> WarehouseVideo:
    return WarehouseVideo(seed, anomalies=anomalies, **SMALL)  # type: ignore[arg-type]


@cache
def _day(seed: int) -> WarehouseVideo:
    return WarehouseVideo(seed, **SMALL_DAY)  # type: ignore[arg-type]


def _video_with(kind: str) -> WarehouseVideo:
    for seed in range(20):
        video = _small(seed)
        if any(e.kind == kind for e in video.events):
            return video
    raise AssertionError(f"no warehouse video of 20 has a {kind}")


def _frames_of(video: WarehouseVideo, kind: str) -> list[int]:
    """The first, middle and last frames of the video's first anomaly of `kind`."""
    ev = next(e for e in video.events if e.kind == kind)
    return [ev.first, (ev.first + ev.stop) // 2, ev.stop - 1]


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.float32) - b.astype(np.float32)).max(axis=2)


def test_kinds_are_the_ones_the_bench_scores() -> None:
    assert KINDS == ANOMALY_KINDS and BOXED == BOXED_KINDS


def test_same_seed_same_frames_and_truth() -> None:
    a, b = _small(5), WarehouseVideo(5, **SMALL)  # type: ignore[arg-type]
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
        assert len(truth.frames) == video.frames and truth.family == WAREHOUSE and truth.fps == video.fps
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


def test_a_left_object_stands_in_an_aisle_off_every_route() -> None:
    for seed in range(8):
        video = _small(seed)
        for ev in video.events:
            if ev.kind == "object_left":
                assert ev.blocks is not None
                x, z = ev.blocks[0].x, ev.blocks[0].z
                assert any(w in ev.name for w in ("aisle", "walkway", "apron")), ev.name
                routes = video.hall.routes()
                people = len(routes) - sum(len(veh.paths) for veh in video.hall.vehicles)
                assert video._off_routes(x, z, routes, people)
                for rect in video.hall.lanes:
                    assert not (rect[0] < x < rect[2] and rect[1] < z < rect[3]), "not in a staging lane"


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


def test_a_turned_camera_shows_another_part_of_the_hall_then_the_view_again() -> None:
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


def test_the_routine_moves_pallets_and_keeps_out_of_the_unused_areas() -> None:
    for seed in range(3):
        video = _day(seed)
        hall = video.hall
        assert hall.vehicles and hall.walkers
        moves = [s for p in hall.pallets for s in p.spans if s[2] < 0 and 0 <= s[0] < video.duration_s]
        assert moves, f"seed {seed}: no pallet is moved in the video"
        for t in np.arange(-5.0, video.duration_s, 0.5):
            for x, z in hall.positions(float(t)):
                for name, ((x0, z0, x1, z1), _) in hall.unused.items():
                    assert not (x0 < x < x1 and z0 < z < z1), f"seed {seed} at {t:.2f} s: something {name}"


def test_an_open_roller_door_lets_daylight_in_but_is_normal() -> None:
    for seed in range(10):
        video = _small(seed, anomalies=False)
        opens = [o for o in video.openings if o[1] > 1 and o[2] + o[3] < video.duration_s]
        if opens:
            break
    else:
        raise AssertionError("no warehouse video of 10 opens a door inside the video")
    j, start, end, ramp = opens[0]
    i0, i1 = int(np.floor(start * video.fps)) - 1, int(np.ceil((start + ramp) * video.fps)) + 1
    (closed, t0), (opened, t1) = video.render(i0), video.render(i1)
    assert not t0.anomalous and not t1.anomalous
    assert video.door_open(j, i1 / video.fps) == pytest.approx(1.0)
    maps = video.hall.maps
    assert maps is not None
    covered = np.zeros((video.height, video.width), dtype=bool)  # pallets and forklifts in front of the door
    for i in (i0, i1):
        for sp in video.hall.sprites(i / video.fps):
            hh, ww = sp.alpha.shape
            covered[sp.y0 : sp.y0 + hh, sp.x0 : sp.x0 + ww] |= sp.alpha > 0.02
    ys, xs = maps["doors"][j][0], maps["doors"][j][1]
    keep = ~covered[ys, xs]
    ys, xs = ys[keep], xs[keep]
    assert len(ys) >= 20, "the door is in view"
    gain = float(video.gain(i1 / video.fps).mean() / video.gain(i0 / video.fps).mean())
    door_change = opened[ys, xs].astype(np.float32).mean() - closed[ys, xs].astype(np.float32).mean() * gain
    assert door_change > 15, "the opening shows daylight"


def test_video_decodes_frame_for_frame(tmp_path: Path) -> None:
    video = WarehouseVideo(1, size=(192, 108), duration_s=12.0, warmup_s=4.0)
    truth = video.write_video(tmp_path / "v.mp4")
    with av.open(str(tmp_path / "v.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == video.frames == len(truth.frames)
    assert frames[0].shape == (108, 192, 3)
    drawn = video.render(5)[0]
    assert np.abs(frames[5].astype(np.float32) - drawn.astype(np.float32)).mean() < 8, "H.264 keeps the picture"

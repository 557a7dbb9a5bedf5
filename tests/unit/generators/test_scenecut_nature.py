"""The `nature` family: plans keep the rules (transitions inside the video, sorted, apart; shots of
1.5-10 s; distractors clear of transitions), are the same for a seed and differ across seeds, and
the plans of a few seeds hold every kind; a rendered video decodes to the planned frames, its pixels
match the returned times (a cut is a large change and a frame step inside a shot is not, a dissolve's
middle is a blend, fades reach black and white, lightning is bright, an occluder covers the view, a
whip pan ends elsewhere, the sun coming out brightens the land), and a video is the same for a seed."""

from __future__ import annotations

import json
from collections import Counter
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from generators.groundtruth import DISTRACTOR_KINDS, GroundTruth
from generators.scenecut_nature import (
    CALM,
    CAMERA_MOVES,
    CUT_KINDS,
    NATURE_EFFECTS,
    NATURE_TRANSITION_KINDS,
    SCENE_KINDS,
    SIZES,
    WEATHERS,
    Encoding,
    make_nature_video,
    plan_nature_video,
    true_time,
)
from tests.fresh_render import render_elsewhere

pytestmark = pytest.mark.timeout(180)

SIZE = (160, 90)
PLAN = [
    (None, "lightning"),
    ("cut", "bird"),
    ("view_cut", "whip"),
    ("dissolve", "sun"),
    ("fade", "cloud_shadow"),
    ("fade_white", "exposure"),
]
PLANNED = {"size": SIZE, "fps": 12, "shot_s": (5.0, 5.0), "plan": PLAN, "style": CALM, "encoding": Encoding(crf=18)}
DRAWN = {"duration": 16.0, "size": SIZE, "shot_s": (1.5, 6.0)}


def _decode(path: str | Path) -> tuple[np.ndarray, Fraction | None]:
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.float32)
    return frames, rate


def _grey(frames: np.ndarray) -> np.ndarray:
    """Grey frames, downscaled 4x by block means: what the checks compare."""
    g = frames.mean(axis=3)
    n, h, w = g.shape
    return g[:, : h // 4 * 4, : w // 4 * 4].reshape(n, h // 4, 4, w // 4, 4).mean(axis=(2, 4))


def _step(grey: np.ndarray, i: int) -> float:
    return float(np.abs(grey[i] - grey[i - 1]).mean())


def _layout(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two frames' gradients (grey, downscaled): near 1 when only the light changed,
    near 0 for two different pictures."""
    ga, gb = _grey(np.stack([a, b]))
    da = np.concatenate([np.diff(ga, axis=0).ravel(), np.diff(ga, axis=1).ravel()])
    db = np.concatenate([np.diff(gb, axis=0).ravel(), np.diff(gb, axis=1).ravel()])
    return float(np.corrcoef(da, db)[0, 1])


def _at(t: float, fps: int) -> int:
    return round(t * fps)


def _near(truth: GroundTruth, t: float, pad: float = 0.2) -> bool:
    return any(d.start - pad <= t <= d.end + pad for d in truth.distractors) or any(
        tr.start - pad <= t <= tr.end + pad for tr in truth.transitions
    )


def _check_rules(truth: GroundTruth) -> None:
    starts = [t.start for t in truth.transitions]
    assert starts == sorted(starts) and len(starts) >= 1
    for a, b in zip(truth.transitions, truth.transitions[1:], strict=False):
        assert a.end <= b.start
    for t in truth.transitions:
        assert t.kind in NATURE_TRANSITION_KINDS and 0 < t.start <= t.end < truth.duration
        assert (t.start == t.end) == (t.kind in CUT_KINDS)
        assert true_time(t) == (t.start if t.kind in CUT_KINDS else (t.start + t.end) / 2)
    for d in truth.distractors:
        assert d.kind in DISTRACTOR_KINDS and d.kind in NATURE_EFFECTS.values()
        assert 0.5 - 1e-9 <= d.start < d.end <= truth.duration - 0.5 + 1e-9
        for t in truth.transitions:
            assert d.end + 1.0 <= t.start + 1e-9 or t.end + 1.0 <= d.start + 1e-9
    shots = [(s.start, s.end) for s in truth.shots]
    assert shots[0][0] == 0 and shots[-1][1] == pytest.approx(truth.duration)
    assert len(shots) == len(truth.transitions) + 1
    assert [(t.before, t.after) for t in truth.transitions] == [(k, k + 1) for k in range(len(shots) - 1)]


@pytest.mark.parametrize("seed", range(6), ids=lambda s: f"seed{s}")
def test_plans_keep_the_rules(seed: int) -> None:
    plan = plan_nature_video(seed)
    truth = plan.truth(f"nature-{seed}.mp4")
    assert truth.frames == round(60 * truth.fps)
    _check_rules(truth)
    for shot in plan.shots[:-1]:  # the last shot takes what is left
        assert 1.5 * truth.fps <= shot.solo <= 10 * truth.fps
    json.dumps(truth.to_dict())


def test_plans_are_the_same_for_a_seed_and_differ_across_seeds() -> None:
    a, b = plan_nature_video(3).truth("x.mp4"), plan_nature_video(3).truth("x.mp4")
    assert a.to_dict() == b.to_dict()
    others = [plan_nature_video(s).truth("x.mp4") for s in (4, 5, 9)]
    assert all((o.transitions, o.distractors) != (a.transitions, a.distractors) for o in others)


def test_a_few_seeds_hold_every_kind_size_rate_and_encoder() -> None:
    plans = [plan_nature_video(seed) for seed in range(6)]
    transitions = Counter(t.kind for p in plans for t in p.transitions)
    assert set(transitions) == set(NATURE_TRANSITION_KINDS)
    assert transitions["cut"] > sum(transitions.values()) / 3  # hard cuts are the most common
    assert set(d.kind for p in plans for d in p.distractors) == set(DISTRACTOR_KINDS)
    assert {sc.kind for p in plans for sc in p.scenes} == set(SCENE_KINDS)
    assert {p.size for p in plans} == set(SIZES) and {p.fps for p in plans} == {24, 25, 30}
    assert {p.encoding.codec for p in plans} == {"libx264", "mpeg4"}
    assert min(p.encoding.gop or 250 for p in plans) <= 12 and max(p.encoding.gop or 0 for p in plans) >= 150
    assert all(18 <= p.encoding.crf <= 40 for p in plans if p.encoding.codec == "libx264")
    more = plans + [plan_nature_video(seed) for seed in range(6, 12)]
    assert {fx.name for p in more for s in p.shots for fx in s.effects} == set(NATURE_EFFECTS)
    assert {s.camera for p in more for s in p.shots} == set(CAMERA_MOVES)
    assert {sc.weather for p in more for sc in p.scenes} == set(WEATHERS)


def test_rejects_bad_plans(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="first shot"):
        make_nature_video(tmp_path / "x.mp4", plan=[("cut", None)])
    with pytest.raises(ValueError, match="unknown effect"):
        plan_nature_video(plan=[(None, "meteor")])
    with pytest.raises(ValueError, match="no scene kind"):
        plan_nature_video(plan=[(None, "fish"), ("view_cut", "lightning")])
    with pytest.raises(ValueError, match="too short"):
        plan_nature_video(plan=[(None, "cloud_shadow")], shot_s=(1.5, 1.5))


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[GroundTruth, np.ndarray, Fraction | None]:
    path = tmp_path_factory.mktemp("nature") / "plan.mp4"
    truth = make_nature_video(path, seed=2, **PLANNED)  # type: ignore[arg-type]
    frames, rate = _decode(path)
    return truth, frames, rate


def test_the_plan_is_followed(planned: tuple[GroundTruth, np.ndarray, Fraction | None]) -> None:
    truth, frames, rate = planned
    assert [t.kind for t in truth.transitions] == [kind for kind, _ in PLAN[1:]]
    assert [(d.kind, d.shot) for d in truth.distractors] == [
        ("flash", 0),
        ("occluder", 1),
        ("fast_pan", 2),
        ("drift", 3),
        ("drift", 4),
        ("drift", 5),
    ]
    assert frames.shape == (truth.frames, SIZE[1], SIZE[0], 3) and rate == truth.fps == 12
    scenes = [s.image.split("-")[2] for s in truth.shots]
    assert scenes[2] == scenes[1] and len(set(scenes)) == 5  # a view cut stays in the scene
    assert truth.to_dict() == plan_nature_video(2, **PLANNED).truth(truth.path).to_dict()  # type: ignore[arg-type]


def test_cuts_are_large_changes_and_shots_are_not(planned: tuple[GroundTruth, np.ndarray, Fraction | None]) -> None:
    truth, frames, _ = planned
    grey, fps = _grey(frames), truth.fps
    for shot in truth.shots:
        quiet = [i for i in range(_at(shot.start, fps) + 1, _at(shot.end, fps)) if not _near(truth, i / fps)]
        assert np.median([_step(grey, i) for i in quiet]) < 2
    for c in truth.transitions[:2]:
        assert c.start == c.end and true_time(c) == c.start and c.kind in CUT_KINDS
        at = _at(c.start, fps)
        assert _step(grey, at) > 10
        assert max(_step(grey, i) for i in range(at + 1, at + 6)) < _step(grey, at) / 4  # it happens at that frame


def test_a_dissolve_blends_and_fades_reach_black_and_white(
    planned: tuple[GroundTruth, np.ndarray, Fraction | None],
) -> None:
    truth, frames, _ = planned
    fps = truth.fps
    dissolve, fade, fade_white = truth.transitions[2:]
    i0, i1 = _at(dissolve.start, fps), _at(dissolve.end, fps)
    a, b, mid = frames[i0 - 1], frames[i1], frames[(i0 + i1) // 2]
    assert np.abs(mid - (a + b) / 2).mean() < min(np.abs(mid - a).mean(), np.abs(mid - b).mean()) / 2
    dark = frames[_at(fade.start, fps) : _at(fade.end, fps)].mean(axis=(1, 2, 3))
    assert dark.min() < 0.3 * min(frames[_at(fade.start, fps) - 1].mean(), frames[_at(fade.end, fps)].mean())
    light = frames[_at(fade_white.start, fps) : _at(fade_white.end, fps)].mean(axis=(1, 2, 3))
    assert light.max() > 225


def test_lightning_occluders_and_whip_pans_change_the_picture(
    planned: tuple[GroundTruth, np.ndarray, Fraction | None],
) -> None:
    truth, frames, _ = planned
    fps = truth.fps
    flash, occluder, whip = truth.distractors[:3]
    i, j = _at(flash.start, fps), _at(flash.end, fps)
    assert frames[i].mean() > frames[i - 1].mean() + 40  # lightning is much brighter
    assert np.abs(frames[j] - frames[i - 1]).mean() < 6  # and the same picture after it
    o0, o1 = _at(occluder.start, fps), _at(occluder.end, fps)
    covered = max(np.abs(frames[k] - frames[o0 - 1]).mean() for k in range(o0, o1))
    assert covered > 4 and covered > 3 * np.abs(frames[o1 + 1] - frames[o0 - 1]).mean()
    grey = _grey(frames)
    w0, w1 = _at(whip.start, fps), _at(whip.end, fps)
    around = np.median([_step(grey, k) for k in range(w1 + 2, w1 + 10)])
    assert max(_step(grey, k) for k in range(w0 + 1, w1)) > 5 * around + 3
    assert _layout(frames[w0 - 1], frames[w1]) < 0.5  # it ends on another part of the landscape


def test_drift_changes_the_light_not_the_layout(planned: tuple[GroundTruth, np.ndarray, Fraction | None]) -> None:
    truth, frames, _ = planned
    fps = truth.fps
    sun, shadow, exposure = truth.distractors[3:]
    # the sun comes out: brighter and stays so, the same picture
    before, after = frames[_at(sun.start, fps) - 1], frames[_at(sun.end, fps) + 1]
    assert after.mean() > 1.15 * before.mean() and _layout(before, after) > 0.85
    # a cloud's shadow crosses: darker while it passes, the same light again after it
    s0, s1 = _at(shadow.start, fps), _at(shadow.end, fps)
    assert min(frames[k].mean() for k in range(s0, s1)) < 0.95 * frames[s0 - 1].mean()
    assert frames[s1].mean() == pytest.approx(frames[s0 - 1].mean(), rel=0.03)
    # an exposure step: the light changes and stays changed
    e0, e1 = _at(exposure.start, fps), _at(exposure.end, fps)
    assert abs(frames[e1 + 2].mean() / frames[e0 - 1].mean() - 1) > 0.08
    assert _layout(frames[e0 - 1], frames[e1 + 2]) > 0.85


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    path = tmp_path_factory.mktemp("nature") / "a.mp4"
    return path, make_nature_video(path, seed=7, **DRAWN)  # type: ignore[arg-type]


def test_a_drawn_video_keeps_the_rules_and_decodes(drawn: tuple[Path, GroundTruth]) -> None:
    path, truth = drawn
    assert truth.to_dict() == plan_nature_video(7, **DRAWN).truth(path).to_dict()  # type: ignore[arg-type]
    assert truth.fps in (24, 25, 30) and truth.frames == round(16.0 * truth.fps)
    _check_rules(truth)
    frames, rate = _decode(path)
    assert frames.shape == (truth.frames, SIZE[1], SIZE[0], 3) and rate == truth.fps
    assert frames.std() > 10  # a picture, not a flat field
    # hard cuts change the picture far more than a frame step inside a moving shot
    grey, fps = _grey(frames), truth.fps
    quiet = [_step(grey, i) for i in range(1, truth.frames) if not _near(truth, i / fps)]
    cuts = [_step(grey, _at(t.start, fps)) for t in truth.transitions if t.kind in CUT_KINDS]
    assert cuts and min(cuts) > 2 * np.median(quiet)


def _make_elsewhere(path: Path, seed: int) -> dict[str, object]:
    return render_elsewhere("generators.scenecut_nature", "make_nature_video", path, seed)


def test_deterministic_for_a_seed(drawn: tuple[Path, GroundTruth], tmp_path: Path) -> None:
    path, truth = drawn
    a, b = _make_elsewhere(tmp_path / "a.mp4", 7), _make_elsewhere(tmp_path / "b.mp4", 7)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    assert {k: v for k, v in a.items() if k != "path"} == {k: v for k, v in b.items() if k != "path"}
    assert a["transitions"] == truth.to_dict()["transitions"] and a["distractors"] == truth.to_dict()["distractors"]
    # In this process too, the pictures are the same (up to the encoder's rounding).
    assert np.abs(_decode(path)[0] - _decode(tmp_path / "a.mp4")[0]).mean() < 1.0
    other = plan_nature_video(8, **DRAWN)  # type: ignore[arg-type]
    assert (other.transitions, other.fps) != (truth.transitions, truth.fps)

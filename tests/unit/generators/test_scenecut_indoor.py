"""The `indoor` family: plans keep the rules (transitions inside the video, sorted, apart; shots of
1.5-10 s; distractors clear of transitions), are the same for a seed and differ across seeds, and
the plans of a few seeds hold every kind; a rendered video decodes to the planned frames, and its
pixels match the returned times (a cut is a large change, fades reach black and white, a flash is
bright, the lights going off darken the room)."""

from __future__ import annotations

import json
from collections import Counter
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from generators.groundtruth import DISTRACTOR_KINDS, GroundTruth
from generators.scenecut_indoor import (
    CALM,
    CAMERA_MOVES,
    CUT_KINDS,
    INDOOR_EFFECTS,
    INDOOR_TRANSITION_KINDS,
    SCENE_KINDS,
    SIZES,
    Encoding,
    make_indoor_video,
    plan_indoor_video,
    true_time,
)

pytestmark = pytest.mark.timeout(120)

SMALLEST = SIZES[0]
PLAN = [
    (None, "flash"),
    ("cut", "lights_off"),
    ("view_cut", None),
    ("dissolve", None),
    ("fade", None),
    ("fade_white", None),
]
PLANNED = {
    "size": (160, 90),
    "fps": 12,
    "shot_s": (3.0, 3.0),
    "plan": PLAN,
    "style": CALM,
    "encoding": Encoding(crf=18),
}


def _decode(path: str | Path) -> tuple[np.ndarray, Fraction | None]:
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.float32)
    return frames, rate


def _step(frames: np.ndarray, i: int) -> float:
    return float(np.abs(frames[i] - frames[i - 1]).mean())


def _at(t: float, fps: int) -> int:
    return round(t * fps)


def _check_rules(truth: GroundTruth) -> None:
    starts = [t.start for t in truth.transitions]
    assert starts == sorted(starts) and len(starts) >= 1
    for a, b in zip(truth.transitions, truth.transitions[1:], strict=False):
        assert a.end <= b.start
    for t in truth.transitions:
        assert t.kind in INDOOR_TRANSITION_KINDS and 0 < t.start <= t.end < truth.duration
        assert (t.start == t.end) == (t.kind in CUT_KINDS)
        assert true_time(t) == (t.start if t.kind in CUT_KINDS else (t.start + t.end) / 2)
    for d in truth.distractors:
        assert d.kind in DISTRACTOR_KINDS
        assert 0.5 - 1e-9 <= d.start < d.end <= truth.duration - 0.5 + 1e-9
        for t in truth.transitions:
            assert d.end + 1.0 <= t.start + 1e-9 or t.end + 1.0 <= d.start + 1e-9
    shots = [(s.start, s.end) for s in truth.shots]
    assert shots[0][0] == 0 and shots[-1][1] == pytest.approx(truth.duration)
    assert len(shots) == len(truth.transitions) + 1
    assert [(t.before, t.after) for t in truth.transitions] == [(k, k + 1) for k in range(len(shots) - 1)]


@pytest.mark.parametrize("seed", range(6), ids=lambda s: f"seed{s}")
def test_plans_keep_the_rules(seed: int) -> None:
    plan = plan_indoor_video(seed)
    truth = plan.truth(f"indoor-{seed}.mp4")
    assert truth.frames == round(60 * truth.fps)
    _check_rules(truth)
    for shot in plan.shots[:-1]:  # the last shot takes what is left
        assert 1.5 * truth.fps <= shot.solo <= 10 * truth.fps
    json.dumps(truth.to_dict())


def test_plans_are_the_same_for_a_seed_and_differ_across_seeds() -> None:
    a, b = plan_indoor_video(3).truth("x.mp4"), plan_indoor_video(3).truth("x.mp4")
    assert a.to_dict() == b.to_dict()
    others = [plan_indoor_video(s).truth("x.mp4") for s in (4, 5, 9)]
    assert all((o.transitions, o.distractors) != (a.transitions, a.distractors) for o in others)


def test_a_few_seeds_hold_every_kind_size_rate_and_encoder() -> None:
    plans = [plan_indoor_video(seed) for seed in range(6)]
    transitions = Counter(t.kind for p in plans for t in p.transitions)
    assert set(transitions) == set(INDOOR_TRANSITION_KINDS)
    assert transitions["cut"] > sum(transitions.values()) / 3  # hard cuts are the most common
    assert set(d.kind for p in plans for d in p.distractors) == set(DISTRACTOR_KINDS)
    assert {sc.kind for p in plans for sc in p.scenes} == set(SCENE_KINDS)
    assert {p.size for p in plans} == set(SIZES) and {p.fps for p in plans} == {24, 25, 30}
    assert {p.encoding.codec for p in plans} == {"libx264", "mpeg4"}
    assert min(p.encoding.gop or 250 for p in plans) <= 12 and max(p.encoding.gop or 0 for p in plans) >= 150
    assert all(18 <= p.encoding.crf <= 40 for p in plans if p.encoding.codec == "libx264")
    more = plans + [plan_indoor_video(seed) for seed in range(6, 12)]
    assert {fx.name for p in more for s in p.shots for fx in s.effects} == set(INDOOR_EFFECTS)
    assert {s.camera for p in more for s in p.shots} == set(CAMERA_MOVES)


def test_rejects_bad_plans(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="first shot"):
        make_indoor_video(tmp_path / "x.mp4", plan=[("cut", None)])
    with pytest.raises(ValueError, match="unknown effect"):
        plan_indoor_video(plan=[(None, "meteor")])
    with pytest.raises(ValueError, match="no scene kind"):
        plan_indoor_video(plan=[(None, "popup"), ("view_cut", "door")])
    with pytest.raises(ValueError, match="too short"):
        plan_indoor_video(plan=[(None, "door")], shot_s=(1.5, 1.5))


def test_a_drawn_video_decodes_to_the_plan(tmp_path: Path) -> None:
    path = tmp_path / "drawn.mp4"
    truth = make_indoor_video(path, seed=1, duration=4.0, size=SMALLEST, shot_s=(1.5, 3.0))
    assert truth.to_dict() == plan_indoor_video(1, duration=4.0, size=SMALLEST, shot_s=(1.5, 3.0)).truth(path).to_dict()
    frames, rate = _decode(path)
    assert frames.shape == (truth.frames, SMALLEST[1], SMALLEST[0], 3) and rate == truth.fps
    assert truth.frames == round(4.0 * truth.fps) and frames.std() > 10  # a picture, not a flat field


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[GroundTruth, np.ndarray]:
    path = tmp_path_factory.mktemp("indoor") / "plan.mp4"
    truth = make_indoor_video(path, seed=2, **PLANNED)  # type: ignore[arg-type]
    return truth, _decode(path)[0]


def test_the_plan_is_followed(planned: tuple[GroundTruth, np.ndarray]) -> None:
    truth, frames = planned
    assert [t.kind for t in truth.transitions] == [kind for kind, _ in PLAN[1:]]
    assert [(d.kind, d.shot) for d in truth.distractors] == [("flash", 0), ("drift", 1)]
    assert frames.shape[0] == truth.frames
    scenes = [s.image.split("-")[2] for s in truth.shots]
    assert scenes[2] == scenes[1] and len(set(scenes)) == 5  # a view cut stays in the scene


def test_pixels_match_the_times(planned: tuple[GroundTruth, np.ndarray]) -> None:
    truth, frames = planned
    fps = truth.fps
    flash, lights = truth.distractors
    i, j = _at(flash.start, fps), _at(flash.end, fps)
    assert frames[i].mean() > frames[i - 1].mean() + 40  # a flash is much brighter
    assert np.abs(frames[j + 1] - frames[i - 1]).mean() < 8  # and the same picture after it
    a, b = _at(lights.start, fps), _at(lights.end, fps)
    assert frames[b + 2].mean() < 0.7 * frames[a - 1].mean()  # the lights went off and stay off
    cut = truth.transitions[0]
    at = _at(cut.start, fps)
    inside = np.median([_step(frames, k) for k in range(at + 2, at + 10)])
    assert _step(frames, at) > 10 and _step(frames, at) > 4 * inside
    fade, fade_white = truth.transitions[3:]
    dark = frames[_at(fade.start, fps) : _at(fade.end, fps)].mean(axis=(1, 2, 3))
    assert dark.min() < 0.3 * min(frames[_at(fade.start, fps) - 1].mean(), frames[_at(fade.end, fps)].mean())
    light = frames[_at(fade_white.start, fps) : _at(fade_white.end, fps)].mean(axis=(1, 2, 3))
    assert light.max() > 225

"""The `stage` family: the returned times match the pixels (a cut is a large picture change, a
dissolve's middle is a blend, fades reach black and white, distractors stay clear of transitions),
and a video is the same for the same seed."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from generators.groundtruth import DISTRACTOR_KINDS, GroundTruth
from generators.scenecut_stage import (
    CALM,
    CUT_KINDS,
    STAGE_EFFECTS,
    STAGE_TRANSITION_KINDS,
    Encoding,
    make_stage_video,
    true_time,
)
from tests.fresh_render import render_elsewhere

pytestmark = pytest.mark.timeout(120)

SIZE = (160, 90)
PLAN = [
    (None, "flash"),
    ("cut", "occluder"),
    ("view_cut", "whip"),
    ("dissolve", "lights"),
    ("fade", None),
    ("fade_white", None),
]


def _decode(path: str | Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.float32)


def _grey(frames: np.ndarray) -> np.ndarray:
    """Grey frames, downscaled 4x by block means: what the checks compare."""
    g = frames.mean(axis=3)
    n, h, w = g.shape
    return g[:, : h // 4 * 4, : w // 4 * 4].reshape(n, h // 4, 4, w // 4, 4).mean(axis=(2, 4))


def _step(grey: np.ndarray, i: int) -> float:
    return float(np.abs(grey[i] - grey[i - 1]).mean())


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[GroundTruth, np.ndarray]:
    path = tmp_path_factory.mktemp("stage") / "plan.mp4"
    truth = make_stage_video(
        path, seed=2, size=SIZE, fps=15, shot_s=(4.5, 4.5), plan=PLAN, style=CALM, encoding=Encoding(crf=18)
    )
    return truth, _decode(path)


def test_the_plan_is_followed(planned: tuple[GroundTruth, np.ndarray]) -> None:
    truth, frames = planned
    assert [t.kind for t in truth.transitions] == [kind for kind, _ in PLAN[1:]]
    assert [(d.kind, d.shot) for d in truth.distractors] == [
        ("flash", 0),
        ("occluder", 1),
        ("fast_pan", 2),
        ("drift", 3),
    ]
    assert frames.shape == (truth.frames, SIZE[1], SIZE[0], 3)
    assert [(t.before, t.after) for t in truth.transitions] == [(k, k + 1) for k in range(5)]
    assert truth.shots[2].image.rsplit("-", 2)[1] == truth.shots[1].image.rsplit("-", 2)[1]  # a view cut keeps the set
    json.dumps(truth.to_dict())


def test_cuts_are_large_changes_and_shots_are_not(planned: tuple[GroundTruth, np.ndarray]) -> None:
    truth, frames = planned
    grey, fps = _grey(frames), truth.fps
    cut, view_cut = truth.transitions[:2]
    shot1 = truth.shots[1]
    # Inside a shot (away from its distractor) consecutive frames barely differ.
    quiet = [i for i in range(round(shot1.start * fps) + 1, round(shot1.end * fps)) if not _near(truth, i / fps)]
    within = float(np.median([_step(grey, i) for i in quiet]))
    assert within < 3
    for c in (cut, view_cut):
        assert c.start == c.end and true_time(c) == c.start and c.kind in CUT_KINDS
        at = round(c.start * fps)
        assert _step(grey, at) > 12 and _step(grey, at) > 5 * within
        assert max(_step(grey, i) for i in range(at + 1, at + 6)) < _step(grey, at) / 3  # it happens at that frame


def _near(truth: GroundTruth, t: float) -> bool:
    return any(d.start - 0.2 <= t <= d.end + 0.2 for d in truth.distractors)


def test_a_dissolve_blends_and_fades_reach_black_and_white(planned: tuple[GroundTruth, np.ndarray]) -> None:
    truth, frames = planned
    fps = truth.fps
    dissolve, fade, fade_white = truth.transitions[2:]
    a, b = frames[round(dissolve.start * fps) - 1], frames[round(dissolve.end * fps)]
    mid = frames[(round(dissolve.start * fps) + round(dissolve.end * fps)) // 2]
    assert np.abs(mid - (a + b) / 2).mean() < min(np.abs(mid - a).mean(), np.abs(mid - b).mean()) / 2
    assert true_time(dissolve) == pytest.approx((dissolve.start + dissolve.end) / 2)
    dark = frames[round(fade.start * fps) : round(fade.end * fps)].mean(axis=(1, 2, 3))
    assert dark.min() < 0.3 * min(frames[round(fade.start * fps) - 1].mean(), frames[round(fade.end * fps)].mean())
    light = frames[round(fade_white.start * fps) : round(fade_white.end * fps)].mean(axis=(1, 2, 3))
    assert light.max() > 225


def test_distractors_change_the_picture(planned: tuple[GroundTruth, np.ndarray]) -> None:
    truth, frames = planned
    fps = truth.fps
    flash, occluder, whip, lights = truth.distractors
    i, j = round(flash.start * fps), round(flash.end * fps)
    assert frames[i].mean() > frames[i - 1].mean() + 50 and frames[j - 1].mean() > frames[i - 1].mean() + 50
    assert np.abs(frames[j] - frames[i - 1]).mean() < 12  # the same picture after it
    o0, o1 = round(occluder.start * fps), round(occluder.end * fps)
    covered = max(np.abs(frames[k] - frames[o0 - 1]).mean() for k in range(o0, o1))
    assert covered > 3 * np.abs(frames[o1 + 1] - frames[o0 - 1]).mean()
    grey = _grey(frames)
    w0, w1 = round(whip.start * fps), round(whip.end * fps)
    around = np.median([_step(grey, k) for k in range(w1 + 2, w1 + 10)])
    assert max(_step(grey, k) for k in range(w0 + 1, w1)) > 3 * around + 2
    l0 = round(lights.start * fps)
    assert np.abs(frames[l0 + 2] - frames[l0 - 1]).mean() > 4


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    path = tmp_path_factory.mktemp("stage") / "a.mp4"
    return path, make_stage_video(path, seed=7, duration=16.0, size=SIZE, shot_s=(1.5, 6.0))


def test_a_drawn_video_keeps_the_rules(drawn: tuple[Path, GroundTruth]) -> None:
    _, truth = drawn
    assert truth.fps in (24, 25, 30) and truth.frames == round(16.0 * truth.fps)
    assert len(truth.transitions) >= 2
    starts = [t.start for t in truth.transitions]
    assert starts == sorted(starts)
    for a, b in zip(truth.transitions, truth.transitions[1:], strict=False):
        assert a.end <= b.start
    for t in truth.transitions:
        assert t.kind in STAGE_TRANSITION_KINDS and 0 < t.start <= t.end < truth.duration
    for d in truth.distractors:
        assert d.kind in DISTRACTOR_KINDS and d.kind in STAGE_EFFECTS.values()
        assert 0 <= d.start < d.end <= truth.duration
        for t in truth.transitions:
            assert d.end + 1.0 <= t.start + 1e-9 or t.end + 1.0 <= d.start + 1e-9
    shots = [(s.start, s.end) for s in truth.shots]
    assert shots[0][0] == 0 and shots[-1][1] == pytest.approx(truth.duration)
    json.dumps(truth.to_dict())


def _make_elsewhere(path: Path, seed: int) -> dict[str, object]:
    return render_elsewhere("generators.scenecut_stage", "make_stage_video", path, seed)


def test_deterministic_for_a_seed(drawn: tuple[Path, GroundTruth], tmp_path: Path) -> None:
    path, truth = drawn
    a, b = _make_elsewhere(tmp_path / "a.mp4", 7), _make_elsewhere(tmp_path / "b.mp4", 7)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    assert {k: v for k, v in a.items() if k != "path"} == {k: v for k, v in b.items() if k != "path"}
    assert a["transitions"] == truth.to_dict()["transitions"] and a["distractors"] == truth.to_dict()["distractors"]
    # In this process too, the pictures are the same (up to the encoder's rounding).
    assert np.abs(_decode(path) - _decode(tmp_path / "a.mp4")).mean() < 1.0
    other = make_stage_video(tmp_path / "c.mp4", seed=8, duration=16.0, size=SIZE, shot_s=(1.5, 6.0))
    assert (other.transitions, other.fps) != (truth.transitions, truth.fps)


def test_rejects_a_plan_that_starts_with_a_transition(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="first shot"):
        make_stage_video(tmp_path / "x.mp4", plan=[("cut", None)])

"""Families of shot-boundary videos: the returned times match the pixels for every kind of
transition and distractor, and a video is the same for the same (family, seed)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from generators.groundtruth import GroundTruth, Transition
from generators.scenecut_families import (
    DEVELOPMENT_FAMILY,
    FAMILIES,
    HELD_OUT_FAMILY,
    footage_picture,
    make_family_video,
    scene_picture,
    texture_picture,
    true_time,
)

pytestmark = pytest.mark.timeout(120)

SIZE = (192, 108)
# No scikit-image here: textures, scenes and footage only; a calm camera, so what the truth says
# happened is what changes the pixels.
FAMILY = replace(
    FAMILIES[HELD_OUT_FAMILY],
    pictures=(texture_picture, scene_picture, footage_picture),
    crf=(18, 18),
    pan=0.01,
    zoom=0.0,
    rotation=0.0,
    shake=0.0,
    movers=0.0,
)
PLAN = [
    (None, "flash"),
    ("cut", "occluder"),
    ("view_cut", "fast_pan"),
    ("dissolve", "drift"),
    ("fade", None),
    ("fade_white", None),
]


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.float32)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> tuple[GroundTruth, np.ndarray]:
    path = tmp_path_factory.mktemp("families") / "plan.mp4"
    truth = make_family_video(path, FAMILY, seed=4, size=SIZE, shot_s=(4.0, 4.0), plan=PLAN)
    return truth, _decode(path)


def _diff(frames: np.ndarray, i: int) -> float:
    return float(np.abs(frames[i] - frames[i - 1]).mean())


def test_the_plan_is_followed(video: tuple[GroundTruth, np.ndarray]) -> None:
    truth, frames = video
    assert [t.kind for t in truth.transitions] == [kind for kind, _ in PLAN[1:]]
    assert [(d.kind, d.shot) for d in truth.distractors] == [
        ("flash", 0),
        ("occluder", 1),
        ("fast_pan", 2),
        ("drift", 3),
    ]
    assert frames.shape == (truth.frames, SIZE[1], SIZE[0], 3)
    assert [(t.before, t.after) for t in truth.transitions] == [(k, k + 1) for k in range(5)]


def test_transition_times_match_the_pixels(video: tuple[GroundTruth, np.ndarray]) -> None:
    truth, frames = video
    fps = truth.fps
    at = lambda t: round(t * fps)  # noqa: E731
    cut, view_cut, dissolve, fade, fade_white = truth.transitions
    within = np.median([_diff(frames, i) for i in range(1, at(cut.start))])
    for c in (cut, view_cut):  # the picture changes at once, far more than within the shot
        assert c.start == c.end and _diff(frames, at(c.start)) > 4 * within + 10
        assert max(_diff(frames, i) for i in range(at(c.start) + 2, at(c.start) + 12)) < _diff(frames, at(c.start)) / 2
    # A dissolve: its middle frame is a mix, closer to the average of its ends than to either.
    a, b = frames[at(dissolve.start) - 1], frames[at(dissolve.end)]
    mid = frames[(at(dissolve.start) + at(dissolve.end)) // 2]
    assert np.abs(mid - (a + b) / 2).mean() < min(np.abs(mid - a).mean(), np.abs(mid - b).mean()) / 2
    # Fades go through (near) black and (near) white.
    dark = frames[at(fade.start) : at(fade.end)].mean(axis=(1, 2, 3))
    assert dark.min() < 0.3 * min(frames[at(fade.start) - 1].mean(), frames[at(fade.end)].mean())
    light = frames[at(fade_white.start) : at(fade_white.end)].mean(axis=(1, 2, 3))
    assert light.max() > 225
    assert true_time(cut) == cut.start and true_time(dissolve) == pytest.approx((dissolve.start + dissolve.end) / 2)


def test_distractors_match_the_pixels(video: tuple[GroundTruth, np.ndarray]) -> None:
    truth, frames = video
    fps = truth.fps
    flash, occluder, pan, drift = truth.distractors
    i, j = round(flash.start * fps), round(flash.end * fps)
    assert 1 <= j - i <= 3 and frames[i].mean() > frames[i - 1].mean() + 60
    assert np.abs(frames[j] - frames[i - 1]).mean() < 20  # the same picture after it
    # The occluder is in the view while it crosses, and gone after.
    o0, o1 = round(occluder.start * fps), round(occluder.end * fps)
    inside = max(np.abs(frames[k] - frames[o0 - 1]).mean() for k in range(o0, o1))
    assert inside > 3 * np.abs(frames[o1 + 1] - frames[o0 - 1]).mean()
    # The whip pan moves the picture more per frame than the camera around it.
    k0, k1 = round(pan.start * fps), round(pan.end * fps)
    around = np.median([_diff(frames, k) for k in range(k1 + 2, k1 + 10)])
    assert max(_diff(frames, k) for k in range(k0 + 1, k1)) > 2 * around
    d0, d1 = round(drift.start * fps), round(drift.end * fps) - 1
    assert abs(frames[d1].mean() - frames[d0].mean()) > 12
    for d in truth.distractors:  # a second away from every transition
        for t in truth.transitions:
            if d.kind != "drift":
                assert d.end + 1.0 <= t.start + 1e-9 or t.end + 1.0 <= d.start + 1e-9


@pytest.mark.parametrize("family", [DEVELOPMENT_FAMILY, HELD_OUT_FAMILY], ids=["development", "held-out"])
def test_deterministic_per_family_and_seed(family: str, tmp_path: Path) -> None:
    fam = replace(FAMILIES[family], pictures=(texture_picture, scene_picture))  # no scikit-image
    kwargs = {"size": (96, 54), "shots": 3, "shot_s": (2.0, 3.0)}
    a = make_family_video(tmp_path / "a.mp4", fam, seed=5, **kwargs)
    b = make_family_video(tmp_path / "b.mp4", fam, seed=5, **kwargs)
    c = make_family_video(tmp_path / "c.mp4", fam, seed=6, **kwargs)
    assert (a.transitions, a.distractors, a.frames, a.fps) == (b.transitions, b.distractors, b.frames, b.fps)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    assert (a.transitions, a.frames) != (c.transitions, c.frames)


def test_families_differ_and_one_is_held_out() -> None:
    dev, held = FAMILIES[DEVELOPMENT_FAMILY], FAMILIES[HELD_OUT_FAMILY]
    assert DEVELOPMENT_FAMILY != HELD_OUT_FAMILY
    assert not set(dev.pictures) & set(held.pictures)  # no picture source in common
    assert set(dev.sizes) & set(held.sizes) <= {(640, 360)} and not set(dev.fps) & set(held.fps)


def test_true_time_of_each_kind() -> None:
    assert true_time(Transition("cut", 4.0, 4.0, 0, 1)) == 4.0
    assert true_time(Transition("view_cut", 5.0, 5.0, 0, 1)) == 5.0  # type: ignore[arg-type]
    assert true_time(Transition("fade", 4.0, 6.0, 0, 1)) == 5.0


def test_rejects_a_plan_that_starts_with_a_transition(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="first shot"):
        make_family_video(tmp_path / "x.mp4", FAMILY, plan=[("cut", None)])

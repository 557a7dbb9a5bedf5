"""Ground-truth videos: the returned times match the pixels, generation is deterministic, the file
decodes, and detections are scored the same way for every method."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from generators.groundtruth import (
    Distractor,
    GroundTruth,
    Transition,
    distractor_near,
    make_groundtruth_video,
    score_detections,
    synthetic_images,
)

pytestmark = pytest.mark.timeout(60)

FPS = 25
SIZE = (160, 120)
# One of each: the transition into each shot, and what happens inside it.
PLAN = [(None, "flash"), ("cut", "occluder"), ("dissolve", "fast_pan"), ("fade", "drift"), ("cut", None)]


def _decode(path: Path) -> tuple[list[float], np.ndarray]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [(float(f.time), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    return [t for t, _ in frames], np.stack([f for _, f in frames]).astype(np.float32)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> tuple[GroundTruth, list[float], np.ndarray]:
    path = tmp_path_factory.mktemp("gt") / "plan.mp4"
    truth = make_groundtruth_video(path, synthetic_images(5, seed=1), seed=3, fps=FPS, size=SIZE, plan=PLAN)
    times, frames = _decode(path)
    return truth, times, frames


def _diff(frames: np.ndarray, i: int) -> float:
    """Mean absolute change from frame i-1 to frame i."""
    return float(np.abs(frames[i] - frames[i - 1]).mean())


def test_the_plan_is_followed(video: tuple[GroundTruth, list[float], np.ndarray]) -> None:
    truth, times, frames = video
    assert [t.kind for t in truth.transitions] == ["cut", "dissolve", "fade"] + ["cut"]
    assert [(d.kind, d.shot) for d in truth.distractors] == [
        ("flash", 0),
        ("occluder", 1),
        ("fast_pan", 2),
        ("drift", 3),
    ]
    assert len(times) == truth.frames and frames.shape[1:] == (SIZE[1], SIZE[0], 3)
    assert times[-1] + 1 / FPS == pytest.approx(truth.duration)
    assert len({s.image for s in truth.shots}) == len(truth.shots)  # no picture twice in a row


def test_transition_times_match_the_pixels(video: tuple[GroundTruth, list[float], np.ndarray]) -> None:
    truth, _, frames = video
    index = lambda t: round(t * FPS)  # noqa: E731
    cut, dissolve, fade, last = truth.transitions
    # A cut: the picture changes completely between two frames, far more than within shots.
    within = np.median([_diff(frames, i) for i in range(1, index(cut.start))])
    assert cut.start == cut.end and _diff(frames, index(cut.start)) > 10 * within + 10
    # A dissolve: every frame inside it is a mix, closer to the average of its ends than to either.
    a, b = frames[index(dissolve.start) - 1], frames[index(dissolve.end)]
    mid = frames[(index(dissolve.start) + index(dissolve.end)) // 2]
    assert np.abs(mid - (a + b) / 2).mean() < min(np.abs(mid - a).mean(), np.abs(mid - b).mean()) / 2
    assert 0.5 <= dissolve.end - dissolve.start <= 2.05
    # A fade: through (near) black, bright on both sides.
    inside = frames[index(fade.start) : index(fade.end)].mean(axis=(1, 2, 3))
    assert inside.min() < 0.25 * min(frames[index(fade.start) - 1].mean(), frames[index(fade.end)].mean())
    assert 0.8 <= fade.end - fade.start <= 2.55
    assert [t.before for t in truth.transitions] == [0, 1, 2, 3] and last.after == 4


def test_distractors_match_the_pixels(video: tuple[GroundTruth, list[float], np.ndarray]) -> None:
    truth, _, frames = video
    flash, occluder, pan, drift = truth.distractors
    i, j = round(flash.start * FPS), round(flash.end * FPS)
    assert 1 <= j - i <= 3
    assert frames[i].mean() > frames[i - 1].mean() + 60  # overexposed
    assert np.abs(frames[j] - frames[i - 1]).mean() < 15  # and back to the same picture
    # The fast pan moves the picture more per frame than the slow camera around it.
    k0, k1 = round(pan.start * FPS), round(pan.end * FPS)
    fast = max(_diff(frames, k) for k in range(k0 + 1, k1))
    slow = np.median([_diff(frames, k) for k in range(k1 + 2, k1 + 12)])
    assert fast > 3 * slow
    # Lighting drift: the shot's brightness changes steadily, by a lot overall.
    d0, d1 = round(drift.start * FPS), round(drift.end * FPS) - 1
    assert abs(frames[d1].mean() - frames[d0].mean()) > 15
    assert max(_diff(frames, k) for k in range(d0 + 1, d1)) < 12
    # Every distractor stays a second away from every transition.
    for d in truth.distractors:
        for t in truth.transitions:
            if d.kind != "drift":
                assert d.end + 1.0 <= t.start + 1e-9 or t.end + 1.0 <= d.start + 1e-9
    assert occluder.end - occluder.start >= 0.8


def test_deterministic_per_seed(tmp_path: Path) -> None:
    images = synthetic_images(4, seed=0)
    kwargs = {"fps": 10, "size": (96, 64), "shots": 3, "shot_s": (2.5, 3.0)}
    a = make_groundtruth_video(tmp_path / "a.mp4", images, seed=5, **kwargs)
    b = make_groundtruth_video(tmp_path / "b.mp4", images, seed=5, **kwargs)
    c = make_groundtruth_video(tmp_path / "c.mp4", images, seed=6, **kwargs)
    assert (a.transitions, a.distractors, a.shots) == (b.transitions, b.distractors, b.shots)
    assert np.array_equal(_decode(tmp_path / "a.mp4")[1], _decode(tmp_path / "b.mp4")[1])
    assert (a.transitions, a.shots) != (c.transitions, c.shots)
    assert a.to_dict()["transitions"][0]["kind"] in ("cut", "dissolve", "fade")


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    images = synthetic_images(2)
    with pytest.raises(ValueError, match="size"):
        make_groundtruth_video(tmp_path / "x.mp4", images, size=(33, 32))
    with pytest.raises(ValueError, match="first shot"):
        make_groundtruth_video(tmp_path / "x.mp4", images, plan=[("cut", None)])
    with pytest.raises(ValueError, match="too short"):
        make_groundtruth_video(tmp_path / "x.mp4", images, shot_s=(1.0, 1.0), plan=[(None, "occluder")])


TRUTH = GroundTruth(
    path="x.mp4",
    seed=0,
    fps=25,
    frames=500,
    size=(32, 32),
    transitions=[Transition("cut", 4.0, 4.0, 0, 1), Transition("dissolve", 9.0, 10.0, 1, 2)],
    distractors=[Distractor("flash", 6.0, 6.08, 1)],
)

SCORING = {
    "exact": ([4.0, 9.5], (2, 0, 0)),
    "edges-of-tolerance": ([3.5, 10.5], (2, 0, 0)),
    "just-outside": ([3.49, 10.51], (0, 2, 2)),
    "two-for-one-cut": ([3.9, 4.2, 9.5], (2, 1, 0)),
    "missed-dissolve": ([4.0], (1, 0, 1)),
    "nothing": ([], (0, 0, 2)),
}


@pytest.mark.parametrize("times,expected", SCORING.values(), ids=SCORING.keys())
def test_scoring_is_one_to_one_within_tolerance(times: list[float], expected: tuple[int, int, int]) -> None:
    score = score_detections(times, TRUTH, tolerance=0.5)
    assert (score.tp, score.fp, score.fn) == expected


def test_nearest_detection_wins_and_false_alarms_are_explained() -> None:
    score = score_detections([4.3, 4.05, 6.1], TRUTH, tolerance=0.5)
    assert score.matched == [(1, 0)] and score.false_alarms == [0, 2]
    assert distractor_near(6.1, TRUTH) == "flash" and distractor_near(4.3, TRUTH) is None

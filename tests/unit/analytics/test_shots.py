"""Shots from scene-change events: boundaries, how each began, keyframes and per-shot quality."""

from __future__ import annotations

import numpy as np
import pytest

from dinostream.analytics.quality import measure_quality
from dinostream.analytics.shots import FrameStep, ShotFrame, split_shots
from dinostream.core.records import Event, event_id


def unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def change(t: float, kind: str, t_start: float | None = None) -> Event:
    seq = int(t * 2)
    return Event(
        event_id("cam", "scene_change", seq), "scene_change", "cam", t, t_start if t_start is not None else t - 0.5,
        t, 1e9 + t, 0.7, (seq - 1, seq), {"kind": kind},
    )  # fmt: skip


def test_shots_start_at_each_change_and_say_how_they_began() -> None:
    frames = [ShotFrame(i, i * 0.5, unit([1, 0, 0]) if i < 6 else unit([0, 1, 0])) for i in range(12)]
    anomaly = Event(event_id("cam", "anomaly", 2), "anomaly", "cam", 1.0, 1.0, 2.0, 1e9, 2.0, (2,))
    shots = split_shots(frames, [change(4.0, "gradual", 3.0), change(3.0, "cut"), anomaly], end=6.0)

    assert [(s.start, s.end, s.began_with) for s in shots] == [
        (0.0, 3.0, "start"),
        (3.0, 4.0, "cut"),
        (4.0, 6.0, "gradual"),
    ]
    assert [s.frames for s in shots] == [6, 2, 4] and sum(s.frames for s in shots) == len(frames)
    assert shots[0].transition_score is None and shots[2].transition_start == 3.0
    assert shots[0].quality is None, "no quality measured, none made up"


def test_the_keyframe_is_the_frame_nearest_the_shots_mean_look() -> None:
    looks = [unit([1, 0.4, 0]), unit([1, 0, 0]), unit([1, 0, 0.1]), unit([1, -0.1, 0])]
    frames = [ShotFrame(10 + i, i * 0.5, v) for i, v in enumerate(looks)]
    (shot,) = split_shots(frames, [])
    assert shot.keyframe == {"seq": 11, "t": 0.5} and shot.began_with == "start"


def test_a_shot_reports_its_picture_quality_and_the_reasons_most_frames_share() -> None:
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    dark = (clean // 12).astype(np.uint8)
    frames = [ShotFrame(i, i * 0.5, unit([1, 0]), measure_quality(dark if i >= 3 else clean)) for i in range(6)]
    first, second = split_shots(frames, [change(1.5, "cut")], end=3.0)
    assert first.quality is not None and second.quality is not None
    assert second.quality["score"] < first.quality["score"]
    assert "dark" in second.quality["reasons"] and "dark" not in first.quality["reasons"]
    assert second.quality["lowest"] <= second.quality["score"] and second.quality["frames_measured"] == 3


def test_without_frames_a_video_is_one_empty_shot() -> None:
    (shot,) = split_shots([], [], end=2.0)
    assert (shot.start, shot.end, shot.frames, shot.keyframe) == (0.0, 2.0, 0, None)
    assert shot.to_dict()["duration"] == pytest.approx(2.0)


def test_camera_motion_per_shot_still_moving_or_whip() -> None:
    def frames(steps: list[FrameStep | None], t0: float = 0.0) -> list[ShotFrame]:
        return [ShotFrame(i, t0 + i * 0.5, unit([1, 0]), step=s) for i, s in enumerate(steps)]

    still = frames([None] + [FrameStep(0.0, 0.0, 0.95, 0.5)] * 5)
    slow = frames([FrameStep(0.5, 0.0, 0.1, 0.5)] + [FrameStep(0.02, 0.0, 0.9, 0.5)] * 5, 3.0)  # 4 %/s
    whip = frames([FrameStep(0.0, 0.0, 0.1, 0.5)] + [FrameStep(0.0, 0.01, 0.9, 0.5), FrameStep(-0.3, 0.0, 0.8, 0.5)]
                  + [FrameStep(0.0, 0.01, 0.9, 0.5)] * 3, 6.0)  # fmt: skip
    shots = split_shots(still + slow + whip, [change(3.0, "cut"), change(6.0, "cut")], end=9.0)

    motion = [s.camera_motion for s in shots]
    assert all(m is not None for m in motion)
    assert [m["kind"] for m in motion] == ["still", "moving", "whip"]  # type: ignore[index]
    assert motion[1]["path_per_s"] == pytest.approx(0.04)  # type: ignore[index]
    assert motion[1]["steps"] == 5, "the step across the cut is not the shot's"  # type: ignore[index]
    assert motion[2]["largest_step"] == pytest.approx(0.3)  # type: ignore[index]
    assert split_shots(frames([None, None]), [])[0].camera_motion is None

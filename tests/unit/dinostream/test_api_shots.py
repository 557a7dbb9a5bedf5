"""Engine.shots (issue 16): the shots the asset analysis gives (kind, times, keyframe, quality,
camera motion), from a video path or its records, cut where scene_changes finds the cuts."""

from __future__ import annotations

from pathlib import Path

import pytest

import dinostream
from dinostream.api import Engine


@pytest.fixture(scope="module")
def ds(tiny_model_dir: Path) -> Engine:
    return dinostream.Engine.load(str(tiny_model_dir), device="cpu")


def test_shots_of_a_video_start_at_its_cuts_with_keyframes_quality_and_motion(
    ds: Engine, cut_video: tuple[Path, list[float]]
) -> None:
    path, cuts = cut_video
    records = ds.video(path, fps=5)
    shots = ds.shots(records)
    assert [round(s.start) for s in shots[1:]] == [round(t) for t in cuts]
    assert [s.start for s in shots[1:]] == [c.t for c in ds.scene_changes(records)]
    assert shots[0].began_with == "start" and all(s.began_with in ("cut", "gradual") for s in shots[1:])
    assert sum(s.frames for s in shots) == len(records)
    for before, after in zip(shots, shots[1:], strict=False):
        assert before.end == after.start
    for shot in shots:
        assert shot.keyframe is not None and shot.start <= shot.keyframe["t"] <= shot.end
        assert shot.quality is not None and 0 <= shot.quality["score"] <= 1
        assert shot.camera_motion is not None and shot.camera_motion["kind"] in ("still", "moving", "whip")
        assert set(shot.to_dict()) >= {"began_with", "start", "end", "keyframe", "quality", "camera_motion"}
    by_path = ds.shots(path, fps=5)  # the same from the file (decoded once, kept)
    assert [s.to_dict() for s in by_path] == [s.to_dict() for s in shots]

"""The scene-change detector through the real path: a generated video with a cut and a dissolve,
decoded by PyAV, embedded by a (tiny, random) DINOv3, analysed by `dinostream analyze`'s code."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dinostream.analyze import analyze_file
from dinostream.core.records import Event
from dinostream.core.settings import IngestSettings, ModelSettings, Settings
from generators.groundtruth import make_groundtruth_video, score_detections, synthetic_images

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("fps", [2.0, 5.0], ids=["2fps", "5fps"])
def test_cut_and_dissolve_through_the_model(tmp_path: Path, tiny_model_dir: Path, fps: float) -> None:
    path = tmp_path / "cut-dissolve.mp4"
    plan = [(None, None), ("cut", None), ("dissolve", None)]
    truth = make_groundtruth_video(
        path, synthetic_images(3, seed=4), seed=2, fps=25, size=(224, 160), shot_s=(3.0, 3.5), plan=plan
    )
    settings = Settings(ingest=IngestSettings(sample_fps=fps), model=ModelSettings(model=str(tiny_model_dir)))
    events: list[Event] = []
    asyncio.run(analyze_file(str(path), settings, events.append))

    found = [e for e in events if e.type == "scene_change"]
    score = score_detections([e.t for e in found], truth, tolerance=0.5)
    assert (score.tp, score.fp, score.fn) == (2, 0, 0), ([t.start for t in truth.transitions], [e.t for e in found])
    cut, dissolve = found
    assert cut.details["kind"] == "cut" and cut.frames[1] - cut.frames[0] == 1
    # The dissolve's event spans it: from the old picture's last frame to past its middle.
    d = truth.transitions[1]
    assert dissolve.details["kind"] == "gradual"
    assert cut.t < dissolve.t_start <= d.start + 0.5 and dissolve.t_end >= (d.start + d.end) / 2


@pytest.mark.parametrize("seed", [1, 2, 3], ids=lambda s: f"seed{s}")
def test_whip_pans_are_camera_moves_through_the_model(tmp_path: Path, tiny_model_dir: Path, seed: int) -> None:
    # A whip pan across half the picture inside a shot, then a cut: the thumbnails' pixels show
    # the camera moving, whatever the (tiny, random) model's features make of it (with
    # motion_similarity=1.01 all three seeds give a false cut at the pan).
    path = tmp_path / "whip-pan.mp4"
    plan = [(None, "fast_pan"), ("cut", None)]
    truth = make_groundtruth_video(
        path, synthetic_images(2, seed=seed), seed=seed, fps=25, size=(320, 240), shot_s=(4.0, 4.5), plan=plan
    )
    settings = Settings(ingest=IngestSettings(sample_fps=5.0), model=ModelSettings(model=str(tiny_model_dir)))
    events: list[Event] = []
    asyncio.run(analyze_file(str(path), settings, events.append))

    found = [e.t for e in events if e.type == "scene_change"]
    score = score_detections(found, truth, tolerance=0.5)
    assert (score.tp, score.fp, score.fn) == (1, 0, 0), ([t.start for t in truth.transitions], truth.distractors, found)

"""The anomaly detector on the real path: a generated H.264 video with a pasted object, decoded and
resized by the project's ingest, embedded by a tiny DINOv3 checkpoint, scored.

The tiny model has random weights, so this test checks that the pieces fit (frames in, one
score and one grid-shaped heatmap per frame, well-formed events) and only what holds for any
features that keep local pixel differences: a large, high-contrast pasted object is what the
detector finds (its frames score about ten times the normal ones with this seed).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from dinostream.analytics.anomaly import AnomalyDetector, FrameScore
from dinostream.core.records import Event, FrameEmbedding
from dinostream.core.settings import AnomalySettings, IngestSettings, ModelSettings
from dinostream.embedding.stage import EmbeddingStage, load_model_async
from dinostream.ingest.source_plan import plan_sources
from generators.anomaly_scenes import SceneStream, procedural_backdrop, procedural_object

FPS = 2
FRAMES = 34
WARMUP = 20
OBJECT = range(24, 30)
SIDE = 128  # model input preset: a budget of 8 x 8 patches


async def embed(path: Path, model_dir: Path) -> list[FrameEmbedding]:
    ingest = IngestSettings(sample_fps=FPS)
    model = ModelSettings(model=str(model_dir), image_size=SIDE, device="cpu", max_batch=8)
    (spec,) = await plan_sources([str(path)], ingest)
    records: list[FrameEmbedding] = []

    async def sink(batch: list[FrameEmbedding]) -> None:
        records.extend(batch)

    stage = EmbeddingStage(await load_model_async(model), model, ingest, sink)
    stage.start()
    try:
        await stage.pump(spec)
    finally:
        await stage.stop()
    return sorted(records, key=lambda r: r.seq)


def test_pasted_object_through_ingest_and_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    cam = SceneStream(procedural_backdrop(np.random.default_rng(1)), frames=FRAMES, size=(160, 128), seed=2)
    cam.add_object(OBJECT.start, len(OBJECT), procedural_object(np.random.default_rng(3)), width=0.35, where=(0.7, 0.4))
    truths = cam.write_video(tmp_path / "cam.mp4", fps=FPS)
    records = asyncio.run(embed(tmp_path / "cam.mp4", tiny_model_dir))
    assert [r.seq for r in records] == list(range(FRAMES))

    det = AnomalyDetector(AnomalySettings(warmup_frames=WARMUP))
    scores: list[FrameScore] = []
    events: list[Event] = []
    for rec in records:
        events += det.process(rec)
        fs = det.last_score(rec.stream)
        assert (fs is None) == (rec.seq < WARMUP)
        if fs is not None:
            assert fs.heatmap.shape == rec.patches.shape[:2]
            assert 0.0 <= fs.heatmap.min() and fs.heatmap.max() <= 1.0
            scores.append(fs)
    events += det.flush(records[0].stream)

    anomalous = [fs.score for fs in scores if truths[fs.seq].anomalous]
    normal = [fs.score for fs in scores if not truths[fs.seq].anomalous]
    assert min(anomalous) > max(normal), "the pasted object must be the most unusual thing in the video"
    box = truths[OBJECT.start].box
    assert box is not None
    peaks_inside = [
        box[0] <= fs.peak[0] <= box[2] and box[1] <= fs.peak[1] <= box[3] for fs in scores if fs.seq in OBJECT
    ]
    assert sum(peaks_inside) >= len(OBJECT) // 2
    # One occurrence, from the object's first frame to its last, with a box on it.
    assert len({ev.id for ev in events}) == 1
    assert events[0].status == "open" and events[-1].status == "closed"
    assert events[-1].t_start == OBJECT.start / FPS and events[-1].t_end == (OBJECT.stop - 1) / FPS
    (found,) = events[-1].boxes
    assert found.x0 < box[2] and box[0] < found.x1 and found.y0 < box[3] and box[1] < found.y1
    for ev in events:
        assert ev.type == "anomaly" and ev.heatmap is not None
        assert ev.heatmap.values.shape == records[0].patches.shape[:2]
        assert Event.decode(ev.encode()) == ev

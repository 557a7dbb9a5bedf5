"""The analysis of a stored video (`POST /api/v1/assets/{id}/analysis`): `analyze`'s pipeline
(`dinostream.analyze.embed_file` and the service's processors, `default_processors`) over the
file, summed up as shots (kind, times, keyframe, picture quality, camera motion), phases and
anomalies.

The gateway's `AnalysisJobs` runs it in the background; `analysis_runner` binds the settings
and the model the gateway already has, so the dashboard layer never imports this one. The
video is analysed as stream `<asset id>`, and with `emit` its events (their final state) go
where a stream's go: the gateway sends them to the events topic, so the websocket, the index
and the alerts see them as they see a camera's.

    >>> run = analysis_runner(settings, model, emit)  # model: () -> Awaitable[LoadedModel]
    >>> result = await run("a_...", Path(".../data"), lambda fraction: None)
    >>> [(s["start"], s["began_with"]) for s in result["shots"]]
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dinostream.analytics.frame_motion import MotionFrame, align, frame_motion_image, prepare
from dinostream.analytics.processor_set import ProcessorSet
from dinostream.analytics.quality import measure_jpeg
from dinostream.analytics.scene_change import global_vector
from dinostream.analytics.shots import FrameStep, ShotFrame, split_shots
from dinostream.analytics.worker import default_processors
from dinostream.analyze import embed_file, video_duration
from dinostream.core.records import Event, FrameEmbedding
from dinostream.core.settings import Settings

if TYPE_CHECKING:  # torch and transformers load with the model, not with every role
    from dinostream.embedding.model_loader import LoadedModel

Progress = Callable[[float], None]
Emit = Callable[[Event], Awaitable[None]]


async def analyze_video(
    path: Path,
    settings: Settings,
    loaded: LoadedModel,
    progress: Progress,
    *,
    stream: str | None = None,
    emit: Emit | None = None,
) -> dict[str, Any]:
    """Every processor over the video at `path`; its shots, phases, anomalies and event counts.
    `progress(fraction)` follows the media time analysed against the header's duration. `stream`:
    the stream id its records and events carry (default: from the file name); `emit(event)`
    receives each event's final state once the video is analysed."""
    if stream is not None:
        with tempfile.TemporaryDirectory(prefix="dinostream-analysis-") as tmp:
            named = Path(tmp) / f"{stream}{path.suffix or '.video'}"  # the stream id comes from the name
            named.symlink_to(path.resolve())
            return await analyze_video(named, settings, loaded, progress, emit=emit)
    duration = await asyncio.to_thread(video_duration, str(path))
    processors = ProcessorSet(default_processors(settings.analytics))
    frames: list[ShotFrame] = []
    events: dict[str, Event] = {}  # by id: an ongoing event's last state

    def take(found: list[Event]) -> None:
        for e in found:
            events[e.id] = e

    shot_frame = ShotFrames()

    def on_record(rec: FrameEmbedding) -> None:
        take(processors.process(rec))
        frames.append(shot_frame(rec))
        if duration:
            progress(rec.pts / duration)

    stream_id = await embed_file(str(path), settings, loaded, on_record)
    take(processors.flush(stream_id))
    end = max(duration or 0.0, frames[-1].t if frames else 0.0)
    found = sorted(events.values(), key=lambda e: (e.t_start, e.t))
    if emit is not None:
        for event in found:
            await emit(event)
    shots = split_shots(frames, [e for e in found if e.type == "scene_change"], end=end)
    counts: dict[str, int] = {}
    for e in found:
        counts[e.type] = counts.get(e.type, 0) + 1
    return {
        "stream": stream_id,
        "duration_s": duration,
        "frames_analysed": len(frames),
        "sample_fps": settings.ingest.sample_fps,
        "model": {"id": _public_id(loaded.model_id), "untrained": loaded.untrained},
        "cuts": [e.t for e in found if e.type == "scene_change"],
        "shots": [s.to_dict() for s in shots],
        "phases": [_phase(e) for e in found if e.type == "phase"],
        "anomalies": [_anomaly(e) for e in found if e.type == "anomaly"],
        "event_counts": counts,
    }


class ShotFrames:
    """Each record's `ShotFrame` for `split_shots`, records given in order: its global vector, its
    thumbnail's picture quality and its camera step from the record before (FFT alignment of the
    thumbnails, `dinostream.analytics.frame_motion`). The asset analysis and `Engine.shots` use it."""

    def __init__(self) -> None:
        self._previous: tuple[float, MotionFrame] | None = None  # the last frame's time and prepared thumbnail

    def __call__(self, rec: FrameEmbedding) -> ShotFrame:
        image = frame_motion_image(rec)
        here = prepare(image) if image is not None else None
        step = None
        if here is not None and self._previous is not None and self._previous[1].image.shape == here.image.shape:
            t0, before = self._previous
            a = align(before, here)
            step = FrameStep(a.dx / a.width, a.dy / a.width, a.similarity, rec.pts - t0)
        self._previous = (rec.pts, here) if here is not None else None
        return ShotFrame(rec.seq, rec.pts, global_vector(rec), measure_jpeg(rec.thumbnail), step)


def analysis_runner(
    settings: Settings, model: Callable[[], Awaitable[LoadedModel]], emit: Emit | None = None
) -> Callable[[str, Path, Progress], Awaitable[dict[str, Any]]]:
    """`AnalyzeVideo` for `dinostream.dashboard.analysis_jobs`: `model()` gives the loaded model
    (the process's own, or the gateway's lazily loaded one); the video is stream `<asset id>`,
    its events go to `emit`."""

    async def run(asset_id: str, path: Path, progress: Progress) -> dict[str, Any]:
        return await analyze_video(path, settings, await model(), progress, stream=asset_id, emit=emit)

    return run


def _public_id(model_id: str) -> str:
    """A Hub id as it is; a local directory or file by its name only (no server paths in answers)."""
    return Path(model_id).name if Path(model_id).is_absolute() else model_id


def _phase(e: Event) -> dict[str, Any]:
    return {"label": e.details.get("phase_label"), "start": e.t_start, "end": e.t_end, "status": e.status}


def _anomaly(e: Event) -> dict[str, Any]:
    return {
        "start": e.t_start,
        "end": e.t_end,
        "score": e.score,
        "peak_seq": e.details.get("peak_seq"),
        "boxes": [b.to_dict() for b in e.boxes],
        "status": e.status,
    }

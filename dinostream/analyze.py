"""`dinostream analyze VIDEO...`: the live pipeline's ingest, model and processors on files, with
no broker or servers. Events go to `emit` (the CLI prints one JSON object per line).

The pieces are the service's: the model loading and `EmbeddingStage.from_settings` of the model
node, the processor set of the analytics worker (`default_processors`), and with `--index` the
index sink's writer (`IndexWriter`), each called here without Kafka.

Several files are analysed one after the other with one set of processors, as cameras of one
site: re-identification links an object seen in a later file to the same object in an earlier
one, and watchlist exemplars (`watch`: label and picture of what to look for) are looked for
in all of them. A picture is taken to be a crop cut from a frame of the first video, at that
video's scale (`dinostream.analytics.exemplars.CropExemplar`).

A video may also be a list of pictures (`FrameList`: the frames of a recording saved as JPEGs,
say), with the rate they were taken at or each one's time; without either they are numbered at
1 fps, with a warning that says so (scene changes and phases are timed by it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from dinostream.analytics.exemplars import DEFAULT_FRAME, CropExemplar
from dinostream.analytics.processor_set import ProcessorSet
from dinostream.analytics.watchlist import Exemplar, Watchlist
from dinostream.analytics.worker import default_processors
from dinostream.core.records import Event, FrameEmbedding, check_stream_id
from dinostream.core.settings import Settings
from dinostream.embedding.input_size import grid_size
from dinostream.ingest.pictures import PictureLike, read_rgb
from dinostream.ingest.source_plan import plan_sources
from dinostream.progress import Progress
from dinostream.sinks.index_factory import open_index
from dinostream.sinks.index_sink import IndexWriter

if TYPE_CHECKING:  # torch and transformers load with the model, not with every role
    from dinostream.embedding.model_loader import LoadedModel

log = logging.getLogger(__name__)

PICTURE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
FRAME_LIST_STREAM = "frames"
_FRAME_CHUNK = 64  # pictures read and embedded at once (a long list is never held decoded)


class NoFrameTimes(UserWarning):
    """A frame list came without a frame rate or timestamps: its frames were numbered at 1 fps."""


def frame_times(count: int, *, fps: float | None = None, timestamps: Sequence[float] | None = None) -> list[float]:
    """Media seconds of `count` frames: `timestamps` as given (finite, increasing, one per frame),
    else frame i at i / `fps`, else i (1 fps) with a `NoFrameTimes` warning naming the problem.
    ValueError names a bad fps or timestamp."""
    if fps is not None and timestamps is not None:
        raise ValueError("give fps or timestamps for a frame list, not both")
    if timestamps is not None:
        ts = [float(t) for t in timestamps]
        if len(ts) != count:
            raise ValueError(f"timestamps: {len(ts)} times for {count} frames (one per frame)")
        for i, t in enumerate(ts):
            if not math.isfinite(t) or t < 0:
                raise ValueError(f"timestamps[{i}] must be a finite number of seconds >= 0, got {t!r}")
            if i and t <= ts[i - 1]:
                raise ValueError(f"timestamps must increase: timestamps[{i}] = {t} after {ts[i - 1]}")
        return ts
    if fps is not None:
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a frame rate > 0, got {fps!r}")
        return [i / fps for i in range(count)]
    if count > 1:
        warnings.warn(
            f"a list of {count} pictures without fps or timestamps: numbered at 1 fps (frame i at i s); "
            "scene changes and phases are timed by it; pass fps= or timestamps=",
            NoFrameTimes,
            stacklevel=3,
        )
    return [float(i) for i in range(count)]


@dataclass(frozen=True)
class FrameList:
    """A video given as pictures in order (paths, arrays, PIL images), with each one's media time.

    >>> FrameList(sorted(glob("recap/*.jpg")), fps=1)               # times 0, 1, 2, ...
    >>> FrameList(paths, timestamps=[0.0, 0.4, 1.3])                 # as they were taken
    """

    pictures: Sequence[Any]  # PictureLike
    pts: tuple[float, ...]
    stream: str = FRAME_LIST_STREAM

    def __init__(
        self,
        pictures: Sequence[Any],
        *,
        fps: float | None = None,
        timestamps: Sequence[float] | None = None,
        stream: str = FRAME_LIST_STREAM,
    ) -> None:
        if isinstance(pictures, (str, Path, bytes)):
            raise ValueError("a frame list is a list of pictures, got a single one")
        pictures = list(pictures)
        if not pictures:
            raise ValueError("a frame list needs at least one picture")
        check_stream_id(stream)
        object.__setattr__(self, "pictures", pictures)
        object.__setattr__(self, "pts", tuple(frame_times(len(pictures), fps=fps, timestamps=timestamps)))
        object.__setattr__(self, "stream", stream)

    def __len__(self) -> int:
        return len(self.pictures)

    @property
    def name(self) -> str:
        """What the progress line and the log call it."""
        first = self.pictures[0]
        where = f" from {Path(first).parent}" if isinstance(first, (str, Path)) else ""
        return f"{len(self.pictures)} pictures{where}"


def is_picture_path(path: str | Path) -> bool:
    """Whether a file name says it is a still picture (a frame list's member), not a video."""
    return Path(path).suffix.lower() in PICTURE_SUFFIXES


async def embed_frames(
    frames: FrameList,
    settings: Settings,
    loaded: LoadedModel,
    on_record: Callable[[FrameEmbedding], None],
    *,
    progress: Progress | None = None,
) -> str:
    """Embed a frame list's pictures in order with the service's model stage, each record with
    its frame's seq, pts and stream, and as wall clock the time it was read (as a video file's
    frames have: cameras analysed one after the other are seen one after the other); returns
    the stream id."""
    from dinostream.embedding.stage import EmbeddingStage

    last = -math.inf

    async def ignore(batch: list[FrameEmbedding]) -> None:
        return None

    async with EmbeddingStage.from_settings(loaded, settings, ignore, kafka=False) as stage:
        for first in range(0, len(frames), _FRAME_CHUNK):
            chunk = frames.pictures[first : first + _FRAME_CHUNK]
            rgbs = await asyncio.to_thread(_read_pictures, chunk)
            for i, rec in enumerate(await stage.embed_image_records(rgbs, stream=frames.stream)):
                seq = first + i
                pts = frames.pts[seq]
                last = max(last, time.time())
                on_record(dataclasses.replace(rec, seq=seq, pts=pts, ts=last))
                if progress is not None:
                    progress.update(pts)
    return frames.stream


def _read_pictures(pictures: Sequence[Any]) -> list[np.ndarray]:
    return [read_rgb(_picture(p)) for p in pictures]


def _picture(p: Any) -> PictureLike:
    return Path(p) if isinstance(p, str) else p


def video_size(path: str) -> tuple[int, int] | None:
    """The file's first video stream's (width, height), if it has one that says."""
    try:
        with av.open(path, metadata_errors="replace") as container:
            video = container.streams.video[0] if container.streams.video else None
            if video is not None and video.codec_context.width and video.codec_context.height:
                return int(video.codec_context.width), int(video.codec_context.height)
    except (av.error.FFmpegError, OSError):
        return None
    return None


def video_duration(path: str) -> float | None:
    """The file's declared duration in seconds, if its header says (for the progress line)."""
    try:
        with av.open(path, metadata_errors="replace") as container:
            if container.duration:
                return float(container.duration / av.time_base)
            video = container.streams.video[0] if container.streams.video else None
            if video is not None and video.duration and video.time_base:
                return float(video.duration * video.time_base)
    except (av.error.FFmpegError, OSError):
        return None
    return None


async def embed_file(
    path: str,
    settings: Settings,
    loaded: LoadedModel,
    on_record: Callable[[FrameEmbedding], None],
    *,
    progress: Progress | None = None,
) -> str:
    """Decode and embed every sampled frame of `path` as fast as possible, in order, with the
    service's model stage (`EmbeddingStage.from_settings`, no Kafka); returns the stream id the
    records carry."""
    from dinostream.embedding.stage import EmbeddingStage

    (spec,) = await plan_sources([path], settings.ingest)

    async def sink(batch: list[FrameEmbedding]) -> None:
        for rec in batch:
            on_record(rec)
            if progress is not None:
                progress.update(rec.pts)

    # One file as fast as it decodes: FFmpeg's threads too (decode_threads 0), unless set.
    ingest: dict[str, object] = {"realtime": False}
    if "decode_threads" not in settings.ingest.model_fields_set:
        ingest["decode_threads"] = 0
    fast = settings.model_copy(update={"ingest": settings.ingest.model_copy(update=ingest)})
    async with EmbeddingStage.from_settings(loaded, fast, sink, kafka=False) as stage:  # stopping delivers all
        await stage.pump(spec)
    return spec.stream


def replay(processors: ProcessorSet, records: Iterable[FrameEmbedding]) -> list[Event]:
    """What `processors` report for `records` in order, then what each stream leaves open at its end."""
    events: list[Event] = []
    streams: dict[str, None] = {}
    for rec in records:
        streams[rec.stream] = None
        events += processors.process(rec)
    for stream in streams:
        events += processors.flush(stream)
    return events


async def analyze_files(
    paths: Sequence[str | FrameList],
    settings: Settings,
    emit: Callable[[Event], None],
    *,
    watch: Sequence[tuple[str, str]] = (),
    show_progress: bool = True,
    index: bool = False,
) -> int:
    """Run every processor over `paths` (video files or `FrameList`s) in turn; returns the number
    of frames analysed.

    `watch`: (label, picture path) pairs registered as watchlist exemplars first. With `index`,
    frames and events are also written to the index (`settings.index`: Qdrant Edge under the data
    dir, or the Qdrant server), so a recording becomes searchable like a live stream."""
    from dinostream.embedding.stage import load_model_async

    pictures = [(label, read_rgb(Path(p))) for label, p in watch]  # a bad picture fails before the model loads
    loaded = await load_model_async(settings.model)
    watchlist = Watchlist()
    if pictures:
        frame_size = (await asyncio.to_thread(_first_size, paths[0]) if paths else None) or DEFAULT_FRAME
        await register_exemplars(watchlist, pictures, settings, loaded, frame_size)
    processors = ProcessorSet(default_processors(settings.analytics, watchlist=watchlist))
    writer = None
    if index:
        dims = (loaded.hidden_size, settings.model.patch_pca_dims)
        store = await asyncio.to_thread(
            open_index, settings.index, settings.data_dir, *dims, reid=settings.analytics.reid
        )
        writer = IndexWriter(store, settings.index)  # the index sink's writes, without Kafka
    pending: list[FrameEmbedding] = []
    frames = 0

    def report(events: list[Event]) -> None:
        for event in events:
            emit(event)
        if writer is not None and events:
            writer.write([], events)

    def process(rec: FrameEmbedding) -> None:
        nonlocal frames
        frames += 1
        report(processors.process(rec))
        if writer is not None:
            pending.append(rec)
            if len(pending) >= settings.index.batch_size:
                writer.write(pending, [])  # idempotent by (stream, seq): a re-run overwrites
                pending.clear()

    try:
        for path in paths:
            verb = "index" if index else "analyze"
            if isinstance(path, FrameList):
                bar = Progress(path.pts[-1], f"{verb} {path.name}") if show_progress else None
                stream = await embed_frames(path, settings, loaded, process, progress=bar)
            else:
                bar = Progress(video_duration(path), f"{verb} {Path(path).name}") if show_progress else None
                stream = await embed_file(path, settings, loaded, process, progress=bar)
            if bar is not None:
                bar.close()
            report(processors.flush(stream))  # close what is still open at the end of the file
        if writer is not None and pending:
            writer.write(pending, [])
    finally:
        if writer is not None:
            writer.index.close()
    return frames


def _first_size(path: str | FrameList) -> tuple[int, int] | None:
    """The frame size of a video, or of a frame list's first picture."""
    if isinstance(path, FrameList):
        rgb = read_rgb(_picture(path.pictures[0]))
        return int(rgb.shape[1]), int(rgb.shape[0])
    return video_size(path)


async def analyze_file(path: str, settings: Settings, emit: Callable[[Event], None]) -> int:
    """Run every processor over one file; returns the number of frames analysed."""
    return await analyze_files([path], settings, emit, show_progress=False)


async def register_exemplars(
    watchlist: Watchlist,
    pictures: list[tuple[str, np.ndarray]],
    settings: Settings,
    loaded: LoadedModel,
    frame_size: tuple[int, int],
) -> None:
    """Each picture becomes an exemplar as a crop of a `frame_size` frame: its views on a canvas
    of that size, embedded as such frames are (see `CropExemplar`)."""
    from dinostream.embedding.stage import EmbeddingStage

    async def ignore(batch: list[FrameEmbedding]) -> None:
        return None

    reid = settings.analytics.reid
    async with EmbeddingStage.from_settings(loaded, settings, ignore, kafka=False) as stage:
        grid = grid_size(stage.input_size_for(frame_size), patch=loaded.patch_size, pool=settings.model.patch_pool)
        for i, (label, rgb) in enumerate(pictures):
            plan = CropExemplar(rgb, frame_size)
            views = plan.views(grid)
            records = await stage.embed_image_records([img for v in views for img in (v.scene, v.empty)])
            patches = [r.patches for r in records]
            vector = plan.vector(views, patches[0::2], patches[1::2], reid)
            watchlist.add(Exemplar(f"watch-{i + 1}", label, vector))

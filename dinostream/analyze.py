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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import av
import numpy as np

from dinostream.analytics.exemplars import DEFAULT_FRAME, CropExemplar
from dinostream.analytics.processor_set import ProcessorSet
from dinostream.analytics.watchlist import Exemplar, Watchlist
from dinostream.analytics.worker import default_processors
from dinostream.core.records import Event, FrameEmbedding
from dinostream.core.settings import Settings
from dinostream.embedding.input_size import grid_size
from dinostream.embedding.model_loader import LoadedModel
from dinostream.embedding.stage import EmbeddingStage, load_model_async
from dinostream.ingest.pictures import read_rgb
from dinostream.ingest.source_plan import plan_sources
from dinostream.progress import Progress
from dinostream.sinks.index_factory import open_index
from dinostream.sinks.index_sink import IndexWriter

log = logging.getLogger(__name__)


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
    (spec,) = await plan_sources([path], settings.ingest)

    async def sink(batch: list[FrameEmbedding]) -> None:
        for rec in batch:
            on_record(rec)
            if progress is not None:
                progress.update(rec.pts)

    fast = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"realtime": False})})
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
    paths: Sequence[str],
    settings: Settings,
    emit: Callable[[Event], None],
    *,
    watch: Sequence[tuple[str, str]] = (),
    show_progress: bool = True,
    index: bool = False,
) -> int:
    """Run every processor over `paths` in turn; returns the number of frames analysed.

    `watch`: (label, picture path) pairs registered as watchlist exemplars first. With `index`,
    frames and events are also written to the index (`settings.index`: Qdrant Edge under the data
    dir, or the Qdrant server), so a recording becomes searchable like a live stream."""
    pictures = [(label, read_rgb(Path(p))) for label, p in watch]  # a bad picture fails before the model loads
    loaded = await load_model_async(settings.model)
    watchlist = Watchlist()
    if pictures:
        frame_size = (await asyncio.to_thread(video_size, paths[0]) if paths else None) or DEFAULT_FRAME
        await _register(watchlist, pictures, settings, loaded, frame_size)
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


async def analyze_file(path: str, settings: Settings, emit: Callable[[Event], None]) -> int:
    """Run every processor over one file; returns the number of frames analysed."""
    return await analyze_files([path], settings, emit, show_progress=False)


async def _register(
    watchlist: Watchlist,
    pictures: list[tuple[str, np.ndarray]],
    settings: Settings,
    loaded: LoadedModel,
    frame_size: tuple[int, int],
) -> None:
    """Each picture becomes an exemplar as a crop of a `frame_size` frame: its views on a canvas
    of that size, embedded as such frames are (see `CropExemplar`)."""

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

"""`dinostream analyze VIDEO`: the live pipeline's ingest, model and processors on one file,
with no broker or servers. Events go to `emit` (the CLI prints one JSON object per line)."""

from __future__ import annotations

from collections.abc import Callable

from analytics.processor_set import ProcessorSet
from analytics.worker import default_processors
from dinostream.pipeline import EmbeddingStage, load_model_async, plan_sources
from dinostream.records import Event, FrameEmbedding
from dinostream.settings import Settings


async def analyze_file(path: str, settings: Settings, emit: Callable[[Event], None]) -> int:
    """Run every processor over `path`; returns the number of frames analysed."""
    (spec,) = await plan_sources([path], settings.ingest)
    loaded = await load_model_async(settings.model)
    processors = ProcessorSet(default_processors(settings.analytics))
    frames = 0

    async def sink(batch: list[FrameEmbedding]) -> None:
        nonlocal frames
        for rec in batch:
            frames += 1
            for event in processors.process(rec):
                emit(event)

    ingest = settings.ingest.model_copy(update={"realtime": False})  # every frame, as fast as possible
    stage = EmbeddingStage(loaded, settings.model, ingest, sink, data_dir=settings.data_dir)
    stage.start()
    try:
        await stage.pump(spec)
    finally:
        await stage.stop()
    for event in processors.flush(spec.stream):  # close what is still open at the end of the file
        emit(event)
    return frames

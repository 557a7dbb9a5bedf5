"""The stages every mode shares: checked sources feeding one micro-batched model stage.

`dinostream up` sends the stage's output to Kafka; `dinostream analyze` hands it straight to
the same processors. Neither has its own copy of ingest or embedding.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from analytics.batcher import MicroBatcher
from analytics.embedder import Embedder
from analytics.model_loader import LoadedModel, load_model
from dinostream.errors import DinostreamError, SourceError
from dinostream.records import FrameEmbedding
from dinostream.settings import IngestSettings, ModelSettings
from ingest.av_source import check_source, make_source, stream_id_for
from ingest.resize import resize_rgb
from ingest.source import Frame, Source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceSpec:
    stream: str
    url: str


async def plan_sources(urls: Sequence[str], settings: IngestSettings) -> list[SourceSpec]:
    """Stream ids for the given URLs, after opening every source (in parallel, within the open
    timeout) so a broken URL stops start-up with its reason instead of failing later."""
    await asyncio.gather(*(asyncio.to_thread(check_source, url, settings, connect=True) for url in urls))
    specs: list[SourceSpec] = []
    seen: set[str] = set()
    for url in urls:
        stream = base = stream_id_for(url)
        n = 2
        while stream in seen:
            stream = f"{base}-{n}"[:64]
            n += 1
        seen.add(stream)
        specs.append(SourceSpec(stream, url))
    return specs


async def load_model_async(settings: ModelSettings) -> LoadedModel:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # progress bars on stderr would garble our one-line errors
    loaded = await asyncio.to_thread(load_model, settings.model, device=settings.device, seed=settings.seed)
    if loaded.untrained:
        log.warning(
            "model %s has RANDOM weights: features are untrained and events carry no meaning; "
            "pass --model with a DINOv3 checkpoint for real results",
            loaded.model_id,
        )
    else:
        log.info("model %s loaded on %s", loaded.model_id, loaded.device)
    return loaded


class EmbeddingStage:
    """Sources → bounded micro-batcher → model, results to `sink` in order per stream."""

    def __init__(
        self,
        loaded: LoadedModel,
        model: ModelSettings,
        ingest: IngestSettings,
        sink: Callable[[list[FrameEmbedding]], Awaitable[None]],
    ) -> None:
        self.model_settings = model
        self.ingest = ingest
        self.loaded = loaded
        self.embedder = Embedder(loaded, model)
        self.batcher = MicroBatcher(
            self.embedder.embed,
            max_batch=model.max_batch,
            max_wait_s=model.max_wait_ms / 1000.0,
            queue_size=model.queue_size,
            sink=sink,
        )
        self.sources: dict[str, Source] = {}
        self.failures: dict[str, str] = {}

    @property
    def input_size(self) -> tuple[int, int]:
        s = self.model_settings.image_size
        return (s, s)

    def start(self) -> None:
        self.batcher.start()

    async def stop(self) -> None:
        """Close the sources, then let the batcher finish everything it accepted."""
        for src in self.sources.values():
            await src.close()
        await self.batcher.stop()

    async def pump(self, spec: SourceSpec) -> None:
        """Feed one source until it ends. A source's failure is logged and recorded; others go on."""
        source = make_source(spec.url, spec.stream, self.ingest, self.input_size)
        self.sources[spec.stream] = source
        try:
            async for frame in source.frames():
                await self.batcher.put(frame)
            log.info("stream %s ended after %d sampled frames", spec.stream, source.stats.sampled)
        except SourceError as e:
            self.failures[spec.stream] = str(e)
            source.stats.error = str(e)
            log.error("stream %s failed: %s", spec.stream, e)
            raise
        finally:
            await source.close()

    async def embed_images(self, images: list[np.ndarray]) -> np.ndarray:
        """Unit-length CLS vectors for query images, through the same scaler and batcher as video."""
        out = []
        for img in images:
            frame = Frame(stream="query", seq=0, pts=0.0, ts=time.time(), image=resize_rgb(img, self.input_size))
            rec = await self.batcher.embed(frame)
            v = rec.cls.astype(np.float32)
            out.append(v / max(float(np.linalg.norm(v)), 1e-12))
        return np.stack(out)


def describe_error(e: BaseException) -> str:
    """One line for the user."""
    if isinstance(e, DinostreamError):
        return str(e)
    return f"{type(e).__name__}: {e}"

"""The model stage: checked sources feeding one micro-batched model stage.

`dinostream up` sends the stage's output to Kafka; `dinostream analyze` hands it straight to
the same processors. Neither has its own copy of ingest or embedding. In `up`, sources are run
by `dinostream.ingest.stream_manager.StreamManager` (one supervisor per stream, added and removed at run
time) and feed the stage through `put`; `analyze` reads its one file with `pump`.

Query pictures (search by image, watchlist exemplars, `dinostream.Engine`) take one path too:
`embed_image_records`, through the same scaler and batcher as video.

    async with EmbeddingStage(loaded, settings.model, settings.ingest, sink) as stage:
        await stage.pump(spec)
        vectors = await stage.embed_images([rgb])
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType

import numpy as np
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import ValidationError

from dinostream.core.errors import DinostreamError, SourceError
from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import IngestSettings, ModelSettings, Settings, describe_validation_error
from dinostream.embedding.batcher import MicroBatcher
from dinostream.embedding.embedder import Embedder, check_record_size
from dinostream.embedding.input_size import model_input_size
from dinostream.embedding.model_loader import LoadedModel, load_model, replicate
from dinostream.embedding.patch_pca import PatchPCA
from dinostream.ingest.av_source import make_source, probe_source
from dinostream.ingest.pictures import read_rgb
from dinostream.ingest.resize import resize_rgb
from dinostream.ingest.source import Frame, Source
from dinostream.ingest.source_plan import SourceSpec

log = logging.getLogger(__name__)


class InvalidStreamConfig(DinostreamError):
    """A stream's settings cannot work with the loaded model (e.g. its resolution)."""


async def load_model_async(settings: ModelSettings) -> LoadedModel:
    """The model on the stage's first device (EmbeddingStage replicates it to the others)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # progress bars on stderr would garble our one-line errors
    loaded = await asyncio.to_thread(
        load_model, settings.model, device=settings.devices[0], seed=settings.seed, precision=settings.precision
    )
    for device in settings.devices[1:]:  # copies of every weight: off the event loop (kept on `loaded`)
        await asyncio.to_thread(replicate, loaded, device, settings.precision)
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
    """Sources → fair micro-batcher → one model replica per device, results to `sink` in order per stream.

    Each source is decoded straight to its own model input size by the decoder's scaler: the
    square preset, or the source's aspect ratio within the preset's patch budget
    (`ModelSettings.aspect`). With `max_message_bytes`, a configuration whose records could
    exceed it is refused here, at start-up. With `patch_pca_dims`, the PCA is read from
    `patch_pca_file` (relative to `data_dir`) unless `patch_pca` is given.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        model: ModelSettings,
        ingest: IngestSettings,
        sink: Callable[[list[FrameEmbedding]], Awaitable[None]],
        *,
        max_message_bytes: int | None = None,
        data_dir: Path | None = None,
        patch_pca: PatchPCA | None = None,
    ) -> None:
        self.model_settings = model
        self.ingest = ingest
        self.loaded = loaded
        self.max_message_bytes = max_message_bytes
        if patch_pca is None and model.patch_pca_dims is not None:
            path = model.patch_pca_file
            if not path.is_absolute():
                path = (data_dir if data_dir is not None else Settings.model_fields["data_dir"].default) / path
            patch_pca = PatchPCA.load(path)
            log.info("patch PCA %s: %d -> %d dims", path, patch_pca.in_dim, model.patch_pca_dims)
        replicas = [loaded] + [replicate(loaded, d, model.precision) for d in model.devices[1:]]
        self.embedders = [
            Embedder(r, model, patch_pca=patch_pca, max_message_bytes=max_message_bytes) for r in replicas
        ]
        self.embedder = self.embedders[0]
        self.batcher = MicroBatcher(
            self.embedders,  # launch/finish: two batches in flight per device, warm-up at start
            max_batch=model.max_batch,
            max_wait_s=model.max_wait_ms / 1000.0,
            queue_size=model.queue_size,
            sink=sink,
        )
        # The streams `pump` runs (the StreamManager keeps its own streams' sizes and health).
        self._sources: dict[str, Source] = {}
        self._input_sizes: dict[str, tuple[int, int]] = {}
        self._failures: dict[str, str] = {}

    @classmethod
    def from_settings(
        cls,
        loaded: LoadedModel,
        settings: Settings,
        sink: Callable[[list[FrameEmbedding]], Awaitable[None]],
        *,
        kafka: bool = True,
    ) -> EmbeddingStage:
        """The stage of a service built from its settings: the patch PCA fitted under
        `settings.data_dir`; with `kafka`, settings whose records could exceed the Kafka message
        limit are refused here (before anything is written)."""
        return cls(
            loaded,
            settings.model,
            settings.ingest,
            sink,
            max_message_bytes=settings.kafka.max_message_bytes if kafka else None,
            data_dir=settings.data_dir,
        )

    async def __aenter__(self) -> EmbeddingStage:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def input_size(self) -> tuple[int, int]:
        """The square preset's input size (with aspect "preserve", sources get their own: `input_size_for`)."""
        s = self.model_settings.image_size
        return (s, s)

    @property
    def input_sizes(self) -> dict[str, tuple[int, int]]:
        """The decoder's resize target of each stream `pump` ran (a copy)."""
        return dict(self._input_sizes)

    def metric_families(self) -> list[Metric]:
        """The frames waiting for the model, for /metrics."""
        queued = GaugeMetricFamily("dinostream_model_queue_frames", "Frames waiting for the model.")
        queued.add_metric([], self.batcher.stats().queued)
        return [queued]

    def failure_of(self, stream: str) -> str | None:
        """Why the source `pump` ran for `stream` failed, or None."""
        return self._failures.get(stream)

    def input_size_for(self, source_size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) a source whose frames are `source_size` (width, height) is resized to,
        when its size is only known from its first frame (a WebRTC track)."""
        return self.embedder.input_size(source_size)

    async def resize_target(self, spec: SourceSpec, resolution: int | None = None) -> tuple[int, int]:
        """(width, height) the source's frames are resized to by the decoder: see `dinostream.embedding.input_size`.

        `resolution` overrides the `image_size` preset for this stream (check it first with
        `check_resolution`). The source is probed (off the event loop) when `spec.info` is None
        and the aspect is preserved, under the policy it is decoded under (`spec.trusted`: an
        API-added source is probed untrusted, so a redirect it could not follow when decoded is
        not followed here either).
        """
        image_size = resolution or self.model_settings.image_size
        if self.model_settings.aspect == "square":
            return (image_size, image_size)
        info = spec.info
        if info is None:
            info = await asyncio.to_thread(probe_source, spec.url, self.ingest, trusted=spec.trusted)
        if info.size is None:
            log.warning("stream %s does not declare its frame size; it gets the square input", spec.stream)
            return (image_size, image_size)
        return model_input_size(
            info.size,
            image_size=image_size,
            aspect=self.model_settings.aspect,
            unit=self.loaded.patch_size * self.model_settings.patch_pool,
            sample_aspect_ratio=info.sample_aspect_ratio,
        )

    def check_resolution(self, resolution: int | None) -> None:
        """Raise DinostreamError (ValueError-like, one line) when a per-stream `resolution` cannot be
        used: pooling wider than the input, or records over the Kafka message limit."""
        if resolution is None or resolution == self.model_settings.image_size:
            return
        try:
            trial = ModelSettings.model_validate({**self.model_settings.model_dump(), "image_size": resolution})
        except ValidationError as e:
            raise InvalidStreamConfig(f"resolution {resolution}: {describe_validation_error(e)}") from None
        if self.max_message_bytes is not None:
            try:
                check_record_size(trial, self.loaded.hidden_size, self.loaded.model_id, self.max_message_bytes)
            except DinostreamError as e:
                raise InvalidStreamConfig(f"resolution {resolution}: {e}") from None

    async def put(self, frame: Frame) -> None:
        """Hand one frame of a running stream to the model (waits while its stream's queue is full)."""
        await self.batcher.put(frame)

    def start(self) -> None:
        self.batcher.start()

    async def stop(self) -> None:
        """Close the sources, then let the batcher finish everything it accepted."""
        for src in self._sources.values():
            await src.close()
        await self.batcher.stop()

    async def pump(self, spec: SourceSpec) -> None:
        """Feed one source until it ends, without supervision (no reconnects): the simple path for
        one file (`analyze`). A source's failure is logged, recorded and raised."""
        source: Source | None = None
        try:
            size = self._input_sizes[spec.stream] = await self.resize_target(spec)
            log.info("stream %s: model input %dx%d", spec.stream, *size)
            source = make_source(spec.url, spec.stream, self.ingest, size)
            self._sources[spec.stream] = source
            self._failures.pop(spec.stream, None)
            async for frame in source.frames():
                await self.batcher.put(frame)
            log.info("stream %s ended after %d sampled frames", spec.stream, source.stats.sampled)
        except SourceError as e:
            self._failures[spec.stream] = str(e)
            if source is not None:
                source.stats.error = str(e)
            log.error("stream %s failed: %s", spec.stream, e)
            raise
        finally:
            if source is not None:
                await source.close()
                self._sources.pop(spec.stream, None)

    async def embed_image_records(self, images: Sequence[np.ndarray], *, stream: str = "query") -> list[FrameEmbedding]:
        """Whole records (global vectors and patch grid) for query pictures, in order: each is
        resized with the decoder's scaler to the input size a video of its shape would get, then
        batched with the video frames (pictures of one input size share batches). `images` are
        (H, W, 3) uint8 RGB (`dinostream.ingest.pictures.read_rgb` makes them); record i has seq i."""
        now = time.time()
        frames = []
        for i, image in enumerate(images):
            rgb = read_rgb(image)
            size = self.input_size_for((int(rgb.shape[1]), int(rgb.shape[0])))
            frames.append(Frame(stream=stream, seq=i, pts=0.0, ts=now, image=resize_rgb(rgb, size)))
        return list(await asyncio.gather(*(self.batcher.embed(f) for f in frames)))

    async def embed_image_record(self, image: np.ndarray) -> FrameEmbedding:
        """One query picture's whole record: what a watchlist crop or a patch-level query needs."""
        (record,) = await self.embed_image_records([image])
        return record

    async def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) unit-length CLS vectors for query pictures (see `embed_image_records`)."""
        if not images:
            return np.zeros((0, self.loaded.hidden_size), np.float32)
        return unit_rows(np.stack([r.cls for r in await self.embed_image_records(images)]))


def unit_rows(v: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (float32)."""
    v = np.asarray(v, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)

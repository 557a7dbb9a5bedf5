"""The Python API for notebooks and scripts: the service's own engine (the same model loading,
model stage, scaler, batching and processors as `dinostream up`) with plain return types.

    >>> import dinostream
    >>> ds = dinostream.Engine.load("facebook/dinov3-vits16-pretrain-lvd1689m")  # or a local dir, a .pth
    >>> vectors = ds.embed([img_a, img_b])           # (2, D) unit vectors, numpy
    >>> ds.similarity(img_a, img_b)                  # cosine, -1..1
    >>> ds.compare(img_a, img_b)                     # Comparison(similarity=..., same_subject=True, ...)
    >>> ds.similarity_matrix(images)                 # (N, N)
    >>> ds.best_match(query, candidates)             # Match(index=2, score=0.83, scores=array([...]))
    >>> records = ds.video("or-1.mp4", fps=2)        # one FrameEmbedding per sampled frame
    >>> ds.scene_changes(records)                    # [SceneChange(t=12.5, score=..., kind="cut"), ...]
    >>> ds.phases(records)                           # [Phase(start=0.0, end=312.5, label="P1"), ...]
    >>> ds.search(query_image, records, k=5)         # [FrameHit(seq=, t=, score=), ...] exact cosine
    >>> ds.keyframes(records, k=8)                   # 8 records chosen for coverage and diversity
    >>> seg = ds.segment(img, (0.42, 0.61))          # click-to-segment: Segment(mask, box, vector, similarity)

Images are (H, W, 3) uint8 RGB arrays, PIL images or file paths. Everything is synchronous;
inside a running event loop (Jupyter) the async parts run on a private loop in a thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from dinostream.analytics.phases import PhaseSegmenter
from dinostream.analytics.processor_set import ProcessorSet
from dinostream.analytics.scene_change import SceneChangeDetector
from dinostream.analytics.summary import summarize_records
from dinostream.analytics.watchlist import Segment, click_to_segment
from dinostream.analyze import embed_file, replay
from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import (
    IndexSettings,
    ModelSettings,
    PhaseSettings,
    ReidSettings,
    SceneChangeSettings,
    Settings,
)
from dinostream.embedding.model_loader import LoadedModel
from dinostream.embedding.stage import EmbeddingStage, load_model_async, unit_rows
from dinostream.ingest.pictures import read_rgb

T = TypeVar("T")
ImageLike = np.ndarray | Image.Image | str | Path
_SAME_SUBJECT = float(IndexSettings.model_fields["same_subject_threshold"].default)


@dataclass(frozen=True)
class Comparison:
    similarity: float  # cosine of the two global embeddings
    same_subject: bool  # similarity >= threshold
    threshold: float


@dataclass(frozen=True)
class Match:
    index: int  # of the best candidate
    score: float  # its cosine similarity to the query
    scores: np.ndarray  # every candidate's


@dataclass(frozen=True)
class SceneChange:
    t: float  # media seconds of the first frame of the new shot
    score: float
    kind: str  # "cut" or "gradual"
    t_start: float  # where the transition began


@dataclass(frozen=True)
class Phase:
    start: float  # media seconds
    end: float
    label: str  # "P1", "P2", ...; a phase that comes back gets its earlier label


@dataclass(frozen=True)
class FrameHit:
    seq: int
    t: float  # media seconds
    score: float  # cosine similarity to the query


class Engine:
    """One loaded DINOv3 model and the analytics that run on its embeddings.

    Pictures go through the service's model stage (`EmbeddingStage.from_settings`) and its one
    picture decoder (`dinostream.ingest.pictures.read_rgb`); videos through `dinostream analyze`'s
    `embed_file`; events come from the processors' `ProcessorSet`."""

    def __init__(self, loaded: LoadedModel, settings: ModelSettings) -> None:
        self.loaded = loaded
        self.settings = settings

    @classmethod
    def load(
        cls,
        model: str = ModelSettings.model_fields["model"].default,
        *,
        device: str = "auto",
        image_size: int = 224,
        precision: str = "auto",
        seed: int = 0,
    ) -> Engine:
        """Load a model: a local checkpoint directory, a Meta .pth file, a Hub id, or "random:vits16"."""
        settings = ModelSettings(model=model, device=device, image_size=image_size, precision=precision, seed=seed)
        return cls(_run(load_model_async(settings)), settings)

    @property
    def untrained(self) -> bool:
        """True for random weights: the numbers are reproducible but mean nothing."""
        return self.loaded.untrained

    # -- images --------------------------------------------------------------------------------

    def embed_records(self, images: Sequence[ImageLike], *, batch_size: int = 16) -> list[FrameEmbedding]:
        """Whole records (global vectors and the patch grid) for images, batched by input size."""
        rgbs = [read_rgb(im) for im in images]
        if not rgbs:
            return []
        settings = Settings(model=self.settings.model_copy(update={"max_batch": batch_size}))

        async def embed() -> list[FrameEmbedding]:
            async with EmbeddingStage.from_settings(self.loaded, settings, _no_sink, kafka=False) as stage:
                return await stage.embed_image_records(rgbs, stream="image")

        return _run(embed())

    def embed(self, images: Sequence[ImageLike], *, batch_size: int = 16) -> np.ndarray:
        """(N, D) unit-length global (CLS) embeddings."""
        if not images:
            return np.zeros((0, self.loaded.hidden_size), np.float32)
        return unit_rows(np.stack([r.cls for r in self.embed_records(images, batch_size=batch_size)]))

    def similarity(self, a: ImageLike, b: ImageLike) -> float:
        va, vb = self.embed([a, b])
        return float(va @ vb)

    def compare(self, a: ImageLike, b: ImageLike, *, threshold: float = _SAME_SUBJECT) -> Comparison:
        """Cosine similarity and a same-subject verdict at `threshold`."""
        s = self.similarity(a, b)
        return Comparison(s, s >= threshold, threshold)

    def similarity_matrix(self, images: Sequence[ImageLike]) -> np.ndarray:
        v = self.embed(images)
        return v @ v.T

    def best_match(self, query: ImageLike, candidates: Sequence[ImageLike]) -> Match:
        if not candidates:
            raise ValueError("best_match needs at least one candidate")
        v = self.embed([query, *candidates])
        scores = v[1:] @ v[0]
        i = int(np.argmax(scores))
        return Match(i, float(scores[i]), scores)

    def segment(self, image: ImageLike, point: tuple[float, float], *, threshold: float | None = None) -> Segment:
        """Click-to-segment: the patches similar to the one at `point` (x, y in 0..1) and connected
        to it; `Segment.mask` is on the patch grid, `Segment.similarity` the heatmap."""
        (rec,) = self.embed_records([image])
        reid = ReidSettings()
        t = reid.click_threshold if threshold is None else threshold
        return click_to_segment(rec.patches, point, t, centering=reid.feature_centering)

    # -- video ---------------------------------------------------------------------------------

    def video(self, path: str | Path, *, fps: float = 2.0) -> list[FrameEmbedding]:
        """Decode `path` (sampled at `fps` by presentation time) and embed every sampled frame,
        with the service's ingest and batching."""
        settings = Settings(model=self.settings, ingest={"sample_fps": fps})
        records: list[FrameEmbedding] = []
        _run(embed_file(str(path), settings, self.loaded, records.append))
        return records

    def scene_changes(
        self,
        video: str | Path | Sequence[FrameEmbedding],
        *,
        fps: float = 2.0,
        settings: SceneChangeSettings | None = None,
    ) -> list[SceneChange]:
        events = replay(
            ProcessorSet([SceneChangeDetector(settings or SceneChangeSettings())]), self._records(video, fps)
        )
        return [
            SceneChange(e.t, float(e.score), str(e.details.get("kind", "cut")), e.t_start)
            for e in events
            if e.status == "closed"
        ]

    def phases(
        self, video: str | Path | Sequence[FrameEmbedding], *, fps: float = 1.0, settings: PhaseSettings | None = None
    ) -> list[Phase]:
        events = replay(ProcessorSet([PhaseSegmenter(settings or PhaseSettings())]), self._records(video, fps))
        return [Phase(e.t_start, e.t_end, str(e.details["phase_label"])) for e in events if e.status == "closed"]

    def search(self, query: ImageLike, records: Sequence[FrameEmbedding], *, k: int = 10) -> list[FrameHit]:
        """The `k` records most similar to `query` (exact cosine), best first."""
        if not records:
            return []
        q = self.embed([query])[0]
        scores = unit_rows(np.stack([r.cls for r in records])) @ q
        top = np.argsort(-scores, kind="stable")[:k]
        return [FrameHit(records[i].seq, records[i].pts, float(scores[i])) for i in top]

    def keyframes(self, records: Sequence[FrameEmbedding], k: int = 8) -> list[FrameEmbedding]:
        """`k` records that cover the sequence and differ from each other (a visual summary)."""
        return summarize_records(list(records), k)

    def _records(self, video: str | Path | Sequence[FrameEmbedding], fps: float) -> list[FrameEmbedding]:
        return self.video(video, fps=fps) if isinstance(video, (str, Path)) else list(video)


async def _no_sink(batch: list[FrameEmbedding]) -> None:
    """Query pictures come back to their caller; the stage sends nothing on."""


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, even under a running loop (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()

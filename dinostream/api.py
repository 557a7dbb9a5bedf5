"""The Python API for notebooks and scripts: the service's own engine (the same model loading,
model stage, scaler, batching and processors as `dinostream up`) with plain return types.

    >>> import dinostream
    >>> ds = dinostream.Engine.load("facebook/dinov3-vits16-pretrain-lvd1689m")  # or a local dir, a .pth,
    >>>                                                                           # or "random:vits16"
    >>> vectors = ds.embed([img_a, img_b])           # (2, D) unit vectors, numpy
    >>> ds.similarity(img_a, img_b)                  # cosine, -1..1
    >>> ds.compare(img_a, img_b)                     # Comparison(similarity=..., same_subject=True, ...)
    >>> ds.similarity_matrix(images)                 # (N, N)
    >>> ds.best_match(query, candidates)             # Match(index=2, score=0.83, scores=array([...]))
    >>> records = ds.video("or-1.mp4", fps=2)        # one FrameEmbedding per sampled frame
    >>> records = ds.frames(sorted(glob("or-1/*.jpg")), fps=1)  # or the frames saved as pictures
    >>> ds.scene_changes(records)                    # [SceneChange(t=12.5, score=..., kind="cut"), ...]
    >>> ds.phases(records)                           # [Phase(start=0.0, end=312.5, label="P1"), ...]
    >>> ds.phases(records, k=5)                      # 5 clusters, as contiguous phases
    >>> ds.records_similarity(records)               # (N, N) cosine of the records' global vectors
    >>> ds.search(query_image, records, k=5)         # [FrameHit(seq=, t=, score=), ...] exact cosine
    >>> ds.keyframes(records, k=8)                   # 8 records chosen for coverage and diversity
    >>> ds.anomalies(records)                        # [Anomaly(t_start=, t_end=, score=, boxes=), ...]
    >>> ds.reid([cam_a, cam_b])                      # objects seen again on another camera
    >>> ds.watch([cam_a], {"red case": crop})        # where a pictured object shows up
    >>> ds.quality(img)                              # Quality(score=0.93, reasons=(), sharpness=...)
    >>> seg = ds.segment(img, (0.42, 0.61))          # click-to-segment: mask on the patch grid and at
    >>> seg = ds.segment(img, points=[(0.4, 0.6), (0.5, 0.6)], negative=[(0.9, 0.1)])  # picture size
    >>> seg.overlay_png(), seg.heatmap_png()         # PNG bytes

Images are (H, W, 3) uint8 RGB arrays, PIL images or file paths. A video is a file path, the
records `video`/`frames` gave, or a list of pictures (its frames) with `fps=` (the rate they
were taken at) or `timestamps=` (seconds, one each); a list without either is numbered at 1 fps
with a `NoFrameTimes` warning. Analyses of one video path share one decode (the last video's
records are kept, at the highest rate asked, and subsampled for a lower one). Everything is
synchronous; inside a running event loop (Jupyter) the async parts run on a private loop in a
thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import math
import os
import re
import warnings
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
from PIL import Image
from pydantic import ValidationError

from dinostream.analytics.anomaly import AnomalyDetector
from dinostream.analytics.exemplars import DEFAULT_FRAME
from dinostream.analytics.gallery import MemoryTrackGallery
from dinostream.analytics.phase_clusters import cluster_phases
from dinostream.analytics.phases import PhaseSegmenter
from dinostream.analytics.processor_set import ProcessorSet
from dinostream.analytics.quality import Quality, measure_quality
from dinostream.analytics.reid import ReidProcessor
from dinostream.analytics.scene_change import SceneChangeDetector
from dinostream.analytics.segmentation import DEFAULT_SMOOTH, PictureSegment, heatmap_png, overlay_png, segment_picture
from dinostream.analytics.shots import Shot, split_shots
from dinostream.analytics.summary import summarize_records
from dinostream.analytics.verdict import verdict
from dinostream.analytics.watchlist import Watchlist, WatchlistProcessor
from dinostream.analyze import FrameList, NoFrameTimes, embed_file, embed_frames, register_exemplars, replay
from dinostream.asset_analysis import ShotFrames
from dinostream.core.errors import DinostreamError
from dinostream.core.records import Box, Event, FrameEmbedding, Jump
from dinostream.core.settings import (
    AnalyticsSettings,
    AnomalySettings,
    IndexSettings,
    ModelSettings,
    PhaseSettings,
    ReidSettings,
    SceneChangeSettings,
    Settings,
    describe_validation_error,
)
from dinostream.embedding.model_loader import LoadedModel, load_model, replicate
from dinostream.embedding.stage import EmbeddingStage, unit_rows
from dinostream.ingest.pictures import read_rgb

__all__ = [
    "Anomaly",
    "Comparison",
    "Engine",
    "FrameHit",
    "FrameList",
    "Match",
    "NoFrameTimes",
    "Phase",
    "RandomWeights",
    "ReidLink",
    "SceneChange",
    "Segmentation",
    "Sighting",
    "records_similarity",
]

T = TypeVar("T")
ImageLike = np.ndarray | Image.Image | str | Path
# A video: a file, the records of one, a list of its frames as pictures, or a FrameList.
VideoLike = str | Path | Sequence[FrameEmbedding] | Sequence[ImageLike] | FrameList
_SAME_SUBJECT = float(IndexSettings.model_fields["same_subject_threshold"].default)
_VIDEO_FPS = 2.0  # a video file's default sampling rate


class RandomWeights(UserWarning):
    """The model has random weights: results are reproducible but mean nothing."""


@dataclass(frozen=True)
class Comparison:
    similarity: float  # cosine of the two global embeddings
    same_subject: bool  # similarity >= threshold
    threshold: float
    distance: float = 0.0  # 1 - similarity
    percent: float = 0.0  # the similarity as a percentage (a negative one is 0 %)
    confidence: str = ""  # "low", "medium" or "high": how far the similarity is from the threshold
    explanation: str = ""  # the verdict in a sentence (as POST /api/v1/images/compare says it)


@dataclass(frozen=True)
class Match:
    index: int  # of the best candidate
    score: float  # its cosine similarity to the query
    scores: np.ndarray  # every candidate's

    @property
    def ranking(self) -> list[int]:
        """Every candidate's index, most similar first (as POST /api/v1/images/match ranks them)."""
        return [int(i) for i in np.argsort(-self.scores, kind="stable")]


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


@dataclass(frozen=True)
class Anomaly:
    """Something the scene did not show while the detector learnt it (`AnomalyDetector`)."""

    stream: str
    t_start: float  # media seconds
    t_end: float
    score: float  # the peak's
    boxes: tuple[Box, ...]  # where, at the peak (normalised)
    details: dict[str, Any]


@dataclass(frozen=True)
class ReidLink:
    """An object on `stream` that is one seen before on `matched_stream` (`ReidProcessor`)."""

    stream: str
    identity: str
    matched_stream: str
    t_start: float
    t_end: float
    score: float  # appearance similarity of the link
    box: Box | None  # last seen
    details: dict[str, Any]


@dataclass(frozen=True)
class Sighting:
    """A watchlist exemplar seen on `stream` (`WatchlistProcessor`)."""

    label: str
    stream: str
    t_start: float
    t_end: float
    score: float
    box: Box | None
    details: dict[str, Any]


@dataclass(frozen=True, eq=False)
class Segmentation(PictureSegment):
    """A click-to-segment result (`dinostream.analytics.segmentation.PictureSegment`: `mask` and
    `similarity` on the patch grid, `picture_mask` and `heatmap` at picture size) with the picture,
    for the PNGs."""

    image: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((1, 1, 3), np.uint8))

    def overlay_png(self, *, color: tuple[int, int, int] = (255, 48, 48), alpha: float = 0.45) -> bytes:
        """The picture with the mask tinted and outlined, as PNG bytes."""
        return overlay_png(self.image, self.picture_mask, color=color, alpha=alpha)

    def heatmap_png(self, *, over_picture: bool = True, alpha: float = 0.6) -> bytes:
        """The similarity to the clicks, coloured (blue 0 .. red 1), over the picture, as PNG bytes."""
        return heatmap_png(self.heatmap, self.image if over_picture else None, alpha=alpha)


def records_similarity(records: Sequence[FrameEmbedding], other: Sequence[FrameEmbedding] | None = None) -> np.ndarray:
    """(N, M) cosine similarity of the records' global (CLS) vectors, each normalised first:
    `records` against `other`, or against themselves (N, N, 1 on the diagonal)."""
    a = _vectors(records)
    return a @ (a if other is None else _vectors(other)).T


def _vectors(records: Sequence[FrameEmbedding]) -> np.ndarray:
    if not records:
        return np.zeros((0, 0), np.float32)
    if not all(isinstance(r, FrameEmbedding) for r in records):
        raise TypeError("records_similarity takes FrameEmbedding records (from Engine.video or Engine.frames)")
    return unit_rows(np.stack([r.cls for r in records]))


class Engine:
    """One loaded DINOv3 model and the analytics that run on its embeddings.

    Pictures go through the service's model stage (`EmbeddingStage.from_settings`) and its one
    picture decoder (`dinostream.ingest.pictures.read_rgb`); videos through `dinostream analyze`'s
    `embed_file` (frame lists: `embed_frames`); events come from the service's own processors
    (`AnomalyDetector`, `ReidProcessor`, ...) in a `ProcessorSet`, as the analytics worker runs them.
    `analytics` holds every processor's settings (each method's `settings=` overrides its own)."""

    def __init__(
        self, loaded: LoadedModel, settings: ModelSettings, analytics: AnalyticsSettings | None = None
    ) -> None:
        self.loaded = loaded
        self.settings = settings
        self.analytics = analytics or AnalyticsSettings()
        self._decoded: tuple[tuple[Any, ...], float, list[FrameEmbedding]] | None = None  # (file key, fps, records)
        if loaded.untrained:
            warnings.warn(
                f"model {loaded.model_id} has random weights: embeddings are reproducible but mean nothing, so "
                "similarities, scene changes and phases are not meaningful; load a DINOv3 checkpoint "
                "(a directory, a .pth file or a Hub id) for real results",
                RandomWeights,
                stacklevel=3,
            )

    @classmethod
    def load(
        cls,
        model: str = ModelSettings.model_fields["model"].default,
        *,
        device: str = "auto",
        image_size: int = 224,
        aspect: str = "preserve",
        precision: str = "auto",
        seed: int = 0,
        analytics: AnalyticsSettings | None = None,
    ) -> Engine:
        """Load a model: a local checkpoint directory, a Meta .pth file, a Hub id, or "random:vits16".

        `aspect`: "preserve" (each picture keeps its shape within `image_size`² pixels' worth of
        patches) or "square" (every picture resized to image_size x image_size: a 14x14 grid at
        224). Errors are `DinostreamError`s that say what to pass here."""
        import torch

        try:
            settings = ModelSettings(
                model=model, device=device, image_size=image_size, aspect=aspect, precision=precision, seed=seed
            )
        except ValidationError as e:
            raise ValueError(f"Engine.load: {describe_validation_error(e)}") from None
        devices = settings.devices
        if devices == ["auto"] and not torch.cuda.is_available():
            warnings.warn(
                "no CUDA device is available: the model runs on the CPU, many times slower; "
                'pass device="cpu" to say so and silence this',
                stacklevel=2,
            )
            devices = ["cpu"]
        try:
            loaded = _run(
                asyncio.to_thread(load_model, settings.model, device=devices[0], seed=seed, precision=precision)
            )
            for extra in devices[1:]:
                replicate(loaded, extra, precision)
        except DinostreamError as e:
            raise type(e)(_python_words(str(e))) from None
        return cls(loaded, settings, analytics)

    @property
    def untrained(self) -> bool:
        """True for random weights: the numbers are reproducible but mean nothing."""
        return self.loaded.untrained

    # -- images --------------------------------------------------------------------------------

    def embed_records(self, images: Sequence[ImageLike], *, batch_size: int = 16) -> list[FrameEmbedding]:
        """Whole records (global vectors and the patch grid) for images, batched by input size.
        Their pts are all 0: for the frames of a video, `frames` gives them their times."""
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
        """Cosine similarity and a same-subject verdict at `threshold`, with the distance, a
        percentage and how confident the verdict is (`dinostream.analytics.verdict`, as the REST
        API answers)."""
        v = verdict(self.similarity(a, b), threshold)
        return Comparison(v.cosine, v.same_subject, threshold, v.distance, v.percent, v.confidence, v.explanation())

    def similarity_matrix(self, images: Sequence[ImageLike] | Sequence[FrameEmbedding]) -> np.ndarray:
        """(N, N) cosine similarity of pictures, or of records (`records_similarity`) without
        embedding anything again."""
        if images and all(isinstance(x, FrameEmbedding) for x in images):
            return records_similarity(images)  # type: ignore[arg-type]
        v = self.embed(images)  # type: ignore[arg-type]
        return v @ v.T

    @staticmethod
    def records_similarity(
        records: Sequence[FrameEmbedding], other: Sequence[FrameEmbedding] | None = None
    ) -> np.ndarray:
        """(N, M) cosine similarity of records' normalised global vectors (see `records_similarity`)."""
        return records_similarity(records, other)

    def best_match(self, query: ImageLike, candidates: Sequence[ImageLike]) -> Match:
        if not candidates:
            raise ValueError("best_match needs at least one candidate")
        v = self.embed([query, *candidates])
        scores = v[1:] @ v[0]
        i = int(np.argmax(scores))
        return Match(i, float(scores[i]), scores)

    def quality(self, image: ImageLike) -> Quality:
        """Pixel quality of a picture (`dinostream.analytics.quality.measure_quality`): sharpness,
        exposure, contrast, noise and JPEG blockiness, a 0..1 score and the reasons it is low. No
        model involved."""
        return measure_quality(read_rgb(image))

    def segment(
        self,
        image: ImageLike,
        point: tuple[float, float] | None = None,
        *,
        points: Sequence[tuple[float, float]] = (),
        negative: Sequence[tuple[float, float]] = (),
        threshold: float | None = None,
        smooth: float = DEFAULT_SMOOTH,
    ) -> Segmentation:
        """Click-to-segment: the patches similar to the clicked ones and connected to them.

        `point` (one click) and/or `points` are positive clicks, `negative` what to leave out, each
        (x, y) in 0..1. `mask` and `similarity` are on the patch grid (as before), `picture_mask`
        and `heatmap` at the picture's size (bilinear, smoothed by `smooth` patch widths);
        `overlay_png()` and `heatmap_png()` draw them. See `dinostream.analytics.segmentation`."""
        clicks = [*([point] if point is not None else []), *points]
        if not clicks:
            raise ValueError("segment needs a click: segment(image, (x, y)) or segment(image, points=[(x, y), ...])")
        rgb = read_rgb(image)
        (rec,) = self.embed_records([rgb])
        reid = self.analytics.reid
        t = reid.click_threshold if threshold is None else threshold
        seg = segment_picture(
            rec.patches,
            (rgb.shape[1], rgb.shape[0]),
            clicks,
            negative,
            threshold=t,
            centering=reid.feature_centering,
            smooth=smooth,
        )
        return Segmentation(**{f.name: getattr(seg, f.name) for f in dataclasses.fields(seg)}, image=rgb)

    # -- video ---------------------------------------------------------------------------------

    def video(self, path: str | Path, *, fps: float = _VIDEO_FPS) -> list[FrameEmbedding]:
        """Decode `path` (sampled at `fps` by presentation time) and embed every sampled frame,
        with the service's ingest and batching. The last file's records are kept: another call
        for it at the same or a lower rate decodes nothing again."""
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a sampling rate > 0, got {fps!r}")
        key = _file_key(path)
        if self._decoded is not None and self._decoded[0] == key and self._decoded[1] >= fps:
            _, have, kept = self._decoded
            return list(kept) if have == fps else _subsample(kept, fps)
        settings = Settings(model=self.settings, ingest={"sample_fps": fps})
        records: list[FrameEmbedding] = []
        _run(embed_file(str(path), settings, self.loaded, records.append))
        self._decoded = (key, float(fps), records)
        return list(records)

    def frames(
        self,
        images: Sequence[ImageLike] | FrameList,
        *,
        fps: float | None = None,
        timestamps: Sequence[float] | None = None,
        stream: str = "frames",
    ) -> list[FrameEmbedding]:
        """Embed a video given as pictures (its frames, in order): record i has seq i and the time
        `timestamps[i]`, or i / `fps`; without either, i (1 fps) and a `NoFrameTimes` warning."""
        frames = (
            images
            if isinstance(images, FrameList)
            else FrameList(images, fps=fps, timestamps=timestamps, stream=stream)
        )
        records: list[FrameEmbedding] = []
        _run(embed_frames(frames, Settings(model=self.settings), self.loaded, records.append))
        return records

    def clear_cache(self) -> None:
        """Forget the kept records of the last video file."""
        self._decoded = None

    def scene_changes(
        self,
        video: VideoLike,
        *,
        fps: float | None = None,
        timestamps: Sequence[float] | None = None,
        settings: SceneChangeSettings | None = None,
    ) -> list[SceneChange]:
        """Cuts and gradual transitions (`SceneChangeDetector`). `fps`: a file's sampling rate
        (default 2), or the rate a list of pictures was taken at."""
        records = self._records(video, fps, timestamps)
        detector = SceneChangeDetector(settings or self.analytics.scene_change)
        events = replay(ProcessorSet([detector]), records)
        return [
            SceneChange(e.t, float(e.score), str(e.details.get("kind", "cut")), e.t_start)
            for e in events
            if e.status == "closed"
        ]

    def shots(
        self,
        video: VideoLike,
        *,
        fps: float | None = None,
        timestamps: Sequence[float] | None = None,
        settings: SceneChangeSettings | None = None,
    ) -> list[Shot]:
        """The video's shots as the asset analysis gives them (`dinostream.analytics.shots`): each
        with its start and end, how it began ("start", "cut" or "gradual"), its keyframe, its
        picture quality and its camera motion; `Shot.to_dict()` is the REST answer's shape. Cut by
        the scene changes `scene_changes` finds; `fps`/`timestamps` as there."""
        records = self._records(video, fps, timestamps)
        shot_frame = ShotFrames()
        frames = [shot_frame(rec) for rec in records]
        detector = SceneChangeDetector(settings or self.analytics.scene_change)
        cuts = [e for e in replay(ProcessorSet([detector]), records) if e.status == "closed"]
        return split_shots(frames, cuts)

    def phases(
        self,
        video: VideoLike,
        *,
        fps: float | None = None,
        timestamps: Sequence[float] | None = None,
        k: int | None = None,
        settings: PhaseSettings | None = None,
    ) -> list[Phase]:
        """The recording's phases. Without `k`: the service's online segmentation
        (`PhaseSegmenter`: a change that lasts `min_phase_s` starts a phase; a phase that comes
        back gets its earlier label). With `k`: the frames' k clusters (k-means of the global
        vectors) as contiguous phases, labelled P1..Pk in order of first appearance (a cluster
        can come back, so there may be more phases than k). `fps` as for `scene_changes` (a file's
        default is 1)."""
        records = self._records(video, fps, timestamps, default_fps=1.0)
        if not records:
            return []
        if k is not None:
            return _k_phases(records, k, self.settings.seed)
        s = settings or self.analytics.phase
        events = replay(ProcessorSet([PhaseSegmenter(s)]), records)
        phases = [Phase(e.t_start, e.t_end, str(e.details["phase_label"])) for e in events if e.status == "closed"]
        duration = records[-1].pts - records[0].pts
        if len(phases) <= 1 and duration < 2 * s.min_phase_s:
            warnings.warn(
                f"one phase: the recording lasts {duration:g} s, under twice the shortest phase "
                f"(min_phase_s={s.min_phase_s:g} s), so no change can last long enough to start another; "
                "pass k= for k phases, or settings=PhaseSettings(min_phase_s=...) with a shorter minimum",
                stacklevel=2,
            )
        return phases

    def anomalies(
        self,
        video: VideoLike,
        *,
        fps: float | None = None,
        timestamps: Sequence[float] | None = None,
        settings: AnomalySettings | None = None,
    ) -> list[Anomaly]:
        """What the scene did not show during the detector's warm-up (`AnomalyDetector`, the
        service's anomaly processor): one `Anomaly` per occurrence, as it closed."""
        records = self._records(video, fps, timestamps)
        events = _last_by_id(replay(ProcessorSet([AnomalyDetector(settings or self.analytics.anomaly)]), records))
        return [Anomaly(e.stream, e.t_start, e.t_end, float(e.score), e.boxes, dict(e.details)) for e in events]

    def reid(
        self,
        videos: Sequence[VideoLike],
        *,
        fps: float | None = None,
        settings: ReidSettings | None = None,
    ) -> list[ReidLink]:
        """Objects seen on one camera and again on another (`ReidProcessor`, the service's
        re-identification): `videos` are the cameras, one after the other, as `analyze` runs
        several files. One `ReidLink` per linked track."""
        reid = ReidProcessor(settings or self.analytics.reid, MemoryTrackGallery())
        events = _last_by_id(self._replay_cameras(ProcessorSet([reid]), videos, fps))
        return [
            ReidLink(
                e.stream,
                str(e.details.get("identity", "")),
                str(e.details.get("matched_stream", "")),
                e.t_start,
                e.t_end,
                float(e.score),
                e.boxes[0] if e.boxes else None,
                dict(e.details),
            )
            for e in events
        ]

    def watch(
        self,
        videos: VideoLike | Sequence[VideoLike],
        exemplars: Mapping[str, ImageLike] | Sequence[tuple[str, ImageLike]],
        *,
        fps: float | None = None,
        frame_size: tuple[int, int] | None = None,
        settings: ReidSettings | None = None,
    ) -> list[Sighting]:
        """Where pictured objects show up (`WatchlistProcessor`, the service's watchlist):
        `exemplars` are label -> picture (a crop cut from a frame, at the frames' scale:
        `frame_size`, default the first video's). One `Sighting` per occurrence."""
        pairs = list(exemplars.items()) if isinstance(exemplars, Mapping) else list(exemplars)
        if not pairs:
            raise ValueError("watch needs at least one exemplar: {label: picture}")
        cameras = cast(list[VideoLike], [videos] if _is_one_video(videos) else list(videos))  # type: ignore[arg-type]
        first = self._records(cameras[0], fps, None) if cameras else []
        size = frame_size or _record_size(first, cameras[0] if cameras else None) or DEFAULT_FRAME
        reid_settings = settings or self.analytics.reid
        watchlist = Watchlist()
        pictures = [(label, read_rgb(p)) for label, p in pairs]
        full = Settings(model=self.settings, analytics=self.analytics.model_copy(update={"reid": reid_settings}))
        _run(register_exemplars(watchlist, pictures, full, self.loaded, size))
        reid = ReidProcessor(reid_settings, MemoryTrackGallery())
        procs = ProcessorSet([reid, WatchlistProcessor(reid_settings, watchlist, objects=reid.objects)])
        events = [e for e in _last_by_id(self._replay_cameras(procs, cameras, fps)) if e.type == "watchlist"]
        return [
            Sighting(
                str(e.details.get("label", "")),
                e.stream,
                e.t_start,
                e.t_end,
                float(e.score),
                e.boxes[0] if e.boxes else None,
                dict(e.details),
            )
            for e in events
        ]

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

    def _replay_cameras(self, procs: ProcessorSet, videos: Sequence[VideoLike], fps: float | None) -> list[Event]:
        """Each video as its own camera (a stream of its own, renamed "<stream>-2", ... when two
        share a name), one after the other, through one set of processors."""
        events: list[Event] = []
        used: set[str] = set()
        for video in videos:
            records = self._records(video, fps, None)
            if not records:
                continue
            stream, n = records[0].stream, 2
            while stream in used:
                stream, n = f"{records[0].stream}-{n}"[:64], n + 1
            used.add(stream)
            if stream != records[0].stream:
                records = [dataclasses.replace(r, stream=stream) for r in records]
            events += replay(procs, records)
        return events

    def _records(
        self,
        video: VideoLike,
        fps: float | None,
        timestamps: Sequence[float] | None,
        *,
        default_fps: float = _VIDEO_FPS,
    ) -> list[FrameEmbedding]:
        """A video's records: a file decoded (or kept from the last call), records as they are
        (renumbered at 1 fps with a warning when their times do not increase), or a frame list
        embedded with its times."""
        if isinstance(video, (str, Path)):
            if timestamps is not None:
                raise ValueError("timestamps are for a list of pictures; a video file carries its own times")
            return self.video(video, fps=default_fps if fps is None else fps)
        if isinstance(video, FrameList):
            return self.frames(video)
        items = list(video)  # an (N, H, W, 3) array: N frames
        if not items:
            return []
        if all(isinstance(r, FrameEmbedding) for r in items):
            return _timed_records(cast(list[FrameEmbedding], items), fps, timestamps)
        if any(isinstance(r, FrameEmbedding) for r in items):
            raise TypeError("a video is records or pictures, not a mix of both")
        return self.frames(items, fps=fps, timestamps=timestamps)  # type: ignore[arg-type]


def _timed_records(
    records: list[FrameEmbedding], fps: float | None, timestamps: Sequence[float] | None
) -> list[FrameEmbedding]:
    """Records with the times asked for, else as they are when their times increase, else
    renumbered at 1 fps with a NoFrameTimes warning (records of pictures all have pts 0)."""
    from dinostream.analyze import frame_times

    if fps is not None or timestamps is not None:
        pts = frame_times(len(records), fps=fps, timestamps=timestamps)
        # New times: a jump's time was on the old ones.
        return [
            dataclasses.replace(r, seq=i, pts=t, jump=None) for i, (r, t) in enumerate(zip(records, pts, strict=True))
        ]
    if all(b.pts > a.pts for a, b in zip(records, records[1:], strict=False)):
        return records
    warnings.warn(
        f"the {len(records)} records' times do not increase (records of pictures all have pts 0): numbered at "
        "1 fps (record i at i s); embed the frames with Engine.frames(pictures, fps=...) or pass fps= or "
        "timestamps= here",
        NoFrameTimes,
        stacklevel=4,
    )
    return [dataclasses.replace(r, seq=i, pts=float(i), jump=None) for i, r in enumerate(records)]


def _k_phases(records: list[FrameEmbedding], k: int, seed: int) -> list[Phase]:
    runs = cluster_phases(np.stack([r.cls for r in records]).astype(np.float32), k, seed=seed)
    out = []
    for j, (first, last, label) in enumerate(runs):
        end = records[runs[j + 1][0]].pts if j + 1 < len(runs) else records[last].pts
        out.append(Phase(records[first].pts, end, f"P{label + 1}"))
    return out


def _last_by_id(events: list[Event]) -> list[Event]:
    """Each occurrence's last event (open, update, closed share an id), in order of first sight."""
    last: dict[str, Event] = {}
    for e in events:
        if e.type != "error":
            last[e.id] = e
    return list(last.values())


def _subsample(records: list[FrameEmbedding], fps: float) -> list[FrameEmbedding]:
    """Records kept at a higher rate, taken at `fps` as the decoder samples (the first frame at or
    after each multiple of 1/fps), renumbered."""
    out: list[FrameEmbedding] = []
    step = 1.0 / fps
    next_t = None
    spans: list[Jump | None] = []  # the jumps since the last kept record: the kept one's span
    for r in records:
        spans.append(r.jump)
        if next_t is None or r.pts >= next_t - 1e-6:
            out.append(dataclasses.replace(r, seq=len(out), jump=Jump.over(spans)))
            next_t = (math.floor(r.pts / step + 1e-6) + 1) * step
            spans = []
    return out


def _file_key(path: str | Path) -> tuple[Any, ...]:
    p = Path(path)
    try:
        st = os.stat(p)
        return (str(p.resolve()), st.st_size, st.st_mtime_ns)
    except OSError:
        return (str(path),)


def _is_one_video(videos: Any) -> bool:
    """Whether `watch` was given one video (a file, records, a frame list, pictures) rather than a
    list of cameras."""
    from dinostream.analyze import is_picture_path

    if isinstance(videos, (str, Path, FrameList)):
        return True
    if isinstance(videos, np.ndarray):
        return videos.ndim == 4  # (N, H, W, 3): one video's frames
    items = list(videos)
    if not items:
        return False
    first = items[0]
    if isinstance(first, (str, Path)):
        return all(isinstance(p, (str, Path)) and is_picture_path(p) for p in items)  # one video's pictures
    if isinstance(first, np.ndarray):
        return first.ndim == 3  # a picture
    return isinstance(first, (FrameEmbedding, Image.Image))


def _record_size(records: list[FrameEmbedding], video: Any) -> tuple[int, int] | None:
    """The frame size of a video: its file's, or its first picture's."""
    from dinostream.analyze import video_size

    if isinstance(video, (str, Path)):
        return video_size(str(video))
    if isinstance(video, FrameList):
        video = video.pictures
    if isinstance(video, Sequence) and video and not isinstance(video[0], FrameEmbedding):
        rgb = read_rgb(video[0])
        return int(rgb.shape[1]), int(rgb.shape[0])
    return None


_FLAG = re.compile(r"--model ([^\s,;]+)|--([a-z][a-z-]*)(?: ([^\s,;]+))?")


def _python_words(message: str) -> str:
    """A loader message in the words of this API: `--model X` -> `Engine.load("X")`, `--device
    cpu` -> `device="cpu"`."""

    def word(m: re.Match[str]) -> str:
        if m.group(1):
            return f'Engine.load("{m.group(1)}")'
        name, value = m.group(2).replace("-", "_"), m.group(3)
        if name == "model":
            return "Engine.load(model)"
        return f'{name}="{value}"' if value else f"{name}="

    return _FLAG.sub(word, message)


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

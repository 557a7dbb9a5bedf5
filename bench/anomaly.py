"""Anomaly benchmark: ground-truth anomalies inserted into generated camera streams.

Two kinds of runs, both through the project's ingest (decode, sample, resize) and model stage,
exactly as `dinostream analyze` does, scored by one `AnomalyDetector` with default settings (no
per-video tuning):

- the *scenes* family (the default, `generators.anomaly_scenes`): a camera on a scikit-image sample
  picture (static or slowly panning, lighting drift, colour cast, sensor noise); after a normal
  warm-up, foreign objects (crops of other pictures) and unusual content (lens covered, another
  scene, inverted colours) appear at known frames. Reports image-level AUROC and heatmap
  localisation, against a peer: the same detector on raw-pixel patches of the same frames.
- a *camera-day* family (`--family`, `generators.anomaly_families`): two-minute fixed-camera videos
  with normal activity on routes, lighting swings, exposure steps, weather, shake, and four kinds
  of anomaly (object left, figure in an unused area, lens partly covered, camera turned). Reports
  what an operator sees: frame-level precision/recall/F1 on the 0.5 s grid after the warm-up,
  per-kind detection, false-alarm events per hour of normal video, onset and release delays and
  whether the event's peak lies on the object, against the classical peer: kNN of normalised
  64x36 grey frames to the warm-up's. `yard` is the family to tune on; `rooms` was held out until
  the detector's second round looked at it, so it is a second development family now, and so is
  `hall`, held out until it was looked at while tuning. `--videos N` with N > 8 adds videos (seeds
  8..N-1).
- the *street* family (`--family street`, `generators.anomaly_street`): a held-out family,
  made by separate code (a perspective-solved street and car park, projected vehicles, drawn
  figures, its own nuisances and schedule) and never used while tuning: report on it, do not tune.
  Scored exactly as the camera-day families, against the same peer.
- the *theatre* family (`--family theatre`, `generators.anomaly_theatre`): the previous held-out
  family, made by separate code (a ray-cast operating theatre, jointed staff in scrubs, a trolley
  pushed in and out, monitors, surgical light and dimming, its own nuisances and schedule) and
  never used while tuning: report on it, do not tune. Scored exactly as the camera-day families,
  against the same peer.
- the *warehouse* family (`--family warehouse`, `generators.anomaly_warehouse`): the newest held-out
  family, made by separate code (a rasterised distribution-centre hall, racking, forklifts and pallet
  jacks moving pallets between bays and staging lanes, pickers and packers, a conveyor, roller doors
  letting daylight in, high-bay lights dimming and flickering, its own nuisances and schedule) and
  never used while tuning: report on it, do not tune. Scored exactly as the camera-day families,
  against the same peer.

    python bench/anomaly.py                            # scenes: random:vits16 at 224, 8 streams
    python bench/anomaly.py --family yard              # development family, 8 videos of 120 s
    python bench/anomaly.py --family rooms --videos 12 # second development family, 12 seeds
    python bench/anomaly.py --family hall              # third development family
    python bench/anomaly.py --family street            # held-out family: report, do not tune
    python bench/anomaly.py --family theatre           # previous held-out family: report, do not tune
    python bench/anomaly.py --family warehouse         # newest held-out family: report, do not tune
    python bench/anomaly.py --family yard --set threshold=1.5 --cache /tmp/anomaly-cache
    python bench/anomaly.py --model /models/dinov3-vits16 --size 448

`--cache DIR` keeps each video's records (and what the peers need) on disk, keyed by the generator's
source, the model and the size, so a detector change is re-scored without the model.
Needs the `bench` extra (scikit-image) for the pictures; without it numpy-drawn scenes are used.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import inspect
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # generators/ lives at the repository root

from dinostream.analytics.anomaly import AnomalyDetector
from dinostream.core.records import Event, FrameEmbedding
from dinostream.core.settings import AnomalySettings, IngestSettings, ModelSettings
from dinostream.embedding.stage import EmbeddingStage, load_model_async
from dinostream.ingest.av_source import make_source
from dinostream.ingest.source import Frame
from dinostream.ingest.source_plan import SourceSpec
from generators import anomaly_families, anomaly_scenes, anomaly_street, anomaly_theatre, anomaly_warehouse
from generators.anomaly_families import ANOMALY_KINDS, BOXED_KINDS, FAMILY_NAMES, FamilyVideo, VideoTruth
from generators.anomaly_scenes import CONTENT_KINDS, SceneStream, Truth, procedural_backdrop, procedural_object
from generators.anomaly_street import STREET, StreetVideo
from generators.anomaly_theatre import THEATRE, TheatreVideo
from generators.anomaly_warehouse import WAREHOUSE, WarehouseVideo

FPS = 2  # video frame rate = sampling rate, so sampled frame n is generated frame n
WARMUP = AnomalySettings().warmup_frames
SCENES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "camera",
    "motorcycle",
)
# (name, source picture, crop as fractions y0, y1, x0, x1 of the picture)
OBJECTS = (
    ("cat-face", "chelsea", (0.05, 0.65, 0.3, 0.75)),
    ("cup", "coffee", (0.1, 0.75, 0.25, 0.75)),
    ("rocket", "rocket", (0.15, 0.95, 0.35, 0.6)),
    ("helmet", "astronaut", (0.0, 0.45, 0.3, 0.65)),
    ("coins", "coins", (0.0, 0.5, 0.0, 0.5)),
    ("text", "text", (0.0, 1.0, 0.0, 0.5)),
    ("colorwheel", "colorwheel", (0.0, 1.0, 0.0, 1.0)),
    ("clock", "clock", (0.1, 0.9, 0.2, 0.8)),
    ("retina", "retina", (0.2, 0.8, 0.2, 0.8)),
    ("brick", "brick", (0.0, 0.4, 0.0, 0.4)),
)


def load_pictures() -> tuple[dict[str, np.ndarray], str]:
    """Sample pictures by name as RGB uint8 (scikit-image), or numpy-drawn stand-ins."""
    names = set(SCENES) | {src for _, src, _ in OBJECTS}
    try:
        import skimage.data as data
    except ImportError:
        rng = np.random.default_rng(123)
        pics = {n: procedural_backdrop(rng) for n in SCENES}
        pics |= {src: procedural_object(rng) for _, src, _ in OBJECTS}
        return pics, "numpy-drawn scenes (install the bench extra for scikit-image pictures)"
    pics = {}
    for n in names:
        img = data.stereo_motorcycle()[0] if n == "motorcycle" else getattr(data, n)()
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        pics[n] = np.ascontiguousarray(img[..., :3]).astype(np.uint8)
    return pics, "scikit-image sample pictures"


def crop(img: np.ndarray, frac: tuple[float, float, float, float]) -> np.ndarray:
    h, w = img.shape[:2]
    y0, y1, x0, x1 = frac
    return np.ascontiguousarray(img[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)])


def make_stream(i: int, pics: dict[str, np.ndarray], frames: int, seed: int) -> SceneStream:
    """Stream i: scene SCENES[i], static for even i and panning for odd i, then a schedule of
    anomalies after the warm-up, at least 16 frames apart (longer than an event's close plus
    cooldown at the default settings, so every inserted anomaly can be its own event)."""
    rng = np.random.default_rng([seed, i])
    scene = SCENES[i % len(SCENES)]
    cam = SceneStream(
        pics[scene],
        frames=frames,
        pan_px=0.0 if i % 2 == 0 else 1.5,
        pan_range=30,  # one back-and-forth every 40 frames: the warm-up sees the whole patrol
        noise=3.0,
        light=0.1,
        light_period=WARMUP,  # and one full cycle of the lighting change
        flicker=0.02,
        seed=seed * 100 + i,
    )
    objects = [o for o in OBJECTS if o[1] != scene]
    t = WARMUP + int(rng.integers(4, 10))
    kinds = ["object", "object", "object", "content", "object"]
    rng.shuffle(kinds)
    k = 0
    while t < frames:
        kind = kinds[k % len(kinds)]
        length = int(rng.integers(4, 9)) if kind == "object" else int(rng.integers(3, 6))
        if t + length > frames:
            break
        if kind == "object":
            name, src, frac = objects[int(rng.integers(len(objects)))]
            width = float(rng.choice([0.12, 0.18, 0.25, 0.32]))
            shape = "ellipse" if rng.random() < 0.4 else "rect"
            cam.add_object(t, length, crop(pics[src], frac), width=width, shape=shape, name=name, rng=rng)
        else:
            content = CONTENT_KINDS[int(rng.integers(len(CONTENT_KINDS)))]
            other = pics[SCENES[(i + 3) % len(SCENES)]]
            cam.add_content(t, length, content, other=other)
        t += length + int(rng.integers(16, 22))
        k += 1
    return cam


def pixel_record(rec: FrameEmbedding, image: np.ndarray, patch: int) -> FrameEmbedding:
    """The same frame described by raw pixels: each patch's RGB values as its vector."""
    h, w, _ = image.shape
    gh, gw = h // patch, w // patch
    x = image[: gh * patch, : gw * patch].astype(np.float32) / 255.0
    grid = x.reshape(gh, patch, gw, patch, 3).transpose(0, 2, 1, 3, 4).reshape(gh, gw, -1)
    flat = grid.reshape(-1, grid.shape[-1])
    return FrameEmbedding(
        stream=rec.stream,
        seq=rec.seq,
        pts=rec.pts,
        ts=rec.ts,
        model="pixels",
        untrained=True,
        cls=flat.mean(axis=0),
        pooled=flat.mean(axis=0),
        patches=grid,
    )


@dataclass
class Run:
    """One detector over every stream: frame scores, peaks, events, timings."""

    label: str
    scores: list[float] = field(default_factory=list)
    truths: list[Truth] = field(default_factory=list)
    streams: list[int] = field(default_factory=list)
    peaks: list[tuple[float, float]] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float] | None] = field(default_factory=list)
    events: dict[int, list[Event]] = field(default_factory=lambda: defaultdict(list))
    frame_ms: list[float] = field(default_factory=list)  # CPU time of process(): the cost, whatever else runs
    warmup_end_ms: list[float] = field(default_factory=list)


def run_detector(
    label: str,
    records: dict[int, list[FrameEmbedding]],
    truths: dict[int, list[Truth]],
    settings: AnomalySettings,
    detector: type[AnomalyDetector] = AnomalyDetector,
) -> Run:
    run = Run(label)
    det = detector(settings)
    for i, recs in records.items():
        for rec in recs:
            t0 = time.process_time()
            events = det.process(rec)
            ms = (time.process_time() - t0) * 1000
            fs = det.last_score(rec.stream)
            if fs is None:
                if det.ready(rec.stream):
                    run.warmup_end_ms.append(ms)
                continue
            run.frame_ms.append(ms)
            run.events[i] += [e for e in events if e.status == "closed"]
            run.scores.append(fs.score)
            run.truths.append(truths[i][rec.seq])
            run.streams.append(i)
            run.peaks.append(fs.peak)
            b = fs.boxes[0] if fs.boxes else None
            run.boxes.append(None if b is None else (b.x0, b.y0, b.x1, b.y1))
        run.events[i] += det.flush(recs[0].stream)
    return run


def auroc(run: Run, keep: set[str] | None = None, stream: int | None = None) -> float:
    ys, ss = [], []
    for s, t, i in zip(run.scores, run.truths, run.streams, strict=True):
        if stream is not None and i != stream:
            continue
        if t.anomalous and keep is not None and t.kind not in keep:
            continue
        ys.append(int(t.anomalous))
        ss.append(s)
    return roc_auc(ys, ss)


def roc_auc(labels: list[int], scores: list[float]) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic; ties count half), nan with one class."""
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def inside(p: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    return box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def localisation(run: Run) -> dict[str, tuple[int, int]]:
    """Object frames whose heatmap peak is inside the object's box, by object size."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for t, p in zip(run.truths, run.peaks, strict=True):
        if t.kind != "object" or t.box is None:
            continue
        side = t.box[2] - t.box[0]
        size = "small (<=0.15 w)" if side <= 0.15 else "medium (<=0.2 w)" if side <= 0.2 else "large"
        for key in ("all", size):
            out[key][0] += int(inside(p, t.box))
            out[key][1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def event_scores(run: Run, truths: dict[int, list[Truth]]) -> tuple[int, int, int, int]:
    """(true events, events, detected anomalies, anomalies): an event is true when its frames
    [first, last] overlap an inserted anomaly's frames; an anomaly is detected when one does."""
    tp_events = n_events = hit = n_segments = 0
    for i, stream_truths in truths.items():
        segments: dict[int, list[int]] = defaultdict(list)
        for t in stream_truths:
            if t.segment >= 0:
                segments[t.segment].append(t.index)
        spans = [(min(v), max(v)) for v in segments.values()]
        n_segments += len(spans)
        evs = [(e.frames[0], e.frames[-1]) for e in run.events[i]]
        n_events += len(evs)
        tp_events += sum(any(a <= s1 and s0 <= b for s0, s1 in spans) for a, b in evs)
        hit += sum(any(a <= s1 and s0 <= b for a, b in evs) for s0, s1 in spans)
    return tp_events, n_events, hit, n_segments


def pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:5.1f}% ({a}/{b})" if b else "  n/a"


Tap = Callable[[int, Frame], dict[str, np.ndarray]]  # (stream index, decoded frame) -> arrays kept per frame


async def embed_streams(
    paths: dict[int, Path], model: ModelSettings, tap: Tap | None = None
) -> tuple[dict[int, list[FrameEmbedding]], dict[int, dict[str, np.ndarray]], float, str, bool]:
    """Decode and embed every stream through the project's ingest and model stage (streams share
    the micro-batcher, as in `dinostream up`). `tap` sees each decoded frame (what the model sees)
    and returns arrays to keep for the peers, stacked per stream in frame order."""
    loaded = await load_model_async(model)
    ingest = IngestSettings(sample_fps=FPS)
    records: dict[int, list[FrameEmbedding]] = defaultdict(list)
    kept: dict[int, dict[int, dict[str, np.ndarray]]] = defaultdict(dict)
    by_stream = {f"cam{i}": i for i in paths}

    async def sink(batch: list[FrameEmbedding]) -> None:
        for rec in batch:
            records[by_stream[rec.stream]].append(rec)

    stage = EmbeddingStage(loaded, model, ingest, sink)

    async def pump(i: int, spec: SourceSpec) -> None:
        # EmbeddingStage.pump, with a tap that keeps what the peers need of the decoded frame.
        source = make_source(spec.url, spec.stream, ingest, await stage.resize_target(spec))
        try:
            async for frame in source.frames():
                if tap is not None:
                    kept[i][frame.seq] = tap(i, frame)
                await stage.batcher.put(frame)
        finally:
            await source.close()

    t0 = time.perf_counter()
    stage.start()
    try:
        await asyncio.gather(*(pump(i, SourceSpec(f"cam{i}", str(p))) for i, p in paths.items()))
    finally:
        await stage.stop()
    seconds = time.perf_counter() - t0
    for recs in records.values():
        recs.sort(key=lambda r: r.seq)
    extras = {
        i: {k: np.stack([kept[i][r.seq][k] for r in records[i]]) for k in kept[i][records[i][0].seq]}
        for i in kept
        if kept[i]
    }
    return dict(records), extras, seconds, loaded.model_id, loaded.untrained


# --- the record cache -------------------------------------------------------------------------------


def source_hash(*modules: Any) -> str:
    """A short hash of generator modules' source: a change to how videos are made misses the cache."""
    h = hashlib.sha1()
    for m in modules:
        h.update(Path(m.__file__).read_bytes())
    return h.hexdigest()[:10]


class RecordCache:
    """One `.npz` per video: its records (thumbnails included), the arrays the peers keep, and its
    truth (JSON)."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def load(self, key: str) -> tuple[list[FrameEmbedding], dict[str, np.ndarray], Any] | None:
        if self.root is None or not (self.root / f"{key}.npz").exists():
            return None
        with np.load(self.root / f"{key}.npz", allow_pickle=False) as z:
            a = {name: z[name] for name in z.files}  # each z[name] reads the whole array again
        if "thumbs" not in a:
            return None  # cached before thumbnails were kept: the detector reads them, so embed again
        meta = json.loads(str(a["meta"]))
        ends = np.cumsum(a["thumb_sizes"])
        blob = a["thumbs"].tobytes()
        thumbs = [blob[e - n : e] for e, n in zip(ends, a["thumb_sizes"], strict=True)]
        recs = [
            FrameEmbedding(
                stream=meta["stream"],
                seq=int(seq),
                pts=float(pts),
                ts=float(ts),
                model=meta["model"],
                untrained=bool(meta["untrained"]),
                cls=a["cls"][k],
                pooled=a["pooled"][k],
                patches=a["patches"][k],
                thumbnail=thumbs[k],
            )
            for k, (seq, pts, ts) in enumerate(zip(a["seq"], a["pts"], a["ts"], strict=True))
        ]
        extras = {name[2:]: v for name, v in a.items() if name.startswith("x_")}
        return recs, extras, meta["truth"]

    def save(self, key: str, recs: list[FrameEmbedding], extras: dict[str, np.ndarray], truth: Any) -> None:
        if self.root is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        meta = {"stream": recs[0].stream, "model": recs[0].model, "untrained": recs[0].untrained, "truth": truth}
        tmp = self.root / f"{key}.tmp.npz"
        np.savez(
            tmp,
            meta=np.array(json.dumps(meta)),
            seq=np.array([r.seq for r in recs]),
            pts=np.array([r.pts for r in recs]),
            ts=np.array([r.ts for r in recs]),
            cls=np.stack([r.cls for r in recs]),
            pooled=np.stack([r.pooled for r in recs]),
            patches=np.stack([r.patches for r in recs]),
            # The JPEG thumbnails, end to end (the anomaly detector reads them at a step of light).
            thumbs=np.frombuffer(b"".join(r.thumbnail for r in recs), dtype=np.uint8),
            thumb_sizes=np.array([len(r.thumbnail) for r in recs], dtype=np.int64),
            **{f"x_{k}": v for k, v in extras.items()},
        )
        tmp.replace(self.root / f"{key}.npz")


def cached_streams(
    cache: RecordCache,
    keys: dict[int, str],
    write: Callable[[int, Path], Any],
    model: ModelSettings,
    tap: Tap | None,
) -> tuple[dict[int, list[FrameEmbedding]], dict[int, dict[str, np.ndarray]], dict[int, Any], float, int]:
    """Every stream's records, extras and truth: from the cache, or generated (`write(i, path)`
    writes the video and returns its truth, JSON-ready) and embedded. Also the seconds spent in
    decode + model and the frames that went through it."""
    records, extras, truths = {}, {}, {}
    missing = []
    for i, key in keys.items():
        got = cache.load(key)
        if got is None:
            missing.append(i)
        else:
            records[i], extras[i], truths[i] = got
    seconds, embedded = 0.0, 0
    if missing:
        with tempfile.TemporaryDirectory(prefix="dinostream-anomaly-bench-") as tmp:
            paths = {}
            for i in missing:
                paths[i] = Path(tmp) / f"cam{i}.mp4"
                truths[i] = write(i, paths[i])
            recs, ext, seconds, _, _ = asyncio.run(embed_streams(paths, model, tap))
        for i in missing:
            records[i], extras[i] = recs[i], ext.get(i, {})
            embedded += len(recs[i])
            cache.save(keys[i], records[i], extras[i], truths[i])
    return records, extras, truths, seconds, embedded


def report(run: Run, truths: dict[int, list[Truth]], threshold: float, *, full: bool) -> None:
    print(f"\n== {run.label}")
    print(f"image-level AUROC, all anomalies:      {auroc(run):.3f}")
    print(f"  foreign objects vs normal frames:    {auroc(run, {'object'}):.3f}")
    print(f"  unusual content vs normal frames:    {auroc(run, set(CONTENT_KINDS)):.3f}")
    per_stream = [auroc(run, stream=i) for i in truths]
    print(f"  per stream (mean, min):              {np.nanmean(per_stream):.3f}, {np.nanmin(per_stream):.3f}")
    loc = localisation(run)
    print(f"heatmap peak inside the object's box:  {pct(*loc['all'])}")
    for key in ("small (<=0.15 w)", "medium (<=0.2 w)", "large"):
        if key in loc:
            print(f"  {key:<17}                   {pct(*loc[key])}")
    if not full:
        return
    ious = [
        iou(b, t.box)
        for b, t in zip(run.boxes, run.truths, strict=True)
        if t.kind == "object" and t.box is not None and b is not None
    ]
    n_obj = sum(t.kind == "object" for t in run.truths)
    if ious:
        print(
            f"object frames with a box:              {pct(len(ious), n_obj)}, mean IoU with truth {np.mean(ious):.2f}"
        )
    tp, n_ev, hit, n_seg = event_scores(run, truths)
    normal = sum(not t.anomalous for t in run.truths)
    alarms = sum(s > threshold for s, t in zip(run.scores, run.truths, strict=True) if not t.anomalous)
    print(f"event precision:                       {pct(tp, n_ev)}")
    print(f"event recall (inserted anomalies):     {pct(hit, n_seg)}")
    print(f"normal frames above threshold:         {pct(alarms, normal)}")
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for t, s in zip(run.truths, run.scores, strict=True):
        if t.anomalous:
            by_kind[t.kind][0] += int(s > threshold)
            by_kind[t.kind][1] += 1
    print("anomalous frames above threshold:      " + ", ".join(f"{k} {pct(*v)}" for k, v in sorted(by_kind.items())))


def baseline(rev: str) -> type[AnomalyDetector]:
    """`AnomalyDetector` as analytics/anomaly.py defined it at git revision `rev`, for a before/after
    comparison in one run on the same records."""
    root = Path(__file__).resolve().parents[1]
    src = subprocess.run(
        ["git", "-C", str(root), "show", f"{rev}:analytics/anomaly.py"], capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType(f"anomaly_at_{rev}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(src, f"{rev}:analytics/anomaly.py", "exec"), module.__dict__)
    detector: type[AnomalyDetector] = module.AnomalyDetector
    return detector


# --- camera-day families ------------------------------------------------------------------------------

GRID_S = 1.0 / FPS  # the frame-level grid: every sampled frame after the warm-up
PEER_SIDE = (64, 36)  # the classical peer's grey frames


@dataclass
class Episode:
    """One event as an operator saw it: when it covered, when it was announced and closed, its peak."""

    t_start: float
    t_end: float
    opened_at: float  # media time of the frame whose processing announced it
    closed_at: float  # ... and closed it (the video's end for an event still open there)
    peak: tuple[float, float] | None = None  # normalised (x, y)
    peak_t: float | None = None


@dataclass
class DayRun:
    """One detector over a family's videos."""

    label: str
    episodes: dict[int, list[Episode]] = field(default_factory=lambda: defaultdict(list))
    frame_ms: list[float] = field(default_factory=list)  # CPU time of process()
    grid: tuple[int, int] = (1, 1)  # the model's patch grid (gh, gw), for the localisation tolerance


def run_day_detector(
    label: str,
    records: dict[int, list[FrameEmbedding]],
    settings: AnomalySettings,
    detector: type[AnomalyDetector] = AnomalyDetector,
) -> DayRun:
    """The product's detector on every video; events become episodes."""
    run = DayRun(label, grid=records[0][0].patches.shape[:2])
    det = detector(settings)
    for i, recs in records.items():
        opened: dict[str, float] = {}
        for rec in recs:
            t0 = time.process_time()
            events = det.process(rec)
            ms = (time.process_time() - t0) * 1000
            if det.last_score(rec.stream) is not None:
                run.frame_ms.append(ms)
            for e in events:
                if e.status == "open":
                    opened[e.id] = rec.pts
                elif e.status == "closed":
                    run.episodes[i].append(_episode(e, opened.pop(e.id, e.t_start), rec.pts, recs))
        for e in det.flush(recs[0].stream):
            run.episodes[i].append(_episode(e, opened.pop(e.id, e.t_start), recs[-1].pts, recs))
    return run


def _episode(e: Event, opened_at: float, closed_at: float, recs: list[FrameEmbedding]) -> Episode:
    peak = e.details.get("peak")
    seq = e.details.get("peak_seq")
    peak_t = next((r.pts for r in recs if r.seq == seq), None)
    xy = (float(peak["x"]), float(peak["y"])) if peak is not None else None
    return Episode(e.t_start, e.t_end, opened_at, closed_at, xy, peak_t)


def grey_tap(_: int, frame: Frame) -> dict[str, np.ndarray]:
    """What the classical peer keeps of a frame: grey at 64x36."""
    img = Image.fromarray(frame.image).convert("L").resize(PEER_SIDE, Image.Resampling.BILINEAR)
    return {"grey": np.asarray(img, dtype=np.uint8)}


def run_grey_peer(
    label: str,
    records: dict[int, list[FrameEmbedding]],
    greys: dict[int, np.ndarray],
    settings: AnomalySettings,
) -> DayRun:
    """The classical peer: each frame grey at 64x36, normalised to zero mean and unit variance (so a
    global gain or offset changes nothing), scored by its Euclidean distance to the nearest warm-up
    frame. Calibrated like the detector: the `quantile` of leave-out distances of the warm-up frames
    (to the nearest warm-up frame more than 1 s away) is 1.0, `threshold` alarms, and events open
    after `open_after` and close after `close_after` frames."""
    run = DayRun(label)
    n = settings.warmup_frames
    for i, recs in records.items():
        x = greys[i].reshape(len(recs), -1).astype(np.float64)
        x = (x - x.mean(axis=1, keepdims=True)) / np.maximum(x.std(axis=1, keepdims=True), 1e-6)
        warm = x[:n]
        d = np.sqrt(np.maximum(((x[:, None, :] - warm[None]) ** 2).sum(-1), 0.0))  # (frames, warm-up)
        gap = FPS  # leave-out: not the frames within 1 s
        loo = [d[k, [j for j in range(n) if abs(j - k) > gap]].min() for k in range(n)]
        level = float(np.quantile(loo, settings.quantile))
        scores = d.min(axis=1) / max(level, 1e-9)
        run.episodes[i] = lifecycle(
            [r.pts for r in recs[n:]], list(scores[n:] > settings.threshold), settings, recs[-1].pts
        )
    return run


def lifecycle(times: list[float], hot: list[bool], s: AnomalySettings, end: float) -> list[Episode]:
    """Events from per-frame alarms: open after `open_after` anomalous frames in a row, close
    after `close_after` normal ones (the detector's rules, without its cooldown)."""
    out: list[Episode] = []
    run = calm = 0
    cur: Episode | None = None
    start = 0.0
    for t, h in zip(times, hot, strict=True):
        if h:
            start = t if run == 0 and cur is None else start
            run, calm = run + 1, 0
            if cur is None and run >= s.open_after:
                cur = Episode(start, t, t, end)
            elif cur is not None:
                cur.t_end = t
        else:
            run = 0
            if cur is not None:
                calm += 1
                if calm >= s.close_after:
                    cur.closed_at = t
                    out.append(cur)
                    cur = None
    if cur is not None:
        out.append(cur)
    return out


@dataclass
class DayScores:
    """What `score_day` found for one detector."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    detected: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    onset: list[float] = field(default_factory=list)
    release: list[float] = field(default_factory=list)
    false_alarms: int = 0
    events: int = 0
    split: int = 0  # anomalies that opened more than one event
    merged: int = 0  # events that covered more than one anomaly
    normal_s: float = 0.0
    on_object: list[int] = field(default_factory=lambda: [0, 0])
    on_object_strict: int = 0


def score_day(run: DayRun, records: dict[int, list[FrameEmbedding]], truths: dict[int, VideoTruth]) -> DayScores:
    """An event detects an anomaly when it starts during it (from half a frame step before its onset
    to its end): an event already open when the anomaly begins gets no credit for it. Every event
    that detects none is a false alarm. Onset: from the anomaly's first frame to the frame that
    announced the event; release: from its end to the frame that closed the last event detecting it.
    The frame grid is every sampled frame after the warm-up; a frame is flagged when an event
    [t_start, t_end] covers it. Localisation: the detecting event's peak, at its peak frame, lies in
    the object's box grown by half a patch cell (strictly inside, without the margin, in brackets)."""
    sc = DayScores()
    gh, gw = run.grid
    for i, recs in records.items():
        truth = truths[i]
        eps = run.episodes[i]
        sc.events += len(eps)
        warm = truth.warmup_s
        for r in recs:
            if r.pts < warm - 1e-6:
                continue
            flagged = any(e.t_start - 1e-6 <= r.pts <= e.t_end + 1e-6 for e in eps)
            actual = truth.at(r.pts).anomalous
            sc.tp += flagged and actual
            sc.fp += flagged and not actual
            sc.fn += (not flagged) and actual
        credited: set[int] = set()
        for a in truth.anomalies:
            found = [k for k, e in enumerate(eps) if a.start - GRID_S / 2 <= e.t_start < a.end]
            sc.detected[a.kind][1] += 1
            sc.split += len(found) > 1
            if not found:
                continue
            credited.update(found)
            sc.detected[a.kind][0] += 1
            first, last = eps[found[0]], eps[found[-1]]
            sc.onset.append(first.opened_at - a.start)
            sc.release.append(last.closed_at - a.end)
            if a.kind in BOXED_KINDS and first.peak is not None and first.peak_t is not None:
                box = truth.at(first.peak_t).box
                sc.on_object[1] += 1
                if box is not None:
                    mx, my = 0.5 / gw, 0.5 / gh
                    x, y = first.peak
                    sc.on_object[0] += box[0] - mx <= x <= box[2] + mx and box[1] - my <= y <= box[3] + my
                    sc.on_object_strict += box[0] <= x <= box[2] and box[1] <= y <= box[3]
        for e in eps:
            covered = sum(e.t_start < a.end and e.t_end >= a.start for a in truth.anomalies)
            sc.merged += covered > 1
        sc.false_alarms += len(eps) - len(credited)
        sc.normal_s += truth.duration_s - warm - sum(a.end - a.start for a in truth.anomalies)
    return sc


def median(xs: list[float]) -> str:
    return f"{statistics.median(xs):5.1f} s" if xs else "  n/a"


def report_day(runs: list[tuple[DayRun, DayScores]]) -> None:
    """One column per detector."""
    width = 34
    cols = [f"{r.label[:width]:>{width}}" for r, _ in runs]
    print(f"\n{'':<44}" + "".join(cols))

    def row(name: str, cells: list[str]) -> None:
        print(f"{name:<44}" + "".join(f"{c:>{width}}" for c in cells))

    def f1(sc: DayScores) -> str:
        p = sc.tp / (sc.tp + sc.fp) if sc.tp + sc.fp else 0.0
        r = sc.tp / (sc.tp + sc.fn) if sc.tp + sc.fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return f"{p:.3f} / {r:.3f} / {f:.3f}"

    def frac(v: list[int]) -> str:
        return f"{100 * v[0] / v[1]:.0f}% ({v[0]}/{v[1]})" if v[1] else "n/a"

    row("frame precision / recall / F1 (0.5 s grid)", [f1(sc) for _, sc in runs])
    total = [[sum(v[0] for v in sc.detected.values()), sum(v[1] for v in sc.detected.values())] for _, sc in runs]
    row("anomalies detected (an event starts in it)", [frac(v) for v in total])
    for kind in ANOMALY_KINDS:
        row(f"  {kind}", [frac(sc.detected[kind]) for _, sc in runs])
    row(
        "false-alarm events (per hour of normal)",
        [f"{sc.false_alarms} ({3600 * sc.false_alarms / max(sc.normal_s, 1e-9):.1f}/h)" for _, sc in runs],
    )
    row("events; anomalies split; events merging", [f"{sc.events}; {sc.split}; {sc.merged}" for _, sc in runs])
    row("onset delay, median (max)", [f"{median(sc.onset)} ({max(sc.onset, default=math.nan):.1f})" for _, sc in runs])
    row(
        "release delay, median (max)",
        [f"{median(sc.release)} ({max(sc.release, default=math.nan):.1f})" for _, sc in runs],
    )
    row(
        "event peak on the object (strictly inside)",
        [f"{frac(sc.on_object)} ({sc.on_object_strict})" if sc.on_object[1] else "-" for _, sc in runs],
    )


def family_keys(family: str, videos: int, duration: float, model: ModelSettings) -> dict[int, str]:
    own = {STREET: (anomaly_street,), THEATRE: (anomaly_theatre,), WAREHOUSE: (anomaly_warehouse,)}.get(family, ())
    tag = source_hash(anomaly_families, *own)
    return {
        i: f"{family}-{i}-{duration:g}s-{tag}-{model.model.replace('/', '_').replace(':', '_')}-{model.image_size}"
        for i in range(videos)
    }


def run_family(args: argparse.Namespace, settings: AnomalySettings, cache: RecordCache) -> None:
    model = ModelSettings(model=args.model, image_size=args.size)
    keys = family_keys(args.family, args.videos, args.duration, model)

    def write(i: int, path: Path) -> dict[str, Any]:
        warmup_s = settings.warmup_frames / FPS
        if args.family == STREET:
            return StreetVideo(i, duration_s=args.duration, warmup_s=warmup_s).write_video(path).to_dict()
        if args.family == THEATRE:
            return TheatreVideo(i, duration_s=args.duration, warmup_s=warmup_s).write_video(path).to_dict()
        if args.family == WAREHOUSE:
            return WarehouseVideo(i, duration_s=args.duration, warmup_s=warmup_s).write_video(path).to_dict()
        video = FamilyVideo(args.family, i, duration_s=args.duration, warmup_s=warmup_s)
        return video.write_video(path).to_dict()

    t0 = time.perf_counter()
    records, extras, raw, embed_s, embedded = cached_streams(cache, keys, write, model, grey_tap)
    truths = {i: VideoTruth.from_dict(t) for i, t in raw.items()}
    if args.embed_only:
        print(f"family {args.family}: {len(records)} videos cached ({embedded} frames embedded now)")
        return
    first = records[0][0]
    kinds: dict[str, int] = defaultdict(int)
    for t in truths.values():
        for a in t.anomalies:
            kinds[a.kind] += 1
    gh, gw, dim = first.patches.shape
    print(
        f"family {args.family}: {len(records)} videos x {args.duration:g} s at {'x'.join(map(str, truths[0].size))}, "
        f"{sum(len(r) for r in records.values())} sampled frames at {FPS} fps "
        f"({embedded} embedded now, {time.perf_counter() - t0:.0f} s); anomalies "
        + ", ".join(f"{k} {kinds[k]}" for k in ANOMALY_KINDS)
    )
    print(f"model {first.model} {'UNTRAINED' if first.untrained else 'pretrained'}: {gh}x{gw} patches of {dim} dims")
    for i, t in truths.items():
        print(f"  video {i}: " + "; ".join(t.nuisances))
    runs = [run_day_detector("dinostream", records, settings)]
    if args.baseline:
        runs.append(run_day_detector(f"dinostream at {args.baseline}", records, settings, baseline(args.baseline)))
    runs.append(
        run_grey_peer("peer: kNN of 64x36 grey frames", records, {i: e["grey"] for i, e in extras.items()}, settings)
    )
    report_day([(r, score_day(r, records, truths)) for r in runs])
    for r in runs[: 1 + bool(args.baseline)]:
        ms = r.frame_ms
        print(
            f"{'' if r is not runs[0] else chr(10)}{r.label}: {statistics.median(ms):.2f} CPU-ms/frame median "
            f"(p95 {np.percentile(ms, 95):.2f}) on this machine"
            + (f"; decode + model {1000 * embed_s / embedded:.1f} ms/frame" if embedded and r is runs[0] else "")
        )


# --- scenes family (today's bench) ------------------------------------------------------------------


def run_scenes(args: argparse.Namespace, settings: AnomalySettings, cache: RecordCache) -> None:
    pics, source = load_pictures()
    print(f"anomaly bench: {args.streams} streams x {args.frames} frames at {FPS} fps, seed {args.seed}, {source}")
    print(f"model {args.model}, input preset {args.size}; detector settings: {settings.model_dump()}")
    cams = {i: make_stream(i, pics, args.frames, args.seed) for i in range(args.streams)}
    model = ModelSettings(model=args.model, image_size=args.size)
    how = inspect.getsource(make_stream) + repr((SCENES, OBJECTS))  # the bench's part in making the videos
    tag = source_hash(anomaly_scenes)[:6] + hashlib.sha1(how.encode()).hexdigest()[:4]
    tag += "-sk" if "scikit" in source else "-np"
    name = model.model.replace("/", "_").replace(":", "_")
    keys = {i: f"scenes-{i}-{args.frames}f-s{args.seed}-{tag}-{name}-{args.size}" for i in cams}

    def write(i: int, path: Path) -> list[dict[str, Any]]:
        return [vars(t) for t in cams[i].write_video(path, fps=FPS)]

    def keep_image(_: int, frame: Frame) -> dict[str, np.ndarray]:
        return {"image": frame.image} if not args.no_pixels else {}

    records, extras, raw, embed_s, embedded = cached_streams(cache, keys, write, model, keep_image)
    truths = {
        i: [Truth(**{**t, "box": None if t["box"] is None else tuple(t["box"])}) for t in ts] for i, ts in raw.items()
    }
    model_id, untrained = records[0][0].model, records[0][0].untrained
    n_frames = sum(len(r) for r in records.values())
    assert all(len(records[i]) == args.frames for i in cams), "every generated frame must be sampled once"
    anomalous = sum(t.anomalous for ts in truths.values() for t in ts)
    kinds: dict[str, int] = defaultdict(int)
    for ts in truths.values():
        for t in ts:
            kinds[t.kind] += 1
    print(
        f"{n_frames} frames ({args.streams * settings.warmup_frames} warm-up, {anomalous} anomalous: "
        + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()) if k != "normal")
        + f"); model {model_id} {'UNTRAINED (random weights)' if untrained else 'pretrained'}"
    )
    gh, gw, dim = records[0][0].patches.shape
    print(f"model input {gw * 16}x{gh * 16} (aspect kept): {gh}x{gw} patches of {dim} dims per frame")

    run = run_detector(f"DINOv3 features ({model_id})", records, truths, settings)
    report(run, truths, settings.threshold, full=True)
    det_ms = statistics.mean(run.frame_ms)
    p95 = float(np.percentile(run.frame_ms, 95))
    line = (
        f"detector: {det_ms:.2f} CPU-ms/frame (p95 {p95:.2f}, median {statistics.median(run.frame_ms):.2f}), "
        f"warm-up end (calibration + final coresets) {statistics.mean(run.warmup_end_ms):.0f} ms once per stream"
    )
    if embedded:
        model_ms = 1000 * embed_s / embedded
        line += f"; decode+model {model_ms:.1f} ms/frame on this machine -> detector is {det_ms / model_ms:.1%} of it"
    print(line)
    if args.baseline:
        old = run_detector(f"dinostream at {args.baseline}", records, truths, settings, baseline(args.baseline))
        report(old, truths, settings.threshold, full=True)
        print(f"detector: {statistics.median(old.frame_ms):.2f} CPU-ms/frame median on this machine")
    if not args.no_pixels:
        patch = 16
        pix = {
            i: [pixel_record(r, extras[i]["image"][k], patch) for k, r in enumerate(recs)]
            for i, recs in records.items()
        }
        prun = run_detector(
            "peer: same detector on raw-pixel patches of the same decoded frames", pix, truths, settings
        )
        report(prun, truths, settings.threshold, full=False)
    if untrained:
        print(
            "\nNOTE: the model has RANDOM weights. Its features are an untrained function of the pixels: they "
            "mix each patch with its context and normalise contrast (hence better than the raw-pixel peer), but "
            "know nothing of objects. These figures measure the detector's machinery on appearance novelty "
            "(pasted crops, a covered lens, another scene), not semantic anomaly detection."
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="random:vits16", help="model spec, as for dinostream --model")
    ap.add_argument("--size", type=int, default=224, help="model input side (a multiple of 16)")
    ap.add_argument(
        "--family",
        choices=(*FAMILY_NAMES, STREET, THEATRE, WAREHOUSE),
        help="a camera-day family instead of the scenes",
    )
    ap.add_argument("--videos", type=int, default=8, help="camera-day videos (seeds 0..n-1)")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds per camera-day video")
    ap.add_argument("--streams", type=int, default=8, help="scenes: streams")
    ap.add_argument("--frames", type=int, default=150, help="scenes: frames per stream, warm-up included")
    ap.add_argument("--seed", type=int, default=0, help="scenes: seed")
    ap.add_argument("--no-pixels", action="store_true", help="scenes: skip the raw-pixel peer")
    ap.add_argument(
        "--baseline", metavar="REV", help="also run analytics/anomaly.py as it was at this git revision (before/after)"
    )
    ap.add_argument("--cache", type=Path, help="keep records here and reuse them (keyed by generator, model, size)")
    ap.add_argument("--embed-only", action="store_true", help="camera-day: generate and cache, report nothing")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a detector setting to change")
    args = ap.parse_args()
    changes = dict(kv.split("=", 1) for kv in args.set)
    settings = AnomalySettings.model_validate({**AnomalySettings().model_dump(), **changes})
    if changes:
        print(f"detector settings changed: {changes}")
    cache = RecordCache(args.cache)
    if args.family:
        run_family(args, settings, cache)
    else:
        run_scenes(args, settings, cache)


if __name__ == "__main__":
    main()

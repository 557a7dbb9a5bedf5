"""Anomaly benchmark: ground-truth anomalies inserted into generated camera streams.

Each stream is a camera on a scikit-image sample picture (static or slowly panning, lighting
drift, colour cast, sensor noise), H.264-encoded, then decoded, sampled and resized by the
project's ingest and embedded by the project's model stage, exactly as `dinostream analyze`
does. After a normal warm-up, foreign objects (crops of other pictures, rectangles and
ellipses of several sizes) and unusual content (lens covered, another scene, inverted colours)
appear at known frames. One `AnomalyDetector` with default settings scores every stream: no
per-video tuning. A peer detector with the same settings runs on raw-pixel patches of the very
same decoded frames, to show what the features add.

    python bench/anomaly.py                    # random:vits16 at 224, 8 streams, a few minutes on 2 cores
    python bench/anomaly.py --model /models/dinov3-vits16 --size 448

Needs the `bench` extra (scikit-image) for the pictures; without it numpy-drawn scenes are used.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # generators/ lives at the repository root

from dinostream.analytics.anomaly import AnomalyDetector
from dinostream.core.records import Event, FrameEmbedding
from dinostream.core.settings import AnomalySettings, IngestSettings, ModelSettings
from dinostream.embedding.stage import EmbeddingStage, load_model_async
from dinostream.ingest.av_source import make_source
from dinostream.ingest.source_plan import SourceSpec
from generators.anomaly_scenes import CONTENT_KINDS, SceneStream, Truth, procedural_backdrop, procedural_object

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
    frame_ms: list[float] = field(default_factory=list)
    warmup_end_ms: list[float] = field(default_factory=list)


def run_detector(label: str, records: dict[int, list[FrameEmbedding]], truths: dict[int, list[Truth]]) -> Run:
    run = Run(label)
    det = AnomalyDetector(AnomalySettings())
    for i, recs in records.items():
        for rec in recs:
            t0 = time.perf_counter()
            events = det.process(rec)
            ms = (time.perf_counter() - t0) * 1000
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
    if len(set(ys)) < 2:
        return float("nan")
    return float(roc_auc_score(ys, ss))


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


async def embed_streams(
    paths: dict[int, Path], model: ModelSettings, patch_pixels: bool
) -> tuple[dict[int, list[FrameEmbedding]], dict[int, dict[int, np.ndarray]], float, str, bool]:
    """Decode and embed every stream through the project's ingest and model stage (streams share
    the micro-batcher, as in `dinostream up`). Also keeps each decoded frame for the pixel peer."""
    loaded = await load_model_async(model)
    ingest = IngestSettings(sample_fps=FPS)
    records: dict[int, list[FrameEmbedding]] = defaultdict(list)
    images: dict[int, dict[int, np.ndarray]] = defaultdict(dict)
    by_stream = {f"cam{i}": i for i in paths}

    async def sink(batch: list[FrameEmbedding]) -> None:
        for rec in batch:
            records[by_stream[rec.stream]].append(rec)

    stage = EmbeddingStage(loaded, model, ingest, sink)

    async def pump(i: int, spec: SourceSpec) -> None:
        # EmbeddingStage.pump, with a tap that keeps the decoded frame for the pixel peer.
        source = make_source(spec.url, spec.stream, ingest, await stage.resize_target(spec))
        try:
            async for frame in source.frames():
                if patch_pixels:
                    images[i][frame.seq] = frame.image
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
    return dict(records), dict(images), seconds, loaded.model_id, loaded.untrained


def report(run: Run, truths: dict[int, list[Truth]], *, full: bool) -> None:
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
    alarms = sum(
        s > AnomalySettings().threshold for s, t in zip(run.scores, run.truths, strict=True) if not t.anomalous
    )
    print(f"event precision:                       {pct(tp, n_ev)}")
    print(f"event recall (inserted anomalies):     {pct(hit, n_seg)}")
    print(f"normal frames above threshold:         {pct(alarms, normal)}")
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for t, s in zip(run.truths, run.scores, strict=True):
        if t.anomalous:
            by_kind[t.kind][0] += int(s > AnomalySettings().threshold)
            by_kind[t.kind][1] += 1
    print("anomalous frames above threshold:      " + ", ".join(f"{k} {pct(*v)}" for k, v in sorted(by_kind.items())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="random:vits16", help="model spec, as for dinostream --model")
    ap.add_argument("--size", type=int, default=224, help="model input side (a multiple of 16)")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--frames", type=int, default=150, help="frames per stream, warm-up included")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-pixels", action="store_true", help="skip the raw-pixel peer")
    args = ap.parse_args()

    pics, source = load_pictures()
    settings = AnomalySettings()
    print(f"anomaly bench: {args.streams} streams x {args.frames} frames at {FPS} fps, seed {args.seed}, {source}")
    print(f"model {args.model}, input preset {args.size}; detector defaults: {settings.model_dump()}")
    cams = {i: make_stream(i, pics, args.frames, args.seed) for i in range(args.streams)}
    with tempfile.TemporaryDirectory(prefix="dinostream-anomaly-bench-") as tmp:
        truths = {}
        for i, cam in cams.items():
            truths[i] = cam.write_video(Path(tmp) / f"cam{i}.mp4", fps=FPS)
        model = ModelSettings(model=args.model, image_size=args.size)
        paths = {i: Path(tmp) / f"cam{i}.mp4" for i in cams}
        records, images, embed_s, model_id, untrained = asyncio.run(embed_streams(paths, model, not args.no_pixels))
    n_frames = sum(len(r) for r in records.values())
    assert all(len(records[i]) == args.frames for i in cams), "every generated frame must be sampled once"
    anomalous = sum(t.anomalous for ts in truths.values() for t in ts)
    kinds: dict[str, int] = defaultdict(int)
    for ts in truths.values():
        for t in ts:
            kinds[t.kind] += 1
    print(
        f"{n_frames} frames ({args.streams * WARMUP} warm-up, {anomalous} anomalous: "
        + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()) if k != "normal")
        + f"); model {model_id} {'UNTRAINED (random weights)' if untrained else 'pretrained'}"
    )
    gh, gw, dim = records[0][0].patches.shape
    print(f"model input {gw * 16}x{gh * 16} (aspect kept): {gh}x{gw} patches of {dim} dims per frame")

    run = run_detector(f"DINOv3 features ({model_id})", records, truths)
    report(run, truths, full=True)
    model_ms = 1000 * embed_s / n_frames
    det_ms = statistics.mean(run.frame_ms)
    p95 = float(np.percentile(run.frame_ms, 95))
    print(
        f"detector: {det_ms:.2f} ms/frame (p95 {p95:.2f}), warm-up end (calibration + final coresets) "
        f"{statistics.mean(run.warmup_end_ms):.0f} ms once per stream; decode+model {model_ms:.1f} ms/frame "
        f"on this machine -> detector is {det_ms / model_ms:.1%} of the model's time"
    )
    if not args.no_pixels:
        patch = 16
        pix = {i: [pixel_record(r, images[i][r.seq], patch) for r in recs] for i, recs in records.items()}
        prun = run_detector("peer: same detector on raw-pixel patches of the same decoded frames", pix, truths)
        report(prun, truths, full=False)
    if untrained:
        print(
            "\nNOTE: the model has RANDOM weights. Its features are an untrained function of the pixels: they "
            "mix each patch with its context and normalise contrast (hence better than the raw-pixel peer), but "
            "know nothing of objects. These figures measure the detector's machinery on appearance novelty "
            "(pasted crops, a covered lens, another scene), not semantic anomaly detection."
        )


if __name__ == "__main__":
    main()

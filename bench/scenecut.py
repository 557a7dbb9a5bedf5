"""Shot-boundary benchmark: dinostream's scene-change detector against PySceneDetect.

Generates ground-truth videos of one family (`--family`):

- `default`: `generators.groundtruth` (shots of scikit-image sample pictures with slow pans and
  zooms, joined by cuts, dissolves and fades through black; flashes, whip pans, crossing objects
  and lighting drift inside shots);
- `textures` (the development family: tune on it) and `scenes` (held out: never used while tuning,
  report on it) from `generators.scenecut_families`: other picture sources, camera pans, zooms,
  rolls and shake, sensor noise, poorer encodes, 320x180 to 1280x720, shots of 1.5-10 s, cuts to
  another view of the same scene, fades through white;
- `stage`: the third family, from `generators.scenecut_stage`, made independently of the others
  (2.5D sets: backdrop, parallax layers and props filmed by a trucking, dollying, zooming and
  handheld camera; MPEG-4 and short-GOP encodes too). It is held out like `scenes`: never used
  while tuning, report on it;
- `aerial`: the fourth family, from `generators.scenecut_aerial`, made independently of the others
  (drone and mast cameras over procedural terrain, fields, forests, coasts, towns and car parks:
  flying, yawing, orbiting, climbing; cloud shadows, street lights at dusk, birds and drones near
  the lens). Held out: never used while tuning, report on it;
- `indoor`: the fifth family, from `generators.scenecut_indoor`, made independently of the others
  (CCTV, broadcast and screen-recording footage: offices, corridors and TV studios in perspective,
  a sports pitch, slides; people walking, fixed CCTV cameras, pans, zooms, rolls and shake; lights
  switched off and on, auto-exposure steps, doors opening to bright rooms, people and hands close to
  the lens). Held out: never used while tuning, report on it;
- `nature`: the sixth family, from `generators.scenecut_nature`, made independently of the others
  (wildlife documentary and outdoor footage: mountains, lakes, forests, meadows, dunes, snow fields,
  coasts and reefs drawn in parallax layers; birds, grazing animals and fish; rain, snowfall, fog and
  haze; tripod, pans, tilts, zooms, drone glides, handheld and time-lapse cameras; lightning, whip pans
  after a bird, branches, birds and animals passing the lens, the sun coming out, cloud shadows).
  Held out: never used while tuning, report on it;
- `cctv`: the seventh family, from `generators.scenecut_cctv`, made independently of the others
  (a CCTV recorder's guard tour through the cameras of one site: corridors, car parks, stairwells,
  loading bays, lobbies, perimeter fences and lifts that look alike; the recorder's timestamp, camera
  name and logo over every frame; colour and infrared night cameras, video-loss screens, PTZ domes
  swinging and zooming, people and vans close to the lens, moths on it at night, day/night switches,
  lights going off, headlights; 6-30 fps, poor H.264 and MPEG-4 encodes with long GOPs). Held out:
  never used while tuning, report on it.

then runs on the same files:

- dinostream at each `--fps`: the live path's records (PyAV ingest sampled at that rate, the DINOv3
  model; `bench/embedding_cache.py`, kept in `--cache` so the detector can be re-run without the
  model) through `SceneChangeDetector` with default settings, flushed at the end of the file,
- PySceneDetect ContentDetector and AdaptiveDetector with their defaults, on every frame,

and scores all with the same one-to-one matching (`score_detections`): a detection at t matches a
transition [start, end] when start - tol <= t <= end + tol (for dinostream at least one sampling
interval: at 1 fps a cut is first seen up to a second after it). For each method it prints P/R/F1,
recall per transition kind, false alarms by what was on screen, and the timing error
|t - true time| per kind (true time: a cut's first new frame, a gradual change's middle), with
how many cuts came more than one sampling interval off. The detector's cost is its CPU time per
frame (the median over videos), without the model.

    pip install -e '.[bench]'
    python bench/scenecut.py                                    # default family, 1, 2 and 5 fps
    python bench/scenecut.py --family scenes --cache /tmp/scenecut  # the held-out family
    python bench/scenecut.py --family stage --cache /tmp/scenecut   # the third, held-out family
    python bench/scenecut.py --family aerial --cache /tmp/scenecut  # the fourth, held-out family
    python bench/scenecut.py --family indoor --cache /tmp/scenecut  # the fifth, held-out family
    python bench/scenecut.py --family nature --cache /tmp/scenecut  # the sixth, held-out family
    python bench/scenecut.py --family cctv --cache /tmp/scenecut    # the seventh, held-out family
    python bench/scenecut.py --videos 24 --fps 2                # a steadier figure at one rate
    python bench/scenecut.py --model /models/dinov3-vits16 --videos 20

Needs no network: with `random:vits16` the DINOv3 weights are random, and the printout says so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # generators/ lives at the repository root

import numpy as np

from bench.embedding_cache import EmbeddingCache
from dinostream.analytics.scene_change import SceneChangeDetector
from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import ModelSettings, SceneChangeSettings, Settings
from generators.groundtruth import (
    DISTRACTOR_KINDS,
    TRANSITION_KINDS,
    Distractor,
    GroundTruth,
    ShotInfo,
    Transition,
    distractor_near,
    make_groundtruth_video,
    sample_images,
    score_detections,
)
from generators.scenecut_aerial import AERIAL_FAMILY, make_aerial_video
from generators.scenecut_cctv import CCTV_FAMILY, make_cctv_video
from generators.scenecut_families import (
    CUT_KINDS,
    DEVELOPMENT_FAMILY,
    FAMILIES,
    FAMILY_TRANSITION_KINDS,
    HELD_OUT_FAMILY,
    make_family_video,
    true_time,
)
from generators.scenecut_indoor import INDOOR_FAMILY, make_indoor_video
from generators.scenecut_nature import NATURE_FAMILY, make_nature_video
from generators.scenecut_stage import STAGE_FAMILY, make_stage_video

KINDS = list(dict.fromkeys([*TRANSITION_KINDS, *FAMILY_TRANSITION_KINDS]))


@dataclass
class Tally:
    """Counts for one method over all videos."""

    interval: float | None = None  # sampling interval (s), for dinostream
    tp: int = 0
    fp: int = 0
    fn: int = 0
    found: Counter[str] = field(default_factory=Counter)  # matched transitions by kind
    total: Counter[str] = field(default_factory=Counter)  # transitions by kind
    false_by: Counter[str] = field(default_factory=Counter)  # false alarms by nearby distractor
    errors: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # |t - true| by kind
    seconds: float = 0.0
    ms_per_frame: list[float] = field(default_factory=list)  # per video

    def add(self, times: list[float], truth: GroundTruth, tolerance: float) -> None:
        score = score_detections(times, truth, tolerance)
        self.tp, self.fp, self.fn = self.tp + score.tp, self.fp + score.fp, self.fn + score.fn
        hit = dict((j, i) for i, j in score.matched)
        for j, tr in enumerate(truth.transitions):
            self.total[tr.kind] += 1
            if j in hit:
                self.found[tr.kind] += 1
                self.errors[tr.kind].append(abs(times[hit[j]] - true_time(tr)))
        for i in score.false_alarms:
            self.false_by[distractor_near(times[i], truth, tolerance) or "elsewhere"] += 1

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def make_video(family: str, seed: int, shots: int, workdir: Path) -> GroundTruth:
    """The family's video for `seed` in `workdir`, generated unless it is there with its truth."""
    path = workdir / f"{family}-{seed}{'' if family != 'default' else f'-{shots}'}.mp4"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        d = json.loads(meta.read_text())
        return GroundTruth(
            d["path"],
            d["seed"],
            d["fps"],
            d["frames"],
            tuple(d["size"]),  # type: ignore[arg-type]
            [ShotInfo(**x) for x in d["shots"]],
            [Transition(**x) for x in d["transitions"]],
            [Distractor(**x) for x in d["distractors"]],
        )
    if family == "default":
        truth = make_groundtruth_video(path, sample_images(), seed=seed, shots=shots)
    elif family == STAGE_FAMILY:
        truth = make_stage_video(path, seed)
    elif family == AERIAL_FAMILY:
        truth = make_aerial_video(path, seed)
    elif family == INDOOR_FAMILY:
        truth = make_indoor_video(path, seed)
    elif family == NATURE_FAMILY:
        truth = make_nature_video(path, seed)
    elif family == CCTV_FAMILY:
        truth = make_cctv_video(path, seed)
    else:
        truth = make_family_video(path, family, seed=seed)
    meta.write_text(json.dumps(truth.to_dict()))
    return truth


def run_detector(records: list[FrameEmbedding]) -> tuple[list[float], float]:
    """Scene-change times from the records, and the detector's CPU seconds."""
    det = SceneChangeDetector(SceneChangeSettings())
    t0 = time.process_time()
    events = [e for r in records for e in det.process(r)]
    events += det.flush(records[0].stream) if records else []
    cpu = time.process_time() - t0
    return sorted(e.t for e in events if e.type == "scene_change"), cpu


def run_pyscenedetect(path: Path, name: str, detector: Callable[[], object], cache: Path | None) -> list[float]:
    """Cut times of a PySceneDetect detector on every frame (kept in `cache` by file content)."""
    from scenedetect import detect

    file = None
    if cache is not None:
        key = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        file = cache / f"{path.stem}-{name}-{key}.json"
        if file.exists():
            return list(json.loads(file.read_text()))
    scenes = detect(str(path), detector(), show_progress=False)
    times = [start.seconds for start, _ in scenes[1:]]  # a new scene starts at each cut
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(times))
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--family",
        default="default",
        choices=["default", *FAMILIES, STAGE_FAMILY, AERIAL_FAMILY, INDOOR_FAMILY, NATURE_FAMILY, CCTV_FAMILY],
        help=f"ground-truth generator (default: generators.groundtruth; {DEVELOPMENT_FAMILY}: development, "
        f"{HELD_OUT_FAMILY}, {STAGE_FAMILY}, {AERIAL_FAMILY}, {INDOOR_FAMILY}, {NATURE_FAMILY} and {CCTV_FAMILY}: "
        "held out)",
    )
    ap.add_argument("--videos", type=int, default=6, help="ground-truth videos to generate (default 6)")
    ap.add_argument("--shots", type=int, default=10, help="shots per video of the default family (default 10)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the first video; video i uses seed + i")
    ap.add_argument("--fps", default="1,2,5", help="rates dinostream samples, comma-separated (default 1,2,5)")
    ap.add_argument("--model", default="random:vits16", help="DINOv3 model for dinostream (default random:vits16)")
    ap.add_argument("--tolerance", type=float, default=0.5, help="matching tolerance in seconds (default 0.5)")
    ap.add_argument("--workdir", type=Path, help="keep the videos here and reuse them (default: a temporary directory)")
    ap.add_argument("--cache", type=Path, help="keep embeddings and peer results here and reuse them")
    ap.add_argument("--no-peers", action="store_true", help="skip PySceneDetect")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    rates = sorted({float(x) for x in args.fps.split(",")}, reverse=True)

    settings = Settings(model=ModelSettings(model=args.model))
    cache = EmbeddingCache(args.cache / "embeddings" if args.cache else None, settings)
    tallies = {f"dinostream ({args.model}, {r:g} fps)": Tally(interval=1 / r) for r in sorted(rates)}
    peers: dict[str, Callable[[], object]] = {}
    if not args.no_peers:
        from scenedetect import AdaptiveDetector, ContentDetector

        logging.getLogger("pyscenedetect").setLevel(logging.ERROR)  # its import sets INFO: a line per run
        peers = {"PySceneDetect ContentDetector": ContentDetector, "PySceneDetect AdaptiveDetector": AdaptiveDetector}
        tallies.update({name: Tally() for name in peers})
    with tempfile.TemporaryDirectory(prefix="scenecut-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for k in range(args.videos):
            seed = args.seed + k
            truth = make_video(args.family, seed, args.shots, workdir)
            path = Path(truth.path)
            kinds = Counter(t.kind for t in truth.transitions)
            print(
                f"video {k + 1}/{args.videos} {args.family} seed {seed}: {truth.size[0]}x{truth.size[1]} "
                f"{truth.fps} fps, {truth.duration:.1f} s, {len(truth.transitions)} transitions "
                f"({', '.join(f'{n} {kd}' for kd, n in sorted(kinds.items()))}), "
                f"distractors: {', '.join(d.kind for d in truth.distractors) or 'none'}",
                flush=True,
            )
            for r in rates:
                # Each rate decoded on its own, as a live stream at that rate would be: keyframes-only
                # decoding, the frames it takes and the jumps it sees all depend on the rate.
                records = cache.records(path, r)
                times, cpu = run_detector(records)
                t = tallies[f"dinostream ({args.model}, {r:g} fps)"]
                t.seconds += cpu
                t.ms_per_frame.append(1000 * cpu / max(len(records), 1))
                t.add(times, truth, max(args.tolerance, 1 / r))  # a cut is seen up to one interval late
            for name, det in peers.items():
                t0 = time.perf_counter()
                times = run_pyscenedetect(path, name.split()[-1], det, args.cache)
                tallies[name].seconds += time.perf_counter() - t0
                tallies[name].add(times, truth, args.tolerance)
    if cache.embedded_frames:
        print(f"(embedded {cache.embedded_frames} frames in {cache.embed_seconds:.0f} s; the rest from the cache)")
    report(tallies, args)
    return 0


def report(tallies: dict[str, Tally], args: argparse.Namespace) -> None:
    width = max(len(n) for n in tallies)
    print()
    print(
        f"Family {args.family!r}, {args.videos} videos from seed {args.seed}. Matching: a detection at t matches a "
        f"transition [start, end] when start - {args.tolerance:g} s <= t <= end + {args.tolerance:g} s (a cut has "
        "start = end = its first new frame; for dinostream at rates below 1/tolerance the tolerance is one "
        "sampling interval, as a cut is first seen up to one interval after it); one detection per transition, "
        "nearest first; the rest are false alarms. PySceneDetect runs its defaults on every frame; dinostream its "
        "default SceneChangeSettings on the sampled frames. 'seconds': the detector's CPU time (dinostream, "
        "without the model) or PySceneDetect's wall time with decoding; ms/frame: median over videos."
    )
    print()
    head = f"{'method':<{width}}  {'P':>5}  {'R':>5}  {'F1':>5}  {'TP':>4} {'FP':>4} {'FN':>4}"
    head += f"  {'seconds':>7} {'ms/frame':>8}"
    print(head)
    print("-" * len(head))
    for name, t in tallies.items():
        ms = f"{np.median(t.ms_per_frame):8.2f}" if t.ms_per_frame else f"{'':8}"
        print(
            f"{name:<{width}}  {t.precision:5.3f}  {t.recall:5.3f}  {t.f1:5.3f}  {t.tp:4d} {t.fp:4d} {t.fn:4d}  "
            f"{t.seconds:7.1f} {ms}"
        )
    kinds = [k for k in KINDS if any(t.total[k] for t in tallies.values())]
    print()
    print("recall by transition kind, false alarms by what was on screen (within the tolerance):")
    cols = [*kinds, *DISTRACTOR_KINDS, "elsewhere"]
    print(f"{'method':<{width}}  " + "  ".join(f"{c:>10}" for c in cols))
    for name, t in tallies.items():
        cells = [f"{t.found[k]}/{t.total[k]}" for k in kinds]
        cells += [str(t.false_by[k]) for k in [*DISTRACTOR_KINDS, "elsewhere"]]
        print(f"{name:<{width}}  " + "  ".join(f"{c:>10}" for c in cells))
    print()
    print(
        "timing error |t - true time| of matched transitions, seconds: median / 90th percentile / max "
        "(true time: a cut's first new frame, a gradual change's middle); 'cuts > 1 interval': matched cuts "
        "reported more than one sampling interval from the cut:"
    )
    print(f"{'method':<{width}}  " + "  ".join(f"{k:>16}" for k in kinds) + f"  {'all':>16}  cuts > 1 interval")
    for name, t in tallies.items():
        cells = [_spread(t.errors[k]) for k in kinds]
        cells.append(_spread([e for k in kinds for e in t.errors[k]]))
        late = ""
        if t.interval is not None:
            cut_errors = [e for k in dict.fromkeys(CUT_KINDS) for e in t.errors.get(k, [])]
            late = f"{sum(e > t.interval + 1e-6 for e in cut_errors)}/{len(cut_errors)}"
        print(f"{name:<{width}}  " + "  ".join(f"{c:>16}" for c in cells) + f"  {late:>16}")
    for name, t in tallies.items():
        if t.interval is not None:
            all_err = [e for k in kinds for e in t.errors[k]]
            if all_err:
                print(
                    f"{name}: median error {np.median(all_err):.3f} s = {np.median(all_err) / t.interval:.2f} of the "
                    f"{t.interval:g} s sampling interval"
                )
    if args.model.startswith("random:"):
        print()
        print(
            f"NOTE: {args.model} has RANDOM, untrained weights. Its features react to brightness, colour and\n"
            "texture but know nothing of objects or scenes, so these dinostream figures are what the random\n"
            "architecture plus the detector's logic achieve, not what DINOv3 achieves. With a real checkpoint\n"
            "(--model DIR) the features are stable under lighting changes and recognise a panned or partly\n"
            "hidden scene as the same one, which is where the random features cause most false alarms."
        )


def _spread(errors: list[float]) -> str:
    if not errors:
        return "-"
    e = np.asarray(errors)
    return f"{np.median(e):.2f}/{np.percentile(e, 90):.2f}/{e.max():.2f}"


if __name__ == "__main__":
    sys.exit(main())

"""Families of shot-boundary ground-truth videos, each made a different way, so that a detector tuned
on one can be checked on another it never saw.

`generators.groundtruth` is one family (scikit-image stills behind a slowly panning camera). This
module adds families built from independent parts:

- picture sources: procedural textures (fractal noise, gratings, cells, tiles, rings), scikit-image
  samples, synthetic scenes with objects (sky, ground, buildings, trees, things), and backdrops of
  the anomaly generator's footage (`generators.anomaly_scenes.procedural_backdrop`);
- a camera inside each shot: pan, zoom, rotation and handheld shake, at a family's strengths;
- brightness drift and exposure, temporal sensor noise, H.264 quality from high to poor,
  320x180 to 1280x720, shots of 1.5-10 s;
- transitions: hard cuts, cuts between two views of the same scene (a close-up of the wide shot
  or another part of it), dissolves, fades through black and through white;
- distractors that are not shot changes: flashes, occluders crossing the view, whip pans,
  lighting drift; in the scenes family things also move inside the shot.

`DEVELOPMENT_FAMILY` is the one to tune on; `HELD_OUT_FAMILY` is never used while tuning and is
what a change is reported on. Everything is deterministic for (family, seed).

    >>> truth = make_family_video("v.mp4", "textures", seed=3)  # doctest: +SKIP
    >>> [(t.kind, t.start, t.end) for t in truth.transitions][:2]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from generators.anomaly_scenes import procedural_backdrop
from generators.groundtruth import Distractor, GroundTruth, ShotInfo, Transition

# Transition kinds of these families ("view_cut": a cut to another view of the same scene).
FAMILY_TRANSITION_KINDS = ("cut", "view_cut", "dissolve", "fade", "fade_white")
FAMILY_DISTRACTOR_KINDS = ("flash", "fast_pan", "occluder", "drift")
CUT_KINDS = ("cut", "view_cut")  # one frame step: the true time is the first new frame
_MARGIN_S = 1.0  # distractors keep this far from any transition
_WORK_WIDTH = 640  # pictures are drawn at most this wide, then scaled to the video's size
_NOISE_FIELDS = 7  # sensor noise: this many fields, one per frame in turn


Picture = Callable[[np.random.Generator, int, int], np.ndarray]  # (rng, width, height) -> RGB uint8


@dataclass(frozen=True)
class Encoding:
    """`libx264` at a constant rate factor, or `mpeg4` at a bit rate; `gop`: frames between keyframes."""

    codec: str = "libx264"
    crf: int = 23
    bits_per_pixel: float = 0.1  # mpeg4 only
    gop: int | None = None  # None: the encoder's default
    preset: str = "veryfast"  # libx264 only


def add_video_stream(
    container: av.container.OutputContainer, encoding: Encoding, size: tuple[int, int], fps: int
) -> av.VideoStream:
    """A yuv420p video stream of `size` = (width, height) at `fps` in `container`, encoded as
    `encoding` says (the stage and aerial families' encoder set-up)."""
    width, height = size
    options = {"crf": str(encoding.crf), "preset": encoding.preset} if encoding.codec == "libx264" else {}
    stream = container.add_stream(encoding.codec, rate=fps, options=options)
    assert isinstance(stream, av.VideoStream)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    if encoding.codec != "libx264":
        stream.codec_context.bit_rate = int(encoding.bits_per_pixel * width * height * fps)
    if encoding.gop is not None:
        stream.codec_context.gop_size = encoding.gop
    return stream


def write_video(
    path: str | os.PathLike[str], encoding: Encoding, size: tuple[int, int], fps: int, frames: Iterable[np.ndarray]
) -> None:
    """Encode RGB uint8 `frames` (drawn at any working size) as a `size` = (width, height) video at
    `fps`, scaled to yuv420p with FFmpeg's bicubic filter (the aerial and indoor families' writer)."""
    width, height = size
    with av.open(os.fspath(path), "w") as container:
        stream = add_video_stream(container, encoding, size, fps)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame = frame.reformat(width, height, "yuv420p", interpolation="BICUBIC")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def transition_frames(
    rng: np.random.Generator,
    kind: str,
    fps: int,
    *,
    dissolve_s: tuple[float, float],
    fade_s: tuple[float, float],
    hold_s: tuple[float, float],
) -> tuple[int, int, int]:
    """(fade out, dissolve or hold, fade in) frames of a transition of `kind`, its lengths drawn in
    a family's ranges of seconds: none for a cut, at least two for a dissolve, at least one for
    each half of a fade (the aerial and indoor families' transitions)."""
    if kind in CUT_KINDS:
        return (0, 0, 0)
    if kind == "dissolve":
        return (0, max(2, round(rng.uniform(*dissolve_s) * fps)), 0)
    if kind in ("fade", "fade_white"):
        return (
            max(1, round(rng.uniform(*fade_s) * fps)),
            round(rng.uniform(*hold_s) * fps),
            max(1, round(rng.uniform(*fade_s) * fps)),
        )
    raise ValueError(f"unknown transition kind {kind!r}")


class LaidShot(Protocol):
    """A planned shot as `lay_out` places it (the aerial and indoor families' PlannedShot)."""

    into: str | None
    into_frames: tuple[int, int, int]
    solo: int
    first: int
    last: int
    solo_start: int
    solo_end: int


def lay_out(shots: Sequence[LaidShot], fps: int) -> list[Transition]:
    """Each shot's frames in the video (set on `shots`) and the transitions' times: `start` is the first frame that is
    not purely the outgoing shot, `end` the first that is purely the incoming one (a cut: both the
    first new frame)."""
    transitions: list[Transition] = []
    at = 0
    for k, shot in enumerate(shots):
        shot.first = at
        if k:
            n_out, mid, n_in = shot.into_frames
            start = at
            if shot.into == "dissolve":
                at += mid
                shots[k - 1].last = at
            elif shot.into in ("fade", "fade_white"):
                shots[k - 1].last = at + n_out
                shot.first = at + n_out + mid
                at += n_out + mid + n_in
            transitions.append(Transition(shot.into, start / fps, at / fps, k - 1, k))  # type: ignore[arg-type]
        shot.solo_start = at
        at += shot.solo
        shot.solo_end = shot.last = at
    return transitions


ShotLength = tuple[str | None, tuple[int, int, int], int, list[str]]  # (into, its frames, solo frames, effects)


def pick_weighted(rng: np.random.Generator, weights: dict[str, float]) -> str:
    """One name of `weights`, drawn with probability proportional to its weight."""
    names = list(weights)
    p = np.array([weights[n] for n in names], float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def plan_shot_lengths(
    rng: np.random.Generator,
    fps: int,
    duration: float,
    shot_s: tuple[float, float],
    plan: Sequence[tuple[str | None, str | None]] | None,
    *,
    kinds: Sequence[str],
    weights: Sequence[float],
    effects: Collection[str],
    longest_s: float,
    frames_of: Callable[[np.random.Generator, str, int], tuple[int, int, int]],
) -> list[ShotLength]:
    """Shot lengths and transitions (the aerial and indoor families' planning): lengths of
    `shot_s` seconds that add up to `duration`, the transition into each drawn from `kinds` with
    `weights` and timed by `frames_of` (no transition longer than `longest_s`); or one shot per
    `plan` entry (transition into it, effect in it: one of `effects` or None; the first has no
    transition), of a drawn length."""
    lo, hi = max(1, round(shot_s[0] * fps)), max(1, round(shot_s[1] * fps))
    shots: list[ShotLength] = []
    if plan is not None:
        if not plan or plan[0][0] is not None:
            raise ValueError("the first shot of a plan has no transition into it")
        for k, (into, effect) in enumerate(plan):
            if k and into not in kinds:
                raise ValueError(f"unknown transition kind {into!r}")
            if effect is not None and effect not in effects:
                raise ValueError(f"unknown effect {effect!r}")
            frames = frames_of(rng, into, fps) if into else (0, 0, 0)
            shots.append((into, frames, int(rng.integers(lo, hi + 1)), [effect] if effect else []))
        return shots
    rest = round(duration * fps)
    longest = round(longest_s * fps)
    kind: str | None = None
    frames = (0, 0, 0)
    while True:
        solo = min(int(rng.integers(lo, hi + 1)), rest - longest - lo)
        if rest <= hi or solo < lo:
            shots.append((kind, frames, rest, []))
            return shots
        shots.append((kind, frames, solo, []))
        kind = kinds[int(rng.choice(len(kinds), p=weights))]
        frames = frames_of(rng, kind, fps)
        rest -= solo + sum(frames)


@dataclass(frozen=True)
class Family:
    """How one family's videos are made: where pictures come from and how hard the camera works."""

    name: str
    pictures: tuple[Picture, ...]
    sizes: tuple[tuple[int, int], ...]
    fps: tuple[int, ...]
    crf: tuple[int, int]  # H.264 constant rate factor range: 18 is high quality, 40 poor
    shot_s: tuple[float, float] = (1.5, 10.0)
    shots: int = 8
    transitions: tuple[tuple[str, float], ...] = (
        ("cut", 0.4),
        ("view_cut", 0.15),
        ("dissolve", 0.2),
        ("fade", 0.15),
        ("fade_white", 0.1),
    )
    distractor_rate: float = 0.6
    pan: float = 0.08  # largest slow pan, views per second
    zoom: float = 0.06  # largest zoom rate, per second (log scale)
    rotation: float = 2.0  # largest roll rate, degrees per second
    shake: float = 0.012  # largest handheld shake, share of the view
    noise: tuple[float, float] = (0.0, 6.0)  # sensor noise sigma range, grey levels
    movers: float = 0.0  # probability that a shot has things moving in it


# --- picture sources ------------------------------------------------------------------------------


def texture_picture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A procedural texture in a random palette: fractal noise, a grating, cells, tiles or rings."""
    kind = int(rng.integers(0, 5))
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) / max(width, height)
    if kind == 0:  # 1/f noise
        f = _fractal(rng, height, width, float(rng.uniform(1.2, 2.2)))
    elif kind == 1:  # grating, a little warped
        ang, freq = rng.uniform(0, np.pi), rng.uniform(8, 30)
        warp = 0.4 * _fractal(rng, height, width, 2.0)
        f = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (x * np.cos(ang) + y * np.sin(ang)) + 3 * warp)
    elif kind == 2:  # cells (Voronoi), each its own shade
        n = int(rng.integers(20, 80))
        pts = rng.random((n, 2)).astype(np.float32) * [width / max(width, height), height / max(width, height)]
        shade = rng.random(n).astype(np.float32)
        d = (x[..., None] - pts[:, 0]) ** 2 + (y[..., None] - pts[:, 1]) ** 2
        f = shade[np.argmin(d, axis=-1)] * 0.8 + 0.2 * _fractal(rng, height, width, 1.5)
    elif kind == 3:  # tiles (bricks, checks) with mortar
        tw, th = rng.uniform(0.03, 0.12), rng.uniform(0.02, 0.08)
        row = np.floor(y / th)
        col = np.floor(x / tw + 0.5 * (row % 2))
        f = ((row * 7 + col * 13) % 5) / 5.0 * 0.6 + 0.3
        mortar = (np.minimum((y / th) % 1, (x / tw + 0.5 * (row % 2)) % 1) < 0.08).astype(np.float32)
        f = f * (1 - mortar) + 0.1 * mortar
    else:  # rings around a few centres
        cx, cy, freq = rng.random(), rng.random(), rng.uniform(10, 40)
        f = 0.5 + 0.5 * np.cos(2 * np.pi * freq * np.hypot(x - cx, y - cy) + 2 * _fractal(rng, height, width, 2.0))
    f = (f - f.min()) / max(float(f.max() - f.min()), 1e-6)
    lo, hi = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    mid = rng.uniform(0, 255, 3)
    g = f[..., None]
    rgb = np.where(g < 0.5, lo + (mid - lo) * 2 * g, mid + (hi - mid) * (2 * g - 1))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def photo_picture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """One of scikit-image's bundled sample pictures, scaled to cover the size, with a colour cast."""
    from generators.groundtruth import SKIMAGE_SAMPLES, sample_images

    name = SKIMAGE_SAMPLES[int(rng.integers(len(SKIMAGE_SAMPLES)))]
    img = _cover(sample_images([name])[name], width, height, rng)
    cast = rng.uniform(0.85, 1.15, 3)
    return np.clip(img * cast, 0, 255).astype(np.uint8)


def scene_picture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A synthetic outdoor scene: sky gradient, textured ground, buildings, trees and things."""
    img = Image.new("RGB", (width, height))
    horizon = int(height * rng.uniform(0.35, 0.65))
    top, bottom = rng.uniform(60, 255, 3), rng.uniform(60, 255, 3)
    t = np.linspace(0, 1, horizon, dtype=np.float32)[:, None, None]
    sky = top + (bottom - top) * t
    ground = rng.uniform(30, 200, 3) * (0.6 + 0.5 * _fractal(rng, height - horizon, width, 1.6)[..., None])
    arr = np.concatenate([np.broadcast_to(sky, (horizon, width, 3)), ground]).astype(np.float32)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(4, 10))):  # buildings on the horizon
        bw, bh = rng.uniform(0.04, 0.15) * width, rng.uniform(0.1, 0.4) * height
        bx = rng.uniform(0, width - bw)
        colour = tuple(int(c) for c in rng.integers(20, 236, 3))
        draw.rectangle((bx, horizon - bh, bx + bw, horizon), fill=colour, outline=(0, 0, 0))
        win = tuple(int(c) for c in rng.integers(0, 256, 3))
        step = max(bw / 5, 4)
        for wy in np.arange(horizon - bh + step / 2, horizon - step, step):
            for wx in np.arange(bx + step / 3, bx + bw - step / 2, step):
                draw.rectangle((wx, wy, wx + step / 3, wy + step / 3), fill=win)
    for _ in range(int(rng.integers(6, 16))):  # trees, rocks, things on the ground
        s = rng.uniform(0.03, 0.12) * height
        px, py = rng.uniform(0, width), rng.uniform(horizon, height)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.ellipse((px - s, py - 2 * s, px + s, py), fill=colour, outline=(0, 0, 0))
        elif shape == 1:
            draw.polygon([(px, py - 2.5 * s), (px - s, py), (px + s, py)], fill=colour)
        else:
            draw.rectangle((px - s, py - s, px + s, py), fill=colour, outline=(255, 255, 255))
    return np.asarray(img)


def footage_picture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A backdrop of the anomaly benchmark's generated camera footage (a room with furniture)."""
    return procedural_backdrop(rng, (width, height))


# --- families -------------------------------------------------------------------------------------

FAMILIES: dict[str, Family] = {
    # For development: textures and photos, small to medium sizes, mostly good encodes.
    "textures": Family(
        name="textures",
        pictures=(texture_picture, texture_picture, photo_picture),
        sizes=((320, 180), (480, 270), (640, 360)),
        fps=(25,),
        crf=(18, 32),
        rotation=1.0,
        noise=(0.0, 5.0),
    ),
    # Held out: scenes with objects and other footage, larger sizes, poorer encodes, more camera
    # work (rotation, shake), things moving in the shot, 24/30 fps.
    "scenes": Family(
        name="scenes",
        pictures=(scene_picture, scene_picture, footage_picture),
        sizes=((640, 360), (960, 540), (1280, 720)),
        fps=(24, 30),
        crf=(23, 38),
        pan=0.1,
        zoom=0.08,
        rotation=3.0,
        shake=0.02,
        noise=(1.0, 8.0),
        movers=0.5,
    ),
}
DEVELOPMENT_FAMILY = "textures"
HELD_OUT_FAMILY = "scenes"


# --- the video ------------------------------------------------------------------------------------


def make_family_video(
    path: str | os.PathLike[str],
    family: str | Family,
    *,
    seed: int = 0,
    shots: int | None = None,
    size: tuple[int, int] | None = None,
    shot_s: tuple[float, float] | None = None,
    plan: Sequence[tuple[str | None, str | None]] | None = None,
) -> GroundTruth:
    """Write an H.264 mp4 of `family` for `seed` and return its ground truth. `shots`, `size` and
    `shot_s` override the family's; `plan` fixes (transition into the shot, distractor in it) per
    shot, the first transition being None."""
    fam = FAMILIES[family] if isinstance(family, str) else family
    rng = np.random.default_rng([sum(map(ord, fam.name)), seed])
    width, height = size or fam.sizes[int(rng.integers(len(fam.sizes)))]
    fps = fam.fps[int(rng.integers(len(fam.fps)))]
    crf = int(rng.integers(fam.crf[0], fam.crf[1] + 1))
    shrink = min(1.0, _WORK_WIDTH / width)
    work = (2 * round(width * shrink / 2), 2 * round(height * shrink / 2))
    bounds = shot_s or fam.shot_s
    kinds, weights = zip(*fam.transitions, strict=True)
    p = np.asarray(weights) / sum(weights)
    if plan is None:
        n = shots or fam.shots
        plan = [
            (
                None if k == 0 else str(kinds[int(rng.choice(len(kinds), p=p))]),
                FAMILY_DISTRACTOR_KINDS[int(rng.integers(4))] if rng.random() < fam.distractor_rate else None,
            )
            for k in range(n)
        ]
    if plan[0][0] is not None:
        raise ValueError("the first shot has no transition into it")
    n = len(plan)

    # Shots: a world picture each (a view cut looks at the previous shot's world again).
    worlds: list[np.ndarray] = []
    cams: list[_Camera] = []
    solo = [round(rng.uniform(*bounds) * fps) for _ in range(n)]
    for k in range(n):
        tkind, dkind = plan[k]
        if tkind == "view_cut":
            worlds.append(worlds[-1])
            cams.append(cams[-1].other_view(rng, solo[k] / fps))
        else:
            ww, wh = round(2.6 * work[0]), round(1.7 * work[1])
            picture = fam.pictures[int(rng.integers(len(fam.pictures)))]
            worlds.append(picture(rng, ww, wh))
            cams.append(_Camera.random(rng, fam, work, worlds[-1].shape[1::-1], solo[k] / fps))

    # Timeline in frames: per frame, (shot, weight) layers and the colour the rest fades to.
    timeline: list[tuple[list[tuple[int, float]], float]] = []
    first, last = [0] * n, [0] * n
    transitions: list[Transition] = []
    for k in range(n):
        timeline.extend(([(k, 1.0)], 0.0) for _ in range(solo[k]))
        last[k] = len(timeline)
        if k + 1 == n:
            break
        tkind = plan[k + 1][0]
        start = len(timeline)
        first[k + 1] = start
        if tkind in CUT_KINDS:
            pass
        elif tkind == "dissolve":
            m = round(rng.uniform(0.5, 2.0) * fps)
            timeline.extend(([(k, 1 - (i + 1) / (m + 1)), (k + 1, (i + 1) / (m + 1))], 0.0) for i in range(m))
            last[k] = len(timeline)
        elif tkind in ("fade", "fade_white"):
            fill = 0.0 if tkind == "fade" else 255.0
            n_out, hold, n_in = (round(rng.uniform(*r) * fps) for r in ((0.3, 1.0), (0.0, 0.5), (0.3, 1.0)))
            timeline.extend(([(k, 1 - (i + 1) / (n_out + 1))], fill) for i in range(n_out))
            last[k] = len(timeline)
            timeline.extend(([], fill) for _ in range(hold))
            first[k + 1] = len(timeline)
            timeline.extend(([(k + 1, (i + 1) / (n_in + 1))], fill) for i in range(n_in))
        else:
            raise ValueError(f"unknown transition kind {tkind!r}")
        transitions.append(Transition(tkind, start / fps, len(timeline) / fps, k, k + 1))  # type: ignore[arg-type]

    # Distractors, in the part of each shot seen alone, _MARGIN_S from transitions.
    distractors: list[Distractor] = []
    shot_fx: list[_Effects] = []
    for k in range(n):
        alone = first[k] if k == 0 else round(transitions[k - 1].end * fps)
        fx = _Effects.random(rng, fam, work, fps)
        dkind = plan[k][1]
        if dkind is not None:
            lo, hi = alone + round(_MARGIN_S * fps), alone + solo[k] - round(_MARGIN_S * fps)
            dur = {
                "flash": int(rng.integers(1, 4)),
                "fast_pan": round(rng.uniform(0.3, 0.8) * fps),
                "occluder": round(rng.uniform(0.8, 2.0) * fps),
                "drift": hi - lo,
            }[dkind]
            if dur > 0 and hi - lo >= dur:
                a = int(rng.integers(lo, hi - dur + 1))
                fx.add(rng, dkind, a, a + dur, cams[k])
                distractors.append(Distractor(dkind, a / fps, (a + dur) / fps, k))  # type: ignore[arg-type]
        shot_fx.append(fx)

    noise = np.stack([rng.standard_normal((height, width), dtype=np.float32) for _ in range(_NOISE_FIELDS)])
    sigma = 0.0
    with av.open(os.fspath(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # Same seed, same bytes: one thread, and no macroblock-tree rate control (with it two encodes
        # of one seed in one long process differed, as groundtruth.py found).
        stream.options = {"preset": "veryfast", "crf": str(crf), "threads": "1", "x264-params": "mbtree=0"}
        for i, (layers, fill) in enumerate(timeline):
            acc = np.full((work[1], work[0], 3), fill * (1.0 - sum(w for _, w in layers)), dtype=np.float32)
            for k, w in layers:
                t = (i - first[k]) / fps
                acc += w * shot_fx[k].apply(cams[k].render(worlds[k], t, shot_fx[k].offset(i)), i)
            acc = _flash(acc, i, shot_fx, layers)
            rgb = np.clip(acc + 0.5, 0, 255).astype(np.uint8)
            if work != (width, height):  # drawn at most _WORK_WIDTH across, then scaled up
                rgb = np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR))
            sigma = max((shot_fx[k].noise for k, _ in layers), default=sigma)  # the sensor is noisy in a fade too
            if sigma > 0:  # temporal sensor noise, at the output's resolution
                grain = sigma * noise[(i * 5 + 3 * len(layers)) % _NOISE_FIELDS]
                rgb = np.clip(rgb + grain[..., None] + 0.5, 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))

    infos = [ShotInfo(f"{fam.name}-{seed}-{k}", first[k] / fps, last[k] / fps) for k in range(n)]
    return GroundTruth(os.fspath(path), seed, fps, len(timeline), (width, height), infos, transitions, distractors)


def true_time(tr: Transition) -> float:
    """When a transition happens: a cut's first new frame, a gradual change's middle."""
    return tr.start if tr.kind in CUT_KINDS else (tr.start + tr.end) / 2


class _Camera:
    """A view of a world picture that pans, zooms, rolls and shakes over a shot."""

    def __init__(
        self,
        size: tuple[int, int],
        world: tuple[int, int],
        centre: np.ndarray,
        velocity: np.ndarray,
        scale: float,
        zoom: float,
        angle: float,
        roll: float,
        shake: list[tuple[float, float, float, float]],
    ) -> None:
        self.size, self.world = size, world
        self.centre, self.velocity = centre, velocity  # world pixels, pixels per second
        self.scale, self.zoom = scale, zoom  # world pixels per view pixel; log rate per second
        self.angle, self.roll = angle, roll  # degrees, degrees per second
        self.shake = shake  # (amplitude x, amplitude y, frequency Hz, phase): view pixels

    @classmethod
    def random(
        cls, rng: np.random.Generator, fam: Family, size: tuple[int, int], world: tuple[int, int], seconds: float
    ) -> _Camera:
        width, height = size
        scale = rng.uniform(0.8, 1.2)
        velocity = rng.uniform(-1, 1, 2) * fam.pan * width * scale * np.array([1.0, 0.4])
        zoom = rng.uniform(-1, 1) * fam.zoom
        roll = rng.uniform(-1, 1) * fam.rotation
        amp = rng.uniform(0, fam.shake) * width
        shake = [
            (amp * rng.uniform(0.3, 1), amp * rng.uniform(0.3, 1), rng.uniform(0.4, 3.0), rng.uniform(0, 2 * np.pi))
            for _ in range(3)
        ]
        centre = np.array(world, dtype=float) / 2 - velocity * seconds / 2 + rng.uniform(-0.1, 0.1, 2) * world
        return cls(size, world, centre, velocity, scale, zoom, rng.uniform(-3, 3), roll, shake)

    def other_view(self, rng: np.random.Generator, seconds: float) -> _Camera:
        """Another view of the same scene: a close-up of part of it, or a wide shot of another part."""
        closer = rng.random() < 0.5
        scale = self.scale * (rng.uniform(0.3, 0.45) if closer else rng.uniform(1.3, 1.6))
        scale = min(scale, 0.9 * min(self.world[0] / self.size[0], self.world[1] / self.size[1]))
        side = -np.sign(self.centre[0] - self.world[0] / 2) or 1.0
        centre = np.array([self.world[0] / 2 + side * rng.uniform(0.1, 0.25) * self.world[0], self.world[1] / 2])
        velocity = -self.velocity * rng.uniform(0.3, 1.0)
        return _Camera(
            self.size,
            self.world,
            centre - velocity * seconds / 2,
            velocity,
            scale,
            -self.zoom,
            -self.angle,
            -self.roll / 2,
            self.shake,
        )

    def render(self, world: np.ndarray, t: float, jump: np.ndarray) -> np.ndarray:
        """The view at `t` seconds into the shot (`jump`: a whip pan's offset, world pixels)."""
        width, height = self.size
        s = self.scale * math.exp(self.zoom * t)
        a = math.radians(self.angle + self.roll * t)
        ox = sum(ax * math.sin(2 * np.pi * f * t + ph) for ax, _, f, ph in self.shake)
        oy = sum(ay * math.cos(2 * np.pi * f * t + ph) for _, ay, f, ph in self.shake)
        c = self.centre + self.velocity * t + jump + s * np.array([ox, oy])
        # Keep the rotated view inside the world: shrink it if needed, then clamp its centre.
        ca, sa = abs(math.cos(a)), abs(math.sin(a))
        half_w, half_h = (width * ca + height * sa) / 2, (width * sa + height * ca) / 2
        s = min(s, 0.98 * self.world[0] / (2 * half_w), 0.98 * self.world[1] / (2 * half_h))
        cx = min(max(c[0], s * half_w), self.world[0] - s * half_w)
        cy = min(max(c[1], s * half_h), self.world[1] - s * half_h)
        cos, sin = math.cos(a) * s, math.sin(a) * s
        # view pixel (x, y) -> world: centre + R(a) * s * (x - w/2, y - h/2)
        coeffs = (cos, -sin, cx - cos * width / 2 + sin * height / 2, sin, cos, cy - sin * width / 2 - cos * height / 2)
        im = Image.fromarray(world).transform(
            (width, height), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR
        )
        return np.asarray(im, dtype=np.float32)


class _Effects:
    """What happens to one shot's pixels: exposure, drift, noise, occluders, movers, flashes, whip pans."""

    def __init__(self, size: tuple[int, int], fps: int, gain: np.ndarray, noise: float) -> None:
        """`size`: the view's, as drawn; `noise`: the sensor noise's sigma in grey levels."""
        self.size, self.fps = size, fps
        self.gain, self.noise = gain, noise
        self.drift: tuple[int, int, np.ndarray] | None = None
        self.flash: tuple[int, int] | None = None
        self.jump: tuple[int, int, np.ndarray] | None = None
        self.sprites: list[tuple[int, int, Image.Image, Image.Image, np.ndarray, np.ndarray]] = []

    @classmethod
    def random(cls, rng: np.random.Generator, fam: Family, size: tuple[int, int], fps: int) -> _Effects:
        fx = cls(size, fps, rng.uniform(0.8, 1.15) * (1 + rng.uniform(-0.05, 0.05, 3)), rng.uniform(*fam.noise))
        if rng.random() < fam.movers:  # something walks slowly through the whole shot
            fx.sprites.append(_sprite(rng, size, 0, 10**9, rng.uniform(0.15, 0.3), slow=True))
        return fx

    def add(self, rng: np.random.Generator, kind: str, a: int, b: int, cam: _Camera) -> None:
        if kind == "flash":
            self.flash = (a, b)
        elif kind == "drift":
            brighter = rng.random() < 0.5
            g = rng.uniform(1.25, 1.45) if brighter else rng.uniform(0.6, 0.78)
            self.drift = (a, b, g * (1 + rng.uniform(-0.08, 0.08, 3)))
        elif kind == "fast_pan":
            width = self.size[0] * cam.scale
            direction = rng.choice([-1.0, 1.0])
            cam.centre = cam.centre - direction * 0.35 * width * np.array([1.0, 0.0])
            self.jump = (a, b, np.array([direction * rng.uniform(0.5, 0.8) * width, rng.uniform(-0.1, 0.1) * width]))
        elif kind == "occluder":
            self.sprites.append(_sprite(rng, self.size, a, b, rng.uniform(0.4, 0.8), slow=False))
        else:
            raise ValueError(f"unknown distractor kind {kind!r}")

    def offset(self, i: int) -> np.ndarray:
        """The whip pan's offset at frame `i` (world pixels)."""
        if self.jump is None:
            return np.zeros(2)
        a, b, off = self.jump
        s = min(max((i - a) / max(b - a, 1), 0.0), 1.0)
        return off * (s * s * (3 - 2 * s))

    def apply(self, view: np.ndarray, i: int) -> np.ndarray:
        """The shot's view at frame `i` with its things, exposure and drift."""
        if self.sprites:
            im = Image.fromarray(np.clip(view, 0, 255).astype(np.uint8))
            for a, b, body, mask, p0, p1 in self.sprites:
                if a <= i < b:
                    s = (i - a + 0.5) / (b - a) if b < 10**9 else (i / self.fps) / 12.0
                    x, y = p0 + s * (p1 - p0)
                    im.paste(body, (round(x), round(y)), mask)
            view = np.asarray(im, dtype=np.float32)
        gain = self.gain
        if self.drift is not None:
            a, b, g = self.drift
            s = min(max((i - a) / max(b - a, 1), 0.0), 1.0)
            gain = gain * (1 + s * (g - 1))
        out = view * gain.astype(np.float32)
        return out


def _flash(acc: np.ndarray, i: int, fx: list[_Effects], layers: list[tuple[int, float]]) -> np.ndarray:
    for k, _ in layers:
        if fx[k].flash is not None:
            a, b = fx[k].flash  # type: ignore[misc]
            if a <= i < b:
                return acc + (0.85, 0.55, 0.3)[min(i - a, 2)] * (255.0 - acc)
    return acc


def _sprite(
    rng: np.random.Generator, size: tuple[int, int], a: int, b: int, height_share: float, *, slow: bool
) -> tuple[int, int, Image.Image, Image.Image, np.ndarray, np.ndarray]:
    """A textured thing (a person, a car) that crosses the view from one side to the other."""
    width, height = size
    h = max(round(height_share * height), 4)
    w = max(round(h * rng.uniform(0.4, 1.4)), 4)
    body = Image.fromarray(texture_picture(rng, w, h))
    mask = Image.new("L", (w, h), 0)
    if rng.random() < 0.5:
        ImageDraw.Draw(mask).ellipse((0, 0, w - 1, h - 1), fill=255)
    else:
        ImageDraw.Draw(mask).rounded_rectangle((0, 0, w - 1, h - 1), radius=min(w, h) // 4, fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(1.0))
    y0 = rng.uniform(0, height - h)
    y1 = y0 + rng.uniform(-0.1, 0.1) * height
    left = rng.random() < 0.5
    xs = (-w, width) if left else (width, -w)
    if slow:  # starts somewhere inside and moves a fraction of the view over 12 s
        x0 = rng.uniform(-w / 2, width - w / 2)
        xs = (x0, x0 + rng.uniform(-0.5, 0.5) * width)
    return a, b, body, mask, np.array([xs[0], y0]), np.array([xs[1], y1])


def _fractal(rng: np.random.Generator, h: int, w: int, beta: float) -> np.ndarray:
    """Noise with a 1/f^beta spectrum, scaled to [0, 1]."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f**beta
    spec[0, 0] = 0
    x = np.fft.irfft2(spec, (h, w)).astype(np.float32)
    return (x - x.min()) / max(float(x.max() - x.min()), 1e-6)


def _cover(img: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """`img` scaled to cover width x height and cropped at a random place, float32 RGB."""
    from generators.groundtruth import _to_rgb8

    a = _to_rgb8(img)
    ih, iw = a.shape[:2]
    s = max(width / iw, height / ih)
    im = Image.fromarray(a).resize((max(round(iw * s), width), max(round(ih * s), height)), Image.Resampling.BILINEAR)
    x = int(rng.integers(0, im.width - width + 1))
    y = int(rng.integers(0, im.height - height + 1))
    return np.asarray(im.crop((x, y, x + width, y + height)), dtype=np.float32)

"""Families of fixed-camera videos with ground-truth anomalies, each made a different way, so that an
anomaly detector tuned on one family can be reported on another it never saw.

`generators.anomaly_scenes` is one family (pictures pasted into still or panning scikit-image
scenes). This module adds families of *camera days*: a fixed camera on a drawn place where normal
activity never stops (agents walking or driving fixed routes), under the nuisances of a real camera,
and after a warm-up the anomalies a site cares about:

- `object_left`: an unfamiliar object appears on the ground and stays for a while;
- `figure_unused_area`: a figure crosses a part of the ground no route uses (half of them look like
  the routine agents: only where they are is unusual);
- `lens_covered`: a hand or cloth covers part of the lens;
- `camera_turned`: the camera looks at another place (another room, or far along the panorama).

Nuisances, normal by definition: a slow global lighting swing (clouds, daylight), auto-exposure
steps, white-balance drift, a lamp switched on, a cloud shadow passing, rain, snow or haze, camera
shake, sensor noise and H.264 at several qualities.

The families share only this frame of rules; their places, agents, objects and nuisances are drawn
by separate code with separate parameters:

- `rooms`: procedural rooms (walls, windows, posters, furniture, plank floors), people walking,
  a lighting swing like clouds passing, white balance, sensor noise; 640x360 at 6 fps;
- `yard`: outdoor (sky, buildings, trees, road, pavement, lawn), people and cars, clouds with
  exposure steps and cloud shadows, rain or snow, a camera on a swaying pole; 640x360 at 10 fps;
- `hall`: a warehouse hall (shelves, pillars, tiled floor, a hatched keep-clear zone), workers and
  carts, lamps switched on, flicker, haze, exposure steps, strong noise and compression; 768x432 at
  5 fps.

`DEVELOPMENT_FAMILY` is the one to tune on; `HELD_OUT_FAMILY` is what a change is reported on and is
never used while tuning; `RESERVE_FAMILY` stays unseen for a second report. Everything is
deterministic for (family, seed).

    >>> video = FamilyVideo("yard", seed=3)
    >>> truth = video.write_video("yard-3.mp4")         # doctest: +SKIP
    >>> [(a.kind, a.start, a.end) for a in truth.anomalies][:2]  # doctest: +SKIP
    >>> truth.at(42.0).box                               # what the frame shown at 42 s holds
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any, TypeVar

import av
import numpy as np
from PIL import Image, ImageDraw

T = TypeVar("T")  # what a renderer says of its frame (the family's per-frame truth)

ANOMALY_KINDS = ("object_left", "figure_unused_area", "lens_covered", "camera_turned")
BOXED_KINDS = ("object_left", "figure_unused_area")  # anomalies with a place in the view
FAMILY_NAMES = ("rooms", "yard", "hall")
DEVELOPMENT_FAMILY = "yard"
HELD_OUT_FAMILY = "rooms"
RESERVE_FAMILY = "hall"
GENERATOR_VERSION = 1  # bump when a change alters the pixels of any video (caches key on it)

Sprite = np.ndarray  # (h, w, 4) float32: RGB in 0..255, alpha in 0..1


# --- truth ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Anomaly:
    """One inserted anomaly: anomalous for media times in [start, end)."""

    segment: int
    kind: str
    name: str
    start: float
    end: float


@dataclass(frozen=True)
class FrameTruth:
    """What generated frame `index` (media time `t`) shows."""

    index: int
    t: float
    anomalous: bool
    kind: str = "normal"
    name: str = ""
    segment: int = -1
    box: tuple[float, float, float, float] | None = None  # normalised (x0, y0, x1, y1), boxed kinds


@dataclass(frozen=True)
class VideoTruth:
    """A generated video's ground truth: its anomalies, each frame's truth and the nuisances used."""

    family: str
    seed: int
    fps: int
    size: tuple[int, int]
    duration_s: float
    warmup_s: float
    anomalies: tuple[Anomaly, ...]
    frames: tuple[FrameTruth, ...]
    nuisances: tuple[str, ...]

    def at(self, t: float) -> FrameTruth:
        """The truth of the frame shown at media time `t` (the last frame that started by then)."""
        i = int(math.floor(t * self.fps + 1e-6))
        return self.frames[min(max(i, 0), len(self.frames) - 1)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VideoTruth:
        frames = tuple(FrameTruth(**{**f, "box": None if f["box"] is None else tuple(f["box"])}) for f in d["frames"])
        return cls(
            family=d["family"],
            seed=int(d["seed"]),
            fps=int(d["fps"]),
            size=(int(d["size"][0]), int(d["size"][1])),
            duration_s=float(d["duration_s"]),
            warmup_s=float(d["warmup_s"]),
            anomalies=tuple(Anomaly(**a) for a in d["anomalies"]),
            frames=frames,
            nuisances=tuple(d["nuisances"]),
        )


# --- drawing helpers -----------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """A smooth [0, 1] field: random values on a coarse grid, bilinearly upsampled."""
    ch = max(2, int(round(cells * h / max(h, w))) + 1)
    cw = max(2, int(round(cells * w / max(h, w))) + 1)
    coarse = Image.fromarray((rng.random((ch, cw)) * 255).astype(np.uint8))
    return np.asarray(coarse.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0


def _fractal(rng: np.random.Generator, h: int, w: int, octaves: int = 4) -> np.ndarray:
    """Fractal noise in [0, 1] (a sum of smooth fields at doubling frequencies)."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        out += amp * _smooth_noise(rng, h, w, 3 * 2**o)
        total += amp
        amp *= 0.55
    out /= total
    return (out - out.min()) / max(float(np.ptp(out)), 1e-6)


def _pattern(rng: np.random.Generator, h: int, w: int, kind: str, freq: float) -> np.ndarray:
    """A [0, 1] surface pattern: plain, stripes, checks, dots or speckle."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) / max(h, w, 1)
    if kind == "stripes":
        ang = rng.uniform(0, np.pi)
        return 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * freq * (x * np.cos(ang) + y * np.sin(ang))))
    if kind == "checks":
        return ((np.floor(x * freq) + np.floor(y * freq)) % 2).astype(np.float32)
    if kind == "dots":
        return (np.hypot((x * freq) % 1 - 0.5, (y * freq) % 1 - 0.5) < 0.25).astype(np.float32)
    if kind == "speckle":
        return _smooth_noise(rng, h, w, int(freq * 2))
    return np.full((h, w), 0.5, np.float32)


def _colour(rng: np.random.Generator, lo: float = 30, hi: float = 230) -> np.ndarray:
    return rng.uniform(lo, hi, 3).astype(np.float32)


def _rgba(draw_size: tuple[int, int]) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGBA", draw_size, (0, 0, 0, 0))
    return img, ImageDraw.Draw(img)


def _to_sprite(img: Image.Image, texture: np.ndarray | None = None, strength: float = 0.0) -> Sprite:
    """PIL RGBA -> float sprite; `texture` (h, w) in [0, 1] modulates the colour by +-strength."""
    a = np.asarray(img, dtype=np.float32)
    rgb, alpha = a[..., :3], a[..., 3:] / 255.0
    if texture is not None:
        rgb = rgb * (1.0 - strength + 2.0 * strength * texture[..., None])
    return np.concatenate([np.clip(rgb, 0, 255), alpha], axis=2)


def _scaled(sprite: Sprite, height: int) -> Sprite:
    """The sprite resized to `height` pixels (aspect kept)."""
    h, w = sprite.shape[:2]
    height = max(3, int(height))
    width = max(2, int(round(w * height / h)))
    img = Image.fromarray(np.clip(np.concatenate([sprite[..., :3], sprite[..., 3:] * 255], 2), 0, 255).astype(np.uint8))
    out = np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    return np.concatenate([out[..., :3], out[..., 3:] / 255.0], axis=2)


def _blit(frame: np.ndarray, sprite: Sprite, x: int, y: int) -> tuple[int, int, int, int] | None:
    """Alpha-composite `sprite` with its top-left at (x, y); returns the visible pixel box or None."""
    fh, fw = frame.shape[:2]
    sh, sw = sprite.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + sw, fw), min(y + sh, fh)
    if x1 <= x0 or y1 <= y0:
        return None
    s = sprite[y0 - y : y1 - y, x0 - x : x1 - x]
    a = s[..., 3:]
    region = frame[y0:y1, x0:x1]
    region *= 1.0 - a
    region += a * s[..., :3]
    return x0, y0, x1, y1


# --- sprites: people, vehicles, carts, objects ----------------------------------------------------

Palette = Callable[[np.random.Generator], dict[str, np.ndarray]]


def _office_palette(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "shirt": _colour(rng, 60, 220),
        "trousers": _colour(rng, 20, 90),
        "skin": np.array([rng.uniform(120, 230), rng.uniform(90, 180), rng.uniform(70, 150)], np.float32),
        "hair": _colour(rng, 10, 80),
    }


def _coat_palette(rng: np.random.Generator) -> dict[str, np.ndarray]:
    coat = rng.choice(np.array([[40, 50, 70], [90, 60, 40], [30, 30, 30], [120, 120, 110], [60, 80, 50]], np.float32))
    return {
        "shirt": coat + rng.uniform(-15, 15, 3).astype(np.float32),
        "trousers": _colour(rng, 15, 70),
        "skin": np.array([rng.uniform(120, 230), rng.uniform(90, 180), rng.uniform(70, 150)], np.float32),
        "hair": _colour(rng, 10, 90),
    }


def _vest_palette(rng: np.random.Generator) -> dict[str, np.ndarray]:
    vest = np.array([250, 200, 30], np.float32) if rng.random() < 0.5 else np.array([250, 120, 20], np.float32)
    return {
        "shirt": vest + rng.uniform(-10, 5, 3).astype(np.float32),
        "trousers": _colour(rng, 20, 60),
        "skin": np.array([rng.uniform(120, 230), rng.uniform(90, 180), rng.uniform(70, 150)], np.float32),
        "hair": _colour(rng, 10, 90),
    }


def _stranger_palette(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """An unfamiliar figure: saturated clothes no routine agent wears."""
    hue = rng.integers(0, 3)
    shirt = np.full(3, 30.0, np.float32)
    shirt[hue] = 240.0
    return {
        "shirt": shirt,
        "trousers": _colour(rng, 150, 240),
        "skin": np.array([rng.uniform(120, 230), rng.uniform(90, 180), rng.uniform(70, 150)], np.float32),
        "hair": _colour(rng, 150, 250),
    }


def figure_sprites(rng: np.random.Generator, palette: dict[str, np.ndarray], *, phases: int = 4) -> list[Sprite]:
    """A standing person seen from the side or front, 40 x 100 px, in `phases` walking poses."""
    w, h = 40, 100
    pattern = str(rng.choice(["plain", "stripes", "checks", "dots"]))
    tex = _pattern(rng, h, w, pattern, rng.uniform(4, 9))
    bulk = rng.uniform(0.8, 1.1)
    out = []
    for p in range(phases):
        img, d = _rgba((w, h))
        swing = 7 * math.sin(2 * math.pi * p / phases)
        tr = tuple(int(c) for c in palette["trousers"]) + (255,)
        d.line([(20, 58), (20 + swing, 97)], fill=tr, width=int(7 * bulk))
        d.line([(20, 58), (20 - swing, 97)], fill=tr, width=int(7 * bulk))
        sh = tuple(int(c) for c in palette["shirt"]) + (255,)
        half = int(11 * bulk)
        d.rounded_rectangle([20 - half, 22, 20 + half, 62], radius=5, fill=sh)
        d.line([(20 - half + 2, 26), (20 - half - 2 - swing / 2, 56)], fill=sh, width=5)
        d.line([(20 + half - 2, 26), (20 + half + 2 + swing / 2, 56)], fill=sh, width=5)
        sk = tuple(int(c) for c in palette["skin"]) + (255,)
        d.ellipse([12, 2, 28, 22], fill=sk)
        hr = tuple(int(c) for c in palette["hair"]) + (255,)
        d.chord([12, 1, 28, 20], 180, 360, fill=hr)
        sprite = _to_sprite(img)
        body = np.zeros((h, w), bool)
        body[22:62] = True
        sprite[..., :3] = np.where(
            body[..., None] & (sprite[..., 3:] > 0), sprite[..., :3] * (0.7 + 0.5 * tex[..., None]), sprite[..., :3]
        )
        out.append(np.clip(sprite, 0, 255))
    return out


def car_sprite(rng: np.random.Generator) -> Sprite:
    """A car seen from the side, 150 x 60 px."""
    w, h = 150, 60
    img, d = _rgba((w, h))
    body = tuple(int(c) for c in _colour(rng, 30, 230)) + (255,)
    d.rounded_rectangle([2, 22, w - 3, 48], radius=8, fill=body)
    d.polygon([(30, 24), (48, 4), (104, 4), (124, 24)], fill=body)
    glass = (int(rng.uniform(60, 120)), int(rng.uniform(90, 140)), int(rng.uniform(110, 170)), 255)
    d.polygon([(38, 23), (52, 8), (74, 8), (74, 23)], fill=glass)
    d.polygon([(80, 23), (80, 8), (101, 8), (116, 23)], fill=glass)
    for cx in (32, w - 34):
        d.ellipse([cx - 12, 38, cx + 12, 59], fill=(20, 20, 20, 255))
        d.ellipse([cx - 5, 44, cx + 5, 54], fill=(150, 150, 150, 255))
    return _to_sprite(img)


def cart_sprite(rng: np.random.Generator) -> Sprite:
    """A pushed cart loaded with boxes, 80 x 70 px."""
    w, h = 80, 70
    img, d = _rgba((w, h))
    frame = tuple(int(c) for c in _colour(rng, 90, 200)) + (255,)
    d.rectangle([4, 44, 70, 54], fill=frame)
    d.line([(70, 54), (78, 12)], fill=frame, width=4)
    for i in range(int(rng.integers(2, 4))):
        box = tuple(int(c) for c in np.array([170, 130, 80]) + rng.uniform(-30, 30, 3)) + (255,)
        x0 = 6 + i * 21
        top = int(rng.uniform(14, 30))
        d.rectangle([x0, top, x0 + 19, 44], fill=box, outline=(90, 70, 40, 255))
    for cx in (14, 60):
        d.ellipse([cx - 7, 54, cx + 7, 68], fill=(25, 25, 25, 255))
    return _to_sprite(img)


def object_sprite(rng: np.random.Generator, shape: str) -> Sprite:
    """An unattended object, drawn at about 80 px on its long side."""
    tex = _pattern(rng, 80, 80, str(rng.choice(["plain", "stripes", "checks", "speckle", "dots"])), rng.uniform(3, 8))
    col = tuple(int(c) for c in _colour(rng, 20, 240)) + (255,)
    dark = (30, 30, 30, 255)
    if shape == "suitcase":
        img, d = _rgba((64, 80))
        d.rounded_rectangle([2, 14, 61, 79], radius=6, fill=col, outline=dark, width=2)
        d.rectangle([24, 2, 40, 14], outline=dark, width=3)
    elif shape == "bag":
        img, d = _rgba((76, 64))
        d.pieslice([2, 6, 73, 110], 180, 360, fill=col)
        d.rectangle([2, 56, 73, 63], fill=col)
        d.arc([20, 0, 56, 30], 180, 360, fill=dark, width=4)
    elif shape == "box":
        img, d = _rgba((80, 64))
        d.rectangle([2, 8, 77, 63], fill=(190, 150, 95, 255), outline=(120, 90, 50, 255), width=2)
        d.rectangle([34, 8, 46, 63], fill=(215, 205, 170, 255))
        tex = tex * 0.3 + 0.35
    elif shape == "barrel":
        img, d = _rgba((52, 80))
        d.rounded_rectangle([2, 2, 49, 79], radius=10, fill=col)
        for yy in (18, 60):
            d.line([(2, yy), (49, yy)], fill=dark, width=3)
    elif shape == "bin":
        img, d = _rgba((56, 76))
        d.polygon([(4, 10), (51, 10), (45, 75), (10, 75)], fill=col)
        d.rectangle([0, 4, 55, 12], fill=dark)
    elif shape == "cone":
        img, d = _rgba((56, 72))
        d.polygon([(28, 0), (50, 64), (6, 64)], fill=(250, 110, 20, 255))
        d.rectangle([0, 62, 55, 71], fill=(240, 100, 20, 255))
        d.polygon([(20, 26), (36, 26), (40, 38), (16, 38)], fill=(240, 240, 240, 255))
    elif shape == "ball":
        img, d = _rgba((64, 64))
        d.ellipse([2, 2, 61, 61], fill=col, outline=dark, width=2)
    elif shape == "parcel":
        img, d = _rgba((72, 52))
        d.rectangle([2, 2, 69, 49], fill=col, outline=dark, width=2)
        d.line([(2, 25), (69, 25)], fill=(230, 230, 230, 255), width=5)
        d.line([(35, 2), (35, 49)], fill=(230, 230, 230, 255), width=5)
    elif shape == "toolbox":
        img, d = _rgba((80, 50))
        d.rectangle([2, 14, 77, 49], fill=(200, 30, 30, 255), outline=dark, width=2)
        d.rectangle([26, 2, 54, 14], outline=dark, width=4)
    elif shape == "bucket":
        img, d = _rgba((56, 64))
        d.polygon([(2, 8), (53, 8), (45, 63), (10, 63)], fill=col)
        d.arc([4, 0, 51, 30], 180, 360, fill=dark, width=3)
    else:
        raise ValueError(f"unknown object shape {shape!r}")
    sprite = _to_sprite(img)
    h, w = sprite.shape[:2]
    sprite[..., :3] *= (0.75 + 0.5 * tex[:h, :w])[..., None] if tex.shape[0] >= h and tex.shape[1] >= w else 1.0
    return np.clip(sprite, 0, 255)


# --- places --------------------------------------------------------------------------------------


@dataclass
class Place:
    """A drawn place: its backdrop, its ground, where routine agents go and the part of the
    ground that no route uses. Coordinates in pixels of the (width, height) view."""

    image: np.ndarray  # (h, w, 3) float32
    floor_top: int  # the ground starts at this row
    walk_x: tuple[int, int]  # routine agents keep their feet within these columns...
    walk_y: tuple[int, int]  # ... and rows
    unused_x: tuple[int, int]  # the unused part of the ground (touches the left or right edge)
    unused_y: tuple[int, int]
    lanes: list[int] = field(default_factory=list)  # rows of vehicle lanes (feet row), yard only
    path_x: int | None = None  # a footpath across the lawn at this column, yard only
    lawn: tuple[int, int] | None = None  # rows of the lawn, yard only


def _unused_and_walk(rng: np.random.Generator, w: int, floor_top: int, h: int) -> tuple[tuple[int, int], ...]:
    """Split the ground into a walked part and an unused strip at the left or right edge."""
    frac = rng.uniform(0.24, 0.32)
    gap = int(0.1 * w)  # routine agents keep this far from the unused strip
    y0 = floor_top + int(0.25 * (h - floor_top))
    if rng.random() < 0.5:
        unused_x = (0, int(frac * w))
        walk_x = (unused_x[1] + gap, w - int(0.05 * w))
    else:
        unused_x = (w - int(frac * w), w)
        walk_x = (int(0.05 * w), unused_x[0] - gap)
    walk_y = (floor_top + int(0.15 * (h - floor_top)), h - int(0.06 * h))
    return walk_x, walk_y, unused_x, (y0, h - int(0.04 * h))


def room_place(rng: np.random.Generator, w: int, h: int) -> Place:
    """A room: a wall with a window, posters and a door; furniture against it; a plank floor."""
    floor_top = int(h * rng.uniform(0.42, 0.55))
    wall = _colour(rng, 110, 220)
    img = np.empty((h, w, 3), np.float32)
    shade = 0.85 + 0.25 * _smooth_noise(rng, h, w, 3)
    img[:] = wall * shade[..., None] * (0.92 + 0.08 * _fractal(rng, h, w))[..., None]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    floor = _colour(rng, 70, 170)
    planks = 0.85 + 0.15 * np.sin(x / rng.uniform(18, 40) + 3 * _smooth_noise(rng, h, w, 6)) ** 2
    depth = 0.8 + 0.3 * (y - floor_top) / max(1, h - floor_top)
    img[floor_top:] = (floor * (planks * depth)[..., None])[floor_top:]
    img[floor_top - 2 : floor_top + 2] *= 0.6  # skirting
    # window (bright, with a frame), posters, a door
    wx0 = int(rng.uniform(0.05, 0.7) * w)
    ww, wh = int(rng.uniform(0.15, 0.25) * w), int(rng.uniform(0.25, 0.4) * floor_top)
    wy0 = int(0.12 * floor_top)
    sky = np.array([200, 220, 245], np.float32) * (0.9 + 0.1 * _smooth_noise(rng, wh, ww, 4))[..., None]
    img[wy0 : wy0 + wh, wx0 : wx0 + ww] = sky
    img[wy0 : wy0 + wh, wx0 + ww // 2 - 2 : wx0 + ww // 2 + 2] = 90
    for _ in range(int(rng.integers(2, 5))):
        pw, ph = int(rng.uniform(0.05, 0.12) * w), int(rng.uniform(0.15, 0.35) * floor_top)
        px, py = int(rng.uniform(0, w - pw)), int(rng.uniform(0.05, 0.5) * floor_top)
        tex = _pattern(rng, ph, pw, str(rng.choice(["stripes", "checks", "speckle", "dots"])), rng.uniform(2, 6))
        img[py : py + ph, px : px + pw] = _colour(rng) * (0.5 + 0.5 * tex[..., None])
    # furniture against the wall, standing on the floor line
    for _ in range(int(rng.integers(2, 4))):
        fw, fh = int(rng.uniform(0.08, 0.2) * w), int(rng.uniform(0.15, 0.4) * floor_top)
        fx = int(rng.uniform(0, w - fw))
        fy = floor_top + int(rng.uniform(0.0, 0.08) * (h - floor_top)) - fh
        tex = _pattern(rng, fh, fw, str(rng.choice(["plain", "stripes", "speckle"])), rng.uniform(2, 5))
        img[fy : fy + fh, fx : fx + fw] = _colour(rng, 40, 200) * (0.7 + 0.3 * tex[..., None])
        img[fy + fh : fy + fh + 3, fx : fx + fw] *= 0.55  # its shadow
    walk_x, walk_y, unused_x, unused_y = _unused_and_walk(rng, w, floor_top, h)
    return Place(np.clip(img, 0, 255), floor_top, walk_x, walk_y, unused_x, unused_y)


def yard_place(rng: np.random.Generator, w: int, h: int) -> Place:
    """Outdoors: sky, buildings with windows, trees, a road with a pavement, a lawn in front."""
    horizon = int(h * rng.uniform(0.3, 0.4))
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    top, bottom = np.array([90, 140, 215], np.float32), np.array([190, 210, 235], np.float32)
    t = (y / max(horizon, 1))[..., None]
    img[:] = top * (1 - t) + bottom * t
    img += 25 * (_fractal(rng, h, w) - 0.5)[..., None] * (y < horizon)[..., None]  # clouds
    # buildings
    bx = 0
    while bx < w:
        bw = int(rng.uniform(0.12, 0.3) * w)
        bh = int(rng.uniform(0.4, 0.95) * horizon)
        col = _colour(rng, 80, 200)
        img[horizon - bh : horizon, bx : bx + bw] = (
            col * (0.9 + 0.1 * _smooth_noise(rng, bh, min(bw, w - bx), 3))[..., None]
        )
        win = _colour(rng, 30, 90)
        for wy in range(horizon - bh + 6, horizon - 8, 14):
            for wx in range(bx + 5, min(bx + bw, w) - 8, 13):
                img[wy : wy + 7, wx : wx + 6] = win
        bx += bw + int(rng.uniform(0, 0.05) * w)
    # ground: lawn, a pavement and a road
    grass = np.array([70, 120, 50], np.float32) + rng.uniform(-15, 15, 3).astype(np.float32)
    img[horizon:] = (grass * (0.75 + 0.4 * _fractal(rng, h, w))[..., None])[horizon:]
    ground = h - horizon
    pave0 = horizon + int(0.08 * ground)
    road0, road1 = pave0 + int(0.12 * ground), pave0 + int(0.32 * ground)
    pave = np.array([160, 155, 145], np.float32)
    img[pave0:road0] = pave * (0.9 + 0.1 * ((x[pave0:road0] // 24 + y[pave0:road0] // 12) % 2))[..., None]
    img[road0:road1] = (
        np.array([70, 70, 75], np.float32) * (0.9 + 0.2 * _smooth_noise(rng, road1 - road0, w, 12))[..., None]
    )
    mid = (road0 + road1) // 2
    for dx in range(0, w, 60):
        img[mid - 1 : mid + 2, dx : dx + 30] = 230
    # trees behind the pavement
    for _ in range(int(rng.integers(2, 5))):
        tx = int(rng.uniform(0, w))
        r = int(rng.uniform(0.04, 0.08) * w)
        img[max(0, pave0 - 3 * r) : pave0, max(0, tx - 4) : tx + 4] = np.array([80, 55, 35], np.float32)
        cy = pave0 - 3 * r
        m = (x - tx) ** 2 + (y - cy) ** 2 < r * r
        leaves = np.array([40, 100, 40], np.float32) * (0.7 + 0.5 * _fractal(rng, h, w))[..., None]
        img[m] = leaves[m]
    # the lawn in front of the road: people walk on the pavement and across it on a path, the
    # rest of the lawn is unused
    lawn0 = road1 + 4
    frac = rng.uniform(0.26, 0.34)
    left = rng.random() < 0.5
    unused_x = (0, int(frac * w)) if left else (w - int(frac * w), w)
    path_x = int(rng.uniform(0.55, 0.7) * w) if left else int(rng.uniform(0.3, 0.45) * w)
    img[lawn0:, path_x - 18 : path_x + 18] = pave * 0.95
    walk_x = (unused_x[1] + int(0.1 * w), w - int(0.03 * w)) if left else (int(0.03 * w), unused_x[0] - int(0.1 * w))
    place = Place(
        np.clip(img, 0, 255),
        horizon,
        walk_x,
        (pave0 + int(0.03 * ground), road0 - 2),
        unused_x,
        (lawn0 + int(0.2 * (h - lawn0)), h - int(0.04 * h)),
        lanes=[mid - int(0.02 * ground), road1 - 4],
        path_x=path_x,
        lawn=(lawn0, h - int(0.05 * h)),
    )
    return place


def hall_place(rng: np.random.Generator, w: int, h: int) -> Place:
    """A warehouse hall: shelves with boxes at the back, pillars, a tiled floor, a hatched zone."""
    floor_top = int(h * rng.uniform(0.45, 0.55))
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[:] = np.array([150, 150, 145], np.float32) * (0.8 + 0.3 * _fractal(rng, h, w))[..., None]
    # shelving: uprights and boards with boxes of many colours
    for sx in range(int(rng.uniform(0, 40)), w, int(rng.uniform(90, 140))):
        img[int(0.1 * floor_top) : floor_top, sx : sx + 6] = np.array([40, 70, 140], np.float32)
    for level in np.linspace(0.15, 0.85, int(rng.integers(3, 5))):
        by = int(level * floor_top)
        img[by : by + 4] = np.array([230, 120, 30], np.float32)
        bx = 0
        while bx < w:
            bw, bh = int(rng.uniform(16, 40)), int(rng.uniform(10, 0.18 * floor_top))
            col = np.array([175, 135, 85], np.float32) + rng.uniform(-40, 40, 3).astype(np.float32)
            img[max(0, by - bh) : by, bx : bx + bw] = col
            bx += bw + int(rng.uniform(1, 10))
    tile = _colour(rng, 90, 170)
    tiles = 0.85 + 0.15 * ((x // 40 + (y - floor_top) // 20) % 2)
    img[floor_top:] = (tile * (tiles * (0.9 + 0.2 * _smooth_noise(rng, h, w, 5)))[..., None])[floor_top:]
    for _ in range(int(rng.integers(1, 3))):  # pillars
        px = int(rng.uniform(0.1, 0.9) * w)
        img[: floor_top + int(0.1 * (h - floor_top)), px - 9 : px + 9] = np.array([185, 180, 170], np.float32)
    walk_x, walk_y, unused_x, unused_y = _unused_and_walk(rng, w, floor_top, h)
    # the keep-clear zone is hatched yellow
    zx0, zx1 = unused_x
    zy0, zy1 = unused_y[0] - int(0.1 * (h - floor_top)), h
    zone = np.zeros((h, w), bool)
    zone[zy0:zy1, zx0:zx1] = ((x[zy0:zy1, zx0:zx1] + y[zy0:zy1, zx0:zx1]) // 14) % 3 == 0
    img[zone] = np.array([220, 190, 40], np.float32)
    return Place(np.clip(img, 0, 255), floor_top, walk_x, walk_y, unused_x, unused_y)


# --- families ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """How one family's videos are made."""

    name: str
    place: Callable[[np.random.Generator, int, int], Place]
    size: tuple[int, int]
    fps: int
    crf: tuple[int, int]
    people: tuple[int, int]  # routine walkers
    palette: Palette
    vehicles: str  # "cars" (on lanes), "carts" (pushed along routes) or ""
    objects: tuple[str, ...]  # shapes of unattended objects
    object_width: tuple[float, float]  # share of the view's width
    person_height: tuple[float, float]  # share of the view's height at the far and the near ground
    light: tuple[float, float]  # lighting swing amplitude range (share of brightness)
    light_period: tuple[float, float]  # seconds
    exposure_steps: float  # expected auto-exposure steps a minute
    white_balance: float  # amplitude of the per-channel gain drift
    lamp: float  # probability of a lamp switched on in a video
    cloud_shadow: float  # probability of a cloud shadow crossing
    weather: tuple[str, ...]  # drawn per video from these: "", "rain", "snow", "haze"
    shake: tuple[float, float]  # camera shake sigma range, pixels
    noise: tuple[float, float]  # sensor noise sigma range, grey levels
    flicker: float  # random per-frame gain jitter amplitude


FAMILIES: dict[str, Family] = {
    "rooms": Family(
        name="rooms",
        place=room_place,
        size=(640, 360),
        fps=6,
        crf=(20, 26),
        people=(2, 4),
        palette=_office_palette,
        vehicles="",
        objects=("suitcase", "bag", "box", "ball", "bin"),
        object_width=(0.05, 0.1),
        person_height=(0.22, 0.4),
        light=(0.06, 0.1),
        light_period=(35.0, 60.0),
        exposure_steps=0.0,
        white_balance=0.03,
        lamp=0.0,
        cloud_shadow=0.0,
        weather=("",),
        shake=(0.0, 0.0),
        noise=(2.0, 5.0),
        flicker=0.01,
    ),
    "yard": Family(
        name="yard",
        place=yard_place,
        size=(640, 360),
        fps=10,
        crf=(22, 30),
        people=(2, 3),
        palette=_coat_palette,
        vehicles="cars",
        objects=("barrel", "cone", "bag", "box", "bin"),
        object_width=(0.04, 0.09),
        person_height=(0.16, 0.3),
        light=(0.05, 0.12),
        light_period=(30.0, 90.0),
        exposure_steps=1.5,
        white_balance=0.04,
        lamp=0.0,
        cloud_shadow=0.5,
        weather=("", "rain", "snow"),
        shake=(0.3, 1.5),
        noise=(1.5, 4.0),
        flicker=0.005,
    ),
    "hall": Family(
        name="hall",
        place=hall_place,
        size=(768, 432),
        fps=5,
        crf=(26, 32),
        people=(2, 3),
        palette=_vest_palette,
        vehicles="carts",
        objects=("parcel", "toolbox", "bucket", "box", "suitcase"),
        object_width=(0.05, 0.1),
        person_height=(0.2, 0.36),
        light=(0.03, 0.07),
        light_period=(40.0, 80.0),
        exposure_steps=0.5,
        white_balance=0.02,
        lamp=0.7,
        cloud_shadow=0.0,
        weather=("", "haze"),
        shake=(0.0, 0.8),
        noise=(3.0, 7.0),
        flicker=0.02,
    ),
}


# --- one video -----------------------------------------------------------------------------------


@dataclass
class _Agent:
    """Something that moves along a route back and forth (ping-pong) at a constant speed."""

    frames: list[Sprite]  # walking poses
    points: np.ndarray  # (n, 2) route waypoints (x, feet y)
    speed: float  # px/s
    phase: float  # px along the round trip at t = 0
    scale: Callable[[float], float]  # feet y -> sprite height (px)
    loop: bool = False  # vehicles drive one way and wrap around instead of turning back
    gap: float = 0.0  # extra off-screen length per lap for looping agents

    def at(self, t: float) -> tuple[float, float, int, bool]:
        """(x, feet y, pose, facing left) at media time t."""
        seg = np.diff(self.points, axis=0)
        lengths = np.hypot(seg[:, 0], seg[:, 1])
        total = float(lengths.sum())
        if self.loop:
            s = (self.phase + self.speed * t) % (total + self.gap)
            back = False
        else:
            s = (self.phase + self.speed * t) % (2 * total)
            back = s > total
            s = 2 * total - s if back else s
        i = int(np.searchsorted(np.cumsum(lengths), s, side="right"))
        i = min(i, len(lengths) - 1)
        s0 = float(np.cumsum(lengths)[i] - lengths[i])
        u = 0.0 if lengths[i] == 0 else min(max((s - s0) / lengths[i], 0.0), 1.0)
        x, y = self.points[i] + u * seg[i]
        if self.loop and s > total:  # off screen
            x = -1e6
        left = (seg[i, 0] < 0) != back
        pose = int(self.speed * t / 12.0) % len(self.frames)
        return float(x), float(y), pose, left


@dataclass
class _Event:
    kind: str
    name: str
    start: float
    end: float
    sprite: list[Sprite] | None = None
    xy: tuple[float, float] = (0.0, 0.0)  # object: centre x, feet y
    height: float = 0.0
    path: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # figure: x from edge, x turn, y, speed
    cover: np.ndarray | None = None  # lens: alpha mask (h, w)
    cover_colour: np.ndarray | None = None
    view: np.ndarray | None = None  # camera turned: the other view


class FamilyVideo:
    """One camera of a family: frames rendered on demand, deterministic for (family, seed)."""

    def __init__(
        self,
        family: str,
        seed: int,
        *,
        duration_s: float = 120.0,
        warmup_s: float = 20.0,
        anomalies: bool = True,
        size: tuple[int, int] | None = None,
        fps: int | None = None,
    ) -> None:
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
        self.family = fam = FAMILIES[family]
        self.seed = seed
        self.width, self.height = size or fam.size
        self.fps = fps or fam.fps
        self.duration_s = duration_s
        self.warmup_s = warmup_s
        self.frames = int(round(duration_s * self.fps))
        base = [FAMILY_NAMES.index(family), seed, GENERATOR_VERSION]
        rng = np.random.default_rng([*base, 0])  # the place, the camera and the routine agents
        w, h = self.width, self.height
        self.place = fam.place(rng, w, h)
        self.crf = int(rng.integers(fam.crf[0], fam.crf[1] + 1))
        self.noise = float(rng.uniform(*fam.noise))
        self.shake = float(rng.uniform(*fam.shake))
        self.light = float(rng.uniform(*fam.light))
        self.light_period = float(rng.uniform(*fam.light_period))
        self.light_phase = float(rng.uniform(0, 2 * np.pi))
        self.wb_phase = rng.uniform(0, 2 * np.pi, 3)
        self.wb_period = float(rng.uniform(60, 150))
        self.weather = str(rng.choice(list(fam.weather)))
        self.nuisances = [f"light +-{self.light:.0%} / {self.light_period:.0f} s", f"noise {self.noise:.1f}"]
        if self.weather:
            self.nuisances.append(self.weather)
        if self.shake:
            self.nuisances.append(f"shake {self.shake:.1f} px")
        self.agents = self._agents(rng)
        self.base_seed = int(rng.integers(0, 2**31))
        schedule = self._schedule(np.random.default_rng([*base, 1]))
        self.events: list[_Event] = schedule if anomalies else []
        # Nuisances are drawn against the schedule either way: without anomalies, the same video.
        rng = np.random.default_rng([*base, 2])
        # exposure steps at normal times after the warm-up, away from anomaly onsets and ends
        self.steps: list[tuple[float, float]] = []
        n_steps = int(rng.poisson(fam.exposure_steps * (duration_s - warmup_s) / 60.0))
        for _ in range(n_steps):
            t = float(rng.uniform(warmup_s + 3, duration_s - 3))
            if any(abs(t - e.start) < 3 or abs(t - e.end) < 3 for e in schedule):
                continue
            self.steps.append((t, float(rng.choice([-1, 1]) * rng.uniform(0.05, 0.1))))
            self.nuisances.append(f"exposure step {self.steps[-1][1]:+.0%} at {t:.1f} s")
        self.lamp: tuple[float, np.ndarray] | None = None
        if rng.random() < fam.lamp:
            t = float(rng.uniform(warmup_s + 5, max(warmup_s + 5, duration_s - 10)))
            cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.0, 0.5) * h
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            r = rng.uniform(0.25, 0.45) * w
            gain = float(rng.uniform(0.1, 0.2)) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
            self.lamp = (t, gain.astype(np.float32))
            self.nuisances.append(f"lamp on at {t:.1f} s")
        self.shadow: tuple[float, float, float] | None = None  # start, speed px/s, depth
        if rng.random() < fam.cloud_shadow:
            self.shadow = (
                float(rng.uniform(warmup_s, max(warmup_s, duration_s - 30))),
                float(rng.uniform(15, 40)),
                0.15,
            )
            self.nuisances.append(f"cloud shadow from {self.shadow[0]:.1f} s")

    # --- the plan --------------------------------------------------------------------------------

    def _scale(self, y: float) -> float:
        """Height in pixels of a person whose feet are at row y."""
        top, h = self.place.floor_top, self.height
        u = min(max((y - top) / max(1, h - top), 0.0), 1.0)
        lo, hi = self.family.person_height
        return (lo + (hi - lo) * u) * h

    def _agents(self, rng: np.random.Generator) -> list[_Agent]:
        fam, place = self.family, self.place
        agents = []
        for _ in range(int(rng.integers(fam.people[0], fam.people[1] + 1))):
            n = int(rng.integers(2, 4))
            if place.path_x is not None and place.lawn is not None and rng.random() < 0.5:  # up the path
                pts = np.array(
                    [[place.path_x, place.walk_y[0] + 5], [place.path_x + rng.uniform(-6, 6), place.lawn[1]]]
                )
            else:
                pts = np.stack([rng.uniform(*place.walk_x, n), np.sort(rng.uniform(*place.walk_y, n))], axis=1)
                pts[:, 0] = np.sort(pts[:, 0]) if rng.random() < 0.5 else np.sort(pts[:, 0])[::-1]
            seg = float(np.hypot(*np.diff(pts, axis=0).T).sum())
            speed = float(rng.uniform(30, 60)) * self.width / 640
            # the warm-up sees each route walked end to end at least once
            speed = max(speed, 2.2 * seg / self.warmup_s)
            agents.append(
                _Agent(figure_sprites(rng, fam.palette(rng)), pts, speed, rng.uniform(0, 2 * seg), self._scale)
            )
        if fam.vehicles == "cars":
            for lane in place.lanes[:1]:
                pts = np.array([[-0.15 * self.width, lane], [1.15 * self.width, lane]], np.float32)
                for _ in range(int(rng.integers(1, 3))):
                    car = car_sprite(rng)
                    agents.append(
                        _Agent(
                            [car],
                            pts if rng.random() < 0.5 else pts[::-1].copy(),
                            float(rng.uniform(60, 110)) * self.width / 640,
                            float(rng.uniform(0, 1.3 * self.width)),
                            lambda y: 0.13 * self.height,
                            loop=True,
                            gap=float(rng.uniform(0.1, 0.6)) * self.width,
                        )
                    )
        elif fam.vehicles == "carts":
            pts = np.stack([rng.uniform(*place.walk_x, 2), np.sort(rng.uniform(*place.walk_y, 2))], axis=1)
            seg = float(np.hypot(*np.diff(pts, axis=0).T).sum())
            speed = max(float(rng.uniform(25, 45)) * self.width / 640, 2.2 * seg / self.warmup_s)
            cart = cart_sprite(rng)
            agents.append(_Agent([cart], pts, speed, rng.uniform(0, 2 * seg), lambda y: 0.5 * self._scale(y)))
        return agents

    def _schedule(self, rng: np.random.Generator) -> list[_Event]:
        """Anomalies after the warm-up, one kind after another in a shuffled order, with 6-15 s of
        normal video between them."""
        fam, place, w, h = self.family, self.place, self.width, self.height
        kinds = list(ANOMALY_KINDS)
        rng.shuffle(kinds)
        events: list[_Event] = []
        t = self.warmup_s + float(rng.uniform(4, 10))
        k = int(rng.integers(0, len(kinds)))
        while True:
            kind = kinds[k % len(kinds)]
            k += 1
            if kind == "object_left":
                length = float(rng.uniform(8, 20))
                shape = str(rng.choice(list(fam.objects)))
                sprite = object_sprite(rng, shape)
                ow = float(rng.uniform(*fam.object_width)) * w
                height = ow * sprite.shape[0] / sprite.shape[1]
                fx = float(rng.uniform(0.05 * w + ow / 2, 0.95 * w - ow / 2))
                fy = float(rng.uniform(place.floor_top + 0.2 * (h - place.floor_top), h - 0.03 * h))
                ev = _Event(kind, shape, t, t + length, [sprite], (fx, fy), height)
            elif kind == "figure_unused_area":
                stranger = rng.random() < 0.5
                palette = _stranger_palette(rng) if stranger else fam.palette(rng)
                sprites = figure_sprites(rng, palette)
                x0, x1 = place.unused_x
                fy = float(rng.uniform(*place.unused_y))
                edge_left = x0 == 0
                depth = float(rng.uniform(0.6, 0.9)) * (x1 - x0)
                speed = float(rng.uniform(35, 60)) * w / 640
                start_x = -20.0 if edge_left else w + 20.0
                turn_x = x0 + depth if edge_left else x1 - depth
                length = 2 * abs(turn_x - start_x) / speed
                name = "stranger" if stranger else "routine-looking"
                ev = _Event(kind, name, t, t + length, sprites, path=(start_x, turn_x, fy, speed))
                ev.height = self._scale(fy)
            elif kind == "lens_covered":
                length = float(rng.uniform(4, 10))
                yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
                corner = rng.integers(0, 4)
                cx = (0.0 if corner % 2 == 0 else w) + rng.uniform(-0.1, 0.1) * w
                cy = (0.0 if corner < 2 else h) + rng.uniform(-0.1, 0.1) * h
                area = float(rng.uniform(0.25, 0.45))
                r = math.sqrt(4 * area * w * h / math.pi)
                d = np.hypot((xx - cx) / 1.2, yy - cy)
                alpha = np.clip((r - d) / (0.08 * r), 0, 1) * rng.uniform(0.85, 0.97)
                colour = np.array([rng.uniform(40, 110), rng.uniform(25, 80), rng.uniform(20, 70)], np.float32)
                ev = _Event(kind, "hand", t, t + length, cover=alpha.astype(np.float32), cover_colour=colour)
            else:
                length = float(rng.uniform(5, 12))
                other_rng = np.random.default_rng([FAMILY_NAMES.index(fam.name), self.seed, GENERATOR_VERSION, 99, k])
                other = fam.place(other_rng, w, h)
                ev = _Event(kind, "another view", t, t + length, view=other.image)
            if ev.end > self.duration_s - 3:
                break
            events.append(ev)
            t = ev.end + float(rng.uniform(6, 15))
        return events

    # --- rendering -------------------------------------------------------------------------------

    def _gain(self, t: float) -> np.ndarray:
        """Per-channel global gain at time t: lighting swing x exposure x white balance."""
        g = 1.0 + self.light * math.sin(2 * math.pi * t / self.light_period + self.light_phase)
        for ts, step in self.steps:
            if t >= ts:
                g *= 1.0 + step
        wb = 1.0 + self.family.white_balance * np.sin(2 * np.pi * t / self.wb_period + self.wb_phase)
        return (g * wb).astype(np.float32)

    def render(self, i: int) -> tuple[np.ndarray, FrameTruth]:
        """Frame `i` as (H, W, 3) uint8 RGB and what it shows."""
        t = i / self.fps
        w, h = self.width, self.height
        rng = np.random.default_rng([self.base_seed, i])
        ev = next((e for e in self.events if e.start <= t < e.end), None)
        seg = self.events.index(ev) if ev is not None else -1
        truth = FrameTruth(i, t, False)
        if ev is not None and ev.kind == "camera_turned":
            assert ev.view is not None
            frame = ev.view.copy()
            truth = FrameTruth(i, t, True, ev.kind, ev.name, seg)
        else:
            frame = self.place.image.copy()
            if self.lamp is not None and t >= self.lamp[0]:
                frame *= 1.0 + self.lamp[1][..., None]
            if self.shadow is not None:
                t0, speed, depth = self.shadow
                cx = (t - t0) * speed - 0.3 * w
                if -0.3 * w < cx < 1.3 * w:
                    xx = np.arange(w, dtype=np.float32)
                    band = depth * np.exp(-(((xx - cx) / (0.18 * w)) ** 2))
                    frame *= (1.0 - band)[None, :, None]
            layers: list[tuple[float, Sprite, int, int, bool]] = []  # feet y, sprite, x, y, the anomaly?
            if ev is not None and ev.kind == "object_left":
                assert ev.sprite is not None
                s = _scaled(ev.sprite[0], int(round(ev.height)))
                x, y = int(round(ev.xy[0] - s.shape[1] / 2)), int(round(ev.xy[1] - s.shape[0]))
                layers.append((ev.xy[1] - 0.5, s, x, y, True))  # behind anyone standing at the same row
            for agent in self.agents:
                ax, ay, pose, left = agent.at(t)
                s = _scaled(agent.frames[pose], int(round(agent.scale(ay))))
                if left:
                    s = s[:, ::-1]
                layers.append((ay, s, int(round(ax - s.shape[1] / 2)), int(round(ay - s.shape[0])), False))
            in_view = True  # the anomaly's thing is visible enough to count
            if ev is not None and ev.kind == "figure_unused_area":
                assert ev.sprite is not None
                start_x, turn_x, fy, speed = ev.path
                half = (ev.end - ev.start) / 2
                dt = t - ev.start
                u = dt / half if dt < half else 2.0 - dt / half
                fx = start_x + u * (turn_x - start_x)
                s = _scaled(ev.sprite[int(speed * dt / 12.0) % len(ev.sprite)], int(round(ev.height)))
                half_w = s.shape[1] / 2
                # a third of the figure's width in view counts: less is a sliver at the edge
                in_view = min(fx + half_w, w) - max(fx - half_w, 0) >= s.shape[1] / 3
                if (turn_x > start_x) != (dt < half):
                    s = s[:, ::-1]
                layers.append((fy, s, int(round(fx - s.shape[1] / 2)), int(round(fy - s.shape[0])), True))
            drawn = None
            for _, s, x, y, anomaly in sorted(layers, key=lambda item: item[0]):
                got = _blit(frame, s, x, y)
                if anomaly:
                    drawn = got
            if ev is not None and ev.kind == "lens_covered":
                assert ev.cover is not None and ev.cover_colour is not None
                dx, dy = (int(v) for v in rng.integers(-3, 4, 2))
                a = np.roll(ev.cover, (dy, dx), axis=(0, 1))[..., None]
                frame = frame * (1 - a) + a * ev.cover_colour * (0.8 + 0.4 * a)
                truth = FrameTruth(i, t, True, ev.kind, ev.name, seg)
            elif ev is not None and drawn is not None and in_view:
                box = (drawn[0] / w, drawn[1] / h, drawn[2] / w, drawn[3] / h)
                truth = FrameTruth(i, t, True, ev.kind, ev.name, seg, box)
        frame = frame * self._gain(t)
        if self.weather == "haze":
            haze = 0.08 + 0.07 * math.sin(2 * math.pi * t / 70.0)
            frame = frame * (1 - haze) + haze * 200.0
        elif self.weather == "rain":
            self._rain(frame, rng)
        elif self.weather == "snow":
            for _ in range(int(0.0015 * w * h)):
                x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
                frame[y : y + 2, x : x + 2] = frame[y : y + 2, x : x + 2] * 0.3 + 0.7 * 240
        if self.family.flicker:
            frame *= 1.0 + self.family.flicker * float(rng.uniform(-1, 1))
        if self.shake:
            dx, dy = (int(round(v)) for v in rng.normal(0, self.shake, 2))
            frame = np.roll(frame, (dy, dx), axis=(0, 1))
            if truth.box is not None:
                b = truth.box
                ox, oy = dx / w, dy / h
                box = (max(0.0, b[0] + ox), max(0.0, b[1] + oy), min(1.0, b[2] + ox), min(1.0, b[3] + oy))
                truth = FrameTruth(i, t, True, truth.kind, truth.name, truth.segment, box)
        frame += rng.normal(0.0, self.noise, frame.shape).astype(np.float32)
        return np.clip(frame, 0, 255).astype(np.uint8), truth

    def _rain(self, frame: np.ndarray, rng: np.random.Generator) -> None:
        h, w = frame.shape[:2]
        n = int(0.0008 * w * h)
        xs, ys = rng.integers(0, w, n), rng.integers(0, h, n)
        length = int(rng.integers(8, 14))
        for k in range(length):
            yy = np.clip(ys + k, 0, h - 1)
            xx = np.clip(xs + k // 3, 0, w - 1)
            frame[yy, xx] = frame[yy, xx] * 0.6 + 0.4 * 220

    def _truth(self, frames: list[FrameTruth]) -> VideoTruth:
        """Each anomaly spans its anomalous frames: [first frame's time, last frame's time + 1/fps)."""
        anomalies = []
        for k, e in enumerate(self.events):
            times = [f.t for f in frames if f.segment == k]
            anomalies.append(Anomaly(k, e.kind, e.name, round(times[0], 4), round(times[-1] + 1 / self.fps, 4)))
        return VideoTruth(
            family=self.family.name,
            seed=self.seed,
            fps=self.fps,
            size=(self.width, self.height),
            duration_s=self.duration_s,
            warmup_s=self.warmup_s,
            anomalies=tuple(anomalies),
            frames=tuple(frames),
            nuisances=tuple(self.nuisances),
        )

    def write_video(self, path: str | os.PathLike[str], *, keyframe_s: float = 2.0) -> VideoTruth:
        """Encode every frame as H.264 (yuv420p) at the family's quality, a keyframe every
        `keyframe_s` seconds; returns the ground truth."""
        size = (self.width, self.height)
        return self._truth(encode_h264(path, self.render, self.frames, size, self.fps, self.crf, keyframe_s))


def encode_h264(
    path: str | os.PathLike[str],
    render: Callable[[int], tuple[np.ndarray, T]],
    frames: int,
    size: tuple[int, int],
    fps: int,
    crf: int,
    keyframe_s: float,
) -> list[T]:
    """Encode `render(i)`'s RGB image for i in range(frames) as H.264 (yuv420p, `crf`, a keyframe
    every `keyframe_s` seconds) into an MP4 at `path`; returns the frames' truths, in order."""
    truths = []
    with av.open(os.fspath(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        gop = max(1, round(keyframe_s * fps))
        stream.options = {
            "preset": "veryfast",
            "crf": str(crf),
            "g": str(gop),
            "keyint_min": str(gop),
            "x264-params": "mbtree=0",  # same seed, same bytes (see groundtruth.py)
        }
        for i in range(frames):
            image, truth = render(i)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
            truths.append(truth)
        container.mux(stream.encode(None))
    return truths

"""Generated camera streams with ground-truth anomalies, for the anomaly tests and benchmark.

A `SceneStream` is a camera looking at a backdrop (any RGB image, or `procedural_backdrop`):
static or slowly panning, with slow lighting drift, a colour cast and sensor noise. Anomalies
are inserted at known frames: foreign objects pasted into the scene (their box, in normalised
frame coordinates, follows the pan) and unusual content (the lens covered, another scene, a
colour-inverted image) that has no box.

    >>> cam = SceneStream(procedural_backdrop(np.random.default_rng(0)), frames=60, seed=1)
    >>> cam.add_object(40, 6, procedural_object(np.random.default_rng(2)), width=0.25)
    >>> truth = cam.write_video("cam.mp4", fps=2)   # doctest: +SKIP
    >>> truth[42].box                                # (x0, y0, x1, y1) of the object in frame 42
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from dinostream.ingest.resize import resize_rgb
from generators.anomaly_families import encode_h264

CONTENT_KINDS = ("covered", "swap", "inverted")


@dataclass(frozen=True)
class Truth:
    """What frame `index` really shows."""

    index: int
    anomalous: bool
    kind: str = "normal"  # "normal", "object" or one of CONTENT_KINDS
    name: str = ""  # which object or content
    segment: int = -1  # index of the inserted anomaly, -1 for normal frames
    box: tuple[float, float, float, float] | None = None  # normalised (x0, y0, x1, y1) of an object


@dataclass(frozen=True)
class _Insert:
    start: int
    end: int  # exclusive
    kind: str
    name: str
    image: np.ndarray | None = None  # object pixels, or the other scene for "swap"
    mask: np.ndarray | None = None  # object shape, (h, w) bool
    xy: tuple[int, int] = (0, 0)  # object's top-left corner in backdrop coordinates


class SceneStream:
    """One camera: frames are rendered on demand (deterministic for a seed)."""

    def __init__(
        self,
        backdrop: np.ndarray,
        *,
        frames: int,
        size: tuple[int, int] = (320, 240),
        pan_px: float = 0.0,
        pan_range: int = 32,
        noise: float = 3.0,
        light: float = 0.1,
        light_period: int = 40,
        flicker: float = 0.02,
        seed: int = 0,
    ) -> None:
        """`size` is (width, height) of the frames; `pan_px` the camera pan in pixels per frame,
        back and forth over `pan_range` pixels of the backdrop; `noise` the sensor noise sigma in
        grey levels; `light` the amplitude of a periodic gain change (0.1 = +-10%, clouds or auto
        exposure) over `light_period` frames, plus `flicker`, a random gain jitter per frame."""
        self.frames = frames
        self.width, self.height = size
        self.pan_px = pan_px
        self.noise, self.light, self.light_period, self.flicker = noise, light, light_period, flicker
        self.seed = seed
        rng = np.random.default_rng(seed)
        margin = pan_range if pan_px else 0
        self.margin = margin
        self.backdrop = resize_rgb(backdrop, (self.width + margin, self.height + margin))
        self.pan_dir = rng.uniform(-1.0, 1.0, 2)
        self.pan_dir /= max(float(np.linalg.norm(self.pan_dir)), 1e-9)
        self.phase = float(rng.uniform(0, 2 * np.pi))
        self.tint = 1.0 + rng.uniform(-0.04, 0.04, 3)
        self.inserts: list[_Insert] = []

    # --- the schedule -------------------------------------------------------------------------

    def add_object(
        self,
        start: int,
        length: int,
        image: np.ndarray,
        *,
        width: float,
        shape: str = "rect",
        where: tuple[float, float] | None = None,
        name: str = "object",
        rng: np.random.Generator | None = None,
    ) -> None:
        """Paste `image` (any RGB) for frames [start, start + length), `width` times the frame width
        wide (aspect kept), as a rectangle or an ellipse, with its centre at `where` (normalised
        frame coordinates at `start`; random inside the frame when None)."""
        h0, w0 = image.shape[:2]
        w = max(4, int(round(width * self.width)))
        h = max(4, min(int(round(w * h0 / w0)), self.height - 8))
        pixels = resize_rgb(image, (w, h))
        mask = np.ones((h, w), dtype=bool)
        if shape == "ellipse":
            yy, xx = np.mgrid[0:h, 0:w]
            mask = ((xx + 0.5 - w / 2) / (w / 2)) ** 2 + ((yy + 0.5 - h / 2) / (h / 2)) ** 2 <= 1.0
        elif shape != "rect":
            raise ValueError(f"shape must be 'rect' or 'ellipse', got {shape!r}")
        # Keep the object fully in view for its whole life, whatever the pan does meanwhile.
        drift = int(math.ceil(abs(self.pan_px) * length)) + 1
        if where is None:
            r = rng or np.random.default_rng([self.seed, start])
            cx = r.uniform(w / 2 + drift, self.width - w / 2 - drift)
            cy = r.uniform(h / 2 + drift, self.height - h / 2 - drift)
        else:
            cx, cy = where[0] * self.width, where[1] * self.height
        ox, oy = self._offset(start)
        xy = (int(round(cx - w / 2)) + ox, int(round(cy - h / 2)) + oy)
        self._add(_Insert(start, start + length, "object", name, pixels, mask, xy))

    def add_content(self, start: int, length: int, kind: str, *, other: np.ndarray | None = None) -> None:
        """Unusual whole-frame content for frames [start, start + length): the lens `covered`, a
        `swap` to `other` (another scene), or the image colour-`inverted`."""
        if kind not in CONTENT_KINDS:
            raise ValueError(f"kind must be one of {CONTENT_KINDS}, got {kind!r}")
        image = None
        if kind == "swap":
            if other is None:
                raise ValueError("a swap needs the other scene")
            image = resize_rgb(other, (self.width, self.height))
        self._add(_Insert(start, start + length, kind, kind, image))

    def _add(self, ins: _Insert) -> None:
        if ins.start < 0 or ins.end > self.frames or ins.end <= ins.start:
            raise ValueError(f"frames [{ins.start}, {ins.end}) are outside the stream's {self.frames} frames")
        if any(ins.start < o.end and o.start < ins.end for o in self.inserts):
            raise ValueError(f"frames [{ins.start}, {ins.end}) overlap another inserted anomaly")
        self.inserts.append(ins)

    # --- rendering ----------------------------------------------------------------------------

    def _offset(self, i: int) -> tuple[int, int]:
        """Top-left of the camera's view in the backdrop at frame `i`: back and forth along a line,
        a full cycle every 2 * pan_range / pan_px frames."""
        if not self.margin:
            return 0, 0
        f = (abs(self.pan_px) * i / self.margin + 0.5) % 2.0
        along = 2.0 - f if f > 1.0 else f  # 0..1..0
        d = self.pan_dir / float(np.abs(self.pan_dir).max())  # the dominant axis spans the range
        pos = np.where(d >= 0, along * d * self.margin, self.margin + along * d * self.margin)
        return int(pos[0]), int(pos[1])

    def render(self, i: int) -> tuple[np.ndarray, Truth]:
        """Frame `i` as (H, W, 3) uint8 RGB and what it shows."""
        ins = next((o for o in self.inserts if o.start <= i < o.end), None)
        seg = self.inserts.index(ins) if ins is not None else -1
        ox, oy = self._offset(i)
        view = self.backdrop[oy : oy + self.height, ox : ox + self.width].astype(np.float32)
        truth = Truth(i, False)
        if ins is not None and ins.kind == "object":
            assert ins.image is not None and ins.mask is not None
            x, y = ins.xy[0] - ox, ins.xy[1] - oy
            h, w = ins.mask.shape
            view[y : y + h, x : x + w][ins.mask] = ins.image[ins.mask]
            box = (x / self.width, y / self.height, (x + w) / self.width, (y + h) / self.height)
            truth = Truth(i, True, "object", ins.name, seg, box)
        elif ins is not None:
            if ins.kind == "swap":
                assert ins.image is not None
                view = ins.image.astype(np.float32)
            elif ins.kind == "inverted":
                view = 255.0 - view
            else:  # covered: a hand or cloth over the lens, a dim, nearly flat frame
                view = np.full_like(view, 18.0) + 10.0 * np.linspace(0, 1, self.width, dtype=np.float32)[None, :, None]
            truth = Truth(i, True, ins.kind, ins.name, seg)
        rng = np.random.default_rng([self.seed, 7, i])
        gain = 1.0 + self.light * math.sin(2 * math.pi * i / self.light_period + self.phase)
        gain += self.flicker * float(rng.uniform(-1.0, 1.0))
        lit = view * (gain * self.tint) + rng.normal(0.0, self.noise, view.shape)
        return np.clip(lit, 0, 255).astype(np.uint8), truth

    def write_video(
        self, path: str | os.PathLike[str], *, fps: int = 2, crf: int = 20, keyframe_s: float = 2.0
    ) -> list[Truth]:
        """Encode every frame as H.264 (yuv420p) at `fps`, a keyframe every `keyframe_s` seconds as
        IP cameras do (without one, static regions would carry one frame's noise for the whole
        video); returns the ground truth per frame."""
        return encode_h264(path, self.render, self.frames, (self.width, self.height), fps, crf, keyframe_s)


# --- procedural content (no image files needed) ---------------------------------------------------


def procedural_backdrop(rng: np.random.Generator, size: tuple[int, int] = (400, 300)) -> np.ndarray:
    """A room-like scene: a lit wall and floor, a few textured rectangles (furniture, posters)."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(60, 200, 3).astype(np.float32)
    img = base[None, None, :] * (0.75 + 0.35 * (x / w))[..., None]
    horizon = int(h * rng.uniform(0.55, 0.7))
    img[horizon:] = rng.uniform(40, 160, 3) * (0.8 + 0.2 * (y[horizon:] / h))[..., None]
    for _ in range(int(rng.integers(4, 8))):
        bw, bh = int(rng.uniform(0.1, 0.3) * w), int(rng.uniform(0.1, 0.35) * h)
        bx, by = int(rng.uniform(0, w - bw)), int(rng.uniform(0, h - bh))
        colour = rng.uniform(20, 235, 3).astype(np.float32)
        tex = _texture(rng, bh, bw)
        img[by : by + bh, bx : bx + bw] = colour * (0.6 + 0.4 * tex[..., None])
    return np.clip(img, 0, 255).astype(np.uint8)


def procedural_object(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """A foreign object: a saturated, strongly textured square unlike the backdrops' furniture."""
    tex = _texture(rng, size, size, fine=True)
    a = rng.uniform(0, 255, 3).astype(np.float32)
    b = 255.0 - a
    return np.clip(a + tex[..., None] * (b - a), 0, 255).astype(np.uint8)


def _texture(rng: np.random.Generator, h: int, w: int, *, fine: bool = False) -> np.ndarray:
    """A [0, 1] field: stripes, checks, rings or smooth noise."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) / max(h, w)
    kind = int(rng.integers(0, 4))
    freq = rng.uniform(10, 20) if fine else rng.uniform(2, 6)
    if kind == 0:
        ang = rng.uniform(0, np.pi)
        return 0.5 + 0.5 * np.sin(2 * np.pi * freq * (x * np.cos(ang) + y * np.sin(ang)))
    if kind == 1:
        return ((np.floor(x * freq) + np.floor(y * freq)) % 2).astype(np.float32)
    if kind == 2:
        return 0.5 + 0.5 * np.cos(2 * np.pi * freq * np.hypot(x - 0.5, y - 0.5))
    coarse = rng.random((5, 5, 3)).astype(np.float32)
    img = resize_rgb((coarse * 255).astype(np.uint8), (w, h)).astype(np.float32) / 255.0
    return img.mean(axis=2)

"""Multi-camera scenes with known identities for re-identification and watchlists, in families
made by independent generators, so settings tuned on one can be judged on another.

A family builds sites; a site is a few cameras (640x360 by default) looking at different rooms,
each with its own white balance and exposure, and objects that walk across them with known
boxes on every frame. The families share only this frame (cameras, passes, ground truth and
crops); the rooms, the objects' shapes and textures, how they move and what goes wrong are each
family's own code:

- `parade`: the set-up of issue 19. Camera A shows four textured figures crossing one at a time;
  camera B, another room with another white balance, shows the same four scaled 0.85-1.15 plus
  two figures never seen on A, one with the colours of an A figure and another texture.
- `crowd`: three cameras with white balance and exposure of their own, several objects at once
  in lanes at different depths (nearer is larger, and hides what it passes), a pillar in front
  of some cameras, objects that only peek in at the edge, a pair of look-alikes (same colours and
  shape, other texture) that both travel, and a stranger seen on one camera only. Its rooms,
  shapes and textures share no code with `parade`.

Watchlist crops are cut as a user draws them: the object's box on a frame where it is seen
whole and unoccluded, 8 px of margin around it.

    >>> site = make_site("parade", seed=1)
    >>> image, truth = site.render(0, 12.5)        # camera 0 at 12.5 s; truth: [(oid, box), ...]
    >>> crop = site.crop(oid=2)                    # what a user would cut for figure 2
    >>> crop.image.shape, crop.camera, crop.t

Everything is deterministic for a (family, seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FRAME = (640, 360)  # (width, height)
FPS = 2.0  # sampled frames per second, as `dinostream up` samples by default
MARGIN = 8  # pixels around a drawn crop

Box4 = tuple[float, float, float, float]


@dataclass(frozen=True, eq=False)
class Camera:
    name: str
    background: np.ndarray  # (H, W, 3) float32, 0..255, before white balance and exposure
    gains: tuple[float, float, float]  # white balance, per channel
    exposure: float  # overall gain
    occluder: np.ndarray | None = None  # (H, W) bool: a fixture in front of every object
    occluder_rgb: np.ndarray | None = None  # (H, W, 3) its pixels


@dataclass(frozen=True, eq=False)
class Figure:
    """An object: a textured sprite and its silhouette, at its reference size."""

    oid: int
    name: str
    rgb: np.ndarray  # (h, w, 3) float32
    alpha: np.ndarray  # (h, w) bool
    look_alike_of: int | None = None  # same colours (and shape) as that figure, another texture


@dataclass(frozen=True)
class Pass:
    """One object walking across one camera: its foot at `foot_y` (pixels), its left edge moving
    from `x0` to `x1` (pixels, may be off-frame) between `t0` and `t1`; with `back`, it walks
    out to `x1` and back to `x0` in that time (a peek in at the edge)."""

    oid: int
    camera: int
    t0: float
    t1: float
    x0: float
    x1: float
    foot_y: float
    scale: float
    back: bool = False


@dataclass(frozen=True, eq=False)
class Crop:
    oid: int
    camera: int
    t: float
    box: Box4  # the crop's box in its frame, normalised
    image: np.ndarray  # (h, w, 3) uint8


def paste(
    img: np.ndarray, owner: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, box: tuple[int, int, int, int], oid: int
) -> None:
    """Draw a sprite (`rgb` where `alpha`) with its top left at `box` = (x, y, w, h) over `img`,
    clipped to the frame, and mark the pixels it covers as `oid`'s in `owner`."""
    height, width = owner.shape
    x, y, w, h = box
    xa, xb, ya, yb = max(x, 0), min(x + w, width), max(y, 0), min(y + h, height)
    if xb <= xa or yb <= ya:
        return
    a = alpha[ya - y : yb - y, xa - x : xb - x]
    img[ya:yb, xa:xb][a] = rgb[ya - y : yb - y, xa - x : xb - x][a]
    owner[ya:yb, xa:xb][a] = oid


@dataclass(eq=False)
class Site:
    family: str
    seed: int
    cameras: list[Camera]
    figures: list[Figure]
    passes: list[Pass]
    duration: float
    noise: float = 3.0
    size: tuple[int, int] = FRAME
    _sprites: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def times(self, camera: int | None = None) -> list[float]:
        """Sampled times of the site (every camera records from 0 until 2 s after its last pass),
        or of one camera."""
        end = self.duration if camera is None else self.end(camera)
        return [i / FPS for i in range(int(end * FPS))]

    def end(self, camera: int) -> float:
        """When `camera`'s recording ends: 2 s after its last pass."""
        return max((p.t1 for p in self.passes if p.camera == camera), default=0.0) + 2.0

    def visits(self, oid: int) -> list[Pass]:
        return [p for p in self.passes if p.oid == oid]

    def travellers(self) -> list[int]:
        """Objects seen on two or more cameras (the ones re-identification can link)."""
        return [f.oid for f in self.figures if len({p.camera for p in self.visits(f.oid)}) >= 2]

    def sprite(self, oid: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """The figure's RGB and silhouette at `scale` (nearest-neighbour, cached)."""
        fig = self.figures[oid]
        h0, w0 = fig.alpha.shape
        h, w = max(8, int(round(h0 * scale))), max(8, int(round(w0 * scale)))
        key = (oid, h * 10_000 + w)
        if key not in self._sprites:
            iy = np.minimum((np.arange(h) + 0.5) * h0 / h, h0 - 1).astype(int)
            ix = np.minimum((np.arange(w) + 0.5) * w0 / w, w0 - 1).astype(int)
            self._sprites[key] = (fig.rgb[iy][:, ix], fig.alpha[iy][:, ix])
        return self._sprites[key]

    def placement(self, p: Pass, t: float) -> tuple[int, int, int, int]:
        """(x, y, w, h) of the sprite of pass `p` at time `t` (top-left corner, pixels)."""
        _, alpha = self.sprite(p.oid, p.scale)
        h, w = alpha.shape
        u = (t - p.t0) / (p.t1 - p.t0)
        if p.back:
            u = 1 - abs(2 * u - 1)
        x = p.x0 + u * (p.x1 - p.x0)
        bob = 4 * np.sin(2 * np.pi * (t - p.t0) / 1.3) * p.scale
        return int(round(x)), int(round(p.foot_y - h + bob)), w, h

    def _compose(self, camera: int, t: float) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
        """The frame before lighting, which object owns each pixel (-1: none), and each live
        object's whole silhouette in pixels."""
        cam = self.cameras[camera]
        width, height = self.size
        img = cam.background.copy()
        owner = np.full((height, width), -1, dtype=np.int32)
        live = sorted((p for p in self.passes if p.camera == camera and p.t0 <= t <= p.t1), key=lambda p: p.foot_y)
        whole: dict[int, int] = {}
        for p in live:  # far to near: the nearer is drawn over
            rgb, alpha = self.sprite(p.oid, p.scale)
            whole[p.oid] = int(alpha.sum())
            paste(img, owner, rgb, alpha, self.placement(p, t), p.oid)
        if cam.occluder is not None and cam.occluder_rgb is not None:
            img[cam.occluder] = cam.occluder_rgb[cam.occluder]
            owner[cam.occluder] = -1
        return img, owner, whole

    def render(self, camera: int, t: float) -> tuple[np.ndarray, list[tuple[int, Box4]]]:
        """Camera `camera`'s frame at `t` (uint8 RGB) and its ground truth: (object id, normalised
        box of its visible pixels) for every object at least half visible (not cut by the frame's
        edge, not hidden by a nearer object or a fixture)."""
        img, owner, whole = self._compose(camera, t)
        return self._light(camera, t, img), _truth(owner, whole, 0.5)

    def _light(self, camera: int, t: float, img: np.ndarray) -> np.ndarray:
        cam = self.cameras[camera]
        lit = img * (np.asarray(cam.gains, dtype=np.float32) * cam.exposure)
        rng = np.random.default_rng([self.seed, camera, int(round(t * 1000))])
        lit = lit * float(1 + 0.02 * rng.standard_normal()) + self.noise * rng.standard_normal(lit.shape)
        return np.clip(lit, 0, 255).astype(np.uint8)

    def crop(self, oid: int, margin: int = MARGIN) -> Crop:
        """What a user cuts out for object `oid`: on the first camera it visits, the frame where it
        is seen whole (nothing hides any of it) nearest the middle of the pass, its box and
        `margin` pixels around it."""
        width, height = self.size
        first = self.visits(oid)[0]
        mid = (first.t0 + first.t1) / 2
        during = [t for t in self.times(first.camera) if first.t0 <= t <= first.t1]
        candidates = sorted(during, key=lambda t: abs(t - mid))
        for t in candidates:
            img, owner, whole = self._compose(first.camera, t)
            box = dict(_truth(owner, whole, 1.0)).get(oid)
            if box is None:
                continue
            x0, y0 = max(0, round(box[0] * width) - margin), max(0, round(box[1] * height) - margin)
            x1, y1 = min(width, round(box[2] * width) + margin), min(height, round(box[3] * height) + margin)
            lit = self._light(first.camera, t, img)
            return Crop(oid, first.camera, t, (x0 / width, y0 / height, x1 / width, y1 / height), lit[y0:y1, x0:x1])
        raise ValueError(f"object {oid} is never seen whole on camera {first.camera}")


def _truth(owner: np.ndarray, whole: dict[int, int], fraction: float) -> list[tuple[int, Box4]]:
    """(object id, normalised box of its visible pixels) for objects at least `fraction` visible."""
    height, width = owner.shape
    out = []
    for oid, total in whole.items():
        seen = owner == oid
        if seen.sum() < fraction * total:
            continue
        rows, cols = np.flatnonzero(seen.any(1)), np.flatnonzero(seen.any(0))
        out.append((oid, (cols[0] / width, rows[0] / height, (cols[-1] + 1) / width, (rows[-1] + 1) / height)))
    return out


# --- shared small helpers --------------------------------------------------------------------------------


def hsv(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, tt = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return np.array([(v, tt, p), (q, v, p), (p, v, tt), (p, q, v), (tt, p, v), (v, p, q)][i], dtype=np.float32) * 255


def _smooth_field(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """A smooth random field in 0..1: bilinear interpolation of a coarse grid."""
    coarse = rng.random((cells + 1, cells + 1)).astype(np.float32)
    gy = np.linspace(0, cells, h, endpoint=False, dtype=np.float32)[:, None] * np.ones((1, w), np.float32)
    gx = np.linspace(0, cells, w, endpoint=False, dtype=np.float32)[None, :] * np.ones((h, 1), np.float32)
    y0, x0 = gy.astype(int), gx.astype(int)
    fy, fx = gy - y0, gx - x0
    y1, x1 = np.minimum(y0 + 1, cells), np.minimum(x0 + 1, cells)
    top = coarse[y0, x0] * (1 - fx) + coarse[y0, x1] * fx
    bottom = coarse[y1, x0] * (1 - fx) + coarse[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


# --- family "parade" ------------------------------------------------------------------------------------

_PARADE_TEXTURES = ("hstripes", "vstripes", "checker", "diagonal", "dots", "zigzag")


def _parade_texture(kind: str, h: int, w: int, period: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "hstripes":
        return np.floor(yy / period) % 2
    if kind == "vstripes":
        return np.floor(xx / period) % 2
    if kind == "checker":
        return (np.floor(xx / period) + np.floor(yy / period)) % 2
    if kind == "diagonal":
        return np.floor((xx + yy) / period) % 2
    if kind == "dots":
        return (np.hypot(xx % period - period / 2, yy % period - period / 2) < period / 3).astype(np.float32)
    # zigzag
    return np.floor((yy + np.abs((xx % (2 * period)) - period)) / period) % 2


def _parade_figure(
    oid: int, name: str, colours: tuple[np.ndarray, np.ndarray], texture: str, size: tuple[int, int], period: float
) -> tuple[np.ndarray, np.ndarray]:
    w, h = size
    a = _parade_texture(texture, h, w, period)
    c1, c2 = colours
    rgb = c2 + a[..., None] * (c1 - c2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 0.22 * w  # a tall rounded rectangle
    dx = np.maximum(np.maximum(r - xx, xx - (w - 1 - r)), 0)
    dy = np.maximum(np.maximum(r - yy, yy - (h - 1 - r)), 0)
    alpha = np.hypot(dx, dy) <= r
    return rgb.astype(np.float32), alpha


def _parade_room(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    hue = rng.random()
    field_ = _smooth_field(rng, h, w, 4)
    dark, light = hsv(hue, 0.45, 0.3), hsv((hue + 0.1) % 1.0, 0.3, 0.85)
    img = dark + field_[..., None] * (light - dark)
    yy = np.arange(h)[:, None] * np.ones((1, w))
    floor = yy > h * rng.uniform(0.45, 0.55)
    img[floor] = img[floor] * 0.55 + hsv((hue + 0.5) % 1.0, 0.25, 0.5) * 0.45
    for _ in range(5):  # doors, cabinets, lamps
        fw, fh = int(rng.uniform(0.06, 0.16) * w), int(rng.uniform(0.12, 0.4) * h)
        x, y = int(rng.uniform(0, w - fw)), int(rng.uniform(0, h * 0.6 - fh / 2))
        img[max(y, 0) : y + fh, x : x + fw] = hsv(rng.random(), rng.uniform(0.2, 0.7), rng.uniform(0.3, 0.9))
    return img.astype(np.float32)


def parade_site(seed: int, size: tuple[int, int] = FRAME) -> Site:
    """Issue 19's set-up: camera A shows four figures crossing one at a time; camera B, another
    room with another white balance, the same four (scaled 0.85-1.15) and two never on A, one of
    them with the colours of an A figure and another texture. Each figure visits A before B."""
    rng = np.random.default_rng([19, seed])
    width, height = size
    figures: list[Figure] = []
    textures = list(rng.permutation(_PARADE_TEXTURES))
    hue0 = rng.random()
    specs = []
    for k in range(5):  # four that travel, one distinct stranger
        hue = (hue0 + k / 5 + rng.uniform(-0.03, 0.03)) % 1.0
        c1 = hsv(hue, rng.uniform(0.7, 0.95), rng.uniform(0.8, 1.0))
        c2 = np.full(3, (0.15, 0.85)[k % 2] * 255, dtype=np.float32)
        fw, fh = int(rng.integers(80, 110)), int(rng.integers(140, 190))
        specs.append(((c1, c2), textures[k], (fw, fh), float(rng.uniform(14, 24))))
    for k, (colours, tex, fsize, period) in enumerate(specs):
        rgb, alpha = _parade_figure(k, f"{tex}-{k}", colours, tex, fsize, period)
        figures.append(Figure(k, f"{tex}-{k}", rgb, alpha))
    # The look-alike: colours and shape of a travelling figure, the texture none of them has.
    twin = int(rng.integers(0, 4))
    colours, _, fsize, period = specs[twin]
    rgb, alpha = _parade_figure(5, f"{textures[5]}-5", colours, textures[5], fsize, period)
    figures.append(Figure(5, f"{textures[5]}-5", rgb, alpha, look_alike_of=twin))
    gains_b = tuple(float(g) for g in np.array([1.08, 0.97, 0.86]) * rng.uniform(0.97, 1.03, 3))
    cameras = [
        Camera("A", _parade_room(rng, size), (1.0, 1.0, 1.0), 1.0),
        Camera("B", _parade_room(rng, size), gains_b, float(rng.uniform(0.95, 1.05))),  # type: ignore[arg-type]
    ]
    passes: list[Pass] = []

    def cross(oid: int, cam: int, t: float, scale: float) -> float:
        dur = float(rng.uniform(8, 11))
        w = figures[oid].alpha.shape[1] * scale
        foot = height * float(rng.uniform(0.8, 0.92))
        x0, x1 = -w, float(width)
        if rng.random() < 0.5:
            x0, x1 = x1, x0
        passes.append(Pass(oid, cam, t, t + dur, x0, x1, foot, scale))
        return t + dur

    t_a = 2.0
    a_end = {}
    for oid in rng.permutation(4):
        t_a = cross(int(oid), 0, t_a, 1.0)
        a_end[int(oid)] = t_a
        t_a += float(rng.uniform(1.5, 3.0))
    t_b = 2.0 + 11.0
    order = [int(o) for o in rng.permutation(6)]
    for oid in order:
        if oid in a_end:
            t_b = max(t_b, a_end[oid] + 1.0)
        t_b = cross(oid, 1, t_b, float(rng.uniform(0.85, 1.15))) + float(rng.uniform(1.5, 3.0))
    duration = max(p.t1 for p in passes) + 2.0
    return Site("parade", seed, cameras, figures, passes, duration, size=size)


# --- family "crowd" -------------------------------------------------------------------------------------


def _plaid(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    p = rng.uniform(10, 18)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return 0.5 * ((np.sin(2 * np.pi * xx / p) > 0.3).astype(np.float32) + (np.sin(2 * np.pi * yy / p) > 0.3))


def _blotches(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return (_smooth_field(rng, h, w, int(rng.integers(4, 7))) > 0.5).astype(np.float32)


def _bands(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy = np.mgrid[0:h, 0:w][0].astype(np.float32)
    return 0.5 + 0.5 * np.sin(2 * np.pi * yy / rng.uniform(20, 34) + rng.uniform(0, 6.3))


def _polka(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    p = rng.uniform(14, 22)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xx = xx + (np.floor(yy / p) % 2) * p / 2
    return (np.hypot(xx % p - p / 2, yy % p - p / 2) < p / 4).astype(np.float32)


def _halves(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy = np.mgrid[0:h, 0:w][0].astype(np.float32)
    return (yy > h * rng.uniform(0.45, 0.6)).astype(np.float32)


_CROWD_TEXTURES: tuple[Callable[[np.random.Generator, int, int], np.ndarray], ...] = (
    _plaid,
    _blotches,
    _bands,
    _polka,
    _halves,
)


def _crowd_shape(kind: int, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx = (w - 1) / 2
    if kind == 0:  # a person: head over a body
        head = np.hypot(xx - cx, yy - 0.12 * h) <= 0.12 * h
        body = (yy >= 0.22 * h) & (np.abs(xx - cx) <= w / 2 * (0.75 + 0.25 * (yy - 0.22 * h) / (0.78 * h)))
        return head | body
    if kind == 1:  # an upright ellipse
        return ((xx - cx) / (w / 2)) ** 2 + ((yy - (h - 1) / 2) / (h / 2)) ** 2 <= 1
    # a trapezoid, wider at the bottom (a bag, a trolley)
    half = w / 2 * (0.55 + 0.45 * yy / (h - 1))
    return np.abs(xx - cx) <= half


def _crowd_room(
    rng: np.random.Generator, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """A wall with windows and shelves over a tiled floor in perspective, a vignette; maybe a pillar."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    wall = hsv(rng.random(), rng.uniform(0.1, 0.4), rng.uniform(0.5, 0.8))
    img = np.broadcast_to(wall, (h, w, 3)).astype(np.float32).copy()
    img *= (0.85 + 0.15 * _smooth_field(rng, h, w, 3))[..., None]
    horizon = h * rng.uniform(0.42, 0.52)
    floor = yy > horizon
    t1, t2 = hsv(rng.random(), 0.3, 0.6), hsv(rng.random(), 0.2, 0.35)
    depth = np.maximum(yy - horizon, 1)
    u = (xx - w / 2) / depth * 40
    v = 4000 / depth
    tiles = ((np.floor(u / 12) + np.floor(v / 12)) % 2)[..., None]
    img[floor] = (t2 + tiles * (t1 - t2))[floor]
    for _ in range(int(rng.integers(2, 4))):  # windows
        ww, wh = int(rng.uniform(0.08, 0.15) * w), int(rng.uniform(0.15, 0.25) * h)
        x, y = int(rng.uniform(0, w - ww)), int(rng.uniform(0.05, 0.2) * h)
        img[y : y + wh, x : x + ww] = hsv(rng.uniform(0.5, 0.65), 0.25, 0.95)
        img[y + wh // 2 - 1 : y + wh // 2 + 1, x : x + ww] = 60
    for _ in range(int(rng.integers(1, 3))):  # shelves
        sw = int(rng.uniform(0.1, 0.2) * w)
        x, y = int(rng.uniform(0, w - sw)), int(horizon - rng.uniform(0.1, 0.25) * h)
        img[y : int(horizon), x : x + sw] = hsv(rng.random(), 0.5, 0.4)
    img *= (1 - 0.25 * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2))[..., None]
    if rng.random() < 0.5:
        return img.astype(np.float32), None, None
    pw = int(rng.uniform(0.05, 0.08) * w)
    px = int(rng.uniform(0.3, 0.7) * w)
    pillar = np.zeros((h, w), dtype=bool)
    pillar[:, px : px + pw] = True
    colour = hsv(rng.random(), 0.15, rng.uniform(0.3, 0.7))
    shade = (0.8 + 0.2 * np.sin(np.pi * (xx - px) / pw))[..., None]
    return img.astype(np.float32), pillar, (colour * shade).astype(np.float32)


def crowd_site(seed: int, size: tuple[int, int] = FRAME) -> Site:
    """Three cameras with their own white balance and exposure; seven objects, five of which
    travel (two of them look-alikes: same colours and shape, other texture), one peeks in at an
    edge of one camera, and one is seen on one camera only; up to three at once per camera, in
    lanes at different depths."""
    rng = np.random.default_rng([23, seed])
    width, height = size
    figures: list[Figure] = []
    n = 6
    hue0 = rng.random()
    specs: list[tuple[Any, ...]] = []
    for k in range(n):
        hue = (hue0 + k / n) % 1.0
        c1 = hsv(hue, rng.uniform(0.6, 0.9), rng.uniform(0.7, 1.0))
        c2 = hsv((hue + rng.uniform(0.3, 0.7)) % 1.0, rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.5))
        shape = int(rng.integers(0, 3))
        fw, fh = int(rng.integers(75, 105)), int(rng.integers(130, 180))
        specs.append((c1, c2, shape, fw, fh, k % len(_CROWD_TEXTURES)))
    specs.append((*specs[1][:5], (specs[1][5] + 2) % len(_CROWD_TEXTURES)))  # 6: look-alike of 1
    for k, (c1, c2, shape, fw, fh, tex) in enumerate(specs):
        a = _CROWD_TEXTURES[tex](rng, fh, fw)
        rgb = (c2 + a[..., None] * (c1 - c2)).astype(np.float32)
        name = f"{_CROWD_TEXTURES[tex].__name__[1:]}-{k}"
        figures.append(Figure(k, name, rgb, _crowd_shape(shape, fh, fw), look_alike_of=1 if k == 6 else None))
    cameras = []
    for c in range(3):
        bg, occ, occ_rgb = _crowd_room(rng, size)
        gains = tuple(float(g) for g in rng.uniform(0.85, 1.15, 3))
        cameras.append(Camera("ABC"[c], bg, gains, float(rng.uniform(0.75, 1.25)), occ, occ_rgb))  # type: ignore[arg-type]
    lanes = (0.74, 0.84, 0.95)  # foot lines, frame heights: farther lanes are higher and smaller
    passes: list[Pass] = []
    # Routes: 0-4 and 6 travel over two or three cameras; 5 is on one camera only.
    routes = {k: [int(c) for c in rng.permutation(3)[: int(rng.integers(2, 4))]] for k in (0, 1, 2, 3, 4, 6)}
    routes[5] = [int(rng.integers(0, 3))]
    starts = {k: 2.0 + float(rng.uniform(0, 30)) for k in routes}
    peek_oid = int(rng.choice([0, 2, 3, 4]))
    for k, route in routes.items():
        t = starts[k]
        for i, cam in enumerate(route):
            lane = int(rng.integers(0, 3))
            scale = (0.78, 0.92, 1.08)[lane] * float(rng.uniform(0.95, 1.1))
            dur = float(rng.uniform(8, 12))
            w = figures[k].alpha.shape[1] * scale
            x0, x1 = -w, float(width)
            if rng.random() < 0.5:
                x0, x1 = x1, x0
            foot = height * lanes[lane] + float(rng.uniform(-4, 4))
            passes.append(Pass(k, cam, t, t + dur, x0, x1, foot, scale))
            if k == peek_oid and i == 0:  # later it peeks in at an edge of its first camera
                pt = t + dur + float(rng.uniform(2, 5))
                passes.append(Pass(k, cam, pt, pt + 6.0, -w, 0.6 * w, foot, scale, back=True))
            t += dur + float(rng.uniform(2, 8))
    duration = max(p.t1 for p in passes) + 2.0
    return Site("crowd", seed, cameras, figures, passes, duration, size=size)


def _lobby_site(seed: int) -> Site:
    """Family "lobby", made apart in its own module (imported here: it imports this one's types)."""
    from generators.reid_lobby import lobby_site

    return lobby_site(seed)


FAMILIES: dict[str, Callable[[int], Site]] = {"parade": parade_site, "crowd": crowd_site, "lobby": _lobby_site}


def make_site(family: str, seed: int) -> Site:
    """A site of `family` ("parade" or "crowd") for `seed`."""
    try:
        return FAMILIES[family](seed)
    except KeyError:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}") from None

"""The `warehouse` family: held-out camera days of a distribution centre, made by code of its own.

It shares only the truth types (`Anomaly`, `FrameTruth`, `VideoTruth`), the anomaly kind names and the
H.264 writer with `generators.anomaly_families`; the hall, vehicles, people, nuisances and the schedule
are drawn here a different way, so that figures reported on it were never tuned on:

- the view is rasterised: a camera high under the roof looks down a hall; the hall is made of convex
  polygons (boxes, quads, prisms) projected, clipped at the near plane, filled with PIL masks at twice
  the size and z-buffered with inverse depth, then averaged down; floor markings, cladding, roller
  door slats and the roof are textured from each pixel's world position; pallet racks (blue uprights,
  orange beams, stored pallets, a deck on top) stand in rows with aisles between, a conveyor with
  tunnels at both ends runs past packing benches, a safety fence closes a battery-charging cell, and
  roller doors with staging lanes in front of them line the back wall (one bay hatched and chained off);
- forklifts and pallet jacks (with their driver or walking operator) drive a lane network and move
  pallets between rack bays and staging lanes (turn, raise the forks, slide in, lift or set down), so a
  pallet appearing or going in a bay or a lane is normal; pickers walk the walkway and aisles and stop
  at the racks, packers work at the benches; cartons ride the conveyor;
- normal, all video long: the moving belt, forklift beacons, high-bay lights in zones that dim and come
  back (motion sensors), one flickering lamp, roller doors opening for a while and letting daylight in
  (the opening and a pool on the floor brighten, auto-exposure answers), one or two auto-exposure steps
  (5-12 %, they stay) after the warm-up, white-balance drift, the camera shaking when a forklift passes
  near its mount, dust motes, sensor noise, H.264;
- after the warm-up, 3 or 4 anomalies one at a time with at least 8 s of normal video between them:
  `object_left` (a carton, a stack of cartons, a wrapped or empty pallet, a tote or a drum in an aisle,
  the walkway or a cross aisle, never in a bay or a lane), `figure_unused_area` (someone on top of the
  racking, behind the safety fence or in the closed dock bay), `lens_covered` (tape, a hand or spray
  film over 25-60 % of the view) and `camera_turned` (knocked: another part of the hall, seen for a
  while, then back).

Videos are 640x360 at 2 fps, the bench's sampling rate, so every frame is scored. Deterministic for
the seed; `anomalies=False` renders the same video without them (pixels equal outside the anomalies).

    >>> video = WarehouseVideo(3)
    >>> truth = video.write_video("warehouse-3.mp4")       # doctest: +SKIP
    >>> [(a.kind, a.start, a.end) for a in truth.anomalies]  # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import math
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from generators.anomaly_families import Anomaly, FrameTruth, VideoTruth, encode_h264

WAREHOUSE = "warehouse"
WAREHOUSE_SIZE = (640, 360)
WAREHOUSE_FPS = 2  # the bench's sampling rate: every generated frame is a scored frame
WAREHOUSE_VERSION = 1  # bump when a change alters the pixels of any video
KINDS = ("object_left", "figure_unused_area", "lens_covered", "camera_turned")  # the bench's kind names
BOXED = ("object_left", "figure_unused_area")
_STREAM = 7351  # this family's rng namespace

RGB = tuple[float, float, float]
Rect = tuple[float, float, float, float]  # x0, z0, x1, z1 on the floor, metres
Pt = tuple[float, float]

NEAR = 0.15  # the near clipping plane, metres
SS = 2  # supersampling of every raster
_SUN = np.array([0.35, 1.0, -0.3]) / np.linalg.norm([0.35, 1.0, -0.3])  # where faces are lit from

# texture ids of the static scene
T_PLAIN, T_FLOOR, T_WALL, T_BACK, T_ROOF, T_BELT, T_DOOR, T_LAMP = 0, 1, 2, 3, 4, 5, 10, 100


def _pick(rng: np.random.Generator, options: tuple[RGB, ...]) -> RGB:
    return options[int(rng.integers(len(options)))]


def _scale(c: RGB, k: float) -> RGB:
    return (c[0] * k, c[1] * k, c[2] * k)


class _Grain:
    """Bilinear value noise in [-1, 1] on a wrapped random lattice."""

    def __init__(self, rng: np.random.Generator, n: int = 89) -> None:
        self.n = n
        self.g = (rng.random((n, n)) * 2 - 1).astype(np.float32)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ia, ib = np.floor(a).astype(np.int64), np.floor(b).astype(np.int64)
        fa, fb = (a - ia).astype(np.float32), (b - ib).astype(np.float32)
        i0, j0 = ia % self.n, ib % self.n
        i1, j1 = (i0 + 1) % self.n, (j0 + 1) % self.n
        g = self.g
        return (g[i0, j0] * (1 - fb) + g[i0, j1] * fb) * (1 - fa) + (g[i1, j0] * (1 - fb) + g[i1, j1] * fb) * fa


def _band(q: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (q >= lo) & (q <= hi)


def _every(q: np.ndarray, period: float, width: float, offset: float = 0.0) -> np.ndarray:
    return np.mod(q - offset, period) < width


def _mix(col: np.ndarray, where: np.ndarray, colour: RGB | np.ndarray, k: float = 1.0) -> None:
    """In place over rows: col <- col + (colour - col) * k where `where` (boolean or weights)."""
    a = np.asarray(where, np.float32)[:, None] * k
    col += a * (np.asarray(colour, np.float32) - col)


def _pool(a: np.ndarray, ss: int) -> np.ndarray:
    """Mean over ss x ss blocks of the first two axes."""
    h, w = a.shape[0] // ss, a.shape[1] // ss
    return a[: h * ss, : w * ss].reshape(h, ss, w, ss, *a.shape[2:]).mean(axis=(1, 3))


# --- the camera ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _View:
    """A pinhole camera: position, right/up/forward axes, focal length in pixels, frame size."""

    pos: np.ndarray
    right: np.ndarray
    up: np.ndarray
    fwd: np.ndarray
    f: float
    w: int
    h: int

    @staticmethod
    def looking(pos: tuple[float, float, float], yaw: float, pitch: float, roll: float, hfov: float, w: int, h: int):
        """Along +z turned by `yaw` (to +x), tilted down by `pitch`, rolled by `roll` (radians)."""
        fwd = np.array([math.sin(yaw) * math.cos(pitch), -math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
        right = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])
        up = np.cross(fwd, right)
        cr, sr = math.cos(roll), math.sin(roll)
        right, up = right * cr + up * sr, up * cr - right * sr
        return _View(np.asarray(pos, float), right, up, fwd, (w / 2) / math.tan(hfov / 2), w, h)

    def camera(self, p: np.ndarray) -> np.ndarray:
        """Camera coordinates (..., 3): right, up, forward depth."""
        d = np.asarray(p, float) - self.pos
        return np.stack([d @ self.right, d @ self.up, d @ self.fwd], axis=-1)

    def to_screen(self, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame pixel coordinates of camera coordinates in front of the camera."""
        z = np.maximum(c[..., 2], 1e-6)
        return self.w / 2 + self.f * c[..., 0] / z, self.h / 2 - self.f * c[..., 1] / z

    def world(self, iz: np.ndarray, ss: int) -> np.ndarray:
        """World points (H, W, 3) of a full ss-fine inverse-depth buffer."""
        H, W = iz.shape
        a = ((np.arange(W, dtype=np.float32) + 0.5) / ss - self.w / 2) / self.f
        b = -((np.arange(H, dtype=np.float32) + 0.5) / ss - self.h / 2) / self.f
        z = 1.0 / np.maximum(iz, 1e-6)
        d = self.fwd[None, None, :] + a[None, :, None] * self.right + b[:, None, None] * self.up
        return (self.pos + d * z[..., None]).astype(np.float32)


# --- primitives ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    """A box standing at (x, z) turned by `heading` (its length along the heading), from y0 to y1;
    `sides` > 0 makes it an n-sided prism (a drum)."""

    x: float
    z: float
    heading: float
    length: float
    width: float
    y0: float
    y1: float
    colour: RGB
    tid: int = T_PLAIN
    top: RGB | None = None
    sides: int = 0

    def faces(self) -> list[tuple[np.ndarray, RGB]]:
        f = np.array([math.sin(self.heading), 0.0, math.cos(self.heading)])
        s = np.array([math.cos(self.heading), 0.0, -math.sin(self.heading)])
        c = np.array([self.x, 0.0, self.z])
        if self.sides:
            ang = np.arange(self.sides) * 2 * math.pi / self.sides
            ring = [c + (f * math.cos(a) * self.length + s * math.sin(a) * self.width) / 2 for a in ang]
        else:
            ring = [c + (f * u * self.length + s * v * self.width) / 2 for u, v in ((1, 1), (1, -1), (-1, -1), (-1, 1))]
        lo = [p + np.array([0.0, self.y0, 0.0]) for p in ring]
        hi = [p + np.array([0.0, self.y1, 0.0]) for p in ring]
        out: list[tuple[np.ndarray, RGB]] = [
            (np.array(hi), self.top or self.colour),
            (np.array(lo[::-1]), _scale(self.colour, 0.5)),
        ]
        n = len(ring)
        for k in range(n):
            out.append((np.array([lo[k], lo[(k + 1) % n], hi[(k + 1) % n], hi[k]]), self.colour))
        return out

    def corners(self) -> np.ndarray:
        return np.concatenate([q for q, _ in self.faces()[:2]])


@dataclass(frozen=True)
class _Capsule:
    """A rounded stroke between two world points (a sphere when a == b), radius in metres."""

    a: tuple[float, float, float]
    b: tuple[float, float, float]
    r: float
    colour: RGB


@dataclass(frozen=True)
class _Sprite:
    """A drawn thing, depth-tested against the static hall: premultiplied RGB and alpha over a frame window."""

    depth: float
    prem: np.ndarray
    alpha: np.ndarray
    x0: int
    y0: int

    def box(self, w: int, h: int) -> tuple[float, float, float, float] | None:
        ys, xs = np.nonzero(self.alpha > 0.05)
        if not len(xs):
            return None
        return (
            (self.x0 + xs.min()) / w,
            (self.y0 + ys.min()) / h,
            (self.x0 + xs.max() + 1) / w,
            (self.y0 + ys.max() + 1) / h,
        )

    def paint(self, img: np.ndarray) -> None:
        hh, ww = self.alpha.shape
        view = img[self.y0 : self.y0 + hh, self.x0 : self.x0 + ww]
        view *= 1 - self.alpha[..., None]
        view += self.prem


class _Raster:
    """A z-buffered window of the SS-fine grid. Convex polygons are filled with PIL masks; depth is kept
    as inverse forward depth, which is affine on the screen over a plane, so it is fitted per polygon."""

    def __init__(self, view: _View, win: tuple[int, int, int, int], behind: np.ndarray | None = None) -> None:
        self.view = view
        self.x0, self.y0, x1, y1 = win
        hh, ww = y1 - self.y0, x1 - self.x0
        self.col = np.zeros((hh, ww, 3), np.float32)
        self.tid = np.zeros((hh, ww), np.int16)
        self.hit = np.zeros((hh, ww), bool)
        self.shadow = np.zeros((hh, ww), np.float32)
        if behind is None:
            self.iz = np.zeros((hh, ww), np.float32)
            self.ground = self.iz
        else:
            self.ground = behind[self.y0 : y1, self.x0 : x1]
            self.iz = self.ground * np.float32(1.003)  # things must be clearly in front of the hall

    def _clip(self, pts: np.ndarray) -> np.ndarray:
        c = self.view.camera(pts)
        out = []
        n = len(c)
        for k in range(n):
            a, b = c[k], c[(k + 1) % n]
            if a[2] >= NEAR:
                out.append(a)
            if (a[2] >= NEAR) != (b[2] >= NEAR):
                out.append(a + (b - a) * (NEAR - a[2]) / (b[2] - a[2]))
        return np.array(out)

    def _mask(self, sx: np.ndarray, sy: np.ndarray, draw) -> tuple[np.ndarray, int, int] | None:
        hh, ww = self.hit.shape
        bx0, by0 = max(int(math.floor(sx.min())) - 1, 0), max(int(math.floor(sy.min())) - 1, 0)
        bx1, by1 = min(int(math.ceil(sx.max())) + 2, ww), min(int(math.ceil(sy.max())) + 2, hh)
        if bx1 <= bx0 or by1 <= by0:
            return None
        im = Image.new("L", (bx1 - bx0, by1 - by0), 0)
        draw(ImageDraw.Draw(im), bx0, by0)
        m = np.asarray(im) > 0
        return (m, bx0, by0) if m.any() else None

    def polygon(self, pts: np.ndarray, colour: RGB, tid: int = T_PLAIN, lit: bool = True, shadow: float = 0.0) -> None:
        c = self._clip(pts)
        if len(c) < 3:
            return
        sx, sy = self.view.to_screen(c)
        sx, sy = sx * SS - self.x0, sy * SS - self.y0
        poly = [(float(a) - 0.5, float(b) - 0.5) for a, b in zip(sx, sy, strict=True)]
        got = self._mask(sx, sy, lambda d, x, y: d.polygon([(a - x, b - y) for a, b in poly], fill=255))
        if got is None:
            return
        m, bx0, by0 = got
        izv = 1.0 / c[:, 2]
        A = np.stack([sx, sy, np.ones_like(sx)], axis=1)
        coef = np.linalg.lstsq(A, izv, rcond=None)[0]
        gy, gx = np.mgrid[by0 : by0 + m.shape[0], bx0 : bx0 + m.shape[1]]
        iz = np.clip(coef[0] * (gx + 0.5) + coef[1] * (gy + 0.5) + coef[2], izv.min(), izv.max()).astype(np.float32)
        sl = (slice(by0, by0 + m.shape[0]), slice(bx0, bx0 + m.shape[1]))
        if shadow:
            on = m & (iz >= self.ground[sl] * np.float32(0.995))
            self.shadow[sl] = np.maximum(self.shadow[sl], on * np.float32(shadow))
            return
        on = m & (iz > self.iz[sl])
        if not on.any():
            return
        k = 1.0
        if lit:
            w = np.asarray(pts, float)
            n = np.cross(w[2] - w[0], w[-1] - w[1] if len(w) > 3 else w[1] - w[0])
            n /= np.linalg.norm(n) + 1e-12
            if n @ (self.view.pos - w[0]) < 0:
                n = -n
            k = 0.58 + 0.45 * max(float(n @ _SUN), 0.0)
        self.iz[sl][on] = iz[on]
        self.col[sl][on] = np.asarray(colour, np.float32) * k
        self.tid[sl][on] = tid
        self.hit[sl][on] = True

    def block(self, b: _Block) -> None:
        centre = np.array([b.x, (b.y0 + b.y1) / 2, b.z])
        for quad, colour in b.faces():
            mid = quad.mean(axis=0)
            n = np.cross(quad[1] - quad[0], quad[2] - quad[0])
            if n @ (mid - centre) < 0:
                n = -n
            if n @ (self.view.pos - mid) <= 0:  # faces away from the camera
                continue
            self.polygon(quad, colour, b.tid)

    def capsule(self, cap: _Capsule) -> None:
        c = self.view.camera(np.array([cap.a, cap.b]))
        if (c[:, 2] < NEAR + cap.r).any():
            return
        sx, sy = self.view.to_screen(c)
        sx, sy = sx * SS - self.x0, sy * SS - self.y0
        zm = float(c[:, 2].mean())
        r = max(cap.r * self.view.f * SS / zm, 0.6)
        xs, ys = np.array([sx.min() - r, sx.max() + r]), np.array([sy.min() - r, sy.max() + r])

        def draw(d: ImageDraw.ImageDraw, x: int, y: int) -> None:
            for px, py in zip(sx, sy, strict=True):
                d.ellipse((px - x - r, py - y - r, px - x + r, py - y + r), fill=255)
            if abs(sx[1] - sx[0]) + abs(sy[1] - sy[0]) > 0.5:
                d.line([(sx[0] - x, sy[0] - y), (sx[1] - x, sy[1] - y)], fill=255, width=max(1, round(2 * r)))

        got = self._mask(xs, ys, draw)
        if got is None:
            return
        m, bx0, by0 = got
        sl = (slice(by0, by0 + m.shape[0]), slice(bx0, bx0 + m.shape[1]))
        iz = np.float32(1.0 / max(zm - cap.r, NEAR))
        on = m & (iz > self.iz[sl])
        self.iz[sl][on] = iz
        self.col[sl][on] = np.asarray(cap.colour, np.float32) * 0.88
        self.hit[sl][on] = True

    def sprite(self) -> _Sprite | None:
        cov = _pool(self.hit.astype(np.float32), SS)
        sh = _pool(self.shadow, SS)
        alpha = cov + (1 - cov) * sh
        if not (alpha > 0.02).any():
            return None
        prem = _pool(self.col * self.hit[..., None], SS)
        iz = self.iz[self.hit]
        depth = float(1.0 / iz.max()) if iz.size else math.inf
        return _Sprite(depth, prem.astype(np.float32), alpha.astype(np.float32), self.x0 // SS, self.y0 // SS)


def _draw_thing(view: _View, behind: np.ndarray, blocks: list[_Block], caps: list[_Capsule], shadows: list[_Block]):
    """Blocks, capsules and floor shadows as one sprite over the hall whose fine inverse depth is `behind`."""
    pts = [b.corners() for b in blocks] + [np.array([c.a, c.b]) for c in caps]
    if not pts:
        return None
    c = view.camera(np.concatenate(pts))
    if (c[:, 2] < NEAR).any():
        win = (0, 0, view.w * SS, view.h * SS)
    else:
        sx, sy = view.to_screen(c)
        pad = max([cap.r * view.f / max(float(view.camera(np.array(cap.a))[2]), NEAR) for cap in caps] + [0.0]) + 3
        x0, x1 = max(int(sx.min() - pad), 0), min(int(sx.max() + pad) + 1, view.w)
        y0, y1 = max(int(sy.min() - pad), 0), min(int(sy.max() + pad) + 1, view.h)
        if x1 <= x0 or y1 <= y0:
            return None
        win = (x0 * SS, y0 * SS, x1 * SS, y1 * SS)
    r = _Raster(view, win, behind)
    for s in shadows:
        r.polygon(s.faces()[0][0], (0, 0, 0), shadow=0.38)
    for b in blocks:
        r.block(b)
    for cap in caps:
        r.capsule(cap)
    return r.sprite()


def _shadow(x: float, z: float, heading: float, length: float, width: float) -> _Block:
    return _Block(x, z, heading, length + 0.25, width + 0.25, 0.0, 0.004, (0, 0, 0))


# --- people --------------------------------------------------------------------------------------


VESTS: tuple[RGB, ...] = ((222, 232, 40), (240, 150, 30), (230, 236, 70), (250, 120, 40))
SHIRTS: tuple[RGB, ...] = ((40, 60, 110), (60, 60, 66), (150, 40, 40), (200, 200, 196), (70, 100, 70), (110, 80, 140))
TROUSERS: tuple[RGB, ...] = ((40, 44, 56), (30, 30, 34), (60, 66, 90), (90, 80, 64))
HATS: tuple[RGB, ...] = ((240, 240, 236), (236, 200, 40), (240, 130, 30), (40, 90, 180))
SKINS: tuple[RGB, ...] = ((228, 190, 160), (196, 150, 118), (150, 104, 74), (96, 66, 46))
HAIRS: tuple[RGB, ...] = ((30, 26, 22), (90, 60, 40), (170, 140, 90), (160, 160, 156))


@dataclass(frozen=True)
class _Look:
    height: float
    body: RGB
    sleeves: RGB
    legs: RGB
    skin: RGB
    hat: RGB
    hivis: bool


def _worker(rng: np.random.Generator) -> _Look:
    vest = _pick(rng, VESTS)
    return _Look(
        float(rng.uniform(1.62, 1.9)),
        vest,
        _pick(rng, SHIRTS),
        _pick(rng, TROUSERS),
        _pick(rng, SKINS),
        _pick(rng, HATS) if rng.random() < 0.6 else _pick(rng, HAIRS),
        True,
    )


def _visitor(rng: np.random.Generator) -> _Look:
    coat = _pick(rng, SHIRTS)
    return _Look(
        float(rng.uniform(1.6, 1.9)),
        coat,
        coat,
        _pick(rng, TROUSERS),
        _pick(rng, SKINS),
        _pick(rng, HAIRS),
        False,
    )


@dataclass(frozen=True)
class _Pose:
    """Where someone stands (feet at height y), which way they face, gait phase, and what the hands do:
    walk (swinging), work (at a bench), reach (to a rack at `reach_y`), sit (driving), push (a jack)."""

    x: float
    z: float
    heading: float
    y: float = 0.0
    phase: float = 0.0
    stride: float = 0.0
    act: str = "walk"
    reach_y: float = 1.2
    wave: float = 0.0


def _person(look: _Look, pose: _Pose) -> list[_Capsule]:
    k = look.height / 1.75
    F = np.array([math.sin(pose.heading), 0.0, math.cos(pose.heading)])
    S = np.array([math.cos(pose.heading), 0.0, -math.sin(pose.heading)])
    Y = np.array([0.0, 1.0, 0.0])
    P = np.array([pose.x, pose.y, pose.z])
    seated = pose.act == "sit"
    hip = P + Y * (0.55 if seated else 0.92) * k
    lean = 0.12 if pose.act in ("work", "push") else 0.0
    neck = hip + (Y * 0.5 + F * lean) * k
    head = neck + Y * 0.17 * k
    swing = 0.24 * k * math.sin(pose.phase) * pose.stride
    out: list[_Capsule] = []

    def cap(a: np.ndarray, b: np.ndarray, r: float, colour: RGB) -> None:
        out.append(_Capsule(tuple(map(float, a)), tuple(map(float, b)), r * k, colour))  # type: ignore[arg-type]

    for s in (-1, 1):
        if seated:
            knee = hip + F * 0.42 * k + S * s * 0.1 * k
            foot = knee - Y * 0.45 * k + F * 0.05
        else:
            foot = P + S * s * 0.1 * k + F * s * swing + Y * 0.05
            knee = (hip + foot) / 2 + F * 0.03
        cap(hip + S * s * 0.09 * k, knee, 0.08, look.legs)
        cap(knee, foot, 0.07, look.legs)
        cap(foot, foot + F * 0.12, 0.05, (36, 34, 32))
    cap(hip, neck - Y * 0.06 * k, 0.17, look.body)
    if look.hivis:
        cap(hip + Y * 0.2 * k, hip + Y * 0.24 * k, 0.175, (214, 214, 210))
    for s in (-1, 1):
        sh = neck - Y * 0.05 * k + S * s * 0.19 * k
        if pose.act == "work":
            hand = hip + Y * 0.12 * k + F * 0.42 * k + S * s * 0.15 * k + F * 0.06 * math.sin(pose.wave + s)
        elif pose.act == "reach":
            up = (pose.reach_y - pose.y) if s > 0 else 1.0 * k
            hand = P + Y * up + F * 0.5 * k + S * s * 0.12 * k + Y * 0.05 * math.sin(pose.wave)
        elif pose.act in ("sit", "push"):
            hand = sh + F * 0.42 * k - Y * 0.18 * k - S * s * 0.08 * k
        else:
            hand = sh - Y * 0.58 * k - F * s * swing * 0.7 + S * s * 0.05 * k
        arm = hand - sh
        n = float(np.linalg.norm(arm))
        if n > 0.64 * k:
            hand = sh + arm * (0.64 * k / n)
        elbow = (sh + hand) / 2 - Y * 0.06 * k + S * s * 0.05 * k
        cap(sh, elbow, 0.062, look.sleeves if look.hivis else look.body)
        cap(elbow, hand, 0.052, look.sleeves if look.hivis else look.body)
        cap(hand, hand, 0.05, (60, 62, 66) if look.hivis else look.skin)
    cap(neck, neck, 0.06, look.skin)
    cap(head, head, 0.105, look.skin)
    cap(head + Y * 0.05 * k - F * 0.02 * k, head + Y * 0.05 * k - F * 0.02 * k, 0.112, look.hat)
    return out


# --- vehicles and loads --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Load:
    """How one pallet looks: its deck and what is stacked on it."""

    kind: str  # cartons, wrapped, crates, sacks
    colour: RGB
    height: float
    seed: int


def _load(rng: np.random.Generator) -> _Load:
    kind = str(rng.choice(["cartons", "cartons", "wrapped", "crates", "sacks"]))
    colour = {
        "cartons": _pick(rng, ((182, 142, 96), (160, 122, 80), (196, 166, 118))),
        "wrapped": _pick(rng, ((196, 204, 212), (170, 180, 190), (60, 62, 70))),
        "crates": _pick(rng, ((50, 90, 160), (70, 72, 78), (200, 60, 40))),
        "sacks": _pick(rng, ((220, 214, 196), (170, 150, 110))),
    }[kind]
    return _Load(kind, colour, float(rng.uniform(0.5, 1.3)), int(rng.integers(1 << 30)))


def _pallet(x: float, z: float, heading: float, y: float, load: _Load | None) -> list[_Block]:
    """A 1.2 x 1.0 m pallet with its load, the long side along `heading`, its deck on height y."""
    wood = (150, 116, 76)
    out = [_Block(x, z, heading, 1.2, 1.0, y, y + 0.14, wood, top=(170, 136, 92))]
    if load is None:
        return out
    top = y + 0.14
    if load.kind in ("wrapped", "sacks"):
        out.append(_Block(x, z, heading, 1.14, 0.96, top, top + load.height, load.colour))
        return out
    r = np.random.default_rng(load.seed)
    f = (math.sin(heading), math.cos(heading))
    s = (math.cos(heading), -math.sin(heading))
    tiers = max(1, int(load.height / 0.42))
    for j in range(tiers):
        for u in (-0.3, 0.3):
            for v in (-0.25, 0.25):
                if j == tiers - 1 and r.random() < 0.25:
                    continue
                k = float(r.uniform(0.9, 1.06))
                cx, cz = x + f[0] * u + s[0] * v, z + f[1] * u + s[1] * v
                h0 = top + j * load.height / tiers
                out.append(
                    _Block(cx, cz, heading, 0.58, 0.48, h0, h0 + load.height / tiers - 0.01, _scale(load.colour, k))
                )
    return out


@dataclass(frozen=True)
class _Kind:
    """A vehicle's build: forks ahead of its centre (`reach` to a carried pallet's centre), speeds."""

    name: str
    reach: float
    speed: tuple[float, float]
    lifts: bool


FORKLIFT = _Kind("forklift", 1.5, (1.5, 2.3), True)
JACK = _Kind("pallet jack", 0.85, (0.9, 1.2), False)


def _vehicle(kind: _Kind, paint: RGB, driver: _Look, x: float, z: float, h: float, lift: float, t: float, moving: bool):
    """Blocks and capsules of a forklift (or a pallet jack with its walking operator)."""
    f = (math.sin(h), math.cos(h))
    s = (math.cos(h), -math.sin(h))

    def at(u: float, v: float) -> tuple[float, float]:
        return x + f[0] * u + s[0] * v, z + f[1] * u + s[1] * v

    blocks: list[_Block] = []
    dark = (38, 38, 42)
    if kind is FORKLIFT:
        blocks.append(_Block(*at(-0.15, 0), h, 1.7, 1.1, 0.15, 0.8, paint))
        blocks.append(_Block(*at(-1.05, 0), h, 0.4, 1.1, 0.15, 1.15, _scale(paint, 0.75)))
        for u in (-0.55, 0.45):
            for v in (-0.6, 0.6):
                blocks.append(_Block(*at(u, v), h, 0.5, 0.16, 0.0, 0.5, dark))
        for u in (-0.7, 0.5):
            for v in (-0.5, 0.5):
                blocks.append(_Block(*at(u, v), h, 0.06, 0.06, 0.8, 2.15, dark))
        blocks.append(_Block(*at(-0.1, 0), h, 1.3, 1.1, 2.12, 2.2, (60, 62, 66)))
        on = int(t * 2.5) % 2 == 0
        blocks.append(_Block(*at(-0.6, 0.35), h, 0.12, 0.12, 2.2, 2.32, (255, 170, 40) if on else (120, 80, 30)))
        mast = max(2.25, lift + 1.2)
        for v in (-0.38, 0.38):
            blocks.append(_Block(*at(0.78, v), h, 0.1, 0.1, 0.1, mast, (50, 52, 56)))
        blocks.append(_Block(*at(0.86, 0), h, 0.07, 1.0, lift, lift + 0.55, (60, 62, 66)))
        for v in (-0.3, 0.3):
            blocks.append(_Block(*at(1.45, v), h, 1.15, 0.1, lift, lift + 0.05, (70, 72, 76)))
        caps = _person(driver, _Pose(*at(-0.35, 0), h, y=0.45, act="sit"))
        caps = [c for c in caps]
    else:
        blocks.append(_Block(*at(-0.1, 0), h, 0.5, 0.7, 0.05, 0.95, paint))
        for v in (-0.3, 0.3):
            blocks.append(_Block(*at(0.75, v), h, 1.15, 0.16, 0.02, 0.08 + lift, (70, 72, 76)))
        blocks.append(_Block(*at(-0.45, 0), h, 0.35, 0.06, 0.9, 0.96, dark))
        d = (t * 1.1) if moving else 0.0
        caps = _person(
            driver, _Pose(*at(-0.95, 0), h, phase=math.pi * d / 0.6, stride=1.0 if moving else 0.0, act="push")
        )
    return blocks, caps


# --- routes --------------------------------------------------------------------------------------


class _Net:
    """A lane network: nodes on the floor, edges along aisles; shortest routes by Floyd-Warshall."""

    def __init__(self, nodes: list[Pt], edges: list[tuple[int, int]]) -> None:
        self.nodes = nodes
        n = len(nodes)
        d = np.full((n, n), np.inf)
        nxt = -np.ones((n, n), np.int64)
        for i in range(n):
            d[i, i], nxt[i, i] = 0.0, i
        for a, b in edges:
            w = math.dist(nodes[a], nodes[b])
            d[a, b] = d[b, a] = w
            nxt[a, b], nxt[b, a] = b, a
        for k in range(n):
            via = d[:, k : k + 1] + d[k : k + 1, :]
            better = via < d
            d = np.where(better, via, d)
            nxt = np.where(better, nxt[:, k : k + 1], nxt)
        self.d, self.nxt = d, nxt

    def route(self, a: Pt, a_ends: list[int], b: Pt, b_ends: list[int]) -> list[Pt]:
        """The shortest walk from a (on an edge ending at a_ends) to b; straight when they share an edge."""
        if set(a_ends) == set(b_ends) or math.dist(a, b) < 1e-6:
            return [a, b]
        best, pair = math.inf, (a_ends[0], b_ends[0])
        for i in a_ends:
            for j in b_ends:
                c = math.dist(a, self.nodes[i]) + float(self.d[i, j]) + math.dist(self.nodes[j], b)
                if c < best:
                    best, pair = c, (i, j)
        i, j = pair
        path = [a, self.nodes[i]]
        while i != j:
            i = int(self.nxt[i, j])
            path.append(self.nodes[i])
        path.append(b)
        out = [path[0]]
        for p in path[1:]:
            if math.dist(p, out[-1]) > 1e-6:
                out.append(p)
        return out


@dataclass(frozen=True)
class _Anchor:
    """A place on the network: the point and the nodes at the ends of its edge."""

    x: float
    z: float
    ends: tuple[int, ...]


@dataclass(frozen=True)
class _Slot:
    """Where a pallet can stand: centre, deck height, the heading forks face it with, how to get there."""

    x: float
    y: float
    z: float
    heading: float
    approach: _Anchor
    floor: bool
    lane: int = -1  # staging lane index; -1 for a rack bay
    depth: int = 0  # place in its lane, 0 nearest the apron


def _heading(dx: float, dz: float) -> float:
    return math.atan2(dx, dz)


class _Track:
    """Keyframes (t, x, z, heading, lift) interpolated linearly; headings unwrapped as added."""

    def __init__(self, t: float, x: float, z: float, h: float, lift: float) -> None:
        self.keys: list[list[float]] = [[t, x, z, h, lift]]

    @property
    def last(self) -> list[float]:
        return self.keys[-1]

    def to(self, dt: float, x: float | None = None, z: float | None = None, h: float | None = None, lift=None):
        t0, x0, z0, h0, l0 = self.last
        if h is not None:
            h = h0 + (h - h0 + math.pi) % (2 * math.pi) - math.pi
        self.keys.append(
            [
                t0 + dt,
                x0 if x is None else x,
                z0 if z is None else z,
                h0 if h is None else h,
                l0 if lift is None else lift,
            ]
        )

    def turn(self, h: float) -> None:
        dh = abs((h - self.last[3] + math.pi) % (2 * math.pi) - math.pi)
        if dh > 1e-3:
            self.to(0.4 + dh * 0.9, h=h)

    def drive(self, path: list[Pt], speed: float) -> None:
        for (ax, az), (bx, bz) in zip(path[:-1], path[1:], strict=True):
            d = math.hypot(bx - ax, bz - az)
            if d < 1e-6:
                continue
            self.turn(_heading(bx - ax, bz - az))
            self.to(d / speed, x=bx, z=bz)

    def at(self, t: float) -> tuple[float, float, float, float, bool]:
        k = np.asarray(self.keys)
        ts = k[:, 0]
        vals = [float(np.interp(t, ts, k[:, j])) for j in (1, 2, 3, 4)]
        i = bisect.bisect_right(list(ts), t)
        moving = 0 < i < len(ts) and (abs(k[i, 1] - k[i - 1, 1]) + abs(k[i, 2] - k[i - 1, 2])) > 1e-6
        return vals[0], vals[1], vals[2], vals[3], moving


@dataclass
class _Vehicle:
    kind: _Kind
    paint: RGB
    driver: _Look
    track: _Track
    speed: float
    at: _Anchor
    paths: list[list[Pt]] = field(default_factory=list)


@dataclass
class _PalletLife:
    """Where one moved pallet is: spans (t0, t1, slot index or -(vehicle index + 1))."""

    load: _Load
    spans: list[tuple[float, float, int]]

    def where(self, t: float) -> int | None:
        for t0, t1, w in self.spans:
            if t0 <= t < t1:
                return w
        return None


@dataclass
class _Walker:
    """A picker or packer: stays (x, z, heading, act, reach height) and walks between them."""

    look: _Look
    stays: list[tuple[float, float, float, float, float, str, float]]  # t0, t1, x, z, heading, act, reach_y
    walks: list[tuple[float, float, list[Pt]]]
    phase: float

    def pose(self, t: float) -> _Pose | None:
        for t0, t1, x, z, h, act, ry in self.stays:
            if t0 <= t < t1:
                return _Pose(x, z, h, act=act, reach_y=ry, wave=1.3 * t + self.phase)
        for t0, t1, path in self.walks:
            if not t0 <= t < t1:
                continue
            seg = [math.dist(a, b) for a, b in zip(path[:-1], path[1:], strict=True)]
            walked = (t - t0) / max(t1 - t0, 1e-9) * sum(seg)
            d = walked
            for k, L in enumerate(seg):
                if d <= L or k == len(seg) - 1:
                    (ax, az), (bx, bz) = path[k], path[k + 1]
                    f = min(d / max(L, 1e-9), 1.0)
                    h = _heading(bx - ax, bz - az)
                    return _Pose(ax + (bx - ax) * f, az + (bz - az) * f, h, phase=math.pi * walked / 0.7, stride=1.0)
                d -= L
        return None


# --- the hall ------------------------------------------------------------------------------------


class _Hall:
    """A distribution-centre hall: racking, a conveyor and packing benches, a fenced charging cell,
    roller doors with staging lanes; its lane network, its routine and its unused areas."""

    def __init__(self, rng: np.random.Generator, w: int, h: int, duration_s: float) -> None:
        self.w, self.h = w, h
        m = float(rng.choice([-1.0, 1.0]))  # the racking's side
        self.m = m
        W, D, Hh = float(rng.uniform(23, 27)), float(rng.uniform(29, 33)), float(rng.uniform(9.8, 11.0))
        self.size = (W, D, Hh)
        self.grain = _Grain(rng)
        zF = float(rng.uniform(7.2, 8.4))  # the front cross aisle's line
        zA = D - float(rng.uniform(8.6, 9.4))  # the dock apron's line
        self.zF, self.zA = zF, zA
        cam_x = m * float(rng.uniform(-1.0, 2.5))
        self.view = _View.looking(
            (cam_x, float(rng.uniform(8.4, 9.4)), -float(rng.uniform(2.0, 3.2))),
            float(rng.uniform(-0.12, 0.12)) - cam_x / 40,
            math.radians(float(rng.uniform(23, 29))),
            0.0,
            math.radians(float(rng.uniform(74, 84))),
            w,
            h,
        )
        self.colours = {
            "floor": np.array(_pick(rng, ((150, 150, 146), (136, 140, 140), (160, 156, 148), (120, 128, 130)))),
            "wall": np.array(_pick(rng, ((206, 210, 214), (190, 200, 210), (214, 212, 204), (176, 190, 200)))),
            "door": np.array(_pick(rng, ((170, 176, 182), (60, 100, 160), (200, 196, 180), (70, 120, 90)))),
            "upright": np.array(_pick(rng, ((40, 80, 150), (30, 60, 120), (110, 120, 130)))),
            "beam": np.array(_pick(rng, ((224, 112, 30), (236, 130, 40), (210, 90, 30)))),
            "paint": np.array(_pick(rng, ((226, 180, 30), (220, 70, 40), (60, 140, 80)))),
        }
        self.blocks: list[_Block] = []
        self.quads: list[tuple[np.ndarray, RGB, int]] = []
        self.furniture: list[Rect] = []  # floor rectangles nothing drives or stands in
        self.unused: dict[str, tuple[Rect, float]] = {}
        self._racks(rng)
        self._packing(rng)
        self._dock(rng)
        self._lights(rng)
        self._shell()
        self._network()
        self.vehicles: list[_Vehicle] = []
        self.pallets: list[_PalletLife] = []
        self.walkers: list[_Walker] = []
        self._routine(rng, duration_s)
        self.belt_speed = float(rng.uniform(0.35, 0.6))
        self.cartons = self._cartons(rng, duration_s)
        self.image, self.fine_iz, self.world, self.tid, self.maps = self.build(self.view, with_maps=True)
        self._slot_cache: tuple[tuple[int, ...], _Sprite | None] | None = None

    def x(self, u: float) -> float:
        return self.m * u

    def rect(self, u0: float, z0: float, u1: float, z1: float) -> Rect:
        a, b = sorted((self.x(u0), self.x(u1)))
        return (a, z0, b, z1)

    # --- the build ---

    def _racks(self, rng: np.random.Generator) -> None:
        W, D, _ = self.size
        zF, zA = self.zF, self.zA
        z0 = zF + float(rng.uniform(2.3, 2.8))
        bays = int((zA - 2.3 - z0) / 2.7)
        z1 = z0 + bays * 2.7
        self.rack_z = (z0, z1)
        scale = float(rng.uniform(0.95, 1.08))
        self.levels = [0.0, 1.6 * scale, 3.2 * scale, 4.8 * scale]
        self.rack_top = self.levels[-1] + 1.55
        self.main_u = (-1.3, 3.0)
        u = self.main_u[1]
        aisle = float(rng.uniform(3.3, 3.7))
        self.rows: list[tuple[float, float]] = []
        self.aisles: list[float] = []  # centre lines (u)
        depth = 1.2
        while u + depth <= W / 2 - 0.3:
            self.rows.append((u, u + depth))
            u += depth
            if u + aisle + 1.2 > W / 2 - 0.3:
                break
            self.aisles.append(u + aisle / 2)
            u += aisle
            depth = 2.5
        up, beam = tuple(self.colours["upright"]), tuple(self.colours["beam"])
        self.rack_slots: list[tuple[float, float, float, float]] = []  # x, y, z, heading of forks facing it
        fill = float(rng.uniform(0.6, 0.85))
        for ri, (a, b) in enumerate(self.rows):
            self.furniture.append(self.rect(a, z0, b, z1))
            self.unused[f"on top of the racking {ri + 1}"] = (self.rect(a, z0, b, z1), self.rack_top)
            faces = [a, b] if b - a < 2 else [a, a + 1.2, b - 1.2, b]
            for uf in faces:
                for k in range(bays + 1):
                    self.blocks.append(_Block(self.x(uf), z0 + k * 2.7, 0.0, 0.09, 0.09, 0.0, self.rack_top, up))  # type: ignore[arg-type]
                for lv in self.levels[1:]:
                    self.blocks.append(_Block(self.x(uf), (z0 + z1) / 2, 0.0, z1 - z0, 0.07, lv - 0.13, lv, beam))  # type: ignore[arg-type]
            mid = (a + b) / 2
            self.blocks.append(
                _Block(
                    self.x(mid),
                    (z0 + z1) / 2,
                    0.0,
                    z1 - z0,
                    b - a,
                    self.rack_top - 0.04,
                    self.rack_top,
                    (150, 152, 156),
                )
            )
            # pallet positions: one sub-row per 1.2 m, two pallets per bay per level
            subs = [(a + 0.6, -1.0)] if b - a < 2 else [(a + 0.6, -1.0), (b - 0.6, 1.0)]
            for us, side in subs:
                facing = self.m * (1.0 if side < 0 else -1.0)  # forks point from the aisle into the rack
                for k in range(bays):
                    for zz in (z0 + k * 2.7 + 0.72, z0 + k * 2.7 + 1.98):
                        for lv in self.levels[:3]:
                            self.rack_slots.append((self.x(us), lv, zz, _heading(facing, 0.0)))
                        if rng.random() < fill:  # the top level is always static stock
                            top = _load(rng)
                            top = _Load(top.kind, top.colour, min(top.height, 1.1), top.seed)
                            self.blocks.extend(_pallet(self.x(us), zz, math.pi / 2, self.levels[3], top))
        self.stock_fill = fill

    def _packing(self, rng: np.random.Generator) -> None:
        W, D, _ = self.size
        zF, zA = self.zF, self.zA
        self.walkway = (-3.3, -1.5)
        uc = -4.3
        self.conveyor = (uc - 0.4, zF + 2.2, uc + 0.4, zA - 2.2)
        c0, c1 = self.conveyor[1], self.conveyor[3]
        self.conveyor_x = self.x(uc)
        grey = (120, 124, 130)
        self.blocks.append(_Block(self.x(uc), (c0 + c1) / 2, 0.0, c1 - c0, 0.8, 0.82, 0.88, (50, 52, 56), tid=T_BELT))
        for v in (-0.44, 0.44):
            self.blocks.append(_Block(self.x(uc + v), (c0 + c1) / 2, 0.0, c1 - c0, 0.06, 0.78, 0.95, grey))
        for zz in np.arange(c0 + 0.5, c1, 2.0):
            self.blocks.append(_Block(self.x(uc), float(zz), 0.0, 0.08, 0.85, 0.0, 0.8, grey))
        tunnel = _pick(rng, ((60, 110, 170), (200, 200, 196), (80, 84, 90)))
        for zz in (c0 + 0.6, c1 - 0.6):
            self.blocks.append(_Block(self.x(uc), zz, 0.0, 1.2, 1.1, 0.6, 1.7, tunnel))
        self.furniture.append(self.rect(uc - 0.6, c0, uc + 0.6, c1))
        self.strip_u = -5.2
        b0, b1 = -6.9, -5.8
        self.benches: list[float] = []
        bench = _pick(rng, ((200, 190, 170), (170, 176, 184)))
        for zz in np.arange(c0 + 1.4, c1 - 1.4, float(rng.uniform(2.6, 3.2))):
            zz = float(zz)
            self.benches.append(zz)
            self.blocks.append(_Block(self.x((b0 + b1) / 2), zz, 0.0, 2.0, b1 - b0, 0.86, 0.92, bench))
            for dz in (-0.9, 0.9):
                self.blocks.append(_Block(self.x((b0 + b1) / 2), zz + dz, 0.0, 0.06, b1 - b0 - 0.1, 0.0, 0.86, grey))
            self.blocks.append(_Block(self.x(b0 + 0.15), zz, 0.0, 2.0, 0.3, 1.35, 1.4, grey))
            for j in range(int(rng.integers(1, 4))):
                self.blocks.append(
                    _Block(
                        self.x(b0 + 0.15),
                        zz - 0.7 + 0.5 * j,
                        0.0,
                        0.4,
                        0.28,
                        1.4,
                        1.4 + float(rng.uniform(0.15, 0.3)),
                        _load(rng).colour,
                    )
                )
        self.furniture.append(self.rect(b0, c0, b1, c1))
        # the fenced battery-charging cell beyond the benches
        fu0, fu1 = -W / 2 + 0.3, -7.8
        length = float(rng.uniform(5.0, 7.0))
        fz0 = float(rng.uniform(zF + 2.0, zA - 2.0 - length))
        fz1 = fz0 + length
        self.unused["behind the safety fence"] = (self.rect(fu0 + 0.3, fz0 + 0.4, fu1 - 0.4, fz1 - 0.4), 0.0)
        self.furniture.append(self.rect(fu0, fz0 - 0.3, fu1 + 0.3, fz1 + 0.3))
        self.fence = (fu0, fz0, fu1, fz1)
        post, mesh = (230, 190, 30), (60, 62, 66)
        for a, b in (((fu1, fz0), (fu1, fz1)), ((fu0, fz0), (fu1, fz0)), ((fu0, fz1), (fu1, fz1))):
            L = math.dist(a, b)
            for j in range(int(L / 1.4) + 1):
                f = j * 1.4 / L
                pu, pz = a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f
                self.blocks.append(_Block(self.x(pu), pz, 0.0, 0.06, 0.06, 0.0, 2.2, post))
            for y in (0.12, 1.15, 2.17):
                self.blocks.append(
                    _Block(
                        self.x((a[0] + b[0]) / 2),
                        (a[1] + b[1]) / 2,
                        _heading(self.x(b[0]) - self.x(a[0]), b[1] - a[1]),
                        L,
                        0.03,
                        y - 0.03,
                        y + 0.03,
                        post,
                    )
                )
            for j in range(int(L / 0.22)):
                f = (j + 0.5) * 0.22 / L
                pu, pz = a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f
                p = np.array([self.x(pu), 0.0, pz])
                self.quads.append(
                    (
                        np.array([p + (0, 0.15, 0), p + (0, 2.15, 0), p + (0, 2.15, 0.0), p + (0, 0.15, 0)]),
                        mesh,
                        T_PLAIN,
                    )
                )
        self.fence_bars = [
            (
                float(self.x(a[0] + (b[0] - a[0]) * (j + 0.5) * 0.22 / math.dist(a, b))),
                a[1] + (b[1] - a[1]) * (j + 0.5) * 0.22 / math.dist(a, b),
            )
            for a, b in (((fu1, fz0), (fu1, fz1)), ((fu0, fz0), (fu1, fz0)), ((fu0, fz1), (fu1, fz1)))
            for j in range(int(math.dist(a, b) / 0.22))
        ]
        cab = (90, 96, 104)
        for j in range(int(rng.integers(2, 4))):
            self.blocks.append(
                _Block(self.x(fu0 + 0.35), fz0 + 1.0 + j * 1.3, 0.0, 0.9, 0.5, 0.0, 1.9, cab, top=(70, 74, 80))
            )
        self.blocks.append(_Block(self.x(fu0 + 2.2), fz0 + length / 2, 0.0, 1.0, 0.8, 0.0, 0.9, (200, 60, 40)))

    def _dock(self, rng: np.random.Generator) -> None:
        W, D, _ = self.size
        n = int(rng.integers(3, 5))
        gap = float(rng.uniform(4.4, 5.2))
        first = -gap * (n - 1) / 2 + float(rng.uniform(-1.0, 1.0))
        self.doors = [first + j * gap for j in range(n)]
        self.door_h = float(rng.uniform(3.4, 4.0))
        self.closed = int(rng.choice([0, n - 1]))  # the closed bay: its door never opens
        self.lanes: list[Rect] = []
        z0, z1 = self.zA + 1.3, D - 0.4
        for j, dx in enumerate(self.doors):
            self.lanes.append((dx - 1.35, z0, dx + 1.35, z1))
            for s in (-1, 1):
                self.blocks.append(_Block(dx + s * 1.75, D - 0.2, 0.0, 0.3, 0.3, 0.0, 1.2, (236, 200, 40)))
            if j == self.closed:
                self.unused["in the closed dock bay"] = ((dx - 1.1, z0 + 0.6, dx + 1.1, z1 - 0.3), 0.0)
                for s in (-1, 1):
                    self.blocks.append(_Block(dx + s * 1.35, z0, 0.0, 0.08, 0.08, 0.0, 1.0, (236, 200, 40)))
                self.blocks.append(_Block(dx, z0, math.pi / 2, 2.7, 0.03, 0.86, 0.92, (200, 40, 40)))
        self.furniture.extend(self.lanes)

    def _lights(self, rng: np.random.Generator) -> None:
        W, D, Hh = self.size
        xs = np.arange(-W / 2 + 3.0, W / 2 - 2.0, float(rng.uniform(5.5, 6.5)))
        zs = np.arange(4.0, D - 1.0, float(rng.uniform(5.5, 6.5)))
        self.lamps = [(float(x), float(z)) for z in zs for x in xs]
        bands = np.array_split(np.arange(len(zs)), 3)
        self.lamp_group = []
        for j in range(len(self.lamps)):
            row = j // len(xs)
            self.lamp_group.append(next(g for g, b in enumerate(bands) if row in b))
        self.flicker_lamp = int(rng.integers(len(self.lamps)))
        self.lamp_group[self.flicker_lamp] = 3
        for j, (x, z) in enumerate(self.lamps):
            self.blocks.append(_Block(x, z, 0.0, 0.7, 0.7, Hh - 1.4, Hh - 1.25, (250, 248, 236), tid=T_LAMP + j))
            self.blocks.append(_Block(x, z, 0.0, 0.05, 0.05, Hh - 1.25, Hh, (60, 60, 64)))
        for z in zs:
            self.blocks.append(_Block(0.0, float(z) + 3.0, math.pi / 2, W, 0.2, Hh - 0.8, Hh - 0.5, (90, 94, 100)))

    def _shell(self) -> None:
        W, D, Hh = self.size
        fz = -8.0
        c = (-W / 2, W / 2)
        self.quads.append((np.array([(c[0], 0, fz), (c[1], 0, fz), (c[1], 0, D), (c[0], 0, D)]), (1, 1, 1), T_FLOOR))
        self.quads.append((np.array([(c[0], Hh, fz), (c[0], Hh, D), (c[1], Hh, D), (c[1], Hh, fz)]), (1, 1, 1), T_ROOF))
        self.quads.append((np.array([(c[0], 0, D), (c[1], 0, D), (c[1], Hh, D), (c[0], Hh, D)]), (1, 1, 1), T_BACK))
        for x in c:
            self.quads.append((np.array([(x, 0, fz), (x, 0, D), (x, Hh, D), (x, Hh, fz)]), (1, 1, 1), T_WALL))
        self.quads.append((np.array([(c[0], 0, fz), (c[1], 0, fz), (c[1], Hh, fz), (c[0], Hh, fz)]), (1, 1, 1), T_BACK))
        for j, dx in enumerate(self.doors):
            z = D - 0.03
            q = np.array([(dx - 1.5, 0, z), (dx + 1.5, 0, z), (dx + 1.5, self.door_h, z), (dx - 1.5, self.door_h, z)])
            self.quads.append((q, (1, 1, 1), T_DOOR + j))

    # --- textures of the static hall, from world points ---

    def surface(self, tid: np.ndarray, p: np.ndarray, col: np.ndarray) -> None:
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        W, D, Hh = self.size
        g = self.grain
        cl = self.colours
        fl = tid == T_FLOOR
        if fl.any():
            fx, fz = x[fl], z[fl]
            c = np.tile(cl["floor"].astype(np.float32), (len(fx), 1))
            c *= (1 + 0.07 * g(fx * 0.35, fz * 0.35) + 0.03 * g(fx * 4 + 40, fz * 4)).astype(np.float32)[:, None]
            _mix(c, _every(fx, 6.0, 0.03) | _every(fz, 6.0, 0.03), (0, 0, 0), 0.18)
            u = fx * self.m
            lines = [self.main_u[0], self.main_u[1]]
            for uu in lines:
                _mix(c, (np.abs(u - uu) < 0.05) & _band(fz, self.zF + 1.5, self.zA - 1.5), (236, 200, 40), 0.85)
            wa, wb = self.walkway
            walk = _band(u, wa, wb) & _band(fz, self.zF - 1.6, self.zA + 1.0)
            _mix(c, walk, (70, 140, 96), 0.8)
            _mix(c, walk & ((np.abs(u - wa) < 0.07) | (np.abs(u - wb) < 0.07)), (236, 210, 40), 0.9)
            _mix(c, walk & _every(fz, 6.0, 0.5, 1.0) & _band(u, wa + 0.3, wb - 0.3), (236, 236, 230), 0.5)
            for uu in (self.main_u[0] + 2.2,):
                tyre = np.exp(-(((u - uu) / 0.35) ** 2)) + np.exp(-(((fz - self.zF) / 0.5) ** 2)) * (fz < self.zA)
                c *= (1 - 0.06 * np.clip(tyre, 0, 1))[:, None].astype(np.float32)
            for j, (a0, b0, a1, b1) in enumerate(self.lanes):
                inside = _band(fx, a0, a1) & _band(fz, b0, b1)
                edge = inside & ~(_band(fx, a0 + 0.1, a1 - 0.1) & _band(fz, b0 + 0.1, b1 + 1))
                _mix(c, edge, (236, 236, 230), 0.85)
                if j == self.closed:
                    hatch = inside & _every(fx + fz, 0.9, 0.45) & ~edge
                    _mix(c, hatch, (230, 190, 30), 0.8)
                    _mix(c, inside & ~hatch & ~edge, (30, 30, 30), 0.6)
                lev = _band(fx, (a0 + a1) / 2 - 1.05, (a0 + a1) / 2 + 1.05) & (fz > D - 1.8)
                _mix(c, lev, (96, 100, 106), 0.8)
            f0, fz0, f1, fz1 = self.fence
            a, b = sorted((self.x(f0), self.x(f1)))
            cell = _band(fx, a, b) & _band(fz, fz0, fz1)
            _mix(c, cell & ~(_band(fx, a + 0.15, b - 0.15) & _band(fz, fz0 + 0.15, fz1 - 0.15)), (230, 190, 30), 0.8)
            col[fl] = c
        for t_ in (T_WALL, T_BACK):
            wl = tid == t_
            if not wl.any():
                continue
            along = z[wl] if t_ == T_WALL else x[wl]
            wy = y[wl]
            c = np.tile(cl["wall"].astype(np.float32) * 0.8, (len(wy), 1))
            c *= (0.93 + 0.07 * _every(along, 0.25, 0.12) + 0.02 * g(along * 0.5, wy * 0.5))[:, None].astype(np.float32)
            _mix(c, wy < 2.4, (150, 150, 146), 0.9)
            _mix(c, _every(along, 3.0, 0.02) & (wy < 2.4), (90, 90, 90), 0.5)
            _mix(c, _band(wy, Hh - 2.2, Hh - 1.4), (226, 232, 236), 0.6)  # a strip of translucent sheeting
            col[wl] = c
        rf = tid == T_ROOF
        if rf.any():
            rx, rz = x[rf], z[rf]
            c = np.tile(np.array([176, 180, 184], np.float32), (len(rx), 1))
            c *= (0.9 + 0.1 * _every(rx, 0.3, 0.15))[:, None].astype(np.float32)
            _mix(c, _every(rz, 9.0, 1.4, 2.0), (236, 240, 242), 0.9)
            col[rf] = c
        dr = (tid >= T_DOOR) & (tid < T_LAMP)
        for j in np.unique(tid[dr]):
            on = tid == j
            col[on] = self.door_colour(int(j) - T_DOOR, x[on], y[on], 0.0)

    def door_colour(self, j: int, x: np.ndarray, y: np.ndarray, opened: float) -> np.ndarray:
        """Door j's pixels: slats above the curtain's bottom edge, daylight below it."""
        edge = opened * self.door_h
        s = y - edge
        c = np.tile(self.colours["door"].astype(np.float32), (len(y), 1))
        c *= (0.86 + 0.14 * _every(s, 0.11, 0.08))[:, None].astype(np.float32)
        _mix(c, s < 0.07, (40, 40, 42))
        sky = np.stack([196 + 20 * y / 4, 212 + 14 * y / 4, 232 + 0 * y], axis=1).astype(np.float32)
        yard = np.stack([172 + 0 * y, 170 + 0 * y, 160 + 0 * y], axis=1).astype(np.float32)
        yard *= (1 + 0.05 * self.grain(x * 3, y * 3 + 50))[:, None].astype(np.float32)
        out = np.where((y > 1.4)[:, None], sky, yard)
        _mix(out, _band(y, 1.25, 1.4), (120, 120, 118), 0.7)
        return np.where((s < 0)[:, None], out * 1.3, c * 0.85).astype(np.float32)

    def build(self, view: _View, with_maps: bool = False):
        """The static hall seen by `view`: picture, fine inverse depth, world points and texture ids at
        the frame's size, and (for the camera's own view) the light, door and belt maps."""
        r = _Raster(view, (0, 0, view.w * SS, view.h * SS))
        for q, c, t in self.quads:
            r.polygon(q, c, t, lit=t == T_PLAIN)
        for b in self.blocks:
            r.block(b)
        for b in self.slot_blocks(-1e9, static_only=True):
            r.block(b)
        p = view.world(r.iz, SS).reshape(-1, 3)
        tid = r.tid.reshape(-1)
        col = r.col.reshape(-1, 3)
        self.surface(tid, p, col)
        fine = col.reshape(r.col.shape)
        lamp = tid >= T_LAMP
        col[lamp] = (252, 250, 240)
        image = _pool(fine, SS).astype(np.float32)
        world = _pool(p.reshape(*r.col.shape), SS).astype(np.float32)
        tids = r.tid[::SS, ::SS]
        if not with_maps:
            return image, r.iz, world, tids, None
        maps = self._maps(r.tid, p.reshape(*r.col.shape), view)
        return image, r.iz, world, tids, maps

    def _maps(self, tid: np.ndarray, p: np.ndarray, view: _View) -> dict[str, object]:
        W, D, Hh = self.size
        x, y, z = p[..., 0], p[..., 1], p[..., 2]
        pools = np.zeros((4, *tid.shape), np.float32)
        low = np.where(y < Hh - 1.6, 1.0, 0.35).astype(np.float32)
        for j, (lx, lz) in enumerate(self.lamps):
            g = self.lamp_group[j]
            sigma = 3.0 if g == 3 else 4.2
            pools[g] += (
                np.exp(-((x - lx) ** 2 + (z - lz) ** 2) / (2 * sigma**2)).astype(np.float32)
                * low
                * (0.6 if g == 3 else 1.0)
            )
            pools[g][tid == T_LAMP + j] = 40.0
        pools = np.stack([_pool(pl, SS) for pl in pools])
        doors = []
        for j, dx in enumerate(self.doors):
            on = (tid == T_DOOR + j).astype(np.float32)
            cov = _pool(on, SS)
            ys, xs = np.nonzero(cov > 0)
            wy = _pool(np.where(on > 0, y, 0), SS)[ys, xs] / cov[ys, xs]
            wx = _pool(np.where(on > 0, x, 0), SS)[ys, xs] / cov[ys, xs]
            ahead = np.maximum(D - z, 0)
            spill = np.exp(-ahead / 5.0) * np.clip(1.8 - np.abs(x - dx) / (1.5 + 0.35 * ahead), 0, 1)
            spill *= np.where(y < 0.05, 1.0, 0.4) * (z > D - 14)
            doors.append(
                (
                    ys,
                    xs,
                    cov[ys, xs].astype(np.float32),
                    wx.astype(np.float32),
                    wy.astype(np.float32),
                    _pool(spill, SS).astype(np.float32),
                )
            )
        belt = (tid == T_BELT).astype(np.float32)
        bc = _pool(belt, SS)
        bys, bxs = np.nonzero(bc > 0)
        bz = _pool(np.where(belt > 0, z, 0), SS)[bys, bxs] / bc[bys, bxs]
        return {
            "pools": pools.astype(np.float32),
            "doors": doors,
            "belt": (bys, bxs, bc[bys, bxs].astype(np.float32), bz.astype(np.float32)),
        }

    # --- the network and the routine ---

    def _network(self) -> None:
        zF, zA = self.zF, self.zA
        veh_lines = [(self.main_u[0] + 2.2, "the main aisle")] + [
            (a, f"rack aisle {k + 1}") for k, a in enumerate(self.aisles)
        ]
        ped_lines = [(sum(self.walkway) / 2, "the walkway"), (self.strip_u, "")] + [(a, "") for a in self.aisles]
        self.line_names = {self.x(u): n for u, n in veh_lines + ped_lines if n}

        def net(lines: list[float], lanes: bool) -> tuple[_Net, dict[float, tuple[int, int]], list[int]]:
            nodes: list[Pt] = []
            ends: dict[float, tuple[int, int]] = {}
            for u in lines:
                ends[self.x(u)] = (len(nodes), len(nodes) + 1)
                nodes += [(self.x(u), zF), (self.x(u), zA)]
            lane_nodes = []
            if lanes:
                for j, (a, _, b, _) in enumerate(self.lanes):
                    if j != self.closed:
                        lane_nodes.append(len(nodes))
                        nodes.append(((a + b) / 2, zA))
            edges = [e for e in ends.values()]
            for zz in (zF, zA):
                row = sorted([i for i, p in enumerate(nodes) if p[1] == zz], key=lambda i: nodes[i][0])
                edges += list(zip(row[:-1], row[1:], strict=True))
            return _Net(nodes, edges), ends, lane_nodes

        self.vnet, self.vends, lane_nodes = net([u for u, _ in veh_lines], True)
        self.pnet, self.pends, _ = net([u for u, _ in ped_lines], False)
        slots: list[_Slot] = []
        aisle_x = {self.x(a): a for a in self.aisles}
        main_x = self.x(self.main_u[0] + 2.2)
        for sx, sy, sz, h in self.rack_slots:
            # the aisle the forks come from: the vehicle line on the heading's opposite side
            back = sx - math.sin(h) * 2.0
            cands = [lx for lx in [main_x, *aisle_x] if abs(lx - back) < 1.9]
            if not cands:
                continue
            lx = cands[0]
            slots.append(_Slot(sx, sy, sz, h, _Anchor(lx, sz, self.vends[lx]), sy == 0.0))
        k = 0
        for j, (a, z0, b, _) in enumerate(self.lanes):
            if j == self.closed:
                continue
            for d, zz in enumerate((z0 + 1.1, z0 + 2.6)):
                slots.append(
                    _Slot((a + b) / 2, 0.0, zz, 0.0, _Anchor((a + b) / 2, self.zA, (lane_nodes[k],)), True, j, d)
                )
            k += 1
        self.slots = slots

    def _routine(self, rng: np.random.Generator, duration_s: float) -> None:
        start = -60.0
        dynamic = [i for i, s in enumerate(self.slots) if s.lane >= 0 or (s.y < 3.0 and rng.random() < 0.35)]
        occupant: dict[int, int] = {}
        for i in dynamic:
            if rng.random() < (0.55 if self.slots[i].lane >= 0 else 0.6):
                occupant[i] = len(self.pallets)
                self.pallets.append(_PalletLife(_load(rng), [(-math.inf, math.inf, i)]))
        self.dynamic = set(dynamic)
        self.static_stock = {
            i: _load(rng)
            for i, s in enumerate(self.slots)
            if s.lane < 0 and i not in self.dynamic and rng.random() < self.stock_fill
        }
        kinds = [FORKLIFT] + ([FORKLIFT] if rng.random() < 0.5 else []) + ([JACK] if rng.random() < 0.7 else [])
        reserved: dict[int, float] = {}
        free: list[tuple[float, int]] = []
        for v, kind in enumerate(kinds):
            a = self.slots[int(rng.integers(len(self.slots)))].approach
            paint = (
                tuple(self.colours["paint"])
                if kind is FORKLIFT and v == 0
                else _pick(rng, ((226, 180, 30), (220, 70, 40), (60, 140, 80), (200, 200, 200)))
            )
            track = _Track(start, a.x, a.z, 0.0, 0.15 if kind.lifts else 0.0)
            self.vehicles.append(_Vehicle(kind, paint, _worker(rng), track, float(rng.uniform(*kind.speed)), a))
            free.append((start + float(rng.uniform(0, 10)), v))
        while free:
            free.sort()
            t, v = free.pop(0)
            if t > duration_s + 5:
                continue
            veh = self.vehicles[v]
            ok = [
                i for i in self.dynamic if reserved.get(i, -math.inf) <= t and (self.slots[i].floor or veh.kind.lifts)
            ]

            def lane_clear(i: int, placing: bool, t: float = t) -> bool:
                s = self.slots[i]
                if s.lane < 0:
                    return True
                same = [j for j in self.dynamic if self.slots[j].lane == s.lane]
                if any(reserved.get(j, -math.inf) > t for j in same):
                    return False
                front = [j for j in same if self.slots[j].depth < s.depth]
                return all(j not in occupant for j in front)

            full = [i for i in ok if i in occupant and lane_clear(i, False)]
            empty = [i for i in ok if i not in occupant and lane_clear(i, True)]
            if not full or not empty:
                free.append((t + 5.0, v))
                continue
            a = full[int(rng.integers(len(full)))]
            cands = [i for i in empty if (self.slots[i].lane >= 0) != (self.slots[a].lane >= 0)] or empty
            b = cands[int(rng.integers(len(cands)))]
            tr = veh.track
            if t > tr.last[0]:
                tr.to(t - tr.last[0])
            here = veh.at
            p = occupant.pop(a)
            t_pick = self._go_and_handle(veh, here, self.slots[a], pick=True)
            self.pallets[p].spans[-1] = (self.pallets[p].spans[-1][0], t_pick, a)
            t_place = self._go_and_handle(veh, self.slots[a].approach, self.slots[b], pick=False)
            self.pallets[p].spans.append((t_pick, t_place, -(v + 1)))
            self.pallets[p].spans.append((t_place, math.inf, b))
            occupant[b] = p
            veh.at = self.slots[b].approach
            end = tr.last[0]
            reserved[a] = reserved[b] = end
            free.append((end + float(rng.uniform(2, 10)), v))
        self._walkers(rng, start, duration_s)

    def _go_and_handle(self, veh: _Vehicle, here: _Anchor, slot: _Slot, pick: bool) -> float:
        """Drive to the slot's approach, turn to it, set the forks, slide in, lift or set down, back out;
        the time the pallet changes hands."""
        tr = veh.track
        a = slot.approach
        path = self.vnet.route((here.x, here.z), list(here.ends), (a.x, a.z), list(a.ends))
        tr.drive(path, veh.speed)
        veh.paths.append(path)
        tr.turn(slot.heading)
        fx, fz = math.sin(slot.heading), math.cos(slot.heading)
        px, pz = slot.x - fx * veh.kind.reach, slot.z - fz * veh.kind.reach
        travel = 0.15 if veh.kind.lifts else 0.0
        if veh.kind.lifts:
            level = max(slot.y - 0.02, 0.0) if pick else slot.y + 0.1
            tr.to(abs(level - travel) / 0.5 + 0.3, lift=level)
        tr.to(math.dist((a.x, a.z), (px, pz)) / 0.8 + 0.3, x=px, z=pz)
        veh.paths.append([(a.x, a.z), (px, pz)])
        handoff = tr.last[0]
        if veh.kind.lifts:
            tr.to(1.0, lift=slot.y + 0.12 if pick else max(slot.y - 0.02, 0.0))
            handoff = tr.last[0] if not pick else handoff
        else:
            tr.to(1.0, lift=0.05 if pick else 0.0)
            handoff = tr.last[0] if not pick else handoff
        tr.to(math.dist((a.x, a.z), (px, pz)) / 0.8 + 0.3, x=a.x, z=a.z)
        if veh.kind.lifts:
            tr.to(abs(tr.last[4] - travel) / 0.5 + 0.3, lift=travel)
        return handoff

    def _walkers(self, rng: np.random.Generator, start: float, duration_s: float) -> None:
        """Packers at the benches (now and then off to a rack or the walkway) and pickers stopping at racks."""
        sx = self.x(self.strip_u)
        bench_h = _heading(-self.m, 0.0)
        # (anchor on the network, the spot stood at, heading there, act)
        benches = [(_Anchor(sx, zz, self.pends[sx]), (sx, zz), bench_h, "work") for zz in self.benches]
        faces = []
        for k, a in enumerate(self.aisles):
            ax = self.x(a)
            sides = [self.rows[k][1]] + ([self.rows[k + 1][0]] if k + 1 < len(self.rows) else [])
            for face in sides:
                off = self.m * (0.55 if face > a else -0.55)
                spot_x = self.x(face) - off
                for zz in np.arange(self.rack_z[0] + 1.0, self.rack_z[1] - 0.8, 2.7):
                    zz = float(zz) + (0.0 if face < a else 1.2)
                    faces.append(
                        (_Anchor(ax, zz, self.pends[ax]), (spot_x, zz), _heading(self.x(face) - ax, 0.0), "reach")
                    )
        wx = self.x(sum(self.walkway) / 2)
        walk_pts = [
            (_Anchor(wx, float(zz), self.pends[wx]), (wx, float(zz)), 0.0, "stand")
            for zz in np.linspace(self.zF + 1, self.zA - 1, 4)
        ]
        n_pack = int(rng.integers(1, min(3, len(benches)) + 1)) if benches else 0
        n_pick = int(rng.integers(1, 3)) if faces else 0
        order = rng.permutation(len(benches))
        for k in range(n_pack + n_pick):
            packer = k < n_pack
            home = benches[int(order[k])] if packer else faces[int(rng.integers(len(faces)))]
            here = home
            stays: list[tuple[float, float, float, float, float, str, float]] = []
            walks: list[tuple[float, float, list[Pt]]] = []
            t = start + float(rng.uniform(-20, 0))
            speed = float(rng.uniform(1.0, 1.35))
            while t < duration_s + 5:
                anchor, spot, h, act = here
                if packer and here is home:
                    stay = float(rng.uniform(15, 45))
                    others = walk_pts + faces
                    nxt = others[int(rng.integers(len(others)))]
                elif packer:
                    stay = float(rng.uniform(3, 8))
                    nxt = home
                else:
                    stay = float(rng.uniform(4, 12))
                    pool = faces if rng.random() < 0.8 else walk_pts
                    nxt = pool[int(rng.integers(len(pool)))]
                stays.append((t, t + stay, spot[0], spot[1], h, act, float(rng.uniform(0.5, 1.6))))
                t += stay
                route = self.pnet.route(
                    (anchor.x, anchor.z), list(anchor.ends), (nxt[0].x, nxt[0].z), list(nxt[0].ends)
                )
                path = [spot, *route, nxt[1]]
                path = [p for j, p in enumerate(path) if j == 0 or math.dist(p, path[j - 1]) > 1e-6]
                secs = sum(math.dist(a, b) for a, b in zip(path[:-1], path[1:], strict=True)) / speed
                if len(path) > 1:
                    walks.append((t, t + secs, path))
                    t += secs
                here = nxt
            self.walkers.append(_Walker(_worker(rng), stays, walks, float(rng.uniform(0, 6.28))))

    def _cartons(self, rng: np.random.Generator, duration_s: float) -> list[tuple[float, float, float, float, RGB]]:
        """Cartons riding the belt: (entry time, length, width, height, colour)."""
        out = []
        t = -80.0
        while t < duration_s + 1:
            out.append(
                (
                    t,
                    float(rng.uniform(0.3, 0.55)),
                    float(rng.uniform(0.25, 0.5)),
                    float(rng.uniform(0.15, 0.4)),
                    _load(rng).colour,
                )
            )
            t += float(rng.uniform(1.8, 5.0))
        return out

    # --- what moves ---

    def slot_blocks(self, t: float, static_only: bool = False) -> list[_Block]:
        out: list[_Block] = []
        if static_only:
            for i, load in getattr(self, "static_stock", {}).items():
                s = self.slots[i]
                out += _pallet(s.x, s.z, s.heading, s.y, load)
            return out
        for p in self.pallets:
            w = p.where(t)
            if w is not None and w >= 0:
                s = self.slots[w]
                out += _pallet(s.x, s.z, s.heading, s.y, p.load)
        return out

    def sprites(self, t: float) -> list[_Sprite]:
        out: list[_Sprite] = []
        key = tuple(w if (w := p.where(t)) is not None and w >= 0 else -1 for p in self.pallets)
        if self._slot_cache is None or self._slot_cache[0] != key:
            self._slot_cache = (key, _draw_thing(self.view, self.fine_iz, self.slot_blocks(t), [], []))
        if self._slot_cache[1] is not None:
            out.append(self._slot_cache[1])
        for v, veh in enumerate(self.vehicles):
            x, z, h, lift, moving = veh.track.at(t)
            blocks, caps = _vehicle(veh.kind, veh.paint, veh.driver, x, z, h, lift, t, moving)
            for p in self.pallets:
                if p.where(t) == -(v + 1):
                    f = (math.sin(h), math.cos(h))
                    blocks += _pallet(x + f[0] * veh.kind.reach, z + f[1] * veh.kind.reach, h, lift + 0.02, p.load)
            sh = [_shadow(x, z, h, 2.3 if veh.kind.lifts else 1.8, 1.15)]
            sp = _draw_thing(self.view, self.fine_iz, blocks, caps, sh)
            if sp is not None:
                out.append(sp)
        for wk in self.walkers:
            pose = wk.pose(t)
            if pose is None:
                continue
            sp = _draw_thing(
                self.view, self.fine_iz, [], _person(wk.look, pose), [_shadow(pose.x, pose.z, pose.heading, 0.3, 0.3)]
            )
            if sp is not None:
                out.append(sp)
        c0, c1 = self.conveyor[1], self.conveyor[3]
        blocks = []
        for t0, length, width, height, colour in self.cartons:
            z = c0 + 0.2 + (t - t0) * self.belt_speed
            if c0 - 0.5 < z < c1 + 0.5:
                blocks.append(
                    _Block(self.conveyor_x, z, 0.0, length, width, 0.88, 0.88 + height, colour, top=_scale(colour, 1.1))
                )
        if blocks:
            sp = _draw_thing(self.view, self.fine_iz, blocks, [], [])
            if sp is not None:
                out.append(sp)
        return out

    def positions(self, t: float) -> list[tuple[float, float]]:
        """Where the routine's vehicles and people are at time t (for checks)."""
        out = [veh.track.at(t)[:2] for veh in self.vehicles]
        for wk in self.walkers:
            pose = wk.pose(t)
            if pose is not None:
                out.append((pose.x, pose.z))
        return out

    def routes(self) -> list[list[Pt]]:
        """Every polyline the routine drives or walks, and the places it stands."""
        out = [p for veh in self.vehicles for p in veh.paths]
        for wk in self.walkers:
            out += [p for _, _, p in wk.walks]
            out += [[(x, z), (x, z)] for _, _, x, z, _, _, _ in wk.stays]
        return out


# --- things left, the lens covered ---------------------------------------------------------------


OBJECTS = ("carton", "stack of cartons", "wrapped pallet", "empty pallet", "plastic tote", "drum")


def _object_blocks(rng: np.random.Generator, name: str, x: float, z: float) -> list[_Block]:
    """An object standing on the floor at (x, z), where nothing is ever put."""
    h = float(rng.uniform(0, math.pi))
    tan = _pick(rng, ((184, 144, 96), (166, 126, 82), (198, 168, 120)))
    if name == "carton":
        L, Wd, H = float(rng.uniform(0.4, 0.65)), float(rng.uniform(0.3, 0.5)), float(rng.uniform(0.3, 0.55))
        return [_Block(x, z, h, L, Wd, 0.0, H, tan, top=_scale(tan, 1.1))]
    if name == "stack of cartons":
        out, y = [], 0.0
        for _ in range(int(rng.integers(2, 4))):
            L, H = float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.25, 0.45))
            c = _scale(tan, float(rng.uniform(0.9, 1.08)))
            out.append(
                _Block(
                    x + float(rng.uniform(-0.05, 0.05)),
                    z,
                    h + float(rng.uniform(-0.2, 0.2)),
                    L,
                    L * 0.8,
                    y,
                    y + H,
                    c,
                    top=_scale(c, 1.1),
                )
            )
            y += H
        return out
    if name == "wrapped pallet":
        colour = _pick(rng, ((196, 204, 212), (176, 186, 196), (60, 62, 70)))
        return _pallet(x, z, h, 0.0, _Load("wrapped", colour, float(rng.uniform(0.8, 1.4)), 0))
    if name == "empty pallet":
        return _pallet(x, z, h, 0.0, None) + _pallet(x, z, h, 0.14, None)
    if name == "plastic tote":
        c = _pick(rng, ((40, 90, 170), (200, 50, 40), (80, 84, 90), (230, 190, 30)))
        return [_Block(x, z, h, 0.6, 0.4, 0.0, float(rng.uniform(0.3, 0.42)), c, top=_scale(c, 0.45))]
    c = _pick(rng, ((40, 70, 150), (30, 30, 34), (170, 40, 36), (60, 120, 70)))
    return [_Block(x, z, h, 0.58, 0.58, 0.0, 0.88, c, top=_scale(c, 1.25), sides=12)]


LENS = ("tape", "a hand", "spray film")


def _lens_mask(rng: np.random.Generator, name: str, w: int, h: int, share: float) -> np.ndarray:
    """Opacity (h + 2m, w + 2m) of something on the lens, out of focus, covering about `share` of the
    frame inside the margin m (the margin lets it move a little)."""
    m = max(2, round(0.04 * w))
    W2, H2 = w + 2 * m, h + 2 * m
    side = int(rng.integers(4))  # the edge it comes from: left, right, top, bottom
    ex, ey = [(0.0, 0.5), (1.0, 0.5), (0.5, 0.0), (0.5, 1.0)][side]
    ex, ey = (ex + float(rng.uniform(-0.15, 0.15))) * W2, (ey + float(rng.uniform(-0.2, 0.2))) * H2
    toward = math.atan2(H2 / 2 - ey, W2 / 2 - ex) + float(rng.uniform(-0.5, 0.5))
    strips = [(float(rng.uniform(0.2, 0.8)), float(rng.uniform(-0.6, 0.6))) for _ in range(int(rng.integers(1, 3)))]
    blobs = [
        (float(rng.uniform(0, 1.2)), float(rng.uniform(-0.7, 0.7)), float(rng.uniform(0.5, 1.0))) for _ in range(9)
    ]

    def draw(scale: float) -> Image.Image:
        im = Image.new("L", (W2, H2), 0)
        d = ImageDraw.Draw(im)
        ca, sa = math.cos(toward), math.sin(toward)
        if name == "tape":  # strips across the lens from the edge, each `scale` pixels wide
            for along, turn in strips:
                cx, cy = ex + ca * along * W2 * 0.3, ey + sa * along * H2 * 0.3
                ang = toward + math.pi / 2 + turn
                L = 2 * (W2 + H2)
                d.line(
                    [
                        (cx - math.cos(ang) * L, cy - math.sin(ang) * L),
                        (cx + math.cos(ang) * L, cy + math.sin(ang) * L),
                    ],
                    fill=255,
                    width=max(1, int(scale)),
                )
        elif name == "a hand":  # a palm at the edge and four fingers and a thumb reaching in
            r = scale
            d.ellipse((ex - r, ey - r * 0.85, ex + r, ey + r * 0.85), fill=255)
            for j, spread in enumerate((-0.45, -0.15, 0.15, 0.42, -1.1)):
                ang = toward + spread
                length = r * (1.9 if j < 4 else 1.3) * (0.9 + 0.1 * (j % 2))
                x1, y1 = ex + math.cos(ang) * length, ey + math.sin(ang) * length
                d.line([(ex, ey), (x1, y1)], fill=255, width=max(1, int(r * 0.42)))
                d.ellipse((x1 - r * 0.21, y1 - r * 0.21, x1 + r * 0.21, y1 + r * 0.21), fill=255)
        else:  # spray film: overlapping blots around the edge
            for along, across, size in blobs:
                cx = ex + (ca * along - sa * across) * scale
                cy = ey + (sa * along + ca * across) * scale
                rr = size * scale * 0.7
                d.ellipse((cx - rr, cy - rr * 0.8, cx + rr, cy + rr * 0.8), fill=255)
        return im

    lo, hi = 1.0, float(W2 + H2)
    for _ in range(26):
        mid = (lo + hi) / 2
        got = float((np.asarray(draw(mid))[m : m + h, m : m + w] > 127).mean())
        lo, hi = (mid, hi) if got < share else (lo, mid)
    blur = {"tape": 0.01, "a hand": 0.03, "spray film": 0.05}[name] * w
    mask = np.asarray(draw((lo + hi) / 2).filter(ImageFilter.GaussianBlur(blur)), np.float32) / 255.0
    opacity = {"tape": 0.97, "a hand": 0.95, "spray film": float(rng.uniform(0.75, 0.9))}[name]
    return np.clip((mask - 0.5) * 1.6 + 0.5, 0, 1).astype(np.float32) * opacity


def _moved(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """`img` moved by (dx, dy) pixels, bilinear, edges repeated."""
    h, w = img.shape[:2]
    ix, fx = divmod(-dx, 1.0)
    iy, fy = divmod(-dy, 1.0)
    xs = np.clip(np.arange(w) + int(ix), 0, w - 1)
    xs1 = np.clip(xs + 1, 0, w - 1)
    ys = np.clip(np.arange(h) + int(iy), 0, h - 1)
    ys1 = np.clip(ys + 1, 0, h - 1)
    row = img[ys] * (1 - fy) + img[ys1] * fy
    return (row[:, xs] * (1 - fx) + row[:, xs1] * fx).astype(np.float32)


# --- one video -----------------------------------------------------------------------------------


@dataclass
class _Event:
    kind: str
    name: str
    first: int  # first anomalous frame
    stop: int  # first normal frame after it
    fps: int
    blocks: list[_Block] | None = None
    look: _Look | None = None
    walk: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)  # x0, z0, x1, z1, feet height
    speed: float = 0.3
    cover: np.ndarray | None = None
    cover_colour: RGB = (0.0, 0.0, 0.0)
    view: _View | None = None

    @property
    def start(self) -> float:
        return self.first / self.fps

    @property
    def end(self) -> float:
        return self.stop / self.fps


class WarehouseVideo:
    """One camera of the `warehouse` family: frames rendered on demand, deterministic for the seed."""

    def __init__(
        self,
        seed: int,
        *,
        duration_s: float = 120.0,
        warmup_s: float = 20.0,
        anomalies: bool = True,
        size: tuple[int, int] | None = None,
        fps: int | None = None,
    ) -> None:
        self.seed = seed
        self.width, self.height = size or WAREHOUSE_SIZE
        self.fps = fps or WAREHOUSE_FPS
        self.duration_s = duration_s
        self.warmup_s = warmup_s
        self.frames = int(round(duration_s * self.fps))
        self._base = [_STREAM, seed, WAREHOUSE_VERSION]
        self.hall = _Hall(np.random.default_rng([*self._base, 0]), self.width, self.height, duration_s)
        self._turned: dict[int, np.ndarray] = {}
        schedule = self._schedule(np.random.default_rng([*self._base, 1]))
        self.events: list[_Event] = schedule if anomalies else []
        # Nuisances are drawn against the schedule either way: without anomalies, the same video.
        rng = np.random.default_rng([*self._base, 2])
        self.crf = int(rng.integers(21, 30))
        self.noise = float(rng.uniform(1.5, 4.0))
        self.wb = rng.uniform(0.01, 0.03, 3)
        self.wb_period = float(rng.uniform(70, 150))
        self.wb_phase = rng.uniform(0, 2 * np.pi, 3)
        self.shake = float(rng.uniform(0.15, 0.4)) if rng.random() < 0.5 else 0.0
        self.rumble = float(rng.uniform(0.6, 1.6))  # shake (px) with a forklift right under the mount
        self.flicker = float(rng.uniform(0.1, 0.3))
        self.spill = float(rng.uniform(0.35, 0.6))
        self.door_ae = float(rng.uniform(0.03, 0.07))
        self.nuisances = [
            f"noise {self.noise:.1f}",
            f"crf {self.crf}",
            f"flickering lamp {self.flicker:.0%} of frames",
            f"forklift rumble {self.rumble:.1f} px",
        ]
        if self.shake:
            self.nuisances.append(f"shake {self.shake:.2f} px")

        def quiet(ts: float, margin: float = 3.0) -> bool:
            return not any(e.start - margin < ts < e.end + margin for e in schedule)

        # roller doors: each open one opens for a while at quiet moments (ramps of 4-6 s)
        self.openings: list[tuple[int, float, float, float]] = []  # door, start, end (closing starts), ramp
        doors = [j for j in range(len(self.hall.doors)) if j != self.hall.closed]
        for _ in range(200):
            if len(self.openings) >= 3 or (len(self.openings) >= 1 and rng.random() < 0.02):
                break
            j = doors[int(rng.integers(len(doors)))]
            ramp = float(rng.uniform(4, 6))
            start = float(rng.uniform(-5, max(duration_s - 20, -4.0)))
            end = start + ramp + float(rng.uniform(12, 35))
            if not all(quiet(x) for x in (start, start + ramp, end, end + ramp)):
                continue
            if any(d == j and s - 5 < end + ramp and start < e + r + 5 for d, s, e, r in self.openings):
                continue
            self.openings.append((j, start, end, ramp))
        self.openings.sort(key=lambda o: o[1])
        for j, s, e, _ in self.openings:
            self.nuisances.append(f"door {j + 1} open {s:.0f}-{e:.0f} s")
        # high-bay lights: a zone dims (motion sensors) and comes back
        self.dims: list[tuple[int, float, float, float]] = []  # zone, start, end, level
        for _ in range(60):
            if len(self.dims) >= int(rng.integers(1, 3)):
                break
            zone, start, length = (
                int(rng.integers(3)),
                float(rng.uniform(2, max(duration_s - 15, 3.0))),
                float(rng.uniform(8, 30)),
            )
            if not all(quiet(x) for x in (start, start + 1.5, start + length, start + length + 1.5)):
                continue
            if any(abs(start - s) < 10 for _, s, _, _ in self.dims):
                continue
            self.dims.append((zone, start, start + length, float(rng.uniform(0.25, 0.5))))
        for zone, s, e, lv in self.dims:
            self.nuisances.append(f"light zone {zone + 1} to {lv:.0%} {s:.0f}-{e:.0f} s")
        self.steps: list[tuple[float, float]] = []  # (time, gain change), at quiet times after the warm-up
        want = 1 + int(rng.random() < 0.5)
        moving = [x for _, s, e, r in self.openings for x in (s, s + r, e, e + r)]
        moving += [x for _, s, e, _ in self.dims for x in (s, s + 1.5, e, e + 1.5)]
        for _ in range(60):
            if len(self.steps) == want:
                break
            ts = round(float(rng.uniform(warmup_s + 2, duration_s - 2)) * self.fps) / self.fps
            if not quiet(ts) or any(abs(ts - s) < 10 for s, _ in self.steps) or any(abs(ts - x) < 2.5 for x in moving):
                continue
            if any(s - 1 < ts < e + r + 1 for _, s, e, r in self.openings):
                continue
            self.steps.append((ts, float(rng.choice([-1, 1]) * rng.uniform(0.05, 0.12))))
        self.steps.sort()
        for ts, g in self.steps:
            self.nuisances.append(f"exposure step {g:+.0%} at {ts:.1f} s")
        v = self.hall.view
        n = 40
        self.dust = (
            np.stack([v.pos[0] + rng.uniform(-7, 7, n), rng.uniform(2.5, 7.0, n), rng.uniform(4, 16, n)], axis=1),
            rng.normal(0, 0.05, (n, 3)),
            rng.uniform(8, 22, n),
            rng.uniform(0, 2 * np.pi, n),
        )

    # --- the plan ---

    def _schedule(self, rng: np.random.Generator) -> list[_Event]:
        """3 or 4 anomalies of different kinds after the warm-up, 8-14 s of normal video between them."""
        kinds = list(KINDS)
        rng.shuffle(kinds)
        n = 4 if rng.random() < 0.6 else 3
        lengths = {
            "object_left": (10, 20),
            "figure_unused_area": (8, 15),
            "lens_covered": (4, 9),
            "camera_turned": (5, 10),
        }
        first = math.ceil((self.warmup_s + rng.uniform(3, 7)) * self.fps)
        last = self.frames - math.ceil(4 * self.fps)
        events: list[_Event] = []
        for kind in kinds:
            stop = first + max(2, round(rng.uniform(*lengths[kind]) * self.fps))
            if stop > last or len(events) == n:
                break
            ev = self._event(kind, first, stop, rng)
            if ev is None:
                continue
            events.append(ev)
            first = stop + math.ceil(rng.uniform(8, 13) * self.fps)
        return events

    def _event(self, kind: str, first: int, stop: int, rng: np.random.Generator) -> _Event | None:
        hall, w, h = self.hall, self.width, self.height
        ev = _Event(kind, "", first, stop, self.fps)
        if kind == "object_left":
            W, D, _ = hall.size
            routes = hall.routes()
            people = len(routes) - sum(len(veh.paths) for veh in hall.vehicles)
            for _ in range(150):
                name = OBJECTS[int(rng.integers(len(OBJECTS)))]
                x, z = float(rng.uniform(-W / 2 + 1, W / 2 - 1)), float(rng.uniform(hall.zF - 2.5, hall.zA + 0.8))
                where = self._aisle(x, z)
                if where is None or not self._off_routes(x, z, routes, people):
                    continue
                blocks = _object_blocks(rng, name, x, z)
                share = float(rng.uniform(0.015, 0.035) if rng.random() < 0.4 else rng.uniform(0.035, 0.08))
                if not self._in_view(blocks, share):
                    continue
                ev.name, ev.blocks = f"{'an' if name[0] in 'aeiou' else 'a'} {name} {where}", blocks
                return ev
            return None
        if kind == "figure_unused_area":
            types = sorted({a.rstrip("0123456789 ") for a in hall.unused})  # the racking's rows count once
            names = [
                a
                for j in rng.permutation(len(types))
                for a in rng.permutation(sorted(n for n in hall.unused if n.startswith(types[int(j)])))
            ]
            for area in names:
                area = str(area)
                (x0, z0, x1, z1), y = hall.unused[area]
                look = _visitor(rng) if rng.random() < 0.5 else _worker(rng)
                if x1 - x0 > z1 - z0:
                    zc = (z0 + z1) / 2 + float(rng.uniform(-0.2, 0.2))
                    walk = (x0 + 0.3, zc, x1 - 0.3, zc, y)
                else:
                    xc = (x0 + x1) / 2 + float(rng.uniform(-0.15, 0.15))
                    walk = (xc, z0 + 0.3, xc, z1 - 0.3, y)
                ev.look, ev.walk, ev.speed = look, walk, float(rng.uniform(0.2, 0.45))
                ev.name = "someone " + area.rstrip("0123456789 ")
                if all(self._seen(ev, float(t)) >= 0.4 for t in np.linspace(ev.start, ev.end, 7)):
                    return ev
            return None
        if kind == "lens_covered":
            ev.name = LENS[int(rng.integers(len(LENS)))]
            ev.cover = _lens_mask(rng, ev.name, w, h, float(rng.uniform(0.25, 0.6)))
            colours: dict[str, tuple[RGB, ...]] = {
                "tape": ((24, 24, 26), (170, 172, 176), (226, 190, 30), (30, 60, 150)),
                "a hand": ((214, 176, 150), (150, 104, 76), (90, 92, 96), (230, 120, 40)),
                "spray film": ((210, 210, 206), (180, 176, 168), (120, 130, 150)),
            }
            ev.cover_colour = _pick(rng, colours[ev.name])
            return ev
        v = hall.view
        pos = (float(v.pos[0]), float(v.pos[1]), float(v.pos[2]))
        yaw = math.atan2(float(v.fwd[0]), float(v.fwd[2])) + float(rng.choice([-1, 1]) * rng.uniform(0.8, 1.6))
        pitch = math.radians(float(rng.uniform(-5, 50)))
        roll = float(rng.uniform(-0.2, 0.2))
        ev.view = _View.looking(pos, yaw, pitch, roll, 2 * math.atan(v.w / 2 / v.f), w, h)
        ev.name = "the roof" if pitch < math.radians(10) else "the side of the hall"
        return ev

    def _aisle(self, x: float, z: float) -> str | None:
        """Which aisle or walkway the floor point is in, or None where things are put or nobody goes."""
        hall = self.hall
        for r in hall.furniture + [a for a, _ in hall.unused.values()]:
            if r[0] - 0.9 < x < r[2] + 0.9 and r[1] - 0.9 < z < r[3] + 0.9:
                return None
        u = x * hall.m
        r0, r1 = hall.rack_z
        if hall.walkway[0] < u < hall.walkway[1] and hall.zF < z < hall.zA:
            return "on the walkway"
        if r0 < z < r1:
            if hall.main_u[0] < u < hall.main_u[1]:
                return "in the main aisle"
            for k, a in enumerate(hall.aisles):
                if abs(u - a) < 1.2:
                    return f"in rack aisle {k + 1}"
            return None
        if hall.zF - 2.5 < z < r0 and hall.strip_u < u:
            return "in the front cross aisle"
        if r1 < z < hall.zA + 0.8 and hall.strip_u < u:
            return "on the dock apron"
        return None

    @staticmethod
    def _off_routes(x: float, z: float, routes: list[list[Pt]], people: int = 0) -> bool:
        """Clear of every route: 1.7 m from where vehicles drive, 0.8 m from the last `people` (walks)."""
        for k, path in enumerate(routes):
            clearance = 0.8 if k >= len(routes) - people else 1.7
            for (ax, az), (bx, bz) in zip(path[:-1], path[1:], strict=True):
                dx, dz = bx - ax, bz - az
                f = min(max(((x - ax) * dx + (z - az) * dz) / max(dx * dx + dz * dz, 1e-12), 0.0), 1.0)
                if math.hypot(x - ax - f * dx, z - az - f * dz) < clearance:
                    return False
        return True

    def _in_view(self, blocks: list[_Block], share: float) -> bool:
        hall = self.hall
        sp = _draw_thing(hall.view, hall.fine_iz, blocks, [], [])
        free = _draw_thing(hall.view, np.zeros_like(hall.fine_iz), blocks, [], [])
        if sp is None or free is None:
            return False
        box = sp.box(self.width, self.height)
        if box is None or not 0.6 * share <= box[2] - box[0] <= 1.6 * share:
            return False
        if box[0] < 0.03 or box[2] > 0.97 or box[1] < 0.03 or box[3] > 0.97:
            return False
        return float((sp.alpha > 0.5).sum()) >= 0.97 * float((free.alpha > 0.5).sum())

    def _pose(self, ev: _Event, t: float) -> _Pose:
        x0, z0, x1, z1, y = ev.walk
        span = max(math.hypot(x1 - x0, z1 - z0), 1e-6)
        d = (t - ev.start) * ev.speed
        leg, f = int(d // span), (d % span) / span
        if leg % 2:
            f = 1 - f
        sign = -1.0 if leg % 2 else 1.0
        h = _heading((x1 - x0) * sign, (z1 - z0) * sign)
        return _Pose(x0 + (x1 - x0) * f, z0 + (z1 - z0) * f, h, y=y, phase=math.pi * d / 0.6, stride=0.7)

    def _figure(self, ev: _Event, t: float, behind: np.ndarray | None = None) -> _Sprite | None:
        assert ev.look is not None
        pose = self._pose(ev, t)
        hall = self.hall
        iz = hall.fine_iz if behind is None else behind
        floor = _Block(pose.x, pose.z, 0.0, 0.55, 0.55, pose.y, pose.y + 0.004, (0, 0, 0))
        return _draw_thing(hall.view, iz, [], _person(ev.look, pose), [floor])

    def _seen(self, ev: _Event, t: float) -> float:
        sp = self._figure(ev, t)
        free = self._figure(ev, t, np.zeros_like(self.hall.fine_iz))
        if sp is None or free is None:
            return 0.0
        return float((sp.alpha > 0.5).sum()) / max(float((free.alpha > 0.5).sum()), 1e-9)

    def _anomaly(self, ev: _Event, t: float) -> _Sprite | None:
        if ev.blocks is not None:
            b = ev.blocks
            return _draw_thing(
                self.hall.view, self.hall.fine_iz, b, [], [_shadow(b[0].x, b[0].z, b[0].heading, 0.9, 0.8)]
            )
        return self._figure(ev, t)

    def event_at(self, i: int) -> tuple[int, _Event] | None:
        for k, e in enumerate(self.events):
            if e.first <= i < e.stop:
                return k, e
        return None

    # --- the nuisances at time t ---

    def door_open(self, j: int, t: float) -> float:
        """How far roller door j is open (0-1) at time t."""
        out = 0.0
        for d, s, e, r in self.openings:
            if d == j:
                out = max(out, min(max((t - s) / r, 0.0), 1.0) - min(max((t - e) / r, 0.0), 1.0))
        return out

    def zone_levels(self, i: int) -> np.ndarray:
        """The light level of the three lamp zones and the flickering lamp for frame i."""
        t = i / self.fps
        lv = np.ones(4, np.float32)
        for zone, s, e, level in self.dims:
            f = min(max((t - s) / 1.5, 0.0), 1.0) - min(max((t - e) / 1.5, 0.0), 1.0)
            lv[zone] = 1 - (1 - level) * f
        r = np.random.default_rng([*self._base, 7, i]).random(2)
        if r[0] < self.flicker:
            lv[3] = 0.2 + 0.6 * r[1]
        return lv

    def gain(self, t: float) -> np.ndarray:
        """Per-channel global gain at time t: auto-exposure steps, its answer to open doors, white balance."""
        g = 1.0
        for ts, step in self.steps:
            if t >= ts - 1e-9:
                g *= 1.0 + step
        opened = min(sum(self.door_open(j, t) for j in range(len(self.hall.doors))), 1.0)
        g *= 1.0 - self.door_ae * opened
        wb = 1.0 + self.wb * np.sin(2 * np.pi * t / self.wb_period + self.wb_phase)
        return (g * wb).astype(np.float32)

    def _jitter(self, i: int) -> tuple[float, float]:
        t = i / self.fps
        v = self.hall.view
        near = 0.0
        for veh in self.hall.vehicles:
            if veh.kind is FORKLIFT:
                x, z = veh.track.at(t)[:2]
                near += math.exp(-((x - v.pos[0]) ** 2 + (z - v.pos[2] - 8) ** 2) / (2 * 6.0**2))
        sigma = self.shake + self.rumble * min(near, 1.0)
        if sigma < 0.05:
            return 0.0, 0.0
        d = np.random.default_rng([*self._base, 4, i]).normal(0, sigma, 2).clip(-3 * sigma, 3 * sigma)
        return float(d[0]), float(d[1])

    # --- truth and pictures ---

    def frame_truth(self, i: int) -> FrameTruth:
        """What frame i shows, without drawing it."""
        t = i / self.fps
        found = self.event_at(i)
        if found is None:
            return FrameTruth(i, t, False)
        k, ev = found
        box = None
        if ev.kind in BOXED:
            sp = self._anomaly(ev, t)
            raw = sp.box(self.width, self.height) if sp is not None else None
            if raw is not None:
                dx, dy = self._jitter(i)
                sx, sy = dx / self.width, dy / self.height
                x0, y0 = min(max(raw[0] + sx, 0.0), 1.0), min(max(raw[1] + sy, 0.0), 1.0)
                x1, y1 = min(max(raw[2] + sx, 0.0), 1.0), min(max(raw[3] + sy, 0.0), 1.0)
                if x1 > x0 and y1 > y0:
                    box = (round(float(x0), 5), round(float(y0), 5), round(float(x1), 5), round(float(y1), 5))
        return FrameTruth(i, t, True, ev.kind, ev.name, k, box)

    def _turned_view(self, ev: _Event) -> np.ndarray:
        if ev.first not in self._turned:
            assert ev.view is not None
            self._turned[ev.first] = self.hall.build(ev.view)[0]
        return self._turned[ev.first]

    def light_map(self, i: int) -> np.ndarray:
        """The per-pixel light multiplier of frame i: lamp zones, the flickering lamp, daylight spill."""
        t = i / self.fps
        maps = self.hall.maps
        assert maps is not None
        pools = maps["pools"]
        amb = 0.9
        lit = amb + np.tensordot(self.zone_levels(i), pools, axes=1)
        out = lit / (amb + pools.sum(axis=0))
        for j, door in enumerate(maps["doors"]):
            o = self.door_open(j, t)
            if o > 0:
                out = out * (1 + self.spill * o * door[5])
        return out.astype(np.float32)

    def render(self, i: int) -> tuple[np.ndarray, FrameTruth]:
        """Frame `i` as (H, W, 3) uint8 RGB and what it shows."""
        t = i / self.fps
        w, h = self.width, self.height
        found = self.event_at(i)
        ev = found[1] if found else None
        hall = self.hall
        if ev is not None and ev.kind == "camera_turned":
            img = self._turned_view(ev).copy()
        else:
            img = hall.image.copy()
            maps = hall.maps
            assert maps is not None
            for j, (ys, xs, cov, wx, wy, _) in enumerate(maps["doors"]):
                o = self.door_open(j, t)
                if o > 0:
                    delta = hall.door_colour(j, wx, wy, o) - hall.door_colour(j, wx, wy, 0.0)
                    img[ys, xs] += delta * cov[:, None]
            bys, bxs, bcov, bz = maps["belt"]
            img[bys, bxs] *= (1 - 0.22 * bcov * _every(bz - t * hall.belt_speed, 0.3, 0.1))[:, None]
            sprites = hall.sprites(t)
            if ev is not None and ev.kind in BOXED:
                sp = self._anomaly(ev, t)
                if sp is not None:
                    sprites.append(sp)
            for sp in sorted(sprites, key=lambda s: -s.depth):
                sp.paint(img)
            img *= self.light_map(i)[..., None]
            self._dust(img, t)
        img *= self.gain(t)
        dx, dy = self._jitter(i)
        if dx or dy:
            img = _moved(img, dx, dy)
        if ev is not None and ev.kind == "lens_covered":
            img = self._cover(img, ev, t)
        rng = np.random.default_rng([*self._base, 6, i])
        img += rng.standard_normal((h, w, 1), dtype=np.float32) * self.noise
        img += rng.standard_normal((h, w, 3), dtype=np.float32) * (self.noise * 0.4)
        return np.clip(img + 0.5, 0, 255).astype(np.uint8), self.frame_truth(i)

    def _dust(self, img: np.ndarray, t: float) -> None:
        """Motes drifting in the light: a faint dot each."""
        p0, vel, bright, ph = self.dust
        p = p0 + vel * t + 0.15 * np.sin(0.4 * t + ph)[:, None]
        v = self.hall.view
        c = v.camera(p)
        sx, sy = v.to_screen(c)
        h, w = img.shape[:2]
        for x, y, z, b in zip(sx, sy, c[:, 2], bright, strict=True):
            if z > NEAR and 0 <= x < w - 1 and 0 <= y < h - 1:
                img[int(y), int(x)] += b
                img[int(y) + 1, int(x) : int(x) + 2] += b * 0.4

    def _cover(self, img: np.ndarray, ev: _Event, t: float) -> np.ndarray:
        """Something on the lens: tape (opaque, its edges soft), a hand (moving a little, shaded), or
        spray film (a milky veil that blurs what is behind it)."""
        assert ev.cover is not None
        h, w = img.shape[:2]
        m = (ev.cover.shape[0] - h) // 2
        wob = 0.6 if ev.name == "a hand" else 0.1
        ox = int(round(m + m * wob * math.sin(1.3 * t + ev.first)))
        oy = int(round(m + m * wob * math.cos(0.9 * t + ev.first)))
        a = ev.cover[oy : oy + h, ox : ox + w][..., None]
        colour = np.asarray(ev.cover_colour, np.float32)
        if ev.name == "spray film":
            blurred = np.asarray(
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.02 * w)),
                np.float32,
            )
            veil = blurred * 0.45 + colour * 0.55
            return img * (1 - a) + veil * a
        shade = 0.8 + 0.2 * np.linspace(1, -1, h, dtype=np.float32)[:, None, None] * (0.5 if ev.name == "tape" else 1.0)
        return img * (1 - a) + colour * shade * a

    def truth(self) -> VideoTruth:
        """The ground truth of every frame, without drawing them."""
        return self._truth([self.frame_truth(i) for i in range(self.frames)])

    def _truth(self, frames: list[FrameTruth]) -> VideoTruth:
        anomalies = tuple(
            Anomaly(k, e.kind, e.name, round(e.start, 4), round(e.end, 4)) for k, e in enumerate(self.events)
        )
        return VideoTruth(
            family=WAREHOUSE,
            seed=self.seed,
            fps=self.fps,
            size=(self.width, self.height),
            duration_s=self.duration_s,
            warmup_s=self.warmup_s,
            anomalies=anomalies,
            frames=tuple(frames),
            nuisances=tuple(self.nuisances),
        )

    def write_video(self, path: str | os.PathLike[str], *, keyframe_s: float = 2.0) -> VideoTruth:
        """Encode every frame as H.264 (yuv420p, this video's crf, a keyframe every `keyframe_s`
        seconds); returns the ground truth."""
        size = (self.width, self.height)
        return self._truth(encode_h264(path, self.render, self.frames, size, self.fps, self.crf, keyframe_s))

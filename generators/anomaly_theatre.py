"""The `theatre` family: held-out camera days of a hospital operating theatre, made by code of its own.

It shares only the truth types (`Anomaly`, `FrameTruth`, `VideoTruth`), the anomaly kind names and the
H.264 writer with `generators.anomaly_families`; the rooms, people, objects, nuisances and the schedule
are drawn here a different way, so that figures reported on it were never tuned on:

- the view is ray-cast: a camera high on the wall looks down into a theatre; walls, floor, boxes and
  cylinders (operating table with a draped patient and an anaesthesia screen, surgical light heads on
  ceiling arms, an anaesthesia machine with its monitor, a back table, a Mayo tray, an IV pole, glazed
  cabinets, a wall display) are hit per pixel at twice the size and averaged down, with contact
  shadows; doors, a window into the scrub room, an outside window on some videos and floor markings
  are painted on the planes;
- staff are jointed figures in scrubs (green, teal, blue, navy, maroon), caps, masks and gloves,
  projected joint by joint and depth-tested part by part, so a surgeon behind the table leans over
  it; they stand at the table, lean over it, hand instruments from the back table, fetch from the
  cabinets, go out of the door and come back; a trolley is pushed in, parked and pushed out;
- normal, all video long: monitors with moving traces and a laparoscopy picture, monitor flicker, the
  surgical light switched or brightened, on some videos the room dimmed for a laparoscopy phase,
  daylight swinging through a window, one or two auto-exposure steps (5-12 %, they stay) after the
  warm-up, white-balance drift, sensor noise, camera shake on some, H.264;
- after the warm-up, 3 or 4 anomalies one at a time with at least 8 s of normal video between them:
  `object_left` (a cardboard box, holdall, mop bucket, bin or rucksack on the floor, some only 2-4 %
  of the width), `figure_unused_area` (someone in street clothes in the back corner, someone behind
  the anaesthesia machine), `lens_covered` (a gloved hand, gauze or a smear over 25-60 % of the view)
  and `camera_turned` (the corridor outside, seen for a while, then back).

Videos are 640x360 at 2 fps, the bench's sampling rate, so every frame is scored. Deterministic for
the seed; `anomalies=False` renders the same video without them (pixels equal outside the anomalies).

    >>> video = TheatreVideo(3)
    >>> truth = video.write_video("theatre-3.mp4")         # doctest: +SKIP
    >>> [(a.kind, a.start, a.end) for a in truth.anomalies]  # doctest: +SKIP
"""

from __future__ import annotations

import heapq
import math
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

from generators.anomaly_families import Anomaly, FrameTruth, VideoTruth, encode_h264

THEATRE = "theatre"
THEATRE_SIZE = (640, 360)
THEATRE_FPS = 2  # the bench's sampling rate: every generated frame is a scored frame
THEATRE_VERSION = 1  # bump when a change alters the pixels of any video
KINDS = ("object_left", "figure_unused_area", "lens_covered", "camera_turned")  # the bench's kind names
BOXED = ("object_left", "figure_unused_area")
_STREAM = 4817  # this family's rng namespace

RGB = tuple[float, float, float]
Rect = tuple[float, float, float, float]  # x0, z0, x1, z1 on the floor, metres
Vec = np.ndarray

_LIGHT = np.array([0.25, 1.0, -0.45]) / np.linalg.norm([0.25, 1.0, -0.45])  # the room's key light, from above


# --- small helpers -------------------------------------------------------------------------------


class _Noise:
    """Smooth value noise in [-1, 1]: a random lattice, wrapped, read with smoothstep weights."""

    def __init__(self, rng: np.random.Generator, n: int = 64) -> None:
        self.n = n
        self.table = rng.uniform(-1, 1, (n, n)).astype(np.float32)

    def at(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ia, ib = np.floor(a), np.floor(b)
        fa, fb = a - ia, b - ib
        fa, fb = fa * fa * (3 - 2 * fa), fb * fb * (3 - 2 * fb)
        i0, j0 = np.mod(ia, self.n).astype(np.int64), np.mod(ib, self.n).astype(np.int64)
        i1, j1 = (i0 + 1) % self.n, (j0 + 1) % self.n
        t = self.table
        top = t[i0, j0] * (1 - fb) + t[i0, j1] * fb
        bottom = t[i1, j0] * (1 - fb) + t[i1, j1] * fb
        return top * (1 - fa) + bottom * fa

    def fbm(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return 0.65 * self.at(a, b) + 0.35 * self.at(a * 2.3 + 17.0, b * 2.3 + 5.0)


def _within(q: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (q >= lo) & (q <= hi)


def _line(q: np.ndarray, at: float, width: float) -> np.ndarray:
    return np.abs(q - at) <= width / 2


def _periodic(q: np.ndarray, period: float, width: float, offset: float = 0.0) -> np.ndarray:
    return np.mod(q - offset, period) < width


def _down(a: np.ndarray, ss: int) -> np.ndarray:
    """Average ss x ss blocks (the first two axes)."""
    h, w = a.shape[0] // ss, a.shape[1] // ss
    return a.reshape(h, ss, w, ss, *a.shape[2:]).mean(axis=(1, 3))


def _blend(col: np.ndarray, mask: np.ndarray, colour: RGB | np.ndarray, k: float = 1.0) -> None:
    """In place: col = col * (1 - k mask) + colour * k mask, mask boolean or [0, 1] per row."""
    m = np.asarray(mask, np.float32)[:, None] * k
    col *= 1 - m
    col += m * np.asarray(colour, np.float32)


# --- the camera ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Camera:
    """A pinhole camera at `pos` (metres, y up) with basis fwd/right/up; focal length `f` in pixels."""

    pos: Vec
    fwd: Vec
    right: Vec
    up: Vec
    f: float
    w: int
    h: int

    @staticmethod
    def aim(pos: tuple[float, float, float], yaw: float, pitch: float, hfov: float, w: int, h: int) -> _Camera:
        """Looking along +z turned by `yaw` (radians, to +x) and tilted down by `pitch`."""
        fwd = np.array([math.sin(yaw) * math.cos(pitch), -math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
        right = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])
        up = np.cross(fwd, right)
        return _Camera(np.asarray(pos, float), fwd, right, up, (w / 2) / math.tan(hfov / 2), w, h)

    def project(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Screen x, y (pixels) and forward depth of world points (..., 3)."""
        d = np.asarray(p, float) - self.pos
        zc = d @ self.fwd
        zs = np.maximum(zc, 1e-3)
        return self.w / 2 + self.f * (d @ self.right) / zs, self.h / 2 - self.f * (d @ self.up) / zs, zc

    def rays(self, ss: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Directions through pixel centres of the ss-times finer grid's window [y0:y1, x0:x1]; their
        forward component is 1, so a hit's ray parameter is its forward depth."""
        a = ((np.arange(x0, x1) + 0.5) / ss - self.w / 2) / self.f
        b = -((np.arange(y0, y1) + 0.5) / ss - self.h / 2) / self.f
        d = self.fwd[None, None, :] + a[None, :, None] * self.right + b[:, None, None] * self.up
        return d.astype(np.float32)


# --- ray casting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """An axis-aligned box lo..hi, or with `radius` a vertical cylinder centred in it; how it looks."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    colour: RGB
    top: RGB | None = None
    radius: float = 0.0
    glow: bool = False
    tex: str = ""
    screen: int = -1  # a monitor: its picture is on the face towards -z

    def corners(self) -> np.ndarray:
        lo, hi = self.lo, self.hi
        return np.array([(x, y, z) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])

    def footprint_distance(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Distance on the floor from (x, z) to this shape's footprint (negative inside)."""
        cx, cz = (self.lo[0] + self.hi[0]) / 2, (self.lo[2] + self.hi[2]) / 2
        if self.radius:
            return np.hypot(x - cx, z - cz) - self.radius
        qx = np.abs(x - cx) - (self.hi[0] - self.lo[0]) / 2
        qz = np.abs(z - cz) - (self.hi[2] - self.lo[2]) / 2
        return np.hypot(np.maximum(qx, 0), np.maximum(qz, 0)) + np.minimum(np.maximum(qx, qz), 0)


def _hit(shape: _Shape, o: Vec, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray parameters (inf where missed) and unit normals of rays o + t d (d: (N, 3)) on `shape`."""
    n = np.zeros_like(d)
    if shape.radius:
        r = shape.radius
        ox = o[0] - (shape.lo[0] + shape.hi[0]) / 2
        oz = o[2] - (shape.lo[2] + shape.hi[2]) / 2
        dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
        a = dx * dx + dz * dz + 1e-12
        b = 2 * (ox * dx + oz * dz)
        disc = b * b - 4 * a * (ox * ox + oz * oz - r * r)
        ts = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
        ys = o[1] + ts * dy
        side = (disc >= 0) & (ts > 0) & (ys >= shape.lo[1]) & (ys <= shape.hi[1])
        t = np.where(side, ts, np.inf)
        n[:, 0] = (ox + ts * dx) / r
        n[:, 2] = (oz + ts * dz) / r
        safe = np.where(np.abs(dy) < 1e-9, 1e-9, dy)
        for y, sign in ((shape.hi[1], 1.0), (shape.lo[1], -1.0)):
            tc = (y - o[1]) / safe
            cap = (tc > 0) & ((ox + tc * dx) ** 2 + (oz + tc * dz) ** 2 <= r * r) & (tc < t)
            t = np.where(cap, tc, t)
            n[cap] = (0.0, sign, 0.0)
        return t, n
    safe = np.where(np.abs(d) < 1e-9, 1e-9, d)
    t1 = (np.asarray(shape.lo) - o) / safe
    t2 = (np.asarray(shape.hi) - o) / safe
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    t_near, t_far = near.max(axis=1), far.min(axis=1)
    ok = (t_far >= t_near) & (t_near > 0)
    axis = near.argmax(axis=1)
    rows = np.arange(len(d))
    n[rows, axis] = -np.sign(safe[rows, axis])
    return np.where(ok, t_near, np.inf), n


def _window(cam: _Camera, shapes: list[_Shape], ss: int) -> tuple[int, int, int, int] | None:
    """The ss-fine pixel window that holds the shapes' projections (the whole frame when one is behind)."""
    pts = np.concatenate([s.corners() for s in shapes])
    sx, sy, zc = cam.project(pts)
    W, H = cam.w * ss, cam.h * ss
    if (zc < 0.05).any():
        return 0, 0, W, H
    x0, x1 = max(int(math.floor(sx.min() * ss)) - 2, 0), min(int(math.ceil(sx.max() * ss)) + 2, W)
    y0, y1 = max(int(math.floor(sy.min() * ss)) - 2, 0), min(int(math.ceil(sy.max() * ss)) + 2, H)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _shade(shapes: list[_Shape], ids: np.ndarray, n: np.ndarray, p: np.ndarray, noise: _Noise) -> np.ndarray:
    """Colours (N, 3) of hits on shapes: face colour, key-light shading, texture."""
    col = np.zeros((len(ids), 3), np.float32)
    for k in np.unique(ids):
        sel = ids == k
        s = shapes[int(k)]
        nk, pk = n[sel], p[sel]
        c = np.tile(np.asarray(s.colour, np.float32), (len(nk), 1))
        if s.top is not None:
            _blend(c, nk[:, 1] > 0.5, s.top)
        if s.tex:
            _texture(s, c, nk, pk, noise)
        if not s.glow:
            c *= (0.6 + 0.45 * np.clip(nk @ _LIGHT, 0, 1))[:, None]
        col[sel] = c
    return col


def _texture(s: _Shape, c: np.ndarray, n: np.ndarray, p: np.ndarray, noise: _Noise) -> None:
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    if s.tex == "drape":  # soft folds
        c *= (1 + 0.07 * noise.fbm(x * 5 + 3, z * 5 + 7) + 0.04 * noise.at(y * 9, x * 9 + z * 9))[:, None]
    elif s.tex == "steel":  # brushed, with a bright edge
        c *= (1 + 0.07 * noise.at(x * 40 + z * 40, y * 2))[:, None]
    elif s.tex == "glass":  # glazed cabinet fronts: door frames, shelves and stock behind the glass
        along = np.where(np.abs(n[:, 0]) > 0.5, z, x)
        front = np.abs(n[:, 1]) < 0.5
        frame = (_periodic(along, 0.6, 0.04) | _periodic(y, 1.05, 0.04, 0.02)) & front
        shelf = _periodic(y, 0.35, 0.025, 0.05) & front & ~frame
        cell = np.floor(along / 0.13) * 7 + np.floor(y / 0.35) * 13
        stock = (np.sin(cell * 12.9898) * 43758.5453) % 1.0
        box = front & ~frame & ~shelf & (np.mod(y, 0.35) < 0.2) & (stock > 0.35)
        tint = np.stack([150 + 90 * stock, 160 + 60 * (1 - stock), 170 + 50 * np.sin(cell)], axis=1)
        _blend(c, front & ~frame, (120, 140, 150), 0.55)
        _blend(c, box, tint, 0.8)
        _blend(c, shelf, (210, 214, 216))
    elif s.tex == "machine":  # the anaesthesia machine's front: a dark panel, dials, vaporisers
        face = n[:, 2] < -0.5
        panel = face & _within(y, 0.75, 1.25) & _within(x, s.lo[0] + 0.06, s.hi[0] - 0.06)
        _blend(c, panel, (52, 58, 64))
        dial = panel & (np.hypot(np.mod(x - s.lo[0], 0.12) - 0.06, y - 1.1) < 0.03)
        _blend(c, dial, (210, 210, 200))
        vap = face & _within(y, 0.5, 0.7) & _periodic(x - s.lo[0], 0.2, 0.09, 0.05)
        _blend(c, vap, (70, 150, 200))
        drawer = face & (_line(y, 0.35, 0.012) | _line(y, 0.15, 0.012))
        _blend(c, drawer, (90, 94, 98))
    elif s.tex == "tape":  # a cardboard box: tape along the top, a printed label
        cx = (s.lo[0] + s.hi[0]) / 2
        _blend(c, (n[:, 1] > 0.5) & _line(x, cx, 0.05), (200, 180, 130))
        _blend(c, (n[:, 2] < -0.5) & _within(y, s.hi[1] * 0.45, s.hi[1] * 0.7) & _line(x, cx, 0.1), (40, 40, 44))
    elif s.tex == "zip":  # a bag: seams and a zip
        _blend(c, _line(y, s.hi[1] * 0.8, 0.015) | _line(y, s.hi[1] * 0.25, 0.01), (30, 30, 32), 0.7)
    elif s.tex == "bed":  # a white mattress with a blue blanket over its far two thirds
        length = s.hi[2] - s.lo[2]
        _blend(c, z > s.lo[2] + length * 0.35, (96, 140, 196))
        _blend(c, z > s.hi[2] - 0.35, (236, 236, 232))


# --- scenes: a static picture, its depth and its screens ----------------------------------------


@dataclass
class _Screens:
    """Monitor pixels at the frame's size: coverage and face coordinates, per screen."""

    kind: list[str]
    ys: list[np.ndarray]
    xs: list[np.ndarray]
    cov: list[np.ndarray]
    u: list[np.ndarray]
    v: list[np.ndarray]


class _Scene:
    """A room (the box `lo..hi`, seen from inside) with shapes, ray-cast once at twice the size."""

    ss = 2

    def __init__(self, cam: _Camera, lo: tuple, hi: tuple, shapes: list[_Shape], noise: _Noise) -> None:
        self.cam, self.lo, self.hi, self.shapes, self.noise = cam, lo, hi, shapes, noise

    def surface(self, plane: int, p: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def build(self, screen_kinds: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, _Screens]:
        """The picture (h, w, 3), forward depth (h, w), hit points at the fine size and the screens."""
        cam, ss = self.cam, self.ss
        W, H = cam.w * ss, cam.h * ss
        dirs = cam.rays(ss, 0, 0, W, H)
        o = cam.pos
        lo, hi = np.asarray(self.lo), np.asarray(self.hi)
        safe = np.where(np.abs(dirs) < 1e-9, 1e-9, dirs)
        exits = np.where(safe > 0, (hi - o) / safe, (lo - o) / safe)
        axis = exits.argmin(axis=2)
        t = exits.min(axis=2).astype(np.float32)
        plane = axis * 2 + (np.take_along_axis(safe, axis[..., None], 2)[..., 0] > 0)
        n = np.zeros((H, W, 3), np.float32)
        ids = np.full((H, W), -1, np.int64)
        _cast_window(cam, self.shapes, dirs, t, n, ids, (0, 0), ss)
        p = o + dirs * t[..., None]
        col = np.zeros((H, W, 3), np.float32)
        room = ids < 0
        for k in range(6):
            sel = room & (plane == k)
            if sel.any():
                col[sel] = self.surface(k, p[sel])
        col[~room] = _shade(self.shapes, ids[~room], n[~room], p[~room], self.noise)
        floor = room & (plane == 2)
        fx, fz = p[..., 0][floor], p[..., 2][floor]
        dark = np.ones(len(fx), np.float32)
        for s in self.shapes:
            if s.lo[1] < 0.15:
                d = s.footprint_distance(fx, fz)
                dark *= 1 - 0.45 * np.exp(-np.maximum(d, 0) / 0.12) * (d < 0.5)
        col[floor] *= dark[:, None]
        scr = _Screens([], [], [], [], [], [])
        for k, s in enumerate(self.shapes):
            if s.screen < 0:
                continue
            mx = 0.06 * (s.hi[0] - s.lo[0])
            my = 0.08 * (s.hi[1] - s.lo[1])
            on = (ids == k) & (n[..., 2] < -0.5)
            on &= _within(p[..., 0], s.lo[0] + mx, s.hi[0] - mx) & _within(p[..., 1], s.lo[1] + my, s.hi[1] - my)
            if not on.any():
                continue
            cov = _down(on.astype(np.float32), ss)
            u = _down(np.where(on, (p[..., 0] - s.lo[0] - mx) / (s.hi[0] - s.lo[0] - 2 * mx), 0), ss)
            v = _down(np.where(on, (s.hi[1] - my - p[..., 1]) / (s.hi[1] - s.lo[1] - 2 * my), 0), ss)
            ys, xs = np.nonzero(cov > 0)
            c = cov[ys, xs]
            scr.kind.append(screen_kinds[s.screen])
            scr.ys.append(ys)
            scr.xs.append(xs)
            scr.cov.append(c.astype(np.float32))
            scr.u.append((u[ys, xs] / c).astype(np.float32))
            scr.v.append((v[ys, xs] / c).astype(np.float32))
        image = _down(col, ss).astype(np.float32)
        depth = t.reshape(cam.h, ss, cam.w, ss).min(axis=(1, 3)).astype(np.float32)
        return image, depth, p, scr


def _cast_window(
    cam: _Camera,
    shapes: list[_Shape],
    dirs: np.ndarray,
    t: np.ndarray,
    n: np.ndarray,
    ids: np.ndarray,
    origin: tuple[int, int],
    ss: int,
) -> None:
    """In place over a fine window whose top-left fine pixel is `origin`: nearest hits of `shapes`,
    each cast only over the pixels it projects to."""
    hh, ww = t.shape
    for k, shape in enumerate(shapes):
        box = _window(cam, [shape], ss)
        if box is None:
            continue
        x0, y0 = max(box[0] - origin[0], 0), max(box[1] - origin[1], 0)
        x1, y1 = min(box[2] - origin[0], ww), min(box[3] - origin[1], hh)
        if x1 <= x0 or y1 <= y0:
            continue
        th, nh = _hit(shape, cam.pos, dirs[y0:y1, x0:x1].reshape(-1, 3))
        tv, nv, iv = t[y0:y1, x0:x1], n[y0:y1, x0:x1], ids[y0:y1, x0:x1]
        closer = (th < tv.reshape(-1)).reshape(tv.shape)
        if not closer.any():
            continue
        tv[closer] = th.reshape(tv.shape)[closer]
        nv[closer] = nh.reshape(*tv.shape, 3)[closer]
        iv[closer] = k


# --- things drawn over a scene -------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """A drawn thing, already depth-tested against the static scene: premultiplied RGB and alpha over a
    frame window; `depth` orders things among themselves."""

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

    def over(self, img: np.ndarray) -> None:
        hh, ww = self.alpha.shape
        sl = (slice(self.y0, self.y0 + hh), slice(self.x0, self.x0 + ww))
        img[sl] = img[sl] * (1 - self.alpha[..., None]) + self.prem


def _floor_shadow(
    cam: _Camera, depth: np.ndarray, x0: int, y0: int, x1: int, y1: int, reach: list[tuple[_Shape, float]]
) -> np.ndarray:
    """Alpha (y1-y0, x1-x0) of soft contact shadows on the floor around footprints: (shape, strength)."""
    d = cam.rays(1, x0, y0, x1, y1)
    dy = np.minimum(d[..., 1], -1e-6)
    tf = -cam.pos[1] / dy
    on_floor = (d[..., 1] < 0) & (np.abs(tf - depth[y0:y1, x0:x1]) < 0.03 * tf + 0.02)
    fx, fz = cam.pos[0] + tf * d[..., 0], cam.pos[2] + tf * d[..., 2]
    a = np.zeros(tf.shape, np.float32)
    for s, strength in reach:
        dist = s.footprint_distance(fx, fz)
        a = np.maximum(a, strength * np.exp(-np.maximum(dist, 0) / 0.1) * (dist < 0.4))
    return a * on_floor


def _shapes_item(cam: _Camera, depth: np.ndarray, shapes: list[_Shape], noise: _Noise, ss: int = 2) -> _Item | None:
    """Shapes ray-cast over their window at `ss` times the size, hidden where the scene is nearer,
    with contact shadows on the floor."""
    win = _window(cam, shapes, 1)
    if win is None:
        return None
    x0, y0, x1, y1 = win
    hh, ww = y1 - y0, x1 - x0
    dirs = cam.rays(ss, x0 * ss, y0 * ss, x1 * ss, y1 * ss)
    t = np.full((hh * ss, ww * ss), np.inf, np.float32)
    n = np.zeros((hh * ss, ww * ss, 3), np.float32)
    ids = np.full((hh * ss, ww * ss), -1, np.int64)
    _cast_window(cam, shapes, dirs, t, n, ids, (x0 * ss, y0 * ss), ss)
    scene = np.repeat(np.repeat(depth[y0:y1, x0:x1], ss, 0), ss, 1)
    seen = np.isfinite(t) & (t < scene - 0.02)
    col = np.zeros((*t.shape, 3), np.float32)
    if seen.any():
        p = cam.pos + dirs[seen] * t[seen][:, None]
        col[seen] = _shade(shapes, ids[seen], n[seen], p, noise)
    alpha = _down(seen.astype(np.float32), ss)
    prem = _down(col, ss)
    grounded = [(s, 0.45) for s in shapes if s.lo[1] < 0.1]
    if grounded:
        sh = _floor_shadow(cam, depth, x0, y0, x1, y1, grounded) * (1 - alpha)
        alpha = alpha + sh
    if not (alpha > 0.02).any():
        return None
    pts = np.concatenate([s.corners() for s in shapes])
    return _Item(float(cam.project(pts)[2].min()), prem.astype(np.float32), alpha.astype(np.float32), x0, y0)


# --- people --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Look:
    """How one person looks (metres and RGB)."""

    height: float
    top: RGB
    legs: RGB
    skin: RGB
    hair: RGB
    shoes: RGB
    cap: RGB | None
    mask: RGB | None
    gloves: RGB | None
    street: bool  # street clothes: a jacket with long sleeves, no cap, mask or gloves


SCRUBS: tuple[RGB, ...] = (
    (72, 124, 100),
    (60, 128, 124),
    (64, 104, 156),
    (104, 146, 186),
    (42, 58, 98),
    (112, 40, 54),
    (92, 36, 60),
)
CAPS: tuple[RGB, ...] = ((196, 80, 130), (230, 176, 60), (70, 150, 90), (236, 236, 232), (120, 160, 210))
MASKS: tuple[RGB, ...] = ((150, 188, 222), (226, 230, 234), (120, 170, 200))
GLOVES: tuple[RGB, ...] = ((214, 196, 160), (92, 132, 204), (236, 232, 222))
SHOES: tuple[RGB, ...] = ((236, 236, 232), (40, 40, 44), (70, 110, 170), (214, 80, 120))
SKIN: tuple[RGB, ...] = ((230, 196, 168), (204, 158, 124), (158, 112, 80), (100, 70, 50))
HAIR: tuple[RGB, ...] = ((34, 28, 24), (86, 58, 38), (160, 128, 86), (176, 174, 170))
JACKETS: tuple[RGB, ...] = ((40, 44, 52), (150, 40, 40), (196, 160, 60), (60, 90, 60), (200, 200, 196), (40, 70, 130))
JEANS: tuple[RGB, ...] = ((46, 58, 86), (30, 30, 34), (110, 96, 80), (64, 72, 90))


def _pick(rng: np.random.Generator, options: tuple[RGB, ...]) -> RGB:
    return options[int(rng.integers(len(options)))]


def _staff_look(rng: np.random.Generator, scrubbed: bool) -> _Look:
    top = _pick(rng, SCRUBS)
    return _Look(
        height=float(rng.uniform(1.6, 1.9)),
        top=top,
        legs=top if rng.random() < 0.85 else _pick(rng, SCRUBS),
        skin=_pick(rng, SKIN),
        hair=_pick(rng, HAIR),
        shoes=_pick(rng, SHOES),
        cap=top if rng.random() < 0.35 else _pick(rng, CAPS),
        mask=_pick(rng, MASKS) if scrubbed or rng.random() < 0.7 else None,
        gloves=_pick(rng, GLOVES) if scrubbed else None,
        street=False,
    )


def _street_look(rng: np.random.Generator) -> _Look:
    return _Look(
        height=float(rng.uniform(1.6, 1.9)),
        top=_pick(rng, JACKETS),
        legs=_pick(rng, JEANS),
        skin=_pick(rng, SKIN),
        hair=_pick(rng, HAIR),
        shoes=_pick(rng, ((40, 40, 44), (120, 80, 50), (220, 220, 216))),
        cap=None,
        mask=None,
        gloves=None,
        street=True,
    )


@dataclass(frozen=True)
class _Pose:
    """Where a person stands and what they do: facing (fx, fz), gait phase and stride (0 when still),
    lean over (0-1), hands at work near `hands` (work 0-1), one hand reaching to `give` (reach 0-1)."""

    x: float
    z: float
    fx: float
    fz: float
    phase: float = 0.0
    stride: float = 0.0
    lean: float = 0.0
    work: float = 0.0
    hands: tuple[float, float, float] = (0.0, 1.0, 0.0)
    reach: float = 0.0
    give: tuple[float, float, float] = (0.0, 1.0, 0.0)


def _figure(cam: _Camera, depth: np.ndarray, look: _Look, pose: _Pose) -> _Item | None:
    """A person as capsules and spheres between projected joints, each part depth-tested on its own."""
    k = look.height / 1.75
    Y = np.array([0.0, 1.0, 0.0])
    P = np.array([pose.x, 0.0, pose.z])
    F = np.array([pose.fx, 0.0, pose.fz])
    S = np.array([pose.fz, 0.0, -pose.fx])
    bend = pose.lean * 0.8
    hip = P + Y * 0.92 * k - F * 0.07 * pose.lean
    spine = Y * math.cos(bend) + F * math.sin(bend)
    shoulder = hip + spine * 0.48 * k
    head = shoulder + spine * 0.19 * k + Y * 0.035 * k
    swing = 0.24 * k * math.sin(pose.phase) * pose.stride
    parts: list[tuple[Vec, Vec, float, RGB]] = []
    for s in (-1, 1):
        foot = P + S * s * 0.1 * k + F * s * swing + Y * 0.05
        parts.append((hip + S * s * 0.09 * k, foot + Y * 0.04, 0.078 * k, look.legs))
        parts.append((foot - F * 0.04, foot + F * 0.11, 0.045 * k, look.shoes))
    low = hip - Y * (0.12 * k if look.street else -0.04 * k)
    parts.append((low, shoulder - spine * 0.06 * k, (0.165 if look.street else 0.155) * k, look.top))
    parts.append((shoulder - S * 0.14 * k, shoulder + S * 0.14 * k, 0.075 * k, look.top))
    parts.append((shoulder, head - spine * 0.07 * k, 0.045 * k, look.skin))
    hands = np.asarray(pose.hands)
    for s in (-1, 1):
        sh = shoulder + S * s * 0.17 * k - spine * 0.03 * k
        rest = sh - Y * 0.56 * k - F * s * swing * 0.7 + S * s * 0.04 * k
        hand = rest * (1 - pose.work) + (hands + S * s * 0.12) * pose.work
        if s == 1 and pose.reach > 0:
            hand = hand * (1 - pose.reach) + np.asarray(pose.give) * pose.reach
        arm = hand - sh
        length = float(np.linalg.norm(arm))
        if length > 0.62 * k:
            hand = sh + arm * (0.62 * k / length)
        elbow = (sh + hand) / 2 - Y * 0.07 * k + S * s * 0.05 * k
        if look.street:
            parts.append((sh, elbow, 0.062 * k, look.top))
            parts.append((elbow, hand, 0.052 * k, look.top))
        else:
            cuff = sh + (elbow - sh) * 0.55
            parts.append((sh, cuff, 0.064 * k, look.top))
            parts.append((cuff, elbow, 0.045 * k, look.skin))
            forearm = look.gloves if look.gloves is not None else look.skin
            wrist = elbow + (hand - elbow) * 0.55
            parts.append((elbow, wrist, 0.042 * k, look.skin))
            parts.append((wrist, hand, 0.042 * k, forearm))
        parts.append((hand, hand, 0.05 * k, look.gloves if look.gloves is not None else look.skin))
    parts.append((head, head, 0.1 * k, look.skin))
    top_of_head = head + Y * 0.035 * k - F * 0.015 * k
    parts.append((top_of_head, top_of_head, 0.103 * k, look.cap if look.cap is not None else look.hair))
    face = head + F * 0.045 * k - Y * 0.012 * k
    parts.append((face, face, 0.074 * k, look.skin))
    if look.mask is not None:
        m = head + F * 0.068 * k - Y * 0.05 * k
        parts.append((m, m, 0.058 * k, look.mask))
    pts = np.array([q for part in parts for q in part[:2]])
    sx, sy, zc = cam.project(pts)
    if (zc < 0.3).any():
        return None
    rad = np.repeat([part[2] for part in parts], 2) * cam.f / zc
    w, h = cam.w, cam.h
    x0, x1 = max(int(math.floor((sx - rad).min())) - 1, 0), min(int(math.ceil((sx + rad).max())) + 2, w)
    y0, y1 = max(int(math.floor((sy - rad).min())) - 1, 0), min(int(math.ceil((sy + rad).max())) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return None
    hh, ww = y1 - y0, x1 - x0
    prem = np.zeros((hh, ww, 3), np.float32)
    alpha = np.zeros((hh, ww), np.float32)
    fx, fz = pose.x, pose.z
    shadow = _Shape((fx - 0.2, 0.0, fz - 0.2), (fx + 0.2, 0.01, fz + 0.2), (0, 0, 0), radius=0.2)
    alpha[:] = _floor_shadow(cam, depth, x0, y0, x1, y1, [(shadow, 0.3)])
    scene = depth[y0:y1, x0:x1]
    mean_z = (zc[0::2] + zc[1::2]) / 2
    for j in np.argsort(-mean_z, kind="stable"):
        ax, ay, az, bx, by, bz = sx[2 * j], sy[2 * j], zc[2 * j], sx[2 * j + 1], sy[2 * j + 1], zc[2 * j + 1]
        r = parts[j][2] * cam.f / mean_z[j]
        u0, u1 = max(int(min(ax, bx) - r) - 1 - x0, 0), min(int(max(ax, bx) + r) + 2 - x0, ww)
        v0, v1 = max(int(min(ay, by) - r) - 1 - y0, 0), min(int(max(ay, by) + r) + 2 - y0, hh)
        if u1 <= u0 or v1 <= v0:
            continue
        py, px = np.mgrid[v0:v1, u0:u1].astype(np.float32)
        px += x0 + 0.5
        py += y0 + 0.5
        dx, dy = bx - ax, by - ay
        L2 = dx * dx + dy * dy
        f = np.clip(((px - ax) * dx + (py - ay) * dy) / L2, 0, 1) if L2 > 1e-6 else np.zeros_like(px)
        dist = np.hypot(px - ax - f * dx, py - ay - f * dy)
        cov = np.clip(r - dist + 0.5, 0, 1)
        zz = az + f * (bz - az) - parts[j][2] * 0.5
        cov *= scene[v0:v1, u0:u1] > zz - 0.05
        if not cov.any():
            continue
        shade = 0.72 + 0.34 * np.sqrt(np.clip(1 - (dist / max(r, 0.6)) ** 2, 0, 1))
        colour = np.asarray(parts[j][3], np.float32)
        pv, av = prem[v0:v1, u0:u1], alpha[v0:v1, u0:u1]
        pv[:] = pv * (1 - cov[..., None]) + (shade * cov)[..., None] * colour
        av[:] = av * (1 - cov) + cov
    if not (alpha > 0.05).any():
        return None
    return _Item(float(cam.project(P)[2]), prem, alpha, x0, y0)


# --- objects -------------------------------------------------------------------------------------


OBJECTS = ("cardboard box", "holdall", "mop bucket", "bin", "rucksack")
_OBJECT_WIDTH = {"cardboard box": (0.3, 0.55), "holdall": (0.45, 0.65), "mop bucket": (0.36, 0.44), "bin": (0.3, 0.4)}
_OBJECT_WIDTH["rucksack"] = (0.28, 0.36)


def _object_shapes(rng: np.random.Generator, shape: str, width: float, x: float, z: float) -> list[_Shape]:
    """An unattended object standing on the floor at (x, z), `width` metres across."""
    s = width / 2
    if shape == "cardboard box":
        col = _pick(rng, ((176, 136, 88), (156, 118, 74), (190, 160, 110)))
        hgt = width * float(rng.uniform(0.6, 1.0))
        return [_Shape((x - s, 0.0, z - s * 0.8), (x + s, hgt, z + s * 0.8), col, tex="tape")]
    if shape == "holdall":
        col = _pick(rng, ((30, 36, 70), (24, 24, 26), (160, 30, 40), (90, 110, 60)))
        hgt = width * 0.5
        dark = tuple(c * 0.6 for c in col)
        return [
            _Shape((x - s, 0.0, z - 0.16), (x + s, hgt, z + 0.16), col, tex="zip"),
            _Shape((x - s * 0.4, hgt, z - 0.02), (x + s * 0.4, hgt + 0.05, z + 0.02), dark),  # type: ignore[arg-type]
        ]
    if shape == "mop bucket":
        yellow = (230, 190, 30)
        return [
            _Shape((x - s, 0.0, z - s * 0.75), (x + s, 0.32, z + s * 0.75), yellow, top=(70, 80, 90)),
            _Shape((x - s * 0.4, 0.32, z - s * 0.7), (x + s * 0.2, 0.48, z + s * 0.7), (60, 60, 64)),
            _Shape((x + s * 0.5, 0.0, z - 0.02), (x + s * 0.6, 1.25, z + 0.02), (60, 110, 190), radius=0.018),
        ]
    if shape == "bin":
        col = _pick(rng, ((170, 30, 36), (30, 30, 34), (40, 80, 160), (60, 130, 70)))
        hgt = width * float(rng.uniform(1.4, 1.8))
        lid = tuple(c * 0.7 for c in col)
        return [
            _Shape((x - s, 0.0, z - s), (x + s, hgt, z + s), col, radius=s),
            _Shape((x - s * 1.03, hgt, z - s * 1.03), (x + s * 1.03, hgt + 0.03, z + s * 1.03), lid, radius=s * 1.03),  # type: ignore[arg-type]
        ]
    col = _pick(rng, ((216, 120, 30), (200, 40, 60), (40, 150, 160), (50, 50, 56), (100, 60, 140)))
    hgt = width * 1.5
    pocket = tuple(c * 0.75 for c in col)
    return [
        _Shape((x - s, 0.0, z - 0.11), (x + s, hgt, z + 0.11), col, tex="zip"),
        _Shape((x - s * 0.7, 0.05, z - 0.17), (x + s * 0.7, hgt * 0.45, z - 0.1), pocket),  # type: ignore[arg-type]
    ]


def _trolley_shapes(x: float, z: float, along_x: bool, drape: RGB) -> list[_Shape]:
    """An instrument trolley: castors, a frame, a lower shelf and a draped top with trays."""
    hx, hz = (0.45, 0.28) if along_x else (0.28, 0.45)
    out = []
    for sx in (-1, 1):
        for sz in (-1, 1):
            cx, cz = x + sx * (hx - 0.05), z + sz * (hz - 0.05)
            out.append(_Shape((cx - 0.04, 0.0, cz - 0.04), (cx + 0.04, 0.08, cz + 0.04), (40, 40, 44), radius=0.04))
            out.append(
                _Shape((cx - 0.015, 0.08, cz - 0.015), (cx + 0.015, 0.85, cz + 0.015), (176, 180, 186), tex="steel")
            )
    out.append(_Shape((x - hx, 0.3, z - hz), (x + hx, 0.33, z + hz), (170, 174, 180), tex="steel"))
    out.append(_Shape((x - hx - 0.02, 0.78, z - hz - 0.02), (x + hx + 0.02, 0.88, z + hz + 0.02), drape, tex="drape"))
    for k in (-1, 1):
        tx, tz = (x + k * hx * 0.45, z) if along_x else (x, z + k * hz * 0.45)
        out.append(_Shape((tx - 0.15, 0.88, tz - 0.1), (tx + 0.15, 0.92, tz + 0.1), (190, 194, 200), tex="steel"))
    return out


# --- routing on the floor ------------------------------------------------------------------------


class _Floor:
    """Shortest walks between points around rectangular obstacles (a visibility graph on grown corners)."""

    def __init__(self, bounds: Rect, obstacles: list[Rect], clearance: float) -> None:
        self.bounds, self.obstacles, self.c = bounds, obstacles, clearance
        grown = [
            (a - clearance - 0.06, b - clearance - 0.06, c + clearance + 0.06, d + clearance + 0.06)
            for a, b, c, d in obstacles
        ]
        self.nodes = [
            (x, z)
            for r in grown
            for x, z in ((r[0], r[1]), (r[2], r[1]), (r[2], r[3]), (r[0], r[3]))
            if self.free(x, z)
        ]

    def free(self, x: float | np.ndarray, z: float | np.ndarray) -> np.ndarray:
        b, c = self.bounds, self.c
        ok: np.ndarray = np.asarray((x > b[0] + c) & (x < b[2] - c) & (z > b[1] + c) & (z < b[3] - c))
        for r in self.obstacles:
            ok = ok & ~((x > r[0] - c) & (x < r[2] + c) & (z > r[1] - c) & (z < r[3] + c))
        return np.asarray(ok)

    def clear(self, a: tuple[float, float], b: tuple[float, float]) -> bool:
        n = max(2, int(math.hypot(b[0] - a[0], b[1] - a[1]) / 0.05) + 1)
        f = np.linspace(0, 1, n)
        return bool(self.free(a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f).all())

    def route(self, a: tuple[float, float], b: tuple[float, float]) -> np.ndarray | None:
        """Waypoints (k, 2) of the shortest clear walk from a to b, or None."""
        if self.clear(a, b):
            return np.array([a, b])
        pts = [a, b, *self.nodes]
        best = {0: 0.0}
        prev: dict[int, int] = {}
        heap = [(0.0, 0)]
        done: set[int] = set()
        while heap:
            d, i = heapq.heappop(heap)
            if i in done:
                continue
            done.add(i)
            if i == 1:
                break
            for j in range(1, len(pts)):
                if j in done:
                    continue
                nd = d + math.hypot(pts[j][0] - pts[i][0], pts[j][1] - pts[i][1])
                if nd < best.get(j, math.inf) and self.clear(pts[i], pts[j]):
                    best[j] = nd
                    prev[j] = i
                    heapq.heappush(heap, (nd, j))
        if 1 not in prev:
            return None
        path, i = [1], 1
        while i != 0:
            i = prev[i]
            path.append(i)
        return np.array([pts[i] for i in reversed(path)])


@dataclass(frozen=True)
class _Station:
    """A place someone works: where they stand, which way they face, what they do, where their hands are."""

    x: float
    z: float
    fx: float
    fz: float
    act: str  # lean, hand, stand, reach
    hands: tuple[float, float, float]
    give: tuple[float, float, float] = (0.0, 1.0, 0.0)


@dataclass
class _Leg:
    """A stretch of someone's time: a walk along `path`, or a stay at `station` (path of one point), or
    away through the door (not drawn)."""

    t0: float
    t1: float
    path: np.ndarray
    station: _Station | None = None
    away: bool = False
    cum: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(self.path, axis=0).T))])

    def at(self, t: float) -> tuple[float, float, float, float, float]:
        """(x, z, dx, dz, distance walked) at time t of a walk."""
        total = float(self.cum[-1])
        d = min(max((t - self.t0) / max(self.t1 - self.t0, 1e-9) * total, 0.0), total)
        k = min(int(np.searchsorted(self.cum, d, side="right")) - 1, len(self.path) - 2)
        a, b = self.path[k], self.path[k + 1]
        f = (d - self.cum[k]) / max(float(self.cum[k + 1] - self.cum[k]), 1e-9)
        p = a + (b - a) * f
        return float(p[0]), float(p[1]), float(b[0] - a[0]), float(b[1] - a[1]), d


def _stay_pose(st: _Station, t: float, ph: float) -> _Pose:
    sway = 0.03 * math.sin(0.6 * t + ph)
    x, z = st.x + sway * st.fz, st.z - sway * st.fx
    hx, hy, hz = st.hands
    wob = (0.07 * math.sin(1.1 * t + ph), 0.04 * math.sin(1.7 * t + 2 * ph), 0.07 * math.sin(0.9 * t + 3 * ph))
    hands = (hx + wob[0], hy + wob[1], hz + wob[2])
    if st.act == "lean":
        return _Pose(x, z, st.fx, st.fz, lean=0.42 + 0.18 * math.sin(0.37 * t + ph), work=1.0, hands=hands)
    if st.act == "hand":
        reach = float(np.clip(math.sin(2 * math.pi * t / 7.0 + ph) * 1.8 - 0.8, 0, 1))
        return _Pose(x, z, st.fx, st.fz, lean=0.18, work=1.0, hands=hands, reach=reach, give=st.give)
    if st.act == "reach":
        return _Pose(x, z, st.fx, st.fz, lean=0.12, work=0.8 + 0.2 * math.sin(0.8 * t + ph), hands=hands)
    return _Pose(x, z, st.fx, st.fz, lean=0.06, work=0.25 + 0.2 * math.sin(0.5 * t + ph), hands=hands)


@dataclass
class _Staff:
    """One member of the team: a look and a day of legs."""

    look: _Look
    legs: list[_Leg]
    phase: float

    def pose(self, t: float) -> _Pose | None:
        for leg in self.legs:
            if leg.t0 <= t < leg.t1:
                if leg.away:
                    return None
                if leg.station is not None:
                    return _stay_pose(leg.station, t, self.phase)
                x, z, dx, dz, d = leg.at(t)
                norm = math.hypot(dx, dz) or 1.0
                return _Pose(x, z, dx / norm, dz / norm, phase=math.pi * d / 0.68, stride=1.0, hands=(x, 0.9, z))
        return None


@dataclass
class _TrolleyTrip:
    """A trolley pushed in through the door, parked a while with its nurse beside it, pushed out."""

    look: _Look
    drape: RGB
    t0: float
    path: np.ndarray  # door to the parking place
    speed: float
    park_s: float
    cum: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(self.path, axis=0).T))])

    @property
    def walk_s(self) -> float:
        return float(self.cum[-1]) / self.speed

    @property
    def t1(self) -> float:
        return self.t0 + 2 * self.walk_s + self.park_s

    def at(self, t: float) -> tuple[float, float, float, float, bool] | None:
        """Trolley (x, z), the way it moves (dx, dz) and whether it is parked, at time t."""
        if not self.t0 <= t < self.t1:
            return None
        s = t - self.t0
        if s < self.walk_s:
            d, back = s * self.speed, False
        elif s < self.walk_s + self.park_s:
            d, back = float(self.cum[-1]), False
        else:
            d, back = float(self.cum[-1]) - (s - self.walk_s - self.park_s) * self.speed, True
        d = min(max(d, 0.0), float(self.cum[-1]))
        k = min(int(np.searchsorted(self.cum, d, side="right")) - 1, len(self.path) - 2)
        a, b = self.path[k], self.path[k + 1]
        f = (d - self.cum[k]) / max(float(self.cum[k + 1] - self.cum[k]), 1e-9)
        p = a + (b - a) * f
        v = (b - a) / max(float(np.linalg.norm(b - a)), 1e-9) * (-1 if back else 1)
        parked = self.walk_s <= s < self.walk_s + self.park_s
        return float(p[0]), float(p[1]), float(v[0]), float(v[1]), parked


# --- the operating theatre -----------------------------------------------------------------------


class _Theatre(_Scene):
    """An operating theatre, its furniture, its routine (staff, trolleys) and its unused areas."""

    def __init__(self, rng: np.random.Generator, w: int, h: int, duration_s: float, warmup_s: float) -> None:
        m = float(rng.choice([-1.0, 1.0]))  # the anaesthesia machine's side of the table
        self.m = m
        Wr, Dr, Hr = float(rng.uniform(6.6, 7.8)), float(rng.uniform(7.6, 8.6)), float(rng.uniform(2.9, 3.2))
        self.size = (Wr, Dr, Hr)
        tx, tz = float(rng.uniform(-0.3, 0.3)), Dr - 4.0 + float(rng.uniform(-0.2, 0.2))
        self.table = (tx, tz)
        cx = float(rng.uniform(-0.3, 0.3)) * Wr
        yaw = -math.atan2(cx - tx, tz) * 0.8 + float(rng.uniform(-0.05, 0.05))
        cam = _Camera.aim(
            (cx, Hr - 0.15, 0.05),
            yaw,
            math.radians(float(rng.uniform(22, 29))),
            math.radians(float(rng.uniform(80, 90))),
            w,
            h,
        )
        noise = _Noise(rng)
        self.colours: dict[str, np.ndarray] = {
            "floor": np.array(_pick(rng, ((120, 146, 140), (110, 126, 150), (150, 150, 146), (96, 130, 116))))
            * rng.uniform(0.9, 1.1),
            "wall": np.array(_pick(rng, ((196, 218, 206), (200, 212, 222), (226, 224, 212), (212, 214, 216))))
            * rng.uniform(0.92, 1.05),
            "rail": np.array(_pick(rng, ((150, 160, 170), (120, 150, 140), (200, 200, 196)))),
            "mark": np.array(_pick(rng, ((226, 200, 60), (236, 236, 230)))),
            "door": np.array(_pick(rng, ((180, 196, 210), (170, 190, 170), (206, 200, 186)))),
        }
        drape = _pick(rng, ((64, 120, 170), (70, 140, 120), (90, 130, 190)))
        shapes: list[_Shape] = []
        # the operating table, head towards the back wall: base, top, drape over the patient, head screen
        shapes.append(_Shape((tx - 0.2, 0.0, tz - 0.35), (tx + 0.2, 0.62, tz + 0.35), (70, 74, 80)))
        shapes.append(_Shape((tx - 0.3, 0.0, tz - 0.45), (tx + 0.3, 0.06, tz + 0.45), (60, 62, 66)))
        shapes.append(_Shape((tx - 0.44, 0.55, tz - 1.15), (tx + 0.44, 0.92, tz + 0.95), drape, tex="drape"))
        shapes.append(_Shape((tx - 0.22, 0.92, tz - 0.9), (tx + 0.22, 1.04, tz + 0.6), drape, tex="drape"))
        shapes.append(_Shape((tx - 0.5, 0.92, tz + 0.62), (tx + 0.5, 1.42, tz + 0.68), drape, tex="drape"))
        shapes.append(_Shape((tx - 0.14, 0.9, tz + 0.75), (tx + 0.14, 1.02, tz + 1.0), (236, 236, 230)))
        # surgical lights: a ceiling stem, arms and two heads over the table
        stem_x, stem_z = tx + m * 0.2, tz + 0.1
        shapes.append(
            _Shape(
                (stem_x - 0.08, 2.55, stem_z - 0.08), (stem_x + 0.08, Hr, stem_z + 0.08), (214, 216, 220), radius=0.08
            )
        )
        self.heads = []
        for hx, hz, hy in ((tx - m * 0.15, tz - 0.45, 2.0), (tx + m * 0.35, tz + 0.35, 2.15)):
            x0, x1 = sorted((stem_x, hx))
            z0, z1 = sorted((stem_z, hz))
            shapes.append(_Shape((x0 - 0.04, 2.5, stem_z - 0.04), (x1 + 0.04, 2.58, stem_z + 0.04), (214, 216, 220)))
            shapes.append(_Shape((hx - 0.04, 2.5, z0 - 0.04), (hx + 0.04, 2.58, z1 + 0.04), (214, 216, 220)))
            shapes.append(
                _Shape((hx - 0.03, hy + 0.1, hz - 0.03), (hx + 0.03, 2.52, hz + 0.03), (200, 202, 206), radius=0.03)
            )
            shapes.append(
                _Shape((hx - 0.32, hy, hz - 0.32), (hx + 0.32, hy + 0.11, hz + 0.32), (226, 228, 230), radius=0.32)
            )
            shapes.append(
                _Shape((hx - 0.06, hy - 0.1, hz - 0.06), (hx + 0.06, hy, hz + 0.06), (90, 150, 200), radius=0.05)
            )
            self.heads.append((hx, hz))
        # the anaesthesia machine and its monitor, an IV pole
        mx, mz = tx + m * 0.6, tz + 2.2
        self.machine = (mx - 0.34, mz - 0.29, mx + 0.34, mz + 0.29)
        shapes.append(_Shape((mx - 0.34, 0.0, mz - 0.29), (mx + 0.34, 1.35, mz + 0.29), (222, 224, 222), tex="machine"))
        shapes.append(_Shape((mx - 0.24, 1.35, mz - 0.1), (mx + 0.24, 1.7, mz - 0.02), (44, 46, 50), screen=0))
        shapes.append(_Shape((mx - 0.04, 1.35, mz - 0.02), (mx + 0.04, 1.45, mz + 0.06), (60, 62, 66)))
        ix, iz = tx + m * 0.55, tz + 1.25
        shapes.append(_Shape((ix - 0.02, 0.0, iz - 0.02), (ix + 0.02, 1.95, iz + 0.02), (190, 192, 196), radius=0.02))
        shapes.append(_Shape((ix - 0.22, 0.0, iz - 0.22), (ix + 0.22, 0.05, iz + 0.22), (60, 62, 66), radius=0.22))
        shapes.append(_Shape((ix - 0.07, 1.6, iz - 0.03), (ix + 0.07, 1.85, iz + 0.03), (230, 236, 240)))
        # the back table and the Mayo tray
        bx, bz = tx + m * 1.95, tz - 0.7
        self.back_table = (bx - 0.36, bz - 0.75, bx + 0.36, bz + 0.75)
        shapes.append(_Shape((bx - 0.36, 0.0, bz - 0.75), (bx + 0.36, 0.9, bz + 0.75), drape, tex="drape"))
        for k in (-1, 0, 1):
            shapes.append(
                _Shape(
                    (bx - 0.2, 0.9, bz + k * 0.45 - 0.16),
                    (bx + 0.2, 0.95, bz + k * 0.45 + 0.16),
                    (186, 190, 196),
                    tex="steel",
                )
            )
        px_, pz_ = tx + m * 0.62, tz - 0.85
        shapes.append(
            _Shape((px_ - 0.025, 0.0, pz_ - 0.025), (px_ + 0.025, 1.12, pz_ + 0.025), (180, 184, 190), radius=0.025)
        )
        ta, tb = sorted((px_, tx - m * 0.05))
        shapes.append(_Shape((ta, 1.12, pz_ - 0.2), (tb, 1.16, pz_ + 0.2), (190, 194, 200), tex="steel"))
        # glazed cabinets on the other side wall, a wall display on the back wall
        wall_x = -m * Wr / 2
        cz0, cz1 = tz - 0.4, tz + 1.8
        self.cabinets = (min(wall_x, wall_x + m * 0.5), cz0, max(wall_x, wall_x + m * 0.5), cz1)
        shapes.append(_Shape((self.cabinets[0], 0.0, cz0), (self.cabinets[2], 2.1, cz1), (222, 224, 226), tex="glass"))
        dx_ = tx + m * 1.7
        shapes.append(_Shape((dx_ - 0.6, 1.45, Dr - 0.06), (dx_ + 0.6, 2.15, Dr), (30, 32, 36), screen=1))
        self.door_x = tx - m * float(rng.uniform(0.9, 1.3))
        self.scrub_window = (Dr - 3.3, Dr - 1.9)
        self.daylight = bool(rng.random() < 0.5)
        self.day_window = (-m * (Wr / 2 - 0.5), -m * (Wr / 2 - 2.0))
        self.zone = (tx - 1.6, tz - 2.0, tx + 1.6, tz + 1.6)
        super().__init__(cam, (-Wr / 2, 0.0, -0.2), (Wr / 2, Hr, Dr), shapes, noise)
        self.image, self.depth, p, self.screens = self.build(["vitals", "laparoscope"])
        # where the surgical light falls, where the daylight falls (at the frame's size)
        pool = np.zeros(p.shape[:2], np.float32)
        for hx, hz in self.heads:
            pool += np.exp(-((p[..., 0] - hx) ** 2 + (p[..., 2] - hz) ** 2) / 0.35).astype(np.float32)
        pool *= np.where(p[..., 1] > 0.5, 1.0, 0.45) * (p[..., 1] < 1.9)
        self.pool = (np.minimum(_down(pool, self.ss), 1.0)[..., None] * self.image * 0.3).astype(np.float32)
        win = np.zeros(p.shape[:2], np.float32)
        if self.daylight:
            a, b = sorted(self.day_window)
            on_wall = (p[..., 2] > Dr - 0.01) & _within(p[..., 0], a, b) & _within(p[..., 1], 1.3, 2.4)
            near = np.exp(-np.maximum(Dr - p[..., 2], 0) / 1.5) * _within(p[..., 0], a - 0.8, b + 0.8) * 0.35
            win = np.maximum(on_wall.astype(np.float32), near.astype(np.float32) * (p[..., 1] < 2.6))
        self.window_map = _down(win, self.ss).astype(np.float32)
        # routine
        self.unused: dict[str, Rect] = {}
        cw0, cw1 = sorted((-m * (Wr / 2 - 1.05), -m * (Wr / 2 - 0.15)))
        self.unused["corner"] = (cw0, Dr - 1.3, cw1, Dr - 0.15)
        self.unused["behind the machine"] = (mx - 0.65, mz + 0.4, mx + 0.65, Dr - 0.15)
        drape_rect = (tx - 0.5, tz - 1.2, tx + 0.5, tz + 1.0)
        iv = (ix - 0.22, iz - 0.22, ix + 0.22, iz + 0.22)
        self.obstacles = [drape_rect, self.machine, self.back_table, self.cabinets, iv, *self.unused.values()]
        bounds = (-Wr / 2, 0.6, Wr / 2, Dr)
        self.floor = _Floor(bounds, self.obstacles, 0.28)
        self.cart_floor = _Floor(bounds, self.obstacles, 0.42)
        self.stations = self._stations()
        self.staff = self._team(rng, duration_s)
        self.trolleys = self._trolleys(rng, duration_s, warmup_s)

    # --- the static scene's planes ---

    def surface(self, plane: int, p: np.ndarray) -> np.ndarray:
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        Wr, Dr, Hr = self.size
        c = self.colours
        noise = self.noise
        if plane == 2:  # floor: sheet vinyl, welded seams, a marked zone round the table
            col = np.tile(c["floor"].astype(np.float32), (len(x), 1))
            col *= (1 + 0.05 * noise.fbm(x * 1.5, z * 1.5) + 0.025 * noise.at(x * 30, z * 30))[:, None]
            _blend(col, _periodic(x + 0.37, 2.0, 0.012), (0, 0, 0), 0.15)
            z0_, x0_, z1_, x1_ = self.zone[1], self.zone[0], self.zone[3], self.zone[2]
            inside = _within(x, x0_, x1_) & _within(z, z0_, z1_)
            border = inside & ~(_within(x, x0_ + 0.06, x1_ - 0.06) & _within(z, z0_ + 0.06, z1_ - 0.06))
            _blend(col, border, c["mark"], 0.85)
            door = _within(x, self.door_x - 0.8, self.door_x + 0.8) & _within(z, Dr - 1.0, Dr - 0.94)
            _blend(col, door, c["mark"], 0.85)
            _blend(col, np.minimum(np.minimum(x + Wr / 2, Wr / 2 - x), Dr - z) < 0.08, (0, 0, 0), 0.12)
            return col
        if plane == 3:  # ceiling tiles
            col = np.tile(np.array([226, 228, 230], np.float32), (len(x), 1))
            _blend(col, _periodic(x, 0.6, 0.02) | _periodic(z, 0.6, 0.02), (170, 172, 176), 0.8)
            return col
        along = z if plane in (0, 1) else x
        col = np.tile(c["wall"].astype(np.float32), (len(x), 1))
        col *= (0.9 + 0.1 * np.clip(y / Hr, 0, 1) + 0.02 * noise.at(along * 3, y * 3))[:, None]
        _blend(col, _periodic(along, 1.2, 0.012), (0, 0, 0), 0.12)
        _blend(col, y < 0.12, c["wall"] * 0.72)
        rail = _within(y, 0.85, 0.97)
        if plane == 5:  # back wall: double doors, a high outside window on some videos
            dx = self.door_x
            leaf = _within(x, dx - 0.78, dx + 0.78) & (y < 2.12)
            _blend(col, leaf, (90, 94, 100))
            inner = _within(x, dx - 0.74, dx + 0.74) & (y < 2.08)
            _blend(col, inner, c["door"])
            _blend(col, inner & _line(x, dx, 0.015), (70, 72, 76))
            vision = inner & _within(y, 1.2, 1.65) & (_within(x, dx - 0.5, dx - 0.2) | _within(x, dx + 0.2, dx + 0.5))
            _blend(col, vision, (70, 84, 96))
            _blend(col, inner & (y < 0.3), (176, 180, 186))
            _blend(col, _within(x, dx - 0.2, dx + 0.2) & _within(y, 2.22, 2.36), (200, 40, 40))
            rail &= ~leaf
            if self.daylight:
                a, b = sorted(self.day_window)
                glass = _within(x, a, b) & _within(y, 1.3, 2.4)
                _blend(col, _within(x, a - 0.05, b + 0.05) & _within(y, 1.25, 2.45), (236, 236, 232))
                blinds = 0.88 + 0.12 * _periodic(y, 0.08, 0.05)
                _blend(col, glass, np.stack([232 * blinds, 236 * blinds, 240 * blinds], axis=1))
        if plane in (0, 1) and (plane == 1) == (self.m > 0):  # the scrub room through its window
            a, b = self.scrub_window
            frame = _within(z, a - 0.06, b + 0.06) & _within(y, 0.95, 2.15)
            _blend(col, frame, (150, 154, 160))
            glass = _within(z, a, b) & _within(y, 1.0, 2.1)
            tiles = 0.92 + 0.08 * (_periodic(z, 0.15, 0.01) | _periodic(y, 0.15, 0.01))
            _blend(col, glass, np.stack([150 * tiles, 178 * tiles, 176 * tiles], axis=1))
            _blend(col, glass & _within(y, 1.0, 1.25), (180, 184, 190))
            _blend(col, glass & _within(y, 1.25, 1.5) & _periodic(z - a, 0.45, 0.03, 0.2), (90, 94, 100))
            rail &= ~frame
        _blend(col, rail, c["rail"])
        return col

    # --- the routine ---

    def _stations(self) -> dict[str, _Station]:
        tx, tz = self.table
        m = self.m
        Wr, Dr, _ = self.size
        mx, mz = (self.machine[0] + self.machine[2]) / 2, (self.machine[1] + self.machine[3]) / 2
        bx, bz = (self.back_table[0] + self.back_table[2]) / 2, (self.back_table[1] + self.back_table[3]) / 2
        cab = self.cabinets[2] if m > 0 else self.cabinets[0]
        cz = (self.cabinets[1] + self.cabinets[3]) / 2
        out = {
            "surgeon": _Station(tx - m * 0.82, tz - 0.2, m, 0.0, "lean", (tx - m * 0.12, 1.02, tz - 0.25)),
            "assistant": _Station(tx + m * 0.82, tz - 0.15, -m, 0.0, "lean", (tx + m * 0.1, 1.02, tz - 0.05)),
            "second": _Station(tx - m * 0.82, tz + 0.45, m, 0.0, "lean", (tx - m * 0.15, 1.02, tz + 0.3)),
            "anaesthetist": _Station(tx - m * 0.2, tz + 1.45, 0.0, -1.0, "stand", (tx - m * 0.1, 1.05, tz + 1.0)),
            "monitor": _Station(mx - m * 0.75, mz - 0.2, m, 0.0, "reach", (mx - m * 0.3, 1.2, mz - 0.1)),
            "scrub": _Station(
                tx + m * 1.18, tz - 1.3, m, 0.0, "hand", (bx - m * 0.15, 0.98, bz - 0.4), (tx + m * 0.4, 1.15, tz - 0.7)
            ),
            "back table": _Station(bx, bz + 1.1, 0.0, -1.0, "reach", (bx, 0.98, bz + 0.5)),
            "cabinet": _Station(cab + m * 0.5, cz + 0.4, -m, 0.0, "reach", (cab + m * 0.1, 1.35, cz + 0.4)),
            "door": _Station(self.door_x, Dr - 0.55, 0.0, 1.0, "stand", (self.door_x, 1.0, Dr - 0.2)),
            "window": _Station(m * (Wr / 2 - 0.55), sum(self.scrub_window) / 2, m, 0.0, "stand", (0.0, 1.0, 0.0)),
        }
        return {k: s for k, s in out.items() if bool(self.floor.free(s.x, s.z))}

    def _walk(self, a: _Station, b: _Station) -> np.ndarray | None:
        return self.floor.route((a.x, a.z), (b.x, b.z))

    def _team(self, rng: np.random.Generator, duration_s: float) -> list[_Staff]:
        homes = [h for h in ("surgeon", "scrub", "anaesthetist", "assistant", "second") if h in self.stations]
        n = int(rng.integers(2, 6))
        team = homes[:2] + [str(h) for h in rng.permutation(homes[2:])]
        team = team[: max(n - 1, 1)] + ["circulating"]
        errands = [e for e in ("cabinet", "door", "back table", "monitor", "window", "assistant") if e in self.stations]
        staff = []
        for home in team:
            look = _staff_look(rng, scrubbed=home in ("surgeon", "scrub", "assistant", "second"))
            mobile = home == "circulating"
            at = self.stations.get(home, self.stations[errands[0]])
            legs: list[_Leg] = []
            t = -float(rng.uniform(0, 40))
            base = at
            while t < duration_s:
                stay = float(rng.uniform(4, 14) if mobile else rng.uniform(20, 60))
                legs.append(_Leg(t, t + stay, np.array([[at.x, at.z]] * 2), station=at))
                t += stay
                if mobile or rng.random() < 0.5:
                    name = str(rng.choice(errands)) if at is base else None
                    nxt = self.stations[name] if name is not None else base
                    if nxt is at:
                        continue
                    path = self._walk(at, nxt)
                    if path is None:
                        continue
                    speed = float(rng.uniform(0.8, 1.2))
                    secs = float(np.hypot(*np.diff(path, axis=0).T).sum()) / speed
                    legs.append(_Leg(t, t + secs, path))
                    t += secs
                    at = nxt
                    if name == "door" and rng.random() < 0.7:  # out of the door for a while
                        away = float(rng.uniform(6, 25))
                        legs.append(_Leg(t, t + away, np.array([[at.x, at.z]] * 2), away=True))
                        t += away
            staff.append(_Staff(look, legs, float(rng.uniform(0, 2 * np.pi))))
        return staff

    def _trolleys(self, rng: np.random.Generator, duration_s: float, warmup_s: float) -> list[_TrolleyTrip]:
        Wr, Dr, _ = self.size
        m, (tx, tz) = self.m, self.table
        park = (-m * (Wr / 2 - 0.62), tz - 1.45)
        door = (self.door_x, Dr - 0.45)
        path = self.cart_floor.route(door, park)
        if path is None:
            park = (tx - m * 1.5, tz - 1.9)
            path = self.cart_floor.route(door, park)
        if path is None:
            return []
        path = np.concatenate([[[self.door_x, Dr + 0.9]], path])
        trips = []
        t = float(rng.uniform(1, max(2.0, warmup_s - 16)))
        while t < duration_s:
            trip = _TrolleyTrip(
                _staff_look(rng, scrubbed=False),
                _pick(rng, ((64, 120, 170), (70, 140, 120), (196, 200, 204))),
                t,
                path,
                float(rng.uniform(0.6, 0.9)),
                float(rng.uniform(6, 20)),
            )
            trips.append(trip)
            t = trip.t1 + float(rng.uniform(15, 45))
        return trips

    def trolley_items(self, t: float) -> list[_Item]:
        out = []
        for trip in self.trolleys:
            got = trip.at(t)
            if got is None:
                continue
            x, z, dx, dz, parked = got
            along_x = abs(dx) > abs(dz)
            item = _shapes_item(self.cam, self.depth, _trolley_shapes(x, z, along_x, trip.drape), self.noise)
            if item is not None:
                out.append(item)
            reach = 0.72
            if parked:
                px, pz, fx, fz = x + dz * reach, z - dx * reach, -dz, dx
                pose = _Pose(px, pz, fx, fz, lean=0.15, work=1.0, hands=(x, 0.95, z))
            else:
                px, pz = x - dx * reach, z - dz * reach
                d = (t - trip.t0) * trip.speed
                pose = _Pose(
                    px,
                    pz,
                    dx,
                    dz,
                    phase=math.pi * d / 0.68,
                    stride=0.8,
                    work=1.0,
                    hands=(x - dx * 0.4, 0.95, z - dz * 0.4),
                )
            person = _figure(self.cam, self.depth, trip.look, pose)
            if person is not None:
                out.append(person)
        return out

    def staff_items(self, t: float) -> list[_Item]:
        out = []
        for member in self.staff:
            pose = member.pose(t)
            if pose is None:
                continue
            item = _figure(self.cam, self.depth, member.look, pose)
            if item is not None:
                out.append(item)
        return out

    def positions(self, t: float) -> list[tuple[float, float]]:
        """Where the routine's people and trolleys stand at time t (for checks)."""
        out = []
        for member in self.staff:
            pose = member.pose(t)
            if pose is not None:
                out.append((pose.x, pose.z))
        for trip in self.trolleys:
            got = trip.at(t)
            if got is not None:
                out.append((got[0], got[1]))
        return out


# --- the corridor outside (what a turned camera sees) --------------------------------------------


class _Corridor(_Scene):
    """A hospital corridor: doors and handrails on both walls, ceiling lights, a parked bed."""

    def __init__(self, rng: np.random.Generator, w: int, h: int) -> None:
        Wc, Lc, Hc = float(rng.uniform(2.4, 3.2)), 40.0, float(rng.uniform(2.6, 2.9))
        self.size = (Wc, Lc, Hc)
        cx = float(rng.uniform(-0.3, 0.3)) * Wc
        cam = _Camera.aim(
            (cx, Hc - 0.12, 0.05),
            float(rng.uniform(-0.15, 0.15)),
            math.radians(float(rng.uniform(16, 26))),
            math.radians(float(rng.uniform(80, 90))),
            w,
            h,
        )
        self.colours: dict[str, np.ndarray] = {
            "floor": np.array(_pick(rng, ((150, 140, 120), (120, 130, 140), (160, 150, 150)))),
            "wall": np.array(_pick(rng, ((220, 214, 196), (200, 214, 220), (214, 220, 206)))),
            "low": np.array(_pick(rng, ((120, 140, 170), (150, 110, 90), (110, 140, 110)))),
            "door": np.array(_pick(rng, ((170, 130, 90), (110, 140, 180), (190, 190, 186)))),
        }
        self.doors = [
            (float(z), float(rng.uniform(1.0, 1.3)))
            for z in np.arange(rng.uniform(2.5, 5.0), Lc, rng.uniform(4.0, 6.5))
        ]
        shapes = []
        side = float(rng.choice([-1.0, 1.0]))
        bz = float(rng.uniform(4.0, 8.0))
        bx = side * (Wc / 2 - 0.5)
        shapes.append(_Shape((bx - 0.45, 0.0, bz - 1.0), (bx + 0.45, 0.45, bz + 1.0), (140, 144, 150)))
        shapes.append(_Shape((bx - 0.45, 0.45, bz - 1.0), (bx + 0.45, 0.62, bz + 1.0), (236, 236, 232), tex="bed"))
        shapes.append(_Shape((bx - 0.45, 0.45, bz + 0.95), (bx + 0.45, 0.95, bz + 1.0), (120, 124, 130)))
        lz = bz + float(rng.uniform(4, 9))
        lx = -side * (Wc / 2 - 0.35)
        shapes.append(_Shape((lx - 0.3, 0.0, lz - 0.4), (lx + 0.3, 1.3, lz + 0.4), (60, 100, 150), top=(226, 226, 222)))
        super().__init__(cam, (-Wc / 2, 0.0, -0.2), (Wc / 2, Hc, Lc), shapes, _Noise(rng))
        self.image, self.depth, _, self.screens = self.build([])

    def surface(self, plane: int, p: np.ndarray) -> np.ndarray:
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        Wc, Lc, Hc = self.size
        c = self.colours
        if plane == 2:
            col = np.tile(c["floor"].astype(np.float32), (len(x), 1))
            col *= (1 + 0.05 * self.noise.fbm(x * 2, z * 2))[:, None]
            _blend(col, _periodic(z, 0.5, 0.012) | _periodic(x + Wc / 2, 0.5, 0.012), (0, 0, 0), 0.1)
            glow = np.exp(-(x**2) / 0.3) * (0.5 + 0.5 * np.cos(2 * np.pi * z / 3.0)) * 0.12
            col *= (1 + glow)[:, None]
            return col
        if plane == 3:
            col = np.tile(np.array([224, 224, 222], np.float32), (len(x), 1))
            _blend(col, _periodic(x + Wc / 2, 0.6, 0.02) | _periodic(z, 0.6, 0.02), (160, 160, 160), 0.8)
            _blend(col, _within(x, -0.3, 0.3) & _periodic(z, 3.0, 1.2, 0.9), (250, 250, 244))
            return col
        if plane == 5:
            col = np.tile(c["wall"].astype(np.float32), (len(x), 1)) * 0.85
            _blend(col, _within(x, -0.8, 0.8) & (y < 2.1), c["door"] * 0.8)
            _blend(col, _within(x, -0.6, 0.6) & _within(y, 1.2, 1.7) & ~_line(x, 0.0, 0.08), (80, 90, 100))
            return col
        col = np.tile(c["wall"].astype(np.float32), (len(x), 1))
        _blend(col, y < 1.0, c["low"])
        _blend(col, _within(y, 0.88, 0.98), (190, 150, 100))
        for dz, width in self.doors:
            door = _within(z, dz, dz + width) & (y < 2.1)
            _blend(col, _within(z, dz - 0.05, dz + width + 0.05) & (y < 2.15), (90, 90, 96))
            _blend(col, door, c["door"])
            _blend(col, door & _within(y, 1.3, 1.8) & _within(z, dz + 0.15, dz + 0.35), (60, 70, 80))
        return col


# --- the lens covered ---------------------------------------------------------------------------


def _cover_mask(rng: np.random.Generator, kind: str, w: int, h: int, share: float) -> np.ndarray:
    """A soft mask over the frame grown by a margin: a gloved hand, a gauze swab or a smear, from an edge,
    scaled so that the part above one half covers about `share` of the frame."""
    m = max(2, round(0.03 * w))
    k = 4
    sw, sh = (w + 2 * m) // k, (h + 2 * m) // k
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float64)
    side = int(rng.integers(0, 4))  # left, right, bottom, top
    ax, ay = [(0.0, 0.6), (1.0, 0.5), (0.45, 1.0), (0.55, 0.0)][side]
    ax, ay = (ax + rng.uniform(-0.1, 0.1)) * sw, (ay + rng.uniform(-0.15, 0.15)) * sh
    inward = math.atan2(sh / 2 - ay, sw / 2 - ax) + rng.uniform(-0.4, 0.4)
    wobble = _Noise(rng, 16)
    crop = (slice(m // k, (m + h) // k), slice(m // k, (m + w) // k))

    def sdf(scale: float) -> np.ndarray:
        ca, sa = math.cos(inward), math.sin(inward)
        u = ((xx - ax) * ca + (yy - ay) * sa) / scale  # along the way in
        v = (-(xx - ax) * sa + (yy - ay) * ca) / scale
        if kind == "glove":
            d = np.hypot(u / 1.0, v / 0.75) - 1.0  # the palm at the edge
            for j, ang in enumerate((-0.55, -0.2, 0.1, 0.4)):
                length = (1.35, 1.55, 1.5, 1.25)[j]
                tip = (math.cos(ang) * (0.7 + length), math.sin(ang) * (0.7 + length))
                base = (math.cos(ang) * 0.6, math.sin(ang) * 0.6)
                du, dv = tip[0] - base[0], tip[1] - base[1]
                f = np.clip(((u - base[0]) * du + (v - base[1]) * dv) / (du * du + dv * dv), 0, 1)
                d = np.minimum(d, np.hypot(u - base[0] - f * du, v - base[1] - f * dv) - 0.2)
            f = np.clip(((u - 0.2) * 0.6 + (v + 0.5) * -0.9) / (0.36 + 0.81), 0, 1)
            d = np.minimum(d, np.hypot(u - 0.2 - f * 0.6, v + 0.5 + f * 0.9) - 0.24)  # the thumb
            return d
        if kind == "gauze":
            ragged = 0.12 * wobble.at(xx / 6, yy / 6)
            return np.maximum(np.abs(u - 0.4) - 1.4, np.abs(v) - 1.0) + ragged
        return np.hypot(u / 1.3, v) - 1.0 + 0.35 * wobble.fbm(xx / 9, yy / 9)  # a smear

    lo, hi = 1.0, 4.0 * max(sw, sh)
    for _ in range(30):
        mid = (lo + hi) / 2
        if float((sdf(mid)[crop] < 0).mean()) < share:
            lo = mid
        else:
            hi = mid
    mask = np.clip(0.5 - sdf((lo + hi) / 2) * 2.0, 0, 1)
    blur = {"glove": 0.025, "gauze": 0.02, "smear": 0.07}[kind] * sw
    img = Image.fromarray((mask * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(blur))
    full = np.asarray(img.resize((w + 2 * m, h + 2 * m), Image.Resampling.BILINEAR), np.float32) / 255.0
    opacity = float(rng.uniform(0.88, 0.97))
    return (np.clip((full - 0.5) * 1.8 + 0.5, 0, 1) * opacity).astype(np.float32)


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """`img` moved by (dx, dy) pixels: bilinear, the border repeated."""
    h, w = img.shape[:2]
    ys = np.clip(np.arange(h) - dy, 0, h - 1)
    xs = np.clip(np.arange(w) - dx, 0, w - 1)
    y0, x0 = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0).astype(np.float32)[:, None, None], (xs - x0).astype(np.float32)[None, :, None]
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bottom = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


# --- one video -----------------------------------------------------------------------------------


@dataclass
class _Event:
    kind: str
    name: str
    first: int  # first anomalous frame
    stop: int  # first normal frame after it
    fps: int
    shapes: list[_Shape] | None = None
    look: _Look | None = None
    path: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # x0, z0, x1, z1 paced slowly
    speed: float = 0.3
    cover: np.ndarray | None = None
    cover_colour: RGB = (0.0, 0.0, 0.0)
    view_seed: int = 0

    @property
    def start(self) -> float:
        return self.first / self.fps

    @property
    def end(self) -> float:
        return self.stop / self.fps


class TheatreVideo:
    """One camera of the `theatre` family: frames rendered on demand, deterministic for the seed."""

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
        self.width, self.height = size or THEATRE_SIZE
        self.fps = fps or THEATRE_FPS
        self.duration_s = duration_s
        self.warmup_s = warmup_s
        self.frames = int(round(duration_s * self.fps))
        base = [_STREAM, seed, THEATRE_VERSION]
        self._base = base
        w, h = self.width, self.height
        self.room = _Theatre(np.random.default_rng([*base, 0]), w, h, duration_s, warmup_s)
        self._views: dict[int, _Corridor] = {}
        schedule = self._schedule(np.random.default_rng([*base, 1]))
        self.events: list[_Event] = schedule if anomalies else []
        # Nuisances are drawn against the schedule either way: without anomalies, the same video.
        rng = np.random.default_rng([*base, 2])
        self.crf = int(rng.integers(21, 30))
        self.noise = float(rng.uniform(1.5, 4.0))
        self.wb = rng.uniform(0.01, 0.03, 3)
        self.wb_period = float(rng.uniform(80, 160))
        self.wb_phase = rng.uniform(0, 2 * np.pi, 3)
        self.shake = float(rng.uniform(0.3, 1.2)) if rng.random() < 0.4 else 0.0
        self.day = float(rng.uniform(0.08, 0.15)) if self.room.daylight else 0.0
        self.day_period = float(rng.uniform(40, 70))
        self.day_phase = float(rng.uniform(0, 2 * np.pi))
        self.flicker = float(rng.uniform(0.03, 0.08))
        self.nuisances = [f"noise {self.noise:.1f}", f"crf {self.crf}", f"monitor flicker {self.flicker:.0%} of frames"]
        if self.day:
            self.nuisances.append(f"daylight +-{self.day:.0%} / {self.day_period:.0f} s")
        if self.shake:
            self.nuisances.append(f"shake {self.shake:.1f} px")

        def quiet(ts: float, margin: float = 3.0) -> bool:
            return not any(e.start - margin < ts < e.end + margin for e in schedule)

        # the surgical light: switched between off, low and full at quiet moments
        self.light: list[tuple[float, float]] = [(-1e9, float(rng.choice([0.6, 1.0, 1.0])))]
        self.dim: tuple[float, float, float, float] | None = None  # start, end, ramp seconds, depth
        if rng.random() < 0.5:
            for _ in range(40):
                length = float(rng.uniform(20, 40))
                start = float(rng.uniform(5, max(6.0, duration_s - length - 5)))
                ramp = float(rng.uniform(3, 6))
                if quiet(start) and quiet(start + ramp) and quiet(start + length) and quiet(start + length + ramp):
                    self.dim = (start, start + length, ramp, float(rng.uniform(0.15, 0.3)))
                    break
        switches = int(rng.integers(1, 4))
        for _ in range(60):
            if len(self.light) > switches:
                break
            ts = float(rng.uniform(4, duration_s - 4))
            if not quiet(ts) or any(abs(ts - s) < 8 for s, _ in self.light):
                continue
            if self.dim is not None and self.dim[0] - 3 < ts < self.dim[1] + self.dim[2] + 3:
                continue
            self.light.append((ts, float(rng.choice([0.0, 0.6, 1.0]))))
        if self.dim is not None:
            self.light += [(self.dim[0], 0.0), (self.dim[1], 1.0)]
            self.nuisances.append(f"room dimmed {self.dim[3]:.0%} {self.dim[0]:.0f}-{self.dim[1]:.0f} s")
        self.light.sort()
        for ts, level in self.light[1:]:
            self.nuisances.append(f"surgical light to {level:.0%} at {ts:.1f} s")
        self.steps: list[tuple[float, float]] = []  # (time, gain change), at quiet times after the warm-up
        want = 1 + int(rng.random() < 0.5)
        for _ in range(40):
            if len(self.steps) == want:
                break
            ts = round(float(rng.uniform(warmup_s + 2, duration_s - 2)) * self.fps) / self.fps
            if not quiet(ts) or any(abs(ts - s) < 10 for s, _ in self.steps):
                continue
            if any(abs(ts - s) < 2 for s, _ in self.light[1:]):
                continue
            self.steps.append((ts, float(rng.choice([-1, 1]) * rng.uniform(0.05, 0.12))))
        self.steps.sort()
        for ts, g in self.steps:
            self.nuisances.append(f"exposure step {g:+.0%} at {ts:.1f} s")

    # --- the plan ---

    def _schedule(self, rng: np.random.Generator) -> list[_Event]:
        """3 or 4 anomalies of different kinds after the warm-up, 8-14 s of normal video between them."""
        kinds = list(KINDS)
        rng.shuffle(kinds)
        n = 4 if rng.random() < 0.6 else 3
        lengths = {
            "object_left": (10, 22),
            "figure_unused_area": (8, 16),
            "lens_covered": (4, 9),
            "camera_turned": (5, 11),
        }
        first = math.ceil((self.warmup_s + rng.uniform(3, 8)) * self.fps)
        last = self.frames - math.ceil(4 * self.fps)
        events: list[_Event] = []
        for kind in kinds:
            stop = first + max(2, round(rng.uniform(*lengths[kind]) * self.fps))
            if stop > last or len(events) == n:
                break
            ev = self._event(kind, first, stop, rng)
            if ev is None:  # no place for it in this room: the next kind instead
                continue
            events.append(ev)
            first = stop + math.ceil(rng.uniform(8, 14) * self.fps)
        return events

    def _event(self, kind: str, first: int, stop: int, rng: np.random.Generator) -> _Event | None:
        room, w = self.room, self.width
        ev = _Event(kind, "", first, stop, self.fps)
        Wr, Dr, _ = room.size
        if kind == "object_left":
            for _ in range(80):
                shape = OBJECTS[int(rng.integers(len(OBJECTS)))]
                width = float(rng.uniform(*_OBJECT_WIDTH[shape]))
                share = float(rng.uniform(0.02, 0.04) if rng.random() < 0.4 else rng.uniform(0.04, 0.08))
                x = float(rng.uniform(-Wr / 2 + 0.4, Wr / 2 - 0.4))
                z = float(rng.uniform(1.5, Dr - 0.4))
                shapes = _object_shapes(rng, shape, width, x, z)
                if not self._spot(shapes, x, z, share):
                    continue
                ev.name, ev.shapes = shape, shapes
                return ev
            return None
        if kind == "figure_unused_area":
            options = list(room.unused.items())
            for j in rng.permutation(len(options)):
                name, (x0, z0, x1, z1) = options[int(j)]
                street = name == "corner" or rng.random() < 0.5
                look = _street_look(rng) if street else _staff_look(rng, scrubbed=False)
                zc = (z0 + z1) / 2 + float(rng.uniform(-0.15, 0.15))
                ev.name = ("someone in street clothes " if street else "someone in scrubs ") + (
                    "in the back corner" if name == "corner" else "behind the anaesthesia machine"
                )
                ev.look, ev.path, ev.speed = look, (x0 + 0.3, zc, x1 - 0.3, zc), float(rng.uniform(0.15, 0.35))
                items = [self._anomaly_item(ev, float(t)) for t in np.linspace(ev.start, ev.end, 7)]
                if all(item is not None and self._seen(item, ev) >= 0.4 for item in items):
                    return ev
            return None
        if kind == "lens_covered":
            ev.name = str(rng.choice(["gloved hand", "gauze", "smear"]))
            ev.cover = _cover_mask(
                rng, {"gloved hand": "glove"}.get(ev.name, ev.name), w, self.height, float(rng.uniform(0.25, 0.6))
            )
            colours: dict[str, tuple[RGB, ...]] = {
                "gloved hand": ((92, 132, 204), (214, 196, 160), (236, 232, 222)),
                "gauze": ((238, 238, 234),),
                "smear": ((170, 160, 150), (200, 180, 170)),
            }
            ev.cover_colour = _pick(rng, colours[ev.name])
            return ev
        ev.name = "the corridor"
        ev.view_seed = int(rng.integers(0, 2**31))
        return ev

    def _spot(self, shapes: list[_Shape], x: float, z: float, share: float) -> bool:
        """An object spot: its width share as asked, fully in view, nothing static in front of it, off
        the routine's walks and furniture and out of the unused areas."""
        room = self.room
        item = _shapes_item(room.cam, room.depth, shapes, room.noise)
        if item is None:
            return False
        box = item.box(self.width, self.height)
        if box is None or not (0.6 * share <= box[2] - box[0] <= 1.6 * share):
            return False
        if box[0] < 0.03 or box[2] > 0.97 or box[1] < 0.03 or box[3] > 0.97:
            return False
        if not room.floor.free(x, z) or any(_near(r, x, z, 0.5) for r in room.unused.values()):
            return False
        cast = _shapes_item(room.cam, np.full_like(room.depth, np.inf), shapes, room.noise)
        if cast is None or float((item.alpha > 0.5).sum()) < 0.97 * float((cast.alpha > 0.5).sum()):
            return False
        for member in room.staff:
            for leg in member.legs:
                if leg.away:
                    continue
                pts = leg.path
                if leg.station is not None:
                    if math.hypot(pts[0, 0] - x, pts[0, 1] - z) < 1.0:
                        return False
                    continue
                for a, b in zip(pts[:-1], pts[1:], strict=True):
                    if _seg_distance(a, b, x, z) < 0.7:
                        return False
        for trip in room.trolleys:
            for a, b in zip(trip.path[:-1], trip.path[1:], strict=True):
                if _seg_distance(a, b, x, z) < 1.0:
                    return False
        return True

    def _seen(self, item: _Item, ev: _Event) -> float:
        """The share of an anomaly figure that the static scene does not hide."""
        assert ev.look is not None
        bare = _figure(self.room.cam, np.full_like(self.room.depth, np.inf), ev.look, self._pose(ev, ev.start))
        return float(item.alpha.sum()) / max(float(bare.alpha.sum()) if bare is not None else 0.0, 1e-9)

    def _pose(self, ev: _Event, t: float) -> _Pose:
        x0, z0, x1, z1 = ev.path
        span = max(math.hypot(x1 - x0, z1 - z0), 1e-6)
        d = (t - ev.start) * ev.speed
        leg = int(d // span)
        f = (d % span) / span
        if leg % 2:
            f = 1 - f
        x, z = x0 + (x1 - x0) * f, z0 + (z1 - z0) * f
        sign = -1.0 if leg % 2 else 1.0
        fx, fz = (x1 - x0) / span * sign, (z1 - z0) / span * sign
        return _Pose(x, z, fx, fz, phase=math.pi * d / 0.6, stride=0.6, work=0.15)

    def _view(self, ev: _Event) -> _Corridor:
        if ev.view_seed not in self._views:
            rng = np.random.default_rng([*self._base, 3, ev.view_seed])
            self._views[ev.view_seed] = _Corridor(rng, self.width, self.height)
        return self._views[ev.view_seed]

    def event_at(self, i: int) -> tuple[int, _Event] | None:
        for k, e in enumerate(self.events):
            if e.first <= i < e.stop:
                return k, e
        return None

    def _anomaly_item(self, ev: _Event, t: float) -> _Item | None:
        room = self.room
        if ev.shapes is not None:
            return _shapes_item(room.cam, room.depth, ev.shapes, room.noise)
        assert ev.look is not None
        return _figure(room.cam, room.depth, ev.look, self._pose(ev, t))

    def _jitter(self, i: int) -> tuple[float, float]:
        if not self.shake:
            return 0.0, 0.0
        d = np.random.default_rng([*self._base, 4, i]).normal(0, self.shake, 2).clip(-3 * self.shake, 3 * self.shake)
        return float(d[0]), float(d[1])

    def frame_truth(self, i: int) -> FrameTruth:
        """What frame i shows, without drawing it."""
        t = i / self.fps
        found = self.event_at(i)
        if found is None:
            return FrameTruth(i, t, False)
        k, ev = found
        box = None
        if ev.kind in BOXED:
            item = self._anomaly_item(ev, t)
            raw = item.box(self.width, self.height) if item is not None else None
            if raw is not None:
                dx, dy = self._jitter(i)
                sx, sy = dx / self.width, dy / self.height
                x0, y0 = min(max(raw[0] + sx, 0.0), 1.0), min(max(raw[1] + sy, 0.0), 1.0)
                x1, y1 = min(max(raw[2] + sx, 0.0), 1.0), min(max(raw[3] + sy, 0.0), 1.0)
                if x1 > x0 and y1 > y0:
                    box = (round(float(x0), 5), round(float(y0), 5), round(float(x1), 5), round(float(y1), 5))
        return FrameTruth(i, t, True, ev.kind, ev.name, k, box)

    # --- rendering ---

    def surgical_light(self, t: float) -> float:
        """The surgical light's level at time t (0 off to 1 full), one second to change."""
        level = self.light[0][1]
        for ts, target in self.light[1:]:
            if t >= ts:
                level = level + (target - level) * min((t - ts) / 1.0, 1.0)
        return level

    def room_light(self, t: float) -> float:
        """The room lights' level: 1, dimmed for a laparoscopy phase on some videos."""
        if self.dim is None:
            return 1.0
        start, end, ramp, depth = self.dim
        f = min(max((t - start) / ramp, 0.0), 1.0) - min(max((t - end) / ramp, 0.0), 1.0)
        return 1.0 - depth * f

    def gain(self, t: float) -> np.ndarray:
        """Per-channel global gain at time t: auto-exposure steps x white balance."""
        g = 1.0
        for ts, step in self.steps:
            if t >= ts - 1e-9:
                g *= 1.0 + step
        wb = 1.0 + self.wb * np.sin(2 * np.pi * t / self.wb_period + self.wb_phase)
        return (g * wb).astype(np.float32)

    def render(self, i: int) -> tuple[np.ndarray, FrameTruth]:
        """Frame `i` as (H, W, 3) uint8 RGB and what it shows."""
        t = i / self.fps
        w, h = self.width, self.height
        found = self.event_at(i)
        ev = found[1] if found else None
        if ev is not None and ev.kind == "camera_turned":
            img = self._view(ev).image.copy()
        else:
            room = self.room
            img = room.image + room.pool * self.surgical_light(t)
            items = room.staff_items(t) + room.trolley_items(t)
            if ev is not None and ev.kind in BOXED:
                item = self._anomaly_item(ev, t)
                if item is not None:
                    items.append(item)
            for item in sorted(items, key=lambda it: -it.depth):
                item.over(img)
            img *= self.room_light(t)
            if self.day:
                day = self.day * math.sin(2 * math.pi * t / self.day_period + self.day_phase)
                img *= (1 + day * room.window_map)[..., None]
            self._screens(img, room.screens, t, i)
        img *= self.gain(t)
        dx, dy = self._jitter(i)
        if dx or dy:
            img = _shift(img, dx, dy)
        if ev is not None and ev.kind == "lens_covered":
            img = self._cover(img, ev, t)
        rng = np.random.default_rng([*self._base, 6, i])
        img += rng.standard_normal((h, w, 1), dtype=np.float32) * self.noise
        img += rng.standard_normal((h, w, 3), dtype=np.float32) * (self.noise * 0.4)
        return np.clip(img + 0.5, 0, 255).astype(np.uint8), self.frame_truth(i)

    def _screens(self, img: np.ndarray, scr: _Screens, t: float, i: int) -> None:
        """Monitors: vital-sign traces sweeping, a laparoscope's picture; now and then a flickering frame."""
        flick = np.random.default_rng([*self._base, 7, i]).random(len(scr.kind) + 1)
        for j, kind in enumerate(scr.kind):
            u, v, cov = scr.u[j], scr.v[j], scr.cov[j]
            if kind == "vitals":
                col = np.tile(np.array([12, 16, 18], np.float32), (len(u), 1))
                ph = u * 2.2 - t * 0.9
                beat = np.mod(ph * 1.3, 1.0)
                ecg = np.exp(-(((beat - 0.3) / 0.03) ** 2)) - 0.25 * np.exp(-(((beat - 0.36) / 0.04) ** 2))
                pleth = 0.5 + 0.5 * np.sin(2 * np.pi * (ph * 1.3 - 0.1))
                resp = 0.5 + 0.5 * np.sin(2 * np.pi * ph * 0.3)
                sweep = np.mod(u - t * 0.35, 1.0) < 0.06
                for vc, val, colour in (
                    (0.2, ecg, (60, 230, 90)),
                    (0.47, pleth, (60, 210, 230)),
                    (0.72, resp, (230, 220, 60)),
                ):
                    on = (np.abs(v - (vc - 0.12 * val)) < 0.05) & (u < 0.72) & ~sweep
                    _blend(col, on, colour)
                digits = (u > 0.76) & (np.mod(v, 0.26) < 0.14)
                level = 0.7 + 0.3 * np.sin(np.floor(t / 3.0) * 2.1 + np.floor(v / 0.26))
                _blend(col, digits, np.stack([200 * level, 220 * level, 200 * level], axis=1))
            else:
                a = u * 5 + 0.6 * math.sin(0.3 * t)
                b = v * 3 + 0.25 * t
                tissue = 0.6 + 0.4 * self.room.noise.fbm(a, b)
                col = np.stack([200 * tissue, 90 * tissue + 20, 80 * tissue + 10], axis=1).astype(np.float32)
                r = np.hypot((u - 0.5) * 1.6, v - 0.5)
                col *= np.clip(1.6 - 2.4 * r, 0, 1)[:, None]
                tool = np.abs((v - 0.5) - (u - 0.5) * (0.6 + 0.3 * math.sin(0.4 * t))) < 0.04
                _blend(col, tool & (u > 0.5 + 0.15 * math.sin(0.25 * t)), (150, 154, 160))
            if flick[j] < self.flicker:
                col *= 0.55 + 0.3 * flick[-1]
            cur = img[scr.ys[j], scr.xs[j]]
            img[scr.ys[j], scr.xs[j]] = cur * (1 - cov[:, None]) + col * cov[:, None]

    def _cover(self, img: np.ndarray, ev: _Event, t: float) -> np.ndarray:
        """Something on the lens: out of focus, darker where it is thick (a glove), translucent (gauze),
        or a blurring veil (a smear)."""
        assert ev.cover is not None
        h, w = img.shape[:2]
        m = (ev.cover.shape[0] - h) // 2
        ox = int(round(m + m * 0.7 * math.sin(1.1 * t + ev.first)))
        oy = int(round(m + m * 0.7 * math.sin(0.8 * t + 3 * ev.first)))
        a = ev.cover[oy : oy + h, ox : ox + w][..., None]
        colour = np.asarray(ev.cover_colour, np.float32)
        if ev.name == "gloved hand":
            shade = 0.75 + 0.25 * (1 - a) + 0.12 * np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
            return img * (1 - a) + colour * shade * a
        radius = 0.03 * w if ev.name == "smear" else 0.01 * w
        pic = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(radius))
        blurred = np.asarray(pic, np.float32)
        img = img * (1 - a) + blurred * a
        if ev.name == "smear":
            return img * (1 - 0.5 * a) + colour * 0.5 * a
        yy, xx = np.mgrid[0:h, 0:w]
        weave = 0.85 + 0.15 * ((np.mod(xx + ox, 4) < 2) ^ (np.mod(yy + oy, 4) < 2))[..., None]
        return img * (1 - 0.85 * a) + colour * weave * 0.85 * a

    def truth(self) -> VideoTruth:
        """The ground truth of every frame, without drawing them."""
        return self._truth([self.frame_truth(i) for i in range(self.frames)])

    def _truth(self, frames: list[FrameTruth]) -> VideoTruth:
        anomalies = tuple(
            Anomaly(k, e.kind, e.name, round(e.start, 4), round(e.end, 4)) for k, e in enumerate(self.events)
        )
        return VideoTruth(
            family=THEATRE,
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


def _near(r: Rect, x: float, z: float, margin: float) -> bool:
    return r[0] - margin < x < r[2] + margin and r[1] - margin < z < r[3] + margin


def _seg_distance(a: np.ndarray, b: np.ndarray, x: float, z: float) -> float:
    d = b - a
    f = float(np.clip(((x - a[0]) * d[0] + (z - a[1]) * d[1]) / max(float(d @ d), 1e-12), 0, 1))
    return math.hypot(x - a[0] - f * d[0], z - a[1] - f * d[1])

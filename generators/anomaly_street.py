"""The `street` family: held-out camera days of a street beside a car park, made by code of its own.

It shares only the truth types (`Anomaly`, `FrameTruth`, `VideoTruth`) and the anomaly kind names with
`generators.anomaly_families`; places, figures, vehicles, objects, nuisances and the schedule are drawn
here a different way, so that figures reported on it were never tuned on:

- the view is solved, not painted: a camera 6.5-8 m up looks along a street; every ground pixel is
  mapped back to its point on the ground plane, so kerbs, lane markings, a zebra, parking bays and a
  hatched closed bay converge to the vanishing point and are antialiased by their pixel footprint;
  facades are textured planes (a canyon wall on each side, a row across the back), a kiosk with a flat
  roof stands on a lawn; parked cars, lamp posts, bollards and trees are static props;
- vehicles are 3D boxes (wheels, body, cabin, lamps) projected and shaded by the sun; people are
  signed-distance figures (legs, coat, arms, head, hat or hood, bag) drawn at their depth's scale;
  everything is depth-tested against the static scene, so props and walls hide what is behind them;
- normal, all video long: people on the pavements, over the zebra and along the car park's aisle, cars
  and vans in both lanes and now and then one in the aisle; a daylight swing (+-5-10 % over 40-70 s),
  one or two auto-exposure steps (5-12 %, they stay) after the warm-up, white-balance drift, cloud
  shadows, rain or snow on some videos, camera shake on some, sensor noise, H.264;
- after the warm-up, 3 or 4 anomalies one at a time with at least 8 s of normal video between them:
  `object_left` (a box, wheelie bin, suitcase, holdall or sack, some only 2-4 % of the width),
  `figure_unused_area` (someone on the kiosk roof, on the lawn or in the closed bay, or a car parked
  in the closed bay), `lens_covered` (a blurred hand, cloth or leaf, or a smear, over 25-60 % of the
  view) and `camera_turned` (another street, seen for a while, then back).

Videos are 640x360 at 2 fps, the bench's sampling rate, so every frame is scored. Deterministic for
the seed; `anomalies=False` renders the same video without them (pixels equal outside the anomalies).

    >>> video = StreetVideo(3)
    >>> truth = video.write_video("street-3.mp4")          # doctest: +SKIP
    >>> [(a.kind, a.start, a.end) for a in truth.anomalies]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from generators.anomaly_families import Anomaly, FrameTruth, VideoTruth, encode_h264

STREET = "street"
STREET_SIZE = (640, 360)
STREET_FPS = 2  # the bench's sampling rate: every generated frame is a scored frame
STREET_VERSION = 1  # bump when a change alters the pixels of any video
KINDS = ("object_left", "figure_unused_area", "lens_covered", "camera_turned")  # the bench's kind names
BOXED = ("object_left", "figure_unused_area")
_STREAM = 7311  # this family's rng namespace

RGB = tuple[float, float, float]


# --- small maths ---------------------------------------------------------------------------------


def _band(q: np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float, fp: np.ndarray | float) -> np.ndarray:
    """Share of each pixel (footprint `fp` along q) that lies in [lo, hi]."""
    return np.clip((np.minimum(q + fp / 2, hi) - np.maximum(q - fp / 2, lo)) / fp, 0.0, 1.0)


def _stripes(q: np.ndarray, period: float, width: float, fp: np.ndarray | float, offset: float = 0.0) -> np.ndarray:
    """Share of each pixel on stripes [offset + k * period, + width]; fades to the mean when unresolved."""
    r = np.mod(q - offset, period)
    cov = np.clip(
        _band(r, 0, width, fp) + _band(r, period, period + width, fp) + _band(r, -period, width - period, fp), 0, 1
    )
    mix = np.clip(np.asarray(fp) / period - 0.5, 0.0, 1.0)
    return cov * (1 - mix) + (width / period) * mix


def _hash(a: np.ndarray, b: np.ndarray, salt: float) -> np.ndarray:
    """A repeatable pseudo-random value in [0, 1) per integer cell (a, b)."""
    v = np.sin(a * 12.9898 + b * 78.233 + salt * 37.719) * 43758.5453
    return v - np.floor(v)


def _lookup(table: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bilinear sample of a 2D table at fractional indices (clamped)."""
    a = np.clip(a, 0, table.shape[0] - 1.001)
    b = np.clip(b, 0, table.shape[1] - 1.001)
    i, j = a.astype(np.int64), b.astype(np.int64)
    fa, fb = a - i, b - j
    return (
        table[i, j] * (1 - fa) * (1 - fb)
        + table[i + 1, j] * fa * (1 - fb)
        + table[i, j + 1] * (1 - fa) * fb
        + table[i + 1, j + 1] * fa * fb
    )


def _mix(col: np.ndarray, cov: np.ndarray, colour: np.ndarray | RGB) -> None:
    """In place: col = col * (1 - cov) + colour * cov."""
    c = cov[:, None]
    col *= 1 - c
    col += c * np.asarray(colour, dtype=np.float64)


def _seg_dist(px: np.ndarray, py: np.ndarray, a: tuple[float, float], b: tuple[float, float]) -> np.ndarray:
    dx, dy = b[0] - a[0], b[1] - a[1]
    t = np.clip(((px - a[0]) * dx + (py - a[1]) * dy) / (dx * dx + dy * dy + 1e-12), 0, 1)
    return np.hypot(px - a[0] - t * dx, py - a[1] - t * dy)


def _rbox_dist(
    px: np.ndarray, py: np.ndarray, c: tuple[float, float], half: tuple[float, float], r: float
) -> np.ndarray:
    qx = np.abs(px - c[0]) - half[0] + r
    qy = np.abs(py - c[1]) - half[1] + r
    return np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0) - r


# --- camera and layout ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Camera:
    """A level pinhole camera at (u=0, height) looking along +z; `mirror` flips the layout left-right."""

    f: float
    vx: float
    hy: float
    height: float
    mirror: float

    def project(self, u: np.ndarray | float, y: np.ndarray | float, z: np.ndarray | float) -> tuple:
        return self.vx + self.f * self.mirror * np.asarray(u) / z, self.hy + self.f * (self.height - np.asarray(y)) / z

    def scaled(self, k: float) -> _Camera:
        return _Camera(self.f * k, self.vx * k, self.hy * k, self.height, self.mirror)


@dataclass(frozen=True)
class _Layout:
    """Lateral bands (u, metres; camera at 0) and places along the street (z, metres)."""

    wall: float
    road: tuple[float, float]
    pave_r: float
    bays_a: tuple[float, float]
    aisle: tuple[float, float]
    bays_b: tuple[float, float]
    lawn: tuple[float, float]
    lawn_z0: float
    bay_z0: float
    crossing: float
    closed: tuple[float, float]  # z range of the hatched closed bay in row B
    kiosk: tuple[float, float, float, float, float]  # u0, u1, z0, z1, roof height
    z_back: float


@dataclass(frozen=True)
class _Item:
    """A drawn thing: premultiplied RGB and alpha over a frame window, and its depth."""

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


Poly = tuple[np.ndarray, RGB, float]  # screen points (k, 2), colour, opacity


def _poly_item(polys: list[Poly], depth: float, w: int, h: int, ss: int = 3) -> _Item | None:
    """Polygons rasterised `ss` times finer and averaged (antialiased), clipped to the frame."""
    if not polys:
        return None
    pts = np.concatenate([p for p, _, _ in polys])
    pts = np.clip(pts, -8 * w, 9 * w)
    x0, x1 = max(int(math.floor(pts[:, 0].min())) - 1, 0), min(int(math.ceil(pts[:, 0].max())) + 1, w)
    y0, y1 = max(int(math.floor(pts[:, 1].min())) - 1, 0), min(int(math.ceil(pts[:, 1].max())) + 1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    img = Image.new("RGBA", ((x1 - x0) * ss, (y1 - y0) * ss), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    for p, rgb, a in polys:
        q = (np.clip(p, -8 * w, 9 * w) - [x0, y0]) * ss
        colour = tuple(int(np.clip(c, 0, 255)) for c in rgb) + (int(a * 255),)
        draw.polygon([(float(x), float(y)) for x, y in q], fill=colour)
    arr = np.asarray(img, dtype=np.float32)
    alpha = arr[..., 3] / 255.0
    prem = arr[..., :3] * alpha[..., None]
    hh, ww = y1 - y0, x1 - x0
    alpha = alpha.reshape(hh, ss, ww, ss).mean(axis=(1, 3))
    prem = prem.reshape(hh, ss, ww, ss, 3).mean(axis=(1, 3))
    return _Item(depth, prem, alpha, x0, y0)


def _composite(img: np.ndarray, depth: np.ndarray, item: _Item) -> None:
    """Draw `item` over `img` where the static scene is not in front of it."""
    hh, ww = item.alpha.shape
    sl = (slice(item.y0, item.y0 + hh), slice(item.x0, item.x0 + ww))
    seen = (depth[sl] > item.depth - 0.3).astype(np.float32)
    a = (item.alpha * seen)[..., None]
    img[sl] = img[sl] * (1 - a) + item.prem * seen[..., None]


# --- things: boxes, vehicles, people, objects ----------------------------------------------------


def _shade(colour: RGB | np.ndarray, normal: tuple[float, float, float], sun: np.ndarray) -> RGB:
    k = 0.55 + 0.5 * max(0.0, float(np.dot(normal, sun)))
    c = np.asarray(colour, dtype=np.float64) * k
    return float(c[0]), float(c[1]), float(c[2])


def _box(
    cam: _Camera,
    sun: np.ndarray,
    centre: tuple[float, float],
    half: tuple[float, float],
    ys: tuple[float, float],
    colour: RGB,
    *,
    sides: RGB | None = None,
) -> list[Poly]:
    """The faces of an axis-aligned box (u, z half sizes, y from ys[0] to ys[1]) that face the camera."""
    cu, cz = centre
    hu, hz = half
    y0, y1 = ys
    faces = []
    camera = np.array([0.0, cam.height, 0.0])
    u0, u1, z0, z1 = cu - hu, cu + hu, cz - hz, cz + hz
    quads = (
        ((0.0, 1.0, 0.0), [(u0, y1, z0), (u1, y1, z0), (u1, y1, z1), (u0, y1, z1)], colour),
        ((0.0, 0.0, -1.0), [(u0, y0, z0), (u1, y0, z0), (u1, y1, z0), (u0, y1, z0)], sides or colour),
        ((0.0, 0.0, 1.0), [(u0, y0, z1), (u1, y0, z1), (u1, y1, z1), (u0, y1, z1)], sides or colour),
        ((-1.0, 0.0, 0.0), [(u0, y0, z0), (u0, y0, z1), (u0, y1, z1), (u0, y1, z0)], sides or colour),
        ((1.0, 0.0, 0.0), [(u1, y0, z0), (u1, y0, z1), (u1, y1, z1), (u1, y1, z0)], sides or colour),
    )
    for normal, corners, col in quads:
        c = np.array(corners)
        if np.dot(camera - c.mean(axis=0), normal) <= 0 or c[:, 2].min() < 0.3:
            continue
        x, y = cam.project(c[:, 0], c[:, 1], c[:, 2])
        n = (normal[0] * cam.mirror, normal[1], normal[2])
        faces.append((np.stack([x, y], axis=1), _shade(col, n, sun), 1.0))
    return faces


def _shadow(cam: _Camera, centre: tuple[float, float], half: tuple[float, float], grow: float = 0.15) -> Poly:
    cu, cz = centre
    hu, hz = half[0] + grow, half[1] + grow
    c = np.array([(cu - hu, cz - hz), (cu + hu, cz - hz), (cu + hu, cz + hz), (cu - hu, cz + hz)])
    x, y = cam.project(c[:, 0], 0.0, c[:, 1])
    return np.stack([x, y], axis=1), (0.0, 0.0, 0.0), 0.4


@dataclass(frozen=True)
class _Vehicle:
    van: bool
    paint: RGB
    length: float
    width: float


PAINTS: tuple[RGB, ...] = (
    (176, 178, 182),
    (222, 223, 226),
    (30, 31, 35),
    (38, 52, 96),
    (150, 32, 34),
    (96, 99, 105),
    (52, 82, 62),
    (182, 166, 132),
    (120, 30, 60),
)
GLASS: RGB = (46, 56, 68)


def _vehicle(rng: np.random.Generator) -> _Vehicle:
    van = rng.random() < 0.25
    paint = PAINTS[int(rng.integers(len(PAINTS)))] if not van else PAINTS[int(rng.choice([0, 1, 1, 5]))]
    return _Vehicle(
        van, paint, float(rng.uniform(5.0, 5.6) if van else rng.uniform(4.1, 4.8)), float(rng.uniform(1.75, 2.0))
    )


def _vehicle_polys(
    cam: _Camera, sun: np.ndarray, v: _Vehicle, cu: float, cz: float, along_z: bool, forward: float
) -> list[Poly]:
    """A car or van as projected boxes; `forward` (+1/-1) is the way its nose points along its axis."""

    def rot(du: float, dz: float) -> tuple[float, float]:
        return (cu + du, cz + dz) if along_z else (cu + dz, cz + du)

    def half(hu: float, hz: float) -> tuple[float, float]:
        return (hu, hz) if along_z else (hz, hu)

    L, W = v.length, v.width
    polys = [_shadow(cam, (cu, cz), half(W / 2, L / 2))]
    for su in (-1, 1):
        for sz in (-1, 1):
            polys += _box(
                cam, sun, rot(su * (W / 2 - 0.16), sz * (L / 2 - 0.85)), half(0.13, 0.33), (0.0, 0.64), (26, 26, 28)
            )
    top = 2.25 if v.van else 1.0
    polys += _box(cam, sun, (cu, cz), half(W / 2, L / 2), (0.3, top), v.paint)
    if v.van:
        # windscreen on the nose, high up
        nz = forward * (L / 2 + 0.01)
        corners = [
            (-W / 2 + 0.12, 1.35, nz),
            (W / 2 - 0.12, 1.35, nz),
            (W / 2 - 0.12, 2.05, nz),
            (-W / 2 + 0.12, 2.05, nz),
        ]
    else:
        polys += _box(
            cam, sun, rot(0.0, -forward * 0.1 * L), half(W / 2 - 0.12, 0.27 * L), (1.0, 1.45), v.paint, sides=GLASS
        )
        corners = []
    quads = []
    if corners:
        quads.append((corners, GLASS))
    # lamps on the face nearest the camera's line of sight, when it is a front or rear face
    for sign, lamp in ((forward, (235, 232, 200)), (-forward, (190, 30, 30))):
        fz = sign * (L / 2 + 0.01)
        for su in (-1, 1):
            a, b = su * (W / 2 - 0.1), su * (W / 2 - 0.38)
            quads.append(([(a, 0.72, fz), (b, 0.72, fz), (b, 0.88, fz), (a, 0.88, fz)], lamp))
    camera = np.array([0.0, cam.height, 0.0])
    for corners_, colour in quads:
        pts = np.array([(*rot(du, dz), y) for du, y, dz in corners_])  # (u, z, y)
        face_z = pts[:, 1].mean()
        normal_sign = np.sign(corners_[0][2])
        centre = np.array([pts[:, 0].mean(), pts[:, 2].mean(), face_z])
        normal = np.array([0.0, 0.0, normal_sign]) if along_z else np.array([normal_sign, 0.0, 0.0])
        if np.dot(camera - centre, normal) <= 0 or pts[:, 1].min() < 0.3:
            continue
        x, y = cam.project(pts[:, 0], pts[:, 2], pts[:, 1])
        polys.append((np.stack([x, y], axis=1), colour, 1.0))
    return polys


@dataclass(frozen=True)
class _Look:
    """How one person looks (metres and RGB)."""

    height: float
    shoulders: float
    top: RGB
    legs: RGB
    skin: RGB
    hair: RGB
    coat: bool
    hat: RGB | None
    hood: bool
    bag: RGB | None


TOPS: tuple[RGB, ...] = (
    (40, 50, 82),
    (32, 32, 35),
    (112, 112, 118),
    (168, 150, 120),
    (86, 92, 62),
    (104, 72, 52),
    (112, 38, 42),
    (72, 92, 122),
    (205, 205, 200),
)
LEGS: tuple[RGB, ...] = ((36, 40, 52), (52, 58, 74), (92, 86, 76), (26, 26, 28), (70, 86, 112))
SKIN: tuple[RGB, ...] = ((226, 190, 160), (200, 152, 118), (152, 106, 76), (96, 66, 46))
HAIR: tuple[RGB, ...] = ((32, 26, 22), (82, 56, 36), (150, 120, 82), (172, 170, 166))
LOUD: tuple[RGB, ...] = ((216, 232, 40), (242, 122, 22), (204, 40, 160), (40, 200, 212), (230, 30, 30))


def _look(rng: np.random.Generator, *, loud: bool = False) -> _Look:
    def pick(options: tuple[RGB, ...]) -> RGB:
        return options[int(rng.integers(len(options)))]

    return _Look(
        height=float(rng.uniform(1.6, 1.9)),
        shoulders=float(rng.uniform(0.38, 0.48)),
        top=pick(LOUD) if loud else pick(TOPS),
        legs=pick(LOUD) if loud and rng.random() < 0.5 else pick(LEGS),
        skin=pick(SKIN),
        hair=pick(HAIR),
        coat=bool(rng.random() < 0.4),
        hat=(pick(TOPS) if rng.random() < 0.2 else None) if not loud else None,
        hood=loud and rng.random() < 0.6,
        bag=pick(LEGS + TOPS) if rng.random() < 0.3 else None,
    )


def _person_item(
    cam: _Camera,
    look: _Look,
    u: float,
    z: float,
    w: int,
    h: int,
    *,
    phase: float,
    side: float,
    facing: int,
    towards: bool,
    feet_y: float = 0.0,
) -> _Item | None:
    """A person whose feet are at (u, feet_y, z): parts as signed distances, antialiased at the pixel."""
    if z < 1.0:
        return None
    fx, fy = cam.project(u, feet_y, z)
    s = cam.f / z  # pixels per metre
    k = look.height / 1.75
    x0, x1 = max(int(fx - 0.5 * s) - 1, 0), min(int(fx + 0.5 * s) + 2, w)
    y0, y1 = max(int(fy - 1.95 * k * s) - 1, 0), min(int(fy + 0.1 * s) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    px, py = (xx + 0.5 - fx) / s, (fy - yy - 0.5) / s  # metres, y up from the feet
    prem = np.zeros((*px.shape, 3))
    alpha = np.zeros(px.shape)
    light = 0.88 + 0.22 * np.clip(px / (look.shoulders * 0.6), -1, 1) * cam.mirror

    def put(d: np.ndarray, colour: RGB, shade: bool = True) -> None:
        a = np.clip(0.5 - d * s, 0, 1)
        c = np.asarray(colour)[None, None, :] * (light[..., None] if shade else 1.0)
        prem[:] = prem * (1 - a[..., None]) + c * a[..., None]
        alpha[:] = alpha * (1 - a) + a

    narrow = 1 - 0.4 * side
    swing = math.sin(phase) * 0.24 * side * facing
    lift = (1 - side) * 0.07
    hip = 0.085 * k * narrow
    shadow = np.hypot(px / (0.32 * k), (py + 0.0) / 0.05) - 1
    put(shadow * 0.05, (0, 0, 0), shade=False)
    alpha *= 0.35
    prem *= 0.35
    for sgn, phase_sign in ((-1, 1), (1, -1)):
        foot = (sgn * hip + phase_sign * swing, 0.06 * k + lift * max(0.0, phase_sign * math.sin(phase)))
        dark = 0.8 if sgn * facing < 0 and side > 0.5 else 1.0
        put(_seg_dist(px, py, (sgn * hip, 0.92 * k), foot) - 0.068 * k, tuple(c * dark for c in look.legs))  # type: ignore[arg-type]
        put(np.hypot(px - foot[0] - 0.04 * side * facing, py - foot[1] + 0.02) - 0.055 * k, (30, 28, 26))
    sh = look.shoulders / 2 * narrow
    if look.coat:
        put(_rbox_dist(px, py, (0.0, 0.98 * k), (sh * 0.95, 0.42 * k), 0.07 * k), look.top)
    else:
        put(_rbox_dist(px, py, (0.0, 1.17 * k), (sh, 0.25 * k), 0.07 * k), look.top)
    if look.bag is not None:
        put(_rbox_dist(px, py, (-(sh + 0.02) * facing, 0.92 * k), (0.09 * k, 0.11 * k), 0.03 * k), look.bag)
    arm_top = tuple(c * 0.85 for c in look.top)
    for sgn, phase_sign in ((-1, -1), (1, 1)):
        hand = (sgn * (sh + 0.01) + phase_sign * swing * 0.8, 0.8 * k)
        put(_seg_dist(px, py, (sgn * (sh - 0.05), 1.36 * k), hand) - 0.05 * k, arm_top)  # type: ignore[arg-type]
        put(np.hypot(px - hand[0], py - hand[1] + 0.04 * k) - 0.042 * k, look.skin)
    put(_seg_dist(px, py, (0.0, 1.42 * k), (0.0, 1.52 * k)) - 0.045 * k, look.skin)
    head = np.hypot(px, py - 1.61 * k) - 0.105 * k
    if look.hood:
        put(np.hypot(px, py - 1.62 * k) - 0.13 * k, look.top)
        if towards:
            put(np.hypot(px, py - 1.6 * k) - 0.075 * k, look.skin)
    else:
        put(head, look.skin)
        if towards:
            put(np.maximum(np.hypot(px, py - 1.63 * k) - 0.112 * k, 1.64 * k - py), look.hair)
        else:
            put(np.hypot(px, py - 1.63 * k) - 0.112 * k, look.hair)
        if look.hat is not None:
            put(_rbox_dist(px, py, (0.0, 1.71 * k), (0.11 * k, 0.045 * k), 0.02 * k), look.hat)
    return _Item(z, prem.astype(np.float32), alpha.astype(np.float32), x0, y0)


OBJECTS = ("cardboard box", "wheelie bin", "suitcase", "holdall", "sack")
_OBJECT_WIDTH = {
    "cardboard box": (0.45, 0.8),
    "wheelie bin": (0.58, 0.72),
    "suitcase": (0.4, 0.5),
    "holdall": (0.55, 0.75),
    "sack": (0.45, 0.6),
}


@dataclass(frozen=True)
class _Thing:
    """An unattended object: its kind, width (m), colour and where it stands."""

    shape: str
    width: float
    colour: RGB
    u: float
    z: float


def _thing_colour(rng: np.random.Generator, shape: str) -> RGB:
    options: dict[str, tuple[RGB, ...]] = {
        "cardboard box": ((176, 136, 88), (156, 118, 74), (190, 160, 110)),
        "wheelie bin": ((40, 110, 60), (40, 70, 150), (34, 34, 36), (120, 122, 126), (150, 60, 30)),
        "suitcase": ((170, 30, 40), (30, 60, 130), (26, 26, 28), (200, 160, 40), (60, 150, 140)),
        "holdall": ((30, 36, 70), (24, 24, 26), (160, 30, 40), (90, 110, 60)),
        "sack": ((225, 225, 220), (120, 120, 118), (28, 28, 30), (60, 120, 60)),
    }
    pal = options[shape]
    return pal[int(rng.integers(len(pal)))]


def _thing_item(cam: _Camera, sun: np.ndarray, t: _Thing, w: int, h: int) -> _Item | None:
    s = t.width / 2
    if t.shape in ("holdall", "sack"):
        fx, fy = cam.project(t.u, 0.0, t.z)
        px_m = cam.f / t.z
        hgt = s * (1.2 if t.shape == "holdall" else 2.3)
        x0, x1 = max(int(fx - s * px_m * 1.4) - 1, 0), min(int(fx + s * px_m * 1.4) + 2, w)
        y0, y1 = max(int(fy - (hgt + 0.25) * px_m) - 1, 0), min(int(fy + 0.1 * px_m) + 2, h)
        if x1 <= x0 or y1 <= y0:
            return None
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        px, py = (xx + 0.5 - fx) / px_m, (fy - yy - 0.5) / px_m
        prem = np.zeros((*px.shape, 3))
        alpha = np.zeros(px.shape)
        light = 0.9 + 0.25 * np.clip(py / hgt, 0, 1)

        def put(d: np.ndarray, colour: RGB, a_max: float = 1.0) -> None:
            a = np.clip(0.5 - d * px_m, 0, 1) * a_max
            prem[:] = prem * (1 - a[..., None]) + (np.asarray(colour) * light[..., None]) * a[..., None]
            alpha[:] = alpha * (1 - a) + a

        put(np.hypot(px / (s * 1.25), py / 0.06) - 1, (0, 0, 0), 0.4)
        if t.shape == "holdall":
            put(_rbox_dist(px, py, (0.0, hgt / 2), (s, hgt / 2), 0.35 * hgt), t.colour)
            ring = np.abs(np.hypot(px / (0.45 * s), (py - hgt) / (0.5 * hgt)) - 1) * 0.25 * hgt - 0.02
            put(np.maximum(ring, hgt - py), tuple(c * 0.6 for c in t.colour))  # type: ignore[arg-type]
            put(_rbox_dist(px, py, (0.0, hgt * 0.55), (s * 0.9, 0.015), 0.005), tuple(c * 0.7 for c in t.colour))  # type: ignore[arg-type]
        else:
            body = np.hypot(px / (s * (1.0 - 0.25 * np.clip(py / hgt, 0, 1))), (py - hgt * 0.45) / (hgt * 0.5)) - 1
            put(body * 0.2, t.colour)
            put(_rbox_dist(px, py, (0.0, hgt * 0.97), (0.05, 0.06), 0.02), tuple(c * 0.75 for c in t.colour))  # type: ignore[arg-type]
        return _Item(t.z - 0.3, prem.astype(np.float32), alpha.astype(np.float32), x0, y0)
    if t.shape == "cardboard box":
        depth, height = s * 0.9, s * 1.5
        polys = [_shadow(cam, (t.u, t.z), (s, depth), 0.08)]
        polys += _box(cam, sun, (t.u, t.z), (s, depth), (0.0, height), t.colour)
        polys += _box(cam, sun, (t.u, t.z), (0.06, depth + 0.005), (height - 0.005, height + 0.004), (200, 190, 160))
    elif t.shape == "wheelie bin":
        depth, height = s * 1.15, 1.05
        polys = [_shadow(cam, (t.u, t.z), (s, depth), 0.08)]
        polys += _box(cam, sun, (t.u, t.z), (s * 0.92, depth * 0.92), (0.05, height - 0.05), t.colour)
        lid = tuple(c * 0.8 for c in t.colour)
        polys += _box(cam, sun, (t.u, t.z), (s, depth), (height - 0.05, height), lid)  # type: ignore[arg-type]
    else:
        depth, height = 0.13, s * 3.0
        polys = [_shadow(cam, (t.u, t.z), (s, depth), 0.05)]
        polys += _box(cam, sun, (t.u, t.z), (s, depth), (0.05, height), t.colour)
        polys += _box(cam, sun, (t.u, t.z), (s * 0.35, 0.02), (height, height + 0.12), (40, 40, 40))
    return _poly_item(polys, t.z - depth - 0.3, w, h)


# --- places --------------------------------------------------------------------------------------


def _noise_table(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth value noise in [-1, 1] over `shape`, `cells` random values across."""
    small = rng.uniform(-1, 1, (max(2, shape[0] // cells), max(2, shape[1] // cells))).astype(np.float32)
    img = Image.fromarray(small, mode="F").resize((shape[1], shape[0]), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float64)


class _Place:
    """A street, its static scene (image and per-pixel depth), its props and its routine traffic."""

    def __init__(
        self,
        rng: np.random.Generator,
        w: int,
        h: int,
        duration_s: float,
        *,
        mirror: float | None = None,
        tilt: float = 0.0,
    ) -> None:
        self.w, self.h = w, h
        m = mirror if mirror is not None else float(rng.choice([-1.0, 1.0]))
        vx = float(rng.uniform(0.38, 0.46)) * w
        hy = (float(rng.uniform(0.27, 0.33)) + tilt) * h
        height = float(rng.uniform(6.5, 8.0))
        z_near = float(rng.uniform(8.0, 10.0))  # the ground point at the bottom row
        self.cam = _Camera((h - hy) * z_near / height, vx if m > 0 else w - vx, hy, height, m)
        wall = -float(rng.uniform(8.0, 9.5))
        road0 = wall + float(rng.uniform(2.8, 3.8))
        road1 = road0 + float(rng.uniform(6.5, 7.5))
        pave_r = road1 + float(rng.uniform(2.2, 3.0))
        lawn0 = pave_r + 17.0
        bay_z0 = float(rng.uniform(6.0, 9.0))
        closed0 = bay_z0 + 2.5 * int(rng.integers(6, 10))
        k_u0 = lawn0 + float(rng.uniform(1.0, 2.5))
        k_z0 = float(rng.uniform(27, 33))
        self.lay = L = _Layout(
            wall=wall,
            road=(road0, road1),
            pave_r=pave_r,
            bays_a=(pave_r, pave_r + 5.0),
            aisle=(pave_r + 5.0, pave_r + 11.5),
            bays_b=(pave_r + 11.5, pave_r + 16.5),
            lawn=(lawn0, lawn0 + 14.0),
            lawn_z0=float(rng.uniform(15, 19)),
            bay_z0=bay_z0,
            crossing=float(rng.uniform(13, 20)),
            closed=(closed0, closed0 + 7.5),
            kiosk=(
                k_u0,
                k_u0 + float(rng.uniform(4.0, 5.5)),
                k_z0,
                k_z0 + float(rng.uniform(4.0, 6.0)),
                float(rng.uniform(2.8, 3.4)),
            ),
            z_back=float(rng.uniform(52, 66)),
        )
        az = float(rng.uniform(0, 2 * np.pi))
        sun = np.array([math.cos(az) * 0.6, 0.75, math.sin(az) * 0.6])
        self.sun = sun / np.linalg.norm(sun)
        self.colours = {
            "road": np.array([78, 80, 84]) * rng.uniform(0.85, 1.15),
            "park": np.array([92, 92, 94]) * rng.uniform(0.85, 1.15),
            "pave": np.array([150, 144, 136]) * rng.uniform(0.88, 1.1),
            "kerb": np.array([182, 180, 174]),
            "grass": np.array([78, 112, 56]) * rng.uniform(0.85, 1.15),
            "gravel": np.array([128, 118, 100]) * rng.uniform(0.9, 1.1),
            "line": np.array([226, 226, 220]),
            "yellow": np.array([214, 178, 44]),
            "haze": np.array([180, 188, 198]),
        }
        self.noise = _noise_table(rng, (400, 700), 3)  # ground texture, 0.25 m cells: u in [-40, 60], z in [0, 175]
        self.parked: list[tuple[_Vehicle, float, float, float]] = []
        for row, (a, b) in (("a", L.bays_a), ("b", L.bays_b)):
            for k in range(40):
                zc = L.bay_z0 + 2.5 * k + 1.25
                if zc > L.z_back - 3:
                    break
                walkway = row == "a" and L.crossing - 1.5 < zc < L.crossing + 4.5
                closed = row == "b" and L.closed[0] < zc < L.closed[1]
                if walkway or closed or rng.random() > 0.55:
                    continue
                v = _vehicle(rng)
                v = _Vehicle(v.van, v.paint, min(v.length, 4.8), v.width)
                nose = -1.0 if row == "a" else 1.0  # noses to the aisle
                self.parked.append(
                    (v, (a + b) / 2 + float(rng.uniform(-0.2, 0.2)), zc + float(rng.uniform(-0.15, 0.15)), nose)
                )
        self.trees = []
        for _ in range(int(rng.integers(1, 3))):
            tu, tz = float(rng.uniform(L.lawn[0] + 1, L.lawn[0] + 12)), float(rng.uniform(L.lawn_z0 + 2, L.z_back - 4))
            if not (L.kiosk[0] - 2 < tu < L.kiosk[1] + 2 and L.kiosk[2] - 2 < tz < L.kiosk[3] + 2):
                self.trees.append((tu, tz, float(rng.uniform(1.6, 2.6))))
        self.facades = self._facade_plan(rng)
        self.image, self.depth = self._static(rng)
        self.traffic = _Traffic(rng, self, duration_s)

    # --- the static scene ---

    def _facade_plan(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Buildings along each wall: breaks, heights and styles."""
        plan = {}
        for name, start, stop in (("left", 0.0, 800.0), ("right", 0.0, 800.0), ("back", self.lay.pave_r + 0.3, 200.0)):
            edges = [start - 1.0]
            while edges[-1] < stop:
                edges.append(edges[-1] + float(rng.uniform(8, 22)))
            n = len(edges) - 1
            plan[name] = np.array(edges)
            plan[name + ":height"] = rng.uniform(9, 24, n)
            plan[name + ":storey"] = rng.uniform(3.0, 3.6, n)
            plan[name + ":pitch"] = rng.uniform(2.4, 3.6, n)
            plan[name + ":win"] = rng.uniform(0.35, 0.6, n)
            plan[name + ":ground"] = rng.integers(0, 3, n)  # shop front, roller shutters, plain with doors
            base = np.array([[150, 82, 62], [120, 112, 104], [196, 184, 160], [96, 88, 84], [170, 150, 118]], float)
            plan[name + ":colour"] = base[rng.integers(0, len(base), n)] * rng.uniform(0.85, 1.1, (n, 1))
            plan[name + ":sign"] = rng.uniform(30, 220, (n, 3))
        return plan

    def _facade(
        self, name: str, along: np.ndarray, up: np.ndarray, fa: np.ndarray, fu: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Colour of wall points (along, up) in metres with footprints; and whether a building is there."""
        p = self.facades
        edges = p[name]
        idx = np.clip(np.searchsorted(edges, along) - 1, 0, len(edges) - 2)
        a = along - edges[idx]
        inside = up <= p[name + ":height"][idx]
        col = p[name + ":colour"][idx].astype(np.float64).copy()
        tex = _lookup(self.noise, np.mod(along * 3.0, 399), np.mod(up * 3.0 + 50, 699))
        col *= (1 + 0.06 * tex * np.clip(0.3 / np.maximum(fa, fu), 0, 1))[:, None]
        storey, pitch = p[name + ":storey"][idx], p[name + ":pitch"][idx]
        k = np.floor(up / storey)
        v = up - k * storey
        r = np.mod(a, pitch)
        wshare = p[name + ":win"][idx] * pitch
        upper = (k >= 1) & (up < p[name + ":height"][idx] - 0.8)
        frame = (
            _band(r, (pitch - wshare) / 2 - 0.08, (pitch + wshare) / 2 + 0.08, fa) * _band(v, 0.82, 2.58, fu) * upper
        )
        _mix(col, frame, (214, 210, 200))
        glass = _band(r, (pitch - wshare) / 2, (pitch + wshare) / 2, fa) * _band(v, 0.9, 2.5, fu) * upper
        lit = _hash(np.floor(a / pitch) + idx * 50, k, 3.0)
        glass_col = (
            np.stack([50 + 40 * lit, 58 + 42 * lit, 70 + 40 * lit], axis=1)
            * (0.8 + 0.35 * np.clip((v - 0.9) / 1.6, 0, 1))[:, None]
        )
        _mix(col, glass, glass_col)
        ground = p[name + ":ground"][idx]
        g0 = k == 0
        shop = g0 & (ground == 0)
        _mix(col, _band(v, 0.3, 2.55, fu) * _stripes(a, 5.0, 4.2, fa, 0.4) * shop, (64, 78, 88))
        _mix(col, _band(v, 2.65, 3.1, fu) * shop, p[name + ":sign"][idx])
        shutter = g0 & (ground == 1)
        ribs = 0.85 + 0.15 * _stripes(v, 0.15, 0.07, fu)
        sh_cov = _band(v, 0.0, 3.0, fu) * _stripes(a, 6.0, 4.2, fa, 0.9) * shutter
        _mix(col, sh_cov, np.stack([150 * ribs, 152 * ribs, 156 * ribs], axis=1))
        door = g0 & (ground == 2)
        _mix(col, _band(v, 0.0, 2.2, fu) * _stripes(a, 7.0, 1.1, fa, 2.0) * door, (70, 52, 40))
        parapet = _band(up, p[name + ":height"][idx] - 0.5, p[name + ":height"][idx], fu)
        col *= (1 - 0.25 * parapet)[:, None]
        return col, inside

    def _ground(self, u: np.ndarray, z: np.ndarray, fu: np.ndarray, fz: np.ndarray) -> np.ndarray:
        L, c = self.lay, self.colours
        col = np.tile(c["gravel"], (len(u), 1)).astype(np.float64)
        fine = np.clip(0.4 / np.maximum(fu, fz), 0, 1)
        tex = _lookup(self.noise, (u + 40) * 4, z * 4) * fine
        grain = (_hash(np.floor(u * 8), np.floor(z * 8), 1.0) - 0.5) * np.clip(0.08 / np.maximum(fu, fz), 0, 1)
        _mix(col, _band(u, L.wall - 1, L.road[0], fu), c["pave"])
        _mix(col, _band(u, L.road[0], L.road[1], fu), c["road"])
        _mix(col, _band(u, L.road[1], L.pave_r, fu), c["pave"])
        _mix(col, _band(u, L.pave_r, L.bays_b[1], fu) * (z < L.z_back + 1), c["park"])
        lawn = _band(u, L.lawn[0], L.lawn[1], fu) * _band(z, L.lawn_z0, 1e4, fz)
        _mix(col, lawn, c["grass"])
        col *= (1 + 0.07 * tex + 0.12 * grain * (1 + lawn))[:, None]
        pave = _band(u, L.wall - 1, L.road[0], fu) + _band(u, L.road[1], L.pave_r, fu)
        joints = np.clip(_stripes(u, 0.9, 0.03, fu) + _stripes(z, 0.9, 0.03, fz), 0, 1) * pave
        col *= (1 - 0.3 * joints)[:, None]
        for a, b in ((L.road[0] - 0.25, L.road[0]), (L.road[1], L.road[1] + 0.25)):
            _mix(col, _band(u, a, b, fu), c["kerb"])
        _mix(col, _band(u, L.lawn[0] - 0.15, L.lawn[0], fu) * _band(z, L.lawn_z0, 1e4, fz), c["kerb"])
        _mix(col, _band(z, L.lawn_z0 - 0.15, L.lawn_z0, fz) * _band(u, L.lawn[0], L.lawn[1], fu), c["kerb"])
        zebra = _band(z, L.crossing, L.crossing + 3.0, fz)
        for a in (L.road[0] + 0.3, L.road[1] - 0.42):
            _mix(col, _band(u, a, a + 0.12, fu) * (1 - zebra), c["line"])
        mid = (L.road[0] + L.road[1]) / 2
        _mix(col, _band(u, mid - 0.06, mid + 0.06, fu) * _stripes(z, 9.0, 3.0, fz) * (1 - zebra), c["line"])
        _mix(
            col,
            zebra * _stripes(u, 1.0, 0.5, fu, L.road[0] + 0.5) * _band(u, L.road[0] + 0.5, L.road[1] - 0.5, fu),
            c["line"],
        )
        rows = z >= L.bay_z0
        lines = _stripes(z, 2.5, 0.1, fz, L.bay_z0) * rows * (z < L.z_back - 2)
        walk = _band(z, L.crossing - 1.25, L.crossing + 4.25, fz)
        _mix(col, lines * _band(u, L.bays_a[0] + 0.3, L.bays_a[1], fu) * (1 - walk), c["line"])
        closed = _band(z, *L.closed, fz) * _band(u, L.bays_b[0], L.bays_b[1] - 0.3, fu)
        _mix(col, lines * _band(u, L.bays_b[0], L.bays_b[1] - 0.3, fu) * (1 - closed), c["line"])
        hatch = _stripes((u + z) / math.sqrt(2), 1.0, 0.22, np.maximum(fu, fz))
        inner = _band(z, L.closed[0] + 0.2, L.closed[1] - 0.2, fz) * _band(u, L.bays_b[0] + 0.2, L.bays_b[1] - 0.5, fu)
        _mix(col, np.clip(closed - inner + inner * hatch, 0, 1), c["yellow"])
        hz = 1 - np.exp(-z / 380.0)
        _mix(col, hz, c["haze"])
        return col

    def _static(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The static scene at twice the size, averaged down: per-pixel layers, then props."""
        ss = 2
        cam, L = self.cam.scaled(ss), self.lay
        H, W = self.h * ss, self.w * ss
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
        yy += 0.5
        xx += 0.5
        img = np.zeros((H, W, 3))
        depth = np.full((H, W), np.inf)
        # sky
        t = np.clip(yy / max(cam.hy, 1), 0, 1)
        sky_top, sky_low = np.array([96, 132, 180]) * rng.uniform(0.85, 1.1), np.array([196, 206, 214])
        img[:] = sky_top * (1 - t[..., None]) + sky_low * t[..., None]
        clouds = np.clip(_noise_table(rng, (H, W), 40 * ss), 0, 1)
        img += (clouds * 50)[..., None]
        dx = (xx - cam.vx) * cam.mirror  # lateral offset from the vanishing point, in the layout's sense
        # ground
        g = yy > cam.hy + 0.5
        z = np.where(g, cam.f * cam.height / np.maximum(yy - cam.hy, 1e-6), np.inf)
        u = dx * z / cam.f
        sel = g & (z < 5000)
        zs, us = z[sel], u[sel]
        img[sel] = self._ground(us, zs, zs / cam.f, zs * zs / (cam.f * cam.height))
        depth[sel] = zs
        # walls: left canyon wall (u = wall, all along), right canyon wall beyond the back row, back row
        for name, plane in (("left", L.wall), ("right", L.pave_r + 0.3)):
            side = dx * np.sign(plane) > 0.5
            zw = np.where(side, cam.f * plane / np.where(side, dx, 1.0), np.inf)
            up = cam.height - (yy - cam.hy) * zw / cam.f
            ok = side & (zw > 0.5) & (zw < 5000) & (up >= 0) & (zw < depth)
            if name == "right":
                ok &= zw >= L.z_back
            zsel, usel = zw[ok], up[ok]
            col, inside = self._facade(name, zsel, usel, zsel * zsel / (cam.f * abs(plane)), zsel / cam.f)
            hz = (1 - np.exp(-zsel / 380.0))[:, None]
            col = col * (1 - hz) + self.colours["haze"] * hz
            keep = np.zeros_like(ok)
            keep[ok] = inside
            img[keep] = col[inside]
            depth[keep] = zsel[inside]
        zb = L.z_back
        ub = dx * zb / cam.f
        upb = cam.height - (yy - cam.hy) * zb / cam.f
        ok = (ub >= L.pave_r + 0.3) & (upb >= 0) & (zb < depth)
        col, inside = self._facade(
            "back", ub[ok], upb[ok], np.full(ok.sum(), zb / cam.f), np.full(ok.sum(), zb / cam.f)
        )
        keep = np.zeros_like(ok)
        keep[ok] = inside
        img[keep] = col[inside]
        depth[keep] = zb
        # down to the frame's size
        img = img.reshape(self.h, ss, self.w, ss, 3).mean(axis=(1, 3)).astype(np.float32)
        depth = depth.reshape(self.h, ss, self.w, ss).min(axis=(1, 3)).astype(np.float32)
        self.sky = ~np.isfinite(depth)
        # props, far to near
        props: list[tuple[float, list[Poly], float]] = []
        cam1 = self.cam
        k = L.kiosk
        kc, kh = ((k[0] + k[1]) / 2, (k[2] + k[3]) / 2), ((k[1] - k[0]) / 2, (k[3] - k[2]) / 2)
        body = [_shadow(cam1, kc, kh, 0.4)]
        body += _box(cam1, self.sun, kc, kh, (0.0, k[4]), (188, 178, 160), sides=(170, 160, 146))
        body += _box(cam1, self.sun, kc, (kh[0] - 0.15, kh[1] - 0.15), (k[4], k[4] + 0.02), (84, 82, 80))
        door_u = kc[0] - kh[0] * 0.3 * cam1.mirror
        corners = np.array([(door_u - 0.45, 0.0), (door_u + 0.45, 0.0), (door_u + 0.45, 2.1), (door_u - 0.45, 2.1)])
        dxy = cam1.project(corners[:, 0], corners[:, 1], k[2] - 0.01)
        body.append((np.stack(dxy, axis=1), (70, 90, 110), 1.0))
        props.append((k[3], body, k[2]))
        for tu, tz, r in self.trees:
            poly = _box(cam1, self.sun, (tu, tz), (0.14, 0.14), (0.0, 2.2), (84, 64, 46))
            cx, cy = cam1.project(tu, 2.2 + r * 0.9, tz)
            rad = cam1.f * r / tz
            ang = np.linspace(0, 2 * np.pi, 14, endpoint=False)
            wob = 1 + 0.08 * np.sin(ang * 3 + tu)
            crown = np.stack([cx + rad * wob * np.cos(ang), cy + rad * 0.85 * wob * np.sin(ang)], axis=1)
            poly.append((crown, (52, 86, 44), 1.0))
            inner = np.stack(
                [cx - rad * 0.2 + rad * 0.6 * np.cos(ang), cy - rad * 0.25 + rad * 0.5 * np.sin(ang)], axis=1
            )
            poly.append((inner, (70, 110, 56), 1.0))
            props.append((tz, [_shadow(cam1, (tu, tz), (r * 0.8, r * 0.6), 0.0), *poly], tz - 0.2))
        for v, cu, cz, nose in self.parked:
            props.append((cz, _vehicle_polys(cam1, self.sun, v, cu, cz, False, nose), cz - v.width / 2))
        for z_l in np.arange(float(rng.uniform(6, 12)), L.z_back + 30, float(rng.uniform(14, 20))):
            for lu in (L.road[0] - 0.6, L.road[1] + 0.6):
                pole = _box(cam1, self.sun, (lu, z_l), (0.08, 0.08), (0.0, 6.5), (70, 74, 78))
                arm_u = lu + (1.0 if lu < 0 else -1.0)
                pole += _box(cam1, self.sun, ((lu + arm_u) / 2, z_l), (0.55, 0.05), (6.4, 6.5), (70, 74, 78))
                pole += _box(cam1, self.sun, (arm_u, z_l), (0.3, 0.15), (6.25, 6.45), (210, 212, 200))
                props.append((z_l, pole, z_l - 0.1))
        for zb_ in np.arange(L.closed[0] + 0.3, L.closed[1], 1.8):
            props.append(
                (
                    zb_,
                    _box(cam1, self.sun, (L.bays_b[0] + 0.25, zb_), (0.08, 0.08), (0.0, 0.95), (220, 180, 30)),
                    zb_ - 0.1,
                )
            )
        for _, polys, dmin in sorted(props, key=lambda p: -p[0]):
            item = _poly_item(polys, dmin, self.w, self.h)
            if item is None:
                continue
            hh, ww = item.alpha.shape
            sl = (slice(item.y0, item.y0 + hh), slice(item.x0, item.x0 + ww))
            img[sl] = img[sl] * (1 - item.alpha[..., None]) + item.prem
            opaque = item.alpha > 0.5
            depth[sl][opaque] = np.minimum(depth[sl][opaque], dmin)
        self.kiosk_roof_depth = k[2]  # the kiosk's depth in the static scene: its nearest face
        return img, depth

    def visible(self, u: float, z: float, y: float = 0.0, margin: float = 0.03) -> bool:
        x, row = self.cam.project(u, y, z)
        return bool(margin * self.w <= x <= (1 - margin) * self.w and margin * self.h <= row <= (1 - margin) * self.h)

    def render(self, t: float, extra: list[_Item]) -> tuple[np.ndarray, np.ndarray]:
        """The scene at time t with its traffic and `extra` things, far to near."""
        img = self.image.copy()
        items = self.traffic.items(t) + extra
        for item in sorted(items, key=lambda it: -it.depth):
            _composite(img, self.depth, item)
        return img, self.depth


# --- routine traffic -----------------------------------------------------------------------------


@dataclass
class _Trip:
    walker: bool
    start: float
    path: np.ndarray  # (k, 2) waypoints (u, z)
    speed: float
    look: _Look | None = None
    vehicle: _Vehicle | None = None
    cum: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(self.path, axis=0).T))])

    @property
    def end(self) -> float:
        return self.start + float(self.cum[-1]) / self.speed

    def at(self, t: float) -> tuple[float, float, float, float, float]:
        """(u, z, du, dz, distance walked) at time t."""
        d = min(max((t - self.start) * self.speed, 0.0), float(self.cum[-1]))
        k = min(int(np.searchsorted(self.cum, d, side="right")) - 1, len(self.path) - 2)
        a, b = self.path[k], self.path[k + 1]
        seg = max(float(self.cum[k + 1] - self.cum[k]), 1e-9)
        f = (d - self.cum[k]) / seg
        p = a + (b - a) * f
        return float(p[0]), float(p[1]), float(b[0] - a[0]), float(b[1] - a[1]), d


class _Traffic:
    """People and vehicles on the routes a place has; nobody uses the lawn, the roof or the closed bay."""

    def __init__(self, rng: np.random.Generator, place: _Place, duration_s: float) -> None:
        self.place = place
        L = place.lay
        self.trips: list[_Trip] = []
        for _ in range(int(rng.integers(4, 8))):
            t = -float(rng.uniform(0, 60))
            while t < duration_s:
                trip = _Trip(True, t, self._walk(rng), float(rng.uniform(1.1, 1.7)), look=_look(rng))
                self.trips.append(trip)
                t = trip.end + float(rng.uniform(1, 8))
        lanes = ((L.road[0] + 1.75, -1.0), (L.road[1] - 1.75, 1.0))
        for k in range(int(rng.integers(2, 4))):
            u, way = lanes[k % 2]
            t = -float(rng.uniform(0, 20))
            while t < duration_s:
                far = float(rng.uniform(110, 200))
                path = np.array([[u, far], [u, 3.5]]) if way < 0 else np.array([[u, 3.5], [u, far]])
                trip = _Trip(False, t, path, float(rng.uniform(7, 12)), vehicle=_vehicle(rng))
                self.trips.append(trip)
                t = trip.end + float(rng.uniform(2, 14))
        t = float(rng.uniform(0, 30))
        au = (L.aisle[0] + L.aisle[1]) / 2
        while t < duration_s:
            path = np.array([[au, L.z_back - 4], [au, 3.5]])
            trip = _Trip(
                False,
                t,
                path if rng.random() < 0.5 else path[::-1].copy(),
                float(rng.uniform(2.5, 4.0)),
                vehicle=_vehicle(rng),
            )
            self.trips.append(trip)
            t = trip.end + float(rng.uniform(12, 35))

    def _walk(self, rng: np.random.Generator) -> np.ndarray:
        L = self.place.lay
        route = int(rng.integers(0, 4))
        far, near = float(rng.uniform(25, 70)), 5.0
        if route == 0:  # the left pavement
            u = float(rng.uniform(L.wall + 1.2, L.road[0] - 0.5))
            path = np.array([[u, far], [u, near]])
        elif route == 1:  # the right pavement
            u = float(rng.uniform(L.road[1] + 0.5, L.pave_r - 0.4))
            path = np.array([[u, far], [u, near]])
        elif route == 2:  # over the zebra and up the aisle
            ul = float(rng.uniform(L.wall + 1.2, L.road[0] - 0.5))
            zc = L.crossing + float(rng.uniform(0.5, 2.5))
            ua = L.aisle[0] + float(rng.uniform(0.5, 1.3))
            path = np.array([[ul, far], [ul, zc], [ua, zc], [ua, float(rng.uniform(30, L.z_back - 3))]])
        else:  # along the aisle
            ua = L.aisle[1] - float(rng.uniform(0.5, 1.3))
            path = np.array([[ua, near], [ua, L.z_back - 3]])
        return path if rng.random() < 0.5 else path[::-1].copy()

    def items(self, t: float) -> list[_Item]:
        out = []
        cam, w, h = self.place.cam, self.place.w, self.place.h
        for trip in self.trips:
            if not trip.start <= t < trip.end:
                continue
            u, z, du, dz, d = trip.at(t)
            if trip.look is not None:
                side = abs(du) / (abs(du) + abs(dz) + 1e-9)
                facing = 1 if du * cam.mirror >= 0 else -1
                item = _person_item(
                    cam, trip.look, u, z, w, h, phase=2 * np.pi * d / 1.4, side=side, facing=facing, towards=dz < 0
                )
            else:
                assert trip.vehicle is not None
                if z - trip.vehicle.length / 2 < 1.5:
                    continue
                polys = _vehicle_polys(cam, self.place.sun, trip.vehicle, u, z, True, 1.0 if dz > 0 else -1.0)
                item = _poly_item(polys, z - trip.vehicle.length / 2, w, h)
            if item is not None:
                out.append(item)
        return out


# --- one video -----------------------------------------------------------------------------------


@dataclass
class _Event:
    kind: str
    name: str
    first: int  # first anomalous frame
    stop: int  # first normal frame after it
    fps: int
    thing: _Thing | None = None
    look: _Look | None = None
    vehicle: _Vehicle | None = None
    path: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)  # u0, z0, u1, z1, feet height
    speed: float = 1.2
    cover: np.ndarray | None = None
    cover_colour: RGB = (0.0, 0.0, 0.0)
    view_seed: int = 0

    @property
    def start(self) -> float:
        return self.first / self.fps

    @property
    def end(self) -> float:
        return self.stop / self.fps


class StreetVideo:
    """One camera of the `street` family: frames rendered on demand, deterministic for the seed."""

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
        self.width, self.height = size or STREET_SIZE
        self.fps = fps or STREET_FPS
        self.duration_s = duration_s
        self.warmup_s = warmup_s
        self.frames = int(round(duration_s * self.fps))
        base = [_STREAM, seed, STREET_VERSION]
        self._base = base
        w, h = self.width, self.height
        self.place = _Place(np.random.default_rng([*base, 0]), w, h, duration_s)
        self._views: dict[int, _Place] = {}
        schedule = self._schedule(np.random.default_rng([*base, 1]))
        self.events: list[_Event] = schedule if anomalies else []
        # Nuisances are drawn against the schedule either way: without anomalies, the same video.
        rng = np.random.default_rng([*base, 2])
        self.crf = int(rng.integers(21, 30))
        self.noise = float(rng.uniform(1.5, 4.5))
        self.light = float(rng.uniform(0.05, 0.10))
        self.light_period = float(rng.uniform(40, 70))
        self.light_phase = float(rng.uniform(0, 2 * np.pi))
        self.wb = rng.uniform(0.015, 0.035, 3)
        self.wb_period = float(rng.uniform(80, 160))
        self.wb_phase = rng.uniform(0, 2 * np.pi, 3)
        self.shake = float(rng.uniform(0.4, 1.5)) if rng.random() < 0.5 else 0.0
        weather = float(rng.random())
        self.weather = "rain" if weather < 0.3 else "snow" if weather < 0.45 else ""
        self.weather_density = float(rng.uniform(0.4, 1.0))
        self.nuisances = [
            f"daylight +-{self.light:.0%} / {self.light_period:.0f} s",
            f"noise {self.noise:.1f}",
            f"crf {self.crf}",
        ]
        if self.weather:
            self.nuisances.append(self.weather)
        if self.shake:
            self.nuisances.append(f"shake {self.shake:.1f} px")
        self.steps: list[tuple[float, float]] = []  # (time, gain change), at normal times after the warm-up
        want = 1 + int(rng.random() < 0.5)
        for _ in range(40):
            if len(self.steps) == want:
                break
            ts = round(float(rng.uniform(warmup_s + 2, duration_s - 2)) * self.fps) / self.fps
            if any(e.start - 3 < ts < e.end + 3 for e in schedule) or any(abs(ts - s) < 10 for s, _ in self.steps):
                continue
            self.steps.append((ts, float(rng.choice([-1, 1]) * rng.uniform(0.05, 0.12))))
        self.steps.sort()
        for ts, g in self.steps:
            self.nuisances.append(f"exposure step {g:+.0%} at {ts:.1f} s")
        self.shadows: list[
            tuple[float, float, float, float, float, float]
        ] = []  # start, seconds, angle, radius, depth, y
        for _ in range(int(rng.integers(0, 3))):
            s = (
                float(rng.uniform(0, max(1.0, duration_s - 15))),
                float(rng.uniform(15, 35)),
                float(rng.uniform(-0.4, 0.4) + (0 if rng.random() < 0.5 else np.pi)),
                float(rng.uniform(0.35, 0.6)) * w,
                float(rng.uniform(0.10, 0.2)),
                float(rng.uniform(0.3, 0.8)) * h,
            )
            self.shadows.append(s)
            self.nuisances.append(f"cloud shadow {s[0]:.0f}-{s[0] + s[1]:.0f} s")

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
            if ev is None:  # no place for it in this view: the next kind instead
                continue
            events.append(ev)
            first = stop + math.ceil(rng.uniform(8, 14) * self.fps)
        return events

    def _event(self, kind: str, first: int, stop: int, rng: np.random.Generator) -> _Event | None:
        place, L, w, h = self.place, self.place.lay, self.width, self.height
        ev = _Event(kind, "", first, stop, self.fps)
        if kind == "object_left":
            for _ in range(60):
                shape = OBJECTS[int(rng.integers(len(OBJECTS)))]
                width = float(rng.uniform(*_OBJECT_WIDTH[shape]))
                share = float(rng.uniform(0.02, 0.04) if rng.random() < 0.4 else rng.uniform(0.04, 0.08))
                z = float(np.clip(place.cam.f * width / (share * w), 9.0, L.z_back - 6))
                spots = [
                    (L.wall + 0.5, L.wall + 0.9),
                    (L.bays_a[0] + 1.0, L.bays_a[1] - 1.0),
                    (L.bays_b[0] + 1.0, L.bays_b[1] - 1.0),
                ]
                if z > L.lawn_z0 + 1:
                    spots.append((L.lawn[0] + 1.0, L.lawn[0] + 8.0))
                a, b = spots[int(rng.integers(len(spots)))]
                thing = _Thing(shape, width, _thing_colour(rng, shape), float(rng.uniform(a, b)), z)
                item = _thing_item(place.cam, place.sun, thing, w, h)
                if item is None or not self._clear(item, thing.z, thing.u):
                    continue
                ev.name, ev.thing = shape, thing
                return ev
            return None
        if kind == "figure_unused_area":
            k = L.kiosk
            options = []
            zr = (k[2] + k[3]) / 2 + float(rng.uniform(-0.8, 0.8))
            options.append(("figure on the roof", (k[0] + 0.5, zr, k[1] - 0.5, zr, k[4])))
            lo = max(L.lawn_z0 + 3, 22.0)
            zl = float(rng.uniform(lo, k[2] - 1.5)) if k[2] - 1.5 > lo else k[3] + 4
            edge = (0.96 * w if place.cam.mirror > 0 else 0.04 * w) - place.cam.vx
            reach = abs(edge) * zl / place.cam.f - L.lawn[0] - 1.0  # metres of lawn in view at that depth
            options.append(
                ("figure on the lawn", (L.lawn[0] + 1.5, zl, L.lawn[0] + 1.5 + min(5.5, reach - 0.7), zl, 0.0))
            )
            ub = (L.bays_b[0] + L.bays_b[1]) / 2 + float(rng.uniform(-0.8, 0.8))
            options.append(("figure in the closed bay", (ub, L.closed[0] + 0.8, ub, L.closed[1] - 0.8, 0.0)))
            options.append(
                (
                    "car in the closed bay",
                    (
                        (L.aisle[0] + L.aisle[1]) / 2,
                        (L.closed[0] + L.closed[1]) / 2,
                        (L.bays_b[0] + L.bays_b[1]) / 2,
                        (L.closed[0] + L.closed[1]) / 2,
                        0.0,
                    ),
                )
            )
            order = [int(j) for j in rng.permutation(3)] + [3]  # a car now and then, or where no figure fits
            if rng.random() < 0.25:
                order = [3, *order[:3]]
            look, vehicle = _look(rng, loud=bool(rng.random() < 0.5)), _vehicle(rng)
            speed = float(rng.uniform(0.9, 1.4))
            for j in order:
                name, path = options[j]
                ends = ((path[0], path[1]), (path[2], path[3]))
                if not all(place.visible(u, z, path[4]) and place.visible(u, z, path[4] + 1.8, 0.0) for u, z in ends):
                    continue
                ev.name, ev.path = name, path
                ev.look, ev.vehicle, ev.speed = (None, vehicle, 2.0) if j == 3 else (look, None, speed)
                shares = [self._seen(self._anomaly_item(ev, float(t))) for t in np.linspace(ev.start, ev.end, 7)]
                if (
                    min(shares) >= 0.6
                ):  # nothing static hides much of it (its feet and shadow may dip under the ground line)
                    return ev
            return None
        if kind == "lens_covered":
            ev.name = str(rng.choice(["hand", "cloth", "leaf", "smear"]))
            ev.cover = _cover(rng, w, h, float(rng.uniform(0.25, 0.6)))
            colours: dict[str, RGB] = {
                "hand": (96, 58, 44),
                "cloth": (44, 46, 56),
                "leaf": (40, 70, 34),
                "smear": (160, 158, 152),
            }
            ev.cover_colour = colours[ev.name]
            return ev
        ev.name = "another street"
        ev.view_seed = int(rng.integers(0, 2**31))
        return ev

    def _clear(self, item: _Item, z: float, u: float) -> bool:
        """An object spot: in the frame, nothing static in front of it, off the walkers' lines."""
        hh, ww = item.alpha.shape
        if item.x0 < 0.02 * self.width or item.x0 + ww > 0.98 * self.width or item.y0 + hh > 0.98 * self.height:
            return False
        d = self.place.depth[item.y0 : item.y0 + hh, item.x0 : item.x0 + ww]
        if not (d[item.alpha > 0.05] > item.depth - 0.1).all():
            return False
        return not any(abs(u - cu) < 2.6 and abs(z - cz) < 1.6 for _, cu, cz, _ in self.place.parked)

    def _seen(self, item: _Item | None) -> float:
        """The share of a thing that the static scene does not hide."""
        if item is None:
            return 0.0
        hh, ww = item.alpha.shape
        d = self.place.depth[item.y0 : item.y0 + hh, item.x0 : item.x0 + ww]
        return float((item.alpha * (d > item.depth - 0.3)).sum() / max(item.alpha.sum(), 1e-9))

    def _view(self, ev: _Event) -> _Place:
        if ev.view_seed not in self._views:
            rng = np.random.default_rng([*self._base, 3, ev.view_seed])
            tilt = float(rng.choice([-0.1, 0.12]))
            self._views[ev.view_seed] = _Place(
                rng, self.width, self.height, self.duration_s, mirror=-self.place.cam.mirror, tilt=tilt
            )
        return self._views[ev.view_seed]

    def event_at(self, i: int) -> tuple[int, _Event] | None:
        for k, e in enumerate(self.events):
            if e.first <= i < e.stop:
                return k, e
        return None

    def _anomaly_item(self, ev: _Event, t: float) -> _Item | None:
        place, w, h = self.place, self.width, self.height
        if ev.thing is not None:
            return _thing_item(place.cam, place.sun, ev.thing, w, h)
        u0, z0, u1, z1, feet = ev.path
        span = max(math.hypot(u1 - u0, z1 - z0), 1e-6)
        d = (t - ev.start) * ev.speed
        if ev.vehicle is not None:  # drives in off the aisle, then stays
            f = min(d / span, 1.0)
            u, z = u0 + (u1 - u0) * f, z0 + (z1 - z0) * f
            polys = _vehicle_polys(place.cam, place.sun, ev.vehicle, u, z, False, 1.0)
            return _poly_item(polys, z - ev.vehicle.width / 2, w, h)
        assert ev.look is not None
        leg = int(d // span)
        f = (d % span) / span
        if leg % 2:
            f = 1 - f
        u, z = u0 + (u1 - u0) * f, z0 + (z1 - z0) * f
        du, dz = (u1 - u0) * (-1 if leg % 2 else 1), (z1 - z0) * (-1 if leg % 2 else 1)
        side = abs(du) / (abs(du) + abs(dz) + 1e-9)
        facing = 1 if du * place.cam.mirror >= 0 else -1
        item = _person_item(
            place.cam,
            ev.look,
            u,
            z,
            w,
            h,
            phase=2 * np.pi * d / 1.4,
            side=side,
            facing=facing,
            towards=dz < 0,
            feet_y=feet,
        )
        if item is not None and feet > 0:
            item = _Item(min(item.depth, place.kiosk_roof_depth - 0.5), item.prem, item.alpha, item.x0, item.y0)
        return item

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
                box = (
                    (round(float(x0), 5), round(float(y0), 5), round(float(x1), 5), round(float(y1), 5))
                    if x1 > x0 and y1 > y0
                    else None
                )
        return FrameTruth(i, t, True, ev.kind, ev.name, k, box)

    # --- rendering ---

    def gain(self, t: float) -> np.ndarray:
        """Per-channel global gain at time t: daylight x auto-exposure x white balance."""
        g = 1.0 + self.light * math.sin(2 * math.pi * t / self.light_period + self.light_phase)
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
            img, depth = self._view(ev).render(t, [])
            sky = self._view(ev).sky
        else:
            extra = []
            if ev is not None and ev.kind in BOXED:
                item = self._anomaly_item(ev, t)
                if item is not None:
                    extra.append(item)
            img, depth = self.place.render(t, extra)
            sky = self.place.sky
        if self.shadows:
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            dim = np.ones((h, w), np.float32)
            for start, secs, ang, r, deep, y in self.shadows:
                f = (t - start) / secs
                if not 0 <= f <= 1:
                    continue
                reach = w / 2 + 1.5 * r
                cx = w / 2 + math.cos(ang) * reach * (2 * f - 1)
                cy = y + math.sin(ang) * reach * (2 * f - 1) * 0.3
                d2 = ((xx - cx) / r) ** 2 + ((yy - cy) / (0.45 * r)) ** 2
                dim *= 1 - deep * np.exp(-2.0 * d2)
            img *= np.where(sky, 1.0, dim)[..., None]
        img *= self.gain(t)
        if self.weather:
            self._weather(img, np.random.default_rng([*self._base, 5, i]))
        dx, dy = self._jitter(i)
        if dx or dy:
            img = _shift(img, dx, dy)
        if ev is not None and ev.kind == "lens_covered":
            img = self._cover(img, ev, t)
        rng = np.random.default_rng([*self._base, 6, i])
        img += rng.standard_normal((h, w, 1), dtype=np.float32) * self.noise
        img += rng.standard_normal((h, w, 3), dtype=np.float32) * (self.noise * 0.4)
        return np.clip(img + 0.5, 0, 255).astype(np.uint8), self.frame_truth(i)

    def _weather(self, img: np.ndarray, rng: np.random.Generator) -> None:
        h, w = img.shape[:2]
        layer = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(layer)
        n = int(self.weather_density * w * h / (900 if self.weather == "rain" else 1500))
        xs, ys = rng.uniform(0, w, n), rng.uniform(0, h, n)
        if self.weather == "rain":
            length = rng.uniform(0.02, 0.045, n) * h
            for x, y, ln in zip(xs, ys, length, strict=True):
                draw.line([(x, y), (x + 0.25 * ln, y + ln)], fill=110, width=1)
        else:
            rad = rng.uniform(0.6, 1.8, n) * w / 640
            for x, y, r in zip(xs, ys, rad, strict=True):
                draw.ellipse([x - r, y - r, x + r, y + r], fill=200)
        a = (np.asarray(layer, np.float32) / 255.0)[..., None]
        img[:] = img * (1 - 0.5 * a) + 235 * 0.5 * a

    def _cover(self, img: np.ndarray, ev: _Event, t: float) -> np.ndarray:
        """Something on the lens: blurs what it covers and darkens it (or veils it, for a smear)."""
        assert ev.cover is not None
        h, w = img.shape[:2]
        m = (ev.cover.shape[0] - h) // 2
        ox = int(round(m + m * 0.8 * math.sin(1.3 * t + ev.first)))
        oy = int(round(m + m * 0.8 * math.sin(0.9 * t + 2 * ev.first)))
        a = ev.cover[oy : oy + h, ox : ox + w][..., None]
        radius = 0.025 * w if ev.name == "smear" else 0.012 * w
        pic = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(radius))
        blurred = np.asarray(pic, np.float32)
        soft = np.clip(a * 2.0, 0, 1)
        img = img * (1 - soft) + blurred * soft
        colour = np.asarray(ev.cover_colour, np.float32)
        if ev.name == "smear":
            return img * (1 - 0.55 * a) + colour * 0.55 * a
        shade = 0.75 + 0.35 * (1 - a)  # darker where it is thick
        return img * (1 - a) + colour * shade * a

    def truth(self) -> VideoTruth:
        """The ground truth of every frame, without drawing them."""
        return self._truth([self.frame_truth(i) for i in range(self.frames)])

    def _truth(self, frames: list[FrameTruth]) -> VideoTruth:
        anomalies = tuple(
            Anomaly(k, e.kind, e.name, round(e.start, 4), round(e.end, 4)) for k, e in enumerate(self.events)
        )
        return VideoTruth(
            family=STREET,
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


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The image moved by (dx, dy) pixels, bilinear, edges repeated."""
    h, w = img.shape[:2]
    p = 4
    pad = np.pad(img, ((p, p), (p, p), (0, 0)), mode="edge")
    ix, iy = math.floor(dx), math.floor(dy)
    fx, fy = dx - ix, dy - iy

    def at(ox: int, oy: int) -> np.ndarray:
        return pad[p - oy : p - oy + h, p - ox : p - ox + w]

    return (
        at(ix, iy) * (1 - fx) * (1 - fy)
        + at(ix + 1, iy) * fx * (1 - fy)
        + at(ix, iy + 1) * (1 - fx) * fy
        + at(ix + 1, iy + 1) * fx * fy
    )


def _cover(rng: np.random.Generator, w: int, h: int, share: float) -> np.ndarray:
    """A soft occluder mask over a margin-grown frame, anchored at an edge or corner, whose part
    above one half covers about `share` of the frame."""
    m = max(2, round(0.03 * w))
    k = 4
    sw, sh = (w + 2 * m) // k, (h + 2 * m) // k
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float64)
    anchor = int(rng.integers(0, 8))
    ax = [0.0, 1.0, 0.0, 1.0, 0.5, 0.5, 0.0, 1.0][anchor] * sw
    ay = [0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.5, 0.5][anchor] * sh
    blobs = [
        (
            ax + rng.uniform(-0.15, 0.15) * sw,
            ay + rng.uniform(-0.15, 0.15) * sh,
            rng.uniform(0.5, 1.0),
            rng.uniform(0.5, 1.0),
        )
        for _ in range(int(rng.integers(2, 5)))
    ]
    crop = (slice(m // k, (m + h) // k), slice(m // k, (m + w) // k))
    scale = 0.5 * sw
    for _ in range(12):
        mask = np.zeros((sh, sw), bool)
        for cx, cy, rx, ry in blobs:
            mask |= ((xx - cx) / (rx * scale)) ** 2 + ((yy - cy) / (ry * scale * 0.75)) ** 2 <= 1
        got = max(float(mask[crop].mean()), 1e-3)
        scale *= (share / got) ** 0.5
    img = Image.fromarray((mask * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.05 * sw))
    full = np.asarray(img.resize((w + 2 * m, h + 2 * m), Image.Resampling.BILINEAR), np.float32) / 255.0
    opacity = float(rng.uniform(0.88, 0.98))
    return (np.clip((full - 0.5) * 1.6 + 0.5, 0, 1) * opacity).astype(np.float32)

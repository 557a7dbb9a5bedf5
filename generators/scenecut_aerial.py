"""The `aerial` family of shot-boundary videos: drone and mast cameras over procedural landscapes.

A fourth, held-out family, made independently of the other generators' pictures (only the records
of `generators.groundtruth`, and the `CUT_KINDS` / `true_time` conventions and the encoder set-up
of `generators.scenecut_families` are shared), so that a detector tuned on those is reported on
pictures it was never shaped by.

A video visits several *locations*. Each is a square world map drawn once with numpy and PIL:
terrain from fractal value noise, coloured by height and slope (water, sand, patchwork fields with
crop rows, forest canopy, meadow, rock, snow) and hill-shaded from the location's sun, with rivers,
roads and buildings; or a town seen from above (a street grid of rooftops), or a car park with rows
of cars. Some locations are filmed at dusk. The sunlit and the ambient part of the light are kept
apart, so the sun can go behind a cloud and take the shadows with it. A camera flies over the
location: a drone flying forward, yawing, orbiting, climbing or descending, hovering, or a high mast
camera that barely moves, all with some wind jitter. Shots are joined by hard cuts, cuts to another
altitude and heading over the same location (`view_cut`), dissolves and fades through black or
white. Inside shots, things that are not shot changes: a cloud shadow sweeping across, the sun going
behind a cloud, street lights or floodlights switching on at dusk (`drift`); a fast yaw or a gimbal
swing (`fast_pan`); a bird, another drone or a branch close to the lens (`occluder`); lightning or a
photo flash (`flash`). On top: haze that grows with distance, sensor noise, slow exposure drift, and
H.264 (crf 18-38, GOPs from a few frames to several seconds) or MPEG-4 Part 2 encodes, 320x180 to
1280x720, 24/25/30 fps.

Planning (`plan_aerial_video`: shots, transitions, distractors) is separate from drawing and cheap.
Everything is deterministic for a seed.

    >>> plan_aerial_video(seed=3).truth("aerial-3.mp4").transitions[:2]  # doctest: +SKIP
    >>> truth = make_aerial_video("aerial-3.mp4", seed=3)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from generators.groundtruth import Distractor, DistractorKind, GroundTruth, ShotInfo, Transition
from generators.scenecut_families import (
    CUT_KINDS,
    Encoding,
    lay_out,
    plan_shot_lengths,
    transition_frames,
    true_time,
    write_video,
)

__all__ = [
    "AERIAL_EFFECTS",
    "AERIAL_FAMILY",
    "AERIAL_TRANSITION_KINDS",
    "CALM",
    "CAMERA_MOVES",
    "CUT_KINDS",
    "LOCATION_KINDS",
    "SIZES",
    "AerialPlan",
    "AerialStyle",
    "Encoding",
    "make_aerial_video",
    "plan_aerial_video",
    "true_time",
]

AERIAL_FAMILY = "aerial"
AERIAL_TRANSITION_KINDS = ("cut", "view_cut", "dissolve", "fade", "fade_white")
_TRANSITION_WEIGHTS = (0.5, 0.15, 0.15, 0.12, 0.08)
# What happens inside a shot, and the distractor kind it is recorded as.
AERIAL_EFFECTS: dict[str, DistractorKind] = {
    "cloud_shadow": "drift",  # the shadow of a cloud sweeping across the ground
    "sun_cloud": "drift",  # the sun going behind a cloud: 15-40 % darker, back or not
    "streetlights": "drift",  # street lights or floodlights switching on at dusk
    "swing": "fast_pan",  # a quick gimbal swing to another part of the location
    "yaw": "fast_pan",  # a fast yaw
    "bird": "occluder",  # a bird crossing close to the lens
    "drone": "occluder",  # another drone crossing close to the lens
    "branch": "occluder",  # a branch swaying into the view
    "lightning": "flash",  # 1-3 lightning frames
    "photo_flash": "flash",  # a photographer's flash, 1-2 frames
}
_EFFECT_WEIGHTS = {
    "cloud_shadow": 1.0,
    "sun_cloud": 1.2,
    "streetlights": 3.0,  # only at dusk, where it is what one expects
    "swing": 0.8,
    "yaw": 0.8,
    "bird": 0.7,
    "drone": 0.6,
    "branch": 0.5,
    "lightning": 0.7,
    "photo_flash": 0.4,
}
LOCATION_KINDS = ("farmland", "hills", "coast", "forest", "town", "carpark")
CAMERA_MOVES = ("fly", "yaw", "orbit", "altitude", "hover", "mast")
_MOVE_WEIGHTS = (0.3, 0.1, 0.15, 0.15, 0.1, 0.2)
SIZES = ((320, 180), (480, 270), (640, 360), (854, 480), (960, 540), (1280, 720))
_SIZE_TURNS = (2, 5, 0, 4, 1, 3)  # seed % 6 -> size: any six consecutive seeds show all sizes
FRAME_RATES = (24, 25, 30)
_SALT = 0xAE71A1
_MARGIN_S = 1.0  # effects keep this far from transitions
_EDGE_S = 0.5  # and this far from the video's start and end
_GAP_S = 0.5  # between two effects in one shot
_LONGEST_TRANSITION_S = 2.2
_WORLD = 1280  # a location's map is this many pixels square (a pixel is about half a metre)
_WORK_WIDTH = 400  # frames are drawn at most this wide, then scaled to the video's size
_FOCAL = 0.75  # the lens' focal length, share of the view's width (about 67 degrees across)
_NOISE_FIELDS = 7  # sensor noise: this many fields, one per frame in turn
_LEAVES = 34  # leaves on a branch in front of the lens

RGB = tuple[int, int, int]
Point = tuple[float, float]


@dataclass(frozen=True)
class AerialStyle:
    """How hard the camera, the weather and the sensor work; `CALM` is a nearly still camera
    without jitter, noise or exposure drift (for tests that compare pixels)."""

    move: float = 1.0  # scales every camera speed
    jitter: float = 1.0  # scales wind jitter
    noise: tuple[float, float] = (0.0, 6.0)  # sensor noise sigma range, grey levels
    exposure: float = 0.07  # largest slow exposure drift, relative gain
    haze: float = 1.0  # scales haze
    dusk: float = 0.3  # share of locations filmed at dusk
    effect_rate: float = 0.75  # chance that a shot holds something that is not a shot change


CALM = AerialStyle(move=0.02, jitter=0.0, noise=(0.0, 0.0), exposure=0.0)


# --- the plan: locations, shots, transitions and what happens inside shots ---------------------------


@dataclass(frozen=True)
class Location:
    kind: str  # one of LOCATION_KINDS
    dusk: bool


@dataclass
class Effect:
    """Something inside a shot that is not a shot change, over the shot's frames [a, b)."""

    name: str
    a: int
    b: int
    params: dict[str, int] = field(default_factory=dict)


@dataclass
class PlannedShot:
    into: str | None  # transition kind into this shot
    into_frames: tuple[int, int, int]  # (fade out, dissolve or hold, fade in) frames of that transition
    solo: int  # frames seen alone
    wanted: list[str] = field(default_factory=list)  # effect names, before they are placed
    location: int = 0
    view: int = 0  # 0, 1, ... for consecutive views of one location
    camera: str = "fly"
    first: int = 0  # first frame of the video showing it
    last: int = 0  # first frame not showing it
    solo_start: int = 0
    solo_end: int = 0
    effects: list[Effect] = field(default_factory=list)


@dataclass
class AerialPlan:
    """Everything about a video that is decided before drawing it, and its ground truth."""

    seed: int
    size: tuple[int, int]
    fps: int
    encoding: Encoding
    style: AerialStyle
    locations: list[Location]
    shots: list[PlannedShot]
    transitions: list[Transition]

    @property
    def frames(self) -> int:
        return self.shots[-1].last

    @property
    def distractors(self) -> list[Distractor]:
        out = [
            Distractor(AERIAL_EFFECTS[fx.name], (sh.first + fx.a) / self.fps, (sh.first + fx.b) / self.fps, k)
            for k, sh in enumerate(self.shots)
            for fx in sh.effects
        ]
        return sorted(out, key=lambda d: (d.start, d.end))

    def truth(self, path: str | os.PathLike[str]) -> GroundTruth:
        infos = [
            ShotInfo(
                f"aerial-{self.seed}-loc{sh.location}-{self.locations[sh.location].kind}-view{sh.view}",
                sh.first / self.fps,
                sh.last / self.fps,
            )
            for sh in self.shots
        ]
        return GroundTruth(
            os.fspath(path), self.seed, self.fps, self.frames, self.size, infos, self.transitions, self.distractors
        )


def plan_aerial_video(
    seed: int = 0,
    *,
    duration: float = 60.0,
    size: tuple[int, int] | None = None,
    fps: int | None = None,
    shot_s: tuple[float, float] = (1.5, 10.0),
    plan: Sequence[tuple[str | None, str | None]] | None = None,
    style: AerialStyle = AerialStyle(),
    encoding: Encoding | None = None,
) -> AerialPlan:
    """The shots, transitions and effects of `make_aerial_video` for the same arguments, without
    drawing anything (see there)."""
    rng = np.random.default_rng([_SALT, seed, 0])
    drawn_size = SIZES[_SIZE_TURNS[seed % 6]]
    drawn_fps = FRAME_RATES[(2 * seed + 1) % len(FRAME_RATES)]  # any three consecutive seeds show all
    drawn_encoding = _draw_encoding(rng, seed % 6)
    width, height = size or drawn_size
    fps = fps or drawn_fps
    if width < 32 or height < 32 or width % 2 or height % 2:
        raise ValueError(f"size must be even and at least 32x32, got {width}x{height}")
    if not 0 < shot_s[0] <= shot_s[1] or duration < shot_s[0]:
        raise ValueError(f"need 0 < shot_s[0] <= shot_s[1] <= duration, got {shot_s}, {duration}")
    if drawn_encoding.codec == "libx264" and width * height > 640 * 360:
        drawn_encoding = replace(drawn_encoding, preset="superfast")  # keeps six videos within minutes
    shots = _plan_shots(rng, fps, duration, shot_s, plan)
    locations = _plan_locations(rng, shots, style, planned=plan is not None)
    if plan is None:
        _choose_effects(rng, shots, locations, fps, style.effect_rate)
    transitions = lay_out(shots, fps)
    _place_effects(rng, shots, fps, strict=plan is not None)
    return AerialPlan(seed, (width, height), fps, encoding or drawn_encoding, style, locations, shots, transitions)


def _draw_encoding(rng: np.random.Generator, turn: int) -> Encoding:
    """Six turns: H.264 with the default GOP, a very short one, a long one and a medium one, and
    MPEG-4 Part 2 with a short and a long GOP."""
    crf = int(rng.integers(18, 39))
    if turn == 1:
        return Encoding(crf=crf, gop=int(rng.integers(3, 13)))
    if turn == 2:
        return Encoding("mpeg4", bits_per_pixel=float(rng.uniform(0.05, 0.2)), gop=int(rng.integers(8, 31)))
    if turn == 3:
        return Encoding(crf=crf, gop=int(rng.integers(120, 301)))
    if turn == 4:
        return Encoding(crf=crf, gop=int(rng.integers(15, 61)))
    if turn == 5:
        return Encoding("mpeg4", bits_per_pixel=float(rng.uniform(0.05, 0.2)), gop=int(rng.integers(50, 151)))
    return Encoding(crf=crf)


def _transition_frames(rng: np.random.Generator, kind: str, fps: int) -> tuple[int, int, int]:
    return transition_frames(rng, kind, fps, dissolve_s=(0.4, 1.5), fade_s=(0.3, 0.9), hold_s=(0.0, 0.4))


def _plan_shots(
    rng: np.random.Generator,
    fps: int,
    duration: float,
    shot_s: tuple[float, float],
    plan: Sequence[tuple[str | None, str | None]] | None,
) -> list[PlannedShot]:
    """Shot lengths and transitions: lengths that add up to `duration`, or one shot per `plan` entry."""
    lengths = plan_shot_lengths(
        rng,
        fps,
        duration,
        shot_s,
        plan,
        kinds=AERIAL_TRANSITION_KINDS,
        weights=_TRANSITION_WEIGHTS,
        effects=AERIAL_EFFECTS,
        longest_s=_LONGEST_TRANSITION_S,
        frames_of=_transition_frames,
    )
    return [PlannedShot(*shot) for shot in lengths]


def _plan_locations(
    rng: np.random.Generator, shots: list[PlannedShot], style: AerialStyle, planned: bool
) -> list[Location]:
    """A new location for every shot but those entered by a view cut; kinds in shuffled rounds."""
    kinds: list[str] = []
    locations: list[Location] = []
    for k, shot in enumerate(shots):
        if k == 0 or shot.into != "view_cut":
            if not kinds:
                kinds = [LOCATION_KINDS[i] for i in rng.permutation(len(LOCATION_KINDS))]
                if locations and kinds[0] == locations[-1].kind:
                    kinds.append(kinds.pop(0))
            dusk = bool(rng.random() < style.dusk)
            locations.append(Location(kinds.pop(0), dusk and not planned))
            shot.view = 0
        else:
            shot.view = shots[k - 1].view + 1
        shot.location = len(locations) - 1
        shot.camera = CAMERA_MOVES[int(rng.choice(len(CAMERA_MOVES), p=_MOVE_WEIGHTS))]
    if planned:  # a planned video is filmed by day, but where the plan wants lights switched on
        for i, loc in enumerate(locations):
            if any(sh.location == i and "streetlights" in sh.wanted for sh in shots):
                locations[i] = Location(loc.kind, True)
    return locations


def _choose_effects(
    rng: np.random.Generator, shots: list[PlannedShot], locations: list[Location], fps: int, rate: float
) -> None:
    lit: set[int] = set()  # locations whose lights are already switched on
    for shot in shots:
        if rng.random() >= rate:
            continue
        names = [n for n in AERIAL_EFFECTS if n != "streetlights" or shot.location not in lit]
        if not locations[shot.location].dusk:
            names.remove("streetlights")
        weights = np.array([_EFFECT_WEIGHTS[n] for n in names])
        count = 2 if shot.solo > 7 * fps and rng.random() < 0.4 else 1
        picked = rng.choice(len(names), size=count, replace=False, p=weights / weights.sum())
        shot.wanted = [names[int(i)] for i in picked]
        if "streetlights" in shot.wanted:
            lit.add(shot.location)


def _effect_frames(rng: np.random.Generator, name: str, fps: int) -> tuple[int, dict[str, int]]:
    """How many frames an effect takes, and how they divide."""

    def span(lo: float, hi: float, least: int = 1) -> int:
        return max(least, round(rng.uniform(lo, hi) * fps))

    if name == "cloud_shadow":
        return span(1.2, 3.5, 6), {}
    if name == "sun_cloud":
        down = span(0.3, 2.0, 3)
        if rng.random() < 0.35:  # it stays behind the cloud
            return down, {"down": down, "hold": 0, "up": 0}
        hold, up = span(0.4, 2.0), span(0.3, 2.0, 3)
        return down + hold + up, {"down": down, "hold": hold, "up": up}
    if name == "streetlights":
        if rng.random() < 0.4:  # one switch for all
            n = int(rng.integers(1, 4))
            return n, {"ramp": n}
        n = span(0.5, 1.5, 4)
        return n, {"ramp": max(1, min(n, round(rng.uniform(0.1, 0.4) * fps)))}
    if name == "swing":
        return span(0.25, 0.6, 3), {}
    if name == "yaw":
        return span(0.3, 0.7, 3), {}
    if name == "bird":
        return span(0.25, 0.8, 4), {}
    if name == "drone":
        return span(0.5, 1.5, 6), {}
    if name == "branch":
        return span(0.8, 2.0, 8), {}
    if name == "lightning":
        return int(rng.integers(1, 4)), {}
    if name == "photo_flash":
        return int(rng.integers(1, 3)), {}
    raise ValueError(f"unknown effect {name!r}")


def _place_effects(rng: np.random.Generator, shots: list[PlannedShot], fps: int, strict: bool) -> None:
    """Put each shot's effects where it is seen alone, `_MARGIN_S` from transitions and `_EDGE_S`
    from the video's ends, in the order wanted, at least `_GAP_S` apart."""
    margin, edge, gap = round(_MARGIN_S * fps), round(_EDGE_S * fps), round(_GAP_S * fps)
    for k, shot in enumerate(shots):
        lo = shot.solo_start - shot.first + (margin if k else edge)
        hi = shot.solo_end - shot.first - (margin if k + 1 < len(shots) else edge)
        sized = [(name, *_effect_frames(rng, name, fps)) for name in shot.wanted]
        while sized and sum(n for _, n, _ in sized) + gap * (len(sized) - 1) > hi - lo:
            if strict:
                raise ValueError(f"shot {k} is too short for {shot.wanted}")
            sized.pop()
        if not sized:
            continue
        spare = hi - lo - sum(n for _, n, _ in sized) - gap * (len(sized) - 1)
        at = lo
        for name, n, params in sized:
            wait = int(rng.integers(0, spare + 1))
            at += wait
            spare -= wait
            shot.effects.append(Effect(name, at, at + n, params))
            at += n + gap


def _timeline(shots: list[PlannedShot]) -> list[tuple[list[tuple[int, float]], float, float]]:
    """Per frame: the shots it shows with their weights, and a fill level (0 black, 255 white) with
    its weight."""
    out: list[tuple[list[tuple[int, float]], float, float]] = []
    for k, shot in enumerate(shots):
        if k:
            n_out, mid, n_in = shot.into_frames
            if shot.into == "dissolve":
                out.extend(([(k - 1, 1 - w), (k, w)], 0.0, 0.0) for w in _ramp(mid))
            elif shot.into in ("fade", "fade_white"):
                fill = 0.0 if shot.into == "fade" else 255.0
                out.extend(([(k - 1, 1 - w)], fill, w) for w in _ramp(n_out))
                out.extend(([], fill, 1.0) for _ in range(mid))
                out.extend(([(k, w)], fill, 1 - w) for w in _ramp(n_in))
        out.extend(([(k, 1.0)], 0.0, 0.0) for _ in range(shot.solo))
    return out


def _ramp(n: int) -> list[float]:
    return [(i + 1) / (n + 1) for i in range(n)]


# --- the world: one location's map ------------------------------------------------------------------


@dataclass(frozen=True)
class _Light:
    az: float  # where the sun is: radians clockwise from the map's top
    el: float  # its elevation, radians
    amb: np.ndarray  # ambient (sky) light, RGB gain
    sun: np.ndarray  # sunlight, RGB gain for a direct-light value of 1 (flat ground: sin(el))
    haze: np.ndarray  # haze colour, RGB
    haze_range: float  # world pixels of air that hide about 63 % of the ground
    lamp: np.ndarray  # street-light colour, RGB gain
    dusk: bool

    @property
    def towards(self) -> np.ndarray:
        """Horizontal unit vector towards the sun, in map pixels (y down)."""
        return np.array([math.sin(self.az), -math.cos(self.az)])


def _draw_light(rng: np.random.Generator, dusk: bool) -> _Light:
    az = rng.uniform(0, 2 * math.pi)
    if dusk:
        el = math.radians(rng.uniform(6, 14))
        amb = np.array([0.2, 0.21, 0.31]) * rng.uniform(0.85, 1.1)
        sun = np.array([1.0, 0.6, 0.36]) * rng.uniform(0.5, 0.7)
        haze = np.array([105.0, 100.0, 125.0])
        haze_range = rng.uniform(2500, 5000)
    else:
        el = math.radians(rng.uniform(25, 65))
        amb = np.array([0.36, 0.4, 0.47]) * rng.uniform(0.9, 1.1)
        sun = np.array([1.0, 0.97, 0.9]) * rng.uniform(0.72, 0.92)
        haze = np.array([200.0, 208.0, 222.0]) * rng.uniform(0.95, 1.05)
        haze_range = rng.uniform(3000, 9000)
    lamp = np.array([1.0, 0.62, 0.28]) if rng.random() < 0.6 else np.array([0.85, 0.9, 1.0])
    sun = sun / max(math.sin(el), 0.35)
    return _Light(az, el, amb.astype(np.float32), sun.astype(np.float32), haze, haze_range, lamp * 0.9, dusk)


def _noise(rng: np.random.Generator, n: int, cells: int, octaves: int, gain: float = 0.5) -> np.ndarray:
    """Fractal value noise on an n x n grid: `octaves` layers of random values on grids of `cells`,
    2*cells, ... cells across, smoothly interpolated; zero mean, unit deviation."""
    res = min(n, max(64, cells * 2 ** (octaves - 1) * 4))
    acc = np.zeros((res, res), np.float32)
    amp = 1.0
    for o in range(octaves):
        c = cells * 2**o + 1
        grid = rng.random((c, c), dtype=np.float32)
        acc += amp * np.asarray(Image.fromarray(grid).resize((res, res), Image.Resampling.BICUBIC))
        amp *= gain
    if res != n:
        acc = np.asarray(Image.fromarray(acc).resize((n, n), Image.Resampling.BICUBIC))
    out: np.ndarray = (acc - acc.mean()) / (acc.std() + 1e-6)
    return out.astype(np.float32)


def _smooth(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0, 1)
    out: np.ndarray = t * t * (3 - 2 * t)
    return out


def _rgb(c: Sequence[float] | np.ndarray) -> RGB:
    return (int(np.clip(c[0], 0, 255)), int(np.clip(c[1], 0, 255)), int(np.clip(c[2], 0, 255)))


def _rect(cx: float, cy: float, length: float, width: float, angle: float) -> list[Point]:
    ex, ey = math.cos(angle) * length / 2, math.sin(angle) * length / 2
    px, py = -math.sin(angle) * width / 2, math.cos(angle) * width / 2
    return [
        (cx - ex - px, cy - ey - py),
        (cx + ex - px, cy + ey - py),
        (cx + ex + px, cy + ey + py),
        (cx - ex + px, cy - ey + py),
    ]


def _hull(points: list[Point]) -> list[Point]:
    """Convex hull (monotone chain)."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return pts

    def cross(o: Point, a: Point, b: Point) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[Point] = []
    upper: list[Point] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


@dataclass
class _Solid:
    """Something that stands up from the ground: casts a shadow and has its own lit faces."""

    kind: str  # "flat", "gable", "hip" (roofs), "car", "tree", "boat"
    x: float
    y: float
    length: float
    width: float
    angle: float
    height: float
    colour: RGB
    trim: RGB = (60, 60, 60)
    pitch: float = 0.6  # roof pitch, radians


GroundItem = tuple[str, list[Point], RGB, int]  # ("poly" | "line" | "ellipse", points, colour, width)


class _Canvas:
    """One location's map while it is drawn: terrain arrays first (albedo, height, water), then things
    drawn on the ground (roads, pavements), then solids with their shadows."""

    def __init__(self, rng: np.random.Generator, n: int, light: _Light) -> None:
        self.rng, self.n, self.light = rng, n, light
        self.xx = np.arange(n, dtype=np.float32)[None, :]
        self.yy = np.arange(n, dtype=np.float32)[:, None]
        self.albedo: np.ndarray = np.zeros((n, n, 3), np.float32)
        self.height: np.ndarray = np.zeros((n, n), np.float32)  # world pixels
        self.water: np.ndarray = np.zeros((n, n), bool)
        self.ground: list[GroundItem] = []
        self.solids: list[_Solid] = []
        self.lamps: list[Point] = []
        self._crowns: np.ndarray | None = None

    # terrain helpers

    def crowns(self) -> np.ndarray:
        """Tree-crown speckle in [0, 1]: blobs about 7 pixels (3-4 m) across."""
        if self._crowns is None:
            c = 0.7 * _noise(self.rng, self.n, self.n // 7, 1) + 0.3 * _noise(self.rng, self.n, self.n // 3, 1)
            self._crowns = np.clip(0.5 + 0.33 * c, 0, 1)
        return self._crowns

    def forest(self, mask: np.ndarray, colour: np.ndarray) -> None:
        """Canopy where `mask`: `colour` (RGB, or an RGB per pixel) shaded crown by crown."""
        crowns = self.crowns()[mask]
        base = colour[mask] if colour.ndim == 3 else colour[None, :]
        self.albedo[mask] = base * (0.4 + 0.85 * crowns)[:, None]
        self.height[mask] += crowns * 7.0

    def river(self, width: float, colour: RGB = (58, 84, 80)) -> list[Point]:
        pts = _wander(self.rng, self.n, 0.05, 14.0)
        mask = Image.new("L", (self.n, self.n), 0)
        d = ImageDraw.Draw(mask)
        d.line(pts, fill=128, width=round(width + 10), joint="curve")
        d.line(pts, fill=255, width=round(width), joint="curve")
        m = np.asarray(mask)
        bank, wet = m == 128, m == 255
        self.albedo[bank] = self.albedo[bank] * 0.5 + np.array([118, 116, 84], np.float32) * 0.5
        self.albedo[wet] = np.array(colour, np.float32) * self.rng.uniform(0.85, 1.15)
        self.water |= wet
        return pts

    # ground items

    def road(self, pts: list[Point], width: float, colour: RGB, dashed: bool = True) -> None:
        verge = _rgb(np.array(colour) * 0.6 + np.array([150, 145, 120]) * 0.4)
        self.ground.append(("line", pts, verge, round(width + 3)))
        self.ground.append(("line", pts, colour, round(width)))
        if dashed and width >= 7:
            for seg in _dashes(pts, 7.0, 7.0):
                self.ground.append(("line", seg, (200, 198, 180), 1))

    def poly(self, pts: list[Point], colour: RGB) -> None:
        self.ground.append(("poly", pts, colour, 0))

    def inside(self, x: float, y: float, pad: float = 0.0) -> bool:
        return pad <= x < self.n - pad and pad <= y < self.n - pad

    def dry(self, x: float, y: float) -> bool:
        return self.inside(x, y) and not self.water[int(y), int(x)]

    def house(self, x: float, y: float, angle: float, big: bool = False) -> None:
        rng = self.rng
        length, width = (
            (rng.uniform(30, 60), rng.uniform(16, 26)) if big else (rng.uniform(14, 30), rng.uniform(10, 18))
        )
        kind = str(rng.choice(["gable", "hip", "flat"], p=[0.55, 0.3, 0.15]))
        if big:
            colour = _rgb(np.array([150, 150, 148]) * rng.uniform(0.6, 1.2))
        elif kind == "flat":
            colour = _rgb(np.array([170, 168, 160]) * rng.uniform(0.5, 1.2))
        else:
            colour = _ROOFS[int(rng.integers(len(_ROOFS)))]
            colour = _rgb(np.array(colour) * rng.uniform(0.85, 1.15))
        height = rng.uniform(8, 14) if big else rng.uniform(6, 12)
        self.solids.append(_Solid(kind, x, y, length, width, angle, height, colour, _rgb(np.array(colour) * 0.6)))

    def tree(self, x: float, y: float, r: float | None = None, colour: np.ndarray | None = None) -> None:
        rng = self.rng
        r = r if r is not None else rng.uniform(4, 9)
        c = colour if colour is not None else np.array([58, 88, 44]) * rng.uniform(0.75, 1.25)
        self.solids.append(_Solid("tree", x, y, 2 * r, 2 * r, 0.0, r * rng.uniform(1.6, 2.6), _rgb(c)))

    def car(self, x: float, y: float, angle: float) -> None:
        colour = _CARS[int(self.rng.integers(len(_CARS)))]
        self.solids.append(
            _Solid("car", x, y, 9.0, 4.2, angle, 3.0, _rgb(np.array(colour) * self.rng.uniform(0.85, 1.1)))
        )

    # finishing

    def finish(self) -> _World:
        light, n = self.light, self.n
        gy, gx = np.gradient(self.height)
        lx, ly = np.cos(light.el) * light.towards
        dot = (math.sin(light.el) - gx * lx - gy * ly) / np.sqrt(1 + gx * gx + gy * gy)
        direct = np.clip(dot, 0, 1)
        ripple = self.crowns()[self.water]
        direct[self.water] = math.sin(light.el) * (0.8 + 0.15 * ripple)
        if not light.dusk and self.rng.random() < 0.4:  # scattered clouds' shadows
            clouds = _smooth(_noise(self.rng, n, 3, 4), 0.5, 1.2)
            direct *= 1 - 0.6 * clouds
        grain = 1 + 0.14 * (self.crowns() - 0.5)  # grass, crops and soil are not smooth either
        albedo = Image.fromarray(np.clip(self.albedo * grain[..., None], 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(albedo)
        for kind, pts, colour, width in self.ground:
            if kind == "line":
                draw.line(pts, fill=colour, width=width, joint="curve" if width > 2 else None)
            elif kind == "poly":
                draw.polygon(pts, fill=colour)
            else:
                draw.ellipse((pts[0], pts[1]), fill=colour)
        direct_img = self._solids(albedo, direct)
        alb = np.asarray(albedo.reduce(4), np.float32).mean(axis=2) / 255
        lit = np.asarray(direct_img.reduce(4), np.float32) / 255
        amb_mean = float((alb * light.amb.mean()).mean())
        sun_mean = float((alb * lit * light.sun.mean()).mean())
        lamps = np.array([(x, y, self.rng.uniform(12, 22)) for x, y in self.lamps], np.float64).reshape(-1, 3)
        return _World(albedo, direct_img, light, lamps, amb_mean, sun_mean, self.water[::4, ::4].copy())

    def _solids(self, albedo: Image.Image, direct: np.ndarray) -> Image.Image:
        """Shadows darken the direct light; then roofs, cars and crowns are drawn with their own."""
        light, n = self.light, self.n
        reach = 1 / math.tan(light.el)
        away = -light.towards
        mask = Image.new("L", (n, n), 0)
        dm = ImageDraw.Draw(mask)
        for s in self.solids:
            off = min(s.height * reach, 110.0)
            ox, oy = away * off
            if s.kind == "tree":
                r = s.length / 2 * 0.9
                for t in (0.0, 0.35, 0.7, 1.0):
                    cx, cy = s.x + ox * t, s.y + oy * t
                    dm.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
            else:
                pts = _rect(s.x, s.y, s.length, s.width, s.angle)
                dm.polygon(_hull(pts + [(x + ox, y + oy) for x, y in pts]), fill=255)
        shade = np.asarray(mask.filter(ImageFilter.GaussianBlur(1.2)), np.float32) / 255
        direct_img = Image.fromarray(np.clip(direct * (1 - 0.85 * shade) * 255, 0, 255).astype(np.uint8))
        da, dd = ImageDraw.Draw(albedo), ImageDraw.Draw(direct_img)
        flat = round(255 * math.sin(light.el))
        towards = light.towards

        def face(normal: tuple[float, float], pitch: float) -> int:
            v = math.cos(pitch) * math.sin(light.el) + math.sin(pitch) * math.cos(light.el) * (
                normal[0] * towards[0] + normal[1] * towards[1]
            )
            return round(255 * min(1.0, 2.5 * math.sin(light.el), max(0.04, v)))

        for s in sorted(self.solids, key=lambda s: s.height):
            pts = _rect(s.x, s.y, s.length, s.width, s.angle)
            e = (math.cos(s.angle), math.sin(s.angle))
            p = (-math.sin(s.angle), math.cos(s.angle))
            if s.kind == "tree":
                r = s.length / 2
                box = (s.x - r, s.y - r, s.x + r, s.y + r)
                da.ellipse(box, fill=s.colour)
                dd.ellipse(box, fill=round(flat * 0.55))
                hx, hy = s.x + towards[0] * r * 0.35, s.y + towards[1] * r * 0.35
                da.ellipse(
                    (hx - r * 0.6, hy - r * 0.6, hx + r * 0.6, hy + r * 0.6), fill=_rgb(np.array(s.colour) * 1.15)
                )
                dd.ellipse((hx - r * 0.6, hy - r * 0.6, hx + r * 0.6, hy + r * 0.6), fill=min(255, round(flat * 1.05)))
            elif s.kind == "car":
                da.polygon(pts, fill=s.colour)
                dd.polygon(pts, fill=flat)
                da.polygon(_rect(s.x, s.y, s.length * 0.55, s.width * 0.8, s.angle), fill=(38, 42, 50))
                da.polygon(
                    _rect(s.x - e[0] * 0.4, s.y - e[1] * 0.4, s.length * 0.28, s.width * 0.8, s.angle), fill=s.colour
                )
            elif s.kind == "boat":
                da.polygon(pts, fill=s.colour)
                dd.polygon(pts, fill=flat)
                da.polygon(
                    _rect(s.x, s.y, s.length * 0.35, s.width * 0.6, s.angle), fill=_rgb(np.array(s.colour) * 0.75)
                )
            elif s.kind in ("gable", "hip"):
                c0, c1, c2, c3 = pts
                inset = s.width / 2 if s.kind == "hip" and s.length > s.width else 0.0
                m0 = (s.x - e[0] * (s.length / 2 - inset), s.y - e[1] * (s.length / 2 - inset))
                m1 = (s.x + e[0] * (s.length / 2 - inset), s.y + e[1] * (s.length / 2 - inset))
                faces: list[tuple[list[Point], tuple[float, float]]] = [
                    ([c0, c1, m1, m0], (-p[0], -p[1])),
                    ([m0, m1, c2, c3], p),
                ]
                if inset:
                    faces += [([c3, c0, m0], (-e[0], -e[1])), ([c1, c2, m1], e)]
                for poly, normal in faces:
                    da.polygon(poly, fill=s.colour)
                    dd.polygon(poly, fill=face(normal, s.pitch))
                da.line([m0, m1], fill=s.trim, width=1)
            else:  # flat roof: a parapet and some plant on it
                da.polygon(pts, fill=s.colour, outline=s.trim)
                dd.polygon(pts, fill=flat)
                if s.length > 16 and s.width > 10:
                    for _ in range(int(self.rng.integers(0, 4))):
                        u, v = self.rng.uniform(-0.35, 0.35) * s.length, self.rng.uniform(-0.3, 0.3) * s.width
                        box_pts = _rect(s.x + e[0] * u + p[0] * v, s.y + e[1] * u + p[1] * v, 3.5, 2.5, s.angle)
                        da.polygon(box_pts, fill=(196, 196, 192))
        return direct_img


_ROOFS: tuple[RGB, ...] = ((158, 78, 56), (132, 70, 52), (104, 74, 62), (84, 88, 98), (70, 72, 78), (170, 100, 70))
_CARS: tuple[RGB, ...] = (
    (225, 225, 222),
    (190, 192, 195),
    (150, 152, 156),
    (40, 40, 44),
    (30, 45, 90),
    (150, 30, 30),
    (70, 90, 110),
    (210, 200, 170),
    (35, 70, 50),
    (200, 120, 30),
)
_CROPS = np.array(
    [
        (196, 178, 112),  # ripe wheat
        (212, 196, 128),  # barley
        (104, 142, 62),  # young crop
        (72, 112, 48),  # dark green crop
        (124, 96, 70),  # ploughed soil
        (152, 128, 96),  # dry soil
        (206, 196, 78),  # rapeseed
        (118, 148, 82),  # pasture
        (168, 160, 112),  # stubble
        (92, 126, 70),  # meadow
    ],
    np.float32,
)


def _wander(rng: np.random.Generator, n: int, turn: float, step: float) -> list[Point]:
    """A smooth random path from one edge of the map across it, until it leaves."""
    side, at = int(rng.integers(4)), rng.uniform(0.15, 0.85) * n
    x, y, heading = [(at, -30.0, math.pi / 2), (at, n + 30.0, -math.pi / 2), (-30.0, at, 0.0), (n + 30.0, at, math.pi)][
        side
    ]
    heading += rng.uniform(-0.5, 0.5)
    bend = 0.0
    pts: list[Point] = []
    for _ in range(int(6 * n / step)):
        pts.append((x, y))
        bend = float(np.clip(0.85 * bend + rng.normal(0, turn), -0.12, 0.12))
        heading += bend
        x, y = x + step * math.cos(heading), y + step * math.sin(heading)
        if not -40 <= x <= n + 40 or not -40 <= y <= n + 40:
            pts.append((x, y))
            break
    return pts


def _dashes(pts: list[Point], on: float, off: float) -> list[list[Point]]:
    """A polyline cut into dashes."""
    out: list[list[Point]] = []
    phase, cur = 0.0, [pts[0]]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        seg = math.hypot(x1 - x0, y1 - y0)
        pos = 0.0
        while pos < seg:
            period_left = (on if phase < on else on + off) - phase
            step = min(period_left, seg - pos)
            pos += step
            phase += step
            x, y = x0 + (x1 - x0) * pos / seg, y0 + (y1 - y0) * pos / seg
            if phase <= on:
                cur.append((x, y))
            if phase >= on + off:
                phase = 0.0
                cur = [(x, y)]
            elif phase >= on and len(cur) > 1:
                out.append(cur)
                cur = []
    return out


def _along(pts: list[Point], spacing: float, start: float = 0.0) -> list[tuple[float, float, float]]:
    """Points every `spacing` along a polyline, with the direction there (radians)."""
    out: list[tuple[float, float, float]] = []
    want = start
    walked = 0.0
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        seg = math.hypot(x1 - x0, y1 - y0)
        while seg > 0 and want <= walked + seg:
            t = (want - walked) / seg
            out.append((x0 + (x1 - x0) * t, y0 + (y1 - y0) * t, math.atan2(y1 - y0, x1 - x0)))
            want += spacing
        walked += seg
    return out


def _fields(cv: _Canvas, small: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A patchwork of fields on a rotated, irregular grid, each with its crop, tone and rows; and
    the fields' edges."""
    rng, n = cv.rng, cv.n
    ang = rng.uniform(0, math.pi)
    u = cv.xx * math.cos(ang) + cv.yy * math.sin(ang)
    v = -cv.xx * math.sin(ang) + cv.yy * math.cos(ang)

    def cuts(lo: float, hi: float, a: float, b: float) -> np.ndarray:
        at = [lo - rng.uniform(0, b)]
        while at[-1] < hi:
            at.append(at[-1] + rng.uniform(a, b) * small)
        return np.array(at, np.float32)

    cu, cvv = cuts(float(u.min()), float(u.max()), 90, 320), cuts(float(v.min()), float(v.max()), 60, 240)
    cell = np.searchsorted(cu, u) * (len(cvv) + 1) + np.searchsorted(cvv, v)
    count = (len(cu) + 1) * (len(cvv) + 1)
    colours = _CROPS[rng.integers(len(_CROPS), size=count)] * rng.uniform(0.88, 1.1, (count, 1)).astype(np.float32)
    along = rng.random(count) < 0.5
    spacing = rng.uniform(3, 7, count).astype(np.float32)
    depth = rng.uniform(0.0, 0.14, count).astype(np.float32)
    stripes = np.sin(np.where(along[cell], u, v) * (2 * np.pi / spacing[cell]))
    albedo = colours[cell] * (1 + depth[cell] * stripes)[..., None]
    albedo *= (1 + 0.05 * _noise(rng, n, 6, 3))[..., None]
    edge = np.zeros((n, n), bool)
    edge[:, 1:] |= cell[:, 1:] != cell[:, :-1]
    edge[1:, :] |= cell[1:, :] != cell[:-1, :]
    wide = np.asarray(Image.fromarray(edge.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(3))) > 0
    return albedo, wide


def _farmland(cv: _Canvas) -> None:
    rng, n = cv.rng, cv.n
    cv.height = _noise(rng, n, 3, 5) * rng.uniform(25, 60)
    moist = _noise(rng, n, 4, 4)
    albedo, edges = _fields(cv)
    margin = np.array([112, 128, 78], np.float32)
    albedo[edges] = margin
    cv.albedo = albedo
    hedges = edges & (_noise(rng, n, 12, 2) > 0.2)
    woods = moist > rng.uniform(0.9, 1.4)
    cv.forest(hedges | woods, np.array([58, 86, 42], np.float32) * rng.uniform(0.85, 1.15))
    if rng.random() < 0.6:
        cv.river(rng.uniform(10, 26))
    _roads_with_houses(cv, int(rng.integers(2, 4)), villages=True)


def _roads_with_houses(cv: _Canvas, roads: int, villages: bool) -> None:
    """Roads across the map; farms along them, and maybe a village with street lights."""
    rng = cv.rng
    for r in range(roads):
        pts = _wander(rng, cv.n, 0.02, 18.0)
        width = rng.uniform(7, 12)
        paved = rng.random() < 0.75
        cv.road(pts, width, _rgb(np.array([84, 84, 88]) * rng.uniform(0.85, 1.2)) if paved else (150, 132, 104), paved)
        spots = _along(pts, rng.uniform(250, 500), rng.uniform(0, 200))
        for x, y, ang in spots:  # farms
            if rng.random() < 0.5:
                continue
            side = rng.choice([-1.0, 1.0])
            for _ in range(int(rng.integers(2, 6))):
                off = width / 2 + rng.uniform(12, 45)
                t = rng.uniform(-40, 40)
                hx = x + math.cos(ang) * t - side * math.sin(ang) * off
                hy = y + math.sin(ang) * t + side * math.cos(ang) * off
                if cv.dry(hx, hy):
                    cv.house(
                        hx, hy, ang + rng.choice([0.0, math.pi / 2]) + rng.uniform(-0.1, 0.1), big=rng.random() < 0.3
                    )
            for _ in range(int(rng.integers(2, 7))):
                tx, ty = x + rng.uniform(-60, 60), y + rng.uniform(-60, 60)
                if cv.dry(tx, ty):
                    cv.tree(tx, ty)
            cv.lamps.append((x, y))
        if villages and r == 0 and len(pts) > 10:
            a = int(rng.integers(0, max(1, len(pts) - 14)))
            seg = pts[a : a + int(rng.integers(10, 16))]
            for x, y, ang in _along(seg, rng.uniform(18, 28)):
                for side in (-1.0, 1.0):
                    if rng.random() < 0.75:
                        off = width / 2 + rng.uniform(10, 18)
                        hx, hy = x - side * math.sin(ang) * off, y + side * math.cos(ang) * off
                        if cv.dry(hx, hy):
                            cv.house(hx, hy, ang + rng.uniform(-0.08, 0.08))
            for i, (x, y, ang) in enumerate(_along(seg, rng.uniform(30, 42))):
                side = 1.0 if i % 2 else -1.0
                cv.lamps.append(
                    (x - side * math.sin(ang) * (width / 2 + 2), y + side * math.cos(ang) * (width / 2 + 2))
                )


def _hills(cv: _Canvas) -> None:
    rng, n = cv.rng, cv.n
    ridged = 1 - np.abs(_noise(rng, n, 3, 5))
    h = 0.6 * _noise(rng, n, 2, 6, 0.55) + 0.5 * ridged
    lo, hi = np.percentile(h[::8, ::8], [1, 99.5])
    h = np.clip((h - lo) / (hi - lo), 0, 1)
    relief = rng.uniform(250, 480)
    cv.height = h * relief
    gy, gx = np.gradient(cv.height)
    slope = np.sqrt(gx * gx + gy * gy)
    moist = _noise(rng, n, 4, 4)
    detail = _noise(rng, n, 48, 3)
    wl = float(np.percentile(h[::8, ::8], rng.uniform(3, 15)))
    meadow = np.array([108, 134, 72], np.float32) * rng.uniform(0.9, 1.1)
    albedo = np.empty((n, n, 3), np.float32)
    albedo[:] = meadow
    albedo *= (1 + 0.08 * detail)[..., None]
    dry = np.array([150, 140, 100], np.float32)
    albedo += (dry - albedo) * (0.5 * _smooth(moist, 0.3, 1.5))[..., None]
    treeline = rng.uniform(0.45, 0.65)
    woods = (moist > -0.3) & (h < treeline + 0.05 * detail) & (h > wl + 0.02)
    cv.albedo = albedo
    cv.forest(woods, np.array([44, 70, 40], np.float32) * rng.uniform(0.85, 1.15))
    steep = float(np.percentile(slope[::8, ::8], rng.uniform(78, 90)))
    rock = np.maximum(
        _smooth(slope, steep * 0.8, steep * 1.3), _smooth(h + 0.04 * detail, treeline + 0.12, treeline + 0.2)
    )
    rock_c = np.array([128, 122, 114], np.float32) * (1 + 0.12 * detail)[..., None]
    cv.albedo += (rock_c - cv.albedo) * rock[..., None]
    snowline = rng.uniform(0.78, 0.9)
    snow = _smooth(h + 0.03 * detail, snowline, snowline + 0.05) * (1 - _smooth(slope, steep * 1.2, steep * 2.0))
    cv.albedo += (np.array([236, 238, 244], np.float32) - cv.albedo) * snow[..., None]
    sand = _smooth(h, wl + 0.025, wl) * (h >= wl)
    cv.albedo += (np.array([184, 170, 130], np.float32) - cv.albedo) * sand[..., None]
    _lake(cv, h, wl)
    _roads_with_houses(cv, 1, villages=rng.random() < 0.5)


def _lake(cv: _Canvas, h: np.ndarray, level: float) -> None:
    wet = h < level
    depth = _smooth(level - h[wet], 0.0, 0.12)[:, None]
    shallow, deep = np.array([64, 116, 118], np.float32), np.array([22, 48, 74], np.float32)
    cv.albedo[wet] = shallow + (deep - shallow) * depth
    cv.water |= wet


def _coast(cv: _Canvas) -> None:
    rng, n = cv.rng, cv.n
    a = rng.uniform(0, 2 * math.pi)
    ramp = ((cv.xx - n / 2) * math.cos(a) + (cv.yy - n / 2) * math.sin(a)) / n
    h = 1.4 * ramp + 0.3 * _noise(rng, n, 3, 5)
    level = float(np.percentile(h[::8, ::8], rng.uniform(28, 45)))
    cv.height = np.maximum(h - level, 0) * rng.uniform(60, 160)
    albedo, edges = _fields(cv)
    albedo[edges] = np.array([110, 126, 80], np.float32)
    cv.albedo = albedo
    beach = (h >= level) & (h < level + rng.uniform(0.02, 0.05))
    cv.albedo[beach] = np.array([214, 198, 158], np.float32) * (1 + 0.05 * cv.crowns()[beach, None])
    _lake(cv, h, level)
    woods = _noise(rng, n, 4, 4) > 1.0
    cv.forest(woods & ~cv.water & ~beach, np.array([52, 84, 46], np.float32))
    # a town on the shore: points just inland
    ys, xs = np.nonzero((h[::16, ::16] > level + 0.08) & (h[::16, ::16] < level + 0.2))
    if len(xs):
        i = int(rng.integers(len(xs)))
        _street_grid(cv, (xs[i] * 16.0, ys[i] * 16.0), rng.uniform(220, 420), tall=0.3)
    for _ in range(int(rng.integers(4, 16))):  # boats
        x, y = rng.uniform(0, n), rng.uniform(0, n)
        if cv.inside(x, y) and cv.water[int(y), int(x)]:
            length = rng.uniform(8, 24)
            colour = (236, 236, 232) if rng.random() < 0.7 else _CARS[int(rng.integers(len(_CARS)))]
            cv.solids.append(_Solid("boat", x, y, length, length * 0.35, rng.uniform(0, math.pi), 2.0, colour))
    _roads_with_houses(cv, 1, villages=False)


def _forest(cv: _Canvas) -> None:
    rng, n = cv.rng, cv.n
    h = _noise(rng, n, 3, 5)
    cv.height = h * rng.uniform(40, 120)
    kinds = _noise(rng, n, 5, 3)
    if rng.random() < 0.3:  # autumn
        a, b = np.array([150, 104, 48], np.float32), np.array([64, 82, 40], np.float32)
        c = np.array([170, 72, 40], np.float32)
    else:
        a, b = np.array([34, 60, 36], np.float32), np.array([72, 104, 50], np.float32)
        c = np.array([52, 82, 44], np.float32)
    mix = _smooth(kinds, -0.8, 0.8)[..., None]
    colour = a + (b - a) * mix
    colour += (c - colour) * (0.6 * _smooth(_noise(rng, n, 24, 2), 0.8, 1.6))[..., None]
    cv.albedo[:] = np.array([112, 132, 74], np.float32) * (1 + 0.08 * _noise(rng, n, 40, 3))[..., None]
    clearings = _noise(rng, n, 4, 4) < -rng.uniform(0.9, 1.3)
    level = float(np.percentile(h[::8, ::8], rng.uniform(2, 9)))
    cv.forest(~clearings & (h > level + 0.08), colour)
    _lake(cv, h, level)
    if rng.random() < 0.5:
        cv.river(rng.uniform(8, 18))
    _roads_with_houses(cv, int(rng.integers(1, 3)), villages=False)


def _street_grid(
    cv: _Canvas, centre: Point, radius: float, tall: float, avoid: Sequence[tuple[Point, float]] = ()
) -> None:
    """Streets on a rotated grid around `centre` (within `radius`, on dry land, away from the
    `avoid` circles): blocks of rooftops, downtown tall and filling their lots, further out houses
    with yards; parks, parked cars, street lamps."""
    rng = cv.rng
    ang = rng.uniform(0, math.pi)
    e, p = (math.cos(ang), math.sin(ang)), (-math.sin(ang), math.cos(ang))
    street = rng.uniform(10, 15)
    asphalt = _rgb(np.array([80, 80, 84]) * rng.uniform(0.9, 1.15))
    pavement = _rgb(np.array([150, 146, 138]) * rng.uniform(0.9, 1.1))
    yard = np.array([100, 128, 72]) * rng.uniform(0.85, 1.1)

    def at(u: float, v: float) -> Point:
        return (centre[0] + u * e[0] + v * p[0], centre[1] + u * e[1] + v * p[1])

    def here(x: float, y: float) -> bool:
        if math.hypot(x - centre[0], y - centre[1]) > radius or not cv.dry(x, y):
            return False
        return all(math.hypot(x - c[0], y - c[1]) > r for c, r in avoid)

    def lines(a: float, b: float) -> list[float]:
        out = [-radius - rng.uniform(0, b)]
        while out[-1] < radius:
            out.append(out[-1] + street + rng.uniform(a, b))
        return out

    us, vs = lines(70, 150), lines(55, 130)
    segments = [(at(u, v0), at(u, v1)) for u in us for v0, v1 in zip(vs, vs[1:], strict=False)]
    segments += [(at(u0, v), at(u1, v)) for v in vs for u0, u1 in zip(us, us[1:], strict=False)]
    for a, b in segments:
        if here((a[0] + b[0]) / 2, (a[1] + b[1]) / 2):
            cv.road([a, b], street, asphalt)
            for i, (x, y, d) in enumerate(_along([a, b], rng.uniform(34, 48), rng.uniform(5, 20))):
                side = street / 2 + 2 if i % 2 else -street / 2 - 2
                cv.lamps.append((x - math.sin(d) * side, y + math.cos(d) * side))
    for u0, u1 in zip(us, us[1:], strict=False):
        for v0, v1 in zip(vs, vs[1:], strict=False):
            cu, cvv = (u0 + u1) / 2, (v0 + v1) / 2
            x, y = at(cu, cvv)
            if not here(x, y):
                continue
            bl, bw = u1 - u0 - street, v1 - v0 - street
            cv.poly(_rect(x, y, bl, bw, ang), pavement)
            for _ in range(int(rng.poisson(bl / 45))):  # parked cars along the street
                t = rng.uniform(-bl / 2, bl / 2)
                off = bw / 2 + street / 2 - 3.5
                cv.car(*at(cu + t, cvv + off * rng.choice([-1.0, 1.0])), ang)
            near = tall * math.exp(-math.hypot(x - centre[0], y - centre[1]) / (0.4 * radius))
            if rng.random() < 0.1:  # a park
                cv.poly(_rect(x, y, bl - 6, bw - 6, ang), _rgb(yard * rng.uniform(0.9, 1.1)))
                for _ in range(int(rng.integers(3, 14))):
                    tu, tv = rng.uniform(-0.4, 0.4) * bl, rng.uniform(-0.4, 0.4) * bw
                    cv.tree(*at(cu + tu, cvv + tv), r=rng.uniform(4, 8))
                continue
            downtown = rng.random() < near * 1.5
            rows = 2 if bw > 46 else 1
            lots = max(1, int(bl // (rng.uniform(30, 60) if downtown else rng.uniform(20, 34))))
            ll, lw = (bl - 6) / lots, (bw - 6) / rows
            if not downtown:
                cv.poly(_rect(x, y, bl - 6, bw - 6, ang), _rgb(yard * rng.uniform(0.9, 1.1)))
            for r in range(rows):
                for k in range(lots):
                    su, sv = -bl / 2 + 3 + ll * (k + 0.5), -bw / 2 + 3 + lw * (r + 0.5)
                    if downtown:
                        colour = _rgb(np.array([150, 148, 142]) * rng.uniform(0.45, 1.15))
                        height = rng.uniform(12, 20) + near * rng.uniform(10, 70)
                        size = (ll - rng.uniform(1, 3), lw - rng.uniform(1, 4))
                        cv.solids.append(
                            _Solid("flat", *at(cu + su, cvv + sv), *size, ang, height, colour, _dim(colour))
                        )
                        continue
                    if rng.random() < 0.15:
                        continue  # an empty lot
                    # a house set back in its lot, towards the street, a tree or two behind
                    towards = -1.0 if r == 0 else 1.0
                    hl, hw = ll * rng.uniform(0.5, 0.8), min(lw * rng.uniform(0.4, 0.6), 20.0)
                    hv = sv + towards * (lw / 2 - hw / 2 - rng.uniform(2, 6))
                    kind = str(rng.choice(["gable", "hip", "flat"], p=[0.5, 0.35, 0.15]))
                    if kind == "flat":
                        colour = _rgb(np.array([150, 148, 142]) * rng.uniform(0.55, 1.1))
                    else:
                        colour = _rgb(np.array(_ROOFS[int(rng.integers(len(_ROOFS)))]) * rng.uniform(0.85, 1.1))
                    height = rng.uniform(6, 12)
                    cv.solids.append(_Solid(kind, *at(cu + su, cvv + hv), hl, hw, ang, height, colour, _dim(colour)))
                    if rng.random() < 0.6:
                        tx, ty = at(cu + su + rng.uniform(-0.3, 0.3) * ll, cvv + sv - towards * lw * 0.3)
                        cv.tree(tx, ty, r=rng.uniform(3, 6))


def _dim(colour: RGB, k: float = 0.6) -> RGB:
    return _rgb(np.array(colour) * k)


def _town(cv: _Canvas) -> None:
    rng, n = cv.rng, cv.n
    cv.height = _noise(rng, n, 2, 4) * rng.uniform(10, 40)
    cv.albedo[:] = np.array([118, 128, 86], np.float32) * (1 + 0.1 * _noise(rng, n, 12, 3))[..., None]
    if rng.random() < 0.4:
        cv.river(rng.uniform(20, 40))
    centre = (n / 2 + rng.uniform(-0.2, 0.2) * n, n / 2 + rng.uniform(-0.2, 0.2) * n)
    _street_grid(cv, centre, n * rng.uniform(0.75, 0.95), tall=rng.uniform(0.4, 1.0))


def _carpark(cv: _Canvas) -> None:
    """One or two car parks (rows of bays, cars, planted strips with lamps, a store), with a
    suburb or fields around them."""
    rng, n = cv.rng, cv.n
    cv.height = _noise(rng, n, 2, 4) * rng.uniform(10, 30)
    suburb = rng.random() < 0.6
    if suburb:
        cv.albedo[:] = np.array([114, 134, 80], np.float32) * (1 + 0.1 * _noise(rng, n, 10, 3))[..., None]
    else:
        cv.albedo, edges = _fields(cv)
        cv.albedo[edges] = np.array([110, 126, 80], np.float32)
    lots: list[tuple[Point, float]] = []
    first = (n / 2 + rng.uniform(-0.15, 0.15) * n, n / 2 + rng.uniform(-0.15, 0.15) * n)
    for k in range(int(rng.integers(1, 3))):
        length = rng.uniform(450, 760) if k == 0 else rng.uniform(200, 380)
        width = rng.uniform(300, 480) if k == 0 else rng.uniform(150, 260)
        reach = math.hypot(length, width) / 2 + (180 if k == 0 else 40)  # room for the store
        if k == 0:
            centre = first
        else:
            a = rng.uniform(0, 2 * math.pi)
            d = lots[0][1] + reach + 30
            centre = (first[0] + d * math.cos(a), first[1] + d * math.sin(a))
            if not cv.inside(*centre, reach * 0.5):
                continue
        lots.append((centre, reach))
        _lot(cv, centre, length, width, store=k == 0)
    if suburb:
        _street_grid(cv, first, n, tall=rng.uniform(0.0, 0.3), avoid=lots)
    else:
        _roads_with_houses(cv, int(rng.integers(1, 3)), villages=False)


def _lot(cv: _Canvas, centre: Point, length: float, width: float, store: bool) -> None:
    rng = cv.rng
    cx, cy = centre
    ang = rng.uniform(0, math.pi)
    e, p = (math.cos(ang), math.sin(ang)), (-math.sin(ang), math.cos(ang))

    def at(u: float, v: float) -> Point:
        return (cx + u * e[0] + v * p[0], cy + u * e[1] + v * p[1])

    cv.poly(_rect(cx, cy, length + 8, width + 8, ang), (168, 166, 160))
    cv.poly(_rect(cx, cy, length, width, ang), _rgb(np.array([78, 78, 82]) * rng.uniform(0.85, 1.25)))
    full = rng.uniform(0.35, 0.95)
    bay, depth, aisle = 5.2, 10.5, rng.uniform(13, 16)
    v, row = -width / 2 + aisle, 0
    while v + 2 * depth < width / 2 - aisle / 2:
        island = row % 2 == 1 and rng.random() < 0.7
        gap = 5.0 if island else 0.0
        spine = [at(-length / 2 + aisle, v + depth + gap / 2), at(length / 2 - aisle, v + depth + gap / 2)]
        if island:  # a planted strip between the two rows of bays, with trees
            cv.poly(_rect(*at(0, v + depth + gap / 2), length - 2 * aisle, gap, ang), (98, 128, 70))
            for x, y, _ in _along(spine, rng.uniform(26, 40), rng.uniform(5, 20)):
                cv.tree(x, y, r=rng.uniform(3.5, 6))
        for x, y, _ in _along(spine, rng.uniform(45, 70), 20):
            cv.lamps.append((x, y))
        for half, vv in ((0, v), (1, v + depth + gap)):
            u = -length / 2 + aisle
            while u + bay < length / 2 - aisle:
                cv.ground.append(("line", [at(u, vv), at(u, vv + depth)], (214, 214, 206), 1))
                if rng.random() < full:
                    x, y = at(u + bay / 2, vv + depth / 2)
                    turn = math.pi / 2 + math.pi * half + rng.normal(0, 0.03)
                    cv.car(x + rng.normal(0, 0.3), y + rng.normal(0, 0.3), ang + turn)
                u += bay
        v += 2 * depth + gap + aisle
        row += 1
    if store:  # a store along one side, its flat roof with skylights
        sl, sw = rng.uniform(180, 320), rng.uniform(90, 150)
        su = rng.uniform(-0.2, 0.2) * length
        sx, sy = at(su, -width / 2 - 12 - sw / 2)
        height = rng.uniform(16, 26)
        roof = _rgb(np.array([190, 190, 184]) * rng.uniform(0.7, 1.0))
        cv.solids.append(_Solid("flat", sx, sy, sl, sw, ang, height, roof, (120, 120, 118)))
        for i in range(int(sl // 30)):
            for j in range(int(sw // 30)):
                ux, uy = at(su + i * 30 - sl / 2 + 20, -width / 2 - 12 - sw + j * 30 + 20)
                cv.solids.append(_Solid("flat", ux, uy, 8, 4, ang, height + 0.5, (214, 220, 228), (150, 150, 150)))


_BUILDERS: dict[str, Callable[[_Canvas], None]] = {
    "farmland": _farmland,
    "hills": _hills,
    "coast": _coast,
    "forest": _forest,
    "town": _town,
    "carpark": _carpark,
}


class _World:
    """A finished location: its albedo (RGB) and direct light (A) map, with two smaller copies; its
    light and street lamps."""

    def __init__(
        self,
        albedo: Image.Image,
        direct: Image.Image,
        light: _Light,
        lamps: np.ndarray,
        amb: float,
        sun: float,
        water: np.ndarray,
    ) -> None:
        self.n = albedo.width
        # One lookup gives both. Mode "RGBa" because PIL would premultiply "RGBA" by alpha to resample it.
        rgba = Image.merge("RGBa", (*albedo.split(), direct))
        self.maps = [rgba, rgba.reduce(2), rgba.reduce(4)]
        self.light = light
        self.lamps = lamps  # (m, 3): map pixels x, y and the radius of its pool of light
        self.water = water  # every fourth map pixel: is it water
        self.amb_mean, self.sun_mean = amb, sun  # mean ambient and sunlit parts of the brightness
        self.lamps_on = False

    def dry(self, x: float, y: float) -> bool:
        i, j = int(y) // 4, int(x) // 4
        return 0 <= i < self.water.shape[0] and 0 <= j < self.water.shape[1] and not self.water[i, j]


def _build_world(rng: np.random.Generator, loc: Location, n: int) -> _World:
    cv = _Canvas(rng, n, _draw_light(rng, loc.dusk))
    _BUILDERS[loc.kind](cv)
    return cv.finish()


# --- the camera -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _View:
    scale: float  # map pixels per view pixel at the view's centre, for a view _WORK_WIDTH wide
    tilt: float  # radians from straight down
    heading: float  # radians clockwise from the map's top


@dataclass
class _Path:
    """The camera per frame: the ground point under it, heading, height above ground (map pixels) and tilt."""

    px: np.ndarray
    py: np.ndarray
    heading: np.ndarray
    alt: np.ndarray
    tilt: float
    level: int = 0  # which copy of the maps to sample

    def matrices(self, w: int, h: int) -> np.ndarray:
        """Per frame, the 3x3 homography from view pixels (x, y, 1) to map pixels at level 0."""
        f = _FOCAL * w
        s, c = math.sin(self.tilt), math.cos(self.tilt)
        n = len(self.px)
        row_w = np.array([0.0, s, f * c - h / 2 * s])
        zeros = np.zeros(n)
        row_a = np.stack([self.alt, zeros, -self.alt * w / 2], axis=1)  # map pixels to the right, times w
        row_b = np.stack([zeros, -self.alt * c, self.alt * (f * s + h / 2 * c)], axis=1)  # forward, times w
        rx, ry = np.cos(self.heading)[:, None], np.sin(self.heading)[:, None]
        fx, fy = np.sin(self.heading)[:, None], -np.cos(self.heading)[:, None]
        top = self.px[:, None] * row_w + rx * row_a + fx * row_b
        mid = self.py[:, None] * row_w + ry * row_a + fy * row_b
        return np.stack([top, mid, np.broadcast_to(row_w, (n, 3))], axis=1)

    def footprint(self, w: int, h: int) -> np.ndarray:
        """The view's corners on the map per frame: (frames, 4, 2)."""
        m = self.matrices(w, h)
        corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], np.float64)
        q = np.einsum("nij,kj->nki", m, corners)
        out: np.ndarray = q[..., :2] / q[..., 2:3]
        return out


def _first_view(rng: np.random.Generator, move: str) -> _View:
    if move == "mast":
        return _View(rng.uniform(0.45, 0.9), math.radians(rng.uniform(35, 50)), rng.uniform(0, 2 * math.pi))
    scale = math.exp(rng.uniform(math.log(0.6), math.log(2.4)))
    if move == "orbit":
        tilt = rng.uniform(25, 42)
    else:
        tilt = rng.uniform(0, 5) if rng.random() < 0.4 else rng.uniform(15, 40)
    return _View(scale, math.radians(tilt), rng.uniform(0, 2 * math.pi))


def _next_view(rng: np.random.Generator, move: str, heading: float, scale: float) -> _View:
    """Another view of the same location: turned by 60-180 degrees, and higher or lower."""
    fresh = _first_view(rng, move)
    lo, hi = (0.35, 1.0) if move == "mast" else (0.45, 3.0)
    ratio = rng.uniform(1.8, 3.0)
    up, down = scale * ratio, scale / ratio
    new = up if (rng.random() < 0.5 and up <= hi) or down < lo else down
    turn = rng.uniform(math.radians(60), math.pi) * rng.choice([-1.0, 1.0])
    return _View(float(np.clip(new, lo, hi)), fresh.tilt, heading + turn)


def _camera_path(
    rng: np.random.Generator,
    move: str,
    view: _View,
    n: int,
    fps: int,
    size: tuple[int, int],
    effects: list[Effect],
    style: AerialStyle,
    world: int,
) -> _Path:
    """The camera over a shot's `n` frames, placed on the map so the view never leaves it."""
    w, h = size
    t = np.arange(n) / fps
    f = _FOCAL * w
    m = style.move
    span = view.scale * _WORK_WIDTH  # map pixels across the view: the same for any frame size
    alt = np.full(n, span * _FOCAL * math.cos(view.tilt))
    heading = np.full(n, view.heading)
    px, py = np.zeros(n), np.zeros(n)

    def sign() -> float:
        return float(rng.choice([-1.0, 1.0]))

    if move == "fly":
        speed = span * rng.uniform(0.04, 0.2) * m
        turn = math.radians(rng.uniform(-4, 4)) * m
        side = 0.0 if rng.random() < 0.8 else sign() * math.pi / 2
        heading = view.heading + turn * t
        px = np.cumsum(speed * np.sin(heading + side)) / fps
        py = np.cumsum(-speed * np.cos(heading + side)) / fps
    elif move == "yaw":
        heading = view.heading + sign() * math.radians(rng.uniform(4, 18)) * m * t
    elif move == "orbit":
        heading = view.heading + sign() * math.radians(rng.uniform(4, 12)) * m * t
        reach = alt[0] * math.tan(view.tilt)
        px, py = -np.sin(heading) * reach, np.cos(heading) * reach
    elif move == "altitude":
        alt = alt * np.exp(sign() * rng.uniform(0.04, 0.15) * m * t)
        heading = view.heading + math.radians(rng.uniform(-3, 3)) * m * t
    elif move == "hover":
        a, speed = rng.uniform(0, 2 * math.pi), span * rng.uniform(0, 0.02) * m
        px, py = speed * t * math.cos(a), speed * t * math.sin(a)
    elif move == "mast" and rng.random() < 0.4:
        heading = view.heading + sign() * math.radians(rng.uniform(0.5, 2.5)) * m * t
    # wind: a few slow sines; a mast sways more and slower than a stabilised drone
    mast = move == "mast"
    for arr in (px, py):
        amp = style.jitter * (rng.uniform(1.0, 2.5) if mast else rng.uniform(0.2, 1.2)) * view.scale
        for _ in range(3):
            hz = rng.uniform(0.15, 0.7) if mast else rng.uniform(0.4, 2.5)
            arr += amp / 2 * np.sin(2 * np.pi * hz * t + rng.uniform(0, 2 * np.pi))
    heading = heading + style.jitter * math.radians(rng.uniform(0.03, 0.2)) * np.sin(
        2 * np.pi * rng.uniform(0.2, 1.5) * t + rng.uniform(0, 2 * np.pi)
    )
    for fx in effects:
        ramp = np.clip((np.arange(n) - fx.a + 1) / (fx.b - fx.a), 0, 1)
        ramp = ramp * ramp * (3 - 2 * ramp)
        if fx.name == "swing":
            dist, a = span * rng.uniform(0.8, 1.4), rng.uniform(0, 2 * math.pi)
            px = px + dist * math.cos(a) * ramp
            py = py + dist * math.sin(a) * ramp
        elif fx.name == "yaw":
            heading = heading + sign() * math.radians(rng.uniform(50, 150)) * ramp
    path = _Path(px, py, heading, alt, view.tilt)
    corners = path.footprint(w, h)
    lo, hi = corners.reshape(-1, 2).min(axis=0), corners.reshape(-1, 2).max(axis=0)
    pad = 6.0
    shrink = min(1.0, (world - 2 * pad) / float(max(hi - lo)))
    if shrink < 1.0:  # the footprint is linear in altitude and ground offsets together
        path.alt, path.px, path.py = path.alt * shrink, px * shrink, py * shrink
        lo, hi = lo * shrink, hi * shrink
    ox = rng.uniform(pad - lo[0], max(pad - lo[0], world - pad - hi[0]))
    oy = rng.uniform(pad - lo[1], max(pad - lo[1], world - pad - hi[1]))
    path.px, path.py = path.px + ox, path.py + oy
    finest = float(path.alt.min()) / (f * math.cos(view.tilt))
    path.level = int(np.clip(math.floor(math.log2(finest / 1.4)) + 1, 0, 2))
    return path


# --- drawing a shot -----------------------------------------------------------------------------------


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


class _ShotRenderer:
    """Draws one shot's frames: the location through the camera, lit, hazed, with its effects."""

    def __init__(
        self,
        world: _World,
        path: _Path,
        effects: list[Effect],
        size: tuple[int, int],
        fps: int,
        rng: np.random.Generator,
        style: AerialStyle,
    ) -> None:
        self.world, self.path, self.size, self.fps = world, path, size, fps
        w, h = size
        light = world.light
        scale = 2.0**-path.level
        mats = path.matrices(w, h) * np.array([scale, scale, 1.0])[None, :, None]
        self.data = [tuple((mt / mt[2, 2]).ravel()[:8]) for mt in mats]
        # haze: how much air each row of the view looks through
        f = _FOCAL * w
        rows = (np.arange(h) + 0.5 - h / 2) / f
        self.slant = 1 / np.maximum(rows * math.sin(path.tilt) + math.cos(path.tilt), 0.05)
        self.haze_per_px = style.haze / light.haze_range
        self.amb, self.sun = light.amb.astype(np.float32), light.sun.astype(np.float32)
        self.haze, self.lamp = light.haze.astype(np.float32), light.lamp.astype(np.float32)
        self.sun_fx: list[tuple[Effect, float]] = []
        self.shadows: list[tuple[Effect, np.ndarray, bool, int, float]] = []
        self.lamp_groups: list[tuple[Image.Image, int, int]] = []  # (map, onset, ramp) in shot frames
        self.flashes: dict[int, tuple[float, np.ndarray]] = {}  # frame: (strength, colour)
        self.occluders: list[tuple[Effect, dict[str, float], RGB]] = []
        self.dim = 0.45 if light.dusk else 1.0  # how lit things close to the lens are
        lit_before = world.lamps_on
        for fx in effects:
            if fx.name == "sun_cloud":
                # sunlight drops by `deep`, skylight by a quarter of that: 15-40 % darker overall
                target = rng.uniform(0.15, 0.4)
                a, s = world.amb_mean, world.sun_mean
                self.sun_fx.append((fx, min(1.0, target * (a + s) / (0.25 * a + s + 1e-6))))
            elif fx.name == "cloud_shadow":
                self.shadows.append(self._cloud(rng, fx))
            elif fx.name == "streetlights":
                self._switch_lights(rng, fx)
                world.lamps_on = True
            elif fx.name in ("lightning", "photo_flash"):
                tint = (
                    np.array([235, 240, 255], np.float32)
                    if fx.name == "lightning"
                    else np.array([255, 250, 238], np.float32)
                )
                for j in range(fx.a, fx.b):
                    self.flashes[j] = (rng.uniform(0.5, 0.85), tint)
            elif fx.name in ("bird", "drone", "branch"):
                self.occluders.append(self._occluder(rng, fx))
        if lit_before and len(world.lamps):
            self.lamp_groups.append((self._lamp_map(world.lamps, rng), -1, 1))

    # effects set-up

    def _cloud(self, rng: np.random.Generator, fx: Effect) -> tuple[Effect, np.ndarray, bool, int, float]:
        """A soft cloud shadow that crosses the view along x or y over the effect's frames. Returns the
        effect, its mask laid along the direction of travel (short side, long side), whether it
        travels along x, where it sits across that direction, and how much sunlight it takes."""
        w, h = self.size
        along_x = bool(rng.random() < 0.6)
        long, short = (w, h) if along_x else (h, w)
        bl, bs = round(long * rng.uniform(0.8, 1.4)), round(short * rng.uniform(1.2, 1.8))
        blob = Image.new("L", (bl, bs), 0)
        d = ImageDraw.Draw(blob)
        for _ in range(9):  # clear of the blob's ends along its way, so that it fades out there
            cx, cy = rng.uniform(0.32, 0.68) * bl, rng.uniform(0.1, 0.9) * bs
            rx, ry = rng.uniform(0.12, 0.18) * bl, rng.uniform(0.2, 0.35) * bs
            d.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)
        mask = np.asarray(blob.filter(ImageFilter.GaussianBlur(0.05 * bl)), np.float32).T / 255  # (bl, bs)
        if rng.random() < 0.5:  # travels the other way
            mask = mask[::-1]
        return fx, mask, along_x, int(rng.integers(0, bs - short + 1)), rng.uniform(0.6, 0.9)

    def _shadow(self, j: int) -> np.ndarray | None:
        w, h = self.size
        out: np.ndarray | None = None
        for fx, mask, along_x, offset, strength in self.shadows:
            if not fx.a <= j < fx.b:
                continue
            long, short = (w, h) if along_x else (h, w)
            bl = mask.shape[0]
            s = (j - fx.a + 0.5) / (fx.b - fx.a)
            at = round(-bl + s * (long + bl))
            strip = np.zeros((long, short), np.float32)
            part = mask[max(0, -at) : min(bl, long - at), offset : offset + short]
            strip[max(0, at) : max(0, at) + part.shape[0]] = part
            canvas = strip.T if along_x else strip
            out = canvas * strength if out is None else np.maximum(out, canvas * strength)
        return out

    def _switch_lights(self, rng: np.random.Generator, fx: Effect) -> None:
        """The location's lamps switch on in one to three groups (split across the view), the last
        one fully on by the effect's end; floodlights around a yard are added where the view has
        few lamps."""
        w, h = self.size
        world = self.world
        m = self.path.matrices(w, h)[fx.a]
        lamps = world.lamps
        seen = self._in_view(lamps, m)
        corners = self.path.footprint(w, h)[fx.a]
        area = 0.5 * abs(float(np.dot(corners[:, 0], np.roll(corners[:, 1], 1) - np.roll(corners[:, 1], -1))))
        if np.pi * float((lamps[seen, 2] ** 2).sum()) < 0.05 * area:
            # few lamps in view: floodlights on poles around a yard near the view's centre, on land
            for _ in range(20):
                cx, cy, cz = m @ np.array([w * rng.uniform(0.3, 0.7), h * rng.uniform(0.35, 0.75), 1.0])
                cx, cy = cx / cz, cy / cz
                if world.dry(cx, cy):
                    break
            r = math.sqrt(rng.uniform(0.015, 0.03) * area / np.pi)
            sx, sy = 2.2 * r, 2.2 * r * rng.uniform(0.7, 1.0)
            yard = [(cx + i * sx, cy + j * sy, r * rng.uniform(0.9, 1.1)) for i in (-1, 0, 1) for j in (-0.5, 0.5)]
            lamps = np.r_[lamps, np.array(yard)]
            world.lamps = lamps
            seen = self._in_view(lamps, m)
        ramp = fx.params["ramp"]
        groups = int(rng.integers(1, 4)) if ramp < fx.b - fx.a else 1
        if groups == 1:
            ramp = fx.b - fx.a  # all at once, warming up over the whole effect
        direction = rng.uniform(0, 2 * math.pi)
        order = lamps[:, :2] @ np.array([math.cos(direction), math.sin(direction)])
        cuts = np.quantile(order[seen], np.linspace(0, 1, groups + 1)[1:-1]) if groups > 1 else np.array([])
        which = np.searchsorted(cuts, order)
        onsets = np.linspace(fx.a, fx.b - ramp, groups).round().astype(int)
        for g in range(groups):
            if (which == g).any():
                self.lamp_groups.append((self._lamp_map(lamps[which == g], rng), int(onsets[g]), ramp))

    def _in_view(self, lamps: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Which lamps the view with map homography `m` sees, away from its edges."""
        w, h = self.size
        q = np.c_[lamps[:, :2], np.ones(len(lamps))] @ np.linalg.inv(m).T
        x, y = q[:, 0] / q[:, 2], q[:, 1] / q[:, 2]
        inside: np.ndarray = (q[:, 2] > 0) & (x > 0.05 * w) & (x < 0.95 * w) & (y > 0.05 * h) & (y < 0.95 * h)
        return inside

    def _lamp_map(self, lamps: np.ndarray, rng: np.random.Generator) -> Image.Image:
        """Pools of lamp light on the map at the shot's level, with the lamps' own bright spots."""
        scale = 2.0**-self.path.level
        n = self.world.maps[self.path.level].width
        img = Image.new("L", (n, n), 0)
        d = ImageDraw.Draw(img)
        for x, y, r in lamps * scale:
            d.ellipse((x - r, y - r, x + r, y + r), fill=int(rng.uniform(170, 240)))
        for x, y, _ in lamps * scale:
            d.ellipse((x - 2.5 * scale, y - 2.5 * scale, x + 2.5 * scale, y + 2.5 * scale), fill=255)
        return img.filter(ImageFilter.GaussianBlur(5 * scale + 0.5))

    def _occluder(self, rng: np.random.Generator, fx: Effect) -> tuple[Effect, dict[str, float], RGB]:
        """A bird, a drone or a branch close to the lens: its shape, path and colour."""
        w, h = self.size
        p: dict[str, float] = {"dir": float(rng.choice([-1.0, 1.0])), "y0": rng.uniform(0.3, 0.7) * h}
        p["y1"] = p["y0"] + rng.uniform(-0.25, 0.25) * h
        p["blur"] = rng.uniform(0.004, 0.012) * w  # close to the lens: a little out of focus
        if fx.name == "bird":
            p["size"] = rng.uniform(1.2, 1.9) * h  # wing span
            p["flap"] = rng.uniform(2.5, 5)
            colour = _rgb(np.array([58, 50, 42]) * rng.uniform(0.5, 1.4))
        elif fx.name == "drone":
            p["size"] = rng.uniform(0.8, 1.3) * h
            p["spin"] = rng.uniform(-0.4, 0.4)
            colour = (226, 226, 224) if rng.random() < 0.4 else (38, 40, 44)
        else:
            p["reach"] = rng.uniform(0.45, 0.7) * w
            p["droop"] = rng.uniform(-0.3, 0.3)
            for i in range(_LEAVES):
                p[f"at{i}"] = rng.uniform(0.1, 1.0)  # along the branch
                p[f"off{i}"] = rng.normal(0, 0.09)  # across it, share of the height
                p[f"r{i}"] = rng.uniform(0.04, 0.09)  # size, share of the width
            p["blur"] = rng.uniform(0.008, 0.02) * w
            colour = _rgb(np.array([30, 38, 24]) * rng.uniform(0.7, 1.4))
        return fx, p, colour

    def _occluder_mask(self, fx: Effect, p: dict[str, float], j: int) -> Image.Image:
        w, h = self.size
        img = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(img)
        s = (j - fx.a + 0.5) / (fx.b - fx.a)  # how far through
        t = (j - fx.a) / self.fps  # seconds
        if fx.name in ("bird", "drone"):
            size = p["size"]
            x = -0.45 * size + s * (w + 0.9 * size)
            x = w - x if p["dir"] < 0 else x
            y = p["y0"] + (p["y1"] - p["y0"]) * s
            if fx.name == "bird":  # seen from above: body along its way, wings across, flapping
                go = p["dir"]
                span = size * (0.45 + 0.55 * abs(math.cos(math.pi * p["flap"] * t)))
                body, girth = size * 0.2, size * 0.055
                d.ellipse((x - body, y - girth, x + body, y + girth), fill=255)
                d.ellipse((x + go * body * 0.8 - girth, y - girth, x + go * body * 0.8 + girth, y + girth), fill=255)
                tail = x - go * body * 0.9
                d.polygon(
                    [
                        (tail, y - girth * 0.6),
                        (tail - go * size * 0.14, y - girth * 1.6),
                        (tail - go * size * 0.14, y + girth * 1.6),
                        (tail, y + girth * 0.6),
                    ],
                    fill=255,
                )
                for side in (-1.0, 1.0):
                    tip = y + side * span / 2
                    root = x + go * body * 0.35
                    d.polygon(
                        [
                            (root, y),
                            (root + go * size * 0.02, y + side * span * 0.3),
                            (x + go * size * 0.02, tip),
                            (x - go * size * 0.1, tip - side * span * 0.04),
                            (root - go * size * 0.22, y + side * span * 0.25),
                            (root - go * size * 0.2, y),
                        ],
                        fill=255,
                    )
            else:  # a quadcopter: body, four arms, four spinning rotor discs
                arm = size * 0.42
                spin = p["spin"] * s
                ends = [
                    (x + arm * math.cos(a + spin), y + arm * math.sin(a + spin)) for a in (0.785, 2.356, 3.927, 5.498)
                ]
                for ex, ey in ends:
                    r = size * 0.2
                    d.ellipse((ex - r, ey - r, ex + r, ey + r), fill=150)
                for ex, ey in ends:
                    d.line([(x, y), (ex, ey)], fill=255, width=max(2, round(size * 0.08)))
                    d.ellipse((ex - size * 0.06, ey - size * 0.06, ex + size * 0.06, ey + size * 0.06), fill=255)
                d.rounded_rectangle(
                    (x - size * 0.18, y - size * 0.12, x + size * 0.18, y + size * 0.12), radius=size * 0.05, fill=255
                )
        else:  # a branch reaching in from the side and back out, swaying
            reach = p["reach"] * math.sin(math.pi * s) + 0.05 * w
            sway = 0.04 * h * math.sin(2 * math.pi * 0.8 * t)
            base_x = 0.0 if p["dir"] > 0 else float(w)
            base_y = p["y0"]
            tip_x = base_x + p["dir"] * reach
            tip_y = base_y + p["droop"] * reach + sway
            d.line([(base_x - p["dir"] * 10, base_y), (tip_x, tip_y)], fill=255, width=max(2, round(0.04 * h)))
            for i in range(_LEAVES):
                a, off, r = p[f"at{i}"], p[f"off{i}"], p[f"r{i}"] * w
                lx = base_x + (tip_x - base_x) * a
                ly = base_y + (tip_y - base_y) * a + off * h
                d.ellipse((lx - r, ly - r * 0.6, lx + r, ly + r * 0.6), fill=255)
        return img.filter(ImageFilter.GaussianBlur(p["blur"]))

    # drawing

    def frame(self, j: int, gain: float = 1.0) -> np.ndarray:
        """Frame `j` of the shot (float32 RGB, 0-255), times `gain` (exposure)."""
        w, h = self.size
        world, level, data = self.world, self.path.level, self.data[j]
        persp, bil = Image.Transform.PERSPECTIVE, Image.Resampling.BILINEAR
        rgba = np.asarray(world.maps[level].transform((w, h), persp, data, bil))
        sun_gain, sky_gain = 1.0, 1.0
        for fx, deep in self.sun_fx:
            down, hold, up = fx.params["down"], fx.params["hold"], fx.params["up"]
            if j < fx.a:
                behind = 0.0
            elif j < fx.a + down:
                behind = _smoothstep((j - fx.a + 1) / down)
            elif j < fx.a + down + hold or not up:
                behind = 1.0
            else:
                behind = 1 - _smoothstep((j - fx.a - down - hold + 1) / (up + 1))
            sun_gain *= 1 - deep * behind
            sky_gain *= 1 - 0.25 * deep * behind
        # per row: what the air leaves of the ground's light, and the haze it adds
        air = (1 - np.exp(-self.path.alt[j] * self.slant * self.haze_per_px)).astype(np.float32)[:, None, None]
        clear = (1 - air) * gain
        direct = rgba[..., 3:4].astype(np.float32)
        shade = self._shadow(j)
        if shade is not None:
            direct *= 1 - shade[..., None]
        pic = direct * (clear * (self.sun * (sun_gain / 255)))
        pic += clear * (self.amb * sky_gain)
        lamp: np.ndarray | None = None
        for img, onset, ramp in self.lamp_groups:
            on = 1.0 if onset < 0 else min(1.0, max(0.0, (j - onset + 1) / ramp))
            if on > 0:
                pool = np.asarray(img.transform((w, h), persp, data, bil), np.float32) * (on / 255)
                lamp = pool if lamp is None else lamp + pool
        if lamp is not None:
            pic += (clear * self.lamp) * lamp[..., None]
        pic *= rgba[..., :3]
        pic += (air * gain) * self.haze
        if lamp is not None:  # a little glow around lamps in the air
            pic += (70 * gain * self.lamp) * lamp[..., None]
        for fx, p, colour in self.occluders:
            if fx.a <= j < fx.b:
                alpha = np.asarray(self._occluder_mask(fx, p, j), np.float32)[..., None] * (1 / 255)
                pic += (np.array(colour, np.float32) * (self.dim * gain) - pic) * alpha
        if j in self.flashes:
            k, tint = self.flashes[j]
            pic += (tint - pic) * k
        return pic


# --- the video -----------------------------------------------------------------------------------------


def make_aerial_video(
    path: str | os.PathLike[str],
    seed: int = 0,
    *,
    duration: float = 60.0,
    size: tuple[int, int] | None = None,
    fps: int | None = None,
    shot_s: tuple[float, float] = (1.5, 10.0),
    plan: Sequence[tuple[str | None, str | None]] | None = None,
    style: AerialStyle = AerialStyle(),
    encoding: Encoding | None = None,
) -> GroundTruth:
    """Write an `aerial` video of about `duration` seconds and return its ground truth.

    Size, frame rate and encoding are drawn from the seed unless given. `plan` fixes the shots
    instead: one (transition into the shot, effect in it) pair per shot, the first transition None,
    each effect a key of `AERIAL_EFFECTS`; the video is then as long as the plan makes it.
    """
    p = plan_aerial_video(
        seed, duration=duration, size=size, fps=fps, shot_s=shot_s, plan=plan, style=style, encoding=encoding
    )
    # Frames are drawn in a worker thread while this one scales and encodes the earlier ones.
    write_video(path, p.encoding, p.size, p.fps, _ahead(_frames(p), 6))
    return p.truth(path)


def _frames(p: AerialPlan) -> Iterator[np.ndarray]:
    """The video's frames at the working size, RGB uint8, in order."""
    seed, style = p.seed, p.style
    width, height = p.size
    work_w = min(width, _WORK_WIDTH)
    work_h = max(2, round(work_w * height / width))
    work = (work_w, work_h)

    # cameras: each shot's path, a view cut turning and changing height from where the last shot ended
    paths: list[_Path] = []
    for k, shot in enumerate(p.shots):
        cam = np.random.default_rng([_SALT, seed, 2, k])
        if shot.view == 0:
            view = _first_view(cam, shot.camera)
        else:
            prev = paths[k - 1]
            prev_scale = float(prev.alt[-1]) / (_FOCAL * _WORK_WIDTH * math.cos(prev.tilt))
            view = _next_view(cam, shot.camera, float(prev.heading[-1]), prev_scale)
        paths.append(
            _camera_path(cam, shot.camera, view, shot.last - shot.first, p.fps, work, shot.effects, style, _WORLD)
        )
    last_use = {loc: max(sh.last for sh in p.shots if sh.location == loc) for loc in range(len(p.locations))}

    noise_rng = np.random.default_rng([_SALT, seed, 4])
    sigma = noise_rng.uniform(*style.noise)
    noise = [
        noise_rng.standard_normal((work_h, work_w, 3), dtype=np.float32) * sigma + 0.5 for _ in range(_NOISE_FIELDS)
    ]
    amp, period, phase = (
        style.exposure * noise_rng.uniform(0.3, 1.0),
        noise_rng.uniform(8, 30),
        noise_rng.uniform(0, 2 * math.pi),
    )
    worlds: dict[int, _World] = {}
    renderers: dict[int, _ShotRenderer] = {}
    for i, (parts, fill, fill_w) in enumerate(_timeline(p.shots)):
        gain = 1 + amp * math.sin(2 * math.pi * i / p.fps / period + phase)
        acc: np.ndarray | None = None if fill_w == 0 else np.full((work_h, work_w, 3), fill * fill_w, np.float32)
        for k, weight in parts:
            if k not in renderers:
                shot = p.shots[k]
                if shot.location not in worlds:
                    world_rng = np.random.default_rng([_SALT, seed, 1, shot.location])
                    worlds[shot.location] = _build_world(world_rng, p.locations[shot.location], _WORLD)
                fx_rng = np.random.default_rng([_SALT, seed, 3, k])
                renderers[k] = _ShotRenderer(worlds[shot.location], paths[k], shot.effects, work, p.fps, fx_rng, style)
            pic = renderers[k].frame(i - p.shots[k].first, gain * weight)
            if acc is None:
                acc = pic
            else:
                acc += pic
        assert acc is not None
        acc += noise[i % _NOISE_FIELDS] if sigma > 0 else 0.5
        yield np.clip(acc, 0, 255, out=acc).astype(np.uint8)
        for k in [k for k in renderers if p.shots[k].last <= i + 1]:
            del renderers[k]
        for loc in [loc for loc in worlds if last_use[loc] <= i + 1]:
            del worlds[loc]


T = TypeVar("T")


def _ahead(items: Iterator[T], depth: int) -> Iterator[T]:
    """`items` in order, produced by a worker thread up to `depth` items ahead; its error is raised
    here. Closing this iterator stops the worker."""
    box: queue.Queue[tuple[bool, T | BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, T | BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                box.put(entry, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((False, None))
        except BaseException as e:  # handed to the consumer, which raises it
            put((False, e))

    worker = threading.Thread(target=work, name="aerial-frames", daemon=True)
    worker.start()
    try:
        while True:
            more, item = box.get()
            if not more:
                if isinstance(item, BaseException):
                    raise item
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()

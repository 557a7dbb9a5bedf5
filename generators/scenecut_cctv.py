"""The `cctv` family of shot-boundary videos: what a surveillance user exports from a CCTV recorder.

A seventh, held-out family, made independently of the other generators' pictures (only the records
of `generators.groundtruth`, and the `CUT_KINDS` / `true_time` conventions, the shot planning and
the encoder set-up of `generators.scenecut_families` are shared), so that a detector tuned on those
is reported on pictures it was never shaped by.

A video is a recorder's sequential switcher (a "guard tour") cycling through the cameras of one
site: corridors, car parks, stairwells, loading bays, lobbies, perimeter fences and lifts, built as
boxes and quads in 3D and drawn in perspective from high, wide-angle CCTV viewpoints. All places of a
site share its concrete, paint and lighting, and a site often has several places of one kind (three
corridors, two car park levels), so many hard cuts join two views that look alike. A `view_cut` is a
cut to another camera of the same place (from its other end, from the side, or zoomed in); the
recorder's exports add a few dissolves and fades through black; a `fade` is also how the truth
records a cut through a "video loss" screen (`no_signal` in a plan: the switcher lands on a camera
whose picture comes up only after a blue or black screen). Cameras see in colour or, at night, in
infrared (monochrome, noisy, a hot spot in the middle, blooming lights); some are PTZ domes that
patrol slowly, some sway on poles; people walk about and cars drive through car parks.

The recorder's on-screen display is drawn over every frame, across every cut: a timestamp whose
digits change every second (jumping forward at an export's dissolve or fade), the camera's channel
and name (changing at each transition), the recorder's logo and, for some recorders, a blinking
REC mark.

Inside shots, things that are not shot changes: a PTZ dome swinging or zooming to another preset
(`fast_pan`); a person walking right under the lens, a van passing close, a moth on the lens at
night (`occluder`); the camera switching between colour and infrared, the lights going off or
flickering on, headlights sweeping over the scene (`drift`); headlights or a torch glaring into the
lens, a one- to three-frame video dropout (`flash`). Encodes are poor, as recorders make them:
H.264 at crf 26-40 with GOPs of 1-10 s, or MPEG-4 Part 2 at low bit rates, 320x240 to 1280x720
(4:3 and 16:9), 6 to 30 fps, 40-90 s long.

Planning (`plan_cctv_video`: site, cameras, shots, transitions, effects) is separate from drawing
and cheap. Everything is deterministic for a seed.

    >>> plan_cctv_video(seed=3).truth("cctv-3.mp4").transitions[:2]  # doctest: +SKIP
    >>> truth = make_cctv_video("cctv-3.mp4", seed=3)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

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
    "CALM",
    "CAMERA_MOVES",
    "CCTV_EFFECTS",
    "CCTV_FAMILY",
    "CCTV_JOINS",
    "CCTV_TRANSITION_KINDS",
    "CUT_KINDS",
    "FRAME_RATES",
    "PLACE_KINDS",
    "SIZES",
    "CctvPlan",
    "CctvStyle",
    "Encoding",
    "make_cctv_video",
    "plan_cctv_video",
    "true_time",
]

CCTV_FAMILY = "cctv"
CCTV_TRANSITION_KINDS = ("cut", "view_cut", "dissolve", "fade")  # the kinds the truth records
# How shots are joined in a plan, and the transition kind the truth records it as. "no_signal": the
# switcher cuts to a camera whose picture comes up after a video-loss screen (a change through a
# flat screen, from the first frame that is not the old camera to the first of the new one: a fade).
CCTV_JOINS: dict[str, str] = {
    "cut": "cut",
    "view_cut": "view_cut",
    "dissolve": "dissolve",
    "fade": "fade",
    "no_signal": "fade",
}
_JOIN_WEIGHTS = {"cut": 0.6, "view_cut": 0.17, "dissolve": 0.08, "fade": 0.06, "no_signal": 0.09}
# What happens inside a shot, and the distractor kind it is recorded as.
CCTV_EFFECTS: dict[str, DistractorKind] = {
    "ptz_swing": "fast_pan",  # a PTZ dome swings to another preset
    "ptz_zoom": "fast_pan",  # a PTZ dome zooms in to a preset, or back out
    "walker": "occluder",  # a person walks right under the lens
    "vehicle": "occluder",  # a van or car passes close to the camera
    "insect": "occluder",  # a moth crawls over the lens (infrared, at night)
    "day_night": "drift",  # the camera switches between colour and infrared
    "lights": "drift",  # the lights go off, or flicker back on
    "headlights": "drift",  # a car's headlights sweep over the scene
    "glare": "flash",  # headlights or a torch glare straight into the lens: 1-3 frames
    "dropout": "flash",  # a video dropout: 1-3 frames of the video-loss screen
}
PLACE_KINDS = ("corridor", "car_park", "stairwell", "loading_bay", "lobby", "fence", "lift")
_OUTDOOR = ("loading_bay", "fence")
_PLACE_EFFECTS: dict[str, tuple[str, ...]] = {
    "corridor": ("walker", "lights", "dropout", "day_night", "insect", "ptz_zoom"),
    "car_park": (
        "walker",
        "vehicle",
        "headlights",
        "glare",
        "lights",
        "dropout",
        "ptz_swing",
        "ptz_zoom",
        "day_night",
        "insect",
    ),
    "stairwell": ("walker", "lights", "dropout", "day_night", "insect"),
    "loading_bay": (
        "vehicle",
        "walker",
        "headlights",
        "glare",
        "day_night",
        "ptz_swing",
        "ptz_zoom",
        "dropout",
        "insect",
    ),
    "lobby": ("walker", "lights", "dropout", "ptz_swing", "ptz_zoom", "day_night", "glare"),
    "fence": ("vehicle", "walker", "headlights", "glare", "day_night", "ptz_swing", "ptz_zoom", "insect", "dropout"),
    "lift": ("walker", "lights", "dropout"),
}
_EFFECT_WEIGHTS = {
    "ptz_swing": 2.6,
    "ptz_zoom": 1.6,
    "walker": 1.3,
    "vehicle": 1.1,
    "insect": 1.2,
    "day_night": 0.7,
    "lights": 0.8,
    "headlights": 1.2,
    "glare": 0.7,
    "dropout": 0.35,
}
_PTZ_EFFECTS = ("ptz_swing", "ptz_zoom")
CAMERA_MOVES = ("fixed", "patrol", "sway")  # a fixed camera, a PTZ dome on a slow patrol, a pole in the wind
TIMES = ("day", "dusk", "night")
SIZES = ((320, 240), (640, 360), (640, 480), (768, 576), (960, 540), (1280, 720))
FRAME_RATES = (6, 10, 12, 15, 25, 30)
_SIZE_TURNS = (2, 5, 0, 4, 3, 1)  # seed % 6 -> size: any six consecutive seeds show all sizes
_FPS_TURNS = (2, 3, 4, 0, 1, 5)  # (seed + seed // 6) % 6 -> frame rate
_ENCODING_TURNS = (1, 0, 2, 3, 5, 4)  # seed % 6 -> encoder set-up (see _draw_encoding)
_TIME_TURNS = ("night", "day", "dusk", "night", "day", "dusk")  # (seed + seed // 6) % 6 -> time of day
_SALT = 0xCC7F
_MARGIN_S = 1.0  # effects keep this far from transitions
_EDGE_S = 0.5  # and this far from the video's start and end
_GAP_S = 0.5  # between two effects in one shot
_LONGEST_TRANSITION_S = 2.4
_WORK_WIDTH = 480  # pictures are drawn at most this wide, then scaled to the video's size
_PANORAMA = (1.7, 1.35)  # what a camera could see (PTZ presets, patrols), in view widths and heights
_NOISE_FIELDS = 6  # sensor noise: this many fields, one per frame in turn

RGB = tuple[int, int, int]
Vec = tuple[float, float, float]


@dataclass(frozen=True)
class CctvStyle:
    """How much moves and how noisy the cameras are; `CALM` is fixed cameras over an empty site
    without sensor noise (for tests that compare pixels)."""

    move: float = 1.0  # scales patrols and sway (0: every camera fixed)
    life: float = 1.0  # scales the people and cars moving about (0: none)
    noise: float = 1.0  # scales sensor noise
    effect_rate: float = 0.55  # chance that a shot holds something that is not a shot change


CALM = CctvStyle(move=0.0, life=0.0, noise=0.0)


# --- the plan: site, cameras, shots, transitions and what happens inside shots ---------------------


@dataclass(frozen=True)
class Place:
    kind: str  # one of PLACE_KINDS
    label: str  # as the recorder names it: "CORRIDOR L2", "CAR PARK L1", ...


@dataclass(frozen=True)
class Camera:
    place: int
    view: int  # which of the place's viewpoints (0, 1, 2)
    channel: int
    name: str  # as the on-screen display shows it
    ptz: bool
    move: str  # one of CAMERA_MOVES
    mode: str  # at the video's start: "colour" or "ir"


@dataclass(frozen=True)
class CameraState:
    """What a camera looks like when a shot of it starts (effects change it for later shots)."""

    mode: str = "colour"  # "colour" or "ir"
    lit: bool = True  # the lights of its place are on
    preset: int = 0  # PTZ preset: 0 middle, 1 left, 2 right
    zoom: bool = False  # PTZ zoomed in


@dataclass
class Effect:
    """Something inside a shot that is not a shot change, over the shot's frames [a, b)."""

    name: str
    a: int
    b: int
    value: int = 0  # ptz_swing: the preset it swings to


@dataclass
class PlannedShot:
    into: str | None  # transition kind into this shot, as recorded
    into_frames: tuple[int, int, int]  # (fade out, dissolve or hold, fade in) frames of that transition
    solo: int  # frames seen alone
    wanted: list[str] = field(default_factory=list)  # effect names, before they are placed
    join: str | None = None  # the join into it as planned: a key of CCTV_JOINS
    place: int = 0
    camera: int = 0
    start: CameraState = CameraState()
    first: int = 0  # first frame of the video showing it
    last: int = 0  # first frame not showing it
    solo_start: int = 0
    solo_end: int = 0
    effects: list[Effect] = field(default_factory=list)


@dataclass(frozen=True)
class Recorder:
    """The recorder's on-screen display and video-loss screen."""

    brand: str
    time_format: str  # strftime
    time_corner: str  # "top_left" or "top_right"
    name_corner: str  # "bottom_left" or "top_left" (under the time)
    logo_corner: str  # "bottom_right" or "top_right"
    text: RGB
    boxed: bool  # text on dark boxes, or outlined
    scale: float  # text height, share of the frame height
    rec_mark: bool
    loss_colour: RGB  # the video-loss screen: blue or black
    loss_text: str
    clock: datetime  # the time of the first frame


@dataclass
class CctvPlan:
    """Everything about a video that is decided before drawing it, and its ground truth."""

    seed: int
    size: tuple[int, int]
    fps: int
    encoding: Encoding
    style: CctvStyle
    time: str  # one of TIMES
    palette: dict[str, RGB]  # the site's colours
    places: list[Place]
    cameras: list[Camera]
    shots: list[PlannedShot]
    transitions: list[Transition]
    recorder: Recorder
    clock_jumps: list[tuple[int, int]]  # (frame, seconds): the clock jumps at an export's dissolve or fade

    @property
    def frames(self) -> int:
        return self.shots[-1].last

    @property
    def distractors(self) -> list[Distractor]:
        out = [
            Distractor(CCTV_EFFECTS[fx.name], (sh.first + fx.a) / self.fps, (sh.first + fx.b) / self.fps, k)
            for k, sh in enumerate(self.shots)
            for fx in sh.effects
        ]
        return sorted(out, key=lambda d: (d.start, d.end))

    def truth(self, path: str | os.PathLike[str]) -> GroundTruth:
        infos = [
            ShotInfo(
                f"cctv-{self.seed}-place{sh.place}-{self.places[sh.place].kind}-ch{self.cameras[sh.camera].channel:02d}"
                f"-{sh.start.mode}",
                sh.first / self.fps,
                sh.last / self.fps,
            )
            for sh in self.shots
        ]
        return GroundTruth(
            os.fspath(path), self.seed, self.fps, self.frames, self.size, infos, self.transitions, self.distractors
        )

    def clock(self, i: int) -> datetime:
        """The recorder's clock at frame `i`: whole seconds of media time, plus the export's jumps."""
        jumped = sum(s for at, s in self.clock_jumps if at <= i)
        return self.recorder.clock + timedelta(seconds=i // self.fps + jumped)

    def osd_shot(self, i: int) -> int:
        """The shot whose camera the on-screen display names at frame `i`: the new one from a cut's
        (or video-loss screen's) first frame, from the middle of a dissolve or fade."""
        k = 0
        for tr in self.transitions:
            at = round(tr.start * self.fps)
            if tr.kind not in CUT_KINDS and self.shots[tr.after].join != "no_signal":
                at = (at + round(tr.end * self.fps)) // 2
            if i >= at:
                k = tr.after
        return k

    def screen_frames(self) -> set[int]:
        """Frames that show the video-loss screen: a `no_signal` join's hold and every dropout."""
        out: set[int] = set()
        for k, sh in enumerate(self.shots):
            if k and sh.join == "no_signal":
                out.update(range(self.shots[k - 1].last, sh.first))
            for fx in sh.effects:
                if fx.name == "dropout":
                    out.update(range(sh.first + fx.a, sh.first + fx.b))
        return out


def plan_cctv_video(
    seed: int = 0,
    *,
    duration: float | None = None,
    size: tuple[int, int] | None = None,
    fps: int | None = None,
    shot_s: tuple[float, float] = (1.5, 10.0),
    plan: Sequence[tuple[str | None, str | None]] | None = None,
    style: CctvStyle = CctvStyle(),
    encoding: Encoding | None = None,
) -> CctvPlan:
    """The site, cameras, shots, transitions and effects of `make_cctv_video` for the same arguments,
    without drawing anything (see there)."""
    rng = np.random.default_rng([_SALT, seed, 0])
    drawn_size = SIZES[_SIZE_TURNS[seed % 6]]
    drawn_fps = FRAME_RATES[_FPS_TURNS[(seed + seed // 6) % 6]]
    drawn_duration = float(rng.integers(40, 91))
    width, height = size or drawn_size
    fps = fps or drawn_fps
    duration = drawn_duration if duration is None else duration
    drawn_encoding = _draw_encoding(rng, _ENCODING_TURNS[seed % 6], fps)
    if width < 32 or height < 32 or width % 2 or height % 2:
        raise ValueError(f"size must be even and at least 32x32, got {width}x{height}")
    if not 0 < shot_s[0] <= shot_s[1] or duration < shot_s[0] or fps < 1:
        raise ValueError(f"need 0 < shot_s[0] <= shot_s[1] <= duration and fps >= 1, got {shot_s}, {duration}, {fps}")
    if drawn_encoding.codec == "libx264" and width * height > 640 * 360:
        drawn_encoding = replace(drawn_encoding, preset="superfast")
    # A guard tour dwells about as long on every camera: lengths near one dwell time, inside shot_s.
    least = min(max(shot_s[0], 3.5), shot_s[1])
    dwell = rng.uniform(least, max(least, min(shot_s[1], 8.0)))
    tour_s = (max(shot_s[0], 0.7 * dwell), min(shot_s[1], 1.3 * dwell))
    shots = _plan_shots(rng, fps, duration, tour_s if plan is None else shot_s, plan)
    time = _TIME_TURNS[(seed + seed // 6) % 6]
    if plan is not None:
        time = "night" if any("insect" in sh.wanted for sh in shots) else "day"
    palette = _site_palette(rng)
    places, cameras = _plan_cameras(rng, shots, time, style, planned=plan is not None)
    transitions = lay_out(shots, fps)
    _plan_effects(rng, shots, places, cameras, time, fps, style.effect_rate, planned=plan is not None)
    recorder = _draw_recorder(rng, time)
    jumps = [
        (round((tr.start + tr.end) / 2 * fps), int(rng.integers(20, 3600)))
        for tr in transitions
        if tr.kind in ("dissolve", "fade") and shots[tr.after].join != "no_signal"
    ]
    return CctvPlan(
        seed,
        (width, height),
        fps,
        encoding or drawn_encoding,
        style,
        time,
        palette,
        places,
        cameras,
        shots,
        transitions,
        recorder,
        jumps,
    )


def _draw_encoding(rng: np.random.Generator, turn: int, fps: int) -> Encoding:
    """Six turns of what recorders make: H.264 with GOPs of 1, 2, 4-10 and 6-10 s at high rate
    factors, and MPEG-4 Part 2 (an old DVR) at low bit rates with short and long GOPs."""
    if turn == 0:
        return Encoding(crf=int(rng.integers(28, 37)), gop=2 * fps)
    if turn == 1:
        return Encoding(crf=int(rng.integers(32, 41)), gop=min(300, round(rng.uniform(4, 10) * fps)))
    if turn == 2:
        return Encoding("mpeg4", bits_per_pixel=float(rng.uniform(0.04, 0.1)), gop=round(rng.uniform(1, 3) * fps))
    if turn == 3:
        return Encoding(crf=int(rng.integers(30, 39)), gop=min(300, round(rng.uniform(6, 10) * fps)))
    if turn == 4:
        return Encoding(crf=int(rng.integers(26, 35)), gop=fps)
    return Encoding("mpeg4", bits_per_pixel=float(rng.uniform(0.03, 0.08)), gop=round(rng.uniform(4, 8) * fps))


def _join_frames(rng: np.random.Generator, kind: str, fps: int) -> tuple[int, int, int]:
    if kind == "no_signal":  # the video-loss screen, cut in and out
        return (0, max(2, round(rng.uniform(0.5, 2.0) * fps)), 0)
    return transition_frames(rng, kind, fps, dissolve_s=(0.4, 1.5), fade_s=(0.3, 0.8), hold_s=(0.0, 0.5))


def _plan_shots(
    rng: np.random.Generator,
    fps: int,
    duration: float,
    shot_s: tuple[float, float],
    plan: Sequence[tuple[str | None, str | None]] | None,
) -> list[PlannedShot]:
    """Shot lengths and joins: lengths that add up to `duration`, or one shot per `plan` entry."""
    weights = np.array(list(_JOIN_WEIGHTS.values()))
    lengths = plan_shot_lengths(
        rng,
        fps,
        duration,
        shot_s,
        plan,
        kinds=tuple(_JOIN_WEIGHTS),
        weights=weights / weights.sum(),
        effects=CCTV_EFFECTS,
        longest_s=_LONGEST_TRANSITION_S,
        frames_of=_join_frames,
    )
    return [
        PlannedShot(CCTV_JOINS[join] if join else None, frames, solo, wanted, join=join)
        for join, frames, solo, wanted in lengths
    ]


def _site_palette(rng: np.random.Generator) -> dict[str, RGB]:
    """One site's colours, shared by all its places: why two of its cameras look alike."""

    def tone(base: Sequence[float], spread: float = 10.0) -> RGB:
        c = np.asarray(base, float) + rng.uniform(-spread, spread, 3) + rng.uniform(-spread, spread)
        return (int(np.clip(c[0], 0, 255)), int(np.clip(c[1], 0, 255)), int(np.clip(c[2], 0, 255)))

    walls = [(200, 196, 178), (186, 189, 190), (172, 190, 172), (168, 182, 198), (205, 200, 190)]
    floors = [(112, 116, 112), (92, 118, 100), (104, 112, 128), (128, 118, 104), (96, 98, 102)]
    accents = [(222, 184, 40), (40, 110, 190), (190, 50, 45), (50, 150, 80), (230, 120, 30)]
    doors = [(120, 84, 56), (80, 96, 120), (150, 150, 146), (60, 110, 90), (170, 60, 50)]
    return {
        "concrete": tone((140, 140, 136), 14),
        "wall": tone(walls[int(rng.integers(len(walls)))], 8),
        "dado": tone(floors[int(rng.integers(len(floors)))], 8),
        "floor": tone(floors[int(rng.integers(len(floors)))], 8),
        "ceiling": tone((214, 214, 208), 6),
        "accent": tone(accents[int(rng.integers(len(accents)))], 6),
        "door": tone(doors[int(rng.integers(len(doors)))], 8),
        "asphalt": tone((70, 72, 74), 8),
        "grass": tone((84, 110, 62), 10),
        "lamp": tone((250, 248, 236), 4),
    }


_LABELS = {
    "corridor": ("CORRIDOR L{n}", "CORR {n}F", "HALLWAY {n}"),
    "car_park": ("CAR PARK L{n}", "PARKING B{n}", "CARPARK {n}"),
    "stairwell": ("STAIR {a}", "STAIRWELL {a}", "STAIRS {n}F"),
    "loading_bay": ("LOADING BAY {n}", "DOCK {n}", "GOODS IN {n}"),
    "lobby": ("LOBBY", "RECEPTION", "ENTRANCE {n}"),
    "fence": ("PERIMETER {c}", "FENCE {c}", "YARD {c}"),
    "lift": ("LIFT {n}", "ELEVATOR {n}", "LIFT CAR {a}"),
}
_VIEW_SUFFIX = ("", " B", " C")


def _plan_cameras(
    rng: np.random.Generator, shots: list[PlannedShot], time: str, style: CctvStyle, planned: bool
) -> tuple[list[Place], list[Camera]]:
    """The tour: a place for every run of shots joined by view cuts, in a cycle over the site's
    places (a drawn site has a few kinds of place, some several times); a camera per shot of a run
    (each view cut goes to another camera of the place). A fixed plan gets a place per run, of a
    kind where every effect wanted in it can happen."""
    groups: list[list[int]] = []
    for k, shot in enumerate(shots):
        if k == 0 or shot.join != "view_cut":
            groups.append([k])
        else:
            groups[-1].append(k)
    if planned:
        n_places = len(groups)
        kinds = []
        order = [PLACE_KINDS[i] for i in rng.permutation(len(PLACE_KINDS))]
        for members in groups:
            wanted = {w for k in members for w in shots[k].wanted}
            fits = [kd for kd in order if wanted <= set(_PLACE_EFFECTS[kd])]
            fits = fits or [kd for kd in PLACE_KINDS if wanted <= set(_PLACE_EFFECTS[kd])]
            if not fits:
                raise ValueError(f"no place kind holds all of {sorted(wanted)}")
            kinds.append(fits[0])
            if fits[0] in order:
                order.remove(fits[0])
    else:
        n_places = min(len(groups), int(rng.integers(4, 8)))
        pool = [PLACE_KINDS[i] for i in rng.permutation(len(PLACE_KINDS))[: int(rng.integers(3, 5))]]
        kinds = pool + [pool[int(rng.integers(len(pool)))] for _ in range(max(0, n_places - len(pool)))]
        kinds = [kinds[i] for i in rng.permutation(len(kinds))][:n_places]
    counts: dict[str, int] = {}
    patterns: dict[str, tuple[str, int]] = {}  # a kind's places are named alike: "CORRIDOR L1", "CORRIDOR L2"
    places: list[Place] = []
    for kind in kinds:
        n = counts[kind] = counts.get(kind, 0) + 1
        if kind not in patterns:
            patterns[kind] = (_LABELS[kind][int(rng.integers(len(_LABELS[kind])))], int(rng.integers(0, 2)))
        pattern, base = patterns[kind]
        label = pattern.format(n=n + base, a="ABCDEFGH"[n - 1], c="NESW"[(n - 1) % 4])
        places.append(Place(kind, label if n < 5 or "{c}" not in pattern else f"{label}{n}"))
    # Cameras: as many per place as its longest run of view cuts needs (at most three, in turn).
    needed = [1] * n_places
    for g, members in enumerate(groups):
        needed[g % n_places] = max(needed[g % n_places], min(len(members), 3))
    prefix = ["CAM", "CH", "C", "CAMERA "][int(rng.integers(4))]
    cameras: list[Camera] = []
    first_camera: list[int] = []
    channel = 0
    for p, place in enumerate(places):
        first_camera.append(len(cameras))
        for v in range(needed[p]):
            channel += 1 + int(rng.integers(0, 3) == 0)
            outdoor = place.kind in _OUTDOOR
            ptz = place.kind not in ("stairwell", "lift") and rng.random() < (0.8 if outdoor else 0.5)
            move = "fixed"
            if style.move > 0 and ptz and rng.random() < 0.35:
                move = "patrol"
            elif style.move > 0 and outdoor and rng.random() < 0.3:
                move = "sway"
            mode = "colour"
            night_ir = {"day": 0.0, "dusk": 0.4 if outdoor else 0.0, "night": 0.85 if outdoor else 0.3}[time]
            if place.kind == "car_park" and time == "night":
                night_ir = 0.45
            if rng.random() < night_ir:
                mode = "ir"
            name = f"{prefix}{channel:02d} {place.label}{_VIEW_SUFFIX[v]}"
            cameras.append(Camera(p, v, channel, name, ptz, move, mode))
    for g, members in enumerate(groups):
        p = g % n_places
        for i, k in enumerate(members):
            shots[k].place = p
            shots[k].camera = first_camera[p] + i % needed[p]
    if planned:  # the cameras a plan's effects need: PTZ domes, infrared for a moth, colour for the lights
        for c, cam in enumerate(cameras):
            wanted = {w for sh in shots if sh.camera == c for w in sh.wanted}
            mode = "ir" if "insect" in wanted else "colour"
            ptz = bool(wanted & set(_PTZ_EFFECTS)) and places[cam.place].kind not in ("stairwell", "lift")
            cameras[c] = replace(cam, mode=mode, ptz=ptz, move="fixed")
    return places, cameras


def _effect_frames(rng: np.random.Generator, name: str, fps: int) -> int:
    def span(lo: float, hi: float, least: int) -> int:
        return max(least, round(rng.uniform(lo, hi) * fps))

    if name in ("glare", "dropout"):
        return int(rng.integers(1, 4))
    if name in _PTZ_EFFECTS:
        return span(0.4, 1.0, 2)
    if name == "walker":
        return span(0.8, 2.0, 3)
    if name == "vehicle":
        return span(0.6, 1.5, 3)
    if name == "insect":
        return span(1.0, 2.5, 4)
    if name == "day_night":
        return span(0.6, 1.5, 3)
    if name == "lights":
        return span(0.5, 1.2, 3)
    if name == "headlights":
        return span(1.0, 3.0, 4)
    raise ValueError(f"unknown effect {name!r}")


def _allowed(kind: str, state: CameraState, cam: Camera, time: str) -> list[str]:
    out = []
    for name in _PLACE_EFFECTS[kind]:
        if name == "insect" and state.mode != "ir":
            continue
        if name == "lights" and state.mode != "colour":
            continue
        if name in _PTZ_EFFECTS and not cam.ptz:
            continue
        if name == "headlights" and time == "day" and kind in _OUTDOOR:
            continue
        out.append(name)
    return out


def _after(state: CameraState, fx: Effect) -> CameraState:
    """A camera's state once `fx` is over."""
    if fx.name == "day_night":
        return replace(state, mode="ir" if state.mode == "colour" else "colour")
    if fx.name == "lights":
        return replace(state, lit=not state.lit)
    if fx.name == "ptz_swing":
        return replace(state, preset=fx.value)
    if fx.name == "ptz_zoom":
        return replace(state, zoom=not state.zoom)
    return state


def _plan_effects(
    rng: np.random.Generator,
    shots: list[PlannedShot],
    places: list[Place],
    cameras: list[Camera],
    time: str,
    fps: int,
    rate: float,
    planned: bool,
) -> None:
    """In the order shown: each shot's camera state (from what earlier effects left it in), the
    effects wanted in it (drawn from what its place and state allow), and where they happen: where
    the shot is seen alone, `_MARGIN_S` from transitions and `_EDGE_S` from the video's ends, at
    least `_GAP_S` apart."""
    states = {c: CameraState(mode=cam.mode) for c, cam in enumerate(cameras)}
    margin, edge, gap = round(_MARGIN_S * fps), round(_EDGE_S * fps), round(_GAP_S * fps)
    for k, shot in enumerate(shots):
        cam = cameras[shot.camera]
        kind = places[shot.place].kind
        state = states[shot.camera]
        shot.start = state
        if not planned and rng.random() < rate:
            names = _allowed(kind, state, cam, time)
            weights = np.array(
                [_EFFECT_WEIGHTS[n] * (3.0 if n == "day_night" and time == "dusk" else 1.0) for n in names]
            )
            count = 2 if shot.solo > 6 * fps and rng.random() < 0.35 else 1
            picked = [
                names[int(i)]
                for i in rng.choice(len(names), size=min(count, len(names)), replace=False, p=weights / weights.sum())
            ]
            if "day_night" in picked:  # what the other one needs may not last through the switch
                picked = [n for n in picked if n not in ("insect", "lights")] or ["day_night"]
            shot.wanted = picked
        elif planned:
            for name in shot.wanted:
                if name not in _allowed(kind, state, replace(cam, ptz=True), "night"):
                    raise ValueError(f"shot {k}: a {kind} camera in {state} cannot show {name!r}")
        lo = shot.solo_start - shot.first + (margin if k else edge)
        hi = shot.solo_end - shot.first - (margin if k + 1 < len(shots) else edge)
        sized = [(name, _effect_frames(rng, name, fps)) for name in shot.wanted]
        while sized and sum(n for _, n in sized) + gap * (len(sized) - 1) > hi - lo:
            if planned:
                raise ValueError(f"shot {k} is too short for {shot.wanted}")
            sized.pop()
        spare = hi - lo - sum(n for _, n in sized) - gap * (len(sized) - 1)
        at = lo
        for name, n in sized:
            wait = int(rng.integers(0, spare + 1))
            at += wait
            spare -= wait
            value = 0
            if name == "ptz_swing":
                value = [p for p in (0, 1, 2) if p != state.preset][int(rng.integers(2))]
            fx = Effect(name, at, at + n, value)
            shot.effects.append(fx)
            state = _after(state, fx)
            at += n + gap
        states[shot.camera] = state


def _draw_recorder(rng: np.random.Generator, time: str) -> Recorder:
    brands = ("SECURVIEW", "VIGILNET", "OPTIGUARD", "WATCHPOINT", "CIVIQ NVR", "DVR-16H", "NETVISTA")
    formats = ("%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M:%S", "%m-%d-%Y %a %H:%M:%S", "%Y/%m/%d %H:%M:%S")
    hour = {
        "day": int(rng.integers(8, 17)),
        "dusk": int(rng.choice([6, 18, 19])),
        "night": int(rng.choice([0, 1, 2, 3, 22, 23])),
    }[time]
    clock = datetime(int(rng.integers(2016, 2025)), int(rng.integers(1, 13)), int(rng.integers(1, 29)), hour)
    clock += timedelta(seconds=int(rng.integers(0, 3600)))
    time_corner = "top_left" if rng.random() < 0.6 else "top_right"
    blue = rng.random() < 0.55
    return Recorder(
        brand=brands[int(rng.integers(len(brands)))],
        time_format=formats[int(rng.integers(len(formats)))],
        time_corner=time_corner,
        name_corner="bottom_left" if rng.random() < 0.7 else "top_left",
        logo_corner="bottom_right" if time_corner == "top_right" or rng.random() < 0.5 else "top_right",
        text=(255, 255, 255) if rng.random() < 0.8 else (250, 236, 90),
        boxed=bool(rng.random() < 0.4),
        scale=float(rng.uniform(0.034, 0.05)),
        rec_mark=bool(rng.random() < 0.5),
        loss_colour=(16, 40, 168) if blue else (0, 0, 0),
        loss_text=("VIDEO LOSS", "NO SIGNAL", "NO VIDEO")[int(rng.integers(3))],
        clock=clock,
    )


# --- places: boxes and quads in 3D, seen in perspective ---------------------------------------------


@dataclass
class _Face:
    pts: list[Vec]
    colour: RGB
    layer: int  # 0: the place's shell, 1: flat things on it (lines, doors, signs), 2: solid things
    normal: Vec | None = None  # outward, for a solid thing's side: hidden when it faces away
    emit: float = 0.0  # a light source of this strength (its colour is `colour`)
    lamp: bool = False  # goes off with the lights
    ir: float | None = None  # infrared reflectance (default: from its colour); foliage is bright
    alpha: float = 1.0  # see-through (a fence's mesh): drawn only in colour, blended


@dataclass(frozen=True)
class _Pose:
    x: float
    y: float
    z: float
    flip: bool  # looks back along the place from its far end (its coordinates mirrored)
    focal: float  # in panorama heights
    horizon: float  # the vanishing point's row, share of the panorama height
    shift: float  # the vanishing point's column offset, share of the panorama width


@dataclass
class _Model:
    kind: str
    length: float  # the place's depth: a flipped pose mirrors z at it
    faces: list[_Face]
    lamps: list[tuple[Vec, float]]  # lights of the place: position, strength
    outdoor: bool
    poses: list[_Pose]
    walk: tuple[float, float, float, float]  # where people walk: x0, x1, z0, z1
    drive: tuple[float, float, float, float] | None  # where cars drive (along z): x0, x1, z0, z1
    ambient: float  # light without the lamps
    sky: tuple[RGB, RGB] | None = None  # top and horizon colours, outdoors
    ground: Callable[[float], float] | None = None  # floor height at depth z (stairs)


def _shade(c: Sequence[float], k: float) -> RGB:
    return (int(np.clip(c[0] * k, 0, 255)), int(np.clip(c[1] * k, 0, 255)), int(np.clip(c[2] * k, 0, 255)))


def _vary(rng: np.random.Generator, c: Sequence[float], spread: float = 0.06) -> RGB:
    return _shade(c, 1 + rng.uniform(-spread, spread))


class _Builder:
    def __init__(self) -> None:
        self.faces: list[_Face] = []
        self.lamps: list[tuple[Vec, float]] = []

    def quad(self, pts: Sequence[Vec], colour: RGB, layer: int = 1, **kw: Any) -> None:
        self.faces.append(_Face(list(pts), colour, layer, **kw))

    def grid(
        self, corner: Vec, u: Vec, v: Vec, nu: int, nv: int, colour_of: Callable[[int, int], RGB], layer: int = 0
    ) -> None:
        """A flat surface from `corner` along `u` and `v`, in nu x nv cells (so that light varies over it)."""
        c, nu, nv = np.asarray(corner, float), max(nu, 1), max(nv, 1)
        du, dv = np.asarray(u, float) / nu, np.asarray(v, float) / nv
        for i in range(nu):
            for j in range(nv):
                p = c + i * du + j * dv
                pts = [p, p + du, p + du + dv, p + dv]
                self.faces.append(_Face([_vec(q) for q in pts], colour_of(i, j), layer))

    def box(
        self,
        x: tuple[float, float],
        y: tuple[float, float],
        z: tuple[float, float],
        colour: RGB,
        top: RGB | None = None,
        **kw: Any,
    ) -> None:
        """A solid box (its four sides and top; the bottom is never seen)."""
        (x0, x1), (y0, y1), (z0, z1) = x, y, z
        sides = [
            ([(x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0)], (0.0, 0.0, -1.0), colour),
            ([(x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1)], (0.0, 0.0, 1.0), colour),
            ([(x0, y0, z0), (x0, y0, z1), (x0, y1, z1), (x0, y1, z0)], (-1.0, 0.0, 0.0), _shade(colour, 0.9)),
            ([(x1, y0, z0), (x1, y0, z1), (x1, y1, z1), (x1, y1, z0)], (1.0, 0.0, 0.0), _shade(colour, 0.9)),
            ([(x0, y1, z0), (x1, y1, z0), (x1, y1, z1), (x0, y1, z1)], (0.0, 1.0, 0.0), top or _shade(colour, 1.1)),
        ]
        for pts, n, c in sides:
            self.faces.append(_Face(pts, c, 2, n, **kw))

    def car(self, rng: np.random.Generator, x: tuple[float, float], z: tuple[float, float], along_x: bool) -> None:
        colours = [(190, 190, 194), (30, 32, 36), (228, 228, 224), (40, 58, 96), (140, 30, 30), (96, 100, 104)]
        body = _vary(rng, colours[int(rng.integers(len(colours)))], 0.05)
        glass = (38, 44, 52)
        (x0, x1), (z0, z1) = x, z
        self.box((x0, x1), (0.05, 0.32), (z0, z1), (24, 24, 26))
        self.box((x0, x1), (0.32, 1.0), (z0, z1), body)
        if along_x:
            a, b = x0 + 0.28 * (x1 - x0), x1 - 0.22 * (x1 - x0)
            self.box((a, b), (1.0, 1.45), (z0 + 0.08, z1 - 0.08), glass, top=body)
        else:
            a, b = z0 + 0.28 * (z1 - z0), z1 - 0.22 * (z1 - z0)
            self.box((x0 + 0.08, x1 - 0.08), (1.0, 1.45), (a, b), glass, top=body)


def _vec(p: np.ndarray) -> Vec:
    return (float(p[0]), float(p[1]), float(p[2]))


def _wall_z(b: _Builder, z: float, x: tuple[float, float], y: tuple[float, float], colour: RGB, n: int = 3) -> None:
    b.grid((x[0], y[0], z), (x[1] - x[0], 0, 0), (0, y[1] - y[0], 0), n, 1, lambda i, j: colour)


def _corridor(rng: np.random.Generator, pal: dict[str, RGB], time: str) -> _Model:
    b = _Builder()
    hw, h, length, z0 = rng.uniform(1.0, 1.6), rng.uniform(2.6, 3.1), rng.uniform(24, 40), -2.0
    tiles = rng.random() < 0.5
    floor, alt = pal["floor"], _shade(pal["floor"], 0.88)
    nz = int((length - z0) / 1.5)
    b.grid(
        (-hw, 0, z0), (2 * hw, 0, 0), (0, 0, length - z0), 2, nz, lambda i, j: alt if tiles and (i + j) % 2 else floor
    )
    b.grid((-hw, h, z0), (2 * hw, 0, 0), (0, 0, length - z0), 2, nz, lambda i, j: pal["ceiling"])
    for x in (-hw, hw):
        b.grid((x, 0, z0), (0, 1.0, 0), (0, 0, length - z0), 1, nz, lambda i, j: pal["dado"])
        b.grid((x, 1.0, z0), (0, h - 1.0, 0), (0, 0, length - z0), 1, nz, lambda i, j: pal["wall"])
    for z in (z0, length):
        _wall_z(b, z, (-hw, hw), (0, h), pal["wall"])
        dw = rng.uniform(0.9, 1.6)
        b.quad([(-dw / 2, 0, z), (dw / 2, 0, z), (dw / 2, 2.1, z), (-dw / 2, 2.1, z)], pal["door"])
    b.quad(
        [(-0.25, 2.25, length), (0.25, 2.25, length), (0.25, 2.45, length), (-0.25, 2.45, length)],
        (60, 220, 110),
        emit=1.0,
    )
    for z in np.arange(z0, length, 0.6):  # ceiling tile joints
        b.quad([(-hw, h, z), (hw, h, z), (hw, h, z + 0.03), (-hw, h, z + 0.03)], _shade(pal["ceiling"], 0.75))
    z = rng.uniform(1.0, 4.0)
    while z < length - 2:  # doors along the walls
        x = hw if rng.random() < 0.5 else -hw
        dw = rng.uniform(0.9, 1.3)
        b.quad(
            [(x, 0, z - 0.08), (x, 0, z + dw + 0.08), (x, 2.2, z + dw + 0.08), (x, 2.2, z - 0.08)],
            _shade(pal["door"], 0.6),
        )
        b.quad([(x, 0, z), (x, 0, z + dw), (x, 2.1, z + dw), (x, 2.1, z)], _vary(rng, pal["door"]))
        if rng.random() < 0.3:  # a notice board or a fire extinguisher
            zz = z + dw + rng.uniform(0.5, 1.5)
            b.quad(
                [(x, 1.2, zz), (x, 1.2, zz + 0.8), (x, 1.8, zz + 0.8), (x, 1.8, zz)], _vary(rng, (200, 190, 150), 0.2)
            )
        z += rng.uniform(3.0, 6.5)
    z, step = rng.uniform(0.5, 2.5), rng.uniform(3.0, 4.5)
    while z < length:
        b.quad([(-0.2, h, z), (0.2, h, z), (0.2, h, z + 1.2), (-0.2, h, z + 1.2)], pal["lamp"], emit=1.0, lamp=True)
        b.lamps.append(((0.0, h - 0.2, z + 0.6), 1.0))
        z += step
    sign = 1 if rng.random() < 0.5 else -1
    x = sign * rng.uniform(0.3, 0.8) * hw
    poses = [
        _Pose(x, h - 0.25, 0.0, False, rng.uniform(0.55, 0.8), rng.uniform(0.26, 0.38), -sign * rng.uniform(0, 0.06)),
        _Pose(-x, h - 0.25, 0.5, True, rng.uniform(0.55, 0.8), rng.uniform(0.26, 0.38), sign * rng.uniform(0, 0.06)),
        _Pose(x, h - 0.3, 0.3 * length, False, rng.uniform(0.9, 1.2), rng.uniform(0.3, 0.4), 0.0),
    ]
    return _Model("corridor", length, b.faces, b.lamps, False, poses, (-hw + 0.4, hw - 0.4, 1.5, length - 1), None, 0.2)


def _car_park(rng: np.random.Generator, pal: dict[str, RGB], time: str) -> _Model:
    b = _Builder()
    hw, h, length, z0 = rng.uniform(12, 16), rng.uniform(2.4, 2.8), rng.uniform(36, 50), -2.0
    conc = pal["concrete"]
    nz = int((length - z0) / 3)
    shades = rng.uniform(0.72, 0.86, (10, nz))
    b.grid((-hw, 0, z0), (2 * hw, 0, 0), (0, 0, length - z0), 10, nz, lambda i, j: _shade(conc, float(shades[i, j])))
    b.grid((-hw, h, z0), (2 * hw, 0, 0), (0, 0, length - z0), 4, nz // 2, lambda i, j: _shade(conc, 0.92))
    for x in (-hw, hw):
        b.grid((x, 0, z0), (0, h, 0), (0, 0, length - z0), 1, nz // 2, lambda i, j: _shade(conc, 0.8))
    for z in (z0, length):
        _wall_z(b, z, (-hw, hw), (0, h), _shade(conc, 0.85), 8)
        b.quad([(-3, 0, z), (3, 0, z), (3, h - 0.3, z), (-3, h - 0.3, z)], (26, 26, 28))  # the ramp's opening
    b.quad(
        [(-0.4, 2.0, length), (0.4, 2.0, length), (0.4, 2.25, length), (-0.4, 2.25, length)], (60, 220, 110), emit=1.0
    )
    line = (230, 230, 220) if rng.random() < 0.6 else (230, 200, 60)
    for s in (-1, 1):
        b.quad([(s * 8.2, 0, 0), (s * 8.3, 0, 0), (s * 8.3, 0, length - 2), (s * 8.2, 0, length - 2)], line)
        for z in np.arange(0.0, length - 2, 2.5):
            b.quad([(s * 3.2, 0, z), (s * 8.2, 0, z), (s * 8.2, 0, z + 0.1), (s * 3.2, 0, z + 0.1)], line)
            if z + 2.5 < length - 2 and rng.random() < 0.6:
                xs = sorted((s * rng.uniform(3.4, 3.7), s * rng.uniform(7.8, 8.1)))
                b.car(rng, (xs[0], xs[1]), (z + 0.35, z + 2.15), along_x=True)
        for z in np.arange(rng.uniform(1.5, 4), length - 1, 7.5):  # pillars with the level's colour band
            px = (s * 8.5, s * 9.1)
            px = (min(px), max(px))
            b.box(px, (0, 0.9), (z, z + 0.6), _shade(conc, 1.05))
            b.box(px, (0.9, 1.5), (z, z + 0.6), pal["accent"])
            b.box(px, (1.5, h), (z, z + 0.6), _shade(conc, 1.05))
    for z in np.arange(5.0, length, 7.5):
        b.box((-hw, hw), (h - 0.45, h), (z, z + 0.4), _shade(conc, 0.95))
    for z in np.arange(rng.uniform(1, 3), length, 5.0):
        for x in (-5.5, 0.0, 5.5):
            b.quad(
                [
                    (x - 0.15, h - 0.01, z),
                    (x + 0.15, h - 0.01, z),
                    (x + 0.15, h - 0.01, z + 1.2),
                    (x - 0.15, h - 0.01, z + 1.2),
                ],
                pal["lamp"],
                emit=1.0,
                lamp=True,
            )
            b.lamps.append(((x, h - 0.2, z + 0.6), 0.8))
    x = rng.uniform(-2, 2)
    poses = [
        _Pose(x, h - 0.2, 0.0, False, rng.uniform(0.5, 0.7), rng.uniform(0.32, 0.4), -x / 40),
        _Pose(-x, h - 0.2, 0.5, True, rng.uniform(0.5, 0.7), rng.uniform(0.32, 0.4), x / 40),
        _Pose(
            rng.choice([-1, 1]) * 6.0,
            h - 0.2,
            0.3 * length,
            False,
            rng.uniform(0.75, 0.95),
            rng.uniform(0.34, 0.42),
            0.0,
        ),
    ]
    return _Model(
        "car_park", length, b.faces, b.lamps, False, poses, (-2.5, 2.5, 1.0, length - 2), (-1.4, 1.4, 0.0, length), 0.25
    )


def _stairwell(rng: np.random.Generator, pal: dict[str, RGB], time: str) -> _Model:
    b = _Builder()
    hw, n, rise, run, zs = rng.uniform(1.1, 1.5), int(rng.integers(9, 12)), 0.17, 0.28, 2.0
    zl = zs + n * run
    length, top = zl + rng.uniform(1.6, 2.2), n * rise
    height = top + 2.9
    conc, tread = pal["concrete"], _shade(pal["concrete"], 1.12)
    b.grid((-hw, 0, -1.0), (2 * hw, 0, 0), (0, 0, zs + 1.0), 2, 3, lambda i, j: pal["floor"])
    for i in range(n):
        b.box((-hw, hw), (0, (i + 1) * rise), (zs + i * run, zs + (i + 1) * run), _shade(conc, 0.9), top=tread)
    b.box((-hw, hw), (0, top), (zl, length), _shade(conc, 0.9), top=pal["floor"])
    nz = int(length + 1)
    for x in (-hw, hw):
        b.grid((x, 0, -1.0), (0, 1.1, 0), (0, 0, length + 1.0), 1, nz, lambda i, j: pal["dado"])
        b.grid((x, 1.1, -1.0), (0, height - 1.1, 0), (0, 0, length + 1.0), 2, nz, lambda i, j: pal["wall"])
        xr = x * 0.98
        b.quad([(xr, 0.9, zs), (xr, 0.9 + top, zl), (xr, 0.97 + top, zl), (xr, 0.97, zs)], (70, 70, 74))  # handrail
    b.grid((-hw, height, -1.0), (2 * hw, 0, 0), (0, 0, length + 1.0), 2, nz, lambda i, j: pal["ceiling"])
    _wall_z(b, -1.0, (-hw, hw), (0, height), pal["wall"])
    b.quad([(-0.5, 0, -1.0), (0.5, 0, -1.0), (0.5, 2.1, -1.0), (-0.5, 2.1, -1.0)], pal["door"])
    _wall_z(b, length, (-hw, hw), (0, height), pal["wall"])
    day = time == "day"
    window = (200, 214, 228) if day else (18, 22, 30)
    b.quad(
        [(-0.6, top + 1.0, length), (0.6, top + 1.0, length), (0.6, top + 2.2, length), (-0.6, top + 2.2, length)],
        window,
        emit=0.9 if day else 0.0,
    )
    b.quad(
        [(-0.3, top + 0.3, length), (0.3, top + 0.3, length), (0.3, top + 0.8, length), (-0.3, top + 0.8, length)],
        pal["accent"],
    )  # the floor's number plate
    b.quad(
        [(-0.3, height, zl), (0.3, height, zl), (0.3, height, zl + 0.6), (-0.3, height, zl + 0.6)],
        pal["lamp"],
        emit=1.0,
        lamp=True,
    )
    b.lamps.append(((0.0, height - 0.3, zl + 0.3), 1.2))
    b.quad(
        [(-0.2, height, 0.0), (0.2, height, 0.0), (0.2, height, 0.6), (-0.2, height, 0.6)],
        pal["lamp"],
        emit=1.0,
        lamp=True,
    )
    b.lamps.append(((0.0, height - 0.3, 0.3), 0.9))
    x = rng.uniform(-0.5, 0.5) * hw
    poses = [
        _Pose(x, 2.5, -0.7, False, rng.uniform(0.45, 0.6), rng.uniform(0.42, 0.5), 0.0),
        _Pose(-x, top + 2.3, 0.3, True, rng.uniform(0.45, 0.6), rng.uniform(0.1, 0.18), 0.0),
        _Pose(x, 2.6, 0.5, False, rng.uniform(0.7, 0.9), rng.uniform(0.45, 0.52), 0.0),
    ]

    def ground(z: float) -> float:
        return float(np.clip((z - zs) / run, 0, n)) * rise

    return _Model(
        "stairwell",
        length,
        b.faces,
        b.lamps,
        False,
        poses,
        (-hw + 0.3, hw - 0.3, 0.5, length - 0.4),
        None,
        0.2,
        None,
        ground,
    )


def _sky(time: str) -> tuple[RGB, RGB]:
    return {
        "day": ((120, 156, 204), (200, 214, 228)),
        "dusk": ((40, 50, 90), (190, 120, 90)),
        "night": ((6, 8, 14), (24, 26, 34)),
    }[time]


def _loading_bay(rng: np.random.Generator, pal: dict[str, RGB], time: str) -> _Model:
    b = _Builder()
    depth, hw, wall_h = rng.uniform(22, 32), 26.0, rng.uniform(7, 10)
    asphalt = pal["asphalt"]
    shades = rng.uniform(0.85, 1.1, (13, 12))
    b.grid((-hw, 0, -4), (2 * hw, 0, 0), (0, 0, depth + 4), 13, 12, lambda i, j: _shade(asphalt, float(shades[i, j])))
    cladding = _shade(pal["concrete"], rng.uniform(0.8, 1.05))
    b.grid(
        (-hw, 0, depth), (2 * hw, 0, 0), (0, wall_h, 0), 40, 2, lambda i, j: _shade(cladding, 0.94 if i % 2 else 1.0)
    )
    b.box((-hw, hw), (0, 1.2), (depth - 1.6, depth), _shade(pal["concrete"], 0.85))
    doors = int(rng.integers(3, 5))
    lamp_on = time != "day"
    for d in range(doors):
        x0 = -2.0 * doors + d * 4.2
        shutter = _vary(rng, (150, 156, 160), 0.08)
        b.quad([(x0, 1.2, depth), (x0 + 3.2, 1.2, depth), (x0 + 3.2, 4.8, depth), (x0, 4.8, depth)], shutter)
        for y in np.arange(1.45, 4.8, 0.25):
            b.quad(
                [(x0, y, depth), (x0 + 3.2, y, depth), (x0 + 3.2, y + 0.05, depth), (x0, y + 0.05, depth)],
                _shade(shutter, 0.7),
            )
        for xb in (x0 + 0.1, x0 + 2.8):
            b.box((xb, xb + 0.3), (0.5, 1.1), (depth - 1.85, depth - 1.6), (20, 20, 20))
        b.quad(
            [(x0 + 1.3, 5.2, depth), (x0 + 1.9, 5.2, depth), (x0 + 1.9, 5.5, depth), (x0 + 1.3, 5.5, depth)],
            pal["lamp"],
            emit=1.0 if lamp_on else 0.2,
            lamp=True,
        )
        if lamp_on:
            b.lamps.append(((x0 + 1.6, 5.0, depth - 0.5), 2.5))
        if rng.random() < 0.3:  # a trailer backed up to the dock
            b.box((x0 + 0.3, x0 + 2.9), (1.1, 4.0), (depth - 14.0, depth - 1.7), _vary(rng, (220, 222, 224), 0.05))
            b.box((x0 + 0.4, x0 + 2.8), (0.1, 1.1), (depth - 12.0, depth - 9.0), (30, 30, 32))
    for x in np.arange(-hw + 1, hw, 1.0):  # hazard stripes on the dock's edge
        b.quad(
            [(x, 1.0, depth - 1.6), (x + 0.5, 1.0, depth - 1.6), (x + 0.5, 1.2, depth - 1.6), (x, 1.2, depth - 1.6)],
            (230, 190, 30),
            layer=2,
            normal=(0.0, 0.0, -1.0),
        )
    line = (220, 190, 50)
    for d in range(doors):
        x = -2.0 * doors + d * 4.2 - 0.4
        b.quad([(x, 0, 2.0), (x + 0.12, 0, 2.0), (x + 0.12, 0, depth - 1.6), (x, 0, depth - 1.6)], line)
    for _ in range(int(rng.integers(2, 6))):  # bollards
        x, z = rng.uniform(-hw + 2, hw - 2), rng.uniform(2, depth - 4)
        b.box((x, x + 0.25), (0, 1.0), (z, z + 0.25), (220, 180, 30))
    x = rng.uniform(-10, 10)
    sign = -1 if x > 0 else 1
    poses = [
        _Pose(x, rng.uniform(5, 7), -3.5, False, rng.uniform(0.55, 0.75), rng.uniform(0.22, 0.3), sign * 0.05),
        _Pose(-x, rng.uniform(4, 6), 4.0, False, rng.uniform(0.9, 1.2), rng.uniform(0.18, 0.28), -sign * 0.05),
        _Pose(x / 2, rng.uniform(6, 8), -3.5, False, rng.uniform(0.4, 0.5), rng.uniform(0.18, 0.26), 0.0),
    ]
    return _Model(
        "loading_bay",
        depth,
        b.faces,
        b.lamps,
        True,
        poses,
        (-12, 12, 2, depth - 3),
        (-8, 8, 2, depth - 4),
        0.2,
        _sky(time),
    )


def _lobby(rng: np.random.Generator, pal: dict[str, RGB], time: str) -> _Model:
    b = _Builder()
    hw, h, length = rng.uniform(6, 9), rng.uniform(3.2, 4.0), rng.uniform(14, 18)
    a, c = _vary(rng, (200, 198, 190), 0.05), _vary(rng, (120, 118, 112), 0.1)
    nx, nz = int(2 * hw), int(length + 1)
    b.grid((-hw, 0, -1), (2 * hw, 0, 0), (0, 0, length + 1), nx, nz, lambda i, j: a if (i + j) % 2 else c)
    b.grid((-hw, h, -1), (2 * hw, 0, 0), (0, 0, length + 1), 4, 6, lambda i, j: pal["ceiling"])
    for x in (-hw, hw):
        b.grid((x, 0, -1), (0, h, 0), (0, 0, length + 1), 1, 6, lambda i, j: pal["wall"])
        for z in np.arange(rng.uniform(1, 3), length - 2, rng.uniform(3, 5)):  # pictures on the walls
            b.quad([(x, 1.3, z), (x, 1.3, z + 1.2), (x, 2.2, z + 1.2), (x, 2.2, z)], _vary(rng, (150, 120, 90), 0.3))
    _wall_z(b, -1, (-hw, hw), (0, h), pal["wall"], 4)
    b.quad([(-1.0, 0, -1), (1.0, 0, -1), (1.0, 2.3, -1), (-1.0, 2.3, -1)], (150, 154, 160))  # lift doors
    day = time == "day"
    glass = (214, 226, 238) if day else (14, 20, 34)
    for x in np.arange(-hw, hw, 1.5):  # the glass front
        b.quad(
            [(x, 0, length), (x + 1.5, 0, length), (x + 1.5, h, length), (x, h, length)],
            _vary(rng, glass, 0.04),
            emit=1.0 if day else 0.15,
        )
        b.quad([(x, 0, length), (x + 0.08, 0, length), (x + 0.08, h, length), (x, h, length)], (40, 42, 46))
    b.quad([(-hw, 2.6, length), (hw, 2.6, length), (hw, 2.7, length), (-hw, 2.7, length)], (40, 42, 46))
    dx = rng.uniform(-3, 1)
    wood = _vary(rng, (120, 80, 50), 0.2)
    b.box((dx, dx + 4.0), (0, 1.1), (6.0, 7.0), wood, top=(220, 220, 214))
    for _ in range(int(rng.integers(2, 5))):  # plants and seats
        x, z = rng.uniform(-hw + 1, hw - 1.5), rng.uniform(2, length - 2)
        if rng.random() < 0.5:
            b.box((x, x + 0.5), (0, 0.5), (z, z + 0.5), (90, 70, 60))
            b.box((x - 0.2, x + 0.7), (0.5, 1.6), (z - 0.2, z + 0.7), _vary(rng, (50, 100, 50), 0.2), ir=0.85)
        else:
            b.box((x, x + 1.8), (0, 0.45), (z, z + 0.8), _vary(rng, (60, 60, 70), 0.3))
    for x in np.arange(-hw + 1.5, hw, 3.0):
        for z in np.arange(1.0, length, 3.0):
            b.quad(
                [(x - 0.2, h, z), (x + 0.2, h, z), (x + 0.2, h, z + 0.4), (x - 0.2, h, z + 0.4)],
                pal["lamp"],
                emit=1.0,
                lamp=True,
            )
            b.lamps.append(((float(x), h - 0.3, z + 0.2), 0.6))
    sign = 1 if rng.random() < 0.5 else -1
    poses = [
        _Pose(sign * (hw - 0.6), h - 0.3, -0.5, False, rng.uniform(0.45, 0.6), rng.uniform(0.28, 0.36), -sign * 0.12),
        _Pose(-sign * (hw - 0.6), h - 0.3, 0.5, True, rng.uniform(0.45, 0.6), rng.uniform(0.28, 0.36), -sign * 0.12),
        _Pose(0.0, h - 0.3, 1.0, False, rng.uniform(0.8, 1.1), rng.uniform(0.3, 0.4), 0.0),
    ]
    return _Model(
        "lobby", length, b.faces, b.lamps, False, poses, (-hw + 1, hw - 1, 1.0, length - 1), None, 0.3 if day else 0.15
    )


def _fence(rng: np.random.Generator, pal: dict[str, RGB], time: str) -> _Model:
    b = _Builder()
    depth, fx = 90.0, -rng.uniform(2.5, 5.0)
    grass = pal["grass"]
    shades = rng.uniform(0.8, 1.15, (12, 18))
    b.grid(
        (-40, 0, -4),
        (40 + fx - 1, 0, 0),
        (0, 0, depth + 4),
        6,
        18,
        lambda i, j: _shade(grass, float(shades[i, j])),
        layer=0,
    )
    b.grid((fx - 1, 0, -4), (2.0, 0, 0), (0, 0, depth + 4), 1, 18, lambda i, j: (128, 124, 116))  # gravel
    b.grid(
        (fx + 1, 0, -4),
        (40 - fx - 1, 0, 0),
        (0, 0, depth + 4),
        6,
        18,
        lambda i, j: _shade(grass, float(shades[i + 6, j])),
    )
    road = (fx + 3.5, fx + 9.5)
    b.quad([(road[0], 0, -4), (road[1], 0, -4), (road[1], 0, depth), (road[0], 0, depth)], pal["asphalt"])
    mid = sum(road) / 2
    for z in np.arange(-4.0, depth, 6.0):
        b.quad(
            [(mid - 0.06, 0, z), (mid + 0.06, 0, z), (mid + 0.06, 0, z + 3), (mid - 0.06, 0, z + 3)], (220, 220, 210)
        )
    for z in np.arange(-3.0, depth, 3.0):  # posts, wires and the mesh
        b.box((fx - 0.05, fx + 0.05), (0, 2.5), (z, z + 0.1), (90, 94, 96))
    for y in (0.1, 1.2, 2.4, 2.6):
        b.quad([(fx, y, -4), (fx, y + 0.03, -4), (fx, y + 0.03, depth), (fx, y, depth)], (70, 72, 74), layer=2)
    b.quad([(fx, 0.1, -4), (fx, 0.1, depth), (fx, 2.4, depth), (fx, 2.4, -4)], (80, 84, 86), layer=2, alpha=0.45)
    for z in np.arange(-4.0, 14.0, 0.25):
        b.quad(
            [(fx, 0.1, z), (fx, 2.4, z + 0.25), (fx, 2.4, z + 0.27), (fx, 0.1, z + 0.02)],
            (95, 98, 100),
            layer=2,
            alpha=0.6,
        )
    x = -40.0
    while x < 40:  # a tree line at the far end
        w, th = rng.uniform(3, 7), rng.uniform(6, 14)
        b.box((x, x + w), (0, th), (depth - rng.uniform(0, 4), depth + 2), _vary(rng, (40, 64, 36), 0.2), ir=0.8)
        x += w * rng.uniform(0.6, 1.0)
    lamp_on = time != "day"
    for z in np.arange(rng.uniform(0, 10), depth, 25.0):
        px = road[1] + 0.5
        b.box((px, px + 0.15), (0, 7.0), (z, z + 0.15), (110, 112, 114))
        b.quad(
            [(px - 0.6, 6.9, z), (px + 0.2, 6.9, z), (px + 0.2, 6.9, z + 0.3), (px - 0.6, 6.9, z + 0.3)],
            (255, 220, 160),
            emit=1.0 if lamp_on else 0.1,
            lamp=True,
        )
        if lamp_on:
            b.lamps.append(((px - 0.2, 6.5, z + 0.15), 2.5))
    poses = [
        _Pose(
            fx + rng.uniform(1.5, 3.0),
            rng.uniform(4, 6),
            -3.0,
            False,
            rng.uniform(0.5, 0.75),
            rng.uniform(0.3, 0.38),
            rng.uniform(-0.02, 0.04),
        ),
        _Pose(
            fx + rng.uniform(1.0, 2.0),
            rng.uniform(4, 6),
            12.0,
            False,
            rng.uniform(0.9, 1.3),
            rng.uniform(0.32, 0.4),
            rng.uniform(0.0, 0.08),
        ),
        _Pose(
            fx + rng.uniform(4.0, 7.0),
            rng.uniform(5, 7),
            -3.0,
            False,
            rng.uniform(0.45, 0.6),
            rng.uniform(0.3, 0.36),
            -0.1,
        ),
    ]
    return _Model(
        "fence",
        depth,
        b.faces,
        b.lamps,
        True,
        poses,
        (fx + 1.2, fx + 3.0, 2.0, 40.0),
        (road[0] + 0.5, road[1] - 0.5, -2.0, depth),
        0.25,
        _sky(time),
    )


def _lift(rng: np.random.Generator, pal: dict[str, RGB], time: str) -> _Model:
    b = _Builder()
    hw, h, length = rng.uniform(0.8, 1.0), 2.3, rng.uniform(1.3, 1.7)
    steel = _vary(rng, (168, 170, 172), 0.06)
    dots = rng.random() < 0.5
    b.grid(
        (-hw, 0, 0),
        (2 * hw, 0, 0),
        (0, 0, length),
        6,
        5,
        lambda i, j: (44, 44, 46) if dots and (i + j) % 2 else (34, 34, 36),
    )
    for x in (-hw, hw):
        b.grid((x, 0, 0), (0, h, 0), (0, 0, length), 1, 8, lambda i, j: _shade(steel, 0.93 if j % 2 else 1.0))
        b.box((min(x, x * 0.93), max(x, x * 0.93)), (0.88, 0.95), (0.1, length - 0.1), (200, 200, 204))  # handrail
    _wall_z(b, 0.0, (-hw, hw), (0, h), _shade(steel, 0.95))
    b.quad([(-0.6, 0.9, 0.0), (0.6, 0.9, 0.0), (0.6, 2.0, 0.0), (-0.6, 2.0, 0.0)], (110, 118, 124))  # a mirror
    _wall_z(b, length, (-hw, hw), (0, h), _shade(steel, 0.85))
    b.quad([(-0.55, 0, length), (0.55, 0, length), (0.55, 2.1, length), (-0.55, 2.1, length)], _shade(steel, 1.1))
    b.quad([(-0.01, 0, length), (0.01, 0, length), (0.01, 2.1, length), (-0.01, 2.1, length)], (30, 30, 30))
    xp = hw * 0.99
    b.quad(
        [(xp, 0.9, length - 0.45), (xp, 0.9, length - 0.15), (xp, 1.5, length - 0.15), (xp, 1.5, length - 0.45)],
        (60, 60, 64),
    )
    for y in np.arange(0.95, 1.45, 0.1):
        b.quad(
            [
                (xp * 0.995, y, length - 0.35),
                (xp * 0.995, y, length - 0.25),
                (xp * 0.995, y + 0.05, length - 0.25),
                (xp * 0.995, y + 0.05, length - 0.35),
            ],
            (255, 200, 120),
            emit=0.8,
        )
    b.grid((-hw, h, 0), (2 * hw, 0, 0), (0, 0, length), 2, 2, lambda i, j: pal["ceiling"])
    b.quad(
        [(-0.5, h, 0.3), (0.5, h, 0.3), (0.5, h, length - 0.3), (-0.5, h, length - 0.3)],
        pal["lamp"],
        emit=1.0,
        lamp=True,
    )
    b.lamps.append(((0.0, h - 0.2, length / 2), 1.5))
    sign = 1 if rng.random() < 0.5 else -1
    poses = [
        _Pose(sign * (hw - 0.25), h - 0.08, 0.06, False, rng.uniform(0.3, 0.38), rng.uniform(0.05, 0.14), -sign * 0.12),
        _Pose(-sign * (hw - 0.25), h - 0.08, 0.06, True, rng.uniform(0.3, 0.38), rng.uniform(0.05, 0.14), sign * 0.12),
        _Pose(0.0, h - 0.08, 0.06, False, rng.uniform(0.34, 0.42), rng.uniform(0.08, 0.16), 0.0),
    ]
    return _Model("lift", length, b.faces, b.lamps, False, poses, (-hw + 0.3, hw - 0.3, 0.4, length - 0.3), None, 0.3)


_BUILDERS: dict[str, Callable[[np.random.Generator, dict[str, RGB], str], _Model]] = {
    "corridor": _corridor,
    "car_park": _car_park,
    "stairwell": _stairwell,
    "loading_bay": _loading_bay,
    "lobby": _lobby,
    "fence": _fence,
    "lift": _lift,
}


# --- a camera's panorama: what it can see, in colour (lights on and off) and in infrared ------------

_NEAR = 0.01  # metres: nearer than this is behind the lens


class _Projector:
    """A pose's perspective: place coordinates (x right, y up, z along the place) to panorama pixels."""

    def __init__(self, model: _Model, pose: _Pose, size: tuple[int, int]) -> None:
        self.length, self.pose = model.length, pose
        self.f = pose.focal * size[1]
        self.u0, self.v0 = size[0] * (0.5 + pose.shift), size[1] * pose.horizon

    def local(self, p: Vec) -> Vec:
        """(right, down, forward) from the camera."""
        x, y, z = p
        if self.pose.flip:
            x, z = -x, self.length - z
        return (x - self.pose.x, self.pose.y - y, z - self.pose.z)

    def image(self, q: Vec) -> tuple[float, float]:
        return (self.u0 + self.f * q[0] / q[2], self.v0 + self.f * q[1] / q[2])

    def point(self, p: Vec) -> tuple[float, float, float] | None:
        """Pixel position and depth of a point, None behind the lens."""
        q = self.local(p)
        if q[2] < _NEAR:
            return None
        u, v = self.image(q)
        return u, v, q[2]


def _clip(pts: list[Vec]) -> list[Vec]:
    """The part of a polygon (camera coordinates) in front of the near plane."""
    out: list[Vec] = []
    for i, a in enumerate(pts):
        b = pts[(i + 1) % len(pts)]
        ina, inb = a[2] >= _NEAR, b[2] >= _NEAR
        if ina:
            out.append(a)
        if ina != inb:
            t = (_NEAR - a[2]) / (b[2] - a[2])
            out.append((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]), _NEAR))
    return out


def _face_light(model: _Model, face: _Face, time: str, lit: bool) -> float:
    p = np.asarray(face.pts, float)
    c = p.mean(axis=0)
    n = np.cross(p[1] - p[0], p[2] - p[0])
    flat = abs(n[1]) > 0.7 * max(float(np.linalg.norm(n)), 1e-9)
    factor = (1.0 if c[1] < 1.8 or model.outdoor else 0.55) if flat else 0.8
    base = {"day": 1.0, "dusk": 0.4, "night": 0.05}[time] if model.outdoor else model.ambient
    if not lit and not model.outdoor:  # an emergency light or two
        base = 0.1
    reach = 7.0 if model.outdoor else 2.6
    total = base
    if lit:
        for pos, strength in model.lamps:
            d2 = float(((c - np.asarray(pos)) ** 2).sum())
            total += 0.9 * strength / (1 + d2 / reach**2)
    return min(total * factor, 1.6)


@dataclass
class _Panorama:
    colour: np.ndarray  # (h, w, 3) uint8, lights on
    dark: np.ndarray | None  # the same with the lights off (indoors)
    ir: np.ndarray  # (h, w) uint8


def _blur(a: np.ndarray, k: int) -> np.ndarray:
    """A cheap wide blur of a float image: shrink `k` times and grow back."""
    h, w = a.shape[:2]
    if k <= 1:
        return a
    small = Image.fromarray(a.astype(np.float32)).resize((max(1, w // k), max(1, h // k)), Image.Resampling.BOX)
    return np.asarray(small.resize((w, h), Image.Resampling.BILINEAR), np.float32)


def _blur_rgb(a: np.ndarray, k: int) -> np.ndarray:
    return np.dstack([_blur(a[..., i], k) for i in range(3)])


def _fractal(rng: np.random.Generator, h: int, w: int, beta: float) -> np.ndarray:
    """1/f^beta noise in [0, 1], `h` x `w`."""
    fy = np.fft.fftfreq(h).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(w).astype(np.float32)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f**beta
    spec[0, 0] = 0
    n = np.fft.irfft2(spec, s=(h, w)).astype(np.float32)
    lo, hi = float(n.min()), float(n.max())
    out: np.ndarray = (n - lo) / max(hi - lo, 1e-6)
    return out


def _panorama(
    rng: np.random.Generator, model: _Model, pose: _Pose, size: tuple[int, int], time: str, need_dark: bool
) -> _Panorama:
    """Draw the place from `pose`: reflectance, light, depth and light sources per face (far to near,
    the shell first), then the colour picture (lamps, bloom, grain, auto exposure, a CCTV colour
    grade) and the infrared one (an illuminator that fades with distance, blooming lights)."""
    pw, ph = size
    proj = _Projector(model, pose, size)
    albedo = Image.new("RGB", size)
    light, light_off = Image.new("F", size, 0.0), Image.new("F", size, 0.0)
    depth, refl = Image.new("F", size, 999.0), Image.new("F", size, 0.0)
    emit, lamps = Image.new("RGB", size), Image.new("RGB", size)
    horizon = int(np.clip(proj.v0, 0, ph))
    if model.sky is not None:  # sky above the horizon, far ground below it
        top, low = (np.asarray(c, np.float32) for c in model.sky)
        t = np.clip(np.arange(ph, dtype=np.float32) / max(proj.v0, 1.0), 0, 1)[:, None, None]
        sky = np.broadcast_to(top + (low - top) * t, (ph, pw, 3))
        emit = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8))
        far = model.faces[0].colour
        ImageDraw.Draw(albedo).rectangle((0, horizon, pw, ph), fill=far)
        ImageDraw.Draw(emit).rectangle((0, horizon, pw, ph), fill=(0, 0, 0))
        ImageDraw.Draw(depth).rectangle((0, horizon, pw, ph), fill=150.0)
        ImageDraw.Draw(refl).rectangle((0, horizon, pw, ph), fill=0.5)
        ImageDraw.Draw(light).rectangle((0, horizon, pw, ph), fill=_face_light(model, model.faces[0], time, True))
    items: list[tuple[int, float, int, _Face, list[Vec]]] = []
    sx = -1.0 if pose.flip else 1.0
    for face in model.faces:
        loc = [proj.local(p) for p in face.pts]
        if face.normal is not None:
            n = (sx * face.normal[0], -face.normal[1], sx * face.normal[2])
            c = np.mean(loc, axis=0)
            if n[0] * c[0] + n[1] * c[1] + n[2] * c[2] >= 0:
                continue
        clipped = _clip(loc)
        if len(clipped) < 3:
            continue
        key = float(np.mean([q[2] for q in clipped]))
        items.append((face.layer, -key, len(items), face, clipped))
    items.sort(key=lambda it: it[:3])
    d_alb, d_alpha = ImageDraw.Draw(albedo), ImageDraw.Draw(albedo, "RGBA")
    d_light, d_off, d_depth, d_refl = (ImageDraw.Draw(im) for im in (light, light_off, depth, refl))
    d_emit, d_lamp = ImageDraw.Draw(emit), ImageDraw.Draw(lamps)
    for _, neg_key, _, face, clipped in items:
        poly = [proj.image(q) for q in clipped]
        if face.alpha < 1:
            d_alpha.polygon(poly, fill=(*face.colour, int(face.alpha * 255)))
            continue
        d_alb.polygon(poly, fill=face.colour)
        d_light.polygon(poly, fill=_face_light(model, face, time, True))
        if need_dark:
            d_off.polygon(poly, fill=_face_light(model, face, time, False))
        d_depth.polygon(poly, fill=-neg_key)
        d_refl.polygon(
            poly, fill=face.ir if face.ir is not None else float(np.dot(face.colour, (0.3, 0.59, 0.11))) / 255
        )
        glow = _shade(face.colour, face.emit) if face.emit > 0 else (0, 0, 0)
        d_emit.polygon(poly, fill=(0, 0, 0) if face.lamp else glow)
        d_lamp.polygon(poly, fill=glow if face.lamp else (0, 0, 0))
    grain = 0.86 + 0.28 * np.asarray(
        Image.fromarray(_fractal(rng, max(8, ph // 3), max(8, pw // 3), 1.7)).resize(
            (pw, ph), Image.Resampling.BICUBIC
        ),
        np.float32,
    )
    grain *= 0.95 + 0.1 * rng.random((ph, pw), dtype=np.float32)
    a = np.asarray(albedo, np.float32) * grain[..., None]
    e_other, e_lamp = np.asarray(emit, np.float32), np.asarray(lamps, np.float32)
    k = max(2, ph // 40)
    e_all = e_other + e_lamp
    colour = a * _blur(np.asarray(light), k)[..., None] + e_all + 0.8 * _blur_rgb(e_all, 3 * k)
    # auto exposure, then the washed-out colour of a CCTV camera
    gain = float(np.clip(rng.uniform(105, 130) / max(float(colour.mean()), 1.0), 0.6, 3.0))
    sat, cast, lift = rng.uniform(0.5, 0.85), 1 + rng.uniform(-0.06, 0.06, 3), rng.uniform(4, 14)

    def grade(x: np.ndarray) -> np.ndarray:
        lum = x @ np.array([0.3, 0.59, 0.11], np.float32)
        x = lum[..., None] + (x - lum[..., None]) * sat
        return np.clip(x * cast.astype(np.float32) * 0.92 + lift + 0.5, 0, 255).astype(np.uint8)

    dark = None
    if need_dark:
        off = a * _blur(np.asarray(light_off), k)[..., None] + e_other + 0.8 * _blur_rgb(e_other, 3 * k)
        dark = grade(off * gain)
    # infrared: the illuminator lights what is near; lights bloom
    reach = 16.0 if model.outdoor else 7.0
    d = np.asarray(depth)
    ir = np.asarray(refl) * grain * 255 / (1 + (d / reach) ** 2)
    lum_e = e_all @ np.array([0.3, 0.59, 0.11], np.float32)
    ir += 0.6 * lum_e + 1.2 * _blur(lum_e, 2 * k)
    if model.sky is not None:
        ir[d >= 999] = {"day": 150.0, "dusk": 60.0, "night": 14.0}[time]
    ir_gain = float(np.clip(rng.uniform(100, 125) / max(float(ir.mean()), 1.0), 0.6, 4.0))
    ir_img = np.clip(ir * ir_gain + 0.5, 0, 255).astype(np.uint8)
    return _Panorama(grade(colour * gain), dark, ir_img)


# --- a shot: the camera's view, people and cars, and what happens in it -------------------------------


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def _draw_person(d: ImageDraw.ImageDraw, x: float, foot: float, hp: float, phase: float, cols: list[int | RGB]) -> None:
    """A walking person seen from a high camera: `hp` pixels tall, feet at (x, foot)."""
    top, legs, skin = cols
    swing = 0.12 * hp * math.sin(phase)
    hip = foot - 0.47 * hp
    lw = max(1, round(0.07 * hp))
    d.line([(x, hip), (x - swing, foot)], fill=legs, width=lw)
    d.line([(x, hip), (x + swing, foot)], fill=legs, width=lw)
    d.rounded_rectangle(
        (x - 0.14 * hp, foot - 0.84 * hp, x + 0.14 * hp, hip + 0.03 * hp), radius=max(1, 0.05 * hp), fill=top
    )
    d.line([(x - 0.12 * hp, foot - 0.8 * hp), (x - 0.14 * hp + swing / 2, foot - 0.5 * hp)], fill=top, width=lw)
    d.line([(x + 0.12 * hp, foot - 0.8 * hp), (x + 0.14 * hp - swing / 2, foot - 0.5 * hp)], fill=top, width=lw)
    r = 0.065 * hp
    d.ellipse((x - r, foot - 0.99 * hp, x + r, foot - 0.99 * hp + 2 * r), fill=skin)


def _draw_car_front(
    d: ImageDraw.ImageDraw, x: float, bottom: float, wp: float, body: int | RGB, lamps: int | RGB
) -> None:
    """A car seen from the front or the back, `wp` pixels wide, wheels on `bottom`."""
    h = 0.8 * wp
    d.rectangle((x - 0.5 * wp, bottom - 0.55 * h, x + 0.5 * wp, bottom - 0.08 * h), fill=body)
    d.polygon(
        [
            (x - 0.4 * wp, bottom - 0.55 * h),
            (x + 0.4 * wp, bottom - 0.55 * h),
            (x + 0.32 * wp, bottom - h),
            (x - 0.32 * wp, bottom - h),
        ],
        fill=body,
    )
    glass = 20 if isinstance(body, int) else (30, 34, 40)
    d.polygon(
        [
            (x - 0.36 * wp, bottom - 0.58 * h),
            (x + 0.36 * wp, bottom - 0.58 * h),
            (x + 0.3 * wp, bottom - 0.94 * h),
            (x - 0.3 * wp, bottom - 0.94 * h),
        ],
        fill=glass,
    )
    for sx in (-1, 1):
        d.ellipse(
            (x + sx * 0.38 * wp - 0.08 * wp, bottom - 0.4 * h, x + sx * 0.38 * wp + 0.08 * wp, bottom - 0.28 * h),
            fill=lamps,
        )
    tyre = 10 if isinstance(body, int) else (12, 12, 12)
    d.rectangle((x - 0.46 * wp, bottom - 0.1 * h, x - 0.3 * wp, bottom), fill=tyre)
    d.rectangle((x + 0.3 * wp, bottom - 0.1 * h, x + 0.46 * wp, bottom), fill=tyre)


@dataclass
class _Mover:
    """A person or a car moving through the place at a steady speed (place coordinates)."""

    car: bool
    p0: np.ndarray  # (x, z) at the shot's start
    velocity: np.ndarray  # metres per second in (x, z)
    phase: float
    colours: list[RGB]


def _movers(rng: np.random.Generator, model: _Model, seconds: float, life: float) -> list[_Mover]:
    out: list[_Mover] = []
    people = {
        "corridor": 1.2,
        "car_park": 1.0,
        "stairwell": 0.6,
        "loading_bay": 1.0,
        "lobby": 2.0,
        "fence": 0.4,
        "lift": 0.5,
    }
    x0, x1, z0, z1 = model.walk
    for _ in range(int(rng.poisson(people[model.kind] * life))):
        speed = rng.uniform(0.9, 1.5) * (0.3 if model.kind == "lift" else 1.0)
        towards = rng.random() < 0.5
        zs, ze = (z1, z0) if towards else (z0, z1)
        start = rng.uniform(0, 1)
        p0 = np.array([rng.uniform(x0, x1), zs + (ze - zs) * start * 0.6])
        direction = np.array([rng.uniform(-0.15, 0.15), np.sign(ze - zs) or 1.0])
        clothes = [_shade(rng.integers(20, 200, 3).tolist(), 1.0) for _ in range(2)]
        skin = _shade((200, 160, 130), rng.uniform(0.5, 1.1))
        out.append(
            _Mover(False, p0, speed * direction / np.linalg.norm(direction), rng.uniform(0, 6.28), [*clothes, skin])
        )
    if model.drive is not None and rng.random() < 0.5 * life:
        x0, x1, z0, z1 = model.drive
        towards = rng.random() < 0.5
        p0 = np.array([rng.uniform(x0, x1), z1 if towards else z0 + rng.uniform(0, 5)])
        speed = rng.uniform(2.0, 5.0)
        colours = [(190, 190, 194), (30, 32, 36), (228, 228, 224), (40, 58, 96), (140, 30, 30)]
        body = colours[int(rng.integers(len(colours)))]
        out.append(_Mover(True, p0, np.array([0.0, -speed if towards else speed]), 0.0, [body]))
    return out


def _sprite(rng: np.random.Generator, kind: str, view: tuple[int, int], ir: bool) -> tuple[np.ndarray, np.ndarray]:
    """A thing right in front of the lens, out of focus: (RGB, alpha) float arrays."""
    w, h = view
    if kind == "walker":  # head and shoulders, bigger than the view
        sh, sw = round(h * rng.uniform(1.1, 1.5)), round(h * rng.uniform(0.6, 0.9))
        im = Image.new("L", (sw, sh), 0)
        d = ImageDraw.Draw(im)
        d.ellipse((0.3 * sw, 0.02 * sh, 0.7 * sw, 0.3 * sh), fill=255)
        d.rounded_rectangle((0.0, 0.25 * sh, sw, 1.2 * sh), radius=0.3 * sw, fill=255)
        colour = np.full(3, rng.uniform(200, 245)) if ir else rng.uniform(20, 70, 3)
        blur = h / 22
    elif kind == "vehicle":  # the side of a van going past
        sh, sw = round(h * rng.uniform(0.7, 0.95)), round(w * rng.uniform(1.3, 1.9))
        im = Image.new("L", (sw, sh), 0)
        d = ImageDraw.Draw(im)
        d.rounded_rectangle((0, 0, sw, 0.85 * sh), radius=0.08 * sh, fill=255)
        for cx in (0.18 * sw, 0.82 * sw):
            d.ellipse((cx - 0.14 * sh, 0.68 * sh, cx + 0.14 * sh, sh - 1), fill=255)
        colour = np.full(3, rng.uniform(190, 240)) if ir else rng.uniform(30, 220, 3)
        blur = h / 40
    else:  # a moth on the lens: a blurred body and legs, lit by the infrared illuminator
        sh = sw = round(h * rng.uniform(0.35, 0.6))
        im = Image.new("L", (sw, sh), 0)
        d = ImageDraw.Draw(im)
        d.ellipse((0.35 * sw, 0.2 * sh, 0.65 * sw, 0.8 * sh), fill=255)
        for k in range(6):
            ang = (k - 2.5) * 0.5 + (math.pi if k % 2 else 0)
            d.line(
                [(0.5 * sw, 0.5 * sh), (0.5 * sw + 0.45 * sw * math.cos(ang), 0.5 * sh + 0.45 * sh * math.sin(ang))],
                fill=200,
                width=max(1, sw // 25),
            )
        colour = np.full(3, 250.0) if ir else np.array([70.0, 60.0, 50.0])
        blur = h / 16
    alpha = np.asarray(im.filter(ImageFilter.GaussianBlur(max(blur, 0.5))), np.float32)[..., None] / 255
    shade = 0.85 + 0.3 * _fractal(rng, sh, sw, 2.0)[..., None]
    return (colour.astype(np.float32) * shade).astype(np.float32), alpha.astype(np.float32)


class _View:
    """One shot's frames at the working size: a window onto its camera's panorama (PTZ presets,
    patrols, sway), people and cars, and the shot's effects."""

    def __init__(
        self,
        p: CctvPlan,
        k: int,
        pano: _Panorama,
        model: _Model,
        pose: _Pose,
        work: tuple[int, int],
        rng: np.random.Generator,
    ) -> None:
        self.shot, self.cam, self.fps, self.work = p.shots[k], p.cameras[p.shots[k].camera], p.fps, work
        self.model, self.proj = model, _Projector(model, pose, (pano.ir.shape[1], pano.ir.shape[0]))
        self.sources = {
            "colour": Image.fromarray(pano.colour),
            "ir": Image.fromarray(pano.ir),
            "dark": Image.fromarray(pano.dark) if pano.dark is not None else None,
        }
        self.pano = (pano.ir.shape[1], pano.ir.shape[0])
        frames = self.shot.last - self.shot.first
        self.movers = _movers(rng, model, frames / p.fps, p.style.life)
        move = p.style.move
        self.patrol = (
            (rng.uniform(0.25, 0.45) * move, rng.uniform(14, 30), rng.uniform(0, 6.28))
            if self.cam.move == "patrol"
            else None
        )
        self.sway = (
            [
                (rng.uniform(0.3, 1.2) * move * work[1] / 240, rng.uniform(0.3, 1.5), rng.uniform(0, 6.28))
                for _ in range(2)
            ]
            if self.cam.move == "sway"
            else []
        )
        yy, xx = np.mgrid[0 : work[1], 0 : work[0]].astype(np.float32)
        r2 = ((xx - work[0] / 2) / (work[0] / 2)) ** 2 * 0.6 + ((yy - work[1] / 2) / (work[1] / 2)) ** 2 * 0.4
        self.r2, self.xx, self.yy = r2, xx, yy
        self.extras: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        self.fx_params: list[dict[str, float]] = []
        self.flicker = rng.random(8) < 0.5
        for i, fx in enumerate(self.shot.effects):
            prm = {"side": float(rng.choice([-1.0, 1.0])), "y": rng.uniform(0.45, 0.8), "x": rng.uniform(0.25, 0.75)}
            prm |= {"over": rng.uniform(1.5, 1.9), "ae": rng.uniform(1.8, 2.4), "flick": float(rng.integers(2, 5))}
            self.fx_params.append(prm)
            if fx.name in ("walker", "vehicle", "insect"):
                st = self._state_at(fx.a)
                rgb, alpha = _sprite(rng, fx.name, work, st.mode == "ir")
                path = rng.uniform(-0.3, 0.3, 4)
                self.extras[i] = (rgb, alpha, path, np.zeros(1))
        self.cache: dict[tuple[str, int, int, int], np.ndarray] = {}

    def _state_at(self, j: int) -> CameraState:
        st = self.shot.start
        for fx in self.shot.effects:
            if j >= fx.b:
                st = _after(st, fx)
        return st

    def _window(self, st: CameraState) -> tuple[float, float, float]:
        w, (pw, ph) = self.work[0], self.pano
        s = 0.6 if st.zoom else 1.0
        cx = (pw / 2, w * s / 2 + 1, pw - w * s / 2 - 1)[st.preset]
        return cx, ph / 2, s

    def window(self, j: int) -> tuple[float, float, float]:
        st = self.shot.start
        cx, cy, s = self._window(st)
        for fx in self.shot.effects:
            new = _after(st, fx)
            if fx.name in _PTZ_EFFECTS and j >= fx.a:
                t = _smoothstep((j - fx.a + 1) / (fx.b - fx.a + 1))
                nx, ny, ns = self._window(new)
                cx, cy, s = cx + t * (nx - cx), cy + t * (ny - cy), s * (ns / s) ** t
            st = new
        t = j / self.fps
        if self.patrol is not None:
            amp, period, phase = self.patrol
            cx += amp * (self.pano[0] - self.work[0]) / 2 * math.sin(2 * math.pi * t / period + phase)
        for amp, freq, phase in self.sway:
            cx += amp * math.sin(2 * math.pi * freq * t + phase)
            cy += amp * math.cos(2 * math.pi * freq * 1.3 * t + phase)
        (w, h), (pw, ph) = self.work, self.pano
        cx = min(max(cx, w * s / 2), pw - w * s / 2)
        cy = min(max(cy, h * s / 2), ph - h * s / 2)
        return cx, cy, s

    def _layers(self, j: int) -> tuple[list[tuple[str, float]], float]:
        """The panoramas seen at frame `j` with their gains, and how much infrared is in the mix."""
        st = self.shot.start
        mode, lit, gain = st.mode, st.lit, 1.0 if st.lit else 2.0
        for fx, prm in zip(self.shot.effects, self.fx_params, strict=True):
            if fx.name == "day_night" and j >= fx.a:
                mode = "ir" if mode == "colour" else "colour"
                if j < fx.b:  # the exposure settles after the switch
                    over = prm["over"] if mode == "ir" else 1 / prm["over"]
                    gain *= 1 + (over - 1) * (1 - _smoothstep((j - fx.a) / (fx.b - fx.a)))
            elif fx.name == "lights" and j >= fx.a:
                if lit:  # off: dark at once, then the auto exposure opens up
                    lit = False
                    gain = 1 + (prm["ae"] - 1) * _smoothstep((j - fx.a) / (fx.b - fx.a)) if j < fx.b else 2.0
                else:  # on: the tubes flicker, then the exposure closes down
                    n = int(prm["flick"])
                    lit = j >= fx.a + n or bool(self.flicker[(j - fx.a) % 8])
                    gain = (
                        2.0
                        if not lit
                        else (0.7 + 0.3 * _smoothstep((j - fx.a - n) / max(fx.b - fx.a - n, 1)) if j < fx.b else 1.0)
                    )
        if mode == "ir":
            return [("ir", gain)], 1.0
        if not lit and self.sources["dark"] is not None:
            return [("dark", gain)], 0.0
        return [("colour", gain)], 0.0

    def _extract(self, source: str, win: tuple[float, float, float], j: int) -> np.ndarray:
        cx, cy, s = win
        w, h = self.work
        key = (source, round(cx * 8), round(cy * 8), round(s * 1000))
        base = self.cache.get(key)
        if base is None:
            im = self.sources[source]
            assert im is not None
            x0, y0 = cx - s * w / 2, cy - s * h / 2
            view = im.transform((w, h), Image.Transform.AFFINE, (s, 0, x0, 0, s, y0), Image.Resampling.BILINEAR)
            base = np.asarray(view)
            if len(self.cache) > 64:
                self.cache.clear()
            self.cache[key] = base
        if not self.movers:
            return base
        im = Image.fromarray(base)
        self._draw_movers(ImageDraw.Draw(im), win, j, source == "ir", 0.2 if source == "dark" else 1.0)
        return np.asarray(im)

    def _draw_movers(
        self, d: ImageDraw.ImageDraw, win: tuple[float, float, float], j: int, ir: bool, dim: float
    ) -> None:
        cx, cy, s = win
        w, h = self.work
        x0, y0 = cx - s * w / 2, cy - s * h / 2
        t = j / self.fps
        placed = []
        for m in self.movers:
            x, z = m.p0 + m.velocity * t
            y = self.model.ground(z) if self.model.ground else 0.0
            foot = self.proj.point((x, y, z))
            head = self.proj.point((x, y + (1.45 if m.car else 1.75), z))
            if foot is None or head is None or foot[2] < 0.3:
                continue
            placed.append((foot[2], m, ((foot[0] - x0) / s, (foot[1] - y0) / s), (foot[1] - head[1]) / s))
        for dz, m, (u, v), hp in sorted(placed, key=lambda q: -q[0]):
            if hp < 3 or not (-hp < u < w + hp and 0 < v < h + hp):
                continue
            lum = 255 / (1 + (dz / (16.0 if self.model.outdoor else 7.0)) ** 2)
            if m.car:
                body: int | RGB = int(0.8 * lum) if ir else _shade(m.colours[0], dim)
                lamps: int | RGB = 255 if ir else (250, 240, 210)
                _draw_car_front(d, u, v, hp / 0.8 * 1.8 / 1.45 * 0.8, body, lamps)
            else:
                cols: list[int | RGB] = (
                    [int(lum * f) for f in (0.6, 0.45, 0.8)] if ir else [_shade(c, dim) for c in m.colours]
                )
                _draw_person(d, u, v, hp, m.phase + 2 * math.pi * 0.9 * t, cols)

    def frame(self, j: int) -> np.ndarray:
        """The shot's frame `j` (from its first), float RGB at the working size."""
        win = self.window(j)
        layers, ir_share = self._layers(j)
        acc = np.zeros((self.work[1], self.work[0], 3), np.float32)
        for source, gain in layers:
            base = self._extract(source, win, j).astype(np.float32)
            if base.ndim == 2:
                base = base[..., None]
            acc += base * np.float32(gain)
        moving = [fx for fx in self.shot.effects if fx.name in _PTZ_EFFECTS and fx.a <= j < fx.b]
        if moving:  # motion blur of a fast PTZ move: average with the window half a frame before
            prev = self.window(j - 1)
            mid = tuple((a + b) / 2 for a, b in zip(win, prev, strict=True))
            for source, gain in layers:
                base = self._extract(source, mid, j).astype(np.float32)  # type: ignore[arg-type]
                acc = 0.5 * acc + 0.5 * (base if base.ndim == 3 else base[..., None]) * np.float32(gain)
        for i, (fx, prm) in enumerate(zip(self.shot.effects, self.fx_params, strict=True)):
            if not fx.a <= j < fx.b:
                continue
            t = (j - fx.a + 0.5) / (fx.b - fx.a)
            if fx.name == "headlights":
                cx = (-0.3 + 1.6 * t if prm["side"] > 0 else 1.3 - 1.6 * t) * self.work[0]
                blob = np.exp(
                    -(((self.xx - cx) / (0.35 * self.work[0])) ** 2)
                    - ((self.yy - prm["y"] * self.work[1]) / (0.3 * self.work[1])) ** 2
                )
                strength = math.sin(math.pi * t) * (1.3 if ir_share else 0.9)
                tint = np.array([1.0, 1.0, 1.0] if ir_share else [1.0, 0.95, 0.8], np.float32)
                acc += (strength * blob)[..., None] * (255 - np.minimum(acc, 255)) * tint
            elif fx.name == "glare":
                cx, cy = prm["x"] * self.work[0], prm["y"] * self.work[1] * 0.8
                blob = np.exp(
                    -(((self.xx - cx) / (0.5 * self.work[0])) ** 2) - ((self.yy - cy) / (0.5 * self.work[1])) ** 2
                )
                streak = np.exp(-(((self.yy - cy) / (0.03 * self.work[1])) ** 2)) * 0.6
                strength = (0.95, 0.7, 0.45)[min(j - fx.a, 2)]
                acc += (strength * np.maximum(blob, streak))[..., None] * (255 - np.minimum(acc, 255))
            elif i in self.extras:
                rgb, alpha, path, _ = self.extras[i]
                self._paste(acc, rgb, alpha, fx.name, t, prm["side"], path)
        acc *= (1 - (0.5 if ir_share else 0.18) * self.r2)[..., None]
        return acc

    def _paste(
        self, acc: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, name: str, t: float, side: float, path: np.ndarray
    ) -> None:
        w, h = self.work
        sh, sw = alpha.shape[:2]
        if name == "insect":  # wanders in from one edge and out of another
            x = (0.5 + side * (1.2 * t - 0.6) + path[0] * math.sin(3 * t)) * w - sw / 2
            y = (0.5 + path[1] + path[2] * math.sin(5 * t + path[3])) * h - sh / 2
        else:
            x = (-sw + t * (w + sw)) if side > 0 else (w - t * (w + sw))
            y = h * (0.15 + 0.1 * path[0]) if name == "walker" else h * 1.02 - sh
        x0, y0 = round(x), round(y)
        ax0, ay0, ax1, ay1 = max(x0, 0), max(y0, 0), min(x0 + sw, w), min(y0 + sh, h)
        if ax0 >= ax1 or ay0 >= ay1:
            return
        a = alpha[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0]
        c = rgb[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0]
        region = acc[ay0:ay1, ax0:ax1]
        region *= 1 - a
        region += c * a


# --- the recorder's on-screen display and video-loss screen ---------------------------------------------


class _Osd:
    """Text drawn by the recorder over every frame, at the video's size: the time, the camera's
    channel and name, the recorder's logo and a blinking REC mark."""

    def __init__(self, p: CctvPlan) -> None:
        self.p, self.r = p, p.recorder
        self.size = p.size
        self.px = max(7, round(p.size[1] * self.r.scale))
        self.font = ImageFont.load_default(size=self.px)
        self.margin = (max(2, round(0.02 * p.size[0])), max(2, round(0.02 * p.size[1])))
        self.patches: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self.screens: dict[int, np.ndarray] = {}

    def _patch(self, text: str, style: str) -> tuple[np.ndarray, np.ndarray]:
        got = self.patches.get((text, style))
        if got is not None:
            return got
        font, pad = self.font, max(1, self.px // 5)
        stroke = 0 if self.r.boxed or style == "logo" else max(1, self.px // 12)
        x0, y0, x1, y1 = (round(v) for v in font.getbbox(text, stroke_width=stroke))
        w, h = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad
        im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        d = ImageDraw.Draw(im)
        colour: tuple[int, ...] = (*self.r.text, 255)
        if style == "logo":
            d.rounded_rectangle(
                (0, 0, w - 1, h - 1), radius=max(1, h // 4), fill=(20, 24, 30, 150), outline=(220, 220, 220, 180)
            )
            colour = (230, 232, 236, 200)
        elif style == "rec":
            colour = (236, 40, 36, 255)
        elif self.r.boxed:
            d.rectangle((0, 0, w - 1, h - 1), fill=(0, 0, 0, 150))
        d.text((pad - x0, pad - y0), text, font=font, fill=colour, stroke_width=stroke, stroke_fill=(0, 0, 0, 255))
        arr = np.asarray(im, np.float32)
        got = (arr[..., :3], arr[..., 3:] / 255)
        self.patches[(text, style)] = got
        return got

    def _put(self, frame: np.ndarray, patch: tuple[np.ndarray, np.ndarray], corner: str, row: int) -> None:
        rgb, alpha = patch
        h, w = alpha.shape[:2]
        width, height = self.size
        mx, my = self.margin
        x = mx if corner.endswith("left") else width - w - mx
        y = my + row * (h + 2) if corner.startswith("top") else height - my - h - row * (h + 2)
        x, y = max(x, 0), max(y, 0)
        w, h = min(w, width - x), min(h, height - y)
        if w <= 0 or h <= 0:
            return
        region = frame[y : y + h, x : x + w].astype(np.float32)
        a = alpha[:h, :w]
        frame[y : y + h, x : x + w] = (region * (1 - a) + rgb[:h, :w] * a + 0.5).astype(np.uint8)

    def draw(self, frame: np.ndarray, i: int, cam: Camera) -> None:
        r = self.r
        self._put(frame, self._patch(self.p.clock(i).strftime(r.time_format), "text"), r.time_corner, 0)
        name_row = 1 if r.name_corner == r.time_corner else 0
        self._put(frame, self._patch(cam.name, "text"), r.name_corner, name_row)
        self._put(frame, self._patch(r.brand, "logo"), r.logo_corner, 0)
        if r.rec_mark and (i // self.p.fps) % 2 == 0:
            self._put(frame, self._patch("REC", "rec"), r.time_corner, name_row + 1)

    def loss_screen(self, cam: Camera) -> np.ndarray:
        """The recorder's screen for a camera without a picture."""
        got = self.screens.get(cam.channel)
        if got is None:
            width, height = self.size
            im = Image.new("RGB", self.size, self.r.loss_colour)
            font = ImageFont.load_default(size=max(8, height // 12))
            d = ImageDraw.Draw(im)
            for text, dy in ((f"CH{cam.channel:02d}", -0.7), (self.r.loss_text, 0.7)):
                x0, y0, x1, y1 = font.getbbox(text)
                d.text(
                    ((width - x1 - x0) / 2, height / 2 + dy * (y1 - y0) - (y1 + y0) / 2),
                    text,
                    font=font,
                    fill=(235, 235, 235),
                )
            got = np.asarray(im)
            self.screens[cam.channel] = got
        return got.copy()


# --- the video -------------------------------------------------------------------------------------------


def make_cctv_video(
    path: str | os.PathLike[str],
    seed: int = 0,
    *,
    duration: float | None = None,
    size: tuple[int, int] | None = None,
    fps: int | None = None,
    shot_s: tuple[float, float] = (1.5, 10.0),
    plan: Sequence[tuple[str | None, str | None]] | None = None,
    style: CctvStyle = CctvStyle(),
    encoding: Encoding | None = None,
) -> GroundTruth:
    """Write a `cctv` video and return its ground truth.

    Duration (40-90 s), size, frame rate and encoding are drawn from the seed unless given. `plan`
    fixes the shots instead: one (join into the shot, effect in it) pair per shot, the first join
    None, each join a key of `CCTV_JOINS` and each effect one of `CCTV_EFFECTS`; the video is then as
    long as the plan makes it.
    """
    p = plan_cctv_video(
        seed, duration=duration, size=size, fps=fps, shot_s=shot_s, plan=plan, style=style, encoding=encoding
    )
    write_video(path, p.encoding, p.size, p.fps, _frames(p))
    return p.truth(path)


def _timeline(shots: list[PlannedShot]) -> Iterator[tuple[list[tuple[int, float]], float]]:
    """Per frame: the shots it shows with their weights (a fade's rest is black)."""
    for k, shot in enumerate(shots):
        if k:
            n_out, mid, n_in = shot.into_frames
            if shot.into == "dissolve":
                for i in range(mid):
                    w = (i + 1) / (mid + 1)
                    yield [(k - 1, 1 - w), (k, w)], 0.0
            elif shot.into == "fade":
                for i in range(n_out):
                    yield [(k - 1, 1 - (i + 1) / (n_out + 1))], 0.0
                for _ in range(mid):
                    yield [], 0.0
                for i in range(n_in):
                    yield [(k, (i + 1) / (n_in + 1))], 0.0
        for _ in range(shot.solo):
            yield [(k, 1.0)], 0.0


def _frames(p: CctvPlan) -> Iterator[np.ndarray]:
    """The video's frames at its size, RGB uint8, in order, the on-screen display drawn over each."""
    seed, (width, height) = p.seed, p.size
    work_w = min(width, _WORK_WIDTH)
    work = (work_w, 2 * max(1, round(work_w * height / width / 2)))
    pano_size = (round(_PANORAMA[0] * work[0]), round(_PANORAMA[1] * work[1]))
    models: dict[int, _Model] = {}
    panoramas: dict[int, _Panorama] = {}
    dark_needed = {sh.camera for sh in p.shots if any(fx.name == "lights" for fx in sh.effects) or not sh.start.lit}
    last_use = {c: max(sh.last for sh in p.shots if sh.camera == c) for c in {sh.camera for sh in p.shots}}
    noise_rng = np.random.default_rng([_SALT, seed, 4])
    noise = [noise_rng.standard_normal((work[1], work[0], 3), dtype=np.float32) for _ in range(_NOISE_FIELDS)]
    sigmas = [
        float(noise_rng.uniform(5, 10) if sh.start.mode == "ir" else noise_rng.uniform(1.5, 3.5)) * p.style.noise
        for sh in p.shots
    ]
    osd = _Osd(p)
    screens = p.screen_frames()
    named = [p.osd_shot(i) for i in range(p.frames)]
    views: dict[int, _View] = {}
    for i, (parts, fill) in enumerate(_timeline(p.shots)):
        cam = p.cameras[p.shots[named[i]].camera]
        if i in screens:
            out = osd.loss_screen(cam)
        else:
            acc = np.full((work[1], work[0], 3), fill, np.float32)
            for k, weight in parts:
                if k not in views:
                    shot = p.shots[k]
                    if shot.place not in models:
                        models[shot.place] = _BUILDERS[p.places[shot.place].kind](
                            np.random.default_rng([_SALT, seed, 2, shot.place]), p.palette, p.time
                        )
                    model = models[shot.place]
                    pose = model.poses[p.cameras[shot.camera].view]
                    if shot.camera not in panoramas:
                        panoramas[shot.camera] = _panorama(
                            np.random.default_rng([_SALT, seed, 3, shot.camera]),
                            model,
                            pose,
                            pano_size,
                            p.time,
                            shot.camera in dark_needed,
                        )
                    views[k] = _View(
                        p, k, panoramas[shot.camera], model, pose, work, np.random.default_rng([_SALT, seed, 1, k])
                    )
                acc += views[k].frame(i - p.shots[k].first) * np.float32(weight)
            sigma = max((sigmas[k] for k, _ in parts), default=0.0)
            if sigma > 0:
                grain = noise[i % _NOISE_FIELDS]
                if all(views[k]._layers(i - p.shots[k].first)[1] for k, _ in parts):  # infrared: grey noise
                    grain = grain[..., :1]
                acc += grain * np.float32(sigma)
            acc += 0.5
            rgb = np.clip(acc, 0, 255, out=acc).astype(np.uint8)
            if work != p.size:
                rgb = np.asarray(Image.fromarray(rgb).resize(p.size, Image.Resampling.BILINEAR))
            out = np.array(rgb)
        osd.draw(out, i, cam)
        yield out
        for k in [k for k in views if p.shots[k].last <= i + 1]:
            del views[k]
        for c in [c for c in panoramas if last_use[c] <= i + 1]:
            del panoramas[c]

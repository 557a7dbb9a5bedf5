"""Scene-change detection: hard cuts and gradual transitions (dissolves, fades) from embeddings.

Each frame's global vector (unit CLS and unit mean-patch, concatenated) is compared with the
previous frame and with the frame `gradual_s` before it. A jump beyond a robust per-stream level
(median + k·MAD of the shot's recent frame-to-frame distances), or a slow change that adds up
to more than the cut threshold over `gradual_s`, opens a *candidate* transition anchored at the
last frame of the old picture (for a slow change: the newest frame it already differs from by
the cut threshold). The candidate ends at the first frame that, with its look-ahead, is shown
for `settle_s` and stays close to it (by the old shot's usual motion, or, for a busier new shot,
by its own frame-to-frame noise), and it is a shot change if

- the new picture is far from the old one (from the nearest of its frames of the last
  _MEMORY_S before the candidate), beyond the cut threshold (median + sensitivity·MAD, at least
  `min_distance`), after discounting the frame steps that look like the shot's ordinary motion
  (at most the usual motion per frame, measured over `gradual_s`, times the frames): slow lighting
  drift and camera moves change the picture a little every frame and never add up to a cut,
  while noise does not add up. Where the decoder saw the change as one picture step far larger
  than any other between the two samples (the frame's `Jump`) and the thumbnails' pixels do not
  follow the frame before (neither still nor translated), half the cut threshold is enough: two
  independent signs of a cut, such as one to another view of the same place, which moves random
  features less than the threshold (`details["threshold"]` names the level cleared);
- it is not the old picture back: a camera flash or an object crossing the view ends where it
  started. Two frames of the old picture after the change end the candidate at once, whatever
  comes next (a fade that follows a flash is still its own event), and the frames in between
  are never compared again (nor anchor a later candidate, which would take the object's leaving
  for a change);
- it is not the same scene moved: a fast pan or zoom, whose patch grids still agree at some
  shift (`same_scene_similarity`) while the thumbnails do not say otherwise (two places that
  random features see alike agree in no pixels), or whose every frame step is the previous frame
  still or translated, the translated steps making most of the change (the thumbnails' pixels
  agree at some shift, `motion_similarity`: `dinostream.analytics.frame_motion`);
- it is not the same view under other light: a lamp switched on, a shadow, an exposure step
  (the settled frame's thumbnail detail matches the old picture's at a small shift, with about
  as much detail: `relit_similarity`; features, random ones especially, move with brightness);
- and the shot before it lasted at least `min_shot_s`.

Blank frames (all patches alike: black, white) never end a transition, so a fade out and in is
one event. A candidate still moving after `max_transition_s` is motion, not a transition.
Thresholds are per stream and per shot; a new shot borrows the previous shots' statistics until
it has a few of its own. Times are in media seconds, so any sampling rate works.

Events come about `settle_s` after the new picture appears. `t` is when the change happened: the
first frame from which the picture stays nearer the new one than the old, frames far from both (a
flash) set aside; a fade, the middle of its blank frames' span; a dissolve, where its progress
crosses half way (between two frames, as if it grew evenly between them). A cut (one step)
happened somewhere between its last old and first new frame, however the candidate opened or the
new shot settled: where the decoder saw one picture step between the two samples far larger than
any other (the new frame's `Jump`), `t` (and `ts`, in proportion) is that step, to the frame;
else half way between the two, at most half a sampling interval from the true time.
`t_start`, `t_end` and `frames` are the old picture's last frame and the new one's first settled
frame; `details["kind"]` is "cut" (one step) or "gradual". Pure: no I/O; the Faust agent and
`dinostream analyze` both call it, and per-stream state round-trips through JSON.

    >>> det = SceneChangeDetector(SceneChangeSettings())
    >>> for rec in records:            # FrameEmbedding, in stream order
    ...     for event in det.process(rec):
    ...         print(event.t, event.details["kind"], event.score)
    >>> det.flush(stream)              # end of stream: decide what the look-ahead still holds
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate
from typing import Any

import numpy as np

from dinostream.analytics.frame_motion import MotionFrame, align, frame_motion_image, prepare, relighting
from dinostream.analytics.median import median
from dinostream.analytics.processor import Processor
from dinostream.analytics.state_codec import decode_array, decode_rows, encode_array
from dinostream.core.blas import rows_matmul
from dinostream.core.half import round_half
from dinostream.core.records import Event, FrameEmbedding, event_id
from dinostream.core.settings import SceneChangeSettings

_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
_MIN_SPREAD = 0.005  # floor on the spread so a perfectly static shot does not make noise a cut
_START_RATIO = 0.5  # candidates open at median + sensitivity/2 * MAD (twin comparison's low threshold)
_SETTLE_RATIO = 0.1  # the new picture has settled when it moves less than this share of the change
_MIN_SAMPLES = 3  # a new shot uses its own statistics once it has this many distances
_BLANK_DIVERSITY = 0.02  # patch diversity below this, and below _BLANK_RATIO of the old picture's: blank
_BLANK_RATIO = 0.1
_ORDINARY = 2.5  # a frame-to-frame step up to this many times the usual motion is ordinary motion
_PATCH_DIMS = 64  # patch vectors kept for the same-scene check are projected to this many dims
_MIN_OVERLAP = 0.25  # shifts that leave less of the grids overlapping are not considered
_MAX_BUFFER = 128  # frames kept for look-back and look-ahead, whatever the sampling rate
_MEMORY_S = 2.0  # how far back before a candidate the old picture is remembered (an occluder's time)
_OLD_FRAMES = 6  # at most this many of those frames are kept with a candidate
_BACK_RATIO = 0.5  # the old picture is back when a change has shrunk to this share of its largest
_DEFAULT_DT = 0.5  # frame interval assumed until two frames have been seen (the default 2 fps)
_MIN_SPEED = 0.25  # views per second: a translation at least this fast is a camera move (slower: the
# shot's own slow pan, at most about a tenth of the view per second in the benchmark's videos)
_SHIFT_GAIN = 0.05  # ... when it explains the frame this much better than no shift does
_UNRELATED, _STILL, _MOVED = 0, 1, 2  # how a frame's pixels relate to the previous frame's
_RESTLESS_SPREAD = 1.5  # a new picture holds if its frames stay within this many of its own steps of it
_RESTLESS_CHANGE = 2.0  # ... and the change is at least this many times that (chord lengths)
_ASIDE_SHARE = 0.5  # a frame farther than this share of a change from both its ends is set aside in timing it
_CUT_GAIN = 0.7  # a change is one step (a cut) when one frame step covers this much of its progress
_NEAR_SHARE = 0.25  # a frame this near one end of a change (share of the change) shows that end's picture
_SAME_SCENE_PIXELS = 0.45  # the same scene moved still overlaps: its detail matches at some shift (cuts: 0.3 at most)
_IMAGE_STRIDE = 4  # a slow change's anchor is compared by an image at most lag / this frames older
_RELIT_DETAIL = (2 / 3, 1.5)  # detail of the new picture per unit of the old one's, for "relit"
_JUMP_DOMINANCE = 2.0  # a decoded-frame step this many times the next largest is the change itself (`Jump`)
# A change the decoder saw as that one step, whose pixels do not follow the frame before (no still
# or moved view of it), is a shot change from this share of the cut level: two independent signs of
# a cut (a cut to another view of the same place moves random features less than the level).
_JUMP_CUT_SHARE = 0.5
# 7: frames whose motion is not worked out yet keep their two motion images; 6: frames and steps carry
# cut_at; 5: arrays saved by state_codec; 2-4: bare base64 strings
_STATE_VERSION = 7


def global_vector(record: FrameEmbedding) -> np.ndarray:
    """The frame's global descriptor: unit CLS and unit mean-patch vectors, concatenated and rescaled
    to unit length, so the cosine distance is the mean of the two distances."""
    cls = _unit(record.cls.astype(np.float32))
    pooled = _unit(record.pooled.astype(np.float32))
    return (np.concatenate([cls, pooled]) / np.sqrt(2.0)).astype(np.float32)


def patch_diversity(patches: np.ndarray, *, unit: np.ndarray | None = None) -> float:
    """0 when every patch vector points the same way (a blank frame), larger for real content.
    `unit`: the patches scaled to unit length when the caller has them (`FrameEmbedding.unit_patches`)."""
    if unit is None:
        p = np.asarray(patches.reshape(-1, patches.shape[-1]), dtype=np.float32)
        unit = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    u = unit.reshape(-1, unit.shape[-1])
    if not u.any():
        return 1.0  # no patch information at all: never call it blank
    return float(1.0 - np.linalg.norm(u.mean(axis=0)))


def scene_similarity(a: np.ndarray, b: np.ndarray, min_overlap: float = _MIN_OVERLAP) -> float:
    """How well two patch grids (h, w, d) of unit vectors agree at the best relative shift: the mean
    cosine of overlapping patches, maximised over shifts leaving at least `min_overlap` of the grid.
    High for a pan or an object passing in front of the same scene; low across a cut."""
    return best_scene_similarity([a], b, min_overlap)


def best_scene_similarity(keys: Sequence[np.ndarray], b: np.ndarray, min_overlap: float = _MIN_OVERLAP) -> float:
    """The highest `scene_similarity` of grid `b` with any of `keys` (-1 when none has its shape).
    Every shift of every pair at once: one product gives every patch of a key against every patch
    of `b`, and each dot product is added to the shift that pairs those two patches."""
    keys = [k for k in keys if k.shape == b.shape]
    if not keys:
        return -1.0
    h, w, d = b.shape
    shifts, overlap, valid = _shifts(h, w, min_overlap)
    if not valid.any():
        return -1.0
    dots = np.stack(keys).reshape(len(keys) * h * w, d) @ b.reshape(h * w, d).T  # (K x hw of a key, hw of b)
    n = overlap.size
    bins = (shifts[None] + n * np.arange(len(keys))[:, None, None]).ravel()
    sums = np.bincount(bins, weights=dots.ravel(), minlength=n * len(keys)).reshape(len(keys), n)
    return float((sums[:, valid] / overlap[valid]).max())


@lru_cache(maxsize=8)
def _shifts(h: int, w: int, min_overlap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For grids h x w: the shift that pairs patch p of the first grid with patch q of the second
    (hw, hw) as an index into the (2h - 1) x (2w - 1) shifts, the patches overlapping at each
    shift, and whether at least `min_overlap` of the grid does."""
    y, x = np.divmod(np.arange(h * w), w)
    dy = y[:, None] - y[None, :] + h - 1
    dx = x[:, None] - x[None, :] + w - 1
    shifts = dy * (2 * w - 1) + dx
    overlap = np.bincount(shifts.ravel(), minlength=(2 * h - 1) * (2 * w - 1)).astype(np.float64)
    valid = overlap >= min_overlap * h * w
    for a in (shifts, overlap, valid):
        a.flags.writeable = False  # shared by every call
    return shifts, overlap, valid


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _camera_moved(steps: Sequence[_Step]) -> bool:
    """The camera moved from the anchor to the new picture: every frame step is the previous frame
    unmoved or translated, and the translated steps carry most of the change (summed frame-to-frame
    chords). In a dissolve the pictures blend in place: its steps are unmoved, or one is translated
    by the old shot's pan while the unmoved ones make the change."""
    if any(x.motion == _UNRELATED for x in steps):
        return False
    moved = sum(_chord(x.d1) for x in steps if x.motion == _MOVED)
    still = sum(_chord(x.d1) for x in steps if x.motion == _STILL)
    return moved > still


def _middle(steps: Sequence[_Step]) -> tuple[_Step, bool, float, float]:
    """A gradual change's frame (the middle one of `steps`) and time (the middle of their span)."""
    a, b = steps[0], steps[-1]
    return steps[(len(steps) - 1) // 2], False, (a.pts + b.pts) / 2, (a.ts + b.ts) / 2


def _chord(cos_distance: float) -> float:
    """Euclidean distance between unit vectors with this cosine distance (a metric: it adds up)."""
    return math.sqrt(max(2.0 * cos_distance, 0.0))


def _cos(u: np.ndarray, v: np.ndarray) -> float:
    return float(1.0 - np.dot(u, v))


def _spread(d: np.ndarray, med: float) -> float:
    return max(_MAD_TO_SIGMA * median(np.abs(d - med)), _MIN_SPREAD)


@dataclass
class _Frame:
    seq: int
    pts: float
    ts: float
    g: np.ndarray  # global vector, float32
    d1: float = 0.0  # cosine distance to the previous frame
    div: float = 1.0  # patch diversity (0: blank)
    # The previous frame unmoved (_STILL) or translated (_MOVED). None: not worked out yet; it is read
    # only for a frame that becomes a candidate's step (`_motion_of`), and for a snapshot.
    motion: int | None = _UNRELATED
    hidden: bool = False  # a passing disturbance (a flash, a crossing object): never compared again
    image: np.ndarray | None = None  # its motion image (uint8 grey), while it is in the buffer
    cut_at: float | None = None  # media time of the one picture step the decoder saw since the last sample
    # Not saved: what `motion` is worked out from while it is None (the previous frame's motion image,
    # this frame's, both float32 grey, and the stream's frame interval when the frame came).
    before: np.ndarray | None = None
    after: np.ndarray | None = None
    dt: float = 0.0


@dataclass
class _Step:
    """A frame inside an open candidate transition."""

    seq: int
    pts: float
    ts: float
    chord: float  # chord distance to the anchor
    d1: float  # cosine distance to the previous frame
    div: float  # patch diversity (0: blank)
    motion: int = _UNRELATED  # as _Frame.motion
    cut_at: float | None = None  # as _Frame.cut_at


@dataclass
class _Candidate:
    anchor: _Frame  # the last frame of the old picture
    keys: list[int]  # seqs of the stream's patch grids of the old picture, for the same-scene check
    steps: list[_Step] = field(default_factory=list)
    checked: int = 0  # steps already tried as the end of the transition
    old: list[np.ndarray] = field(default_factory=list)  # frames of the old picture before the anchor
    anchor_image: np.ndarray | None = None  # the anchor's motion image (uint8 grey), for the pixel checks
    _anchor_pixels: MotionFrame | None = field(default=None, repr=False, compare=False)  # not saved

    def anchor_pixels(self) -> MotionFrame | None:
        """The anchor's motion image prepared for `align` and `relighting`, once per candidate."""
        if self._anchor_pixels is None and self.anchor_image is not None:
            self._anchor_pixels = prepare(self.anchor_image.astype(np.float32))
        return self._anchor_pixels


@dataclass
class _StreamState:
    buf: deque[_Frame] = field(default_factory=deque)  # the last frames, for look-back and look-ahead
    # Frames older than `buf`, one every _MEMORY_S / _OLD_FRAMES: the old picture's memory for a
    # slow change found `lag` frames after it began, whose anchor is near the buffer's start.
    past: deque[_Frame] = field(default_factory=lambda: deque(maxlen=_OLD_FRAMES + 1))
    near: deque[float] = field(default_factory=deque)  # within-shot distances to the previous frame
    far: deque[float] = field(default_factory=deque)  # within-shot distances to the frame `lag` before
    shot_near: int = 0  # how many of `near` belong to the current shot
    shot_far: int = 0  # how many of `far` belong to the current shot
    shot_start: float | None = None  # media time of the current shot's first settled frame
    floor_seq: int = -1  # the current picture starts here: earlier frames are never compared with it
    keys: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (seq, patch grid), at most 2
    since_key: int = 0
    cand: _Candidate | None = None
    model: str = ""
    image: np.ndarray | None = None  # the last frame's motion image (float32 grey)
    # The last two motion images prepared for `align` (dinostream.analytics.frame_motion): a frame's
    # motion needs its own and the previous frame's, and the next frame's needs it again.
    prepared_images: list[tuple[np.ndarray, MotionFrame]] = field(default_factory=list)

    def prepared(self, image: np.ndarray | None) -> MotionFrame | None:
        """`prepare(image)`, remembered for the last two images asked for (the same array object)."""
        if image is None:
            return None
        for known, ready in self.prepared_images:
            if known is image:
                return ready
        ready = prepare(image)
        self.prepared_images = [*self.prepared_images[-1:], (image, ready)]
        return ready

    @property
    def pixels(self) -> MotionFrame | None:
        """The last frame's motion image, prepared."""
        return self.prepared(self.image)


@dataclass(frozen=True)
class _Levels:
    cut: float  # a change beyond this (cosine distance, motion discounted) is a shot change
    start: float  # a step beyond this opens a candidate; the look-ahead must stay within it
    rate: float  # the shot's usual motion per frame, as a chord length

    def ordinary(self, d1: float) -> float:
        """The chord length of a frame-to-frame step if it looks like the shot's usual motion (at
        most _ORDINARY times it), else 0: only such steps are discounted from a change."""
        c = _chord(d1)
        return c if c <= _ORDINARY * self.rate else 0.0

    def discount(self, steps: list[float]) -> list[float]:
        """Running totals of `ordinary` over consecutive frame-to-frame distances, at most the shot's
        usual motion per frame times the number of frames: noise does not add up, drift does."""
        return [min(total, self.rate * n) for n, total in enumerate(accumulate(map(self.ordinary, steps)), 1)]

    @staticmethod
    def excess(chord: float, discount: float) -> float:
        """Cosine distance of a change, less the part that ordinary motion explains. So a slow
        drift never adds up to a shot change, while a jump, or a fade through a still black
        frame, keeps its full size."""
        c = max(chord - discount, 0.0)
        return c * c / 2.0


class SceneChangeDetector(Processor[SceneChangeSettings]):
    """Per-stream adaptive shot-change detector. Feed each stream's records in order.

    Cost: every frame's thumbnail is decoded small (its grey motion image); whether its pixels
    follow the previous frame's (two FFTs and a correlation, ~1 ms) is worked out only for a frame
    that becomes a step of a candidate change, or that a snapshot saves while a later change could
    still be made of it. Most frames are neither (bench/scenecut.py: ~2.2-2.9 CPU-ms a frame at
    ViT-S/16 and 2-5 fps, from ~3.3-4.0 when every frame was aligned; the same events)."""

    name = "scene_change"

    def __init__(self, settings: SceneChangeSettings) -> None:
        super().__init__(settings)
        self._streams: dict[str, _StreamState] = {}
        self._projections: dict[int, np.ndarray | None] = {}

    # --- thresholds ---------------------------------------------------------------------------

    def threshold(self, distances: deque[float] | list[float], s: SceneChangeSettings) -> float:
        """The distance above which a change is a shot change, given the shot's recent distances and
        the stream's settings (`settings_for`: a stream's overrides, not the defaults)."""
        if len(distances) < 2:
            return max(s.min_distance, 2 * s.min_distance)
        d = np.fromiter(distances, dtype=np.float64)
        med = median(d)
        return max(s.min_distance, med + s.sensitivity * _spread(d, med))

    def _levels(self, st: _StreamState, s: SceneChangeSettings, lag: int) -> _Levels:
        """Thresholds for the current shot. Until a shot has _MIN_SAMPLES distances of its own, the
        stricter of its own few and those of the shots before it apply."""
        own = self._levels_of(
            list(st.near)[max(len(st.near) - st.shot_near, 0) :],
            list(st.far)[max(len(st.far) - st.shot_far, 0) :],
            s,
            lag,
        )
        if st.shot_near >= _MIN_SAMPLES:
            return own
        prior = self._levels_of(list(st.near), list(st.far), s, lag)
        if st.shot_near == 0:
            return prior
        return _Levels(max(own.cut, prior.cut), max(own.start, prior.start), max(own.rate, prior.rate))

    def _levels_of(self, near: list[float], far: list[float], s: SceneChangeSettings, lag: int) -> _Levels:
        if not near:
            thr = self.threshold(near, s)
            return _Levels(thr, _START_RATIO * thr, 0.0)
        d = np.asarray(near, dtype=np.float64)
        med = median(d)
        spread = _spread(d, med)
        cut = max(s.min_distance, med + s.sensitivity * spread)
        start = max(_START_RATIO * s.min_distance, med + _START_RATIO * s.sensitivity * spread)
        # Motion per frame: measured over `lag` frames when possible (noise does not add up, drift does).
        rate = _chord(median(np.asarray(far, dtype=np.float64))) / lag if far else _chord(med)
        return _Levels(cut, start, rate)

    # --- processing ---------------------------------------------------------------------------

    def process(self, record: FrameEmbedding) -> list[Event]:
        s = self.settings_for(record.stream)
        st = self._streams.get(record.stream)
        if st is None:
            st = self._streams[record.stream] = _StreamState(near=deque(maxlen=s.window), far=deque(maxlen=s.window))
        elif st.near.maxlen != s.window:  # the window was reconfigured for this stream
            st.near, st.far = deque(st.near, maxlen=s.window), deque(st.far, maxlen=s.window)
        st.model = record.model
        if st.shot_start is None:
            st.shot_start = record.pts
        div = patch_diversity(record.patches_f32, unit=record.unit_patches)
        frame = _Frame(record.seq, record.pts, record.ts, global_vector(record), div=div, cut_at=_cut_at(record))
        lag, ahead = self._frames(st, s)
        prev = st.buf[-1] if st.buf else None
        d1 = frame.d1 = _cos(frame.g, prev.g) if prev is not None else 0.0
        image = frame_motion_image(record) if min(s.motion_similarity, s.relit_similarity) <= 1 else None
        if prev is not None:  # worked out when it is read (most frames never are: the pixels' FFTs cost)
            frame.motion, frame.before, frame.after, frame.dt = None, st.image, image, self._dt(st)
        frame.image = None if image is None else image.astype(np.uint8)
        st.image = image
        if st.cand is not None:
            c = st.cand
            c.steps.append(
                _Step(
                    frame.seq,
                    frame.pts,
                    frame.ts,
                    _chord(_cos(frame.g, c.anchor.g)),
                    d1,
                    frame.div,
                    self._motion_of(st, frame, s),
                    frame.cut_at,
                )
            )
        elif prev is not None:
            levels = self._levels(st, s, lag)
            # This picture's frames, oldest first.
            mine = [f for f in (*st.past, *st.buf) if f.seq >= st.floor_seq and not f.hidden]
            back = mine[-lag:]  # its last `lag` frames
            slow = 0.0
            if d1 > levels.start:
                self._open(st, s, prev, [], frame, mine[:-1])
            elif (
                len(back) >= 2
                and (
                    slow := levels.excess(
                        _chord(_cos(frame.g, back[0].g)), levels.discount([f.d1 for f in back[1:]] + [d1])[-1]
                    )
                )
                > levels.cut
            ):
                # A slow change (a dissolve or fade): it starts after the newest frame it is already
                # a shot change from.
                k = self._last_before(levels, back, frame)
                self._open(st, s, back[k], back[k + 1 :], frame, mine[: len(mine) - len(back) + k])
            else:
                st.near.append(d1)
                st.shot_near += 1
                # Half way to a slow change (maybe the start of a dissolve) is not the shot's usual
                # motion: counting it would raise the motion discount and hide the dissolve.
                if len(back) == lag and slow <= levels.start:
                    st.far.append(_cos(frame.g, back[0].g))
                    st.shot_far += 1
        self._push(st, frame, lag, ahead)
        if st.cand is None:
            self._refresh_key(st, record, lag)
            return []
        return self._advance(record.stream, st, s, record, lag, ahead)

    def flush(self, stream: str) -> list[Event]:
        """End of stream: decide an open candidate with the look-ahead that exists (the same-scene
        check needs a frame after the transition, so it is skipped here)."""
        st = self._streams.get(stream)
        if st is None or st.cand is None:
            return []
        s = self.settings_for(stream)
        lag, ahead = self._frames(st, s)
        return self._advance(stream, st, s, None, lag, ahead)

    def _frames(self, st: _StreamState, s: SceneChangeSettings) -> tuple[int, int]:
        """(`gradual_s`, `settle_s`) in frames at the stream's sampling rate, at least one each."""
        dt = self._dt(st)
        lag = min(max(round(s.gradual_s / dt), 1), _MAX_BUFFER - 1)
        ahead = min(max(round(s.settle_s / dt) - 1, 1), _MAX_BUFFER - 1)  # frames shown for settle_s with e
        return lag, ahead

    @staticmethod
    def _last_before(levels: _Levels, back: list[_Frame], frame: _Frame) -> int:
        """Index in `back` of the newest frame that `frame` has changed from by more than the cut
        level (after discounting ordinary motion): where a slow change began. `back[0]` is one."""
        steps = [f.d1 for f in back[1:]] + [frame.d1]
        for k in range(len(back) - 1, 0, -1):
            if levels.excess(_chord(_cos(frame.g, back[k].g)), levels.discount(steps[k:])[-1]) > levels.cut:
                return k
        return 0

    def _motion_of(self, st: _StreamState, f: _Frame, s: SceneChangeSettings) -> int:
        """`f.motion`, worked out from the images it kept when it is not known yet."""
        if f.motion is None:
            f.motion = self._motion(st.prepared(f.before), st.prepared(f.after), s, f.dt)
            f.before = f.after = None
        return f.motion

    @staticmethod
    def _motion(before: MotionFrame | None, after: MotionFrame | None, s: SceneChangeSettings, dt: float) -> int:
        """How a frame's pixels follow the previous frame's: the same view (perhaps a little
        moved), translated by a camera move, or neither (a new picture, a blend, no thumbnail)."""
        if before is None or after is None:
            return _UNRELATED
        m = align(before, after)
        if m.similarity < s.motion_similarity:
            return _UNRELATED
        return _MOVED if m.shift >= _MIN_SPEED * dt and m.similarity - m.still >= _SHIFT_GAIN else _STILL

    @staticmethod
    def _dt(st: _StreamState) -> float:
        """The stream's frame interval: the median gap of the buffered frames."""
        pts = [f.pts for f in st.buf]
        gaps = [b - a for a, b in zip(pts, pts[1:], strict=False) if b > a]
        return median(np.asarray(gaps, dtype=np.float64)) if gaps else _DEFAULT_DT

    def _push(self, st: _StreamState, frame: _Frame, lag: int, ahead: int) -> None:
        st.buf.append(frame)
        dt = self._dt(st)
        keep = min(max(lag, ahead, round(_MEMORY_S / dt), 4) + 1, _MAX_BUFFER)
        # Motion images for the relit check: a cut's anchor is the last frame; a slow change's is one
        # of the last `lag`, which is compared by the nearest image at or before it (the old
        # picture all the same): one in _IMAGE_STRIDE of those keeps its image, so a snapshot
        # holds a few images whatever the frame rate.
        stride = max(1, lag // _IMAGE_STRIDE)
        for f in list(st.buf)[:-2]:
            if f.image is not None and (f.seq % stride or f.seq < frame.seq - lag - stride):
                f.image = None
        while len(st.buf) > keep:
            old = st.buf.popleft()
            if not st.past or old.pts - st.past[-1].pts >= _MEMORY_S / _OLD_FRAMES - 1e-6:
                st.past.append(old)
        # A slow change's anchor is up to `lag` frames back; its old picture goes _MEMORY_S further.
        while st.past and st.past[0].pts < frame.pts - lag * dt - _MEMORY_S:
            st.past.popleft()

    def _open(
        self,
        st: _StreamState,
        s: SceneChangeSettings,
        anchor: _Frame,
        between: list[_Frame],
        frame: _Frame,
        old: list[_Frame],
    ) -> None:
        """Open a candidate transition after `anchor`; `between` are frames already seen since, `old`
        frames of the same picture before the anchor."""
        keys = [seq for seq, _ in st.keys if seq <= anchor.seq]  # keys are only renewed between candidates
        # The old picture as it was up to _MEMORY_S before the anchor (at most _OLD_FRAMES of it, the
        # newest first kept): an object that crossed the view, or a flash, may have started before
        # the anchor, and the picture that comes back is the one from before it.
        blank = min(_BLANK_DIVERSITY, _BLANK_RATIO * anchor.div)
        old = [f for f in old if f.pts >= anchor.pts - _MEMORY_S and f.div >= blank]
        step = max(math.ceil(len(old) / _OLD_FRAMES), 1)
        image = next((f.image for f in reversed(st.buf) if f.seq <= anchor.seq and f.image is not None), None)
        c = _Candidate(anchor, keys, old=[f.g for f in old[::-1][::step]], anchor_image=image)
        prev = anchor
        for f in [*between, frame]:
            chord = _chord(_cos(f.g, anchor.g))
            c.steps.append(
                _Step(f.seq, f.pts, f.ts, chord, _cos(f.g, prev.g), f.div, self._motion_of(st, f, s), f.cut_at)
            )
            prev = f
        st.cand = c

    def _advance(
        self,
        stream: str,
        st: _StreamState,
        s: SceneChangeSettings,
        record: FrameEmbedding | None,
        lag: int,
        ahead: int,
    ) -> list[Event]:
        """Close the candidate once its new picture has settled (or the stream ended: `record` is
        None), with an event if it is a shot change."""
        c = st.cand
        assert c is not None
        final = record is None
        lv = self._levels(st, s, lag)
        g_of = {f.seq: f.g for f in st.buf}
        disc = lv.discount([x.d1 for x in c.steps])  # disc[j]: ordinary motion from the anchor to step j
        size = [lv.excess(x.chord, disc[j]) for j, x in enumerate(c.steps)]
        level = [lv.cut * (_JUMP_CUT_SHARE if _one_step_seen(x) else 1.0) for x in c.steps]
        over = [x > level[j] for j, x in enumerate(size)]  # beyond the cut level
        blank = min(_BLANK_DIVERSITY, _BLANK_RATIO * c.anchor.div)

        def back(j: int) -> bool:  # step j shows the old picture again: well within the cut level, and
            x = c.steps[j]  # not just a little less changed than the change it follows
            limit = min(lv.cut, _BACK_RATIO * max(size[: j + 1]))
            return x.seq in g_of and x.div >= blank and lv.excess(self._nearest(c, x, g_of), 0.0) <= limit

        # The old picture back for two frames after a change (a flash or a crossing object is over)
        # ends the candidate at once, whatever comes next.
        for i in range(c.checked, len(c.steps) - 1):
            if any(over[: i + 1]) and back(i) and back(i + 1):
                return self._close(stream, st, s, record, i, 0.0, lv.cut, back=True)
        # A new picture must hold for the look-ahead. Each step is tried once as the end of the
        # transition, when its look-ahead is complete (at the end of the stream: with what there is).
        last = len(c.steps) - 1 if final else len(c.steps) - 1 - ahead
        while c.checked <= last:
            i = c.checked
            c.checked += 1
            e, after = c.steps[i], c.steps[i + 1 : i + 1 + ahead]
            if not any(over):
                self._close_quiet(st)  # nothing beyond the shot's usual motion happened
                return []
            if not any(over[: i + 1]):
                continue  # a slow change that has not got far yet: the new picture is still to come
            if any(x.div < blank for x in (e, *after)) or e.seq not in g_of:
                continue  # fading to, holding or leaving black (or white): not the new picture yet
            # How far the new picture is from the old one (from the nearest of its last frames).
            change = lv.excess(self._nearest(c, e, g_of), disc[i])
            settle = max(lv.cut, _SETTLE_RATIO * change)
            ge = g_of[e.seq]
            moves = [lv.excess(_chord(_cos(ge, g_of[x.seq])), disc[i + 1 + j] - disc[i]) for j, x in enumerate(after)]
            if all(m <= settle for m in moves) or self._restless(ge, after, g_of, change):
                return self._close(stream, st, s, record, i, change, min(level[: i + 1]))
        if final or c.steps[-1].pts - c.anchor.pts > s.max_transition_s + s.settle_s:
            self._close(stream, st, s, record, None, 0.0, lv.cut)  # never settled: motion, no event
        return []

    @staticmethod
    def _restless(ge: np.ndarray, after: list[_Step], g_of: dict[int, np.ndarray], change: float) -> bool:
        """The new picture (global vector `ge`) holds, but moves more from frame to frame than the
        old one did, so it never settles by the old shot's measure: its look-ahead frames stay
        within about their own step size of it (noise does not add up; a transition still under way
        would) and the change is far beyond that noise."""
        if len(after) < 2 or any(x.seq not in g_of for x in after):
            return False
        steps = [_chord(x.d1) for x in after]
        noise = median(np.asarray(steps, dtype=np.float64))
        spread = max(_chord(_cos(ge, g_of[x.seq])) for x in after)
        return spread <= _RESTLESS_SPREAD * noise and _chord(change) >= _RESTLESS_CHANGE * max(spread, noise)

    @staticmethod
    def _nearest(c: _Candidate, x: _Step, g_of: dict[int, np.ndarray]) -> float:
        """Chord distance from step `x` to the old picture: to the nearest of its last frames, so a
        shot that wobbles, or an object that had started to cross before the anchor, is not taken
        for a new picture."""
        return min([x.chord, *(_chord(_cos(o, g_of[x.seq])) for o in c.old)])

    @staticmethod
    def _change_time(
        anchor: _Frame, steps: list[_Step], g_of: dict[int, np.ndarray], blank: float
    ) -> tuple[_Step, bool, float, float]:
        """When a change happened, from the anchor to the new picture (`steps[-1]`): the frame that
        names it, whether it was one step, and its time (pts, ts). Each frame's progress is how much
        nearer it is to the new picture than to the old one; frames far from both (a flash, a blank
        frame, a short shot in between) are set aside. The change happens between the last frame
        before it and the first frame from which on the picture stays past half way: when they are
        neighbours, where the progress crosses half way between them (a cut: half way between its
        two frames, however early the candidate opened or late the new shot settled, and whatever
        flash came before or after it), else at the middle of what lies between them (a fade's blank
        frames, a dissolve's blends)."""
        e = steps[-1]
        ge = g_of.get(e.seq)
        progress: list[float] = []
        aside: list[bool] = []
        distance_to_new: list[float] = []
        for x in steps:
            a = x.chord
            b = _chord(_cos(g_of[x.seq], ge)) if ge is not None and x.seq in g_of else max(e.chord - a, 0.0)
            distance_to_new.append(b)
            progress.append(a / (a + b) if a + b > 0 else 1.0)
            aside.append(x.div < blank or min(a, b) > e.chord * _ASIDE_SHARE)
        # A fade: blank frames between a frame that is not yet the new picture and one that is not
        # the old picture any more (a flash is neither: the same picture is on both sides of it).
        near = _NEAR_SHARE * e.chord
        runs = [k for k in range(len(steps)) if steps[k].div < blank and (k == 0 or steps[k - 1].div >= blank)]
        for k0 in reversed(runs):
            k1 = next((k for k in range(k0, len(steps)) if steps[k].div >= blank), len(steps) - 1)
            was_new = k0 > 0 and distance_to_new[k0 - 1] <= near
            is_old = steps[k1].chord <= near
            if not was_new and not is_old:
                return _middle(steps[k0 : max(k1, k0 + 1)])
        kept = [k for k in range(len(steps)) if not aside[k]] or [len(steps) - 1]
        # The first kept frame from which every kept frame is past half way.
        at = len(kept) - 1
        while at > 0 and progress[kept[at - 1]] >= 0.5:
            at -= 1
        after = kept[at]
        before = kept[at - 1] if at > 0 else -1  # -1: the anchor
        if after - before > 1:  # something in between: its middle
            return _middle(steps[before + 1 : after])
        p0 = progress[before] if before >= 0 else 0.0
        gain = progress[after] - p0
        prev: _Frame | _Step = steps[before] if before >= 0 else anchor
        x = steps[after]
        if x.cut_at is not None and prev.pts < x.cut_at <= x.pts:  # the decoder saw the one step in between
            share = (x.cut_at - prev.pts) / (x.pts - prev.pts)
        elif gain >= _CUT_GAIN:  # a cut no frame shows: half way (at most half an interval off)
            share = 0.5
        else:  # where the progress crosses half way, assuming it grows evenly between the two frames
            share = min(max((0.5 - p0) / gain, 0.0), 1.0) if gain > 0 else 1.0
        return x, gain >= _CUT_GAIN, prev.pts + share * (x.pts - prev.pts), prev.ts + share * (x.ts - prev.ts)

    def _close_quiet(self, st: _StreamState) -> None:
        """The candidate was noise: its frames are ordinary frames of the shot."""
        c = st.cand
        assert c is not None
        st.cand = None
        for x in c.steps:
            st.near.append(x.d1)
        st.shot_near += len(c.steps)

    def _close(
        self,
        stream: str,
        st: _StreamState,
        s: SceneChangeSettings,
        record: FrameEmbedding | None,
        end: int | None,
        change: float,
        cut: float,
        back: bool = False,
    ) -> list[Event]:
        """Close a candidate: with an event if the change is a shot change. `back`: the old picture
        came back after a change (the frames in between are not compared with later ones)."""
        c = st.cand
        assert c is not None
        st.cand = None
        if back:  # the old picture came back: what passed in between is never compared again
            assert end is not None
            for f in (*st.past, *st.buf):
                f.hidden = f.hidden or c.anchor.seq < f.seq < c.steps[end].seq
        elif end is None or change > cut:  # the picture changed (maybe the same scene moved)
            st.floor_seq = c.steps[-1 if end is None else end].seq  # never compare across it
        events: list[Event] = []
        if end is not None and change > cut:
            e = c.steps[end]
            g_of = {f.seq: f.g for f in (*st.past, *st.buf)}
            mid, one_step, t, ts = self._change_time(
                c.anchor, c.steps[: end + 1], g_of, min(_BLANK_DIVERSITY, _BLANK_RATIO * c.anchor.div)
            )
            similarity: float | None = None
            keys = [p for seq, p in st.keys if seq in c.keys]
            if keys and record is not None and s.same_scene_similarity <= 1:
                grid = self._patch_grid(record)
                similarity = best_scene_similarity(keys, grid)
            same_scene = (
                similarity is not None
                and similarity >= s.same_scene_similarity
                and not self._pixels_disagree(c, st, record)
            )
            camera_moved = _camera_moved(c.steps[: end + 1])
            long_enough = st.shot_start is None or t - st.shot_start >= s.min_shot_s
            relit = not same_scene and not camera_moved and self._relit(c, st, s, record)
            if not same_scene and not camera_moved and not relit and long_enough:
                details: dict[str, Any] = {
                    "kind": "cut" if one_step else "gradual",
                    "distance": change,
                    "threshold": cut,
                    "model": st.model,
                }
                if similarity is not None:
                    details["scene_similarity"] = similarity
                events.append(
                    Event(
                        id=event_id(stream, self.name, mid.seq),
                        type="scene_change",
                        stream=stream,
                        t=t,
                        t_start=c.anchor.pts,
                        t_end=e.pts,
                        ts=ts,
                        score=change,
                        frames=(c.anchor.seq, e.seq),
                        details=details,
                    )
                )
                st.shot_start = e.pts
                if record is not None:  # a new scene: forget the old one's patch grids
                    st.keys, st.since_key = [(record.seq, self._patch_grid(record))], 0
                # The new shot builds its own statistics, from its settled frames on.
                st.shot_near, st.shot_far = 0, 0
                for x in c.steps[end + 1 :]:
                    st.near.append(x.d1)
                    st.shot_near += 1
                return events
        # Not a shot change (the old picture came back, the same scene moved, or too soon after the
        # last one): the frames belong to the shot.
        for x in c.steps:
            st.near.append(x.d1)
        st.shot_near += len(c.steps)
        return events

    @staticmethod
    def _pixels_disagree(c: _Candidate, st: _StreamState, record: FrameEmbedding | None) -> bool:
        """The thumbnails say the new picture is not the old one moved: the settled frame's detail
        matches the anchor's at no shift by _SAME_SCENE_PIXELS (a cut between two places that
        random features see alike: two streets, two fields). False without both thumbnails."""
        anchor = c.anchor_pixels()
        if record is None or anchor is None or st.pixels is None:
            return False
        return align(anchor, st.pixels).similarity < _SAME_SCENE_PIXELS

    @staticmethod
    def _relit(c: _Candidate, st: _StreamState, s: SceneChangeSettings, record: FrameEmbedding | None) -> bool:
        """The new picture is the old one under other light: the settled frame's pixels (the
        newest, `st.pixels`) match the anchor's detail at a small shift by `relit_similarity`,
        with about as much detail (a dissolve half way to a plain picture matches, with little).
        Skipped without both thumbnails, and at the end of the stream (no settled frame)."""
        if record is None or c.anchor_image is None or st.pixels is None or s.relit_similarity > 1:
            return False
        anchor = c.anchor_pixels()
        assert anchor is not None
        r = relighting(anchor, st.pixels)
        return r.similarity >= s.relit_similarity and _RELIT_DETAIL[0] <= r.detail_ratio <= _RELIT_DETAIL[1]

    def _refresh_key(self, st: _StreamState, record: FrameEmbedding, lag: int) -> None:
        """Keep two patch grids of the current picture, the older at least `lag` frames older, so an
        anchor up to `lag` frames back always has one from before it."""
        st.since_key += 1
        if not st.keys or st.since_key >= lag:
            st.keys = [*st.keys[-1:], (record.seq, self._patch_grid(record))]
            st.since_key = 0

    def _patch_grid(self, record: FrameEmbedding) -> np.ndarray:
        """Unit patch vectors, projected to at most _PATCH_DIMS dims (seeded, so the same after a
        restart) and rounded to fp16 (so a snapshot holds exactly what is used)."""
        p: np.ndarray = record.patches_f32  # read-only, shared: projected or copied before dividing
        d = p.shape[-1]
        if d not in self._projections:
            if d <= _PATCH_DIMS:
                self._projections[d] = None
            else:
                rng = np.random.default_rng(d)
                gauss = rng.standard_normal((d, _PATCH_DIMS)) / math.sqrt(_PATCH_DIMS)
                self._projections[d] = gauss.astype(np.float32)
        proj = self._projections[d]
        p = rows_matmul(p, proj) if proj is not None else p.copy()
        p /= np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), 1e-12)
        return round_half(p)

    # --- state --------------------------------------------------------------------------------

    def snapshot(self, stream: str) -> dict[str, Any]:
        """The stream's state as JSON-ready values; vectors are saved exactly (`state_codec`; about
        (gradual_s x fps + 8) x 3 KB of frames for ViT-S, two 25 KB patch grids, up to seven 80 px
        grey images for the relit check and the motion images of the last gradual_s x fps frames
        (`_unaligned`), 6 KB each: ~385 KB at 10 fps, 110-200 KB at 2 fps in bench/hops.py)."""
        st = self._streams.get(stream)
        if st is None:
            return {}
        c = st.cand
        return {
            "version": _STATE_VERSION,
            "buf": _frame_rows(st.buf),
            "buf_g": _rows([f.g for f in st.buf], "<f4"),
            "buf_images": [_image(f.image) for f in st.buf],
            "past": _frame_rows(st.past),
            "past_g": _rows([f.g for f in st.past], "<f4"),
            "near": list(st.near),
            "far": list(st.far),
            "shot_near": st.shot_near,
            "shot_far": st.shot_far,
            "shot_start": st.shot_start,
            "floor_seq": st.floor_seq,
            "keys": [[seq, encode_array(p, "<f2")] for seq, p in st.keys],
            "since_key": st.since_key,
            "model": st.model,
            "pixels": None if st.image is None else encode_array(st.image, "|u1"),
            "unaligned": _unaligned(st, self._frames(st, self.settings_for(stream))[0]),
            "cand": None
            if c is None
            else {
                "anchor": [c.anchor.seq, c.anchor.pts, c.anchor.ts, c.anchor.d1, c.anchor.div],
                "anchor_g": _rows([c.anchor.g], "<f4"),
                "keys": c.keys,
                "steps": [[x.seq, x.pts, x.ts, x.chord, x.d1, x.div, x.motion, x.cut_at] for x in c.steps],
                "checked": c.checked,
                "old": _rows(c.old, "<f4"),
                "anchor_image": _image(c.anchor_image),
            },
        }

    def restore(self, stream: str, state: dict[str, Any]) -> None:
        if not state:
            self._streams.pop(stream, None)
            return
        window = self.settings_for(stream).window
        if state.get("version") not in (2, 3, 4, 5, 6, _STATE_VERSION):  # the one-frame state of the first release
            buf: deque[_Frame] = deque()
            if state.get("prev") is not None:
                g = np.asarray(state["prev"], np.float32)
                buf.append(_Frame(int(state["prev_seq"]), float(state["prev_pts"]), 0.0, g))
            near = deque((float(x) for x in state.get("distances", [])), maxlen=window)
            self._streams[stream] = _StreamState(
                buf=buf, near=near, far=deque(maxlen=window), shot_near=len(near), shot_start=state.get("shot_start")
            )
            return
        # Arrays are dicts since version 5; before, bare strings with their shape or count beside them.
        cand = None
        if state["cand"] is not None:
            cs = state["cand"]
            q, p, t, d, v = cs["anchor"]
            old = cs["old"]
            cand = _Candidate(
                anchor=_Frame(int(q), float(p), float(t), _read_rows(cs["anchor_g"], 1)[0], float(d), float(v)),
                keys=[int(k) for k in cs["keys"]],
                steps=[_step_from(x) for x in cs["steps"]],
                checked=int(cs["checked"]),
                old=list(_read_rows(old) if isinstance(old, dict) else _read_rows(old[1], int(old[0]))),
                anchor_image=_read_image(cs.get("anchor_image")),
            )
        pixels = state.get("pixels")  # version 2 had none
        image = None if pixels is None else _read_grid([pixels] if isinstance(pixels, dict) else pixels, np.uint8)
        buf = deque(_frames_from(state["buf"], state["buf_g"]))
        for f, saved in zip(buf, state.get("buf_images") or [], strict=False):  # saved since relit checks
            f.image = _read_image(saved)
        past = deque(_frames_from(state.get("past", []), state.get("past_g", "")), maxlen=_OLD_FRAMES + 1)
        _restore_unaligned([*past, *buf], state.get("unaligned"))
        self._streams[stream] = _StreamState(
            buf=buf,
            past=past,
            near=deque((float(x) for x in state["near"]), maxlen=window),
            far=deque((float(x) for x in state["far"]), maxlen=window),
            shot_near=int(state["shot_near"]),
            shot_far=int(state["shot_far"]),
            shot_start=state["shot_start"],
            floor_seq=int(state["floor_seq"]),
            keys=[(int(k[0]), _read_grid(k[1:], np.float16)) for k in state["keys"]],
            since_key=int(state["since_key"]),
            cand=cand,
            model=str(state["model"]),
            image=None if image is None else image.astype(np.float32),
        )


def _unaligned(st: _StreamState, lag: int) -> dict[str, Any]:
    """The frames a later candidate can take as steps (`back` in `process`: the current picture's
    last `lag`) whose motion was never needed yet, with what it is worked out from: their frame
    interval and their own and the previous frame's motion images, each image saved once however
    many frames share it. A restored stream works it out when it is needed, as the saved one would
    have, and a snapshot aligns nothing (version 6 aligned these frames at every save: ~1 ms each).
    Older frames whose motion was never needed are saved as unrelated: one is read again only if
    newer frames are hidden later (a passing disturbance) or the frame rate drops, and then a
    restored stream does not take that step for camera motion."""
    images: list[np.ndarray] = []
    index: dict[int, int] = {}

    def ref(image: np.ndarray) -> int:
        if id(image) not in index:
            index[id(image)] = len(images)
            images.append(image)
        return index[id(image)]

    mine = [f for f in (*st.past, *st.buf) if f.seq >= st.floor_seq and not f.hidden][-lag:]
    frames = [
        [f.seq, f.dt, ref(f.before), ref(f.after)]
        for f in mine
        if f.motion is None and f.before is not None and f.after is not None
    ]
    return {"images": [_grey(x) for x in images], "frames": frames}


def _grey(image: np.ndarray) -> dict[str, Any]:
    """A motion image saved exactly: a decoded thumbnail's grey levels are whole numbers (uint8)."""
    whole = bool(np.all((image >= 0) & (image <= 255) & (image == np.rint(image))))
    return encode_array(image, "|u1" if whole else "<f4")


def _restore_unaligned(frames: list[_Frame], saved: dict[str, Any] | None) -> None:
    """`_unaligned` back onto the restored frames (states before version 7 saved these frames'
    motion worked out, or as unrelated)."""
    if not saved:
        return
    images = [decode_array(x).astype(np.float32) for x in saved["images"]]
    by_seq = {f.seq: f for f in frames}
    for seq, dt, before, after in saved["frames"]:
        f = by_seq.get(int(seq))
        if f is not None:
            f.motion, f.before, f.after, f.dt = None, images[int(before)], images[int(after)], float(dt)


def _frame_rows(frames: Iterable[_Frame]) -> list[list[Any]]:
    """Frames as JSON rows; their global vectors are saved apart, as one array (`_rows`)."""
    return [
        [f.seq, f.pts, f.ts, f.d1, f.div, _UNRELATED if f.motion is None else f.motion, f.hidden, f.cut_at]
        for f in frames
    ]


def _frames_from(rows: list[list[Any]], data: dict[str, Any] | str) -> list[_Frame]:
    """`_frame_rows` back, with the saved vectors. Version 2 rows have no motion (_UNRELATED),
    version 3 rows no hidden flag, rows before version 6 no cut_at."""
    gs = _read_rows(data, len(rows))
    return [
        _Frame(
            int(x[0]),
            float(x[1]),
            float(x[2]),
            g,
            float(x[3]),
            float(x[4]),
            motion=int(x[5]) if len(x) > 5 else _UNRELATED,
            hidden=bool(x[6]) if len(x) > 6 else False,
            cut_at=_optional_float(x[7] if len(x) > 7 else None),
        )
        for x, g in zip(rows, gs, strict=True)
    ]


def _step_from(x: list[Any]) -> _Step:
    """A saved step row back (rows before version 6 have no cut_at, version 2 no motion)."""
    motion = int(x[6]) if len(x) > 6 else _UNRELATED
    cut_at = _optional_float(x[7] if len(x) > 7 else None)
    return _Step(int(x[0]), float(x[1]), float(x[2]), float(x[3]), float(x[4]), float(x[5]), motion, cut_at)


def _optional_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _one_step_seen(x: _Step) -> bool:
    """The decoder saw this step's change as one picture step, and its pixels do not follow the
    previous frame's (`_JUMP_CUT_SHARE`; without thumbnails, or with the pixel checks turned off,
    there is nothing to follow and the decoder's step is the one sign)."""
    return x.cut_at is not None and x.motion == _UNRELATED


def _cut_at(record: FrameEmbedding) -> float | None:
    """When the picture changed in one step since the last sample, as the decoder saw it (`Jump`)."""
    j = record.jump
    return j.t if j is not None and j.dominates(_JUMP_DOMINANCE) else None


def _image(image: np.ndarray | None) -> dict[str, Any] | None:
    return None if image is None else encode_array(image, "|u1")


def _read_image(saved: dict[str, Any] | None) -> np.ndarray | None:
    return None if saved is None else decode_array(saved).astype(np.uint8)


def _rows(arrays: Sequence[np.ndarray], dtype: str) -> dict[str, Any]:
    """Vectors of one length as one saved (n, D) array."""
    return encode_array(np.stack(arrays) if len(arrays) else np.zeros((0, 0)), dtype)


def _read_rows(value: dict[str, Any] | str, n: int = 0, dtype: type = np.float32) -> np.ndarray:
    """`_rows` back as an (n, D) float32 array; a bare string is `n` rows of `dtype` (versions 2 to 4)."""
    if isinstance(value, str):
        return decode_rows(value, dtype, n)
    return decode_array(value).astype(np.float32)


def _read_grid(saved: list[Any], dtype: type) -> np.ndarray:
    """A patch grid or an image back as float32: [array] (version 5) or [shape, bare string of `dtype`]."""
    if len(saved) == 1:
        return decode_array(saved[0]).astype(np.float32)
    shape, data = saved
    return decode_rows(data, dtype, 1).reshape(shape)

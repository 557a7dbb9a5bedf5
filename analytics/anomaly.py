"""Anomaly detection: a per-stream, position-aware model of normal on DINOv3 patch features.

A fixed camera sees the same place all day, so "normal" is a property of each part of the view:
a figure on the path it always takes is normal, the same figure on a lawn nobody crosses is not.
Per stream, a warm-up (or a period the user marks normal with `learn`) keeps, for every cell of
the patch grid, a coreset of the vectors that cell held; a frame is scored cell by cell against
what its own cell and the cells next to it (`REACH`) held. What makes that work through a day:

- **Photometric normalisation.** In these embeddings a change of light over the whole view
  (daylight, clouds, an exposure step, white balance) moves every patch vector much the same way.
  Each cell's vector is taken relative to the frame's coordinate-wise median patch vector
  (`centred_features`) before anything is compared, which takes that shared part away; the median
  ignores whatever covers less than half of the view, so an object does not move the other cells.
  What the cells still share is divided out per frame: a cell's distance, in its own normal level
  (a busy path varies far more than a blank wall), is divided by the frame's median one when that
  exceeds 1.
- **Following drift without learning anomalies.** Each cell also keeps the last `RECENT` vectors it
  held while it and its neighbours scored below `ADMIT`, so the model follows light that drifts
  beyond anything the warm-up saw, frame by frame, and never takes in a thing that stands out;
  a frame whose view changed teaches nothing. Slower, lasting change (a repainted wall) is merged
  into the cell coresets by the slow adaptation, as before.
- **Things that stay.** A cell that stands out from the cells around it is kept out of the recent
  memory even below the alarm level (`ADMIT_CELL`), and one that keeps standing out, unchanged, for
  `PERSIST` frames scores on its own calibrated level: a faint object left in a quiet part of the
  view alarms, though a figure passing a busy one in the warm-up set the level of single frames far
  higher, and a figure lingering at the end of its route does not (it changes pose).
- **Whole-view changes stay anomalies.** Besides the most unusual cell (`patch`), whole-frame
  scores: the `view` vector (the mean of the centred cells: what the frame holds beyond its median,
  which a covered lens or a turned camera changes and a change of light hardly does) against the
  warm-up's and recent frames', in its calibrated level over `VIEW_FACTOR`; the median cell's score
  over `COMMON_FACTOR` (every part of the view far from what it held); and the `global` vector
  (CLS + mean patch), which follows drifting light but flags a step longer than `GLOBAL_FOLLOW`
  (a light switched off, another scene), unless the thumbnail is the last frame's under one gain
  and offset (`photometric_step`: an exposure step, which it follows); and the share of the view
  whose thumbnail lost the detail it had in the warm-up (`view_detail`: a film, a smear or a hand
  over part of the lens, which untrained features hardly see). The frame score is the largest of
  them.

Levels are calibrated on the warm-up itself: each warm-up frame is scored as it would be live
(against the coresets without its own vectors, and the frames before it as its recent memory),
and the `quantile` of those scores is 1.0, so `threshold` means the same on every stream. An event
opens after `open_after` anomalous frames, is updated under the same id while they continue and
closes after `close_after` normal frames; for `cooldown_s` after that no new event opens *at the
same place*, while an anomaly elsewhere opens at once. A whole-view anomaly that begins while an
event at one place is open closes that event and opens its own.

    >>> det = AnomalyDetector(AnomalySettings())
    >>> for rec in records:                 # FrameEmbedding, in stream order
    ...     for event in det.process(rec):  # nothing during the warm-up
    ...         print(event.status, event.score, event.boxes)
    >>> det.learn("cam1", normal_records)   # "these frames are normal" (user-marked period)

Pure: no I/O. numpy only. The cells are kept in a random projection to `projection_dim` dims, so
`bank_size` full-size vectors' worth of memory holds D / projection_dim times as many; per frame,
one projection and (2 REACH + 1)^2 small products of each cell with its neighbours' vectors.
States saved by version 1 (a position-free bank) restore and keep being scored as version 1
scored them until the stream is reset or learns anew; so do version-2 models (no persistence score,
recent memory admitted by the frame level).
"""

from __future__ import annotations

import base64
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from dinostream.analytics.frame_motion import frame_motion_image, motion_image
from dinostream.analytics.median import median
from dinostream.analytics.patch_memory import (
    QuantisedBank,
    cell_coresets,
    cell_distance,
    centred_features,
    dequantise_rows,
    global_feature,
    greedy_coreset,
    knn_distance,
    neighbour_d2,
    neighbour_values,
    patch_features,
    quantise_rows,
)
from dinostream.analytics.processor import Processor
from dinostream.analytics.state_codec import decode_array, encode_array
from dinostream.analytics.view_detail import detail_blocks, lost_share, measurable, reference, textured
from dinostream.core.blas import rows_matmul
from dinostream.core.half import round_half
from dinostream.core.records import Box, Event, FrameEmbedding, Heatmap, event_id
from dinostream.core.settings import AnomalySettings

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)

KIND = "anomaly"
STATE_VERSION = 3
# A patch is compared with what its own cell and the cells up to this far (Chebyshev) held: an
# agent a little off its usual path, or a camera that shakes by a few pixels, stays normal; a
# thing two cells or more from anywhere it was seen is new there.
REACH = 1
# A warm-up keeps at most this many frames (evenly spread over it), each with its whole grid.
MAX_WARM_FRAMES = 48
# Leave-out calibration: a warm-up frame is scored without its own vectors and those of the frames
# up to this many after it.
LEAVE_OUT_GAP = 1
# A cell's normal level: this quantile of its leave-out distances over the warm-up...
CELL_LEVEL_QUANTILE = 0.9
# ... and at least this share of the median cell's (a cell that never changed still has noise).
CELL_LEVEL_FLOOR = 0.5
# Vectors each cell keeps of the recent past, and global vectors kept of recent frames.
RECENT = 2
RECENT_GLOBALS = 4
# A cell's vector joins its recent memory when its score, and its neighbours', are below this (in
# units of the patch level: no more unusual than the warm-up's most unusual frames), in a frame
# whose view score is below the threshold...
ADMIT = 1.0
# ... and when it stands out from the cells around it (`LOCAL`) by less than this, in its own normal
# level (the frame's common part divided out). The patch level is set by the most unusual cell of the
# warm-up's frames, often a figure at a place of its route the short warm-up saw once, many times a
# quiet cell's level: an object left in a quiet cell, too faint for that at once, was taken into the
# recent memory at its first frame and never scored again. Now it stays out and keeps scoring, while
# light that changed over a region (or while the view was covered, when nothing is followed) is
# followed as before: the cells around it changed too.
ADMIT_CELL = 2.0
# Cells are compared with the median of the LOCAL x LOCAL cells around them (edges repeated).
LOCAL = 5
# A cell that stands out from the cells around it in each of PERSIST frames in a row scores the least
# of those, in the calibrated level of such runs over the warm-up (at least PERSIST_FLOOR cell levels:
# a 20 s warm-up cannot show how far a quiet cell strays through a day): what moves (a figure on its
# route) stands out at a cell for a frame or two, a thing left there stays. So a faint object that
# never stands out as much as a passing figure at its busiest still alarms, within PERSIST frames.
PERSIST = 4
PERSIST_FLOOR = 2.0
# A frame counts towards a cell's run only where the cell moved less than this since the frame before
# (in its normal level, the common part divided out): a thing left there stays the same, a figure
# that lingers at the end of its route (two seconds at a cell) changes its pose every frame.
STATIC = 2.0
# The view score is divided by this: it watches for changes of the whole view (a covered lens, a
# turned camera), which are large; what an exposure step leaves in the view vector is not one.
VIEW_FACTOR = 2.0
# The median cell's score, in cell levels, is divided by this and is a whole-view score too: when
# every part of the view is far from anything it held, the view itself changed (a turned camera that
# shows a place much like the first, whose view and global vectors hardly move), while what a change
# of light leaves in the cells after centring stays under about 3 on the development families.
COMMON_FACTOR = 3.0
# The view vector is followed where it moved less than this (in view score), or where the cells
# moved with it (their median score above COMMON_ADMIT, in cell levels): a change of light moves
# both, a change of content that the cells hardly show (a dark lens over a dark scene) does not,
# and keeps scoring for as long as it lasts.
VIEW_ADMIT = 0.5
COMMON_ADMIT = 1.0
# The global vector follows drifting light from frame to frame, but never by a step longer than
# this (unit-vector distance): no change of light in a camera's day moves the whole frame's
# description that far at once (an exposure step of 10 % moves it about 0.3 in random-weight
# ViT-S/16 features, less in trained ones), a switched-off light, a covered lens or another scene
# does. The global score is the distance to the nearest known global vector over this.
GLOBAL_FOLLOW = 0.35
# ... unless the pixels say it was light: a global step longer than that is a change of exposure,
# white balance or daylight when the thumbnail, fitted to the last frame's by one gain and offset,
# differs from it by at most this share of its difference before the fit (a covered lens or another
# view is not one gain away). How far an exposure step moves the global vector depends on the step
# and the features (a 12 % step moves random-weight features past GLOBAL_FOLLOW); the pixels decide
# whatever its size. Then the global vector is followed instead of scored.
PHOTOMETRIC = 0.5
# A lens partly covered, smeared, fogged or sprayed takes the detail away from part of the view; the
# features of an untrained model hardly see that (a smeared half of the view scored as normal as any
# frame), the pixels do (`view_detail`). The share of the warm-up's textured blocks of the thumbnail
# that lost it is a whole-view score over the larger of DETAIL_FACTOR and DETAIL_MARGIN times the
# largest share any warm-up frame lost (figures in front of a block, a lamp switched off): at the
# default threshold a fifth of the view.
DETAIL_FACTOR = 0.15
DETAIL_MARGIN = 2.0
# Two patch anomalies farther apart than this (normalised frame units) are different anomalies: for
# `cooldown_s` after an event closes, only one at the same place (or a whole-view one after a
# whole-view one) is held back; and an unconfirmed anomalous frame followed by one elsewhere does
# not start the event (it starts with the second).
SAME_PLACE = 0.15
# Learned and adapted vectors join a memory only when their nearest vector there is farther than
# this share of the normal level: the rest are already known.
NOVEL_FRACTION = 0.5
# Version-1 models: a warm-up keeps at most this many times `bank_size` patch vectors.
WARMUP_VECTORS_PER_BANK_VECTOR = 8

PATCH, VIEW, GLOBAL = "patch", "view", "global"


# --- per-stream state -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FrameScore:
    """How unusual one frame is. `score` is in units of the calibrated normal level (1.0 = the
    `quantile` of the warm-up's leave-out scores); `patch_distances` is the raw per-cell distance."""

    seq: int
    score: float
    patch_score: float  # the most unusual cell / its normal level
    global_score: float  # global vector distance to the nearest known one / GLOBAL_FOLLOW (0 without use_global)
    source: str  # "patch", "view" or "global": which one gave `score`
    patch_distances: np.ndarray  # (gh', gw') float32
    heatmap: np.ndarray  # (gh', gw') in [0, 1]: 1 where a cell alone exceeds the threshold
    peak: tuple[float, float]  # normalised (x, y) centre of the most unusual cell
    boxes: tuple[Box, ...]  # the region around the peak, when the peak alone exceeds the threshold
    threshold: float
    # view vector distance / its normal level, over VIEW_FACTOR (0 without use_global; None: a version-1 model)
    view_score: float | None = None
    # share of the view's detail lost / its normal level (None: no thumbnails or a model without them)
    detail_score: float | None = None

    def details(self, record: FrameEmbedding) -> dict[str, Any]:
        out = {
            "frame_score": self.score,
            "patch_score": self.patch_score,
            "global_score": self.global_score,
            "threshold": self.threshold,
            "source": self.source,
            "peak": {"x": self.peak[0], "y": self.peak[1]},
            "seq": self.seq,
            "model": record.model,
            "untrained": record.untrained,
        }
        if self.view_score is not None:
            out["view_score"] = self.view_score
        if self.detail_score is not None:
            out["detail_score"] = self.detail_score
        return out


@dataclass
class _Warmup:
    """The warm-up's kept frames (every `every`-th, at most MAX_WARM_FRAMES): each one's cell
    vectors (projected by `proj`, centred) and global vector. At its end they become the cell
    coresets and the calibration."""

    target: int
    every: int
    proj: tuple[int, int]  # (dims, seed) of the random projection; (0, 0): none
    seen: int = 0
    patch_dim: int = 0  # the records' patch dimension (0 before the first frame)
    grids: list[np.ndarray] = field(default_factory=list)  # (gh, gw, cell dims) float16
    globals: list[np.ndarray] = field(default_factory=list)  # (2D,) float16
    details: list[np.ndarray] = field(default_factory=list)  # `detail_blocks` of the kept frames with a thumbnail


@dataclass
class _Model:
    """A stream's model of normal: `per_cell` vectors for each cell of the grid (rows cell-major),
    the global vectors, each cell's normal level, and the leave-out scores of the warm-up frames
    (the threshold is recomputed from them whenever `quantile` changes)."""

    memory: QuantisedBank  # centred cell vectors (not unit), in the random projection when `proj`
    grid: tuple[int, int]
    patch_dim: int  # the records' patch vector dimension
    proj: tuple[int, int]  # (dims, seed) of the random projection the cells are kept in; (0, 0): none
    gbank: QuantisedBank
    views: np.ndarray  # (T, D) float16: the warm-up frames' view vectors (see `view_vector`)
    cell_level: np.ndarray  # (gh, gw) float32
    cal_patch: np.ndarray
    cal_view: np.ndarray
    cal_global: np.ndarray
    # the warm-up's runs of PERSIST frames: each one's most unusual cell over the run; None for a model
    # saved by version 2, scored as version 2 scored it (no persistence, admission by the frame level)
    cal_persist: np.ndarray | None = None
    # the warm-up's thumbnail detail (`view_detail.reference`) and the lost share that scores 1.0;
    # None for a model made without thumbnails, or saved before the detail score
    detail_ref: np.ndarray | None = None
    detail_level: float = 0.0
    _detail_mask: np.ndarray | None = None
    _cells: tuple[np.ndarray, np.ndarray] | None = None
    _levels: dict[tuple[float, float], tuple[float, float, float, float]] = field(default_factory=dict)

    @property
    def per_cell(self) -> int:
        return len(self.memory) // (self.grid[0] * self.grid[1])

    @property
    def dims(self) -> tuple[int, int]:
        """(patch, global) vector dimensions of the records."""
        return self.patch_dim, int(self.gbank.q.shape[1])

    @property
    def cell_dim(self) -> int:
        """Dimension of the kept cell vectors."""
        return int(self.memory.q.shape[1])

    def cells(self) -> tuple[np.ndarray, np.ndarray]:
        """The memory as (gh, gw, per_cell, D) float32, and its squared norms as each cell sees them
        (`neighbour_d2`'s `cand_sq_nb`)."""
        if self._cells is None:
            v = self.memory.vectors.reshape(*self.grid, self.per_cell, -1)
            self._cells = (v, neighbour_values(np.einsum("ijkd,ijkd->ijk", v, v), REACH, np.inf))
        return self._cells

    def detail_mask(self) -> np.ndarray:
        """`view_detail.textured` of `detail_ref` (which must be set), computed once."""
        assert self.detail_ref is not None
        if self._detail_mask is None:
            self._detail_mask = textured(self.detail_ref)
        return self._detail_mask

    def set_memory(self, memory: QuantisedBank) -> None:
        self.memory, self._cells = memory, None

    def levels(self, s: AnomalySettings) -> tuple[float, float, float, float]:
        """Normal level of the patch, view, global and persistence scores: the calibration quantile,
        floored (the last 0.0 for a version-2 model, which has no persistence score)."""
        key = (s.quantile, s.min_distance)
        if key not in self._levels:
            self._levels[key] = (
                max(_quantile(self.cal_patch, s.quantile), 1e-6),
                max(_quantile(self.cal_view, s.quantile), 1e-6),
                max(_quantile(self.cal_global, s.quantile), s.min_distance),
                0.0 if self.cal_persist is None else max(_quantile(self.cal_persist, s.quantile), PERSIST_FLOOR),
            )
        return self._levels[key]


@dataclass
class _LegacyModel:
    """A model of normal saved by version 1 (position-free patch bank on uncentred vectors), scored
    as that version scored it until the stream is reset or learns anew."""

    bank: QuantisedBank
    gbank: QuantisedBank
    cal_patch: np.ndarray
    cal_global: np.ndarray

    @property
    def dims(self) -> tuple[int, int]:
        return int(self.bank.q.shape[1]), int(self.gbank.q.shape[1])

    def levels(self, s: AnomalySettings) -> tuple[float, float]:
        lp = _quantile(self.cal_patch, s.quantile)
        lg = _quantile(self.cal_global, s.quantile)
        return max(lp, s.min_distance), max(lg, s.min_distance)


def _quantile(x: np.ndarray, q: float) -> float:
    return float(np.quantile(x, q)) if x.size else 0.0


@dataclass
class _Recent:
    """What each cell looked like lately: its last RECENT admitted vectors (int8 rows with scales,
    a ring per cell), and the global vectors of the last RECENT_GLOBALS admitted frames."""

    q: np.ndarray  # (gh, gw, RECENT, D) int8
    scale: np.ndarray  # (gh, gw, RECENT) float32
    count: np.ndarray  # (gh, gw) int64: vectors admitted so far (the ring position)
    globals: np.ndarray  # (n <= RECENT_GLOBALS, 2D) float16, oldest first
    views: np.ndarray  # (n <= RECENT_GLOBALS, D) float16: view vectors of the frames the globals came from
    vectors: np.ndarray = field(init=False)  # dequantised (gh, gw, RECENT, D) float32
    sq: np.ndarray = field(init=False)  # their squared norms

    def __post_init__(self) -> None:
        self.vectors = dequantise_rows(self.q, self.scale, unit=False)
        self.sq = np.einsum("ijkd,ijkd->ijk", self.vectors, self.vectors)

    @classmethod
    def empty(cls, grid: tuple[int, int], dims: tuple[int, int]) -> _Recent:
        return cls(
            np.zeros((*grid, RECENT, dims[0]), np.int8),
            np.zeros((*grid, RECENT), np.float32),
            np.zeros(grid, np.int64),
            np.zeros((0, dims[1]), np.float16),
            np.zeros((0, dims[0]), np.float16),
        )

    def valid(self) -> np.ndarray:
        """(gh, gw, RECENT) bool: the slots that hold a vector."""
        return np.arange(RECENT)[None, None, :] < np.minimum(self.count, RECENT)[..., None]

    def admit(self, x: np.ndarray, ok: np.ndarray) -> None:
        """Put x[cell] (gh, gw, D) into the ring of every cell where `ok`."""
        ii, jj = np.nonzero(ok)
        if not len(ii):
            return
        slot = self.count[ii, jj] % RECENT
        q, scale = quantise_rows(x[ii, jj])
        self.q[ii, jj, slot], self.scale[ii, jj, slot] = q, scale
        v = dequantise_rows(q, scale, unit=False)
        self.vectors[ii, jj, slot] = v
        self.sq[ii, jj, slot] = np.einsum("nd,nd->n", v, v)
        self.count[ii, jj] += 1

    def admit_view(self, view: np.ndarray) -> None:
        self.views = np.concatenate([self.views, view[None].astype(np.float16)])[-RECENT_GLOBALS:]

    def admit_global(self, g: np.ndarray) -> None:
        self.globals = np.concatenate([self.globals, g[None].astype(np.float16)])[-RECENT_GLOBALS:]


@dataclass
class _Reservoir:
    """Candidate normal vectors waiting to be merged into the memory, with the cell and the seq they
    came from (cell -1 for a version-1 model's position-free bank)."""

    patches: np.ndarray  # (n, D) fp16
    patch_cell: np.ndarray  # (n,) int64, row-major cell index
    patch_seq: np.ndarray  # (n,) int64
    globals: np.ndarray  # (m, 2D) fp16
    global_seq: np.ndarray
    eligible: int = 0  # clearly normal frames seen; every adapt_every-th one contributes
    since_merge: int = 0
    last_hot: int | None = None  # seq of the last frame above the threshold

    @classmethod
    def empty(cls, dims: tuple[int, int]) -> _Reservoir:
        return cls(
            np.zeros((0, dims[0]), np.float16),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros((0, dims[1]), np.float16),
            np.zeros(0, np.int64),
        )

    def drop_from(self, seq: int) -> None:
        """Forget everything learned from frame `seq` on (they were too close to an anomaly)."""
        keep, gkeep = self.patch_seq < seq, self.global_seq < seq
        self.patches, self.patch_cell, self.patch_seq = self.patches[keep], self.patch_cell[keep], self.patch_seq[keep]
        self.globals, self.global_seq = self.globals[gkeep], self.global_seq[gkeep]


@dataclass
class _Occurrence:
    """An anomaly in progress: a candidate until `open_after` anomalous frames, then an event."""

    id: str
    start_seq: int
    t_start: float
    last_seq: int
    last_pts: float
    last_ts: float
    peak: dict[str, Any]  # score, seq, heatmap (dict), boxes (dicts), details of the peak frame
    hot: int = 0  # anomalous frames so far
    run: int = 0  # consecutive anomalous frames
    calm: int = 0  # consecutive normal frames since the last anomalous one
    announced: bool = False
    sent_pts: float = 0.0  # media time of the last open or update sent


def _occurrence_from(saved: dict[str, Any]) -> _Occurrence:
    """A saved occurrence. One saved before `update_every_s` sent an update with every anomalous
    frame: its last was sent at `last_pts`."""
    occ = _Occurrence(**saved)
    if "sent_pts" not in saved and occ.announced:
        occ.sent_pts = occ.last_pts
    return occ


@dataclass
class _Stream:
    warmup: _Warmup | None = None
    model: _Model | _LegacyModel | None = None
    recent: _Recent | None = None
    reservoir: _Reservoir | None = None
    occurrence: _Occurrence | None = None
    cooldown_until: float | None = None  # media time before which no new event opens at the same place
    # where the last event peaked: [x, y], or "view" for a whole-view one; None: everywhere (a v1 state)
    cooldown_place: list[float] | str | None = None
    # the last (up to PERSIST - 1) frames' cell scores in cell levels (gh, gw) float16, oldest first
    persist: np.ndarray | None = None
    prev: np.ndarray | None = None  # the last frame's centred cell vectors (gh, gw, cell dims), float16 values
    thumb: bytes = b""  # the last frame's thumbnail (JPEG), for `photometric_step`
    thumb_image: np.ndarray | None = None  # not saved: `thumb` decoded, when its frame's light was checked
    last: FrameScore | None = None  # not saved: only for callers that want every frame's score
    # not saved: the last frame's centred cell vectors, cell scores, whether its view and its global
    # vector may be followed, its view vector and its cells' scores above their surroundings (`_local`)
    last_cells: tuple[np.ndarray, np.ndarray, bool, bool, bool, np.ndarray, np.ndarray | None] | None = None


# --- the processor ------------------------------------------------------------------------------


class AnomalyDetector(Processor[AnomalySettings]):
    """Per-stream, position-aware anomaly detector. Feed each stream's records in order.

    Events: type "anomaly", one id per occurrence, status "open" -> "update"... -> "closed". Open
    and update carry the current frame's heatmap and box, closed carries the peak frame's; score
    is the highest frame score so far, `t_start` the first anomalous frame, `t_end` the last. An
    update is sent at most every `update_every_s` of media time (an anomaly that lasts, a camera
    turned away, would otherwise send one per frame for as long as it lasts).
    Cost: the warm-up's last frame builds the cell coresets and the calibration (well under a
    second on a CPU at the defaults); every other frame is (2 REACH + 1)^2 small products of each
    cell's vector with its neighbours' kept vectors.

    With `adapt`, two things follow normal change. Every frame, each cell that looks normal, with
    neighbours that do too, refreshes its recent memory (drifting light, from one frame to the
    next); a thing that stands out is never taken in, and a frame most of whose view is unusual
    teaches nothing. Slowly, frames scoring below `adapt_below` with no anomalous frame within
    `adapt_guard` frames on either side give `adapt_patches` vectors per `adapt_every` such frames,
    merged into the cell coresets every `adapt_interval` frames (a lasting change that creeps in).
    The threshold itself is never recalibrated by adaptation; `learn` and `reset` exist for that.
    """

    name = KIND

    def __init__(self, settings: AnomalySettings) -> None:
        super().__init__(settings)
        self._streams: dict[str, _Stream] = {}
        self._projections: dict[tuple[int, int, int], np.ndarray | None] = {}

    # --- public API ---------------------------------------------------------------------------

    def process(self, record: FrameEmbedding) -> list[Event]:
        st = self._streams.setdefault(record.stream, _Stream())
        s = self.settings_for(record.stream)
        st.last, st.last_cells = None, None
        if st.model is None:
            if st.warmup is None:
                if s.warmup_frames == 0:
                    return []  # waiting for learn()
                st.warmup = self._new_warmup(s.warmup_frames, s)
            self._warm(st, record, s)
            return []
        if isinstance(st.model, _LegacyModel):
            fs = self._score_legacy(st.model, record, s)
        else:
            fs = self._score(st, st.model, record, s)
        st.last = fs
        hot = fs.score > s.threshold
        events = self._lifecycle(st, record, fs, hot, s)
        self._adapt(st, record, fs, hot, s)
        return events

    def flush(self, stream: str) -> list[Event]:
        """Close the open event of a stream that ended."""
        st = self._streams.get(stream)
        if st is None or st.occurrence is None:
            return []
        occ, st.occurrence = st.occurrence, None
        if not occ.announced:
            return []
        return [self._event(stream, occ, "closed", ts=occ.last_ts)]

    def learn(self, stream: str, records: Sequence[FrameEmbedding], *, replace: bool = False) -> None:
        """Tell the detector these frames of `stream` are normal (a period the user marked).

        A stream without a model yet (never seen, still warming up, or `warmup_frames` = 0) and
        `replace=True` take them as the whole warm-up: the model and its calibration come from
        them (at least 2 frames). A stream with a model adds to each cell what its memory does
        not already cover and keeps its calibration, so frames like these stop being reported.
        No events are emitted.
        """
        recs = list(records)
        for r in recs:
            if r.stream != stream:
                raise ValueError(f"learn({stream!r}) got a record of stream {r.stream!r}")
        st = self._streams.setdefault(stream, _Stream())
        s = self.settings_for(stream)
        if replace or st.model is None:
            if len(recs) < 2:
                raise ValueError(f"learning a model of normal needs at least 2 frames, got {len(recs)}")
            st.model, st.recent, st.reservoir = None, None, None
            st.warmup = self._new_warmup(len(recs), s)
            for r in recs:
                self._warm(st, r, s)
            return
        if not recs:
            return
        model = st.model
        glob = np.stack([global_feature(r) for r in recs])
        if isinstance(model, _LegacyModel):
            self._check_legacy_dim(model, recs[0])
            cap = WARMUP_VECTORS_PER_BANK_VECTOR * s.bank_size
            per_frame = max(1, cap // len(recs))
            rows = [self._subsample(self._legacy_patches(r, s), per_frame, r.seq, s) for r in recs]
            self._merge_legacy(model, np.concatenate(rows), glob, s)
            return
        grids = np.stack([self._cells_of(model, r, s) for r in recs])
        cells = np.tile(np.arange(grids.shape[1] * grids.shape[2]), len(grids))
        self._merge(model, grids.reshape(-1, grids.shape[-1]), cells, glob, s)

    def reset(self, stream: str) -> list[Event]:
        """Forget the stream's model of normal; a new warm-up starts with its next frame (under the
        settings then in force). Returns the closing event of an anomaly still open."""
        events = self.flush(stream)
        self._streams.pop(stream, None)
        return events

    def last_score(self, stream: str) -> FrameScore | None:
        """The score of the stream's latest frame, or None while it warms up."""
        st = self._streams.get(stream)
        return None if st is None else st.last

    def ready(self, stream: str) -> bool:
        """Whether the stream has a model of normal (its warm-up is over)."""
        st = self._streams.get(stream)
        return st is not None and st.model is not None

    # --- state ----------------------------------------------------------------------------------

    def snapshot(self, stream: str) -> dict[str, Any]:
        """Cell memory and recent memory (int8 with per-row scales), calibration, reservoir and the
        open occurrence: about (bank_size x patch dims + (RECENT x cells + 2 x reservoir_size) x
        projection_dim) bytes x 4/3, under 1 MB for ViT-S/16 at the defaults. During a warm-up it
        holds the warm-up's projected grids (a few megabytes): a worker that cannot save that much
        repeats the warm-up after a restart."""
        st = self._streams.get(stream)
        if st is None:
            return {}
        out: dict[str, Any] = {
            "v": STATE_VERSION,
            "cooldown_until": st.cooldown_until,
            "cooldown_place": st.cooldown_place,
        }
        if st.warmup is not None:
            w = st.warmup
            out["warmup"] = {
                "target": w.target,
                "every": w.every,
                "proj": list(w.proj),
                "seen": w.seen,
                "patch_dim": w.patch_dim,
                "grids": [encode_array(g) for g in w.grids],
                "globals": [encode_array(g) for g in w.globals],
                "details": [encode_array(d) for d in w.details],
            }
        m = st.model
        if isinstance(m, _Model):
            out["model"] = {
                "grid": list(m.grid),
                "patch_dim": m.patch_dim,
                "proj": list(m.proj),
                "memory": m.memory.to_dict(),
                "gbank": m.gbank.to_dict(),
                "views": encode_array(m.views),
                "cell_level": encode_array(m.cell_level),
                "cal_patch": m.cal_patch.tolist(),
                "cal_view": m.cal_view.tolist(),
                "cal_global": m.cal_global.tolist(),
            }
            if m.cal_persist is not None:
                out["model"]["cal_persist"] = m.cal_persist.tolist()
            if m.detail_ref is not None:
                out["model"]["detail_ref"] = encode_array(m.detail_ref)
                out["model"]["detail_level"] = m.detail_level
        elif isinstance(m, _LegacyModel):
            out["legacy_model"] = {
                "bank": m.bank.to_dict(),
                "gbank": m.gbank.to_dict(),
                "cal_patch": m.cal_patch.tolist(),
                "cal_global": m.cal_global.tolist(),
            }
        if st.persist is not None:
            out["persist"] = encode_array(st.persist)
        if st.prev is not None:
            out["prev"] = encode_array(st.prev, "<f2")  # exact: float16 values
        if st.thumb:
            out["thumb"] = base64.b64encode(st.thumb).decode("ascii")
        if st.recent is not None:
            rc = st.recent
            out["recent"] = {
                "q": encode_array(rc.q),
                "scale": encode_array(rc.scale),
                "count": encode_array(rc.count, "<i8"),
                "globals": encode_array(rc.globals),
                "views": encode_array(rc.views),
            }
        if st.reservoir is not None:
            r = st.reservoir
            out["reservoir"] = {
                "patches": encode_array(r.patches),
                "patch_cell": encode_array(r.patch_cell, "<i4"),
                "patch_seq": r.patch_seq.tolist(),
                "globals": encode_array(r.globals),
                "global_seq": r.global_seq.tolist(),
                "eligible": r.eligible,
                "since_merge": r.since_merge,
                "last_hot": r.last_hot,
            }
        if st.occurrence is not None:
            o = st.occurrence
            out["occurrence"] = {
                "id": o.id,
                "start_seq": o.start_seq,
                "t_start": o.t_start,
                "last_seq": o.last_seq,
                "last_pts": o.last_pts,
                "last_ts": o.last_ts,
                "peak": o.peak,
                "hot": o.hot,
                "run": o.run,
                "calm": o.calm,
                "announced": o.announced,
                "sent_pts": o.sent_pts,
            }
        return out

    def restore(self, stream: str, state: dict[str, Any]) -> None:
        """Resume a stream from `snapshot`'s output, or from a version-1 state: its model keeps being
        scored as version 1 scored it (until reset or learn), and a version-1 warm-up starts over."""
        if not state:
            self._streams.pop(stream, None)
            return
        version = state.get("v")
        if version == 1:
            self._streams[stream] = _restore_v1(state)
            return
        if version not in (2, STATE_VERSION):
            raise ValueError(
                f"anomaly state of stream {stream} has version {version}, expected one of 1, 2, {STATE_VERSION}"
            )
        st = _Stream(cooldown_until=state["cooldown_until"], cooldown_place=state["cooldown_place"])
        if "warmup" in state:
            w = state["warmup"]
            st.warmup = _Warmup(
                target=int(w["target"]),
                every=int(w["every"]),
                proj=(int(w["proj"][0]), int(w["proj"][1])),
                seen=int(w["seen"]),
                patch_dim=int(w["patch_dim"]),
                grids=[decode_array(g) for g in w["grids"]],
                globals=[decode_array(g) for g in w["globals"]],
                details=[decode_array(d) for d in w.get("details", [])],
            )
        if "model" in state:
            m = state["model"]
            st.model = _Model(
                memory=QuantisedBank.from_dict(m["memory"], unit=False),
                grid=(int(m["grid"][0]), int(m["grid"][1])),
                patch_dim=int(m["patch_dim"]),
                proj=(int(m["proj"][0]), int(m["proj"][1])),
                gbank=QuantisedBank.from_dict(m["gbank"]),
                views=decode_array(m["views"]),
                cell_level=decode_array(m["cell_level"]),
                cal_patch=np.asarray(m["cal_patch"], dtype=np.float64),
                cal_view=np.asarray(m["cal_view"], dtype=np.float64),
                cal_global=np.asarray(m["cal_global"], dtype=np.float64),
                cal_persist=np.asarray(m["cal_persist"], dtype=np.float64) if "cal_persist" in m else None,
                detail_ref=decode_array(m["detail_ref"]) if "detail_ref" in m else None,
                detail_level=float(m.get("detail_level", 0.0)),
            )
        if "persist" in state:
            st.persist = decode_array(state["persist"])
        if "prev" in state:
            st.prev = decode_array(state["prev"]).astype(np.float32)
        if "thumb" in state:
            st.thumb = base64.b64decode(state["thumb"])
        if "legacy_model" in state:
            st.model = _legacy_model(state["legacy_model"])
        if "recent" in state:
            rc = state["recent"]
            st.recent = _Recent(
                q=decode_array(rc["q"]),
                scale=decode_array(rc["scale"]),
                count=decode_array(rc["count"]).astype(np.int64),
                globals=decode_array(rc["globals"]),
                views=decode_array(rc["views"]),
            )
        if "reservoir" in state:
            r = state["reservoir"]
            st.reservoir = _Reservoir(
                patches=decode_array(r["patches"]),
                patch_cell=decode_array(r["patch_cell"]).astype(np.int64),
                patch_seq=np.asarray(r["patch_seq"], dtype=np.int64),
                globals=decode_array(r["globals"]),
                global_seq=np.asarray(r["global_seq"], dtype=np.int64),
                eligible=int(r["eligible"]),
                since_merge=int(r["since_merge"]),
                last_hot=r["last_hot"],
            )
        if "occurrence" in state:
            st.occurrence = _occurrence_from(state["occurrence"])
        self._streams[stream] = st

    # --- warm-up ----------------------------------------------------------------------------------

    @staticmethod
    def _new_warmup(target: int, s: AnomalySettings) -> _Warmup:
        every = max(1, math.ceil(target / MAX_WARM_FRAMES))
        return _Warmup(target=target, every=every, proj=(s.projection_dim, s.seed) if s.projection_dim else (0, 0))

    def _warm(self, st: _Stream, record: FrameEmbedding, s: AnomalySettings) -> None:
        w = st.warmup
        assert w is not None
        st.thumb, st.thumb_image = record.thumbnail, None  # the first scored frame compares with the warm-up's last
        if w.seen % w.every == 0:
            grid = patch_features(record.patches, pool=s.pool, neighbourhood=s.neighbourhood, unit=record.unit_patches)
            glob = global_feature(record)
            if not w.grids:
                w.patch_dim = grid.shape[2]
                if w.proj[0] >= w.patch_dim:
                    w.proj = (0, 0)  # no smaller than the vectors themselves
            elif (*w.grids[0].shape[:2], w.patch_dim) != grid.shape or w.globals[0].shape != glob.shape:
                raise ValueError(
                    f"stream {record.stream}: record grid and dims {grid.shape}, global {glob.shape[0]} differ from "
                    f"the warm-up's {(*w.grids[0].shape[:2], w.patch_dim)}, {w.globals[0].shape[0]}; reset() the "
                    "stream after changing the model"
                )
            w.grids.append(centred_features(_project(grid, w.proj)).astype(np.float16))
            w.globals.append(glob.astype(np.float16))
            image = frame_motion_image(record)
            if image is not None and measurable(image):
                w.details.append(detail_blocks(image))
        w.seen += 1
        if w.seen >= w.target:
            st.model, st.recent = self._calibrate(w, s)
            st.warmup = None

    def _calibrate(self, w: _Warmup, s: AnomalySettings) -> tuple[_Model, _Recent]:
        """Cell coresets from the kept frames; every kept frame scored as it would be live (against
        them without its own vectors and its successors', and the frames before it as the recent
        memory) gives each cell's normal level and the calibration of the patch and view scores.
        The last frames start the recent memory."""
        x = np.stack(w.grids).astype(np.float32)  # (T, gh, gw, cell dims)
        t, gh, gw, _ = x.shape
        patch_dim, proj = w.patch_dim, w.proj
        # bank_size counts vectors of the records' dimension: projected ones are smaller, so more fit
        per_cell = max(1, min(s.bank_size * patch_dim // (x.shape[-1] * gh * gw), t))
        picks = cell_coresets(x, per_cell)  # (gh, gw, K) frame indices
        ii, jj = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        cells = x[picks, ii[..., None], jj[..., None]]  # (gh, gw, K, D)
        cells_sq = neighbour_values(np.einsum("ijkd,ijkd->ijk", cells, cells), REACH, np.inf)
        source = neighbour_values(picks, REACH, -(10**6))  # frame each candidate came from
        dist = np.empty((t, gh, gw), np.float32)
        for f in range(t):
            # As the frame would be scored live: against the coresets (without its own vectors or the
            # next frames', which a live frame cannot have seen) and, with adapt, the frames before it.
            seen = neighbour_values(x[f], REACH, 0.0)
            d2 = neighbour_d2(x[f], cells, cells_sq, REACH, seen)
            d2[(source >= f) & (source <= f + LEAVE_OUT_GAP)] = np.inf
            d2 = d2.reshape(gh, gw, -1)
            if s.adapt and f > 0:
                prev = np.moveaxis(x[max(0, f - RECENT) : f], 0, 2)  # (gh, gw, r, D)
                rd2 = neighbour_d2(
                    x[f], prev, neighbour_values(np.einsum("ijkd,ijkd->ijk", prev, prev), REACH, np.inf), REACH, seen
                )
                d2 = np.concatenate([d2, rd2.reshape(gh, gw, -1)], axis=-1)
            dist[f] = cell_distance(d2, s.k)
        level = np.quantile(dist, CELL_LEVEL_QUANTILE, axis=0).astype(np.float32)
        level = np.maximum(level, max(CELL_LEVEL_FLOOR * float(np.median(level)), s.min_distance)).astype(np.float32)
        z = dist / level
        med = np.median(z.reshape(t, -1), axis=1)
        zc = z / np.maximum(med, 1.0)[:, None, None]
        cal_patch = zc.reshape(t, -1).max(axis=1)
        steps = np.zeros_like(zc)
        steps[1:] = np.sqrt(((x[1:] - x[:-1]) ** 2).sum(-1)) / level / np.maximum(med[1:], 1.0)[:, None, None]
        lasting = np.stack([_local(f) for f in zc]) * (steps < STATIC)
        cal_persist = _persistence(lasting, max(1, round(PERSIST / w.every)))
        views = x.reshape(t, gh * gw, -1).mean(axis=1)  # the view vectors: the centred cells. mean
        vd = np.sqrt(((views[:, None] - views[None]) ** 2).sum(-1))
        ahead = np.arange(t)[None, :] - np.arange(t)[:, None]
        vd[(ahead >= 0) & (ahead <= LEAVE_OUT_GAP)] = np.inf
        cal_view = vd.min(axis=1)[np.isfinite(vd.min(axis=1))]
        globs = np.stack(w.globals).astype(np.float32)
        gsims = globs @ globs.T
        near = np.abs(np.arange(t)[:, None] - np.arange(t)[None, :]) <= LEAVE_OUT_GAP
        gsims[near] = -2.0
        cal_global = np.sqrt(np.maximum(2.0 - 2.0 * gsims.max(axis=1), 0.0)) if t > 2 * LEAVE_OUT_GAP + 1 else []
        model = _Model(
            memory=QuantisedBank.quantise(cells.reshape(-1, cells.shape[-1]), unit=False),
            grid=(gh, gw),
            patch_dim=patch_dim,
            proj=proj,
            gbank=self._coreset(globs, s.global_bank_size, s),
            views=views.astype(np.float16),
            cell_level=level,
            cal_patch=np.asarray(cal_patch, dtype=np.float64),
            cal_view=np.asarray(cal_view, dtype=np.float64),
            cal_global=np.asarray(cal_global, dtype=np.float64),
            cal_persist=np.asarray(cal_persist, dtype=np.float64),
        )
        if len(w.details) >= 2:
            model.detail_ref = reference(w.details)
            warm_lost = max(lost_share(d, model.detail_ref, model.detail_mask()) for d in w.details)
            model.detail_level = max(DETAIL_FACTOR, DETAIL_MARGIN * warm_lost)
        recent = _Recent.empty((gh, gw), (model.cell_dim, model.dims[1]))
        for f in range(max(0, t - RECENT), t):
            recent.admit(x[f], np.ones((gh, gw), bool))
        for g, v in zip(globs[-RECENT_GLOBALS:], views[-RECENT_GLOBALS:], strict=True):
            recent.admit_global(g)
            recent.admit_view(v)
        return model, recent

    # --- scoring ----------------------------------------------------------------------------------

    def _cells_of(self, model: _Model, record: FrameEmbedding, s: AnomalySettings) -> np.ndarray:
        """The record's centred cell vectors as the model keeps them (gh, gw, cell dims), checked
        against the model's grid and dims."""
        grid = patch_features(record.patches, pool=s.pool, neighbourhood=s.neighbourhood, unit=record.unit_patches)
        if grid.shape[:2] != model.grid or (grid.shape[2], 2 * record.dim) != model.dims:
            raise ValueError(
                f"stream {record.stream}: record grid {grid.shape[:2]} and dims (patch, global) "
                f"{(grid.shape[2], 2 * record.dim)} differ from its model of normal {model.grid}, {model.dims}; "
                "reset() the stream after changing the model or its input size"
            )
        return centred_features(_project(grid, model.proj))

    def _score(self, st: _Stream, model: _Model, record: FrameEmbedding, s: AnomalySettings) -> FrameScore:
        x = self._cells_of(model, record, s)
        gh, gw = model.grid
        seen = neighbour_values(x, REACH, 0.0)  # for both candidate sets
        d2 = neighbour_d2(x, *model.cells(), REACH, seen).reshape(gh, gw, -1)
        gvec = global_feature(record)
        view = x.reshape(gh * gw, -1).mean(axis=0)
        gcands, vcands = model.gbank.vectors, model.views.astype(np.float32)
        recent = st.recent if s.adapt else None
        if recent is not None:
            rd2 = neighbour_d2(
                x,
                recent.vectors,
                neighbour_values(np.where(recent.valid(), recent.sq, np.inf), REACH, np.inf),
                REACH,
                seen,
            )
            d2 = np.concatenate([d2, rd2.reshape(gh, gw, -1)], axis=-1)
            gcands = np.concatenate([gcands, recent.globals.astype(np.float32)])
            vcands = np.concatenate([vcands, recent.views.astype(np.float32)])
        dist = cell_distance(d2, s.k)
        z = dist / model.cell_level
        med = median(z)
        zc = z / max(med, 1.0)
        level_p, level_v, _, level_s = model.levels(s)
        cell_scores = zc / level_p
        patch_score = float(zc.max()) / level_p
        local = None
        if model.cal_persist is not None:  # not for a version-2 model
            local = _local(zc)
            past = st.persist if st.persist is not None and st.persist.shape[1:] == zc.shape else None
            step = np.full(zc.shape, np.inf, np.float32)
            if st.prev is not None and st.prev.shape == x.shape:
                step = np.sqrt(((x - st.prev) ** 2).sum(-1)) / model.cell_level / max(med, 1.0)
            st.prev = round_half(x)  # float16's precision (what is saved), at float32's speed
            now = (local * (step < STATIC))[None]
            run = now if past is None else np.concatenate([past.astype(np.float32), now])
            run = run[-PERSIST:]
            st.persist = run[1 - PERSIST :].astype(np.float16)
            if len(run) == PERSIST:
                lasting = run.min(axis=0) / level_s
                cell_scores = np.maximum(cell_scores, lasting)
                patch_score = max(patch_score, float(lasting.max()))
        gdist = float(knn_distance(gvec[None], gcands, s.k)[0])
        view_score = float(np.sqrt(((vcands - view) ** 2).sum(axis=1)).min()) / level_v / VIEW_FACTOR
        detail_score = None
        if s.use_global and model.detail_ref is not None:
            image = frame_motion_image(record)
            if image is not None and measurable(image):
                lost = lost_share(detail_blocks(image), model.detail_ref, model.detail_mask())
                detail_score = lost / model.detail_level
        # A step of light since the last frame is followed, not scored (decoded only for such a step).
        after = frame_motion_image(record) if gdist >= GLOBAL_FOLLOW else None
        before = st.thumb_image if st.thumb_image is not None else st.thumb
        light = after is not None and photometric_step(before, after)
        st.thumb, st.thumb_image = record.thumbnail, after
        global_score = 0.0 if light else gdist / GLOBAL_FOLLOW
        channels = [(patch_score, PATCH)]
        if s.use_global:
            channels += [(view_score, VIEW), (global_score, GLOBAL)]
            if model.cal_persist is not None:  # not for a version-2 model
                channels.append((med / COMMON_FACTOR, VIEW))
            if detail_score is not None:
                channels.append((detail_score, VIEW))
        score, source = max(channels, key=lambda p: p[0])
        st.last_cells = (
            x,
            cell_scores,
            view_score < s.threshold and (detail_score is None or detail_score < s.threshold),
            view_score < VIEW_ADMIT or med > COMMON_ADMIT,
            gdist < GLOBAL_FOLLOW or light,
            view,
            local,
        )
        fs = self._frame_score(record, cell_scores, dist, s, score, source, patch_score, centroid=True)
        if not s.use_global:
            return dataclasses.replace(fs, view_score=0.0)
        return dataclasses.replace(fs, view_score=view_score, global_score=global_score, detail_score=detail_score)

    def _frame_score(
        self,
        record: FrameEmbedding,
        cell_scores: np.ndarray,
        dist: np.ndarray,
        s: AnomalySettings,
        score: float,
        source: str,
        patch_score: float,
        global_score: float = 0.0,
        *,
        centroid: bool,
    ) -> FrameScore:
        """Heatmap, peak and box from per-cell scores in threshold units (1.0 = the patch level) and
        raw distances. The box is the connected region, around the most distant cell that alone
        exceeds the threshold, of cells at least `box_fraction` as distant and above the normal
        level; with `centroid` the peak is that region's distance-weighted centre (with neighbourhood
        averaging, a cell at the rim of an object can outscore the object's own cells), else the
        cell's centre."""
        gh0, gw0, _ = record.patches.shape
        gh, gw = cell_scores.shape
        heat = np.clip(cell_scores / s.threshold, 0.0, 1.0)
        rows = np.asarray(_cell_edges(gh0, s.pool, gh))
        cols = np.asarray(_cell_edges(gw0, s.pool, gw))
        cx, cy = (cols[:-1] + cols[1:]) / 2.0, (rows[:-1] + rows[1:]) / 2.0
        pi, pj = np.unravel_index(int(np.argmax(cell_scores)), cell_scores.shape)
        peak = (float(cx[pj]), float(cy[pi]))
        boxes: tuple[Box, ...] = ()
        if float(cell_scores[pi, pj]) > s.threshold:
            pi, pj = np.unravel_index(int(np.argmax(np.where(cell_scores > s.threshold, dist, -1.0))), dist.shape)
            near = (dist >= s.box_fraction * float(dist[pi, pj])) & (cell_scores >= 1.0)
            ri, rj = np.nonzero(_component(near, int(pi), int(pj)))
            i0, i1, j0, j1 = int(ri.min()), int(ri.max()), int(rj.min()), int(rj.max())
            boxes = (
                Box(
                    float(cols[j0]),
                    float(rows[i0]),
                    float(cols[j1 + 1]),
                    float(rows[i1 + 1]),
                    score=patch_score,
                    label=KIND,
                ),
            )
            wts = dist[ri, rj].astype(np.float64)
            peak = (
                (float(wts @ cx[rj] / wts.sum()), float(wts @ cy[ri] / wts.sum()))
                if centroid
                else (float(cx[pj]), float(cy[pi]))
            )
        return FrameScore(
            seq=record.seq,
            score=score,
            patch_score=patch_score,
            global_score=global_score,
            source=source,
            patch_distances=dist,
            heatmap=heat,
            peak=peak,
            boxes=boxes,
            threshold=s.threshold,
        )

    # --- lifecycle --------------------------------------------------------------------------------

    def _lifecycle(
        self, st: _Stream, record: FrameEmbedding, fs: FrameScore, hot: bool, s: AnomalySettings
    ) -> list[Event]:
        occ = st.occurrence
        if hot:
            if occ is not None and not occ.announced and _elsewhere(occ.peak["details"], fs):
                occ = st.occurrence = None  # the unconfirmed frame was something else, somewhere else
            closed: list[Event] = []
            if occ is not None and occ.announced and occ.peak["details"]["source"] == PATCH and fs.source != PATCH:
                # The whole view changed during an anomaly at one place (a lens covered, the camera
                # turned while a thing stood out): another anomaly, with its own event.
                closed, occ = [self._close(st, record, occ, s)], None
            if occ is None:
                if self._cooling(st, record, fs):
                    return closed
                occ = st.occurrence = _Occurrence(
                    id=event_id(record.stream, KIND, record.seq),
                    start_seq=record.seq,
                    t_start=record.pts,
                    last_seq=record.seq,
                    last_pts=record.pts,
                    last_ts=record.ts,
                    peak=_peak(fs, record),
                )
            occ.hot += 1
            occ.run += 1
            occ.calm = 0
            occ.last_seq, occ.last_pts, occ.last_ts = record.seq, record.pts, record.ts
            if fs.score > occ.peak["score"]:
                occ.peak = _peak(fs, record)
            if not occ.announced and occ.run >= s.open_after:
                occ.announced, occ.sent_pts = True, record.pts
                return [*closed, self._event(record.stream, occ, "open", ts=record.ts, current=(fs, record))]
            if occ.announced and record.pts - occ.sent_pts >= s.update_every_s:
                occ.sent_pts = record.pts
                return [self._event(record.stream, occ, "update", ts=record.ts, current=(fs, record))]
            return closed
        if occ is None:
            return []
        if not occ.announced:  # the streak broke before it was confirmed
            st.occurrence = None
            return []
        occ.run = 0
        occ.calm += 1
        if occ.calm < s.close_after:
            return []
        return [self._close(st, record, occ, s)]

    def _close(self, st: _Stream, record: FrameEmbedding, occ: _Occurrence, s: AnomalySettings) -> Event:
        """The closing event of `occ`, the stream's occurrence, which ends; its place cools down."""
        st.occurrence = None
        st.cooldown_until = record.pts + s.cooldown_s
        details = occ.peak["details"]
        st.cooldown_place = VIEW if details["source"] != PATCH else [details["peak"]["x"], details["peak"]["y"]]
        return self._event(record.stream, occ, "closed", ts=record.ts)

    @staticmethod
    def _cooling(st: _Stream, record: FrameEmbedding, fs: FrameScore) -> bool:
        """Whether a new occurrence may not start yet: inside the cooldown, at the place of the event
        that closed (anywhere, for a version-1 state that did not record it)."""
        if st.cooldown_until is None or record.pts >= st.cooldown_until:
            return False
        place = st.cooldown_place
        if place is None:
            return True
        if isinstance(place, str) or fs.source != PATCH:
            return place == VIEW and fs.source != PATCH
        return math.hypot(fs.peak[0] - place[0], fs.peak[1] - place[1]) <= SAME_PLACE

    @staticmethod
    def _event(
        stream: str,
        occ: _Occurrence,
        status: str,
        *,
        ts: float,
        current: tuple[FrameScore, FrameEmbedding] | None = None,
    ) -> Event:
        peak = occ.peak
        if current is not None:
            fs, rec = current
            heatmap, boxes, details = Heatmap(fs.heatmap), fs.boxes, fs.details(rec)
        else:
            heatmap = Heatmap.from_dict(peak["heatmap"])
            boxes = tuple(Box(**b) for b in peak["boxes"])
            details = dict(peak["details"])
        details["peak_seq"] = peak["seq"]
        details["anomalous_frames"] = occ.hot
        frames = tuple(sorted({occ.start_seq, int(peak["seq"]), occ.last_seq}))
        return Event(
            id=occ.id,
            type=KIND,
            stream=stream,
            t=occ.t_start,
            t_start=occ.t_start,
            t_end=occ.last_pts,
            ts=ts,
            score=float(peak["score"]),
            frames=frames,
            details=details,
            status=status,
            boxes=boxes,
            heatmap=heatmap,
        )

    # --- adaptation -------------------------------------------------------------------------------

    def _adapt(self, st: _Stream, record: FrameEmbedding, fs: FrameScore, hot: bool, s: AnomalySettings) -> None:
        model = st.model
        assert model is not None
        if st.reservoir is None:
            dims = model.dims if isinstance(model, _LegacyModel) else (model.cell_dim, model.dims[1])
            st.reservoir = _Reservoir.empty(dims)
        r = st.reservoir
        if hot:  # tracked even while adaptation is off, so turning it on never learns a fresh anomaly
            r.last_hot = record.seq
            r.drop_from(record.seq - s.adapt_guard)
        if not s.adapt:
            return
        if st.last_cells is not None and st.recent is not None:
            x, cell_scores, view_calm, view_near, global_near, view, local = st.last_cells
            if view_calm:  # the view looks as it should: follow what changed a little
                out = cell_scores >= ADMIT
                if local is not None:
                    out |= local >= ADMIT_CELL
                calm = ~ndimage.binary_dilation(out, structure=np.ones((2 * REACH + 1,) * 2, bool))
                st.recent.admit(x, calm)
                if view_near:
                    st.recent.admit_view(view)
                if global_near:
                    st.recent.admit_global(global_feature(record))
        calm_frame = r.last_hot is None or record.seq - r.last_hot > s.adapt_guard
        clearly_normal = fs.score < min(s.adapt_below, s.threshold)
        if calm_frame and clearly_normal and st.occurrence is None:
            r.eligible += 1
            if r.eligible % s.adapt_every == 0:
                if isinstance(model, _LegacyModel):
                    rows = self._legacy_patches(record, s)
                    cells = np.full(len(rows), -1, np.int64)
                else:
                    assert st.last_cells is not None
                    rows = st.last_cells[0].reshape(-1, st.last_cells[0].shape[-1])
                    cells = np.arange(len(rows), dtype=np.int64)
                pick = self._pick(len(rows), s.adapt_patches, record.seq, s)
                rng = np.random.default_rng([s.seed, record.seq, 1])
                r.patches, r.patch_cell, r.patch_seq = _reservoir_add(
                    (r.patches, r.patch_cell, r.patch_seq),
                    rows[pick].astype(np.float16),
                    cells[pick],
                    record.seq,
                    s.reservoir_size,
                    rng,
                )
                r.globals, _, r.global_seq = _reservoir_add(
                    (r.globals, np.zeros(len(r.globals), np.int64), r.global_seq),
                    global_feature(record)[None].astype(np.float16),
                    np.zeros(1, np.int64),
                    record.seq,
                    s.reservoir_size,
                    rng,
                )
        r.since_merge += 1
        if r.since_merge < s.adapt_interval:
            return
        r.since_merge = 0
        # Only vectors older than the guard are merged: a younger one may yet precede an anomaly.
        ripe, gripe = r.patch_seq < record.seq - s.adapt_guard, r.global_seq < record.seq - s.adapt_guard
        patches, cells, globs = r.patches[ripe].astype(np.float32), r.patch_cell[ripe], r.globals[gripe]
        if isinstance(model, _LegacyModel):
            self._merge_legacy(model, patches, globs.astype(np.float32), s)
        else:
            self._merge(model, patches, cells, globs.astype(np.float32), s)
        r.patches, r.patch_cell, r.patch_seq = r.patches[~ripe], r.patch_cell[~ripe], r.patch_seq[~ripe]
        r.globals, r.global_seq = r.globals[~gripe], r.global_seq[~gripe]

    def _merge(
        self, model: _Model, patches: np.ndarray, cells: np.ndarray, globs: np.ndarray, s: AnomalySettings
    ) -> None:
        """Add normal vectors to the cells they came from (row-major cell indices) and to the global
        bank. Only those a cell does not already cover (nearest kept vector of that cell farther than
        NOVEL_FRACTION of its level) are added, then the cell is cut back to `per_cell` vectors by
        coreset selection: re-selecting among covered duplicates would only thin out what it knows."""
        gh, gw = model.grid
        k = model.per_cell
        cur = model.cells()[0].reshape(gh * gw, k, -1)
        level = model.cell_level.reshape(-1)
        changed = False
        new_cells = cur.copy()
        for c in np.unique(cells):
            if c < 0 or c >= gh * gw:
                continue
            x = patches[cells == c]
            near = np.sqrt(((x[:, None, :] - cur[c][None]) ** 2).sum(axis=-1).min(axis=1))
            novel = x[near > NOVEL_FRACTION * level[c]]
            if len(novel):
                pool = np.concatenate([cur[c], novel])
                new_cells[c] = pool[greedy_coreset(pool, k)]
                changed = True
        if changed:
            model.set_memory(QuantisedBank.quantise(new_cells.reshape(-1, new_cells.shape[-1]), unit=False))
        if len(globs):
            level_g = model.levels(s)[2]
            novel = globs[knn_distance(globs, model.gbank.vectors, 1) > NOVEL_FRACTION * level_g]
            if len(novel):
                model.gbank = self._coreset(np.concatenate([model.gbank.vectors, novel]), s.global_bank_size, s)

    # --- version-1 models ---------------------------------------------------------------------------

    def _legacy_patches(self, record: FrameEmbedding, s: AnomalySettings) -> np.ndarray:
        grid = patch_features(record.patches, pool=s.pool, neighbourhood=s.neighbourhood, unit=record.unit_patches)
        return grid.reshape(-1, grid.shape[-1])

    @staticmethod
    def _check_legacy_dim(model: _LegacyModel, record: FrameEmbedding) -> None:
        dims = (int(record.patches.shape[2]), 2 * record.dim)
        if dims != model.dims:
            raise ValueError(
                f"stream {record.stream}: record dims (patch, global) {dims} differ from its model of normal "
                f"{model.dims}; reset() the stream after changing the model"
            )

    def _score_legacy(self, model: _LegacyModel, record: FrameEmbedding, s: AnomalySettings) -> FrameScore:
        """Version 1's scoring: kNN of each uncentred unit patch vector to a position-free bank."""
        self._check_legacy_dim(model, record)
        grid = patch_features(record.patches, pool=s.pool, neighbourhood=s.neighbourhood, unit=record.unit_patches)
        gh, gw, d = grid.shape
        dist = knn_distance(grid.reshape(-1, d), model.bank.vectors, s.k).reshape(gh, gw).astype(np.float32)
        level_p, level_g = model.levels(s)
        patch_score = float(dist.max()) / level_p
        global_score = 0.0
        if s.use_global:
            global_score = float(knn_distance(global_feature(record)[None], model.gbank.vectors, s.k)[0]) / level_g
        score, source = (global_score, GLOBAL) if global_score > patch_score else (patch_score, PATCH)
        return self._frame_score(
            record, dist / level_p, dist, s, score, source, patch_score, global_score, centroid=False
        )

    def _merge_legacy(self, model: _LegacyModel, patches: np.ndarray, globs: np.ndarray, s: AnomalySettings) -> None:
        level_p, level_g = model.levels(s)
        for x, attr, level, size in (
            (patches, "bank", level_p, s.bank_size),
            (globs, "gbank", level_g, s.global_bank_size),
        ):
            bank: QuantisedBank = getattr(model, attr)
            if not len(x):
                continue
            novel = x[knn_distance(x, bank.vectors, 1) > NOVEL_FRACTION * level]
            if len(novel):
                setattr(model, attr, self._coreset(np.concatenate([bank.vectors, novel]), size, s))

    # --- helpers ----------------------------------------------------------------------------------

    def _coreset(self, x: np.ndarray, m: int, s: AnomalySettings) -> QuantisedBank:
        return QuantisedBank.quantise(x[greedy_coreset(x, m, self._projection(x.shape[1], s))])

    def _projection(self, dim: int, s: AnomalySettings) -> np.ndarray | None:
        key = (dim, s.projection_dim, s.seed)
        if key not in self._projections:
            if s.projection_dim == 0 or s.projection_dim >= dim:
                self._projections[key] = None
            else:
                rng = np.random.default_rng([s.seed, dim, s.projection_dim])
                proj = rng.normal(size=(dim, s.projection_dim)) / math.sqrt(s.projection_dim)
                self._projections[key] = proj.astype(np.float32)
        return self._projections[key]

    @staticmethod
    def _pick(n: int, m: int, seq: int, s: AnomalySettings) -> np.ndarray:
        """`m` of `n` row indices chosen at random (reproducibly: seeded by the frame's seq), or all."""
        if n <= m:
            return np.arange(n)
        rng = np.random.default_rng([s.seed, seq])
        return np.sort(rng.choice(n, size=m, replace=False))

    def _subsample(self, rows: np.ndarray, n: int, seq: int, s: AnomalySettings) -> np.ndarray:
        return rows[self._pick(len(rows), n, seq, s)]


_PROJECTIONS: dict[tuple[int, int, int], np.ndarray] = {}


def photometric_step(before: bytes | np.ndarray | None, after: bytes | np.ndarray | None) -> bool:
    """Whether thumbnail `after` is thumbnail `before` under other light: fitted to it by one gain
    and offset (least squares on grey images), it differs from it by at most PHOTOMETRIC of what it
    did before the fit. Each is a JPEG or its `motion_image` already decoded. False without both
    thumbnails (the global step is then scored), or for two identical ones."""
    a, b = (motion_image(x) if isinstance(x, bytes) else x for x in (before, after))  # None: not decodable
    if a is None or b is None or a.shape != b.shape:
        return False
    raw = float(np.abs(b - a).mean())
    ac, bc = a - a.mean(), b - b.mean()
    gain = float((ac * bc).sum() / max(float((ac * ac).sum()), 1e-6))
    fitted = float(np.abs(bc - gain * ac).mean())
    return raw > 0.0 and 0.5 <= gain <= 2.0 and fitted <= PHOTOMETRIC * raw


def _project(x: np.ndarray, proj: tuple[int, int]) -> np.ndarray:
    """x (..., D) in the random projection `proj` = (dims, seed), or x itself for (0, 0): a Gaussian
    matrix scaled to keep lengths, so distances survive to within a few per cent at 128 dims while
    the cells' memory and the per-frame products shrink by D / dims."""
    dims, seed = proj
    if dims == 0:
        return x.astype(np.float32, copy=False)
    key = (x.shape[-1], dims, seed)
    if key not in _PROJECTIONS:
        rng = np.random.default_rng([seed, x.shape[-1], dims, 2])
        _PROJECTIONS[key] = (rng.normal(size=(x.shape[-1], dims)) / math.sqrt(dims)).astype(np.float32)
    return rows_matmul(x.astype(np.float32, copy=False), _PROJECTIONS[key])  # float32 @ float32: float32


def _local(zc: np.ndarray) -> np.ndarray:
    """Cell scores above those of the cells around them (the median of a LOCAL x LOCAL window)."""
    if LOCAL <= 1:
        return zc
    return zc - ndimage.median_filter(zc, size=LOCAL, mode="nearest")


def _persistence(zc: np.ndarray, n: int) -> np.ndarray:
    """For each run of `n` consecutive frames of cell scores zc (T, gh, gw): the largest over cells of
    the least score the cell had in the run (T - n + 1,)."""
    if len(zc) < n:
        return np.zeros(0)
    runs = np.stack([zc[i : len(zc) - n + 1 + i] for i in range(n)]).min(axis=0)
    return runs.reshape(len(runs), -1).max(axis=1)


def _elsewhere(details: dict[str, Any], fs: FrameScore) -> bool:
    """Whether `fs` is a patch anomaly farther than SAME_PLACE from the patch anomaly of `details`."""
    if details["source"] != PATCH or fs.source != PATCH:
        return False
    return math.hypot(fs.peak[0] - details["peak"]["x"], fs.peak[1] - details["peak"]["y"]) > SAME_PLACE


def _restore_v1(state: dict[str, Any]) -> _Stream:
    """A version-1 state: its model of normal (position-free banks), reservoir, open occurrence and
    cooldown. A version-1 warm-up cannot be finished by this version: it starts over."""
    st = _Stream(cooldown_until=state["cooldown_until"], cooldown_place=None)
    if "model" in state:
        st.model = _legacy_model(state["model"])
    if "reservoir" in state and st.model is not None:
        r = state["reservoir"]
        patches = decode_array(r["patches"])
        st.reservoir = _Reservoir(
            patches=patches,
            patch_cell=np.full(len(patches), -1, np.int64),
            patch_seq=np.asarray(r["patch_seq"], dtype=np.int64),
            globals=decode_array(r["globals"]),
            global_seq=np.asarray(r["global_seq"], dtype=np.int64),
            eligible=int(r["eligible"]),
            since_merge=int(r["since_merge"]),
            last_hot=r["last_hot"],
        )
    if "occurrence" in state:
        st.occurrence = _occurrence_from(state["occurrence"])
    return st


def _legacy_model(m: dict[str, Any]) -> _LegacyModel:
    return _LegacyModel(
        bank=QuantisedBank.from_dict(m["bank"]),
        gbank=QuantisedBank.from_dict(m["gbank"]),
        cal_patch=np.asarray(m["cal_patch"], dtype=np.float64),
        cal_global=np.asarray(m["cal_global"], dtype=np.float64),
    )


def _reservoir_add(
    rows: tuple[np.ndarray, np.ndarray, np.ndarray],
    new: np.ndarray,
    new_cells: np.ndarray,
    seq: int,
    size: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Append `new` rows (from frame `seq`, at `new_cells`); beyond `size`, random rows make room, so
    a full reservoir keeps a mix of old and recent frames (old ones are the ones ripe for merging)."""
    vecs, cells, seqs = rows
    vecs = np.concatenate([vecs, new])
    cells = np.concatenate([cells, new_cells.astype(np.int64)])
    seqs = np.concatenate([seqs, np.full(len(new), seq, dtype=np.int64)])
    if len(vecs) > size:
        keep = np.sort(rng.choice(len(vecs), size=size, replace=False))
        vecs, cells, seqs = vecs[keep], cells[keep], seqs[keep]
    return vecs, cells, seqs


def _peak(fs: FrameScore, record: FrameEmbedding) -> dict[str, Any]:
    return {
        "score": fs.score,
        "seq": record.seq,
        "heatmap": Heatmap(fs.heatmap).to_dict(),
        "boxes": [b.to_dict() for b in fs.boxes],
        "details": fs.details(record),
    }


def _cell_edges(n_patches: int, pool: int, n_cells: int) -> list[float]:
    """Normalised edges of the pooled cells along one axis (the last cell may be narrower)."""
    return [min(i * pool, n_patches) / n_patches for i in range(n_cells + 1)]


def _component(mask: np.ndarray, i: int, j: int) -> np.ndarray:
    """The 8-connected region of `mask` holding (i, j), as a mask."""
    seeded = np.array(mask, dtype=bool)
    seeded[i, j] = True  # the seed belongs to its region even where the mask is off
    labels, _ = ndimage.label(seeded, structure=_EIGHT_CONNECTED)
    return labels == labels[i, j]

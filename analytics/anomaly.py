"""Anomaly detection: a per-stream model of normal on DINOv3 patch and global features (PatchCore-style).

Per stream, a warm-up (or a period the user marks normal with `learn`) fills a memory bank of
unit patch vectors and one of global vectors (unit CLS + unit mean-patch); greedy k-center
coreset selection bounds each bank. A frame is then scored by the k-nearest-neighbour distance
of each of its patches to the patch bank (the per-patch distances are the heatmap, their
maximum localises the most unusual thing in view) and of its global vector to the global bank
(whole-frame unusual content that no single patch shows: a covered lens, another scene).

Both distances are divided by their calibrated normal level, the `quantile` of the scores of
held-out warm-up frames (`holdout_fraction` of the warm-up, in short blocks spread over it,
scored against a bank built from the other frames: leave-out, so the level is what a *new*
normal frame scores, not a frame scored against itself, under every condition the warm-up
saw). The frame score is the larger of the two, so 1.0 means "as unusual as the most unusual
normal frames" on every stream, and `threshold` means the same everywhere. An event opens
after `open_after` anomalous frames, is updated under the same id while they continue, closes
after `close_after` normal frames, and no new one opens for `cooldown_s`. Clearly normal
frames, never near an anomalous one, slowly refresh the bank.

    >>> det = AnomalyDetector(AnomalySettings())
    >>> for rec in records:                 # FrameEmbedding, in stream order
    ...     for event in det.process(rec):  # nothing during the warm-up
    ...         print(event.status, event.score, event.boxes)
    >>> det.learn("cam1", normal_records)   # "these frames are normal" (user-marked period)

Pure: no I/O. numpy only; per frame one (patches x bank) matrix product, bounded by `bank_size`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from dinostream.analytics.processor import Processor
from dinostream.analytics.state_codec import decode_array, encode_array
from dinostream.core.records import Box, Event, FrameEmbedding, Heatmap, event_id
from dinostream.core.settings import AnomalySettings

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)

KIND = "anomaly"
STATE_VERSION = 1
# A warm-up keeps at most this many times `bank_size` patch vectors (a random subset of each
# frame's patches when the frames hold more); the coreset then picks `bank_size` of them.
WARMUP_VECTORS_PER_BANK_VECTOR = 8
# Learned and adapted vectors join the bank only when their nearest bank vector is farther than
# this fraction of the normal level (the calibrated frame maximum): the rest are already known.
NOVEL_FRACTION = 0.5
# Held-out warm-up frames come in blocks of up to this many consecutive frames, spread evenly
# over the warm-up, so the leave-out scores sample every condition it saw (a lighting cycle, a
# pan): a single block at its end measured only the last few seconds, and the threshold was too
# low for a darker or brighter moment. Short blocks keep held-out frames about as far from a
# fit frame as a new frame is from the end of the warm-up.
HOLDOUT_BLOCK = 2
# At most this many held-out frames (their full patch grids wait in memory until the warm-up ends).
MAX_HELD_FRAMES = 64


# --- features ---------------------------------------------------------------------------------


def patch_features(patches: np.ndarray, *, pool: int = 1, neighbourhood: int = 1) -> np.ndarray:
    """Unit patch vectors, (gh', gw', D) float32: each patch L2-normalised, average-pooled by `pool`,
    averaged with its `neighbourhood` x `neighbourhood` neighbours (edges use the neighbours that
    exist), normalised again. Normalising first keeps a few large-norm tokens from dominating."""
    x = _unit(np.asarray(patches, dtype=np.float32))
    if pool > 1:
        x = _unit(_block_mean(x, pool))
    if neighbourhood > 1:
        x = _unit(_box_mean(x, neighbourhood))
    return x


def global_feature(record: FrameEmbedding) -> np.ndarray:
    """Unit CLS and unit mean-patch vectors concatenated, rescaled to unit length (2D float32)."""
    cls = _unit(record.cls.astype(np.float32))
    pooled = _unit(record.pooled.astype(np.float32))
    return np.concatenate([cls, pooled]) / np.float32(math.sqrt(2.0))


def knn_distance(x: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    """Mean Euclidean distance of each unit row of `x` to its `k` nearest unit rows of `bank`."""
    sims = x @ bank.T
    k = min(k, bank.shape[0])
    if k == 1:
        top = sims.max(axis=1, keepdims=True)
    else:
        top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
    return np.sqrt(np.maximum(2.0 - 2.0 * top, 0.0)).mean(axis=1)


def greedy_coreset(x: np.ndarray, m: int, projection: np.ndarray | None = None) -> np.ndarray:
    """Indices of `m` rows of `x` chosen by greedy k-center selection (each pick is the row farthest
    from those already picked), so the bank covers rare normal patterns instead of only frequent
    ones. Distances are computed on `x @ projection` when given (a random projection: same
    geometry, a fraction of the cost). Deterministic; O(len(x) * m * dims)."""
    n = x.shape[0]
    if m >= n:
        return np.arange(n)
    z = x @ projection if projection is not None else x
    z = np.ascontiguousarray(z, dtype=np.float32)
    sq = np.einsum("ij,ij->i", z, z)
    start = int(np.argmax(sq - 2.0 * (z @ z.mean(axis=0))))  # the row farthest from the mean
    chosen = np.empty(m, dtype=np.int64)
    chosen[0] = start
    mind = sq - 2.0 * (z @ z[start]) + sq[start]
    for i in range(1, m):
        j = int(np.argmax(mind))
        chosen[i] = j
        np.minimum(mind, sq - 2.0 * (z @ z[j]) + sq[j], out=mind)
    return chosen


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32, copy=False)


def _block_mean(x: np.ndarray, p: int) -> np.ndarray:
    """Average over p x p blocks of the grid; edge blocks average what they have."""
    gh, gw, _ = x.shape
    rows, cols = np.arange(0, gh, p), np.arange(0, gw, p)
    s = np.add.reduceat(np.add.reduceat(x, rows, axis=0), cols, axis=1)
    nr = np.minimum(rows + p, gh) - rows
    nc = np.minimum(cols + p, gw) - cols
    return s / (nr[:, None] * nc[None, :])[..., None]


def _box_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Average of each cell's n x n neighbourhood (integral image; edges average what exists)."""
    gh, gw, d = x.shape
    r = n // 2
    c = np.zeros((gh + 1, gw + 1, d), dtype=np.float64)
    c[1:, 1:] = x.cumsum(axis=0).cumsum(axis=1)
    i0, i1 = np.clip(np.arange(gh) - r, 0, gh), np.clip(np.arange(gh) + r + 1, 0, gh)
    j0, j1 = np.clip(np.arange(gw) - r, 0, gw), np.clip(np.arange(gw) + r + 1, 0, gw)
    s = c[i1][:, j1] - c[i0][:, j1] - c[i1][:, j0] + c[i0][:, j0]
    count = ((i1 - i0)[:, None] * (j1 - j0)[None, :]).astype(np.float64)
    return (s / count[..., None]).astype(np.float32)


class _Bank:
    """Unit vectors stored as int8 with a per-row scale (a quarter of fp32, saved exactly in
    snapshots); `vectors` is the dequantised, renormalised float32 matrix that is searched."""

    def __init__(self, q: np.ndarray, scale: np.ndarray) -> None:
        self.q = q.astype(np.int8, copy=False)
        self.scale = scale.astype(np.float32, copy=False)
        self.vectors = _unit(self.q.astype(np.float32) * self.scale[:, None])

    @classmethod
    def quantise(cls, x: np.ndarray) -> _Bank:
        scale = np.maximum(np.abs(x).max(axis=1), 1e-12) / 127.0
        return cls(np.clip(np.round(x / scale[:, None]), -127, 127), scale)

    def __len__(self) -> int:
        return int(self.q.shape[0])

    def to_dict(self) -> dict[str, Any]:
        return {"q": encode_array(self.q), "scale": encode_array(self.scale)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> _Bank:
        return cls(decode_array(d["q"]), decode_array(d["scale"]))


# --- per-stream state -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FrameScore:
    """How unusual one frame is. `score` is in units of the calibrated normal level (1.0 = the
    `quantile` of held-out warm-up scores); `patch_distances` is the raw per-patch kNN distance."""

    seq: int
    score: float
    patch_score: float  # max patch distance / its normal level
    global_score: float  # global distance / its normal level (0 when use_global is off)
    source: str  # "patch" or "global": which of the two gave `score`
    patch_distances: np.ndarray  # (gh', gw') float32
    heatmap: np.ndarray  # (gh', gw') in [0, 1]: 1 where a patch alone exceeds the threshold
    peak: tuple[float, float]  # normalised (x, y) centre of the most unusual patch
    boxes: tuple[Box, ...]  # the region around the peak, when the peak alone exceeds the threshold
    threshold: float

    def details(self, record: FrameEmbedding) -> dict[str, Any]:
        return {
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


@dataclass
class _Warmup:
    """Collects a warm-up's vectors. Blocks of frames spread over it are held out: at its end they
    are scored against a bank of the other frames (leave-out calibration that samples every
    condition the warm-up saw, a lighting cycle or a pan), then every frame joins the final bank."""

    target: int
    held: list[int]  # warm-up indices (0 .. target-1) that are held out
    per_frame: int  # patch vectors kept per frame for the banks
    seen: int = 0
    fit: list[np.ndarray] = field(default_factory=list)  # subsampled unit patch vectors, fp16
    fit_globals: list[np.ndarray] = field(default_factory=list)
    held_patches: list[np.ndarray] = field(default_factory=list)  # every patch vector, fp16
    held_globals: list[np.ndarray] = field(default_factory=list)
    held_seqs: list[int] = field(default_factory=list)

    @property
    def dims(self) -> tuple[int, int] | None:
        """(patch, global) vector dimensions, once a frame was seen."""
        arrays = self.fit or self.held_patches
        globs = self.fit_globals or self.held_globals
        return (int(arrays[0].shape[-1]), int(globs[0].shape[-1])) if arrays and globs else None


@dataclass
class _Model:
    bank: _Bank
    gbank: _Bank
    cal_patch: np.ndarray  # raw leave-out scores of the warm-up: the threshold is recomputed from
    cal_global: np.ndarray  # them whenever `quantile` changes

    @property
    def dims(self) -> tuple[int, int]:
        """(patch, global) vector dimensions."""
        return int(self.bank.q.shape[1]), int(self.gbank.q.shape[1])

    def levels(self, s: AnomalySettings) -> tuple[float, float]:
        """Normal level of the patch and the global distance: the calibration quantile, floored."""
        lp = float(np.quantile(self.cal_patch, s.quantile)) if self.cal_patch.size else 0.0
        lg = float(np.quantile(self.cal_global, s.quantile)) if self.cal_global.size else 0.0
        return max(lp, s.min_distance), max(lg, s.min_distance)


@dataclass
class _Reservoir:
    """Candidate normal vectors waiting to be merged into the banks, with the seq they came from."""

    patches: np.ndarray  # (n, D) fp16
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
            np.zeros((0, dims[1]), np.float16),
            np.zeros(0, np.int64),
        )

    def drop_from(self, seq: int) -> None:
        """Forget everything learned from frame `seq` on (they were too close to an anomaly)."""
        keep, gkeep = self.patch_seq < seq, self.global_seq < seq
        self.patches, self.patch_seq = self.patches[keep], self.patch_seq[keep]
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


@dataclass
class _Stream:
    warmup: _Warmup | None = None
    model: _Model | None = None
    reservoir: _Reservoir | None = None
    occurrence: _Occurrence | None = None
    cooldown_until: float | None = None  # media time before which no new event opens
    last: FrameScore | None = None  # not saved: only for callers that want every frame's score


# --- the processor ------------------------------------------------------------------------------


class AnomalyDetector(Processor[AnomalySettings]):
    """Per-stream PatchCore-style anomaly detector. Feed each stream's records in order.

    Events: type "anomaly", one id per occurrence, status "open" -> "update"... -> "closed". Open
    and update carry the current frame's heatmap and box, closed carries the peak frame's; score
    is the highest frame score so far, `t_start` the first anomalous frame, `t_end` the last.
    Cost: the warm-up's last frame builds the calibration and final coresets (well under a second
    on a CPU at the defaults); every other frame is one (patches x bank_size) product.

    Adaptation learns only frames scoring below `adapt_below` with no anomalous frame within
    `adapt_guard` frames on either side, so an anomaly that scores above `adapt_below` from its
    first frame is never learned and stays detected for as long as it lasts. What can be learned
    is a change that creeps in so slowly that each step scores below `adapt_below`: at most
    `adapt_patches` vectors per `adapt_every` normal frames, merged every `adapt_interval` frames.
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
        st.last = None
        if st.model is None:
            if st.warmup is None:
                if s.warmup_frames == 0:
                    return []  # waiting for learn()
                st.warmup = self._new_warmup(s.warmup_frames, s)
            self._warm(st, record, s)
            return []
        fs = self._score(st.model, record, s)
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
        them (at least 2 frames). A stream with a model adds what its banks do not already cover
        and keeps its calibration, so frames like these stop being reported. No events are emitted.
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
            st.model, st.reservoir = None, None
            st.warmup = self._new_warmup(len(recs), s)
            for r in recs:
                self._warm(st, r, s)
            return
        if not recs:
            return
        model = st.model
        self._check_dim(model, recs[0])
        cap = WARMUP_VECTORS_PER_BANK_VECTOR * s.bank_size
        per_frame = max(1, cap // len(recs))
        new = np.concatenate([self._subsample(self._patches(r, s), per_frame, r.seq, s) for r in recs])
        glob = np.stack([global_feature(r) for r in recs])
        self._merge(model, new, glob, s)

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
        """Banks (int8 with per-row scales, base64), calibration scores, reservoir and the open
        occurrence: about (bank_size + reservoir_size) x patch dims bytes x 4/3, under 1 MB for
        ViT-S/16 at the defaults. During a warm-up it holds the warm-up's vectors (megabytes):
        a worker that cannot save that much repeats the warm-up after a restart."""
        st = self._streams.get(stream)
        if st is None:
            return {}
        out: dict[str, Any] = {"v": STATE_VERSION, "cooldown_until": st.cooldown_until}
        if st.warmup is not None:
            w = st.warmup
            dim = w.dims[0] if w.dims else 0
            out["warmup"] = {
                "target": w.target,
                "held": w.held,
                "per_frame": w.per_frame,
                "seen": w.seen,
                "fit": encode_array(np.concatenate(w.fit) if w.fit else np.zeros((0, dim), np.float16)),
                "fit_globals": [encode_array(g) for g in w.fit_globals],
                "held_patches": [encode_array(p) for p in w.held_patches],
                "held_globals": [encode_array(g) for g in w.held_globals],
                "held_seqs": w.held_seqs,
            }
        if st.model is not None:
            m = st.model
            out["model"] = {
                "bank": m.bank.to_dict(),
                "gbank": m.gbank.to_dict(),
                "cal_patch": m.cal_patch.tolist(),
                "cal_global": m.cal_global.tolist(),
            }
        if st.reservoir is not None:
            r = st.reservoir
            out["reservoir"] = {
                "patches": encode_array(r.patches),
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
            }
        return out

    def restore(self, stream: str, state: dict[str, Any]) -> None:
        if not state:
            self._streams.pop(stream, None)
            return
        if state.get("v") != STATE_VERSION:
            raise ValueError(f"anomaly state of stream {stream} has version {state.get('v')}, expected {STATE_VERSION}")
        st = _Stream(cooldown_until=state["cooldown_until"])
        if "warmup" in state:
            w = state["warmup"]
            fit = decode_array(w["fit"])
            st.warmup = _Warmup(
                target=int(w["target"]),
                held=[int(i) for i in w["held"]],
                per_frame=int(w["per_frame"]),
                seen=int(w["seen"]),
                fit=[fit] if len(fit) else [],
                fit_globals=[decode_array(g) for g in w["fit_globals"]],
                held_patches=[decode_array(p) for p in w["held_patches"]],
                held_globals=[decode_array(g) for g in w["held_globals"]],
                held_seqs=[int(q) for q in w["held_seqs"]],
            )
        if "model" in state:
            m = state["model"]
            st.model = _Model(
                bank=_Bank.from_dict(m["bank"]),
                gbank=_Bank.from_dict(m["gbank"]),
                cal_patch=np.asarray(m["cal_patch"], dtype=np.float64),
                cal_global=np.asarray(m["cal_global"], dtype=np.float64),
            )
        if "reservoir" in state:
            r = state["reservoir"]
            st.reservoir = _Reservoir(
                patches=decode_array(r["patches"]),
                patch_seq=np.asarray(r["patch_seq"], dtype=np.int64),
                globals=decode_array(r["globals"]),
                global_seq=np.asarray(r["global_seq"], dtype=np.int64),
                eligible=int(r["eligible"]),
                since_merge=int(r["since_merge"]),
                last_hot=r["last_hot"],
            )
        if "occurrence" in state:
            o = state["occurrence"]
            st.occurrence = _Occurrence(**o)
        self._streams[stream] = st

    # --- warm-up ----------------------------------------------------------------------------------

    @staticmethod
    def _new_warmup(target: int, s: AnomalySettings) -> _Warmup:
        period = max(2, round(1 / s.holdout_fraction))
        block = max(1, min(HOLDOUT_BLOCK, target // (2 * period)))
        held = [i for i in range(target) if (i // block) % period == period - 1] or [target - 1]
        held = held[:: math.ceil(len(held) / MAX_HELD_FRAMES)]
        per_frame = max(1, WARMUP_VECTORS_PER_BANK_VECTOR * s.bank_size // target)
        return _Warmup(target=target, held=held, per_frame=per_frame)

    def _warm(self, st: _Stream, record: FrameEmbedding, s: AnomalySettings) -> None:
        w = st.warmup
        assert w is not None
        feats = self._patches(record, s).astype(np.float16)
        glob = global_feature(record).astype(np.float16)
        if w.dims is not None and w.dims != (feats.shape[1], glob.shape[0]):
            raise ValueError(
                f"stream {record.stream}: record dims (patch {feats.shape[1]}, global {glob.shape[0]}) differ from "
                f"the warm-up's {w.dims}; reset() the stream after changing the model"
            )
        if w.seen in w.held:
            w.held_patches.append(feats)
            w.held_globals.append(glob)
            w.held_seqs.append(record.seq)
        else:
            w.fit.append(self._subsample(feats, w.per_frame, record.seq, s))
            w.fit_globals.append(glob)
        w.seen += 1
        if w.seen >= w.target:
            st.model = self._calibrate(w, s)
            st.warmup = None

    def _calibrate(self, w: _Warmup, s: AnomalySettings) -> _Model:
        """The final banks from every warm-up frame, and the leave-out scores of the held-out frames
        against banks of the others, reduced in the same proportion so their coverage matches."""
        fit = np.concatenate(w.fit).astype(np.float32)
        fitg = np.stack(w.fit_globals).astype(np.float32)
        held = [self._subsample(p, w.per_frame, seq, s) for p, seq in zip(w.held_patches, w.held_seqs, strict=True)]
        allp = np.concatenate([fit, *held]).astype(np.float32)
        allg = np.concatenate([fitg, np.stack(w.held_globals).astype(np.float32)])
        cal = self._coreset(fit, max(1, round(s.bank_size * len(fit) / len(allp))), s)
        calg = self._coreset(fitg, max(1, round(s.global_bank_size * len(fitg) / len(allg))), s)
        cal_patch = [float(knn_distance(p.astype(np.float32), cal.vectors, s.k).max()) for p in w.held_patches]
        cal_global = [float(knn_distance(g[None].astype(np.float32), calg.vectors, s.k)[0]) for g in w.held_globals]
        return _Model(
            bank=self._coreset(allp, s.bank_size, s),
            gbank=self._coreset(allg, s.global_bank_size, s),
            cal_patch=np.asarray(cal_patch, dtype=np.float64),
            cal_global=np.asarray(cal_global, dtype=np.float64),
        )

    # --- scoring ----------------------------------------------------------------------------------

    def _patches(self, record: FrameEmbedding, s: AnomalySettings) -> np.ndarray:
        """The frame's unit patch vectors as rows, (gh' * gw', D)."""
        grid = patch_features(record.patches, pool=s.pool, neighbourhood=s.neighbourhood)
        return grid.reshape(-1, grid.shape[-1])

    def _score(self, model: _Model, record: FrameEmbedding, s: AnomalySettings) -> FrameScore:
        self._check_dim(model, record)
        gh0, gw0, _ = record.patches.shape
        grid = patch_features(record.patches, pool=s.pool, neighbourhood=s.neighbourhood)
        gh, gw, d = grid.shape
        dist = knn_distance(grid.reshape(-1, d), model.bank.vectors, s.k).reshape(gh, gw).astype(np.float32)
        level_p, level_g = model.levels(s)
        patch_score = float(dist.max()) / level_p
        global_score = 0.0
        if s.use_global:
            global_score = float(knn_distance(global_feature(record)[None], model.gbank.vectors, s.k)[0]) / level_g
        score, source = (global_score, "global") if global_score > patch_score else (patch_score, "patch")
        alarm = level_p * s.threshold
        heat = np.clip(dist / alarm, 0.0, 1.0)
        pi, pj = np.unravel_index(int(np.argmax(dist)), dist.shape)
        rows = _cell_edges(gh0, s.pool, gh)
        cols = _cell_edges(gw0, s.pool, gw)
        peak = ((cols[pj] + cols[pj + 1]) / 2.0, (rows[pi] + rows[pi + 1]) / 2.0)
        boxes: tuple[Box, ...] = ()
        if float(dist[pi, pj]) > alarm:
            level = max(level_p, s.box_fraction * float(dist[pi, pj]))
            i0, i1, j0, j1 = _component_bounds(dist >= level, int(pi), int(pj))
            boxes = (Box(cols[j0], rows[i0], cols[j1 + 1], rows[i1 + 1], score=patch_score, label=KIND),)
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

    @staticmethod
    def _check_dim(model: _Model, record: FrameEmbedding) -> None:
        dims = (int(record.patches.shape[2]), 2 * record.dim)
        if dims != model.dims:
            raise ValueError(
                f"stream {record.stream}: record dims (patch, global) {dims} differ from its model of normal "
                f"{model.dims}; reset() the stream after changing the model"
            )

    # --- lifecycle --------------------------------------------------------------------------------

    def _lifecycle(
        self, st: _Stream, record: FrameEmbedding, fs: FrameScore, hot: bool, s: AnomalySettings
    ) -> list[Event]:
        occ = st.occurrence
        if hot:
            if occ is None:
                if st.cooldown_until is not None and record.pts < st.cooldown_until:
                    return []
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
                occ.announced = True
                return [self._event(record.stream, occ, "open", ts=record.ts, current=(fs, record))]
            if occ.announced:
                return [self._event(record.stream, occ, "update", ts=record.ts, current=(fs, record))]
            return []
        if occ is None:
            return []
        if not occ.announced:  # the streak broke before it was confirmed
            st.occurrence = None
            return []
        occ.run = 0
        occ.calm += 1
        if occ.calm < s.close_after:
            return []
        st.occurrence = None
        st.cooldown_until = record.pts + s.cooldown_s
        return [self._event(record.stream, occ, "closed", ts=record.ts)]

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
            st.reservoir = _Reservoir.empty(model.dims)
        r = st.reservoir
        if hot:  # tracked even while adaptation is off, so turning it on never learns a fresh anomaly
            r.last_hot = record.seq
            r.drop_from(record.seq - s.adapt_guard)
        if not s.adapt:
            return
        calm = r.last_hot is None or record.seq - r.last_hot > s.adapt_guard
        clearly_normal = fs.score < min(s.adapt_below, s.threshold)
        if calm and clearly_normal and st.occurrence is None:
            r.eligible += 1
            if r.eligible % s.adapt_every == 0:
                picked = self._subsample(self._patches(record, s), s.adapt_patches, record.seq, s)
                rng = np.random.default_rng([s.seed, record.seq, 1])
                r.patches, r.patch_seq = _reservoir_add(
                    r.patches, r.patch_seq, picked.astype(np.float16), record.seq, s.reservoir_size, rng
                )
                r.globals, r.global_seq = _reservoir_add(
                    r.globals,
                    r.global_seq,
                    global_feature(record)[None].astype(np.float16),
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
        self._merge(model, r.patches[ripe].astype(np.float32), r.globals[gripe].astype(np.float32), s)
        r.patches, r.patch_seq = r.patches[~ripe], r.patch_seq[~ripe]
        r.globals, r.global_seq = r.globals[~gripe], r.global_seq[~gripe]

    # --- helpers ----------------------------------------------------------------------------------

    def _merge(self, model: _Model, patches: np.ndarray, globs: np.ndarray, s: AnomalySettings) -> None:
        """Add normal vectors to the banks. Only those the bank does not already cover (nearest bank
        vector farther than NOVEL_FRACTION of the normal level) are added, then the bank is cut back
        to its size by coreset selection: re-selecting among covered duplicates would only thin out
        what the bank knows."""
        level_p, level_g = model.levels(s)
        for x, attr, level, size in (
            (patches, "bank", level_p, s.bank_size),
            (globs, "gbank", level_g, s.global_bank_size),
        ):
            bank: _Bank = getattr(model, attr)
            if not len(x):
                continue
            novel = x[knn_distance(x, bank.vectors, 1) > NOVEL_FRACTION * level]
            if len(novel):
                setattr(model, attr, self._coreset(np.concatenate([bank.vectors, novel]), size, s))

    def _coreset(self, x: np.ndarray, m: int, s: AnomalySettings) -> _Bank:
        return _Bank.quantise(x[greedy_coreset(x, m, self._projection(x.shape[1], s))])

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
    def _subsample(rows: np.ndarray, n: int, seq: int, s: AnomalySettings) -> np.ndarray:
        """`n` rows chosen at random (reproducibly: seeded by the frame's seq), or all of them."""
        if len(rows) <= n:
            return rows
        rng = np.random.default_rng([s.seed, seq])
        return rows[np.sort(rng.choice(len(rows), size=n, replace=False))]


def _reservoir_add(
    rows: np.ndarray, seqs: np.ndarray, new: np.ndarray, seq: int, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Append `new` rows (from frame `seq`); beyond `size`, random rows make room, so a full
    reservoir keeps a mix of old and recent frames (old ones are the ones ripe for merging)."""
    rows = np.concatenate([rows, new])
    seqs = np.concatenate([seqs, np.full(len(new), seq, dtype=np.int64)])
    if len(rows) > size:
        keep = np.sort(rng.choice(len(rows), size=size, replace=False))
        rows, seqs = rows[keep], seqs[keep]
    return rows, seqs


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


def _component_bounds(mask: np.ndarray, i: int, j: int) -> tuple[int, int, int, int]:
    """Row and column bounds (inclusive) of the 8-connected region of `mask` holding (i, j)."""
    seeded = np.array(mask, dtype=bool)
    seeded[i, j] = True  # the seed belongs to its region even where the mask is off
    labels, _ = ndimage.label(seeded, structure=_EIGHT_CONNECTED)
    rows, cols = ndimage.find_objects(labels)[labels[i, j] - 1]
    return rows.start, rows.stop - 1, cols.start, cols.stop - 1

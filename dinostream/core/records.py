"""The wire contract: records that cross Kafka between stages, defined once.

A `FrameEmbedding` is binary: a 4-byte magic with the version, a length-prefixed JSON header
that describes the arrays, then the raw little-endian fp16 arrays and the JPEG thumbnail.
An `Event` is small and read by people and browsers, so it is JSON.

Only this module knows the byte layout. Each record also owns its other conversions: the
payload the vector index stores (`to_index_payload`, and back), the JSON the websocket sends
(`Event.to_json`), and `FrameHeader`, the view of a frame record for consumers that need no
arrays (its fields and thumbnail, read without touching the arrays).

A frame record may carry a `Jump`: where the picture changed most between the previous sampled
frame and this one, seen by the decoder on the frames in between (a cut's time to the frame,
where the samples alone place it only within a sampling interval).

A `FramePreview` is what the live view needs of a frame, sent on a topic of its own beside the
whole record: the header's fields, the thumbnail and where the whole record is (partition and
offset in the embeddings topic), a few KB where the whole ViT-S/16 record is ~155 KB.

    >>> rec = FrameEmbedding.decode(data)          # bytes from the embeddings topic
    >>> rec.patches.shape                          # (grid_h, grid_w, dim), float16
    >>> FrameHeader.decode(data).thumbnail         # the JPEG, arrays left alone
    >>> FramePreview.decode(rec.preview(3, 1234).encode()).at   # (3, 1234)
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
import struct
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from dinostream.core.half import to_f32

WIRE_VERSION = 1
_T = TypeVar("_T")
_MAGIC = b"DSE"
_PREVIEW_MAGIC = b"DSP"
_HEADER_LEN = struct.Struct("<I")
_STREAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Namespace for deterministic ids: the same (stream, frame) always maps to the same point id.
ID_NAMESPACE = uuid.UUID("6f1c7f0e-3c1a-4b8e-9a55-d1e05c0a7d3b")
# The frame payload field that holds the thumbnail (base64 JPEG); the index reads it alone.
INDEX_THUMB_FIELD = "thumb"


class RecordError(ValueError):
    """A record is malformed: raised on construction or decoding, never later."""


def check_stream_id(stream: str) -> str:
    """Return `stream` if it is a valid stream id (letters, digits, `_.-`, at most 64), else raise."""
    if not isinstance(stream, str) or not _STREAM_ID.match(stream):
        raise RecordError(f"invalid stream id {stream!r}: use 1-64 of letters, digits, '_', '.', '-'")
    return stream


def frame_point_id(stream: str, seq: int) -> str:
    """Deterministic id of a sampled frame, so a redelivered record overwrites instead of duplicating."""
    return str(uuid.uuid5(ID_NAMESPACE, f"frame/{stream}/{seq}"))


def event_id(stream: str, kind: str, key: int | str) -> str:
    """Deterministic id of an event occurrence (stream, type, the frame that opened it)."""
    return str(uuid.uuid5(ID_NAMESPACE, f"event/{stream}/{kind}/{key}"))


def _f16(name: str, arr: np.ndarray, ndim: int) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != ndim:
        raise RecordError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    if a.dtype != np.float16:
        a = a.astype(np.float16)
    a = np.ascontiguousarray(a)
    # NaN and inf are the fp16 patterns with every exponent bit set: testing the bits is ~15x
    # faster than np.isfinite on fp16 (0.007 vs 0.11 ms for a ViT-S/16 grid), paid by every reader.
    if int((a.view(np.uint16) & 0x7C00).max(initial=0)) == 0x7C00:
        raise RecordError(f"{name} contains NaN or infinite values")
    return a


def _check_frame_fields(
    stream: str, seq: int, pts: float, ts: float, thumbnail: bytes, version: int, jump: Jump | None = None
) -> None:
    """The checks a frame's fields pass, whether the record is decoded whole or only its header."""
    check_stream_id(stream)
    if not isinstance(seq, int) or seq < 0:
        raise RecordError(f"seq must be a non-negative int, got {seq!r}")
    for name, v in (("pts", pts), ("ts", ts)):
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            raise RecordError(f"{name} must be a finite number, got {v!r}")
    if thumbnail and not thumbnail.startswith(b"\xff\xd8"):
        raise RecordError("thumbnail must be a JPEG")
    if version != WIRE_VERSION:
        raise RecordError(f"unsupported wire version {version}")
    if jump is not None and not (isinstance(jump, Jump) and jump.t <= pts):
        raise RecordError(f"jump must be a Jump at or before the frame's pts {pts!r}, got {jump!r}")


@dataclass(frozen=True)
class Jump:
    """The largest picture step the decoder saw from the previous sampled frame of a stream up to
    this one, over every frame it decoded in between: `t`, half way between the two decoded frames
    around it (media seconds); `size`, its mean absolute grey-level step (0-255) on a sparse grid
    of luma points; `runner_up`, the next largest step in the same span (ingest sends no jump for a
    span of one step: it says nothing the two samples do not).
    A step far larger than the runner-up is one change (a cut); comparable steps are motion, a
    flash or a dissolve. Two spans in a row combine exactly (`then`), so records subsampled to a
    lower rate keep the facts of the longer span."""

    t: float
    size: float
    runner_up: float = 0.0

    def __post_init__(self) -> None:
        for name, v in (("t", self.t), ("size", self.size), ("runner_up", self.runner_up)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise RecordError(f"jump {name} must be a finite number, got {v!r}")
        if not 0 <= self.runner_up <= self.size:
            raise RecordError(f"jump steps must satisfy 0 <= runner_up <= size, got {self.runner_up!r}, {self.size!r}")

    def then(self, later: Jump | None) -> Jump | None:
        """The jump over this span and the `later` one that follows it (None: the later span's
        frames are unknown, so is the largest step over both)."""
        if later is None:
            return None
        big, small = (self, later) if self.size >= later.size else (later, self)
        return Jump(big.t, big.size, max(big.runner_up, small.size))

    @staticmethod
    def over(spans: Sequence[Jump | None]) -> Jump | None:
        """The jump over consecutive spans, oldest first (the records a lower rate skips, then the
        one it keeps); None when there are none or any is unknown."""
        if not spans:
            return None
        out = spans[0]
        for later in spans[1:]:
            out = out.then(later) if out is not None else None
        return out

    def dominates(self, ratio: float) -> bool:
        """Whether the largest step is at least `ratio` times the next one: a single change."""
        return self.size > 0 and self.size >= ratio * self.runner_up

    def to_list(self) -> list[float]:
        return [self.t, self.size, self.runner_up]

    @classmethod
    def from_list(cls, v: object) -> Jump:
        if not isinstance(v, list) or len(v) != 3:
            raise RecordError(f"jump must be [t, size, runner_up], got {v!r}")
        return cls(*v)


@dataclass(frozen=True, eq=False)
class FrameEmbedding:
    """The DINOv3 stage's output for one sampled frame."""

    stream: str
    seq: int  # index of the sampled frame within its stream, monotonic
    pts: float  # media time in seconds
    ts: float  # capture wall-clock time, unix seconds
    model: str  # model id it was computed with
    untrained: bool  # True when weights are random (features carry no meaning)
    cls: np.ndarray  # (dim,) float16
    pooled: np.ndarray  # (dim,) float16, mean of the patch tokens
    patches: np.ndarray  # (grid_h, grid_w, dim) float16
    thumbnail: bytes = b""  # JPEG
    version: int = field(default=WIRE_VERSION)
    jump: Jump | None = None  # the largest picture step since the previous sampled frame, where known

    def __post_init__(self) -> None:
        _check_frame_fields(self.stream, self.seq, self.pts, self.ts, self.thumbnail, self.version, self.jump)
        cls = _f16("cls", self.cls, 1)
        pooled = _f16("pooled", self.pooled, 1)
        patches = _f16("patches", self.patches, 3)
        dim = cls.shape[0]
        # The patch grid may be narrower than the CLS when it was reduced by PCA (header "pdim").
        if pooled.shape != (dim,) or not 1 <= patches.shape[2] <= dim:
            raise RecordError(f"dims disagree: cls {cls.shape}, pooled {pooled.shape}, patches {patches.shape}")
        object.__setattr__(self, "cls", cls)
        object.__setattr__(self, "pooled", pooled)
        object.__setattr__(self, "patches", patches)

    @property
    def dim(self) -> int:
        return int(self.cls.shape[0])

    @functools.cached_property
    def patches_f32(self) -> np.ndarray:
        """`patches` as float32 (read-only), converted once per record however many readers need it."""
        out = to_f32(self.patches)  # numpy's own conversion is a few times slower (dinostream.core.half)
        out.flags.writeable = False
        return out

    @functools.cached_property
    def unit_patches(self) -> np.ndarray:
        """Each patch vector scaled to unit length, (grid_h, grid_w, patch_dim) float32 (read-only;
        zero vectors stay zero): the per-frame work the processors share, computed once."""
        p = self.patches_f32
        out = p / np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), 1e-12)
        out.flags.writeable = False
        return out

    def derived(self, fn: Callable[[FrameEmbedding], _T]) -> _T:
        """`fn(self)`, computed on the first call for this record and the same object for every
        later call with the same `fn`: per-frame work several readers share (a thumbnail decoded
        once, not once per processor). `fn` is a module-level pure function of the record, its
        result is treated as read-only, and it is not part of the record (not encoded, not compared)."""
        memo: dict[object, Any] = self.__dict__.setdefault("_derived", {})
        if fn not in memo:
            memo[fn] = fn(self)
        return memo[fn]

    @property
    def patch_dim(self) -> int:
        """Dimension of each patch vector: `dim`, or fewer when the stage reduces patches by PCA."""
        return int(self.patches.shape[2])

    @property
    def point_id(self) -> str:
        return frame_point_id(self.stream, self.seq)

    @property
    def key(self) -> bytes:
        """Kafka key: the stream, so each camera stays in order on one partition."""
        return self.stream.encode()

    @property
    def header(self) -> FrameHeader:
        """This record as `FrameHeader.decode` reads it from the encoded bytes."""
        gh, gw, _ = self.patches.shape
        return FrameHeader(
            self.stream,
            self.seq,
            self.pts,
            self.ts,
            self.model,
            self.untrained,
            self.dim,
            self.patch_dim,
            (gh, gw),
            self.thumbnail,
            self.version,
            self.jump,
        )

    def preview(self, partition: int, offset: int) -> FramePreview:
        """This frame's preview, for a record written at `offset` of `partition` of the embeddings topic."""
        return FramePreview(
            self.stream, self.seq, self.pts, self.ts, self.model, self.untrained, partition, offset, self.thumbnail
        )

    def encode(self) -> bytes:
        gh, gw, pdim = self.patches.shape
        dim = self.dim
        header: dict[str, Any] = {
            "stream": self.stream,
            "seq": self.seq,
            "pts": self.pts,
            "ts": self.ts,
            "model": self.model,
            "untrained": self.untrained,
            "dim": dim,
            "grid": [gh, gw],
            "thumb": len(self.thumbnail),
        }
        if pdim != dim:  # only then, so records without PCA stay byte-identical to older writers'
            header["pdim"] = pdim
        if self.jump is not None:  # likewise; older readers ignore it
            header["jump"] = self.jump.to_list()
        hb = json.dumps(header, separators=(",", ":")).encode()
        le = "<f2"
        return b"".join(
            (
                _MAGIC,
                bytes([self.version]),
                _HEADER_LEN.pack(len(hb)),
                hb,
                self.cls.astype(le, copy=False).tobytes(),
                self.pooled.astype(le, copy=False).tobytes(),
                self.patches.astype(le, copy=False).tobytes(),
                self.thumbnail,
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> FrameEmbedding:
        h, off = _read_header(data)
        (gh, gw), pdim = h.grid, h.patch_dim
        arrays = []
        for n in (h.dim, h.dim, gh * gw * pdim):
            arrays.append(np.frombuffer(data, dtype="<f2", count=n, offset=off).astype(np.float16, copy=False))
            off += 2 * n
        return cls(
            stream=h.stream,
            seq=h.seq,
            pts=h.pts,
            ts=h.ts,
            model=h.model,
            untrained=h.untrained,
            cls=arrays[0],
            pooled=arrays[1],
            patches=arrays[2].reshape(gh, gw, pdim),
            thumbnail=h.thumbnail,
            version=h.version,
            jump=h.jump,
        )

    def to_index_payload(self) -> dict[str, Any]:
        """What the vector index stores beside this frame's vectors: stream, seq, t (media seconds),
        ts (wall clock), model, untrained and the thumbnail (base64 JPEG, `INDEX_THUMB_FIELD`)."""
        return {
            "stream": self.stream,
            "seq": self.seq,
            "t": float(self.pts),
            "ts": float(self.ts),
            "model": self.model,
            "untrained": self.untrained,
            INDEX_THUMB_FIELD: base64.b64encode(self.thumbnail).decode("ascii"),
        }

    @staticmethod
    def thumbnail_from_index_payload(payload: Mapping[str, Any] | None) -> bytes | None:
        """The JPEG a stored frame payload holds; None when the frame was stored without one."""
        b64 = (payload or {}).get(INDEX_THUMB_FIELD)
        if not b64:
            return None
        return base64.b64decode(b64)


@dataclass(frozen=True)
class FrameHeader:
    """A frame embedding record without its arrays: what consumers that need no features (live
    thumbnails, a buffer of recent records) read of each record. Decoding it never touches the
    arrays, and it equals the whole record's `FrameEmbedding.header`.

        >>> h = FrameHeader.decode(data)
        >>> h.stream, h.seq, h.thumbnail
    """

    stream: str
    seq: int
    pts: float
    ts: float
    model: str
    untrained: bool
    dim: int  # of cls and pooled
    patch_dim: int  # of each patch vector: dim, or fewer when reduced by PCA
    grid: tuple[int, int]  # patch rows, columns
    thumbnail: bytes = b""  # JPEG
    version: int = WIRE_VERSION
    jump: Jump | None = None

    def __post_init__(self) -> None:
        _check_frame_fields(self.stream, self.seq, self.pts, self.ts, self.thumbnail, self.version, self.jump)

    @classmethod
    def decode(cls, data: bytes) -> FrameHeader:
        """The header of an encoded `FrameEmbedding` (checked against the record's length)."""
        return _read_header(data)[0]


def _read_header(data: bytes) -> tuple[FrameHeader, int]:
    """The header of an encoded frame record and the offset of its first array."""
    h, start = _json_header(data, _MAGIC, "frame embedding", _FRAME_FIELDS)
    dim, pdim, grid, thumb = h["dim"], h.get("pdim", h["dim"]), h["grid"], h["thumb"]
    if not _is_count(pdim) or not _is_count(dim) or not 1 <= pdim <= dim:
        raise RecordError(f"frame embedding header has invalid dims: dim {dim!r}, pdim {pdim!r}")
    if not isinstance(grid, list) or len(grid) != 2 or not all(_is_count(g) for g in grid):
        raise RecordError(f"frame embedding header has an invalid grid {grid!r}")
    if not _is_count(thumb):
        raise RecordError(f"frame embedding header has an invalid thumbnail length {thumb!r}")
    expected = start + 2 * (2 * dim + grid[0] * grid[1] * pdim) + thumb
    if expected != len(data):
        raise RecordError(f"frame embedding record is {len(data)} bytes, header says {expected}")
    header = FrameHeader(
        stream=h["stream"],
        seq=h["seq"],
        pts=h["pts"],
        ts=h["ts"],
        model=h["model"],
        untrained=h["untrained"],
        dim=dim,
        patch_dim=pdim,
        grid=(grid[0], grid[1]),
        thumbnail=bytes(data[len(data) - thumb :]),
        version=data[3],
        jump=Jump.from_list(h["jump"]) if h.get("jump") is not None else None,
    )
    return header, start


@dataclass(frozen=True)
class FramePreview:
    """What the live view reads of a frame: its fields, its thumbnail, and where its whole record is
    (`partition`, `offset` in the embeddings topic: a click on the frame reads it from there).

    Binary like the whole record: magic `DSP` with the version, a length-prefixed JSON header, the JPEG.

        >>> p = FramePreview.decode(data)          # bytes from the previews topic
        >>> p.stream, p.seq, p.at, p.thumbnail
    """

    stream: str
    seq: int
    pts: float
    ts: float
    model: str
    untrained: bool
    partition: int  # of the whole record in the embeddings topic
    offset: int
    thumbnail: bytes = b""  # JPEG
    version: int = WIRE_VERSION

    def __post_init__(self) -> None:
        _check_frame_fields(self.stream, self.seq, self.pts, self.ts, self.thumbnail, self.version)
        if not _is_count(self.partition) or not _is_count(self.offset):
            raise RecordError(
                f"frame preview needs a partition and offset >= 0, got {self.partition!r}, {self.offset!r}"
            )
        if not isinstance(self.model, str) or not isinstance(self.untrained, bool):
            raise RecordError(
                f"frame preview model must be text and untrained a bool, got {self.model!r}, {self.untrained!r}"
            )

    @property
    def at(self) -> tuple[int, int]:
        """(partition, offset) of the whole record in the embeddings topic."""
        return self.partition, self.offset

    @property
    def key(self) -> bytes:
        """Kafka key: the stream, as the whole record's."""
        return self.stream.encode()

    def encode(self) -> bytes:
        header = {
            "stream": self.stream,
            "seq": self.seq,
            "pts": self.pts,
            "ts": self.ts,
            "model": self.model,
            "untrained": self.untrained,
            "at": [self.partition, self.offset],
        }
        hb = json.dumps(header, separators=(",", ":")).encode()
        return b"".join((_PREVIEW_MAGIC, bytes([self.version]), _HEADER_LEN.pack(len(hb)), hb, self.thumbnail))

    @classmethod
    def decode(cls, data: bytes) -> FramePreview:
        h, start = _json_header(data, _PREVIEW_MAGIC, "frame preview", _PREVIEW_FIELDS)
        at = h["at"]
        if not isinstance(at, list) or len(at) != 2:
            raise RecordError(f"frame preview header has an invalid position {at!r}")
        return cls(
            stream=h["stream"],
            seq=h["seq"],
            pts=h["pts"],
            ts=h["ts"],
            model=h["model"],
            untrained=h["untrained"],
            partition=at[0],
            offset=at[1],
            thumbnail=bytes(data[start:]),
            version=data[3],
        )


_FRAME_FIELDS = frozenset({"stream", "seq", "pts", "ts", "model", "untrained", "dim", "grid", "thumb"})
_PREVIEW_FIELDS = frozenset({"stream", "seq", "pts", "ts", "model", "untrained", "at"})


def _json_header(data: bytes, magic: bytes, what: str, need: frozenset[str]) -> tuple[dict[str, Any], int]:
    """The JSON header of an encoded binary record (magic, version byte, 4-byte length, JSON) that
    holds at least the fields `need`, and the offset after it; RecordError naming `what` otherwise."""
    if len(data) < 8 or data[:3] != magic:
        raise RecordError(f"not a dinostream {what} record")
    if data[3] != WIRE_VERSION:
        raise RecordError(f"unsupported wire version {data[3]}")
    (n,) = _HEADER_LEN.unpack_from(data, 4)
    if 8 + n > len(data):
        raise RecordError(f"{what} record is {len(data)} bytes, shorter than its {n}-byte header")
    try:
        h = json.loads(data[8 : 8 + n])
    except ValueError as e:
        raise RecordError(f"{what} header is not JSON: {e}") from None
    if not isinstance(h, dict) or not need <= h.keys():
        missing = sorted(need - set(h)) if isinstance(h, dict) else sorted(need)
        raise RecordError(f"{what} header lacks {missing}")
    return h, 8 + n


def _is_count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


EVENT_TYPES = ("scene_change", "anomaly", "reid", "watchlist", "phase", "quality", "error")
EVENT_STATUSES = ("open", "update", "closed")


@dataclass(frozen=True)
class Box:
    """A region of the frame in normalised coordinates (0..1, origin top-left)."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0
    label: str = ""

    def __post_init__(self) -> None:
        for name in ("x0", "y0", "x1", "y1", "score"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise RecordError(f"box {name} must be a finite number, got {v!r}")
        if not (0 <= self.x0 <= self.x1 <= 1 and 0 <= self.y0 <= self.y1 <= 1):
            raise RecordError(f"box must satisfy 0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1, got {self}")

    def to_dict(self) -> dict[str, Any]:
        return {"x0": self.x0, "y0": self.y0, "x1": self.x1, "y1": self.y1, "score": self.score, "label": self.label}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Box:
        try:
            return cls(**d)
        except TypeError as e:
            raise RecordError(f"malformed box: {e}") from None


@dataclass(frozen=True, eq=False)
class Heatmap:
    """A coarse per-patch score grid (e.g. anomaly localisation), values 0..1, quantised to uint8."""

    values: np.ndarray  # (grid_h, grid_w) float in [0, 1]

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=np.float32)
        if v.ndim != 2 or v.size == 0 or v.size > 128 * 128:
            raise RecordError(f"heatmap must be a non-empty 2-D grid of at most 128x128, got shape {v.shape}")
        if not np.isfinite(v).all():
            raise RecordError("heatmap contains NaN or infinite values")
        object.__setattr__(self, "values", np.clip(v, 0.0, 1.0))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Heatmap) and np.array_equal(self.quantised(), other.quantised())

    def quantised(self) -> np.ndarray:
        return np.round(self.values * 255).astype(np.uint8)

    def to_dict(self) -> dict[str, Any]:
        h, w = self.values.shape
        return {"h": h, "w": w, "u8": base64.b64encode(self.quantised().tobytes()).decode()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Heatmap:
        try:
            raw = np.frombuffer(base64.b64decode(d["u8"], validate=True), dtype=np.uint8)
            return cls(raw.reshape(int(d["h"]), int(d["w"])).astype(np.float32) / 255.0)
        except (KeyError, TypeError, ValueError) as e:
            raise RecordError(f"malformed heatmap: {e}") from None


@dataclass(frozen=True)
class Event:
    """One occurrence an operator may act on.

    An ongoing occurrence (an anomaly that lasts, a phase) is one event: it is sent with
    status "open", re-sent with "update" as `t_end` and `score` grow, and "closed" at the end,
    always under the same `id`. Instant occurrences (a cut) are sent once, "closed".
    `frames` are seq numbers of the stream's frames (thumbnails at /api/v1/frames/{stream}/{seq}).
    """

    id: str
    type: str
    stream: str
    t: float  # media seconds of the occurrence (for a cut: the first frame after it)
    t_start: float
    t_end: float
    ts: float  # wall-clock unix seconds of the frame that triggered it
    score: float
    frames: tuple[int, ...] = ()  # seq numbers of the frames it refers to (e.g. before, after)
    details: dict[str, Any] = field(default_factory=dict)
    status: str = "closed"
    boxes: tuple[Box, ...] = ()
    heatmap: Heatmap | None = None
    version: int = WIRE_VERSION

    def __post_init__(self) -> None:
        check_stream_id(self.stream)
        if self.type not in EVENT_TYPES:
            raise RecordError(f"unknown event type {self.type!r}; known: {', '.join(EVENT_TYPES)}")
        if self.status not in EVENT_STATUSES:
            raise RecordError(f"unknown event status {self.status!r}; known: {', '.join(EVENT_STATUSES)}")
        for name in ("t", "t_start", "t_end", "ts", "score"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise RecordError(f"event {name} must be a finite number, got {v!r}")
        if self.t_end < self.t_start:
            raise RecordError(f"event ends ({self.t_end}) before it starts ({self.t_start})")
        if self.version != WIRE_VERSION:
            raise RecordError(f"unsupported wire version {self.version}")
        object.__setattr__(self, "frames", tuple(int(f) for f in self.frames))
        object.__setattr__(self, "boxes", tuple(self.boxes))

    @property
    def key(self) -> bytes:
        return self.stream.encode()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "stream": self.stream,
            "t": self.t,
            "t_start": self.t_start,
            "t_end": self.t_end,
            "ts": self.ts,
            "score": self.score,
            "frames": list(self.frames),
            "details": self.details,
            "status": self.status,
            "boxes": [b.to_dict() for b in self.boxes],
            "heatmap": None if self.heatmap is None else self.heatmap.to_dict(),
            "version": self.version,
        }

    def encode(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    def to_json(self) -> str:
        """The event as browsers read it (the websocket): compact JSON text of `to_dict()`. Raises
        RecordError when `details` is not plain JSON (NaN or infinity, which browsers refuse)."""
        try:
            return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as e:
            raise RecordError(f"event {self.id!r} is not plain JSON: {e}") from None

    def to_index_payload(self) -> dict[str, Any]:
        """What the vector index stores for this event (a point without vectors): `to_dict()`, whose
        stream, type, t and ts it filters on."""
        return self.to_dict()

    @classmethod
    def from_index_payload(cls, payload: Mapping[str, Any]) -> Event:
        """The event a stored payload holds; RecordError when it holds none."""
        return cls.from_dict(dict(payload))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        try:
            boxes = tuple(Box.from_dict(b) for b in d.get("boxes") or ())
            heatmap = Heatmap.from_dict(d["heatmap"]) if d.get("heatmap") else None
            return cls(**{**d, "frames": tuple(d.get("frames", ())), "boxes": boxes, "heatmap": heatmap})
        except RecordError:
            raise
        except (TypeError, ValueError) as e:  # e.g. a frame number that is no number
            raise RecordError(f"malformed event: {e}") from None

    @classmethod
    def decode(cls, data: bytes) -> Event:
        try:
            d = json.loads(data)
        except ValueError as e:
            raise RecordError(f"event is not JSON: {e}") from None
        if not isinstance(d, dict):
            raise RecordError("event must be a JSON object")
        return cls.from_dict(d)

"""The wire contract: records that cross Kafka between stages, defined once.

A `FrameEmbedding` is binary: a 4-byte magic with the version, a length-prefixed JSON header
that describes the arrays, then the raw little-endian fp16 arrays and the JPEG thumbnail.
An `Event` is small and read by people and browsers, so it is JSON.

    >>> rec = FrameEmbedding.decode(data)          # bytes from the embeddings topic
    >>> rec.patches.shape                          # (grid_h, grid_w, dim), float16
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

WIRE_VERSION = 1
_MAGIC = b"DSE"
_HEADER_LEN = struct.Struct("<I")
_STREAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Namespace for deterministic ids: the same (stream, frame) always maps to the same point id.
ID_NAMESPACE = uuid.UUID("6f1c7f0e-3c1a-4b8e-9a55-d1e05c0a7d3b")


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
    if not np.isfinite(a).all():
        raise RecordError(f"{name} contains NaN or infinite values")
    return np.ascontiguousarray(a)


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

    def __post_init__(self) -> None:
        check_stream_id(self.stream)
        if not isinstance(self.seq, int) or self.seq < 0:
            raise RecordError(f"seq must be a non-negative int, got {self.seq!r}")
        for name in ("pts", "ts"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise RecordError(f"{name} must be a finite number, got {v!r}")
        cls = _f16("cls", self.cls, 1)
        pooled = _f16("pooled", self.pooled, 1)
        patches = _f16("patches", self.patches, 3)
        dim = cls.shape[0]
        # The patch grid may be narrower than the CLS when it was reduced by PCA (header "pdim").
        if pooled.shape != (dim,) or not 1 <= patches.shape[2] <= dim:
            raise RecordError(f"dims disagree: cls {cls.shape}, pooled {pooled.shape}, patches {patches.shape}")
        if self.thumbnail and not self.thumbnail.startswith(b"\xff\xd8"):
            raise RecordError("thumbnail must be a JPEG")
        if self.version != WIRE_VERSION:
            raise RecordError(f"unsupported wire version {self.version}")
        object.__setattr__(self, "cls", cls)
        object.__setattr__(self, "pooled", pooled)
        object.__setattr__(self, "patches", patches)

    @property
    def dim(self) -> int:
        return int(self.cls.shape[0])

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
        h = cls.decode_header(data)
        dim, pdim, (gh, gw) = h["dim"], h["pdim"], h["grid"]
        off = h["_offset"]
        sizes = (dim, dim, gh * gw * pdim)
        arrays = []
        for n in sizes:
            arrays.append(np.frombuffer(data, dtype="<f2", count=n, offset=off).astype(np.float16, copy=False))
            off += 2 * n
        thumb = bytes(data[off : off + h["thumb"]])
        if len(thumb) != h["thumb"] or off + h["thumb"] != len(data):
            raise RecordError("frame embedding record has the wrong length")
        return cls(
            stream=h["stream"],
            seq=h["seq"],
            pts=h["pts"],
            ts=h["ts"],
            model=h["model"],
            untrained=h["untrained"],
            cls=arrays[0],
            pooled=arrays[1],
            patches=arrays[2].reshape(gh, gw, pdim),
            thumbnail=thumb,
            version=data[3],
        )

    @staticmethod
    def decode_header(data: bytes) -> dict[str, Any]:
        """Only the JSON header (cheap: no arrays are touched). Adds `_offset` of the first array, and
        `pdim` (the patch vector dimension) when the header leaves it out because it equals `dim`."""
        if len(data) < 8 or data[:3] != _MAGIC:
            raise RecordError("not a dinostream frame embedding record")
        if data[3] != WIRE_VERSION:
            raise RecordError(f"unsupported wire version {data[3]}")
        (n,) = _HEADER_LEN.unpack_from(data, 4)
        try:
            h: dict[str, Any] = json.loads(data[8 : 8 + n])
        except ValueError as e:
            raise RecordError(f"frame embedding header is not JSON: {e}") from None
        need = {"stream", "seq", "pts", "ts", "model", "untrained", "dim", "grid", "thumb"}
        if not isinstance(h, dict) or not need <= h.keys():
            raise RecordError(f"frame embedding header lacks {sorted(need - set(h))}")
        pdim = h.setdefault("pdim", h["dim"])
        if not isinstance(pdim, int) or not isinstance(h["dim"], int) or not 1 <= pdim <= h["dim"]:
            raise RecordError(f"frame embedding header has invalid dims: dim {h['dim']!r}, pdim {pdim!r}")
        expected = 8 + n + 2 * (2 * h["dim"] + h["grid"][0] * h["grid"][1] * pdim) + h["thumb"]
        if expected != len(data):
            raise RecordError(f"frame embedding record is {len(data)} bytes, header says {expected}")
        h["_offset"] = 8 + n
        return h


EVENT_TYPES = ("scene_change", "anomaly", "reid", "watchlist", "phase")
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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        try:
            boxes = tuple(Box(**b) for b in d.get("boxes") or ())
            heatmap = Heatmap.from_dict(d["heatmap"]) if d.get("heatmap") else None
            return cls(**{**d, "frames": tuple(d.get("frames", ())), "boxes": boxes, "heatmap": heatmap})
        except TypeError as e:
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

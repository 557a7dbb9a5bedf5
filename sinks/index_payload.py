"""The point schema both `VectorIndex` backends store, defined once.

A frame is a point with two named vectors, "cls" (searched) and "pooled", and a payload of
stream, seq, t (media seconds), ts (wall clock), model, untrained and thumb (base64 JPEG).
An event is a vectorless point whose payload is `Event.to_dict()`.

    >>> payload = frame_payload(rec)     # what Qdrant stores next to rec's vectors
    >>> hit = frame_hit(point_id, score, payload)
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from dinostream.errors import IndexStoreError
from dinostream.records import ID_NAMESPACE, Event, FrameEmbedding
from sinks.vector_index import FrameHit

SEARCH_VECTOR = "cls"
VECTOR_NAMES = ("cls", "pooled")
# Payload fields a search hit needs; the thumbnail stays on disk until asked for.
HIT_FIELDS = ["stream", "seq", "t", "ts"]
THUMB_FIELD = "thumb"

FieldKind = Literal["keyword", "float"]
FRAME_INDEXES: tuple[tuple[str, FieldKind], ...] = (("stream", "keyword"), ("t", "float"), ("ts", "float"))
EVENT_INDEXES: tuple[tuple[str, FieldKind], ...] = (
    ("stream", "keyword"),
    ("type", "keyword"),
    ("t", "float"),
    ("ts", "float"),
)


def frame_vectors(rec: FrameEmbedding, dim: int) -> dict[str, Any]:
    """The named vectors of a frame as float lists; a record of another dim is refused before any write."""
    if rec.dim != dim:
        raise IndexStoreError(
            f"frame {rec.stream}/{rec.seq} has {rec.dim}-dim embeddings (model {rec.model}) "
            f"but the index holds {dim}-dim ones; one index cannot mix models"
        )
    return {"cls": rec.cls.astype(np.float32).tolist(), "pooled": rec.pooled.astype(np.float32).tolist()}


def frame_payload(rec: FrameEmbedding) -> dict[str, Any]:
    return {
        "stream": rec.stream,
        "seq": rec.seq,
        "t": float(rec.pts),
        "ts": float(rec.ts),
        "model": rec.model,
        "untrained": rec.untrained,
        THUMB_FIELD: base64.b64encode(rec.thumbnail).decode("ascii"),
    }


def event_point_id(event: Event) -> str:
    """`event.id` when it is a UUID (as `event_id()` makes them), else a UUID derived from it."""
    try:
        return str(uuid.UUID(event.id))
    except ValueError:
        return str(uuid.uuid5(ID_NAMESPACE, f"event-id/{event.id}"))


def event_payload(event: Event) -> dict[str, Any]:
    return event.to_dict()


def query_vector(vector: np.ndarray, dim: int) -> list[float]:
    """A search vector as a float list; raises ValueError when its shape or values are unusable."""
    v = np.asarray(vector, dtype=np.float32)
    if v.shape != (dim,):
        raise ValueError(f"query vector must have shape ({dim},), got {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("query vector contains NaN or infinite values")
    return v.tolist()


def check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")


def frame_hit(point_id: object, score: float, payload: Mapping[str, Any] | None) -> FrameHit:
    p = payload or {}
    return FrameHit(
        stream=str(p.get("stream", "")),
        seq=int(p.get("seq", -1)),
        t=float(p.get("t", 0.0)),
        ts=float(p.get("ts", 0.0)),
        score=float(score),
        point_id=str(point_id),
    )


def thumbnail_from(payload: Mapping[str, Any] | None) -> bytes | None:
    """The JPEG stored in a frame's payload; None when the frame was stored without one."""
    b64 = (payload or {}).get(THUMB_FIELD)
    if not b64:
        return None
    return base64.b64decode(b64)

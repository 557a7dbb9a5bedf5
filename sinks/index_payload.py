"""The point schema both `VectorIndex` backends store, defined once.

A frame is a point with two named vectors, "cls" (searched) and "pooled", and a payload of
stream, seq, t (media seconds), ts (wall clock), model, untrained and thumb (base64 JPEG).
Its region point (same id, in the regions collection) holds the multivector "cells": the patch
grid average-pooled to at most `grid` x `grid` cells (`region_cells`), stored as float16 and
compared with MaxSim, and a payload of stream, seq, t, ts and the pooled grid's shape. Per frame
that is at most grid² x patch_dim x 2 bytes: 12 KiB for 4 x 4 cells of 384 dims (plus the
graph), next to 1.5 KiB for "cls" and "pooled" and the thumbnail.
An event is a vectorless point whose payload is `Event.to_index_payload()`. The records own those
payloads (`FrameEmbedding.to_index_payload`, `Event.from_index_payload`...); this module names the
fields the backends read back, filter and order by.

    >>> payload = rec.to_index_payload()    # what Qdrant stores next to rec's vectors
    >>> hit = frame_hit(point_id, score, payload)
    >>> vectors, payload = region_vectors(rec, patch_dim=384, grid=4, centering=reid.feature_centering)
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from dinostream.core.errors import IndexStoreError
from dinostream.core.records import ID_NAMESPACE, INDEX_THUMB_FIELD, Event, FrameEmbedding, RecordError
from dinostream.core.settings import ReidSettings
from dinostream.sinks.vector_index import FrameHit, StoredFrame

SEARCH_VECTOR = "cls"
VECTOR_NAMES = ("cls", "pooled")
REGION_VECTOR = "cells"
# Payload fields (of `FrameEmbedding.to_index_payload`) a search hit needs; the thumbnail stays
# on disk until asked for.
HIT_FIELDS = ["stream", "seq", "t", "ts"]
GRID_FIELD = "grid"
THUMB_FIELD = INDEX_THUMB_FIELD

FieldKind = Literal["keyword", "float"]
FRAME_INDEXES: tuple[tuple[str, FieldKind], ...] = (("stream", "keyword"), ("t", "float"), ("ts", "float"))
EVENT_INDEXES: tuple[tuple[str, FieldKind], ...] = (
    ("stream", "keyword"),
    ("type", "keyword"),
    ("t", "float"),
    ("ts", "float"),
)
REGION_INDEXES = FRAME_INDEXES


def frame_vectors(rec: FrameEmbedding, dim: int) -> dict[str, Any]:
    """The named vectors of a frame as float lists; a record of another dim is refused before any write."""
    if rec.dim != dim:
        raise IndexStoreError(
            f"frame {rec.stream}/{rec.seq} has {rec.dim}-dim embeddings (model {rec.model}) "
            f"but the index holds {dim}-dim ones; one index cannot mix models"
        )
    return {"cls": rec.cls.astype(np.float32).tolist(), "pooled": rec.pooled.astype(np.float32).tolist()}


def default_cell_centering() -> float:
    """`ReidSettings.feature_centering` as configured by default, for an index opened without settings."""
    return ReidSettings().feature_centering


def region_cells(patches: np.ndarray, grid: int, centering: float, *, unit: np.ndarray | None = None) -> np.ndarray:
    """A (gh, gw, D) patch grid as at most `grid` x `grid` cells (gh', gw', D) float32: unit patch
    vectors minus `centering` times their frame mean, average-pooled over even spans of the grid.

    `centering` is `ReidSettings.feature_centering`, as `dinostream.analytics.regions.centred_patches`
    uses it: the component all patches of a frame share says where the camera is, not what a cell
    shows, and would make every cell of a frame look alike. `unit`: the unit patch vectors when the
    caller has them already (`FrameEmbedding.unit_patches`)."""
    p = np.asarray(patches) if unit is None else unit
    if p.ndim != 3 or 0 in p.shape:
        raise ValueError(f"patches must be a non-empty (h, w, d) grid, got shape {p.shape}")
    if grid < 1:
        raise ValueError(f"grid must be at least 1, got {grid}")
    if unit is None:
        p = p.astype(np.float32)
        unit = p / np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), 1e-12)
    centred = unit - centering * unit.reshape(-1, unit.shape[-1]).mean(axis=0)
    gh, gw = centred.shape[:2]
    # Each cell's mean as one weighted sum over the grid: two small matrix products instead of
    # grid² means (a third of the index's CPU per frame went there). Rows first, as one 2-D product
    # over (gh) x (gw * D), then the columns of each pooled row: this function took 0.17 / 0.11 ->
    # 0.08 / 0.07 ms with two einsums before (14x14x384 at the default grid 4, one thread).
    rows, cols = _span_weights(gh, min(gh, grid)), _span_weights(gw, min(gw, grid))
    pooled_rows = (rows @ centred.reshape(gh, -1)).reshape(rows.shape[0], gw, -1)
    return np.matmul(cols, pooled_rows).astype(np.float32, copy=False)


@functools.lru_cache(maxsize=16)
def _span_weights(n: int, out: int) -> np.ndarray:
    """(out, n) weights that average `n` positions over `out` even spans (they overlap where `out`
    does not divide `n`), float32."""
    w = np.zeros((out, n), dtype=np.float32)
    for i in range(out):
        lo, hi = i * n // out, -(-(i + 1) * n // out)
        w[i, lo:hi] = 1.0 / (hi - lo)
    w.flags.writeable = False
    return w


def region_vectors(
    rec: FrameEmbedding, patch_dim: int, grid: int, centering: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The region point's vectors and payload (cells as `region_cells` makes them); a record of
    another patch dim is refused."""
    if rec.patch_dim != patch_dim:
        raise IndexStoreError(
            f"frame {rec.stream}/{rec.seq} has {rec.patch_dim}-dim patch vectors but the index holds "
            f"{patch_dim}-dim ones (patch PCA switched on or off?); one index cannot mix them"
        )
    cells = region_cells(rec.patches, grid, centering, unit=rec.unit_patches)
    h, w, d = cells.shape
    vectors = {REGION_VECTOR: cells.astype(np.float16).astype(np.float32).reshape(h * w, d).tolist()}
    payload = {"stream": rec.stream, "seq": rec.seq, "t": float(rec.pts), "ts": float(rec.ts), GRID_FIELD: [h, w]}
    return vectors, payload


def stored_frame(
    payload: Mapping[str, Any] | None,
    vectors: Mapping[str, Any] | None,
    region: tuple[Mapping[str, Any] | None, Mapping[str, Any] | None] | None = None,
) -> StoredFrame:
    """A `StoredFrame` from what a backend returned for a frame point (and its region point)."""
    p = payload or {}
    v = vectors or {}
    cells = None
    if region is not None and region[0] and region[1] and REGION_VECTOR in (region[1] or {}):
        h, w = (int(n) for n in region[0][GRID_FIELD])
        cells = np.asarray(region[1][REGION_VECTOR], dtype=np.float32).reshape(h, w, -1)
    return StoredFrame(
        stream=str(p.get("stream", "")),
        seq=int(p.get("seq", -1)),
        t=float(p.get("t", 0.0)),
        ts=float(p.get("ts", 0.0)),
        cls=np.asarray(v.get("cls", ()), dtype=np.float32),
        pooled=np.asarray(v.get("pooled", ()), dtype=np.float32),
        cells=cells,
    )


def event_from(payload: Mapping[str, Any] | None) -> Event | None:
    """The `Event` a stored payload holds; None when it is not one (a foreign point)."""
    try:
        return Event.from_index_payload(payload or {})
    except RecordError:
        return None


def event_point_id(event: Event | str) -> str:
    """The event's id when it is a UUID (as `event_id()` makes them), else a UUID derived from it."""
    eid = event if isinstance(event, str) else event.id
    try:
        return str(uuid.UUID(eid))
    except ValueError:
        return str(uuid.uuid5(ID_NAMESPACE, f"event-id/{eid}"))


def query_vector(vector: np.ndarray, dim: int, what: str = "query vector") -> list[float]:
    """A search vector as a float list; raises ValueError when its shape or values are unusable."""
    v = np.asarray(vector, dtype=np.float32)
    if v.shape != (dim,):
        raise ValueError(f"{what} must have shape ({dim},), got {v.shape}")
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


SCROLL_PAGE = 1000  # points per page when reading frames in time order


def frames_in_ts_order(
    fetch: Callable[[float | None, int], Sequence[Any]], limit: int, page: int = SCROLL_PAGE
) -> list[StoredFrame]:
    """Up to `limit` frames in time order, read page by page: `fetch(start_ts, n)` returns up to
    n points (with `id`, `payload`, `vector`) ordered by ts from `start_ts` on. Several frames can
    share a ts, so each page restarts at the last ts seen and skips the points it repeats."""
    out: list[StoredFrame] = []
    start: float | None = None
    seen: set[str] = set()
    while len(out) < limit:
        records = fetch(start, min(page, limit - len(out) + len(seen)))
        fresh = [r for r in records if str(r.id) not in seen]
        if not fresh:
            break
        out.extend(stored_frame(r.payload, r.vector) for r in fresh[: limit - len(out)])
        start = float((records[-1].payload or {}).get("ts", 0.0))
        seen = {str(r.id) for r in records if float((r.payload or {}).get("ts", 0.0)) == start}
    return out

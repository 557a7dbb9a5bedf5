"""`VectorIndex` on Qdrant Edge: an embedded, on-disk Qdrant shard, no server needed.

Three shards live under one directory: `frames/` (named vectors "cls" and "pooled", cosine,
stored as float16 like the wire records), `regions/` (the multivector "cells" of each frame,
MaxSim, see `dinostream.sinks.index_payload`) and `events/` (vectorless points). Every upsert batch is
flushed before it returns, so what was acknowledged survives a crash of the process.

Edge has no background optimizer: new points sit in a plain segment that is searched
exhaustively (about 6 ms for 100k frames) until `optimize()` builds the HNSW graph of "cls"
(about 20 s for 100k frames on one core; the index sink calls it periodically). "pooled" and
"cells" get no graph: "pooled" is never searched, and a point search (MaxSim of one query
vector against at most grid² cells per frame) is exact over the frames its filter admits,
since a MaxSim graph would cost grid² x grid² dot products per edge to build.

    >>> index = QdrantEdgeIndex(Path("dinostream-data/qdrant"), dim=384)
    >>> index.upsert_frames(records)
    >>> index.search_frames(records[0].cls, limit=5, streams=["cam1"])
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from qdrant_edge import (
    CountRequest,
    Direction,
    Distance,
    EdgeConfig,
    EdgeShard,
    EdgeVectorParams,
    FacetRequest,
    FieldCondition,
    Filter,
    HasIdCondition,
    HnswIndexConfig,
    MatchAny,
    MultiVectorComparator,
    MultiVectorConfig,
    OrderBy,
    PayloadSchemaType,
    Point,
    Query,
    QueryRequest,
    RangeFloat,
    ScrollRequest,
    UpdateOperation,
    VectorStorageDatatype,
)

from dinostream.core.errors import IndexStoreError
from dinostream.core.records import Event, FrameEmbedding, frame_point_id
from dinostream.sinks.index_payload import (
    EVENT_INDEXES,
    FRAME_INDEXES,
    GRID_FIELD,
    HIT_FIELDS,
    REGION_INDEXES,
    REGION_VECTOR,
    SEARCH_VECTOR,
    THUMB_FIELD,
    VECTOR_NAMES,
    FieldKind,
    check_limit,
    default_cell_centering,
    event_from,
    event_point_id,
    frame_hit,
    frame_vectors,
    frames_in_ts_order,
    query_vector,
    region_vectors,
    stored_frame,
)
from dinostream.sinks.vector_index import EventFilter, FrameFilter, FrameHit, StoredFrame, VectorIndex

_T = TypeVar("_T")
_SCHEMA = {"keyword": PayloadSchemaType.Keyword, "float": PayloadSchemaType.Float}
# What `EdgeShard.create` writes; a shard directory lacking one of them is incomplete.
_SHARD_FILES = ("edge_config.json",)
_SHARD_DIRS = ("segments", "wal")
# Edge reports a vector size mismatch as "... expected vector size 16, but got 8" (ours, stored).
_SIZE_MISMATCH = re.compile(r"expected vector size (\d+), but got (\d+)")


# m=0: no graph for this vector (searched exhaustively, or never searched).
_NO_GRAPH = HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000)
# Points a write operation carries at most; bigger batches are split (each part is flushed).
_WRITE_CHUNK = 4096


def _frames_config(dim: int) -> EdgeConfig:
    params = {
        name: EdgeVectorParams(
            size=dim,
            distance=Distance.Cosine,
            datatype=VectorStorageDatatype.Float16,
            hnsw_config=None if name == SEARCH_VECTOR else _NO_GRAPH,
        )
        for name in VECTOR_NAMES
    }
    return EdgeConfig(vectors=params)


def _regions_config(patch_dim: int) -> EdgeConfig:
    cells = EdgeVectorParams(
        size=patch_dim,
        distance=Distance.Cosine,
        datatype=VectorStorageDatatype.Float16,
        multivector_config=MultiVectorConfig(MultiVectorComparator.MaxSim),
        hnsw_config=_NO_GRAPH,
    )
    return EdgeConfig(vectors={REGION_VECTOR: cells})


def _events_config() -> EdgeConfig:
    # Edge refuses a shard config without any vector, but accepts points without vectors:
    # events are stored vectorless and this 1-dim vector is declared only to satisfy the config.
    return EdgeConfig(vectors={"unused": EdgeVectorParams(size=1, distance=Distance.Dot)})


def _frame_filter(where: FrameFilter) -> Filter | None:
    must: list[FieldCondition | HasIdCondition] = []
    if where.streams is not None:
        must.append(FieldCondition("stream", match=MatchAny(list(where.streams))))
    if where.since is not None or where.until is not None:
        must.append(FieldCondition("ts", range=RangeFloat(gte=where.since, lte=where.until)))
    if where.point_ids is not None:
        must.append(HasIdCondition(set(where.point_ids)))
    return Filter(must=must) if must else None  # type: ignore[arg-type]


def _event_filter(where: EventFilter) -> Filter | None:
    must = []
    if where.streams is not None:
        must.append(FieldCondition("stream", match=MatchAny(list(where.streams))))
    if where.types is not None:
        must.append(FieldCondition("type", match=MatchAny(list(where.types))))
    if where.since is not None or where.until is not None:
        must.append(FieldCondition("ts", range=RangeFloat(gte=where.since, lte=where.until)))
    return Filter(must=must) if must else None  # type: ignore[arg-type]


class QdrantEdgeIndex(VectorIndex):
    """Frames, their regions and events in three Qdrant Edge shards under `path`, created on
    first use. `patch_dim` (default `dim`) is the size of the records' patch vectors (smaller when
    patches are reduced by PCA); `region_grid` bounds the cells kept per frame for point search and
    `cell_centering` centres them (`ReidSettings.feature_centering`, see `index_payload.region_cells`)."""

    def __init__(
        self,
        path: Path,
        dim: int,
        *,
        patch_dim: int | None = None,
        region_grid: int = 4,
        cell_centering: float | None = None,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        if patch_dim is not None and patch_dim < 1:
            raise ValueError(f"patch_dim must be positive, got {patch_dim}")
        if region_grid < 1:
            raise ValueError(f"region_grid must be positive, got {region_grid}")
        self.path = Path(path)
        self.dim = dim
        self.patch_dim = patch_dim or dim
        self.region_grid = region_grid
        self.cell_centering = default_cell_centering() if cell_centering is None else cell_centering
        self._closed = False
        self._deferred = False  # flush on every write until `defer_flush`
        self._dirty: dict[int, EdgeShard] = {}  # shards written since their last flush, by id
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise IndexStoreError(f"cannot create the index directory {self.path}: {e}") from e
        opened: list[EdgeShard] = []
        try:
            self._frames = self._open_shard("frames", _frames_config(dim), FRAME_INDEXES)
            opened.append(self._frames)
            self._regions = self._open_shard("regions", _regions_config(self.patch_dim), REGION_INDEXES)
            opened.append(self._regions)
            self._events = self._open_shard("events", _events_config(), EVENT_INDEXES)
        except BaseException:
            for shard in opened:
                shard.close()
            raise

    def upsert_frames(self, records: Sequence[FrameEmbedding]) -> None:
        if not records:
            return
        # Everything is converted (and checked) before anything is written.
        frames = [Point(r.point_id, frame_vectors(r, self.dim), r.to_index_payload()) for r in records]
        regions = [
            Point(r.point_id, *region_vectors(r, self.patch_dim, self.region_grid, self.cell_centering))
            for r in records
        ]
        for i in range(0, len(frames), _WRITE_CHUNK):
            # Regions first: a frame is searchable by point once its frame point exists.
            self._write(self._regions, UpdateOperation.upsert_points(regions[i : i + _WRITE_CHUNK]), "regions")
            self._write(self._frames, UpdateOperation.upsert_points(frames[i : i + _WRITE_CHUNK]), "frames")

    def upsert_events(self, events: Sequence[Event]) -> None:
        if not events:
            return
        points = [Point(event_point_id(e), {}, e.to_index_payload()) for e in events]
        for i in range(0, len(points), _WRITE_CHUNK):
            chunk = points[i : i + _WRITE_CHUNK]
            self._write(self._events, UpdateOperation.upsert_points(chunk), f"{len(chunk)} events")

    def search_frames(
        self, vector: np.ndarray, limit: int = 10, streams: Sequence[str] | None = None
    ) -> list[FrameHit]:
        return self.query_frames(vector, limit, FrameFilter(streams=streams))

    def query_frames(self, vector: np.ndarray, limit: int, where: FrameFilter | None = None) -> list[FrameHit]:
        q = query_vector(vector, self.dim)
        return self._query(self._frames, Query.Nearest(q, using=SEARCH_VECTOR), limit, where, "search frames")

    def query_regions(self, vector: np.ndarray, limit: int, where: FrameFilter | None = None) -> list[FrameHit]:
        q = query_vector(vector, self.patch_dim, "point query vector")
        return self._query(self._regions, Query.Nearest([q], using=REGION_VECTOR), limit, where, "search regions")

    def frame(self, stream: str, seq: int, *, with_cells: bool = False) -> StoredFrame | None:
        pid = frame_point_id(stream, seq)
        found = self._read(lambda: self._frames.retrieve([pid], HIT_FIELDS, list(VECTOR_NAMES)), "read a frame")
        if not found:
            return None
        region = self._region(pid) if with_cells else None
        return stored_frame(found[0].payload, found[0].vector, region)  # type: ignore[arg-type]

    def frame_at(self, stream: str, t: float, *, with_cells: bool = False) -> StoredFrame | None:
        best = None
        for direction, bound in ((Direction.Desc, RangeFloat(lte=t)), (Direction.Asc, RangeFloat(gt=t))):
            flt = Filter(must=[FieldCondition("stream", match=MatchAny([stream])), FieldCondition("t", range=bound)])
            request = ScrollRequest(limit=1, filter=flt, with_payload=HIT_FIELDS, order_by=OrderBy("t", direction))
            records, _ = self._read(lambda r=request: self._frames.scroll(r), "find a frame by time")  # type: ignore[misc]
            for rec in records:
                pt = float((rec.payload or {}).get("t", 0.0))
                if best is None or abs(pt - t) < abs(best[0] - t):
                    best = (pt, rec.payload)
        if best is None:
            return None
        payload = best[1] or {}
        return self.frame(str(payload["stream"]), int(payload["seq"]), with_cells=with_cells)

    def frames_between(self, stream: str, since: float | None, until: float | None, limit: int) -> list[StoredFrame]:
        check_limit(limit)
        flt = _frame_filter(FrameFilter(streams=[stream], since=since, until=until))

        def fetch(start: float | None, n: int) -> list[Any]:
            request = ScrollRequest(
                limit=n,
                filter=flt,
                with_payload=HIT_FIELDS,
                with_vector=list(VECTOR_NAMES),
                order_by=OrderBy("ts", Direction.Asc, start),
            )
            records, _ = self._read(lambda: self._frames.scroll(request), "read frames")
            return list(records)

        return frames_in_ts_order(fetch, limit)

    def count_frames_where(self, where: FrameFilter) -> int:
        if where.matches_nothing:
            return 0
        request = CountRequest(exact=True, filter=_frame_filter(where))
        return int(self._read(lambda: self._frames.count(request), "count frames"))

    def event(self, event_id: str) -> Event | None:
        pid = event_point_id(event_id)
        found = self._read(lambda: self._events.retrieve([pid], True, False), "read an event")
        return event_from(found[0].payload) if found else None

    def events(self, where: EventFilter, limit: int) -> list[Event]:
        check_limit(limit)
        if (where.streams is not None and not where.streams) or (where.types is not None and not where.types):
            return []
        request = ScrollRequest(
            limit=limit, filter=_event_filter(where), with_payload=True, order_by=OrderBy("ts", Direction.Desc)
        )
        records, _ = self._read(lambda: self._events.scroll(request), "list events")
        return [e for e in (event_from(r.payload) for r in records) if e is not None]

    def streams(self) -> list[str]:
        names: set[str] = set()
        request = FacetRequest(key="stream", limit=100_000, exact=True)
        for shard in (self._frames, self._events):
            response = self._read(lambda s=shard: s.facet(request), "list streams")  # type: ignore[misc]
            names.update(str(h.value) for h in response.hits if h.count > 0)  # a deleted stream counts 0
        return sorted(names)

    def delete_older_than(self, stream: str | None, ts: float) -> None:
        must = [FieldCondition("ts", range=RangeFloat(lt=ts))]
        if stream is not None:
            must.append(FieldCondition("stream", match=MatchAny([stream])))
        op = UpdateOperation.delete_points_by_filter(Filter(must=must))  # type: ignore[arg-type]
        what = f"delete points older than {ts} of {stream or 'every stream'}"
        # Frames first: a frame without its region point is still found by image search.
        for shard in (self._frames, self._regions, self._events):
            self._write(shard, op, what)

    def optimize(self) -> bool:
        changed = False
        for shard in (self._frames, self._regions, self._events):
            changed = bool(self._read(shard.optimize, "optimize")) or changed
        return changed

    def thumbnail(self, stream: str, seq: int) -> bytes | None:
        """The JPEG stored with a frame; None when the frame is not indexed or has no thumbnail."""
        pid = frame_point_id(stream, seq)
        found = self._read(lambda: self._frames.retrieve([pid], [THUMB_FIELD], False), "read a thumbnail")
        return FrameEmbedding.thumbnail_from_index_payload(found[0].payload) if found else None

    def count_frames(self) -> int:
        return int(self._read(lambda: self._frames.count(CountRequest(exact=True)), "count frames"))

    def count_regions(self) -> int:
        return int(self._read(lambda: self._regions.count(CountRequest(exact=True)), "count regions"))

    def count_events(self) -> int:
        return int(self._read(lambda: self._events.count(CountRequest(exact=True)), "count events"))

    def close(self) -> None:
        """Flush and release the shards (and their directory locks). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        errors = []
        for shard in (self._frames, self._regions, self._events):
            try:
                shard.flush()
            except Exception as e:  # qdrant_edge raises plain Exception
                errors.append(str(e))
            finally:
                shard.close()
        if errors:
            raise IndexStoreError(f"flushing the index at {self.path} failed: {'; '.join(errors)}")

    # -- internals -------------------------------------------------------------------------

    def _query(
        self, shard: EdgeShard, query: Query, limit: int, where: FrameFilter | None, what: str
    ) -> list[FrameHit]:
        check_limit(limit)
        where = where or FrameFilter()
        if where.matches_nothing:
            return []
        request = QueryRequest(
            limit=limit, query=query, filter=_frame_filter(where), with_payload=HIT_FIELDS, with_vector=False
        )
        points = self._read(lambda: shard.query(request), what)
        return [frame_hit(p.id, p.score, p.payload) for p in points]

    def _region(self, pid: str) -> tuple[dict, dict] | None:
        found = self._read(lambda: self._regions.retrieve([pid], [GRID_FIELD], [REGION_VECTOR]), "read a region")
        return (found[0].payload, found[0].vector) if found else None  # type: ignore[return-value]

    def _open_shard(self, name: str, config: EdgeConfig, indexes: tuple[tuple[str, FieldKind], ...]) -> EdgeShard:
        path = self.path / name
        try:
            fresh = not path.exists() or not any(path.iterdir())
        except OSError as e:
            raise IndexStoreError(f"cannot read the index shard directory {path}: {e}") from e
        if fresh:
            try:
                shard = EdgeShard.create(str(path), config)
            except Exception as e:
                raise IndexStoreError(f"cannot create the index shard at {path}: {e}") from e
        else:
            self._check_complete(path)
            shard = self._load(path, config)
        try:
            # Idempotent: also adds indexes a crash between create and here left out.
            present = set(shard.info().payload_schema)
            for field, kind in indexes:
                if field not in present:
                    shard.update(UpdateOperation.create_field_index(field, _SCHEMA[kind]))
            shard.flush()
        except Exception as e:
            shard.close()
            raise IndexStoreError(f"cannot create payload indexes in {path}: {e}") from e
        return shard

    def _check_complete(self, path: Path) -> None:
        missing = [f for f in _SHARD_FILES if not (path / f).is_file()]
        missing += [d + "/" for d in _SHARD_DIRS if not (path / d).is_dir()]
        if not missing and not any(p.is_dir() for p in (path / "segments").iterdir()):
            missing.append("segments/*")
        if missing:
            raise IndexStoreError(
                f"the index shard at {path} is incomplete (missing {', '.join(missing)}); "
                f"move it away to start a new index, or use another --data-dir"
            )

    def _load(self, path: Path, config: EdgeConfig) -> EdgeShard:
        try:
            return EdgeShard.load(str(path), config)
        except Exception as e:  # qdrant_edge raises plain Exception; classify by its message
            msg = str(e)
            size = _SIZE_MISMATCH.search(msg)
            if size:
                raise IndexStoreError(
                    f"the index at {self.path} holds {size.group(2)}-dim embeddings but the model produces "
                    f"{self.dim}-dim ones (was the model switched?); use another --data-dir for this model"
                ) from e
            if "incompatible" in msg.lower():
                raise IndexStoreError(
                    f"the index at {self.path} was created with another vector configuration ({msg}); "
                    f"use another --data-dir for this model"
                ) from e
            if "WouldBlock" in msg:
                raise IndexStoreError(
                    f"the index at {path} is in use by another process (is dinostream already running "
                    f"with this --data-dir?)"
                ) from e
            raise IndexStoreError(
                f"cannot load the index shard at {path}, it may be corrupt ({msg}); "
                f"move it away to start a new index, or use another --data-dir"
            ) from e

    def _write(self, shard: EdgeShard, op: UpdateOperation, what: str) -> None:
        self._check_open()
        try:
            shard.update(op)
            # Durable on return: the WAL already survives a process crash, flush also persists
            # the segments (about 7 ms per 64-frame batch at dim 384, nearly as much for 4 frames),
            # unless the writer flushes when it acknowledges (`defer_flush`).
            if self._deferred:
                self._dirty[id(shard)] = shard
            else:
                shard.flush()
        except Exception as e:
            raise IndexStoreError(f"writing {what} to the index at {self.path} failed: {e}") from e

    def defer_flush(self) -> None:
        self._deferred = True

    def flush(self) -> None:
        self._check_open()
        while self._dirty:
            _, shard = self._dirty.popitem()
            try:
                shard.flush()
            except Exception as e:
                raise IndexStoreError(f"persisting the index at {self.path} failed: {e}") from e

    def _read(self, fn: Callable[[], _T], what: str) -> _T:
        self._check_open()
        try:
            return fn()
        except Exception as e:
            raise IndexStoreError(f"cannot {what} in the index at {self.path}: {e}") from e

    def _check_open(self) -> None:
        if self._closed:
            raise IndexStoreError(f"the index at {self.path} is closed")

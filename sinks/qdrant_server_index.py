"""`VectorIndex` on a Qdrant server, through qdrant-client.

Collections `{prefix}_frames` (named vectors "cls" and "pooled", cosine, float16),
`{prefix}_regions` (multivector "cells", MaxSim, no graph: point search is exact over the
filtered frames) and `{prefix}_events` (vectorless points) hold the same payloads as the Edge
index. Writes wait for the server to apply them, so an acknowledged batch is in the server's WAL.
The server builds its graphs by itself; `optimize()` has nothing to do.

    >>> index = QdrantServerIndex.from_url("http://qdrant:6333", api_key=None, dim=384)
    >>> index.search_frames(vector, limit=5)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import UnexpectedResponse

from dinostream.core.errors import IndexStoreError
from dinostream.core.records import Event, FrameEmbedding, frame_point_id
from dinostream.core.settings import IndexSettings
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
_SCHEMA = {"keyword": qm.PayloadSchemaType.KEYWORD, "float": qm.PayloadSchemaType.FLOAT}
_NO_GRAPH = qm.HnswConfigDiff(m=0)
_WRITE_CHUNK = 256  # points per upsert request


@dataclass(frozen=True)
class CollectionLayout:
    """How new collections are laid out on the server (existing ones are left as they are): where
    vectors and payloads live, quantization, shards and replicas. The defaults are Qdrant's."""

    on_disk_vectors: bool = False
    int8: bool = False
    on_disk_payload: bool = False
    shards: int | None = None
    replication_factor: int | None = None

    @classmethod
    def from_settings(cls, settings: IndexSettings) -> CollectionLayout:
        return cls(
            on_disk_vectors=settings.qdrant_on_disk_vectors,
            int8=settings.qdrant_quantization == "int8",
            on_disk_payload=settings.qdrant_on_disk_payload,
            shards=settings.qdrant_shards,
            replication_factor=settings.qdrant_replication_factor,
        )

    def vector(self, params: qm.VectorParams) -> qm.VectorParams:
        return params.model_copy(update={"on_disk": True}) if self.on_disk_vectors else params

    def create_args(self, *, quantize: bool) -> dict[str, Any]:
        """create_collection's keyword arguments beside the vectors."""
        args: dict[str, Any] = {
            "on_disk_payload": self.on_disk_payload,
            "shard_number": self.shards,
            "replication_factor": self.replication_factor,
        }
        if quantize and self.int8:
            # The int8 copies stay in RAM for search; hits are rescored with the originals.
            args["quantization_config"] = qm.ScalarQuantization(
                scalar=qm.ScalarQuantizationConfig(type=qm.ScalarType.INT8, quantile=0.99, always_ram=True)
            )
        return args


def _frame_filter(where: FrameFilter) -> qm.Filter | None:
    must: list[qm.Condition] = []
    if where.streams is not None:
        must.append(qm.FieldCondition(key="stream", match=qm.MatchAny(any=list(where.streams))))
    if where.since is not None or where.until is not None:
        must.append(qm.FieldCondition(key="ts", range=qm.Range(gte=where.since, lte=where.until)))
    if where.point_ids is not None:
        must.append(qm.HasIdCondition(has_id=list(where.point_ids)))
    return qm.Filter(must=must) if must else None


def _event_filter(where: EventFilter) -> qm.Filter | None:
    must: list[qm.Condition] = []
    if where.streams is not None:
        must.append(qm.FieldCondition(key="stream", match=qm.MatchAny(any=list(where.streams))))
    if where.types is not None:
        must.append(qm.FieldCondition(key="type", match=qm.MatchAny(any=list(where.types))))
    if where.since is not None or where.until is not None:
        must.append(qm.FieldCondition(key="ts", range=qm.Range(gte=where.since, lte=where.until)))
    return qm.Filter(must=must) if must else None


def _one_line(e: BaseException) -> str:
    if isinstance(e, UnexpectedResponse):
        text = f"HTTP {e.status_code} {e.reason_phrase}: {e.content.decode(errors='replace')}"
    else:
        text = str(e) or type(e).__name__
    return " ".join(text.split())


class QdrantServerIndex(VectorIndex):
    """Frames and events in two collections of a Qdrant server, created on first use.

    The index owns `client`: `close()` closes it, and so does a failing constructor. The keyword
    arguments are `QdrantEdgeIndex`'s."""

    def __init__(
        self,
        client: QdrantClient,
        dim: int,
        prefix: str = "dinostream",
        *,
        patch_dim: int | None = None,
        region_grid: int = 4,
        cell_centering: float | None = None,
        layout: CollectionLayout | None = None,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        if patch_dim is not None and patch_dim < 1:
            raise ValueError(f"patch_dim must be positive, got {patch_dim}")
        if region_grid < 1:
            raise ValueError(f"region_grid must be positive, got {region_grid}")
        self.client = client
        self.dim = dim
        self.patch_dim = patch_dim or dim
        self.region_grid = region_grid
        self.cell_centering = default_cell_centering() if cell_centering is None else cell_centering
        self.frames_collection = f"{prefix}_frames"
        self.regions_collection = f"{prefix}_regions"
        self.events_collection = f"{prefix}_events"
        self.layout = layout = layout or CollectionLayout()
        frame_vectors_config = {
            name: layout.vector(
                qm.VectorParams(
                    size=dim,
                    distance=qm.Distance.COSINE,
                    datatype=qm.Datatype.FLOAT16,
                    hnsw_config=None if name == SEARCH_VECTOR else _NO_GRAPH,
                )
            )
            for name in VECTOR_NAMES
        }
        region_vectors_config = {
            REGION_VECTOR: layout.vector(
                qm.VectorParams(
                    size=self.patch_dim,
                    distance=qm.Distance.COSINE,
                    datatype=qm.Datatype.FLOAT16,
                    multivector_config=qm.MultiVectorConfig(comparator=qm.MultiVectorComparator.MAX_SIM),
                    hnsw_config=_NO_GRAPH,
                )
            )
        }
        try:
            self._ensure_collection(self.frames_collection, frame_vectors_config, FRAME_INDEXES, check_dim=True)
            self._ensure_collection(self.regions_collection, region_vectors_config, REGION_INDEXES, check_dim=False)
            # A server collection may declare no vectors at all; events are payload-only points.
            self._ensure_collection(self.events_collection, {}, EVENT_INDEXES, check_dim=False)
        except BaseException:
            client.close()
            raise

    @classmethod
    def from_url(
        cls,
        url: str,
        api_key: str | None,
        dim: int,
        prefix: str = "dinostream",
        timeout: float = 10.0,
        *,
        patch_dim: int | None = None,
        region_grid: int = 4,
        cell_centering: float | None = None,
        layout: CollectionLayout | None = None,
    ) -> QdrantServerIndex:
        """Connect to the server at `url`; IndexStoreError when it does not answer within `timeout` s."""
        try:
            client = QdrantClient(
                url=url,
                api_key=api_key,
                timeout=max(1, round(timeout)),
                check_compatibility=False,  # we probe below and fail with one line instead of warning
            )
        except Exception as e:
            raise IndexStoreError(f"invalid Qdrant URL {url!r}: {_one_line(e)}") from e
        try:
            client.get_collections()
        except UnexpectedResponse as e:
            client.close()
            hint = " (check the API key)" if e.status_code in (401, 403) else ""
            raise IndexStoreError(f"Qdrant at {url} refused the request{hint}: {_one_line(e)}") from e
        except Exception as e:
            client.close()
            raise IndexStoreError(f"Qdrant at {url} does not answer: {_one_line(e)}") from e
        return cls(
            client,
            dim,
            prefix,
            patch_dim=patch_dim,
            region_grid=region_grid,
            cell_centering=cell_centering,
            layout=layout,
        )

    def upsert_frames(self, records: Sequence[FrameEmbedding]) -> None:
        if not records:
            return
        # Everything is converted (and checked) before anything is written.
        frames = [
            qm.PointStruct(id=r.point_id, vector=frame_vectors(r, self.dim), payload=r.to_index_payload())
            for r in records
        ]
        regions = []
        for r in records:
            vectors, payload = region_vectors(r, self.patch_dim, self.region_grid, self.cell_centering)
            regions.append(qm.PointStruct(id=r.point_id, vector=vectors, payload=payload))
        for i in range(0, len(frames), _WRITE_CHUNK):
            for collection, points in ((self.regions_collection, regions), (self.frames_collection, frames)):
                chunk = points[i : i + _WRITE_CHUNK]
                self._call(
                    lambda c=collection, p=chunk: self.client.upsert(c, p, wait=True),  # type: ignore[misc]
                    f"write {len(chunk)} points to {collection}",
                )

    def upsert_events(self, events: Sequence[Event]) -> None:
        if not events:
            return
        points = [qm.PointStruct(id=event_point_id(e), vector={}, payload=e.to_index_payload()) for e in events]
        for i in range(0, len(points), _WRITE_CHUNK):
            chunk = points[i : i + _WRITE_CHUNK]
            self._call(
                lambda p=chunk: self.client.upsert(self.events_collection, p, wait=True),  # type: ignore[misc]
                f"write {len(chunk)} events to {self.events_collection}",
            )

    def search_frames(
        self, vector: np.ndarray, limit: int = 10, streams: Sequence[str] | None = None
    ) -> list[FrameHit]:
        return self.query_frames(vector, limit, FrameFilter(streams=streams))

    def query_frames(self, vector: np.ndarray, limit: int, where: FrameFilter | None = None) -> list[FrameHit]:
        q = query_vector(vector, self.dim)
        return self._query(self.frames_collection, q, SEARCH_VECTOR, limit, where)

    def query_regions(self, vector: np.ndarray, limit: int, where: FrameFilter | None = None) -> list[FrameHit]:
        q = query_vector(vector, self.patch_dim, "point query vector")
        return self._query(self.regions_collection, [q], REGION_VECTOR, limit, where)

    def frame(self, stream: str, seq: int, *, with_cells: bool = False) -> StoredFrame | None:
        pid = frame_point_id(stream, seq)
        found = self._call(
            lambda: self.client.retrieve(
                self.frames_collection, [pid], with_payload=HIT_FIELDS, with_vectors=list(VECTOR_NAMES)
            ),
            f"read a frame from {self.frames_collection}",
        )
        if not found:
            return None
        region = None
        if with_cells:
            cells = self._call(
                lambda: self.client.retrieve(
                    self.regions_collection, [pid], with_payload=[GRID_FIELD], with_vectors=[REGION_VECTOR]
                ),
                f"read a region from {self.regions_collection}",
            )
            region = (cells[0].payload, cells[0].vector) if cells else None
        return stored_frame(found[0].payload, found[0].vector, region)  # type: ignore[arg-type]

    def frame_at(self, stream: str, t: float, *, with_cells: bool = False) -> StoredFrame | None:
        best = None
        for direction, bound in ((qm.Direction.DESC, qm.Range(lte=t)), (qm.Direction.ASC, qm.Range(gt=t))):
            flt = qm.Filter(
                must=[
                    qm.FieldCondition(key="stream", match=qm.MatchAny(any=[stream])),
                    qm.FieldCondition(key="t", range=bound),
                ]
            )
            records, _ = self._call(
                lambda f=flt, d=direction: self.client.scroll(  # type: ignore[misc]
                    self.frames_collection,
                    scroll_filter=f,
                    limit=1,
                    with_payload=HIT_FIELDS,
                    with_vectors=False,
                    order_by=qm.OrderBy(key="t", direction=d),
                ),
                f"find a frame by time in {self.frames_collection}",
            )
            for rec in records:
                pt = float((rec.payload or {}).get("t", 0.0))
                if best is None or abs(pt - t) < abs(best[0] - t):
                    best = (pt, rec.payload or {})
        if best is None:
            return None
        return self.frame(str(best[1]["stream"]), int(best[1]["seq"]), with_cells=with_cells)

    def frames_between(self, stream: str, since: float | None, until: float | None, limit: int) -> list[StoredFrame]:
        check_limit(limit)
        flt = _frame_filter(FrameFilter(streams=[stream], since=since, until=until))

        def fetch(start: float | None, n: int) -> list[Any]:
            order = qm.OrderBy(key="ts", direction=qm.Direction.ASC, start_from=start)
            records, _ = self._call(
                lambda: self.client.scroll(
                    self.frames_collection,
                    scroll_filter=flt,
                    limit=n,
                    with_payload=HIT_FIELDS,
                    with_vectors=list(VECTOR_NAMES),
                    order_by=order,
                ),
                f"read frames from {self.frames_collection}",
            )
            return list(records)

        return frames_in_ts_order(fetch, limit)

    def count_frames_where(self, where: FrameFilter) -> int:
        if where.matches_nothing:
            return 0
        return self._call(
            lambda: self.client.count(self.frames_collection, count_filter=_frame_filter(where), exact=True).count,
            f"count {self.frames_collection}",
        )

    def event(self, event_id: str) -> Event | None:
        pid = event_point_id(event_id)
        found = self._call(
            lambda: self.client.retrieve(self.events_collection, [pid], with_payload=True, with_vectors=False),
            f"read an event from {self.events_collection}",
        )
        return event_from(found[0].payload) if found else None

    def events(self, where: EventFilter, limit: int) -> list[Event]:
        check_limit(limit)
        if (where.streams is not None and not where.streams) or (where.types is not None and not where.types):
            return []
        records, _ = self._call(
            lambda: self.client.scroll(
                self.events_collection,
                scroll_filter=_event_filter(where),
                limit=limit,
                with_payload=True,
                with_vectors=False,
                order_by=qm.OrderBy(key="ts", direction=qm.Direction.DESC),
            ),
            f"list events in {self.events_collection}",
        )
        return [e for e in (event_from(r.payload) for r in records) if e is not None]

    def streams(self) -> list[str]:
        names: set[str] = set()
        for collection in (self.frames_collection, self.events_collection):
            response = self._call(
                lambda c=collection: self.client.facet(c, "stream", limit=100_000, exact=True),  # type: ignore[misc]
                f"list streams in {collection}",
            )
            names.update(str(h.value) for h in response.hits)
        return sorted(names)

    def delete_older_than(self, stream: str | None, ts: float) -> None:
        must: list[qm.Condition] = [qm.FieldCondition(key="ts", range=qm.Range(lt=ts))]
        if stream is not None:
            must.append(qm.FieldCondition(key="stream", match=qm.MatchAny(any=[stream])))
        selector = qm.FilterSelector(filter=qm.Filter(must=must))
        # Frames first: a frame without its region point is still found by image search.
        for collection in (self.frames_collection, self.regions_collection, self.events_collection):
            self._call(
                lambda c=collection: self.client.delete(c, selector, wait=True),  # type: ignore[misc]
                f"delete points older than {ts} of {stream or 'every stream'} from {collection}",
            )

    def thumbnail(self, stream: str, seq: int) -> bytes | None:
        """The JPEG stored with a frame; None when the frame is not indexed or has no thumbnail."""
        pid = frame_point_id(stream, seq)
        found = self._call(
            lambda: self.client.retrieve(self.frames_collection, [pid], with_payload=[THUMB_FIELD], with_vectors=False),
            f"read a thumbnail from {self.frames_collection}",
        )
        return FrameEmbedding.thumbnail_from_index_payload(found[0].payload) if found else None

    def count_frames(self) -> int:
        return self._call(
            lambda: self.client.count(self.frames_collection, exact=True).count, f"count {self.frames_collection}"
        )

    def count_regions(self) -> int:
        return self._call(
            lambda: self.client.count(self.regions_collection, exact=True).count, f"count {self.regions_collection}"
        )

    def count_events(self) -> int:
        return self._call(
            lambda: self.client.count(self.events_collection, exact=True).count, f"count {self.events_collection}"
        )

    def close(self) -> None:
        """Close the client. Writes were acknowledged by the server already: nothing to flush."""
        self.client.close()

    # -- internals -------------------------------------------------------------------------

    def _query(
        self, collection: str, q: list[float] | list[list[float]], using: str, limit: int, where: FrameFilter | None
    ) -> list[FrameHit]:
        check_limit(limit)
        where = where or FrameFilter()
        if where.matches_nothing:
            return []
        response = self._call(
            lambda: self.client.query_points(
                collection,
                query=q,
                using=using,
                query_filter=_frame_filter(where),
                limit=limit,
                with_payload=HIT_FIELDS,
                with_vectors=False,
            ),
            f"search {collection}",
        )
        return [frame_hit(p.id, p.score, p.payload) for p in response.points]

    def _ensure_collection(
        self,
        name: str,
        vectors_config: dict[str, qm.VectorParams],
        indexes: tuple[tuple[str, FieldKind], ...],
        check_dim: bool,
    ) -> None:
        try:
            if self.client.collection_exists(name):
                info = self.client.get_collection(name)
                if check_dim:
                    self._check_vectors(name, info.config.params.vectors)
                present = set(info.payload_schema or {})
            else:
                try:
                    self.client.create_collection(
                        name, vectors_config=vectors_config, **self.layout.create_args(quantize=bool(vectors_config))
                    )
                except (UnexpectedResponse, ValueError):  # a server's 409, local mode's ValueError
                    if not self.client.collection_exists(name):  # else: another process created it
                        raise
                    if check_dim:
                        self._check_vectors(name, self.client.get_collection(name).config.params.vectors)
                present = set()
            for field, kind in indexes:
                if field not in present:
                    self.client.create_payload_index(name, field, _SCHEMA[kind], wait=True)
        except IndexStoreError:
            raise
        except Exception as e:
            raise IndexStoreError(f"cannot prepare the Qdrant collection {name}: {_one_line(e)}") from e

    def _check_vectors(self, name: str, vectors: object) -> None:
        sizes = {k: v.size for k, v in vectors.items()} if isinstance(vectors, dict) else {}
        if not all(n in sizes for n in VECTOR_NAMES):
            raise IndexStoreError(
                f"the Qdrant collection {name} exists but lacks the named vectors {', '.join(VECTOR_NAMES)}; "
                f"it was not made by dinostream: set another index collection prefix"
            )
        stored = sizes[SEARCH_VECTOR]
        if any(sizes[n] != self.dim for n in VECTOR_NAMES):
            raise IndexStoreError(
                f"the Qdrant collection {name} holds {stored}-dim embeddings but the model produces "
                f"{self.dim}-dim ones (was the model switched?); set another index collection prefix for this model"
            )

    def _call(self, fn: Callable[[], _T], what: str) -> _T:
        try:
            return fn()
        except Exception as e:
            raise IndexStoreError(f"Qdrant: cannot {what}: {_one_line(e)}") from e

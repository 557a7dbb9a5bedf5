"""The gallery of recent tracks that identities across streams are found in.

Each stream's records are processed on one worker, so a track can only meet the tracks of other
streams through a shared gallery. `TrackGallery` is the interface; `MemoryTrackGallery` is a
numpy implementation for one process (tests, `dinostream analyze`, the bench);
`EdgeTrackGallery` keeps the entries in a Qdrant Edge shard (embedded, on disk: every worker of
one process shares it) and `QdrantTrackGallery` in a collection of a Qdrant server (workers in
separate processes or machines share it). All three search by cosine similarity, skip the
asking stream and entries last seen before `since_ts`.

    >>> gallery = MemoryTrackGallery(max_entries=10_000)
    >>> gallery.add(TrackEntry("cam1", "12.0", "cam1/12.0", vec, t=6.0, ts=1.7e9))
    >>> gallery.search(other_vec, exclude_stream="cam2", since_ts=1.7e9 - 600, limit=5)
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_edge import (
    CountRequest,
    Distance,
    EdgeConfig,
    EdgeShard,
    EdgeVectorParams,
    FieldCondition,
    Filter,
    MatchValue,
    PayloadSchemaType,
    Point,
    Query,
    QueryRequest,
    RangeFloat,
    UpdateOperation,
)

from dinostream.core.errors import IndexStoreError
from dinostream.core.records import ID_NAMESPACE
from dinostream.core.settings import IndexSettings

log = logging.getLogger(__name__)

TRACK_INDEXES = (("stream", "keyword"), ("ts", "float"))


@dataclass(frozen=True, eq=False)
class TrackEntry:
    """A track as other streams see it: its latest embedding and the identity it belongs to, and
    when and where it was seen (so a link can say which track it matched)."""

    stream: str
    track_id: str
    identity: str  # shared by every track linked to it; a new track's own "<stream>/<track_id>"
    embedding: np.ndarray  # (D,)
    t: float  # media seconds it was last seen
    ts: float  # wall-clock unix seconds it was last seen
    t_start: float | None = None  # media seconds it was first seen
    box: tuple[float, float, float, float] | None = None  # its latest box (x0, y0, x1, y1), normalised
    ts_start: float | None = None  # wall-clock unix seconds it was first seen

    @property
    def point_id(self) -> str:
        """Deterministic, so a track's later updates overwrite its entry."""
        return track_point_id(self.stream, self.track_id)

    def payload(self) -> dict[str, Any]:
        p: dict[str, Any] = {
            "stream": self.stream,
            "track_id": self.track_id,
            "identity": self.identity,
            "t": self.t,
            "ts": self.ts,
        }
        if self.t_start is not None:
            p["t_start"] = self.t_start
        if self.box is not None:
            p["box"] = [float(v) for v in self.box]
        if self.ts_start is not None:
            p["ts_start"] = self.ts_start
        return p


@dataclass(frozen=True)
class GalleryHit:
    stream: str
    track_id: str
    identity: str
    t: float
    ts: float
    score: float  # cosine similarity, higher is closer
    t_start: float | None = None  # when the track was first seen (None: an entry written without it)
    box: tuple[float, float, float, float] | None = None  # its latest box, normalised
    ts_start: float | None = None  # wall-clock unix seconds the track was first seen


def track_point_id(stream: str, track_id: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"track/{stream}/{track_id}"))


def _unit(v: np.ndarray, dim: int | None = None) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32).ravel()
    if dim is not None and a.shape != (dim,):
        raise ValueError(f"track embedding must have shape ({dim},), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("track embedding contains NaN or infinite values")
    n = float(np.linalg.norm(a))
    if n == 0:
        raise ValueError("track embedding is the zero vector")
    return a / n


def _hit(score: float, p: dict[str, Any]) -> GalleryHit:
    box = p.get("box")
    return GalleryHit(
        stream=str(p["stream"]),
        track_id=str(p["track_id"]),
        identity=str(p["identity"]),
        t=float(p["t"]),
        ts=float(p["ts"]),
        score=float(score),
        t_start=None if p.get("t_start") is None else float(p["t_start"]),
        box=None if box is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
        ts_start=None if p.get("ts_start") is None else float(p["ts_start"]),
    )


@runtime_checkable
class TrackGallery(Protocol):
    """Recent tracks of every stream, searchable by embedding. Blocking."""

    def add(self, entry: TrackEntry) -> None:
        """Insert or replace the entry of (entry.stream, entry.track_id)."""

    def search(self, embedding: np.ndarray, *, exclude_stream: str, since_ts: float, limit: int) -> list[GalleryHit]:
        """The `limit` most similar entries of streams other than `exclude_stream` last seen at or
        after `since_ts`, most similar first."""

    def prune(self, before_ts: float) -> int:
        """Drop entries last seen before `before_ts`; returns how many."""

    def __len__(self) -> int: ...

    def close(self) -> None: ...


class MemoryTrackGallery:
    """The gallery as numpy arrays in this process. Holds at most `max_entries`: the entries last
    seen longest ago go first."""

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be positive, got {max_entries}")
        self.max_entries = max_entries
        self._entries: dict[str, TrackEntry] = {}
        self._matrix: np.ndarray | None = None  # rows in the order of self._keys, rebuilt lazily
        self._keys: list[str] = []

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, entry: TrackEntry) -> None:
        dim = None if not self._entries else next(iter(self._entries.values())).embedding.shape[0]
        unit = _unit(entry.embedding, dim)
        self._entries[entry.point_id] = TrackEntry(
            entry.stream,
            entry.track_id,
            entry.identity,
            unit,
            float(entry.t),
            float(entry.ts),
            entry.t_start,
            entry.box,
            entry.ts_start,
        )
        if len(self._entries) > self.max_entries:
            oldest = min(self._entries, key=lambda k: self._entries[k].ts)
            del self._entries[oldest]
        self._matrix = None

    def search(self, embedding: np.ndarray, *, exclude_stream: str, since_ts: float, limit: int) -> list[GalleryHit]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        if not self._entries:
            return []
        if self._matrix is None:
            self._keys = list(self._entries)
            self._matrix = np.stack([self._entries[k].embedding for k in self._keys])
        q = _unit(embedding, self._matrix.shape[1])
        scores = self._matrix @ q
        entries = [self._entries[k] for k in self._keys]
        ok = np.array([e.stream != exclude_stream and e.ts >= since_ts for e in entries])
        idx = [i for i in np.argsort(-scores, kind="stable") if ok[i]][:limit]
        return [_hit(float(scores[i]), entries[i].payload()) for i in idx]

    def prune(self, before_ts: float) -> int:
        old = [k for k, e in self._entries.items() if e.ts < before_ts]
        for k in old:
            del self._entries[k]
        if old:
            self._matrix = None
        return len(old)

    def close(self) -> None:
        self._entries.clear()
        self._matrix = None


class EdgeTrackGallery:
    """The gallery in a Qdrant Edge shard at `path` (created on first use): one cosine vector per
    track, payload stream/track_id/identity/t/ts, with keyword and float indexes on stream and ts.

    An Edge shard is embedded: it locks its directory, so it is shared by the workers of one
    process (as in `dinostream up`); workers in several processes use `QdrantTrackGallery`."""

    def __init__(self, path: Path, dim: int, *, flush_every: int = 64, replace_other_dim: bool = False) -> None:
        """`replace_other_dim`: a shard of another dimension (written before the signature's layout
        changed) is removed and created afresh, with a warning; else it is an IndexStoreError."""
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self.path = Path(path)
        self.dim = dim
        self.flush_every = flush_every
        self._pending = 0
        config = EdgeConfig(vectors={"track": EdgeVectorParams(size=dim, distance=Distance.Cosine)})
        schema = {"keyword": PayloadSchemaType.Keyword, "float": PayloadSchemaType.Float}
        if _replace_other_dim(f"the track gallery at {self.path}", _edge_dim(self.path), dim, replace_other_dim):
            shutil.rmtree(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fresh = not any(self.path.iterdir())
            self._shard = EdgeShard.create(str(self.path), config) if fresh else EdgeShard.load(str(self.path), config)
        except Exception as e:  # qdrant_edge raises plain Exception
            raise IndexStoreError(f"cannot open the track gallery at {self.path}: {e}") from e
        try:
            present = set(self._shard.info().payload_schema)
            for field, kind in TRACK_INDEXES:
                if field not in present:
                    self._shard.update(UpdateOperation.create_field_index(field, schema[kind]))
            self._shard.flush()
        except Exception as e:
            self._shard.close()
            raise IndexStoreError(f"cannot create payload indexes in the track gallery at {self.path}: {e}") from e
        self._closed = False

    def add(self, entry: TrackEntry) -> None:

        vec = _unit(entry.embedding, self.dim).tolist()
        op = UpdateOperation.upsert_points([Point(entry.point_id, {"track": vec}, entry.payload())])
        self._check_open()
        try:
            self._shard.update(op)
            # The gallery is a cache of the last minutes, rebuilt by the tracks themselves: the WAL
            # is enough between flushes, which are batched.
            self._pending += 1
            if self._pending >= self.flush_every:
                self._shard.flush()
                self._pending = 0
        except Exception as e:
            raise IndexStoreError(f"writing track {entry.stream}/{entry.track_id} to {self.path} failed: {e}") from e

    def search(self, embedding: np.ndarray, *, exclude_stream: str, since_ts: float, limit: int) -> list[GalleryHit]:

        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        q = _unit(embedding, self.dim).tolist()
        request = QueryRequest(
            limit=limit,
            query=Query.Nearest(q, using="track"),
            filter=Filter(
                must=[FieldCondition("ts", range=RangeFloat(gte=float(since_ts)))],
                must_not=[FieldCondition("stream", match=MatchValue(exclude_stream))],
            ),
            with_payload=True,
            with_vector=False,
        )
        self._check_open()
        try:
            points = self._shard.query(request)
        except Exception as e:
            raise IndexStoreError(f"cannot search the track gallery at {self.path}: {e}") from e
        return [_hit(p.score, dict(p.payload or {})) for p in points]

    def prune(self, before_ts: float) -> int:

        self._check_open()
        old = Filter(must=[FieldCondition("ts", range=RangeFloat(lt=float(before_ts)))])
        try:
            n = int(self._shard.count(CountRequest(exact=True, filter=old)))
            if n:
                self._shard.update(UpdateOperation.delete_points_by_filter(old))
            return n
        except Exception as e:
            raise IndexStoreError(f"cannot prune the track gallery at {self.path}: {e}") from e

    def __len__(self) -> int:

        self._check_open()
        return int(self._shard.count(CountRequest(exact=True)))

    def close(self) -> None:
        """Flush and release the shard (and its directory lock). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self._shard.flush()
        finally:
            self._shard.close()

    def _check_open(self) -> None:
        if self._closed:
            raise IndexStoreError(f"the track gallery at {self.path} is closed")


def _replace_other_dim(gallery: str, stored: int | None, dim: int, replace: bool) -> bool:
    """Whether a gallery holding `stored`-dim tracks is to be replaced for `dim`-dim ones (with a
    warning: it is a cache of the last minutes' tracks); an IndexStoreError naming both sizes
    when it may not be. False for a new gallery or one of this size."""
    if stored is None or stored == dim:
        return False
    what = f"{gallery} holds {stored}-dim tracks, this worker's are {dim}-dim"
    if not replace:
        raise IndexStoreError(what)
    log.warning("%s: replacing it (the gallery is a cache of the last minutes' tracks)", what)
    return True


def _edge_dim(path: Path) -> int | None:
    """The track vectors' size an Edge shard at `path` was created with; None without a shard (or
    a config that does not say; loading then reports what is wrong)."""
    try:
        config = json.loads((path / "edge_config.json").read_text())
        return int(config["vectors"]["track"]["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class QdrantTrackGallery:
    """The gallery in the collection `{prefix}_tracks` of a Qdrant server (or qdrant-client's local
    mode), created on first use; the gallery every analytics process shares. Owns `client`."""

    def __init__(
        self,
        client: QdrantClient,
        dim: int,
        prefix: str = "dinostream",
        *,
        layout: IndexSettings | None = None,
        replace_other_dim: bool = False,
    ) -> None:
        """`replace_other_dim`: as `EdgeTrackGallery`'s, for the collection."""
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self.client = client
        self.dim = dim
        self.collection = f"{prefix}_tracks"
        schema = {"keyword": qm.PayloadSchemaType.KEYWORD, "float": qm.PayloadSchemaType.FLOAT}
        try:
            if _replace_other_dim(f"the track gallery {self.collection}", self._stored_dim(), dim, replace_other_dim):
                client.delete_collection(self.collection)
            if not client.collection_exists(self.collection):
                client.create_collection(self.collection, **track_collection_args(dim, layout or IndexSettings()))
                for field, kind in TRACK_INDEXES:
                    client.create_payload_index(self.collection, field, schema[kind], wait=True)
        except IndexStoreError:
            client.close()
            raise
        except Exception as e:
            client.close()
            raise IndexStoreError(f"cannot open the track gallery {self.collection}: {' '.join(str(e).split())}") from e

    def _stored_dim(self) -> int | None:
        if not self.client.collection_exists(self.collection):
            return None
        vectors = self.client.get_collection(self.collection).config.params.vectors
        params = vectors.get("track") if isinstance(vectors, dict) else None
        return None if params is None else int(params.size)

    def add(self, entry: TrackEntry) -> None:

        vec = _unit(entry.embedding, self.dim).tolist()
        point = qm.PointStruct(id=entry.point_id, vector={"track": vec}, payload=entry.payload())
        try:
            self.client.upsert(self.collection, [point], wait=True)
        except Exception as e:
            what = f"track {entry.stream}/{entry.track_id}"
            raise IndexStoreError(f"writing {what} to {self.collection} failed: {e}") from e

    def search(self, embedding: np.ndarray, *, exclude_stream: str, since_ts: float, limit: int) -> list[GalleryHit]:

        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        q = _unit(embedding, self.dim).tolist()
        flt = qm.Filter(
            must=[qm.FieldCondition(key="ts", range=qm.Range(gte=float(since_ts)))],
            must_not=[qm.FieldCondition(key="stream", match=qm.MatchValue(value=exclude_stream))],
        )
        try:
            res = self.client.query_points(
                self.collection, query=q, using="track", query_filter=flt, limit=limit, with_payload=True
            )
        except Exception as e:
            raise IndexStoreError(f"cannot search the track gallery {self.collection}: {e}") from e
        return [_hit(p.score, dict(p.payload or {})) for p in res.points]

    def prune(self, before_ts: float) -> int:

        old = qm.Filter(must=[qm.FieldCondition(key="ts", range=qm.Range(lt=float(before_ts)))])
        try:
            n = int(self.client.count(self.collection, count_filter=old, exact=True).count)
            if n:
                self.client.delete(self.collection, points_selector=qm.FilterSelector(filter=old), wait=True)
            return n
        except Exception as e:
            raise IndexStoreError(f"cannot prune the track gallery {self.collection}: {e}") from e

    def __len__(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)

    def close(self) -> None:
        self.client.close()


class LazyTrackGallery:
    """A gallery opened on first use, when the first embedding tells its dimension: a worker
    learns the region embedding size (the model's, or the patch PCA's) from the records.

    >>> gallery = LazyTrackGallery(lambda dim: EdgeTrackGallery(data_dir / "tracks", dim))
    """

    def __init__(self, open_with_dim: Callable[[int], TrackGallery]) -> None:
        self._open = open_with_dim
        self._gallery: TrackGallery | None = None

    def _get(self, embedding: np.ndarray) -> TrackGallery:
        if self._gallery is None:
            self._gallery = self._open(int(np.asarray(embedding).size))
        return self._gallery

    def add(self, entry: TrackEntry) -> None:
        self._get(entry.embedding).add(entry)

    def search(self, embedding: np.ndarray, *, exclude_stream: str, since_ts: float, limit: int) -> list[GalleryHit]:
        return self._get(embedding).search(embedding, exclude_stream=exclude_stream, since_ts=since_ts, limit=limit)

    def prune(self, before_ts: float) -> int:
        return 0 if self._gallery is None else self._gallery.prune(before_ts)

    def __len__(self) -> int:
        return 0 if self._gallery is None else len(self._gallery)

    def close(self) -> None:
        if self._gallery is not None:
            self._gallery.close()


def track_collection_args(dim: int, layout: IndexSettings) -> dict[str, Any]:
    """create_collection's arguments for the tracks collection, laid out as the index's collections
    are (index.qdrant_on_disk_vectors, qdrant_quantization, qdrant_on_disk_payload, qdrant_shards,
    qdrant_replication_factor; the defaults are Qdrant's)."""
    vector = qm.VectorParams(size=dim, distance=qm.Distance.COSINE, on_disk=layout.qdrant_on_disk_vectors or None)
    args: dict[str, Any] = {
        "vectors_config": {"track": vector},
        "on_disk_payload": layout.qdrant_on_disk_payload,
        "shard_number": layout.qdrant_shards,
        "replication_factor": layout.qdrant_replication_factor,
    }
    if layout.qdrant_quantization == "int8":
        args["quantization_config"] = qm.ScalarQuantization(
            scalar=qm.ScalarQuantizationConfig(type=qm.ScalarType.INT8, quantile=0.99, always_ram=True)
        )
    return args


def open_gallery(
    qdrant_url: str | None, api_key: str | None, prefix: str, data_dir: Path, *, layout: IndexSettings | None = None
) -> TrackGallery:
    """The gallery a deployment shares: a Qdrant server's collection when `qdrant_url` is set
    (workers in several processes; new collections laid out by `layout`'s qdrant_* settings), else
    an embedded Edge shard under `data_dir / "tracks"` (the workers of one process). Opened on first use;
    a gallery of another dimension (tracks of an older signature layout, or another model) is replaced."""
    if qdrant_url is not None:
        url, key = qdrant_url, api_key
        return LazyTrackGallery(
            lambda dim: QdrantTrackGallery(
                QdrantClient(url=url, api_key=key), dim, prefix, layout=layout, replace_other_dim=True
            )
        )
    path = Path(data_dir) / "tracks"
    return LazyTrackGallery(lambda dim: EdgeTrackGallery(path, dim, replace_other_dim=True))

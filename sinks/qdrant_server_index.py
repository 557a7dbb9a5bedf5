"""`VectorIndex` on a Qdrant server, through qdrant-client.

Collections `{prefix}_frames` (named vectors "cls" and "pooled", cosine, float16) and
`{prefix}_events` (vectorless points) hold the same payloads as the Edge index. Writes wait for
the server to apply them, so an acknowledged batch is in the server's WAL.

    >>> index = QdrantServerIndex.from_url("http://qdrant:6333", api_key=None, dim=384)
    >>> index.search_frames(vector, limit=5)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import UnexpectedResponse

from dinostream.errors import IndexStoreError
from dinostream.records import Event, FrameEmbedding, frame_point_id
from sinks.index_payload import (
    EVENT_INDEXES,
    FRAME_INDEXES,
    HIT_FIELDS,
    SEARCH_VECTOR,
    THUMB_FIELD,
    VECTOR_NAMES,
    FieldKind,
    check_limit,
    event_payload,
    event_point_id,
    frame_hit,
    frame_payload,
    frame_vectors,
    query_vector,
    thumbnail_from,
)
from sinks.vector_index import FrameHit, VectorIndex

_T = TypeVar("_T")
_SCHEMA = {"keyword": qm.PayloadSchemaType.KEYWORD, "float": qm.PayloadSchemaType.FLOAT}


def _one_line(e: BaseException) -> str:
    if isinstance(e, UnexpectedResponse):
        text = f"HTTP {e.status_code} {e.reason_phrase}: {e.content.decode(errors='replace')}"
    else:
        text = str(e) or type(e).__name__
    return " ".join(text.split())


class QdrantServerIndex(VectorIndex):
    """Frames and events in two collections of a Qdrant server, created on first use.

    The index owns `client`: `close()` closes it, and so does a failing constructor."""

    def __init__(self, client: QdrantClient, dim: int, prefix: str = "dinostream") -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self.client = client
        self.dim = dim
        self.frames_collection = f"{prefix}_frames"
        self.events_collection = f"{prefix}_events"
        frame_vectors_config = {
            name: qm.VectorParams(size=dim, distance=qm.Distance.COSINE, datatype=qm.Datatype.FLOAT16)
            for name in VECTOR_NAMES
        }
        try:
            self._ensure_collection(self.frames_collection, frame_vectors_config, FRAME_INDEXES, check_dim=True)
            # A server collection may declare no vectors at all; events are payload-only points.
            self._ensure_collection(self.events_collection, {}, EVENT_INDEXES, check_dim=False)
        except BaseException:
            client.close()
            raise

    @classmethod
    def from_url(
        cls, url: str, api_key: str | None, dim: int, prefix: str = "dinostream", timeout: float = 10.0
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
        return cls(client, dim, prefix)

    def upsert_frames(self, records: Sequence[FrameEmbedding]) -> None:
        if not records:
            return
        points = [
            qm.PointStruct(id=r.point_id, vector=frame_vectors(r, self.dim), payload=frame_payload(r)) for r in records
        ]
        self._call(
            lambda: self.client.upsert(self.frames_collection, points, wait=True),
            f"write {len(points)} frames to {self.frames_collection}",
        )

    def upsert_events(self, events: Sequence[Event]) -> None:
        if not events:
            return
        points = [qm.PointStruct(id=event_point_id(e), vector={}, payload=event_payload(e)) for e in events]
        self._call(
            lambda: self.client.upsert(self.events_collection, points, wait=True),
            f"write {len(points)} events to {self.events_collection}",
        )

    def search_frames(
        self, vector: np.ndarray, limit: int = 10, streams: Sequence[str] | None = None
    ) -> list[FrameHit]:
        q = query_vector(vector, self.dim)
        check_limit(limit)
        if streams is not None and not streams:
            return []
        flt = (
            qm.Filter(must=[qm.FieldCondition(key="stream", match=qm.MatchAny(any=list(streams)))]) if streams else None
        )
        response = self._call(
            lambda: self.client.query_points(
                self.frames_collection,
                query=q,
                using=SEARCH_VECTOR,
                query_filter=flt,
                limit=limit,
                with_payload=HIT_FIELDS,
                with_vectors=False,
            ),
            f"search {self.frames_collection}",
        )
        return [frame_hit(p.id, p.score, p.payload) for p in response.points]

    def thumbnail(self, stream: str, seq: int) -> bytes | None:
        """The JPEG stored with a frame; None when the frame is not indexed or has no thumbnail."""
        pid = frame_point_id(stream, seq)
        found = self._call(
            lambda: self.client.retrieve(self.frames_collection, [pid], with_payload=[THUMB_FIELD], with_vectors=False),
            f"read a thumbnail from {self.frames_collection}",
        )
        return thumbnail_from(found[0].payload) if found else None

    def count_frames(self) -> int:
        return self._call(
            lambda: self.client.count(self.frames_collection, exact=True).count, f"count {self.frames_collection}"
        )

    def count_events(self) -> int:
        return self._call(
            lambda: self.client.count(self.events_collection, exact=True).count, f"count {self.events_collection}"
        )

    def close(self) -> None:
        """Close the client. Writes were acknowledged by the server already: nothing to flush."""
        self.client.close()

    # -- internals -------------------------------------------------------------------------

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
                    self.client.create_collection(name, vectors_config=vectors_config)
                except UnexpectedResponse:
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

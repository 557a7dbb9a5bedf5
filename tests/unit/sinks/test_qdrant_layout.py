"""Qdrant server collections as an operator lays them out (index.qdrant_* settings), in
qdrant-client's local mode: on-disk vectors show in the stored config; what local mode does not
keep (quantization, payload on disk, shards, replicas) is checked in the request the server gets,
validated as the REST body. And a collection created by another process between our check and our
create (two index sinks starting at once) is used, not fatal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from dinostream.core.settings import IndexSettings
from dinostream.sinks.qdrant_server_index import CollectionLayout, QdrantServerIndex
from tests.records import shots

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect in the local Qdrant")


def rest_body(args: dict[str, Any]) -> qm.CreateCollection:
    """create_collection's arguments as the REST body the server is sent, validated."""
    args = dict(args)
    return qm.CreateCollection(vectors=args.pop("vectors_config"), **args)


class RecordingClient(QdrantClient):
    """Local mode; remembers create_collection's arguments."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.created: dict[str, dict[str, Any]] = {}

    def create_collection(self, collection_name: str, **kwargs: Any) -> bool:  # type: ignore[override]
        self.created[collection_name] = kwargs
        return super().create_collection(collection_name, **kwargs)


PRODUCTION = IndexSettings(
    qdrant_url="http://qdrant:6333",
    qdrant_on_disk_vectors=True,
    qdrant_quantization="int8",
    qdrant_on_disk_payload=True,
    qdrant_shards=6,
    qdrant_replication_factor=2,
)


def test_production_layout() -> None:
    client = RecordingClient()
    index = QdrantServerIndex(client, 32, "p", layout=CollectionLayout.from_settings(PRODUCTION))
    try:
        frames = client.get_collection("p_frames").config.params.vectors
        regions = client.get_collection("p_regions").config.params.vectors
        assert isinstance(frames, dict) and isinstance(regions, dict)
        assert all(v.on_disk for v in [*frames.values(), *regions.values()])
        for name in ("p_frames", "p_regions", "p_events"):
            body = rest_body(client.created[name])
            assert body.on_disk_payload is True, name
            assert (body.shard_number, body.replication_factor) == (6, 2), name
        for name in ("p_frames", "p_regions"):
            q = rest_body(client.created[name]).quantization_config
            assert isinstance(q, qm.ScalarQuantization), name
            assert q.scalar.type == qm.ScalarType.INT8 and q.scalar.always_ram is True, name
        assert "quantization_config" not in client.created["p_events"]  # no vectors to quantize
        # and it still works as an index
        recs = shots("cam", [4], 1)
        index.upsert_frames(recs)
        assert index.count_frames() == 4
        assert index.search_frames(np.asarray(recs[0].cls), limit=1)[0].seq == recs[0].seq
    finally:
        index.close()


def test_default_layout_is_qdrants() -> None:
    client = RecordingClient()
    QdrantServerIndex(client, 16, "d", layout=CollectionLayout.from_settings(IndexSettings())).close()
    body = rest_body(client.created["d_frames"])
    assert body.quantization_config is None
    assert (body.shard_number, body.replication_factor, body.on_disk_payload) == (None, None, False)
    assert isinstance(body.vectors, dict)
    assert not any(v.on_disk for v in body.vectors.values())


class RacingClient(QdrantClient):
    """Says a collection is missing once, as a check made just before another process created it."""

    def __init__(self, path: str) -> None:
        super().__init__(path=path)
        self.lied: set[str] = set()

    def collection_exists(self, collection_name: str) -> bool:
        if collection_name not in self.lied:
            self.lied.add(collection_name)
            return False
        return super().collection_exists(collection_name)


def test_a_collection_created_concurrently_is_used(tmp_path: Path) -> None:
    first = QdrantServerIndex(QdrantClient(path=str(tmp_path)), 32, "r")
    first.upsert_frames(shots("cam", [3], 1))
    first.close()
    second = QdrantServerIndex(RacingClient(str(tmp_path)), 32, "r")  # create_collection hits "already exists"
    try:
        assert second.client.lied == {"r_frames", "r_regions", "r_events"}  # type: ignore[attr-defined]
        assert second.count_frames() == 3  # the other process's collection, as it was
    finally:
        second.close()


def test_the_track_gallery_follows_the_layout() -> None:
    from dinostream.analytics.gallery import QdrantTrackGallery

    client = RecordingClient()
    gallery = QdrantTrackGallery(client, 32, "p", layout=PRODUCTION)
    try:
        vectors = client.get_collection("p_tracks").config.params.vectors
        assert isinstance(vectors, dict) and vectors["track"].on_disk
        body = rest_body(client.created["p_tracks"])
        assert (body.shard_number, body.replication_factor, body.on_disk_payload) == (6, 2, True)
        assert isinstance(body.quantization_config, qm.ScalarQuantization)
        assert body.quantization_config.scalar.type == qm.ScalarType.INT8
    finally:
        gallery.close()

"""Pick the `VectorIndex` backend the settings ask for.

>>> index = open_index(settings.index, settings.data_dir, dim=384)
"""

from __future__ import annotations

from pathlib import Path

from dinostream.settings import IndexSettings
from sinks.qdrant_edge_index import QdrantEdgeIndex
from sinks.qdrant_server_index import QdrantServerIndex
from sinks.vector_index import VectorIndex


def open_index(settings: IndexSettings, data_dir: Path, dim: int) -> VectorIndex:
    """Embedded Qdrant Edge under `data_dir / "qdrant"` when no server URL is set, else the server."""
    if settings.qdrant_url is None:
        return QdrantEdgeIndex(Path(data_dir) / "qdrant", dim)
    return QdrantServerIndex.from_url(settings.qdrant_url, settings.qdrant_api_key, dim, settings.collection_prefix)

"""Pick the `VectorIndex` backend the settings ask for.

>>> index = open_index(settings.index, settings.data_dir, dim=384, patch_dim=settings.model.patch_pca_dims)
"""

from __future__ import annotations

from pathlib import Path

from dinostream.core.settings import IndexSettings
from dinostream.sinks.qdrant_edge_index import QdrantEdgeIndex
from dinostream.sinks.qdrant_server_index import QdrantServerIndex
from dinostream.sinks.vector_index import VectorIndex


def open_index(settings: IndexSettings, data_dir: Path, dim: int, patch_dim: int | None = None) -> VectorIndex:
    """Embedded Qdrant Edge under `data_dir / "qdrant"` when no server URL is set, else the server.

    `patch_dim` is the size of the records' patch vectors: the model's `dim` (the default) unless
    patches are reduced by PCA (`ModelSettings.patch_pca_dims`)."""
    grid = settings.region_grid
    if settings.qdrant_url is None:
        return QdrantEdgeIndex(Path(data_dir) / "qdrant", dim, patch_dim=patch_dim, region_grid=grid)
    return QdrantServerIndex.from_url(
        settings.qdrant_url,
        settings.qdrant_api_key,
        dim,
        settings.collection_prefix,
        patch_dim=patch_dim,
        region_grid=grid,
    )

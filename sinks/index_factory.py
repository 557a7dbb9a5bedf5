"""Pick the `VectorIndex` backend the settings ask for.

>>> index = open_index(settings.index, settings.data_dir, dim=384, patch_dim=settings.model.patch_pca_dims,
...                    reid=settings.analytics.reid)
"""

from __future__ import annotations

from pathlib import Path

from dinostream.core.settings import IndexSettings, ReidSettings
from dinostream.sinks.qdrant_edge_index import QdrantEdgeIndex
from dinostream.sinks.qdrant_server_index import CollectionLayout, QdrantServerIndex
from dinostream.sinks.vector_index import VectorIndex


def open_index(
    settings: IndexSettings,
    data_dir: Path,
    dim: int,
    patch_dim: int | None = None,
    *,
    reid: ReidSettings | None = None,
) -> VectorIndex:
    """Embedded Qdrant Edge under `data_dir / "qdrant"` when no server URL is set, else the server.

    `patch_dim` is the size of the records' patch vectors: the model's `dim` (the default) unless
    patches are reduced by PCA (`ModelSettings.patch_pca_dims`). Stored cells for point search are
    centred by `reid.feature_centering` (default: `ReidSettings()`), as live click-to-segment does."""
    grid = settings.region_grid
    centering = (reid or ReidSettings()).feature_centering
    if settings.qdrant_url is None:
        return QdrantEdgeIndex(
            Path(data_dir) / "qdrant", dim, patch_dim=patch_dim, region_grid=grid, cell_centering=centering
        )
    return QdrantServerIndex.from_url(
        settings.qdrant_url,
        settings.qdrant_api_key,
        dim,
        settings.collection_prefix,
        patch_dim=patch_dim,
        region_grid=grid,
        cell_centering=centering,
        layout=CollectionLayout.from_settings(settings),
    )

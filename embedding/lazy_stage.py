"""A model stage loaded when an image query first needs it (search by picture, watchlist crops),
so a gateway without a GPU starts at once.

    model = LazyStage(settings)
    vectors = await model.embed_images([rgb])      # loads the model the first time
    await model.close()
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import Settings

if TYPE_CHECKING:  # torch and transformers are imported when the model is first needed, not with the role
    from dinostream.embedding.model_loader import LoadedModel
    from dinostream.embedding.stage import EmbeddingStage

log = logging.getLogger(__name__)


async def _no_sink(batch: list[FrameEmbedding]) -> None:
    """Queries come back to their callers; nothing goes to a sink."""


class LazyStage:
    """`EmbeddingStage.from_settings` (its query methods), loaded on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stage: EmbeddingStage | None = None
        self.loaded: LoadedModel | None = None
        self._lock = asyncio.Lock()

    async def _ready(self) -> EmbeddingStage:
        async with self._lock:
            if self.stage is None:
                log.info("loading the model for image queries")
                # torch and transformers are imported here the first time: in a thread, seconds of
                # import would otherwise stall every request and websocket of the gateway
                await asyncio.to_thread(importlib.import_module, "dinostream.embedding.stage")
                from dinostream.embedding.stage import EmbeddingStage, load_model_async

                self.loaded = await load_model_async(self.settings.model)
                stage = EmbeddingStage.from_settings(self.loaded, self.settings, _no_sink)
                stage.start()
                self.stage = stage
            return self.stage

    async def embed_images(self, images: list[np.ndarray]) -> np.ndarray:
        return await (await self._ready()).embed_images(images)

    async def embed_image_record(self, image: np.ndarray) -> FrameEmbedding:
        return await (await self._ready()).embed_image_record(image)

    def health(self) -> dict[str, Any]:
        if self.loaded is None:
            return {"id": self.settings.model.model, "loaded": False}
        return {"id": self.loaded.model_id, "loaded": True, "device": str(self.loaded.device)}

    async def close(self) -> None:
        if self.stage is not None:
            await self.stage.stop()

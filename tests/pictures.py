"""Pictures for tests: JPEG bytes of an array, plain-colour uploads, and a deterministic stand-in
for the model's `embed_images` (mean colour per quadrant), shared by the API and analytics tests."""

from __future__ import annotations

import asyncio
import io

import numpy as np
from PIL import Image


def jpeg(rgb: np.ndarray) -> bytes:
    """An RGB uint8 array as JPEG bytes (PIL's default quality, 75)."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG")
    return buf.getvalue()


def picture(
    colour: tuple[int, int, int], size: tuple[int, int] = (64, 48), fmt: str = "JPEG", mode: str = "RGB"
) -> bytes:
    """A plain picture as an upload would carry it."""
    img = Image.new("RGB", size, colour).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def colour_features(rgb: np.ndarray) -> np.ndarray:
    """Mean colour of each image quadrant, centred on grey: similar pictures point the same way."""
    h, w, _ = rgb.shape
    quads = [rgb[: h // 2, : w // 2], rgb[: h // 2, w // 2 :], rgb[h // 2 :, : w // 2], rgb[h // 2 :, w // 2 :]]
    return np.concatenate([q.reshape(-1, 3).mean(axis=0) / 255.0 - 0.5 for q in quads]).astype(np.float32)


class ColourEmbedder:
    """`embed_images` for tests; counts its calls and records what the app handed it."""

    def __init__(self) -> None:
        self.calls = 0
        self.seen: list[tuple[tuple[int, ...], str]] = []

    async def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        self.calls += 1
        self.seen.extend((im.shape, str(im.dtype)) for im in images)
        return await asyncio.to_thread(lambda: np.stack([colour_features(im) for im in images]))

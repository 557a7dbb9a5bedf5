"""Frames in, DINOv3 embeddings out: one blocking forward pass per batch.

Frames stay uint8 on the host; they are stacked into one array, moved to the device (through
pinned memory on CUDA) and normalised there. Per frame the embedder keeps the CLS token, the
mean of the patch tokens and the patch grid, all as fp16, plus a JPEG thumbnail.

    >>> embedder = Embedder(load_model("random:tiny", device="cpu"), ModelSettings())
    >>> [rec] = embedder.embed([frame])         # frame.image: (224, 224, 3) uint8
    >>> rec.patches.shape
    (14, 14, 32)

Blocking by design: run it on the model's own executor (see `analytics.batcher`), never on the
event loop.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from analytics.model_loader import LoadedModel
from dinostream.records import FrameEmbedding
from dinostream.settings import ModelSettings
from ingest.resize import resize_rgb
from ingest.source import Frame

_FP16_MAX = float(np.finfo(np.float16).max)


class Embedder:
    """Turns batches of same-sized frames into `FrameEmbedding` records."""

    def __init__(self, loaded: LoadedModel, settings: ModelSettings) -> None:
        self.loaded = loaded
        self.settings = settings
        dev = loaded.device
        self._mean = torch.tensor(loaded.image_mean, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
        self._std = torch.tensor(loaded.image_std, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
        self._prefix = 1 + loaded.num_register_tokens  # CLS + registers come before the patch tokens

    @property
    def dim(self) -> int:
        return self.loaded.hidden_size

    def embed(self, frames: Sequence[Frame]) -> list[FrameEmbedding]:
        """Embed frames that all have the same (H, W), multiples of the patch size. Blocking."""
        if not frames:
            return []
        batch = self._stack([f.image for f in frames], what="frame")
        _, h, w, _ = batch.shape
        gh, gw = h // self.loaded.patch_size, w // self.loaded.patch_size
        with torch.inference_mode():
            tokens = self._forward(batch)  # (B, 1 + R + N, D) on the device, possibly still computing
            cls = tokens[:, 0]
            patches = tokens[:, self._prefix :]  # registers excluded
            pooled = patches.mean(dim=1)
            # One fp16 tensor per batch, one device-to-host copy: [cls, pooled, patch_1..patch_N].
            # Values beyond fp16's range (none in practice after the final LayerNorm) saturate.
            packed = torch.cat([cls[:, None], pooled[:, None], patches], dim=1)
            packed = packed.clamp(-_FP16_MAX, _FP16_MAX).to(torch.float16)
            # On CUDA the forward pass runs asynchronously: encode thumbnails meanwhile.
            thumbs = [self.thumbnail(f.image) for f in frames]
            host = packed.cpu().numpy()
        out = []
        for i, f in enumerate(frames):
            out.append(
                FrameEmbedding(
                    stream=f.stream,
                    seq=f.seq,
                    pts=f.pts,
                    ts=f.ts,
                    model=self.loaded.model_id,
                    untrained=self.loaded.untrained,
                    cls=host[i, 0],
                    pooled=host[i, 1],
                    patches=host[i, 2:].reshape(gh, gw, -1),
                    thumbnail=thumbs[i],
                )
            )
        return out

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised CLS vectors, (B, D) float32, for query images of any size. Blocking.

        Each image is first resized to the model input square with the decoder's scaler, so a
        query image is seen the way a video frame of it would be.
        """
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        side = self.settings.image_size
        batch = self._stack([resize_rgb(img, (side, side)) for img in images], what="image")
        with torch.inference_mode():
            cls = torch.nn.functional.normalize(self._forward(batch)[:, 0], dim=-1)
            return cls.cpu().numpy().astype(np.float32, copy=False)

    def thumbnail(self, image: np.ndarray) -> bytes:
        """JPEG of `image` whose longest side is at most `settings.thumbnail_size` (never upscaled)."""
        size = self.settings.thumbnail_size
        img = Image.fromarray(image)
        img.thumbnail((size, size), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=self.settings.thumbnail_quality)
        return buf.getvalue()

    # --- internals --------------------------------------------------------------------------

    def _stack(self, images: Sequence[np.ndarray], *, what: str) -> np.ndarray:
        """One contiguous (B, H, W, 3) uint8 array, after checking every image."""
        first = images[0]
        patch = self.loaded.patch_size
        for i, img in enumerate(images):
            if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                shape = getattr(img, "shape", None)
                dtype = getattr(img, "dtype", type(img).__name__)
                raise ValueError(f"{what} {i}: expected an (H, W, 3) uint8 RGB array, got {shape} {dtype}")
            if img.shape != first.shape:
                raise ValueError(
                    f"{what} {i} is {img.shape[1]}x{img.shape[0]} but {what} 0 is {first.shape[1]}x{first.shape[0]}: "
                    "every frame of a batch must have the same size"
                )
        h, w = first.shape[:2]
        if h % patch or w % patch or h == 0 or w == 0:
            raise ValueError(
                f"{what} size {w}x{h} is not a multiple of the patch size {patch}: resize frames to multiples of "
                f"{patch} (e.g. {max(patch, round(w / patch) * patch)}x{max(patch, round(h / patch) * patch)})"
            )
        return np.stack(images)

    def _forward(self, batch: np.ndarray) -> torch.Tensor:
        """The final (layer-normed) hidden states of a uint8 (B, H, W, 3) batch, on the device."""
        loaded = self.loaded
        dev = loaded.device
        with torch.inference_mode():
            x = torch.from_numpy(batch)
            if dev.type == "cuda":
                x = x.pin_memory().to(dev, non_blocking=True)
            # NHWC uint8 -> NCHW float: permute is a view, the conversion runs on the device.
            x = x.permute(0, 3, 1, 2).float().div_(255.0).sub_(self._mean).div_(self._std)
            autocast = (
                torch.autocast(device_type="cuda", dtype=loaded.dtype)
                if dev.type == "cuda"
                else contextlib.nullcontext()
            )
            with autocast:
                out = loaded.model(pixel_values=x)
            # `pooler_output` is `last_hidden_state[:, 0]` (CLS after the final LayerNorm), so
            # everything needed is in `last_hidden_state`.
            return out.last_hidden_state.float()

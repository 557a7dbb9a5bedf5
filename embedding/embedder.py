"""Frames in, DINOv3 embeddings out: one blocking forward pass per batch, on one device.

Frames stay uint8 on the host; they are stacked into one array (on CUDA straight into a
reused pinned buffer), copied to the device without blocking and normalised there (one
in-place multiply and add). CUDA computes under bf16/fp16 autocast, the CPU in fp32; attention is
PyTorch's SDPA; `compile=True` runs the whole device step through `torch.compile`. Per frame
the embedder keeps the CLS token, the mean of the patch tokens and the patch grid (optionally
average-pooled and PCA-reduced on the device), all fp16, brought back in one device-to-host
copy per batch, plus a JPEG thumbnail encoded while the device computes.

A CUDA out-of-memory error halves the batch and retries each half (down to single frames;
later batches are capped at the size that fit). A frame that does not fit alone raises
`EmbeddingOOMError`; no frame is ever dropped silently.

    >>> embedder = Embedder(load_model("random:tiny", device="cpu"), ModelSettings())
    >>> [rec] = embedder.embed([frame])         # frame.image: (224, 224, 3) uint8
    >>> rec.patches.shape
    (14, 14, 32)

Blocking by design: run it on the model's own executor (see `dinostream.embedding.batcher`), never on the
event loop.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dinostream.core.errors import DinostreamError
from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import ModelSettings
from dinostream.embedding.input_size import grid_size, model_input_size
from dinostream.embedding.model_loader import LoadedModel
from dinostream.embedding.patch_pca import PatchPCA, PatchPCAError
from dinostream.ingest.resize import resize_rgb
from dinostream.ingest.source import Frame

log = logging.getLogger(__name__)

_FP16_MAX = float(np.finfo(np.float16).max)
_HEADER_BYTES = 512  # JSON header without the model id: stream (<= 64), numbers, dims, grid
_SUPPORTED_OOM = (torch.cuda.OutOfMemoryError,)  # the same class as torch.OutOfMemoryError, in CPU builds too


class EmbeddingOOMError(DinostreamError, RuntimeError):
    """Even a single frame does not fit in the device's memory."""


class RecordTooLargeError(DinostreamError, ValueError):
    """The configuration would produce records over the message size limit."""


def record_size_bound(settings: ModelSettings, hidden_size: int, model_id: str, patch_size: int = 16) -> int:
    """Upper bound of an encoded `FrameEmbedding` for these settings, in bytes.

    The largest patch grid is the square preset's (aspect-preserving inputs hold at most as many
    patch cells); the thumbnail by its raw RGB size (a JPEG at quality <= 95 stays well under it).
    """
    gh, gw = grid_size((settings.image_size, settings.image_size), patch=patch_size, pool=settings.patch_pool)
    pdim = settings.patch_pca_dims or hidden_size
    arrays = 2 * (2 * hidden_size + gh * gw * pdim)
    return 8 + _HEADER_BYTES + len(model_id.encode()) + arrays + 3 * settings.thumbnail_size**2


def check_record_size(settings: ModelSettings, hidden_size: int, model_id: str, limit: int) -> None:
    """Raise `RecordTooLargeError` with a way out when records could exceed `limit` bytes."""
    size = record_size_bound(settings, hidden_size, model_id)
    if size <= limit:
        return
    fixes = []
    for pool in range(settings.patch_pool + 1, 17):
        if 16 * pool <= settings.image_size:
            trial = settings.model_copy(update={"patch_pool": pool})
            if record_size_bound(trial, hidden_size, model_id) <= limit:
                gh, gw = grid_size((settings.image_size,) * 2, pool=pool)
                fixes.append(f"patch_pool={pool} (grid {gh}x{gw})")
                break
    base = settings.model_copy(update={"patch_pca_dims": 1})
    spare = limit - record_size_bound(base, hidden_size, model_id)
    gh, gw = grid_size((settings.image_size,) * 2, pool=settings.patch_pool)
    k = min(hidden_size, 1 + spare // (2 * gh * gw)) if spare >= 0 else 0
    if k >= 1:
        fixes.append(f"patch_pca_dims<={k}")
    fixes.append("a smaller image_size or thumbnail_size")
    raise RecordTooLargeError(
        f"records would be up to {size:,} bytes ({gh}x{gw} patches x {settings.patch_pca_dims or hidden_size} dims, "
        f"fp16), over the {limit:,}-byte message limit; set {' or '.join(fixes)}"
    )


class Embedder:
    """Turns batches of same-sized frames into `FrameEmbedding` records, on `loaded.device`."""

    def __init__(
        self,
        loaded: LoadedModel,
        settings: ModelSettings,
        *,
        patch_pca: PatchPCA | None = None,
        max_message_bytes: int | None = None,
    ) -> None:
        self.loaded = loaded
        self.settings = settings
        dev = loaded.device
        # (x / 255 - mean) / std == x * scale + shift: two in-place passes instead of three.
        mean = torch.tensor(loaded.image_mean, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
        std = torch.tensor(loaded.image_std, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
        self._scale = 1.0 / (255.0 * std)
        self._shift = -mean / std
        self._prefix = 1 + loaded.num_register_tokens  # CLS + registers come before the patch tokens
        self._pool = settings.patch_pool
        self.patch_pca = self._check_pca(patch_pca)
        if self.patch_pca is not None:
            self._pca_mean = torch.from_numpy(self.patch_pca.mean).to(dev)
            self._pca_t = torch.from_numpy(np.ascontiguousarray(self.patch_pca.components.T)).to(dev)
        if max_message_bytes is not None:
            check_record_size(settings, loaded.hidden_size, loaded.model_id, max_message_bytes)
        self._pinned: torch.Tensor | None = None  # reused host staging buffer (CUDA only)
        self._copied: torch.cuda.Event | None = None  # recorded after the last copy out of it
        self.oom_cap: int | None = None  # largest batch known to fit, after an out-of-memory error
        self._step: Callable[[torch.Tensor], torch.Tensor] = self._device_step
        if settings.compile:
            # One graph for normalise + forward + pool + PCA + pack (fusing, among others, the
            # RoPE and layer-scale elementwise work that dominates eager CPU time after the GEMMs).
            self._step = torch.compile(self._device_step)

    @property
    def dim(self) -> int:
        return self.loaded.hidden_size

    @property
    def patch_dim(self) -> int:
        """Dimension of each patch vector in the records (the PCA's k, or the model width)."""
        return self.patch_pca.dims if self.patch_pca is not None else self.dim

    def input_size(self, source_size: tuple[int, int], sample_aspect_ratio: float = 1.0) -> tuple[int, int]:
        """(width, height) the decoder should resize a source of `source_size` to (see
        `dinostream.embedding.input_size`)."""
        return model_input_size(
            source_size,
            image_size=self.settings.image_size,
            aspect=self.settings.aspect,
            unit=self.loaded.patch_size * self._pool,
            sample_aspect_ratio=sample_aspect_ratio,
        )

    def embed(self, frames: Sequence[Frame]) -> list[FrameEmbedding]:
        """Embed frames that all have the same (H, W), multiples of the patch size. Blocking."""
        if not frames:
            return []
        images = [f.image for f in frames]
        self._check(images, what="frame")
        n = len(frames)
        h, w = images[0].shape[:2]
        gh, gw = grid_size((w, h), patch=self.loaded.patch_size, pool=self._pool)
        with torch.inference_mode():
            x = self._upload(images)
            thumbs: list[bytes] = []

            def encode_thumbnails() -> None:  # while the device computes (CUDA runs asynchronously)
                if not thumbs:
                    thumbs.extend(self.thumbnail(img) for img in images)

            packed = self._run(x, encode_thumbnails)
            encode_thumbnails()
            host = packed.cpu().numpy()  # the one device-to-host copy of the batch
        d, pdim = self.dim, self.patch_dim
        out = []
        for i, f in enumerate(frames):
            row = host[i]
            out.append(
                FrameEmbedding(
                    stream=f.stream,
                    seq=f.seq,
                    pts=f.pts,
                    ts=f.ts,
                    model=self.loaded.model_id,
                    untrained=self.loaded.untrained,
                    cls=row[:d],
                    pooled=row[d : 2 * d],
                    patches=row[2 * d :].reshape(gh, gw, pdim),
                    thumbnail=thumbs[i],
                )
            )
        assert len(out) == n
        return out

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised CLS vectors, (B, D) float32, for query images of any size. Blocking.

        Each image is first resized with the decoder's scaler to the input size a video of its
        shape would get, so a query image is seen the way a video frame of it would be.
        """
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._check(list(images), what="image", same_size=False, patch_multiple=False)
        out = np.zeros((len(images), self.dim), dtype=np.float32)
        groups: dict[tuple[int, int], list[int]] = {}
        resized = []
        for i, img in enumerate(images):
            r = resize_rgb(img, self.input_size((img.shape[1], img.shape[0])))
            resized.append(r)
            groups.setdefault(r.shape[:2], []).append(i)
        d = self.dim
        with torch.inference_mode():
            for idx in groups.values():
                packed = self._run(self._upload([resized[i] for i in idx]), None)
                cls = packed[:, :d].float()
                out[idx] = torch.nn.functional.normalize(cls, dim=-1).cpu().numpy()
        return out

    def thumbnail(self, image: np.ndarray) -> bytes:
        """A JPEG no larger than `thumbnail_size` on its long side (never enlarged)."""
        size = self.settings.thumbnail_size
        img = Image.fromarray(image)
        img.thumbnail((size, size), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=self.settings.thumbnail_quality)
        return buf.getvalue()

    # --- internals --------------------------------------------------------------------------

    def _check_pca(self, pca: PatchPCA | None) -> PatchPCA | None:
        k = self.settings.patch_pca_dims
        if pca is None:
            if k is not None:
                raise PatchPCAError(
                    f"patch_pca_dims={k} but no patch PCA was given (fit one with dinostream.embedding.patch_pca)"
                )
            return None
        if pca.in_dim != self.loaded.hidden_size:
            raise PatchPCAError(
                f"the patch PCA was fitted on {pca.in_dim}-dim patches ({pca.model or 'unknown model'}), but "
                f"{self.loaded.model_id} has {self.loaded.hidden_size}: refit it for this model"
            )
        if pca.model and pca.model != self.loaded.model_id:
            log.warning(
                "patch PCA was fitted on %s, not %s: refit it for best results", pca.model, self.loaded.model_id
            )
        if pca.patch_pool != self._pool:
            log.warning("patch PCA was fitted with patch_pool %d, the stage pools by %d", pca.patch_pool, self._pool)
        return pca.truncated(k) if k is not None else pca

    def _check(
        self, images: Sequence[np.ndarray], *, what: str, same_size: bool = True, patch_multiple: bool = True
    ) -> None:
        first = images[0]
        patch = self.loaded.patch_size
        for i, img in enumerate(images):
            if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                shape = getattr(img, "shape", None)
                dtype = getattr(img, "dtype", type(img).__name__)
                raise ValueError(f"{what} {i}: expected an (H, W, 3) uint8 RGB array, got {shape} {dtype}")
            if same_size and img.shape != first.shape:
                raise ValueError(
                    f"{what} {i} is {img.shape[1]}x{img.shape[0]} but {what} 0 is {first.shape[1]}x{first.shape[0]}: "
                    "every frame of a batch must have the same size"
                )
        h, w = first.shape[:2]
        if patch_multiple and (h % patch or w % patch or h == 0 or w == 0):
            raise ValueError(
                f"{what} size {w}x{h} is not a multiple of the patch size {patch}: resize frames to multiples of "
                f"{patch} (e.g. {max(patch, round(w / patch) * patch)}x{max(patch, round(h / patch) * patch)})"
            )

    def _upload(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """The batch as one uint8 (B, H, W, 3) tensor on the device (through a pinned buffer on CUDA)."""
        dev = self.loaded.device
        if dev.type != "cuda":
            return torch.from_numpy(np.stack(images))
        if self._copied is not None:
            self._copied.synchronize()  # the last batch's copy (even a failed batch's) has left the buffer
        n = len(images) * images[0].size
        if self._pinned is None or self._pinned.numel() < n:
            self._pinned = torch.empty(
                max(n, 2 * (self._pinned.numel() if self._pinned is not None else 0)), dtype=torch.uint8
            ).pin_memory()
        staging = self._pinned[:n].view(len(images), *images[0].shape)
        np.stack(images, out=staging.numpy())
        x = staging.to(dev, non_blocking=True)
        self._copied = torch.cuda.Event()
        self._copied.record(torch.cuda.current_stream(dev))  # the copy runs on the target device's stream
        return x

    def _run(self, x: torch.Tensor, meanwhile: Callable[[], None] | None) -> torch.Tensor:
        """Packed fp16 (B, 2D + cells * pdim) for a uint8 batch on the device, halving on out-of-memory."""
        cap = self.oom_cap
        if cap is not None and len(x) > cap:
            return torch.cat([self._run(x[i : i + cap], meanwhile) for i in range(0, len(x), cap)])
        try:
            out = self._compiled_step(x) if self.settings.compile else self._step(x)
        except _SUPPORTED_OOM as e:
            dev = self.loaded.device
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            if len(x) == 1:
                h, w = x.shape[1:3]
                raise EmbeddingOOMError(
                    f"out of memory on {dev} embedding a single {w}x{h} frame with {self.loaded.model_id}: "
                    f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else 'no details'}; "
                    "use a smaller image_size, a smaller model, or a device with more free memory"
                ) from e
            half = (len(x) + 1) // 2  # 7 -> 4 + 3: a size that fits is found without going below it
            self.oom_cap = half if self.oom_cap is None else min(self.oom_cap, half)
            log.warning(
                "out of memory on %s with a batch of %d frames; retrying as two batches (batches capped at %d)",
                dev,
                len(x),
                self.oom_cap,
            )
            return torch.cat([self._run(x[:half], meanwhile), self._run(x[half:], meanwhile)])
        if meanwhile is not None:
            meanwhile()
        return out

    def _compiled_step(self, x: torch.Tensor) -> torch.Tensor:
        """The compiled step with one graph for every batch size: the batch dimension is marked
        dynamic, and a lone frame is run as a pair (dynamic dimensions specialise on size 1, and a
        second compilation would stall the stage for many seconds in the middle of a stream)."""
        if len(x) == 1:
            return self._compiled_step(torch.cat([x, x]))[:1]
        torch._dynamo.mark_dynamic(x, 0)
        return self._step(x)

    def _device_step(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC -> normalise -> model -> [CLS | mean patch | pooled/PCA'd patch grid], fp16."""
        loaded = self.loaded
        dev = loaded.device
        b, h, w, _ = x.shape
        # NHWC uint8 -> NCHW float: permute is a view, the conversion runs on the device.
        pixels = x.permute(0, 3, 1, 2).float().mul_(self._scale).add_(self._shift)
        autocast = (
            torch.autocast(device_type="cuda", dtype=loaded.dtype)
            if dev.type == "cuda" and loaded.dtype != torch.float32
            else contextlib.nullcontext()
        )
        with autocast:
            tokens = loaded.model(pixel_values=pixels).last_hidden_state
        # `pooler_output` is `last_hidden_state[:, 0]` (CLS after the final LayerNorm), so
        # everything needed is in `last_hidden_state`.
        tokens = tokens.float()
        cls = tokens[:, 0]
        patches = tokens[:, self._prefix :]  # registers excluded
        pooled = patches.mean(dim=1)
        p = loaded.patch_size
        grid = patches.reshape(b, h // p, w // p, -1)
        if self._pool > 1:  # a partial window at the edge averages the patches it has (ceil_mode)
            grid = F.avg_pool2d(grid.permute(0, 3, 1, 2), self._pool, ceil_mode=True).permute(0, 2, 3, 1)
        if self.patch_pca is not None:
            grid = (grid - self._pca_mean) @ self._pca_t
        # Values beyond fp16's range (none in practice after the final LayerNorm) saturate.
        packed = torch.cat([cls, pooled, grid.reshape(b, -1)], dim=1)
        return packed.clamp_(-_FP16_MAX, _FP16_MAX).to(torch.float16)

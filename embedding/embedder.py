"""Frames in, DINOv3 embeddings out, on one device, one batch at a time or two in flight.

`launch(frames)` stacks a batch of uint8 frames into a pinned host buffer of its own (on CUDA),
queues its upload on a copy stream, the model on the compute stream and the copy of the packed
fp16 result (and of the thumbnails, resized on the device) into other pinned buffers, and
returns at once; the finish step it returns waits for that batch's event, JPEG-encodes the
thumbnails in a thread pool and builds the records (on the CPU it makes PIL thumbnails).
`MicroBatcher` runs launches on the device's thread and finishes on another, so the next batch
is queued while the last one finishes; `embed(frames)` is both in one call. Frames are
normalised on the device; CUDA computes in bf16/fp16 (Linear and Conv weights stored in that
dtype once, pixels in it too, under autocast), the CPU in fp32; attention is PyTorch's SDPA;
`compile=True` runs the device step through `torch.compile`, one graph for every batch size,
compiled by `warm_up` before the first frame. Per frame the embedder keeps the CLS token, the
mean of the patch tokens and the patch grid (optionally average-pooled and PCA-reduced on the
device), all fp16.

A CUDA out-of-memory error halves the batch and retries each half, once the failed attempt's
memory is free (down to single frames). Later batches of that input size are capped at the size
that fit, and the cap is raised again after a run of batches that fit. A frame that does not fit
alone raises `EmbeddingOOMError`. A frame whose embedding has a NaN gets no record (its slot in
the finish step's list is None, `embed` leaves it out): it is logged with its stream and counted
in `nonfinite_frames`, and the other frames of its batch carry on.

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
import math
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

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
from dinostream.ingest.source import Frame

log = logging.getLogger(__name__)

_FP16_MAX = float(np.finfo(np.float16).max)
_HEADER_BYTES = 512  # JSON header without the model id: stream (<= 64), numbers, dims, grid
_SUPPORTED_OOM = (torch.cuda.OutOfMemoryError,)  # the same class as torch.OutOfMemoryError, in CPU builds too
# Batches of an input size that fit after an out-of-memory error before its cap is doubled again
# (doubled once more after each new failure at the raised size, so a size that never fits is
# retried ever more rarely).
OOM_PATIENCE = 64
# Dynamo is not thread-safe while it compiles: one compilation at a time in the process (each
# device's executor thread would otherwise trace the same code at once).
_COMPILE_LOCK = threading.Lock()
# Guards that fail per device and input size each add a graph to the same code object: more
# than Dynamo's default 8 would silently fall back to eager.
_RECOMPILE_LIMIT = 64
_SHRINK_CHUNK = 64  # frames resized at once on the device for thumbnails

Finish = Callable[[], list[FrameEmbedding | None]]


class EmbeddingOOMError(DinostreamError, RuntimeError):
    """Even a single frame does not fit in the device's memory."""


class RecordTooLargeError(DinostreamError, ValueError):
    """The configuration would produce records over the message size limit."""


class CompileUnavailableError(DinostreamError, RuntimeError):
    """`compile=True` on a machine that cannot compile (no C compiler for Inductor/Triton)."""


@dataclass
class _Cap:
    """The largest batch of one input size known to fit after an out-of-memory error."""

    size: int
    patience: int
    fits: int = 0  # batches at `size` that fitted since it was set
    raised: bool = False  # `size` was doubled after `patience` fits and has not failed since


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
        self._cuda = dev.type == "cuda"
        # CUDA: uploads and downloads on their own streams, so they overlap the model's work on
        # the compute stream (the device's default stream).
        self._h2d = torch.cuda.Stream(dev) if self._cuda else None
        self._d2h = torch.cuda.Stream(dev) if self._cuda else None
        # Thumbnails are CPU work that the device thread must not do: a pool on CUDA (PIL releases
        # the GIL while it resizes and encodes); the finish step itself on the CPU, whose cores
        # the model already uses.
        self._thumb_pool = (
            ThreadPoolExecutor(max_workers=_thumbnail_threads(), thread_name_prefix="dinostream-thumb")
            if self._cuda
            else None
        )
        # Thumbnails resized on the device (CUDA), only JPEG-encoded on the host; the CPU keeps PIL's.
        self.device_thumbnails = self._cuda
        self._caps: dict[tuple[int, int], _Cap] = {}  # per input (H, W): after an out-of-memory error
        self.nonfinite_frames = 0  # frames dropped because their embedding had a NaN
        self._compiled_sizes: set[tuple[int, int]] = set()
        self._step: Callable[[torch.Tensor], torch.Tensor] = self._device_step
        if settings.compile:
            _check_compiler()
            dynamo_config = torch._dynamo.config
            dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, _RECOMPILE_LIMIT)
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

    @property
    def oom_cap(self) -> int | None:
        """The smallest batch cap set by an out-of-memory error, over all input sizes (None: none)."""
        return min((c.size for c in self._caps.values()), default=None)

    @property
    def oom_caps(self) -> dict[tuple[int, int], int]:
        """Batch caps per input (H, W), set by out-of-memory errors."""
        return {k: c.size for k, c in self._caps.items()}

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

    def warm_up(self, sizes: Sequence[tuple[int, int]] | None = None) -> None:
        """Compile the device step (and, on CUDA, load its kernels) before the first frame, so no
        compilation stalls a stream. Blocking; the batcher runs it on each device's thread at start.

        `sizes` are (width, height) inputs; by default the square preset and, when sources keep
        their aspect ratio, a 16:9 one: the second size makes Dynamo compile a graph with dynamic
        height and width, which later aspect ratios reuse. Without compilation on the CPU there
        is nothing to warm up.
        """
        if not (self.settings.compile or self._cuda):
            return
        if sizes is None:
            square = (self.settings.image_size, self.settings.image_size)
            sizes = [square] if self.settings.aspect == "square" else [square, self.input_size((1920, 1080))]
        with torch.inference_mode():
            self._bind_device()
            for w, h in dict.fromkeys(sizes):
                for n in (2, 3) if self.settings.compile else (1,):  # two sizes: the batch is dynamic
                    x = torch.zeros((n, h, w, 3), dtype=torch.uint8, device=self.loaded.device)
                    self._run(x)
        if self._cuda:
            torch.cuda.synchronize(self.loaded.device)

    def embed(self, frames: Sequence[Frame]) -> list[FrameEmbedding]:
        """Embed frames that all have the same (H, W), multiples of the patch size. Blocking.

        A frame whose embedding is not finite gets no record (see the module docstring).
        """
        return [r for r in self.launch(frames)() if r is not None]

    def launch(self, frames: Sequence[Frame]) -> Finish:
        """Queue a batch on the device and return its finish step (call it on another thread to
        overlap the next launch): it returns one record per frame, in order, None for a frame
        whose embedding is not finite. Only the CPU blocks here until the model is done."""
        if not frames:
            return list
        frames = list(frames)
        images = [f.image for f in frames]
        self._check(images, what="frame")
        h, w = images[0].shape[:2]
        grid = grid_size((w, h), patch=self.loaded.patch_size, pool=self._pool)
        with torch.inference_mode():
            self._bind_device()
            x = self._upload(images)
            packed = self._run(x)
            small = self.shrink(x) if self.device_thumbnails else None
            del x
            host, small_host, done = self._download(packed, small)
        return lambda: self._finish(frames, images, grid, host, small_host, done)

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised CLS vectors, (B, D) float32, for query images of any size. Blocking.

        Each image is first resized with the decoder's scaler to the input size a video of its
        shape would get, so a query image is seen the way a video frame of it would be.
        """
        # PyAV's scaler, only here: embedding decoded frames needs no video library.
        from dinostream.ingest.resize import resize_rgb

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
            self._bind_device()
            for idx in groups.values():
                packed = self._run(self._upload([resized[i] for i in idx]))
                cls = packed[:, :d].float()
                out[idx] = torch.nn.functional.normalize(cls, dim=-1).cpu().numpy()
        return out

    def thumbnail(self, image: np.ndarray) -> bytes:
        """A JPEG no larger than `thumbnail_size` on its long side (never enlarged)."""
        size = self.settings.thumbnail_size
        img = Image.fromarray(image)
        img.thumbnail((size, size), Image.Resampling.BILINEAR)
        return self._jpeg(img)

    def shrink(self, x: torch.Tensor) -> torch.Tensor:
        """A uint8 (B, H, W, 3) batch resized to its thumbnails' size (`thumbnail_size`), on its
        device: antialiased bilinear, as PIL's, within a level or two of it. On CUDA this takes
        the resize, three quarters of a thumbnail's CPU time, off the host."""
        h, w = int(x.shape[1]), int(x.shape[2])
        tw, th = thumbnail_size((w, h), self.settings.thumbnail_size)
        if (tw, th) == (w, h):
            return x
        out = torch.empty((len(x), th, tw, 3), dtype=torch.uint8, device=x.device)
        for i in range(0, len(x), _SHRINK_CHUNK):  # bounds the float copy of the batch
            chunk = x[i : i + _SHRINK_CHUNK].permute(0, 3, 1, 2).float()
            y = F.interpolate(chunk, size=(th, tw), mode="bilinear", antialias=True, align_corners=False)
            out[i : i + _SHRINK_CHUNK] = y.round_().clamp_(0, 255).permute(0, 2, 3, 1)
        return out

    def _jpeg(self, img: Image.Image) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=self.settings.thumbnail_quality)
        return buf.getvalue()

    def _jpeg_of(self, small: np.ndarray) -> bytes:
        return self._jpeg(Image.fromarray(small))

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

    def _bind_device(self) -> None:
        """Make this model's device the calling thread's current CUDA device (each executor
        thread starts on cuda:0, where allocations and kernels of another device's replica would
        otherwise land)."""
        if self._cuda:
            torch.cuda.set_device(self.loaded.device)

    def _upload(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """The batch as one uint8 (B, H, W, 3) tensor on the device.

        On CUDA the frames are stacked into a pinned buffer of this batch's own (PyTorch's caching
        host allocator hands it out again only once the copy out of it has completed) and copied
        on the upload stream, which the compute stream then waits for: no host synchronisation.
        """
        if not self._cuda:
            return torch.from_numpy(np.stack(images))
        staging = torch.empty((len(images), *images[0].shape), dtype=torch.uint8, pin_memory=True)
        np.stack(images, out=staging.numpy())
        compute = torch.cuda.current_stream(self.loaded.device)
        assert self._h2d is not None
        # No wait for the compute stream: the next batch's upload overlaps this one's forward pass.
        with torch.cuda.stream(self._h2d):
            x = staging.to(self.loaded.device, non_blocking=True)
        compute.wait_stream(self._h2d)
        x.record_stream(compute)  # freed by the upload stream's allocator only after compute used it
        return x

    def _download(
        self, packed: torch.Tensor, small: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.cuda.Event | None]:
        """The packed batch (and its shrunk thumbnails) on the host: on CUDA copies into pinned
        buffers queued on the download stream, and the event that says they have arrived; on the
        CPU the tensors themselves."""
        if not self._cuda:
            return packed, small, None
        assert self._d2h is not None
        self._d2h.wait_stream(torch.cuda.current_stream(self.loaded.device))
        hosts: list[torch.Tensor | None] = []
        with torch.cuda.stream(self._d2h):
            for t in (packed, small):
                if t is None:
                    hosts.append(None)
                    continue
                host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
                host.copy_(t, non_blocking=True)
                t.record_stream(self._d2h)
                hosts.append(host)
            done = torch.cuda.Event()
            done.record(self._d2h)
        return hosts[0], hosts[1], done  # type: ignore[return-value]

    def _finish(
        self,
        frames: list[Frame],
        images: list[np.ndarray],
        grid: tuple[int, int],
        packed: torch.Tensor,
        small: torch.Tensor | None,
        done: torch.cuda.Event | None,
    ) -> list[FrameEmbedding | None]:
        """Thumbnails (while the device computes, unless it shrinks them), then the batch's records
        once it has arrived."""
        pool_map = self._thumb_pool.map if self._thumb_pool is not None else map
        if small is None:
            thumbs = list(pool_map(self.thumbnail, images))
        if done is not None:
            done.synchronize()
            host = packed.numpy().copy()  # the records own their memory; the pinned buffer goes back
        else:
            host = packed.numpy()
        if small is not None:
            thumbs = list(pool_map(self._jpeg_of, small.numpy()))
        # One pass for the batch (the clamp saturates inf, not NaN), on the fp16 bits: NaN and inf
        # have every exponent bit set (~15x faster than np.isfinite on fp16).
        finite = ((host.view(np.uint16) & 0x7C00) != 0x7C00).all(axis=1)
        gh, gw = grid
        d, pdim = self.dim, self.patch_dim
        out: list[FrameEmbedding | None] = []
        for i, f in enumerate(frames):
            if not finite[i]:
                self.nonfinite_frames += 1
                log.warning(
                    "stream %s frame %d (pts %.3f): the model's output has NaN values; the frame is dropped "
                    "(%d so far on %s)",
                    f.stream,
                    f.seq,
                    f.pts,
                    self.nonfinite_frames,
                    self.loaded.device,
                )
                out.append(None)
                continue
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
                    jump=f.jump,
                )
            )
        return out

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """Packed fp16 (B, 2D + cells * pdim) for a uint8 batch on the device, halving on out-of-memory."""
        n = len(x)
        key = (int(x.shape[1]), int(x.shape[2]))
        cap = self._caps.get(key)
        if cap is not None and n > cap.size:
            size = cap.size
            return torch.cat([self._run(x[i : i + size]) for i in range(0, n, size)])
        out, oom = self._attempt(x)
        if out is not None:
            if cap is not None and n == cap.size:
                self._fitted(key, cap)
            return out
        # Outside the `except` block: the failed attempt's exception, traceback and the activations
        # its frames held are gone, so the cache can give their memory back before the retry.
        dev = self.loaded.device
        if self._cuda:
            torch.cuda.empty_cache()
        if n == 1:
            h, w = key
            raise EmbeddingOOMError(
                f"out of memory on {dev} embedding a single {w}x{h} frame with {self.loaded.model_id}: "
                f"{oom or 'no details'}; use a smaller image_size, a smaller model, or a device with more free memory"
            )
        half = (n + 1) // 2  # 7 -> 4 + 3: a size that fits is found without going below it
        if cap is None:
            self._caps[key] = _Cap(half, OOM_PATIENCE)
        elif half < cap.size:
            if cap.raised:
                cap.patience *= 2  # the raised cap did not fit: wait longer before the next try
            cap.size, cap.fits, cap.raised = half, 0, False
        log.warning(
            "out of memory on %s with a batch of %d %dx%d frames; retrying as two batches (batches of this size "
            "capped at %d)",
            dev,
            n,
            key[1],
            key[0],
            self._caps[key].size,
        )
        return torch.cat([self._run(x[:half]), self._run(x[half:])])

    def _attempt(self, x: torch.Tensor) -> tuple[torch.Tensor | None, str | None]:
        """The device step, or None and the first line of its out-of-memory error."""
        try:
            return (self._compiled_step(x) if self.settings.compile else self._step(x)), None
        except _SUPPORTED_OOM as e:
            return None, (str(e).strip().splitlines() or [""])[0][:200]

    def _fitted(self, key: tuple[int, int], cap: _Cap) -> None:
        """A batch at the cap fitted: after `patience` of them, try twice the size again."""
        cap.fits += 1
        if cap.fits >= cap.patience:
            cap.size, cap.fits, cap.raised = 2 * cap.size, 0, True
            log.info("%dx%d batches fitted %d times: trying batches of %d", key[1], key[0], cap.patience, cap.size)

    def _compiled_step(self, x: torch.Tensor) -> torch.Tensor:
        """The compiled step with one graph for every batch size: the batch dimension is marked
        dynamic, and a lone frame is run as a pair (dynamic dimensions specialise on size 1, and a
        second compilation would stall the stage for many seconds in the middle of a stream).
        The first call for an input size may compile: it holds the process-wide compile lock."""
        if len(x) == 1:
            return self._compiled_step(torch.cat([x, x]))[:1]
        torch._dynamo.mark_dynamic(x, 0)
        key = (int(x.shape[1]), int(x.shape[2]))
        if key in self._compiled_sizes:
            return self._step(x)
        with _COMPILE_LOCK:
            out = self._step(x)
        self._compiled_sizes.add(key)
        return out

    def _device_step(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC -> normalise -> model -> [CLS | mean patch | pooled/PCA'd patch grid], fp16."""
        loaded = self.loaded
        dev = loaded.device
        b, h, w, _ = x.shape
        # NHWC uint8 -> NCHW float: permute is a view, the conversion runs on the device. Normalised
        # in fp32, then handed to the model in its compute dtype (fp32 pixels would also make RoPE's
        # cos/sin and the rotated q/k fp32).
        pixels = x.permute(0, 3, 1, 2).float().mul_(self._scale).add_(self._shift)
        autocast: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
        if dev.type == "cuda" and loaded.dtype != torch.float32:
            pixels = pixels.to(loaded.dtype)
            autocast = torch.autocast(device_type="cuda", dtype=loaded.dtype)
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


def thumbnail_size(size: tuple[int, int], limit: int) -> tuple[int, int]:
    """(width, height) of the thumbnail of a `size` image, as PIL's `Image.thumbnail((limit, limit))`
    sizes it: the aspect ratio kept (rounded the way that keeps it best), never enlarged."""
    w, h = size
    x, y = limit, limit
    if x >= w and y >= h:
        return w, h
    aspect = w / h

    def round_aspect(number: float, key: Callable[[int], float]) -> int:
        return max(min(math.floor(number), math.ceil(number), key=key), 1)

    if x / y >= aspect:
        x = round_aspect(y * aspect, key=lambda n: abs(aspect - n / y))
    else:
        y = round_aspect(x / aspect, key=lambda n: 0 if n == 0 else abs(aspect - x / n))
    return x, y


def _thumbnail_threads() -> int:
    """Threads for thumbnails on a GPU machine: at 224 one thumbnail takes about 15 times the GPU
    time of its frame, so all cores but two (the device and finish threads)."""
    return max(1, min(16, (os.cpu_count() or 1) - 2))


def _check_compiler() -> None:
    """Inductor (C++ on the CPU, Triton on CUDA) needs a C compiler at run time: refuse at start-up
    rather than fail at the first batch."""
    if not any(shutil.which(c) for c in (os.environ.get("CC", "cc"), "cc", "gcc", "clang")):
        raise CompileUnavailableError(
            "compile=True needs a C compiler (Inductor builds its kernels' launchers with one): install gcc "
            "(e.g. apt-get install gcc) or run without --compile"
        )

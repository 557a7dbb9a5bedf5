"""Run a dinostream role with a ZERO-COST MODEL STAND-IN instead of DINOv3 (for bench/density.py only).

    python bench/standin_launcher.py ingest --kafka HOST:PORT ...    # the role's own flags, unchanged

What `--model random:<size>` would build is replaced by `StandInViT`: a torch module with that
size's real configuration whose output has the real shape (for ViT-S/16 at 224: CLS, 4 registers
and 14x14 patch tokens of 384 dims) at next to no cost. Everything around the model (decode,
batching, record packing, thumbnails, Kafka, analytics, index, gateway) runs as in production, so
a bench measures the CPU the pipeline spends outside the model. Records and health name the model
`standin:<size>`. The `dinostream` command cannot reach this: only this script installs it.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from transformers import DINOv3ViTConfig

from dinostream.embedding import model_loader

STANDIN_PREFIX = "standin:"


class StandInViT(torch.nn.Module):
    """DINOv3-shaped tokens looked up from the quantised colour at each patch's centre (64 codes,
    each a fixed random 384-d vector; CLS and registers their mean): content-dependent (cuts,
    moving shapes and backgrounds differ, so every processor has work) at next to no cost. NumPy,
    single-threaded: even a few small torch ops cost milliseconds a frame with torch's threads
    fighting for two busy cores."""

    LEVELS = 4  # per colour channel

    def __init__(self, config: DINOv3ViTConfig) -> None:
        super().__init__()
        self.config = config
        rng = np.random.default_rng(0)
        self.table = rng.standard_normal((self.LEVELS**3, config.hidden_size), dtype=np.float32)

    def forward(self, pixel_values: torch.Tensor) -> SimpleNamespace:
        b = pixel_values.shape[0]
        p, d, r = self.config.patch_size, self.config.hidden_size, self.config.num_register_tokens
        h, w = pixel_values.shape[2] // p, pixel_values.shape[3] // p
        centres = pixel_values[:, :, p // 2 :: p, p // 2 :: p][:, :, :h, :w].float().cpu().numpy()
        q = np.clip((centres + 2.0) * (self.LEVELS / 4.5), 0, self.LEVELS - 1).astype(np.intp)  # normalised ~[-2, 2.5]
        codes = ((q[:, 0] * self.LEVELS + q[:, 1]) * self.LEVELS + q[:, 2]).reshape(b, h * w)
        patches = self.table[codes]  # (b, h*w, d)
        cls = patches.mean(axis=1, keepdims=True)
        tokens = np.concatenate([cls, np.broadcast_to(cls, (b, r, d)), patches], axis=1)
        return SimpleNamespace(last_hidden_state=torch.from_numpy(tokens).to(pixel_values.device))


def _build_standin(spec: str, seed: int) -> tuple[Any, str, Any, Any]:
    size = spec.removeprefix("random:")
    arch = model_loader.RANDOM_ARCHS.get(size)
    if arch is None:
        raise SystemExit(f"standin_launcher: unknown size {size!r}; use --model random:vits16")
    config = DINOv3ViTConfig(**{**model_loader.DINOV3_COMMON, **arch})
    return StandInViT(config), STANDIN_PREFIX + size, model_loader.IMAGENET_MEAN, model_loader.IMAGENET_STD


def main() -> int:
    if not hasattr(model_loader, "_build_random"):  # the loader changed: fail loudly, never run the real model
        raise SystemExit("standin_launcher: dinostream.embedding.model_loader._build_random is gone; update the bench")
    model_loader._build_random = _build_standin  # type: ignore[assignment]
    # The stand-in plays an accelerator: there the device step's tensor work (normalising pixels,
    # pooling, packing) runs on the device, not on the host's cores. On the CPU torch would run it
    # on its intra-op thread pool, whose threads spin at every barrier: with batches of one or two
    # frames on two busy cores that costs ~7 ms of CPU per frame (bench: 8.8 ms/frame with 2
    # threads, 1.4 with 1), which no GPU node pays. One thread keeps the host share honest.
    torch.set_num_threads(1)
    print("standin_launcher: ZERO-COST MODEL STAND-IN replaces random:* weights in this process", file=sys.stderr)
    from dinostream.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

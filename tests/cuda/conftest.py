"""CUDA tests (`pytest -m cuda`, run by `make gpu-check`): the stage on a real GPU.

The default run deselects them (`-m "not cuda"` in pyproject.toml); selected on a machine
without CUDA they skip, saying so. On a bare GPU machine the project is not installed: the
stage is imported from this checkout (bench/gpu_check.py maps the package folders).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from bench.gpu_check import frames_pool, use_source_tree

use_source_tree()

from dinostream.embedding.model_loader import LoadedModel, load_model  # noqa: E402
from dinostream.ingest.source import Frame  # noqa: E402

NO_CUDA = "needs a CUDA device: run `make gpu-check OUT=dir` on a GPU machine"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(pytest.mark.skip(reason=NO_CUDA))


@pytest.fixture(scope="session")
def vits16_bf16() -> LoadedModel:
    return load_model("random:vits16", device="cuda", precision="bf16")


@pytest.fixture(scope="session")
def vits16_cpu() -> LoadedModel:
    return load_model("random:vits16", device="cpu")


@pytest.fixture(scope="session")
def make_frames() -> Callable[..., list[Frame]]:
    """Frames of distinct pictures: `make_frames(n, size=224, stream="cam", seed=0, width=None)`."""

    def make(n: int, size: int = 224, stream: str = "cam", seed: int = 0, width: int | None = None) -> list[Frame]:
        w = width or size
        pool = [np.ascontiguousarray(p[:size, :w]) for p in frames_pool(max(size, w), min(n, 32), seed=seed)]
        return [Frame(stream, i, i / 25, 1.7e9 + i, pool[i % len(pool)]) for i in range(n)]

    return make

"""numpy's and scipy's BLAS thread pools, per process.

The roles do many small matrix products per frame (a 14x14 grid of 384-d patches against a few
hundred rows, a grid against its keys); OpenBLAS splits each over one thread per core and its
threads spin between products. On this 2-core box the analytics worker burnt about 3x the CPU per
frame with the default pool (bench/density.py --models standin --streams 16: worker 39.2 vs 14.5
CPU-ms/frame, and 16 streams no longer sustained) for no gain in time. A node gets its parallelism
from processes and partitions instead, so `Settings.blas_threads` (1) caps the pools of the BLAS
libraries that numpy and scipy load. torch's own pools are not touched: the model's threads are
torch's (`ModelSettings`), and a torch built on OpenBLAS (aarch64) keeps its library's pool.

    >>> limit_blas_threads(Settings().blas_threads)   # once, where a process starts its roles
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_OWNERS = ("numpy", "scipy")  # the packages whose bundled BLAS is capped (numpy.libs, scipy.libs, ...)


def limit_blas_threads(threads: int) -> dict[str, int]:
    """Cap numpy's and scipy's BLAS at `threads` threads in this process (0: leave the libraries'
    defaults); the BLAS libraries capped, by file name, with the threads they had before."""
    if threads <= 0:
        return {}
    import scipy.linalg  # noqa: F401  scipy loads its own BLAS: loaded now, it is capped too
    from threadpoolctl import ThreadpoolController

    before: dict[str, int] = {}
    for lib in ThreadpoolController().lib_controllers:
        # numpy.libs/ and scipy.libs/ (Linux wheels), numpy/.dylibs/ (macOS): a BLAS that came with them
        owners = {part.split(".")[0] for part in Path(lib.filepath).parts[-3:-1]}
        if lib.user_api == "blas" and owners & set(_OWNERS):
            before[Path(lib.filepath).name] = lib.num_threads
            lib.set_num_threads(threads)
    log.debug("BLAS threads capped at %d: %s", threads, before)
    return before


def rows_matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """`x @ w` for x (..., D) and w (D, K), as one 2-D product over all of x's rows.

    numpy multiplies a 3-D x as a stack, one product per leading index (a 14x14x384 grid: 14
    products of 14 rows each), which at these sizes costs 1.6-2x one product of 196 rows: 0.45 vs
    0.28 ms for 14x14x384 @ 384x128 and 0.22 vs 0.11 ms for @ 384x64 (one thread, this 2-core box).
    The sums run in another order than the stacked product's, so results differ from it in float32's
    last digits."""
    return (x.reshape(-1, x.shape[-1]) @ w).reshape(*x.shape[:-1], w.shape[-1])

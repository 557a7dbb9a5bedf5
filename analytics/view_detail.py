"""How much of a view lost its detail: a lens covered, smeared, fogged or sprayed, measured on the
frame's grey thumbnail against the same view's warm-up.

The thumbnail (80 pixels across, `frame_motion.motion_image`) is cut into `BLOCKS`; each block's
detail is its mean gradient (|dx| + |dy|) over its mean grey level plus `DARK_FLOOR`, so a change
of light, which scales both, leaves it where it was, and a dim block's sensor noise does not pass
for detail. A view's reference is the per-block median over warm-up frames (a figure passing a
block in some of them does not move it). `lost_share` is the share of the reference's textured
blocks (the three quarters with the most detail: a blank wall has none to lose) whose detail fell
under `LOST_RATIO` of the reference's: a film or a hand over part of the lens takes most of it
away, a figure in front of a block seldom does, and a camera turned elsewhere changes it anyway.

Pure: numpy only.
"""

from __future__ import annotations

import numpy as np

BLOCKS = (6, 8)  # rows, columns
DARK_FLOOR = 16.0  # grey levels added to a block's mean before dividing its gradient by it
LOST_RATIO = 0.5  # a block keeping less than this share of its reference detail lost it
TEXTURED_QUANTILE = 0.25  # blocks of the reference under this quantile of detail are not counted


def measurable(grey: np.ndarray) -> bool:
    """Whether a grey image is big enough for `detail_blocks` (a thumbnail of a very wide panorama
    may not be)."""
    rows, cols = BLOCKS
    return grey.ndim == 2 and grey.shape[0] >= 2 * rows + 1 and grey.shape[1] >= 2 * cols + 1


def detail_blocks(grey: np.ndarray) -> np.ndarray:
    """(rows, cols) float32: each block's mean gradient over its mean level plus `DARK_FLOOR`, for a
    grey image of at least 2 x `BLOCKS` pixels (ValueError otherwise)."""
    g = np.asarray(grey, dtype=np.float32)
    rows, cols = BLOCKS
    if not measurable(g):
        raise ValueError(f"a grey image of at least {2 * rows + 1}x{2 * cols + 1} pixels is needed, got {g.shape}")
    grad = np.abs(np.diff(g, axis=1))[:-1, :] + np.abs(np.diff(g, axis=0))[:, :-1]
    level = g[:-1, :-1]
    h, w = (grad.shape[0] // rows) * rows, (grad.shape[1] // cols) * cols
    grad_b = grad[:h, :w].reshape(rows, h // rows, cols, w // cols).mean(axis=(1, 3))
    level_b = level[:h, :w].reshape(rows, h // rows, cols, w // cols).mean(axis=(1, 3))
    return (grad_b / (level_b + DARK_FLOOR)).astype(np.float32)


def reference(frames: list[np.ndarray]) -> np.ndarray:
    """The per-block median of `detail_blocks` of several frames of one view."""
    return np.median(np.stack(frames), axis=0).astype(np.float32)


def textured(ref: np.ndarray) -> np.ndarray:
    """The blocks of a reference that have detail to lose (bool, its shape)."""
    return np.asarray((ref >= np.quantile(ref, TEXTURED_QUANTILE)) & (ref > 0))


def lost_share(blocks: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> float:
    """The share of `ref`'s textured blocks (`mask`, when computed already) whose detail in `blocks`
    fell under `LOST_RATIO` of it."""
    mask = textured(ref) if mask is None else mask
    count = int(mask.sum())
    if count == 0:
        return 0.0
    return float(((blocks < LOST_RATIO * ref) & mask).sum() / count)

"""The model input size for a source: square, or the source's shape within a token budget.

DINOv3's RoPE position embedding works on any grid of patches, so a wide camera need not be
squashed into a square (nor padded): with `aspect="preserve"` the input keeps the source's
display aspect ratio and holds at most as many patches as the `image_size` square would, so
compute per frame and the record size never exceed the square preset's. Sides are multiples of
`unit` (the patch size times the patch-pooling factor), so pooled grids have no partial cells.

    >>> model_input_size((1920, 1080), image_size=448, aspect="preserve")   # 16:9
    (592, 336)
    >>> model_input_size((1920, 1080), image_size=224, aspect="square")
    (224, 224)

Presets: 224 (14x14 = 196 patches), 448 (28x28 = 784), 512 (32x32 = 1024).
"""

from __future__ import annotations

import math
from typing import Literal

Aspect = Literal["square", "preserve"]
PRESETS: tuple[int, ...] = (224, 448, 512)


def model_input_size(
    source_size: tuple[int, int],
    *,
    image_size: int,
    aspect: Aspect = "square",
    unit: int = 16,
    sample_aspect_ratio: float = 1.0,
) -> tuple[int, int]:
    """(width, height) to resize a `source_size` = (width, height) frame to before the model.

    "square": (image_size, image_size). "preserve": the largest grid of `unit`-pixel cells with
    the source's display aspect ratio (width * sample_aspect_ratio / height) that holds at most
    (image_size / unit)^2 cells; each side at least one cell.
    """
    if unit < 1 or image_size < unit:
        raise ValueError(f"image_size ({image_size}) must be at least the unit ({unit})")
    if aspect == "square":
        return (image_size, image_size)
    if aspect != "preserve":
        raise ValueError(f"aspect must be 'square' or 'preserve', got {aspect!r}")
    width, height = source_size
    if width < 1 or height < 1:
        raise ValueError(f"source size must be positive, got {width}x{height}")
    if not (sample_aspect_ratio > 0 and math.isfinite(sample_aspect_ratio)):
        sample_aspect_ratio = 1.0  # unknown or broken metadata: square pixels
    ratio = width * sample_aspect_ratio / height
    budget = max(1, (image_size * image_size) // (unit * unit))
    long_over_short = ratio if ratio >= 1 else 1 / ratio
    # The largest short side (in cells) whose matching long side still fits the budget.
    short = max(1, math.isqrt(int(budget / long_over_short)))
    while short > 1 and short * max(1, round(short * long_over_short)) > budget:
        short -= 1
    while (short + 1) * max(1, round((short + 1) * long_over_short)) <= budget:
        short += 1
    long = max(1, min(round(short * long_over_short), budget // short))
    cells = (long, short) if ratio >= 1 else (short, long)
    return (cells[0] * unit, cells[1] * unit)


def grid_size(input_size: tuple[int, int], *, patch: int = 16, pool: int = 1) -> tuple[int, int]:
    """(grid_h, grid_w) of the patch grid a record carries for an input of (width, height).

    With pooling, a partial window at the edge is kept (ceil), averaged over the patches it has.
    """
    w, h = input_size
    gh, gw = h // patch, w // patch
    return (-(-gh // pool), -(-gw // pool))

"""Click-to-segment at picture size: from a frame's patch grid and a few clicks to a mask over the
picture, an overlay and a heatmap, as the DINOv3 click-to-segment notebook does.

Every patch is compared (cosine, centred as `click_to_segment` centres them) with the patches
under the positive clicks and under the negative ones. On the patch grid, a patch is kept when it
is at least `threshold` similar to some positive click and more similar to the positive clicks
than to the negative ones; the kept parts connected to a positive click are the grid mask (with
one click and no negative one, exactly `dinostream.analytics.exemplars.click_to_segment`). At
picture size, both similarities are upsampled bilinearly to the picture's pixels and smoothed
(a Gaussian of `smooth` patch widths), the same rule is applied per pixel, and the connected
parts under a positive click form `picture_mask`: edges follow the similarity between patch
centres instead of the grid's steps.

Pure: no model, no I/O. The patches come from a frame record (`FrameEmbedding.patches`).

    >>> seg = segment_picture(rec.patches, (640, 480), [(0.4, 0.6)], negative=[(0.9, 0.1)],
    ...                       threshold=0.6, centering=0.0)
    >>> seg.picture_mask.shape                  # (480, 640) bool
    >>> png = overlay_png(rgb, seg.picture_mask)  # the picture with the mask tinted and outlined
    >>> png = heatmap_png(seg.heatmap, rgb)      # the positive similarity, coloured, over the picture
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from dinostream.analytics.regions import centred_patches, components, mask_box, region_embedding, unit_rows
from dinostream.core.records import Box

Point = tuple[float, float]  # (x, y) in 0..1 of the picture's width and height
MAX_CLICKS = 32
DEFAULT_SMOOTH = 0.5  # patch widths: the Gaussian's σ after upsampling


@dataclass(frozen=True, eq=False)
class PictureSegment:
    """What the clicks select, on the patch grid (as `Segment`) and at picture size."""

    mask: np.ndarray  # (gh, gw) bool: the patch-grid mask
    box: Box  # normalised box around `picture_mask`, score = mean positive similarity inside
    vector: np.ndarray  # (D,) unit region embedding of the grid mask (a watchlist exemplar)
    similarity: np.ndarray  # (gh, gw) cosine of every patch to the nearest positive click
    picture_mask: np.ndarray  # (H, W) bool
    heatmap: np.ndarray  # (H, W) float32: `similarity` upsampled and smoothed, -1..1
    threshold: float
    points: tuple[Point, ...]
    negative: tuple[Point, ...]

    @property
    def area(self) -> float:
        """Share of the picture the mask covers."""
        return float(self.picture_mask.mean())


def check_points(points: Sequence[Point], what: str = "points") -> tuple[Point, ...]:
    """`points` as a tuple of (x, y) floats in 0..1; ValueError names the bad one."""
    out = []
    for p in points:
        try:
            x, y = (float(v) for v in p)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: each point is (x, y) in 0..1, got {p!r}") from None
        if not (0 <= x <= 1 and 0 <= y <= 1):
            raise ValueError(f"{what}: point {p!r} is outside the picture (x and y must be in 0..1)")
        out.append((x, y))
    if len(out) > MAX_CLICKS:
        raise ValueError(f"{what}: at most {MAX_CLICKS} points, got {len(out)}")
    return tuple(out)


def segment_picture(
    patches: np.ndarray,
    size: tuple[int, int],
    points: Sequence[Point],
    negative: Sequence[Point] = (),
    *,
    threshold: float,
    centering: float,
    smooth: float = DEFAULT_SMOOTH,
) -> PictureSegment:
    """Segment a picture of `size` (width, height) whose patch grid is `patches` (gh, gw, D) from
    positive `points` and `negative` clicks ((x, y) in 0..1). ValueError: no positive click, a
    point outside 0..1, a bad size. `centering`: `ReidSettings.feature_centering` (0: as they are)."""
    pos_pts = check_points(points, "points")
    neg_pts = check_points(negative, "negative")
    if not pos_pts:
        raise ValueError("points: at least one positive click is needed")
    width, height = (int(v) for v in size)
    if width < 1 or height < 1:
        raise ValueError(f"size must be (width, height) of at least 1 pixel, got {size}")
    if smooth < 0:
        raise ValueError(f"smooth must be >= 0 patch widths, got {smooth}")
    centred = centred_patches(np.asarray(patches), centering)
    unit = unit_rows(centred)
    gh, gw = unit.shape[:2]
    pos_cells = [_cell(p, (gh, gw)) for p in pos_pts]
    neg_cells = [_cell(p, (gh, gw)) for p in neg_pts]
    pos = np.max([unit @ unit[c] for c in pos_cells], axis=0)
    neg = np.max([unit @ unit[c] for c in neg_cells], axis=0) if neg_cells else None

    keep = _rule(pos, neg, threshold)
    for c in neg_cells:
        keep[c] = False
    for c in pos_cells:
        keep[c] = True  # a clicked patch is always selected (a negative click on it too: the positive wins)
    labels, _ = components(keep)
    mask = np.isin(labels, [labels[c] for c in pos_cells])

    sigma = smooth * max(width / gw, height / gh)
    pos_px = upsample(pos, (width, height), sigma)
    neg_px = upsample(neg, (width, height), sigma) if neg is not None else None
    keep_px = _rule(pos_px, neg_px, threshold)
    for p in neg_pts:
        keep_px[_pixel(p, (width, height))] = False
    for p in pos_pts:
        keep_px[_pixel(p, (width, height))] = True
    px_labels, _ = ndimage.label(keep_px, structure=np.ones((3, 3), bool))
    picture_mask = np.isin(px_labels, [px_labels[_pixel(p, (width, height))] for p in pos_pts])
    return PictureSegment(
        mask=mask,
        box=mask_box(picture_mask, score=float(pos_px[picture_mask].mean())),
        vector=region_embedding(centred, mask),
        similarity=pos.astype(np.float32),
        picture_mask=picture_mask,
        heatmap=pos_px,
        threshold=float(threshold),
        points=pos_pts,
        negative=neg_pts,
    )


def upsample(grid: np.ndarray, size: tuple[int, int], sigma: float = 0.0) -> np.ndarray:
    """A (gh, gw) grid of values at cell centres, bilinearly interpolated to (height, width) pixels
    (`size` is (width, height)), then smoothed with a Gaussian of `sigma` pixels."""
    width, height = size
    img = Image.fromarray(np.ascontiguousarray(grid, dtype=np.float32))  # mode "F"
    out = np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    if sigma > 0:
        out = ndimage.gaussian_filter(out, sigma, mode="nearest")
    return out


def overlay_png(
    image: np.ndarray, mask: np.ndarray, *, color: tuple[int, int, int] = (255, 48, 48), alpha: float = 0.45
) -> bytes:
    """PNG of the (H, W, 3) uint8 picture with `mask` (H, W) tinted in `color` and outlined."""
    rgb = _rgb(image)
    m = np.asarray(mask, dtype=bool)
    if m.shape != rgb.shape[:2]:
        raise ValueError(f"mask {m.shape} is not the picture's size {rgb.shape[:2]}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in 0..1, got {alpha}")
    out = rgb.astype(np.float32)
    tint = np.asarray(color, dtype=np.float32)
    out[m] = (1 - alpha) * out[m] + alpha * tint
    edge = m & ~ndimage.binary_erosion(m, iterations=max(1, min(m.shape) // 200))
    out[edge] = tint
    return _png(out.clip(0, 255).astype(np.uint8))


def heatmap_png(heatmap: np.ndarray, image: np.ndarray | None = None, *, alpha: float = 0.6) -> bytes:
    """PNG of a (H, W) similarity map (-1..1, shown from 0 to 1) in a blue-to-red colour ramp,
    blended over the picture at `alpha` when `image` is given."""
    h = np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0)
    if h.ndim != 2:
        raise ValueError(f"heatmap must be a 2-D map, got shape {h.shape}")
    colours = colour_ramp(h)
    if image is None:
        return _png(colours)
    rgb = _rgb(image)
    if rgb.shape[:2] != h.shape:
        raise ValueError(f"heatmap {h.shape} is not the picture's size {rgb.shape[:2]}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in 0..1, got {alpha}")
    return _png(((1 - alpha) * rgb + alpha * colours).clip(0, 255).astype(np.uint8))


def colour_ramp(values: np.ndarray) -> np.ndarray:
    """Values 0..1 to uint8 RGB: dark blue, cyan, yellow, red (a jet-like ramp)."""
    stops = np.array([0.0, 0.35, 0.65, 1.0])
    rgb = np.array([[0, 0, 140], [0, 200, 255], [255, 230, 0], [220, 0, 0]], dtype=np.float32)
    v = np.clip(values, 0, 1)
    return np.stack([np.interp(v, stops, rgb[:, i]) for i in range(3)], axis=-1).astype(np.uint8)


def _rule(pos: np.ndarray, neg: np.ndarray | None, threshold: float) -> np.ndarray:
    keep = pos >= threshold
    if neg is not None:
        keep &= pos > neg
    return keep


def _cell(point: Point, grid: tuple[int, int]) -> tuple[int, int]:
    x, y = point
    gh, gw = grid
    return min(int(y * gh), gh - 1), min(int(x * gw), gw - 1)


def _pixel(point: Point, size: tuple[int, int]) -> tuple[int, int]:
    x, y = point
    width, height = size
    return min(int(y * height), height - 1), min(int(x * width), width - 1)


def _rgb(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"the picture must be (H, W, 3) uint8 RGB, got {a.shape} {a.dtype}")
    return a


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()

"""Exemplars: what a watchlist looks for, as the same kind of vector as a track's appearance.

A track's appearance is the unit mean, over the frames it was seen in, of its region's
embedding: the centred patch vectors of the object's interior cells, on a frame of the camera at
the camera's scale, one embedding per frame at whatever phase the patch grid cut it (see
`dinostream.analytics.regions`). An exemplar is made the same way, from

- a box drawn on a frame (`exemplar_from_patches`): the mean centred patch vector of the cells
  inside it, on the frame and at the scale its tracks are seen;
- a click on a frame (`click_to_segment`): the patches similar to the clicked one, the connected
  part containing the click, as in zero-shot click-to-segment;
- an uploaded crop (`CropExemplar`): the crop is put on a canvas the size of the frames it was
  cut from, at its own scale (a crop pixel is a frame pixel), the canvas filled by extending the
  crop's margin; the same canvas with the crop's inside filled from its margin is the background
  the object is told apart from, patch by patch, as the background model does on a stream. The
  crop is placed at a few sub-cell shifts, as a moving object is cut by the patch grid at a new
  phase on every frame, and the exemplar is the unit mean of the views' region embeddings.

    >>> plan = CropExemplar(crop, frame_size=(640, 360))
    >>> views = plan.views(grid=(10, 18))                  # the grid a 640x360 frame is embedded to
    >>> scenes = embed([v.scene for v in views])           # the caller's model path, as for frames
    >>> empties = embed([v.empty for v in views])
    >>> vector = plan.vector(views, [r.patches for r in scenes], [r.patches for r in empties], settings)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dinostream.analytics.regions import (
    box_mask,
    centred_patches,
    components,
    foreground_mask,
    mask_box,
    region_embedding,
    unit_rows,
)
from dinostream.core.records import Box, FrameEmbedding
from dinostream.core.settings import ReidSettings

CROP_MARGIN = 8  # pixels users leave around an object when they draw a crop
CROP_SHIFTS = 4  # placements of a crop, a quarter of a cell apart
DEFAULT_FRAME = (1280, 720)  # the frames an uploaded crop is taken to come from when nobody says


def _grid_cell(point: tuple[float, float], grid: tuple[int, int]) -> tuple[int, int]:
    x, y = point
    if not (0 <= x <= 1 and 0 <= y <= 1):
        raise ValueError(f"point must be in normalised frame coordinates (0..1), got {point}")
    gh, gw = grid
    return min(int(y * gh), gh - 1), min(int(x * gw), gw - 1)


def exemplar_from_patches(patches: np.ndarray, box: Box, *, centering: float) -> np.ndarray:
    """An exemplar from a box drawn on a frame: the unit mean of the centred patch vectors (see
    `dinostream.analytics.regions.centred_patches`) whose cells' centres are inside `box`, as a
    region's cells are centred on that stream. `centering` is the stream's
    `ReidSettings.feature_centering`."""
    centred = centred_patches(patches, centering)
    return unit_rows(centred[box_mask(box, centred.shape[:2])].mean(axis=0))


def exemplar_from_image_embedding(record: FrameEmbedding) -> np.ndarray:
    """The unit mean of a picture's unit patch vectors, the whole picture taken as the object.
    Kept for pictures that are all object; a crop cut from a frame goes through `CropExemplar`,
    which sees it at the frames' scale and leaves its margin out."""
    unit = unit_rows(record.patches)
    return unit_rows(unit.reshape(-1, unit.shape[-1]).mean(axis=0))


@dataclass(frozen=True, eq=False)
class Segment:
    mask: np.ndarray  # (gh, gw) bool
    box: Box
    vector: np.ndarray  # (D,) unit exemplar
    similarity: np.ndarray  # (gh, gw) cosine of every patch to the clicked one


def click_to_segment(patches: np.ndarray, point: tuple[float, float], threshold: float, *, centering: float) -> Segment:
    """Zero-shot click-to-segment: every patch's cosine similarity to the clicked patch, the patches
    at least `threshold` similar, and of those the connected part containing the click; the
    exemplar is the region embedding of that part.

    `point` is (x, y) in normalised frame coordinates. The clicked patch is always selected.
    `centering`: as for `exemplar_from_patches` (0 compares the patches as they are)."""
    centred = centred_patches(patches, centering)
    unit = unit_rows(centred)
    r, c = _grid_cell(point, unit.shape[:2])
    sim = unit @ unit[r, c]
    labels, _ = components(sim >= threshold)
    mask = labels == labels[r, c] if labels[r, c] else np.zeros(sim.shape, dtype=bool)
    mask[r, c] = True
    return Segment(
        mask=mask,
        box=mask_box(mask, score=float(sim[mask].mean())),
        vector=region_embedding(centred, mask),
        similarity=sim,
    )


@dataclass(frozen=True, eq=False)
class CropView:
    """One placement of a crop: the crop on a frame-sized canvas, the same canvas without the
    object (the crop's inside filled from its margin), and where the crop lies on it."""

    scene: np.ndarray  # (H, W, 3) uint8
    empty: np.ndarray  # (H, W, 3) uint8
    box: Box  # normalised


def _border(crop: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The crop's margin along each side (top, bottom: (w, 3); left, right: (h, 3)), averaged over
    `depth` pixels inwards and smoothed along the side so noise and thin detail do not streak."""
    c = crop.astype(np.float32)
    d = max(1, min(depth, c.shape[0] // 2, c.shape[1] // 2))
    sides = (c[:d].mean(axis=0), c[-d:].mean(axis=0), c[:, :d].mean(axis=1), c[:, -d:].mean(axis=1))
    return tuple(ndimage.uniform_filter1d(s, size=min(9, len(s)), axis=0, mode="nearest") for s in sides)


def _fill_inside(crop: np.ndarray, depth: int) -> np.ndarray:
    """The crop's area as its margin would continue across it (a Coons patch of the four sides)."""
    h, w = crop.shape[:2]
    top, bottom, left, right = _border(crop, depth)
    v = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    u = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    across = left[:, None] * (1 - u) + right[:, None] * u
    down = top[None] * (1 - v) + bottom[None] * v
    corners = top[0] * (1 - u) * (1 - v) + top[-1] * u * (1 - v) + bottom[0] * (1 - u) * v + bottom[-1] * u * v
    return across + down - corners


class CropExemplar:
    """An exemplar from a crop cut out of a frame of `frame_size` = (width, height) pixels, with
    about `margin` pixels of background around the object (see the module docstring).

    The caller embeds each view's `scene` and `empty` as it embeds frames of that size (same
    resize, same model) and hands the patch grids to `vector`."""

    def __init__(
        self, crop: np.ndarray, frame_size: tuple[int, int], *, margin: int = CROP_MARGIN, shifts: int = CROP_SHIFTS
    ) -> None:
        crop = np.asarray(crop)
        if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8 or min(crop.shape[:2]) < 2:
            raise ValueError(f"a crop must be an (H, W, 3) uint8 RGB picture, got {crop.shape} {crop.dtype}")
        width, height = (int(v) for v in frame_size)
        if width < 2 or height < 2:
            raise ValueError(f"frame size must be positive, got {frame_size}")
        if shifts < 1:
            raise ValueError(f"shifts must be at least 1, got {shifts}")
        h, w = crop.shape[:2]
        if w > width or h > height:  # larger than the frames it came from: shown whole, as large as fits
            k = min(width / w, height / h)
            rows = np.minimum((np.arange(max(2, int(h * k))) / k).astype(int), h - 1)
            cols = np.minimum((np.arange(max(2, int(w * k))) / k).astype(int), w - 1)
            crop = crop[rows][:, cols]
        self.crop = crop
        self.frame_size = (width, height)
        self.margin = margin
        self.shifts = shifts
        self._inside = _fill_inside(crop, max(2, margin // 2))

    def centred(self) -> CropView:
        """The first of `views`, the crop centred on the canvas (it needs no grid: an embedding of
        its scene tells the grid the others are shifted on)."""
        return self._view(0.0)

    def views(self, grid: tuple[int, int]) -> list[CropView]:
        """The crop's placements on the canvas: centred, then moved right by a `shifts`-th of a cell
        at a time (`grid` = (rows, columns) of the patch grid a frame of `frame_size` is embedded
        to), up to the frame's edge."""
        cell = self.frame_size[0] / max(int(grid[1]), 1)
        return [self._view(k * cell / self.shifts) for k in range(self.shifts)]

    def _view(self, shift: float) -> CropView:
        width, height = self.frame_size
        h, w = self.crop.shape[:2]
        x0, y0 = min(int(round((width - w) // 2 + shift)), width - w), (height - h) // 2
        empty = np.pad(self._inside, ((y0, height - h - y0), (x0, width - w - x0), (0, 0)), mode="edge")
        scene = empty.copy()
        scene[y0 : y0 + h, x0 : x0 + w] = self.crop
        box = Box(x0=x0 / width, y0=y0 / height, x1=(x0 + w) / width, y1=(y0 + h) / height)
        return CropView(_to_uint8(scene), _to_uint8(empty), box)

    def vector(
        self,
        views: Sequence[CropView],
        scenes: Sequence[np.ndarray],
        empties: Sequence[np.ndarray],
        settings: ReidSettings,
    ) -> np.ndarray:
        """The exemplar: the unit mean over the views of the object's region embedding, the object
        being, as on a stream, the foreground against the empty canvas (the largest part of it in
        the crop), or the crop's interior cells when nothing stands out. `scenes` and `empties`
        are the (gh, gw, D) patch grids of each view's `scene` and `empty`, in order."""
        if not (len(views) == len(scenes) == len(empties)) or not views:
            raise ValueError("one scene and one empty patch grid per view are needed")
        vectors = [self.region(v, s, e, settings)[1] for v, s, e in zip(views, scenes, empties, strict=True)]
        return unit_rows(np.mean(vectors, axis=0))

    @staticmethod
    def region(
        view: CropView, scene: np.ndarray, empty: np.ndarray, settings: ReidSettings
    ) -> tuple[np.ndarray, np.ndarray]:
        """(mask, region embedding) of the object in one view (see `vector`)."""
        similarity = np.einsum("hwd,hwd->hw", unit_rows(scene), unit_rows(empty))
        s = settings
        fg = foreground_mask(similarity, s.fg_threshold, s.fg_mad_k, s.fg_grow_threshold)
        inside = box_mask(view.box, similarity.shape)
        labels, n = components(fg & ndimage.binary_dilation(inside))
        if n:
            overlap = np.bincount(labels[inside], minlength=n + 1)[1:]
            mask = labels == 1 + int(np.argmax(overlap)) if overlap.max() > 0 else inside
        else:
            mask = inside
        return mask, region_embedding(centred_patches(scene, s.feature_centering), mask)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)

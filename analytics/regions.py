"""Regions from patch features: foreground against a per-stream background model.

A static camera sees the same patch features at each grid cell frame after frame. The
background model keeps, per cell, a running mean of the unit patch vectors seen there while the
cell looked like background; a patch whose cosine similarity to its cell's mean is low is
foreground. Foreground cells are grouped into 4-connected components, and each component
becomes a `Region`: a normalised box and an embedding (the mean patch vector of its interior,
after removing part of what every patch of the frame shares: see `centred_patches`).

    >>> bg = BackgroundModel.empty()
    >>> for rec in records:                                  # one stream, in order
    ...     regions, similarity = bg.observe(rec.patches, settings)
    ...     [r.box for r in regions]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from dinostream.analytics.median import median
from dinostream.analytics.state_codec import decode_array, encode_array
from dinostream.core.half import round_half
from dinostream.core.records import Box
from dinostream.core.settings import ReidSettings

_MAD_TO_SIGMA = 1.4826
_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """`x` (..., D) as float32 with every vector scaled to unit length (zero vectors stay zero)."""
    v = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def foreground_mask(
    similarity: np.ndarray, threshold: float, mad_k: float, grow_threshold: float | None = None
) -> np.ndarray:
    """Cells whose similarity to the background is below `threshold`, or below the frame's own
    median - mad_k·σ (robust σ from the MAD) when that is lower: an absolute ceiling that also
    holds when a lighting change lowers every cell's similarity at once.

    With `grow_threshold` above `threshold` (hysteresis, as in Canny's edge linking), those cells
    are seeds: the connected cells below `grow_threshold` (and below median - mad_k·σ) around a
    seed are foreground too. A patch of an object that happens to look like the background there
    (a stripe of its pattern the colour of the wall) then no longer cuts it in two, and a faint
    object is seen whole where one patch of it stands out."""
    sim = np.asarray(similarity, dtype=np.float32)
    med = median(sim)
    sigma = _MAD_TO_SIGMA * median(np.abs(sim - med))
    adaptive = med - mad_k * sigma
    seeds = sim < min(threshold, adaptive)
    if grow_threshold is None or grow_threshold <= threshold or not seeds.any():
        return seeds
    labels, _ = components(sim < min(grow_threshold, adaptive))
    grown = np.unique(labels[seeds])
    return np.isin(labels, grown[grown > 0]) | seeds


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of a boolean grid: (labels with 0 = none, 1..n, n)."""
    labels, n = ndimage.label(np.asarray(mask, dtype=bool), structure=_FOUR_CONNECTED)
    return labels, int(n)


def mask_box(mask: np.ndarray, score: float = 1.0, label: str = "") -> Box:
    """The normalised box around the true cells of a (gh, gw) grid (cell edges, not centres)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("mask_box of an empty mask")
    gh, gw = mask.shape
    return Box(
        x0=float(cols[0] / gw),
        y0=float(rows[0] / gh),
        x1=float((cols[-1] + 1) / gw),
        y1=float((rows[-1] + 1) / gh),
        score=float(score),
        label=label,
    )


def box_mask(box: Box, grid: tuple[int, int]) -> np.ndarray:
    """The grid cells whose centres lie inside `box` (at least the cell nearest its centre)."""
    gh, gw = grid
    cy = (np.arange(gh) + 0.5) / gh
    cx = (np.arange(gw) + 0.5) / gw
    mask = ((cy >= box.y0) & (cy <= box.y1))[:, None] & ((cx >= box.x0) & (cx <= box.x1))[None, :]
    if not mask.any():
        mask[
            min(int((box.y0 + box.y1) / 2 * gh), gh - 1),
            min(int((box.x0 + box.x1) / 2 * gw), gw - 1),
        ] = True
    return mask


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two normalised boxes."""
    iw = max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0))
    ih = max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))
    inter = iw * ih
    union = (a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter
    return inter / union if union > 0 else 0.0


def centred_patches(patches: np.ndarray, centering: float, *, unit: np.ndarray | None = None) -> np.ndarray:
    """Unit patch vectors minus `centering` times their mean over the frame, (gh, gw, D) float32.

    A ViT mixes global context into every token, so all patches of a frame share a component that
    says where the camera is, not what a region shows; removing part of it makes the same object
    look alike on different cameras (and different objects less alike). Not re-normalised: a
    region's embedding is the unit mean of its cells' centred vectors. `unit`: `unit_rows(patches)`
    when the caller has it already (`FrameEmbedding.unit_patches`)."""
    unit = unit_rows(patches) if unit is None else unit
    if centering == 0:
        return unit
    return unit - centering * unit.reshape(-1, unit.shape[-1]).mean(axis=0)


def region_embedding(centred: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Unit mean of the centred vectors of the component's interior (cells whose four neighbours
    are in it too), or of all its cells when it has no interior: border cells straddle the
    object's outline and carry the background behind it."""
    core = ndimage.binary_erosion(mask, structure=_FOUR_CONNECTED)
    return unit_rows(centred[core if core.any() else mask].mean(axis=0))


@dataclass(frozen=True, eq=False)
class Region:
    """A connected foreground component of one frame."""

    box: Box  # normalised; score = mean dissimilarity to the background
    embedding: np.ndarray  # (D,) float32, unit length
    mask: np.ndarray  # (gh, gw) bool
    area: int  # cells

    @property
    def at_border(self) -> bool:
        """Touches the frame's edge: likely cut off, a partial view of the object."""
        b = self.box
        return b.x0 <= 0 or b.y0 <= 0 or b.x1 >= 1 or b.y1 >= 1


def split_by_priors(mask: np.ndarray, priors: Sequence[Box], min_patches: int = 1) -> list[np.ndarray]:
    """`mask` (one component) cut between the objects expected in it. `priors` are boxes where
    objects should be (the live tracks, moved on by their velocity); a prior is in the component
    when at least half its cells are, and counts only if at least half of it lies outside the
    other priors there (two tracks of one object do not cut it). Objects that touch or cross make
    one component: every cell within a cell of a prior goes to the nearest such prior, and cells
    farther from all of them, when there are `min_patches` or more in a connected part, are
    something else that came in touching a tracked object and become parts of their own (fewer
    go to the nearest prior). With one prior and nothing else, the component stays whole."""
    grid = mask.shape
    gh, gw = grid
    inside = []
    for p in priors:
        pm = box_mask(p, grid)
        if (pm & mask).sum() * 2 >= pm.sum():
            inside.append((p, pm))
    apart = []
    for i, (p, pm) in enumerate(inside):
        others = np.zeros(grid, dtype=bool)
        for j, (_, om) in enumerate(inside):
            if j != i:
                others |= om
        if (pm & ~others).sum() * 2 >= pm.sum():
            apart.append(p)
    if not apart:
        return [mask]
    cy = (np.arange(gh) + 0.5)[:, None]  # cell units
    cx = (np.arange(gw) + 0.5)[None, :]
    dist, centre = [], []
    for p in apart:
        dx = np.maximum(np.maximum(p.x0 * gw - cx, cx - p.x1 * gw), 0.0)
        dy = np.maximum(np.maximum(p.y0 * gh - cy, cy - p.y1 * gh), 0.0)
        dist.append(np.hypot(dx, dy))
        centre.append(np.hypot(cx - (p.x0 + p.x1) * gw / 2, cy - (p.y0 + p.y1) * gh / 2))
    d = np.stack(dist)
    owner = np.argmin(d + 1e-3 * np.stack(centre), axis=0)
    parts = [mask & (owner == k) & (d.min(axis=0) <= 1.0) for k in range(len(apart))]
    rest = mask & (d.min(axis=0) > 1.0)
    labels, n = components(rest)
    for k in range(1, n + 1):
        bit = labels == k
        if bit.sum() >= min_patches:
            parts.append(bit)
        else:
            near = np.bincount(owner[bit], minlength=len(apart))
            parts[int(np.argmax(near))] |= bit
    parts = [m for m in parts if m.any()]
    return parts if len(parts) > 1 else [mask]


def extract_regions(
    centred: np.ndarray,
    similarity: np.ndarray,
    fg: np.ndarray,
    min_patches: int,
    max_regions: int,
    priors: Sequence[Box] = (),
) -> list[Region]:
    """Components of `fg` (cut between `priors`, see `split_by_priors`) with at least
    `min_patches` cells, largest first, at most `max_regions`."""
    labels, n = components(fg)
    if n == 0:
        return []
    masks: list[np.ndarray] = []
    for k in range(1, n + 1):
        m = labels == k
        masks += split_by_priors(m, priors, min_patches) if priors else [m]
    sized = sorted(((int(m.sum()), i) for i, m in enumerate(masks)), key=lambda ai: (-ai[0], ai[1]))
    out = []
    for area, i in [ai for ai in sized if ai[0] >= min_patches][:max_regions]:
        m = masks[i]
        out.append(
            Region(
                box=mask_box(m, score=float(np.clip(1.0 - similarity[m], 0.0, 2.0).mean())),
                embedding=region_embedding(centred, m),
                mask=m,
                area=area,
            )
        )
    return out


@dataclass
class BackgroundModel:
    """Per-stream background: the running mean of unit patch vectors per grid cell.

    The first `bg_warmup` frames are averaged as they come (no regions are reported meanwhile);
    afterwards background cells follow the scene at `bg_rate` and foreground cells at the much
    slower `bg_fg_rate`, so an object that stops is absorbed after a while and so is the ghost a
    departing object leaves. When more than `max_fg_fraction` of the frame is unlike the background
    the view changed (a cut, a moved camera, the lights): the model is relearnt from that frame.
    """

    # (gh, gw, D) float32 holding float16 values (what the records carry: half the state to save,
    # exact when restored), not normalised
    mean: np.ndarray | None = None
    frames: int = 0
    resets: int = 0

    @classmethod
    def empty(cls) -> BackgroundModel:
        return cls()

    def similarity(self, unit: np.ndarray) -> np.ndarray:
        """Cosine similarity of each unit patch vector to its cell's background."""
        assert self.mean is not None
        return np.einsum("hwd,hwd->hw", unit, unit_rows(self.mean))

    def observe(
        self, patches: np.ndarray, s: ReidSettings, priors: Sequence[Box] = (), *, unit: np.ndarray | None = None
    ) -> tuple[list[Region], np.ndarray]:
        """Update the model with one frame's (gh, gw, D) patches; return its regions and the
        per-cell similarity to the background (ones while warming up). `priors` are where objects
        are expected (see `split_by_priors`): a component holding two of them is cut in two. `unit`:
        `unit_rows(patches)` when the caller has it already (`FrameEmbedding.unit_patches`)."""
        unit = unit_rows(patches) if unit is None else unit
        if self.mean is None or self.mean.shape != unit.shape:
            self._relearn(unit)
            return [], np.ones(unit.shape[:2], dtype=np.float32)
        mean = self.mean
        if self.frames < s.bg_warmup:
            self.frames += 1
            self.mean = round_half(mean + (unit - mean) / self.frames)
            return [], np.ones(unit.shape[:2], dtype=np.float32)
        sim = self.similarity(unit)
        if (sim < s.fg_threshold).mean() > s.max_fg_fraction:
            self._relearn(unit)
            self.resets += 1
            return [], sim
        self.frames += 1
        fg = foreground_mask(sim, s.fg_threshold, s.fg_mad_k, s.fg_grow_threshold)
        rate = np.where(fg, s.bg_fg_rate, s.bg_rate).astype(np.float32)[..., None]
        centred = centred_patches(patches, s.feature_centering, unit=unit)
        regions = extract_regions(centred, sim, fg, s.min_region_patches, s.max_regions, priors)
        self.mean = round_half(mean + rate * (unit - mean))
        return regions, sim

    def _relearn(self, unit: np.ndarray) -> None:
        self.mean, self.frames = round_half(unit), 1

    def to_state(self) -> dict[str, Any]:
        return {
            "mean": None if self.mean is None else encode_array(self.mean, "<f2"),
            "frames": self.frames,
            "resets": self.resets,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BackgroundModel:
        mean = state.get("mean")
        return cls(
            mean=None if mean is None else round_half(decode_array(mean).astype(np.float32)),
            frames=int(state.get("frames", 0)),
            resets=int(state.get("resets", 0)),
        )

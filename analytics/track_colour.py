"""A track's colours, seen through its camera's own white balance and exposure.

Random or trained, patch features of a small object carry its texture and layout more than its
colours, and two cameras see one object under different white balance and gain; the features of
one object on two cameras then differ about as much as those of two objects. The object's colours
tell them apart where the features do not, once each camera's cast is taken out (von Kries: each
channel divided by the camera's reference, here the mean colour of the objects it has seen; the
same people and things pass every camera of a site, so the references differ by the cameras'
casts). What is compared is a histogram of the normalised pixels' log-chromaticity (red/green,
blue/green) and brightness, square-rooted (the Hellinger affinity is the cosine of two of them).

Per track, the pixels come from its views in the frames' JPEG thumbnails (a view cut by the
frame's edge too: its colours are the object's all the same), inside the track's box shrunk by a
margin (the box holds background at its edges): a
grid of at most `SAMPLES_PER_VIEW` of them per view, the last `KEEP_VIEWS` views kept (uint8, a
few hundred bytes saved with the track). The histogram is made when asked for, against the
camera's reference then, so a track seen before the reference settled is described again with it.

    >>> image = thumbnail_rgb(record.thumbnail)           # once per frame, None without one
    >>> track.colours = add_view(track.colours, box_samples(image, track.box))
    >>> camera.add(box_samples(image, track.box))
    >>> h = colour_histogram(track.colours, camera.reference)   # (256,) unit, or None

`signature` joins a track's appearance (unit features) and its histogram into the one vector
links are searched and calibrated with: cosine of two signatures = (1 - w)·features' cosine +
w·colours' affinity, `w` the colour weight; without colours (no thumbnail) the colour part is
zero, so two such tracks compare as their features do.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from dinostream.analytics.state_codec import decode_array, encode_array
from dinostream.core.records import Box

SHRINK_X, SHRINK_Y = 0.2, 0.15  # share of the box's width / height left out on each side
SAMPLES_PER_VIEW = 144  # a 12x12 grid at most
KEEP_VIEWS = 8  # views whose samples a track keeps (the newest)
BINS = (8, 8, 4)  # log(r/g), log(b/g), brightness
COLOUR_BINS = int(np.prod(BINS))
_CHROMA = 1.5  # log-chromaticity range, each side of neutral
_LOG_MAX = float(np.log(256.0))
_GREY = 128.0  # the reference colour maps to this grey
_CAMERA_HORIZON = 20_000  # samples: the camera's reference follows slow changes beyond this many


def thumbnail_rgb(jpeg: bytes) -> np.ndarray | None:
    """The thumbnail as a (H, W, 3) uint8 image; None when there is none or it cannot be decoded
    (colours are then not observed, never an error)."""
    if not jpeg:
        return None
    try:
        with Image.open(io.BytesIO(jpeg)) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def box_samples(image: np.ndarray, box: Box) -> np.ndarray:
    """(n, 3) uint8 pixels on a grid inside `box` (normalised to the image) shrunk by the margins;
    empty when the shrunk box holds no pixel."""
    h, w = image.shape[:2]
    bw, bh = box.x1 - box.x0, box.y1 - box.y0
    x0, x1 = int((box.x0 + SHRINK_X * bw) * w), int(np.ceil((box.x1 - SHRINK_X * bw) * w))
    y0, y1 = int((box.y0 + SHRINK_Y * bh) * h), int(np.ceil((box.y1 - SHRINK_Y * bh) * h))
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 3), np.uint8)
    side = int(np.sqrt(SAMPLES_PER_VIEW))
    xs = np.unique(np.linspace(x0, x1 - 1, min(side, x1 - x0)).round().astype(int))
    ys = np.unique(np.linspace(y0, y1 - 1, min(side, y1 - y0)).round().astype(int))
    return np.ascontiguousarray(image[np.ix_(ys, xs)].reshape(-1, 3))


def add_view(kept: np.ndarray | None, samples: np.ndarray) -> np.ndarray | None:
    """A track's kept samples with one more view's: (views, SAMPLES_PER_VIEW, 3) uint8, the
    newest `KEEP_VIEWS` views, a view's unused places repeating its samples (every view weighs
    the same). Unchanged for a view without samples."""
    if len(samples) == 0:
        return kept
    view = np.resize(samples, (SAMPLES_PER_VIEW, 3))[None]
    if kept is None:
        return view
    return np.concatenate([kept, view])[-KEEP_VIEWS:]


class CameraColour:
    """A camera's reference colour: the mean of the object pixels it has seen (a running mean,
    following slow changes once `_CAMERA_HORIZON` samples are in)."""

    def __init__(self, total: np.ndarray | None = None, count: float = 0.0) -> None:
        self.total = np.zeros(3) if total is None else np.asarray(total, dtype=np.float64)
        self.count = float(count)

    def add(self, samples: np.ndarray) -> None:
        if len(samples) == 0:
            return
        if self.count + len(samples) > _CAMERA_HORIZON:
            keep = max(_CAMERA_HORIZON - len(samples), 0) / self.count
            self.total *= keep
            self.count *= keep
        self.total += samples.reshape(-1, 3).sum(0, dtype=np.float64)
        self.count += len(samples)

    @property
    def reference(self) -> np.ndarray | None:
        """The mean colour (3,), or None before any sample."""
        if self.count <= 0:
            return None
        return np.maximum(self.total / self.count, 1.0)

    def to_state(self) -> dict[str, Any]:
        return {"total": [round(float(v), 3) for v in self.total], "count": round(self.count, 3)}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> CameraColour:
        if not state:
            return cls()
        return cls(np.asarray(state["total"], dtype=np.float64), float(state["count"]))


def colour_histogram(kept: np.ndarray | None, reference: np.ndarray | None) -> np.ndarray | None:
    """The unit square-rooted histogram (COLOUR_BINS,) of the kept samples under the camera's
    reference (each channel divided by it); None without samples or reference."""
    if kept is None or reference is None or kept.size == 0:
        return None
    px = kept.reshape(-1, 3).astype(np.float32) * (_GREY / reference.astype(np.float32))
    lg = np.log1p(px)
    red = lg[:, 0] - lg[:, 1]
    blue = lg[:, 2] - lg[:, 1]
    light = lg.mean(1)
    i = np.clip(((red + _CHROMA) / (2 * _CHROMA) * BINS[0]).astype(int), 0, BINS[0] - 1)
    j = np.clip(((blue + _CHROMA) / (2 * _CHROMA) * BINS[1]).astype(int), 0, BINS[1] - 1)
    k = np.clip((light / _LOG_MAX * BINS[2]).astype(int), 0, BINS[2] - 1)
    h = np.bincount((i * BINS[1] + j) * BINS[2] + k, minlength=COLOUR_BINS).astype(np.float32)
    h = np.sqrt(h)
    return h / float(np.linalg.norm(h))


def signature_dim(appearance_dim: int) -> int:
    """The size of the signatures of `appearance_dim`-dim appearances (what a gallery holds)."""
    return appearance_dim + COLOUR_BINS


def signature(appearance: np.ndarray, colours: np.ndarray | None, weight: float) -> np.ndarray:
    """(D + COLOUR_BINS,) unit: the appearance and the colour histogram, weighted so that the
    cosine of two signatures is (1 - weight)·appearances' + weight·histograms' cosine. Without a
    histogram (or at weight 0) the colour part is zero."""
    a = np.asarray(appearance, dtype=np.float32).ravel()
    a = a / max(float(np.linalg.norm(a)), 1e-12)
    if colours is None or weight <= 0:
        return np.concatenate([a, np.zeros(COLOUR_BINS, np.float32)])
    return np.concatenate([np.sqrt(1.0 - weight) * a, np.sqrt(weight) * colours]).astype(np.float32)


def colours_to_state(kept: np.ndarray | None) -> dict[str, Any] | None:
    return None if kept is None else encode_array(kept, "u1")


def colours_from_state(state: dict[str, Any] | None) -> np.ndarray | None:
    if not state:
        return None
    kept = decode_array(state).astype(np.uint8)
    return kept.reshape(-1, SAMPLES_PER_VIEW, 3) if kept.size else None

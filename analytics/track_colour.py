"""A track's colours, seen through its camera's own white balance and exposure.

Random or trained, patch features of a small object carry its texture and layout more than its
colours, and two cameras see one object under different white balance and gain; the features of
one object on two cameras then differ about as much as those of two objects. The object's colours
tell them apart where the features do not, once each camera's cast is taken out (von Kries: each
channel divided by the camera's reference, here the mean colour of the objects it has seen; the
same people and things pass every camera of a site, so the references differ by the cameras'
casts). What is compared is a histogram of the normalised pixels' log-chromaticity (red/green,
blue/green) and brightness, each pixel shared linearly between neighbouring bins (a cast not
quite taken out shifts weight, not whole bins), square-rooted (the Hellinger affinity is the
cosine of two of them).

Per track, the pixels come from its views in the frames' JPEG thumbnails (a view cut by the
frame's edge too: its colours are the object's all the same), inside the track's box shrunk by a
margin (the box holds background at its edges): a grid of at most `SAMPLES_PER_VIEW` of them per
view, the last `KEEP_VIEWS` views kept (uint8: 3.5 KB, about 4.6 KB in the saved state, per live
track). A camera's reference takes each ended track's kept pixels once, on top of a grey prior
(`CameraColour`). The histogram is made when asked for, against the camera's reference then, so
a track seen before the reference settled is described again with it.

    >>> image = thumbnail_rgb(record.thumbnail)           # once per frame, None without one
    >>> track.colours = add_view(track.colours, box_samples(image, track.box))
    >>> camera.add(ended_track.colours)                      # each track once, when it ends
    >>> h = colour_histogram(track.colours, camera.reference)   # (256,) unit, None without pixels

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
_PRIOR_SAMPLES = 2 * KEEP_VIEWS * SAMPLES_PER_VIEW  # grey samples the reference starts from


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
    """A camera's reference colour: the mean of the pixels of the objects it has seen, each track's
    kept views once when it ends (so an object that lingers counts as one that passes), drawn
    towards neutral grey by a prior of `_PRIOR_SAMPLES` (two tracks' worth: the first objects on a
    camera are not taken for its cast) and following slow changes once `_CAMERA_HORIZON` samples
    are in."""

    def __init__(self, total: np.ndarray | None = None, count: float = 0.0) -> None:
        self.total = np.zeros(3) if total is None else np.asarray(total, dtype=np.float64)
        self.count = float(count)

    def add(self, samples: np.ndarray) -> None:
        """Pixels (..., 3) into the reference."""
        samples = samples.reshape(-1, 3)
        if len(samples) == 0:
            return
        if self.count + len(samples) > _CAMERA_HORIZON:
            keep = max(_CAMERA_HORIZON - len(samples), 0) / self.count
            self.total *= keep
            self.count *= keep
        self.total += samples.sum(0, dtype=np.float64)
        self.count += len(samples)

    @property
    def reference(self) -> np.ndarray:
        """The mean colour (3,), grey before any sample."""
        return np.maximum((self.total + _PRIOR_SAMPLES * _GREY) / (self.count + _PRIOR_SAMPLES), 1.0)

    def to_state(self) -> dict[str, Any]:
        return {"total": [round(float(v), 3) for v in self.total], "count": round(self.count, 3)}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> CameraColour:
        if not state:
            return cls()
        return cls(np.asarray(state["total"], dtype=np.float64), float(state["count"]))


def colour_histogram(kept: np.ndarray | None, reference: np.ndarray | None) -> np.ndarray | None:
    """The unit square-rooted histogram (COLOUR_BINS,) of the kept samples under the camera's
    reference (each channel divided by it); None without samples (or without a reference)."""
    if kept is None or reference is None or kept.size == 0:
        return None
    px = kept.reshape(-1, 3).astype(np.float32) * (_GREY / reference.astype(np.float32))
    lg = np.log1p(px)
    coords = np.stack(
        [
            (lg[:, 0] - lg[:, 1] + _CHROMA) / (2 * _CHROMA) * BINS[0],
            (lg[:, 2] - lg[:, 1] + _CHROMA) / (2 * _CHROMA) * BINS[1],
            lg.mean(1) / _LOG_MAX * BINS[2],
        ],
        axis=1,
    )
    # Each sample is shared between the two nearest bins of each axis (linearly): a small shift
    # left by the white balance moves weight to the next bin instead of all of it.
    pos = np.clip(coords - 0.5, 0, np.array(BINS, np.float32) - 1)
    lo = np.minimum(pos.astype(int), np.array(BINS) - 2)
    frac = pos - lo
    h = np.zeros(COLOUR_BINS, np.float64)
    for corner in range(8):
        pick = [(corner >> axis) & 1 for axis in range(3)]
        idx = ((lo[:, 0] + pick[0]) * BINS[1] + lo[:, 1] + pick[1]) * BINS[2] + lo[:, 2] + pick[2]
        w = np.prod([frac[:, a] if pick[a] else 1 - frac[:, a] for a in range(3)], axis=0)
        h += np.bincount(idx, weights=w, minlength=COLOUR_BINS)
    h = h.astype(np.float32)
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

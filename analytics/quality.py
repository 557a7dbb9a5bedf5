"""Picture quality from pixels: sharpness, exposure, contrast, noise and JPEG blockiness, each as a
measure and a 0..1 sub-score, with a 0..1 overall score and the reasons it is low.

No model and no reference picture: the classical no-reference measures the DINOv3 utilities
computed, so a blurred, dark, covered, noisy or over-compressed picture ranks below a clean one.

- sharpness: variance of the Laplacian of the grey picture (at most `WORK_SIDE` pixels on its
  long side, so the same scene gives similar values at any resolution): detail left in it;
- exposure: the share of pixels clipped to black (<= 8) and to white (>= 247), and the mean
  brightness (0..1);
- contrast: RMS contrast, the standard deviation of the grey levels (0..1);
- noise: Immerkaer's fast estimate of the noise σ (grey levels 0..255), over the flattest half of
  the picture so edges and texture are not taken for noise;
- blockiness: how much larger the grey steps are across the 8x8 JPEG block borders than inside
  the blocks (1: none; 1.5: clearly visible blocks), at the picture's own resolution.

`score` is half the lowest sub-score plus half their mean: one bad aspect pulls a picture under
0.5 whatever the others, and among bad pictures the one with more wrong ranks lower. `reasons`
names each sub-score under 0.5 in words ("blurred", "dark", "overexposed", "low contrast",
"noisy", "blocky (JPEG artefacts)").
Pure: no I/O, no state. `measure_jpeg` reads a frame record's JPEG thumbnail (what the live
`quality` processor sees, `dinostream.analytics.quality_monitor`); `measure_health` gives only
the three measures that processor watches, at about a quarter of the cost.

    >>> q = measure_quality(rgb)                  # (H, W, 3) uint8 RGB, or (H, W) grey
    >>> q.score, q.reasons                        # 0.31, ('blurred', 'dark')
    >>> q.to_dict()                               # JSON for an API answer
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from dinostream.analytics.median import median

WORK_SIDE = 640  # long side the sharpness, contrast and noise are measured at (never enlarged)
BLOCK_SIDE = 1024  # blockiness is measured on at most this many pixels square, at full resolution
DARK_LEVEL = 8  # grey levels at or under this are clipped to black
BRIGHT_LEVEL = 247  # ... at or over this, to white

# Where each sub-score is 1 (good) and 0 (bad); in between it is linear (sharpness: in log10).
_SHARP_BAD, _SHARP_GOOD = 10.0, 300.0  # Laplacian variance
_CLIP_GOOD, _CLIP_BAD = 0.05, 0.6  # share of clipped pixels
_MEAN_DARK_BAD, _MEAN_DARK_GOOD = 0.05, 0.25  # mean brightness
_MEAN_BRIGHT_GOOD, _MEAN_BRIGHT_BAD = 0.8, 0.97
_CONTRAST_BAD, _CONTRAST_GOOD = 0.02, 0.12  # RMS contrast
_NOISE_GOOD, _NOISE_BAD = 3.0, 15.0  # σ in grey levels
_BLOCK_GOOD, _BLOCK_BAD = 1.15, 1.8  # border/inside step ratio
_LOW = 0.5  # a sub-score under this is a reason


@dataclass(frozen=True)
class Quality:
    """Measures of one picture and what they mean: `score` 0 (unusable) .. 1 (clean)."""

    score: float
    reasons: tuple[str, ...]
    sharpness: float  # Laplacian variance (grey levels², at <= WORK_SIDE pixels)
    brightness: float  # mean grey level, 0..1
    dark_clipped: float  # share of pixels <= DARK_LEVEL
    bright_clipped: float  # share of pixels >= BRIGHT_LEVEL
    contrast: float  # RMS contrast, 0..1
    noise: float  # estimated noise σ, grey levels
    blockiness: float  # border/inside step ratio of the 8x8 grid (1: none)
    scores: dict[str, float]  # the sub-scores: sharpness, exposure, contrast, noise, blockiness
    width: int
    height: int

    def to_dict(self) -> dict[str, object]:
        """Plain JSON (rounded): what an API answers."""
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()} | {
            "scores": {k: round(v, 4) for k, v in self.scores.items()}
        }


@dataclass(frozen=True)
class Health:
    """The three measures a camera's health is judged by (`dinostream.analytics.quality_monitor`),
    as `Quality` has them, for about a quarter of its cost (no noise, blockiness or clipping)."""

    sharpness: float
    brightness: float
    contrast: float


def measure_health(image: np.ndarray) -> Health:
    """`Health` of a picture `measure_quality` accepts (the same values as its `Quality`)."""
    work = _work_size(_grey(_checked(image)))
    return Health(laplacian_variance(work), float(work.mean() / 255.0), float(work.std() / 255.0))


def measure_quality(image: np.ndarray) -> Quality:
    """The quality of an (H, W, 3) uint8 RGB or (H, W) uint8 grey picture; ValueError names a
    picture that is not one (or smaller than 8x8 pixels)."""
    a = _checked(image)
    h, w = a.shape[:2]
    grey = _grey(a)
    blockiness = block_ratio(grey)
    work = _work_size(grey)
    sharpness = laplacian_variance(work)
    brightness = float(work.mean() / 255.0)
    dark = float(np.mean(grey <= DARK_LEVEL))
    bright = float(np.mean(grey >= BRIGHT_LEVEL))
    contrast = float(work.std() / 255.0)
    noise = noise_sigma(work)

    sharp_s = _ramp(math.log10(max(sharpness, 1e-6)), math.log10(_SHARP_BAD), math.log10(_SHARP_GOOD))
    dark_s = min(_ramp(brightness, _MEAN_DARK_BAD, _MEAN_DARK_GOOD), 1 - _ramp(dark, _CLIP_GOOD, _CLIP_BAD))
    bright_s = min(1 - _ramp(brightness, _MEAN_BRIGHT_GOOD, _MEAN_BRIGHT_BAD), 1 - _ramp(bright, _CLIP_GOOD, _CLIP_BAD))
    scores = {
        "sharpness": sharp_s,
        "exposure": min(dark_s, bright_s),
        "contrast": _ramp(contrast, _CONTRAST_BAD, _CONTRAST_GOOD),
        "noise": 1 - _ramp(noise, _NOISE_GOOD, _NOISE_BAD),
        "blockiness": 1 - _ramp(blockiness, _BLOCK_GOOD, _BLOCK_BAD),
    }
    reasons = []
    if sharp_s < _LOW:
        reasons.append("blurred")
    if dark_s < _LOW:
        reasons.append("dark")
    if bright_s < _LOW:
        reasons.append("overexposed")
    if scores["contrast"] < _LOW:
        reasons.append("low contrast")
    if scores["noise"] < _LOW:
        reasons.append("noisy")
    if scores["blockiness"] < _LOW:
        reasons.append("blocky (JPEG artefacts)")
    values = list(scores.values())
    score = 0.5 * min(values) + 0.5 * sum(values) / len(values)
    return Quality(
        score=score,
        reasons=tuple(reasons),
        sharpness=sharpness,
        brightness=brightness,
        dark_clipped=dark,
        bright_clipped=bright,
        contrast=contrast,
        noise=noise,
        blockiness=blockiness,
        scores={k: float(v) for k, v in scores.items()},
        width=int(w),
        height=int(h),
    )


def measure_jpeg(jpeg: bytes) -> Quality | None:
    """The quality of a JPEG (a frame record's thumbnail); None when there is none or it cannot
    be decoded. Its blockiness is the thumbnail's own compression, not the camera's."""
    grey = jpeg_grey(jpeg)
    return None if grey is None else measure_quality(grey)


def jpeg_grey(jpeg: bytes) -> np.ndarray | None:
    """A JPEG decoded to (H, W) uint8 grey, what `measure_quality` and `measure_health` take; None
    when there is none, it cannot be decoded or it is smaller than 8x8 pixels."""
    if not jpeg:
        return None
    try:
        with Image.open(io.BytesIO(jpeg)) as im:
            grey = np.asarray(im.convert("L"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    return None if min(grey.shape) < 8 else grey


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: high where the picture holds sharp detail."""
    lap = ndimage.laplace(np.asarray(grey, dtype=np.float64), mode="reflect")
    return float(lap[1:-1, 1:-1].var())


def noise_sigma(grey: np.ndarray) -> float:
    """Immerkaer's (1996) noise σ from the response to a mask that cancels planes and edges'
    first order, averaged over the flattest half of the pixels (by gradient), so detail counts
    less as noise."""
    g = np.asarray(grey, dtype=np.float64)
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    r = np.abs(ndimage.convolve(g, mask, mode="reflect"))[1:-1, 1:-1]
    grad = np.hypot(ndimage.sobel(g, 0), ndimage.sobel(g, 1))[1:-1, 1:-1]
    flat = grad <= median(grad)
    if not flat.any():
        return 0.0
    return float(math.sqrt(math.pi / 2) * r[flat].mean() / 6.0)


def block_ratio(grey: np.ndarray) -> float:
    """Mean absolute grey step across the 8-pixel grid's borders over the largest mean step at any
    other of the 8 phases, both directions (1 when there are no blocks; a flat picture gives 1).
    Against every other phase, not the blocks' inside, so a pattern with edges every few pixels
    (tiles, text) is not taken for JPEG blocks: only the borders of the 8x8 grid stand out."""
    g = np.asarray(grey, dtype=np.float64)[:BLOCK_SIDE, :BLOCK_SIDE]
    phases = np.zeros(8)
    counts = np.zeros(8)
    for d in (np.abs(np.diff(g, axis=1)), np.abs(np.diff(g, axis=0)).T):
        n = d.shape[1]  # step j lies between pixels j and j + 1; its phase is j mod 8 (7: a border)
        for phase in range(min(8, n)):
            cols = d[:, phase:n:8]
            phases[phase] += cols.sum()
            counts[phase] += cols.size
    if counts[7] == 0 or counts[:7].min() == 0:
        return 1.0
    means = phases / counts
    border, other = float(means[7]), float(means[:7].max())
    if border < 0.5:  # no visible steps at all (a flat picture): nothing blocky to see
        return 1.0
    return float(border / max(other, 0.5))


def _checked(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ValueError(f"quality needs an (H, W, 3) uint8 RGB or (H, W) uint8 grey picture, got {a.shape} {a.dtype}")
    h, w = a.shape[:2]
    if h < 8 or w < 8:
        raise ValueError(f"quality needs a picture of at least 8x8 pixels, got {w}x{h}")
    return a


def _grey(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        return a
    rgb = a.astype(np.float32)
    return np.clip(rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114 + 0.5, 0, 255).astype(np.uint8)


def _work_size(grey: np.ndarray) -> np.ndarray:
    h, w = grey.shape
    scale = WORK_SIDE / max(h, w)
    if scale >= 1:
        return grey.astype(np.float64)
    size = (max(round(w * scale), 8), max(round(h * scale), 8))
    return np.asarray(Image.fromarray(grey).resize(size, Image.Resampling.BOX), dtype=np.float64)


def _ramp(x: float, bad: float, good: float) -> float:
    """0 at `bad`, 1 at `good`, linear in between (either order)."""
    t = (x - bad) / (good - bad)
    return float(min(max(t, 0.0), 1.0))

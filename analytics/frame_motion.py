"""Camera motion between two frames, from their thumbnails' pixels.

A whip pan or a PTZ move changes the picture as much as a cut, and a model's features (random
ones especially) do not always recognise the same scene shifted by half the view. Pixels do: two
consecutive frames of a pan agree almost exactly once one is translated onto the other, while
the two sides of a cut agree nowhere, and the frames of a dissolve agree best without any shift.

`motion_image` turns a record's JPEG thumbnail into a small grey image (decoded at reduced size);
`align` finds the translation with the best normalised cross-correlation (NCC) over the two
images' overlap, for every shift at once by FFT (masked NCC, Padfield 2012; the sums over each
overlap from cumulative sums): with each frame `prepare`d once (its spectrum and sums serve the
pair before it and the pair after it), one forward and one inverse FFT per frame. It correlates
the images' detail (each less its blur): smooth areas (sky, walls, colour gradients) fit almost
anywhere, so on plain brightness two different pictures can look aligned (0.8 was seen across a
cut); on detail they do not (0.3 at most in the scene-change benchmark's videos, while pan steps
match at 0.77-1.0). `relighting` asks the other question of a fixed view: is a later frame the
same things under other light (a lamp, a cloud's shadow, an exposure step)? NCC takes out each
image's mean and scale, so it is their detail at the best shift of a few pixels, and how much of
it is left. Pure: no I/O, no state.

    >>> a, b = motion_image(prev.thumbnail), motion_image(record.thumbnail)
    >>> a = frame_motion_image(record)   # the same, decoded once per record whoever asks
    >>> m = align(a, b)                    # m.similarity at (m.dy, m.dx); m.still: at no shift
    >>> m = align(prepare(a), prepare(b))  # the same; prepared frames can serve two pairs
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from dinostream.core.records import FrameEmbedding

MOTION_WIDTH = 80  # pixels across: enough for a global translation, cheap to correlate
_DETAIL_SIGMA = 2.0  # pixels: the blur subtracted to keep an image's detail
_MIN_VARIANCE = 0.5  # detail variance per pixel below this (a blank overlap) correlates with nothing
RELIT_SHIFT = 0.04  # of the width: how far a fixed camera's view may shake between two frames


@dataclass(frozen=True)
class Alignment:
    """How two frames relate by a translation: `b` shifted by (dy, dx) lies on `a`."""

    similarity: float  # NCC over the overlap at the best shift (-1 when nothing could be compared)
    dy: int  # rows, positive: b's content sits lower in a
    dx: int  # columns, positive: b's content sits further right in a
    still: float  # NCC at no shift
    width: int  # of the images, for shifts as a share of the view

    @property
    def shift(self) -> float:
        """The shift's largest component as a share of the image width."""
        return max(abs(self.dy), abs(self.dx)) / max(self.width, 1)


def motion_image(jpeg: bytes, width: int = MOTION_WIDTH) -> np.ndarray | None:
    """The thumbnail as a grey float32 image `width` pixels across; None when there is no
    thumbnail or it cannot be decoded (the motion check is then skipped, never an error)."""
    if not jpeg:
        return None
    try:
        with Image.open(io.BytesIO(jpeg)) as im:
            im.draft("L", (width, width))  # JPEG: decode at 1/2, 1/4 or 1/8 scale directly
            grey = im.convert("L")
            h = max(round(grey.height * width / grey.width), 1)
            return np.asarray(grey.resize((width, h), Image.Resampling.BILINEAR), dtype=np.float32)
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def frame_motion_image(record: FrameEmbedding) -> np.ndarray | None:
    """`motion_image` of a record's thumbnail (read-only), decoded once per record however many
    processors read it (scene change's motion, anomaly's light step)."""
    return record.derived(_motion_image_of)


def _motion_image_of(record: FrameEmbedding) -> np.ndarray | None:
    image = motion_image(record.thumbnail)
    if image is not None:
        image.flags.writeable = False
    return image


@dataclass(frozen=True, eq=False)
class MotionFrame:
    """A motion image made ready for `align`: its detail's spectrum and its sums over every
    overlap, computed once per frame and used for the pair before it and the pair after it."""

    image: np.ndarray  # the grey image (what a snapshot keeps)
    spectrum: np.ndarray  # rfft2 of its detail, zero-padded to twice its size (no wrap-around)
    sums: np.ndarray  # its detail summed over the overlap, for every shift, as the first image of a pair
    squares: np.ndarray  # the same for the detail squared


def prepare(image: np.ndarray) -> MotionFrame:
    """Spectrum and overlap sums of a grey image (one forward FFT; the sums by `overlap_sums`)."""
    x = detail(image)
    spectrum = np.fft.rfft2(x, _padded(x.shape))
    return MotionFrame(np.asarray(image), spectrum, overlap_sums(x), overlap_sums(x * x))


def overlap_sums(x: np.ndarray) -> np.ndarray:
    """For every shift d, x summed over the pixels that a second image of its shape, shifted by d,
    still covers: x[p + d] summed over the p inside the image, at index [dy mod 2h, dx mod 2w]
    (the correlation of x with a mask of ones, which `ncc_surface` pairs with). Each is a
    rectangle anchored at a corner of x, so cumulative sums give them all (exact up to rounding,
    and a fraction of the two FFTs the correlation takes): along each axis of length n, index
    d < n (a shift of d) covers pixels d..n-1, index d >= n (a shift of d - 2n) pixels 0..d-n-1."""
    return _corner_sums(_corner_sums(x, 0), 1)


def _corner_sums(x: np.ndarray, axis: int) -> np.ndarray:
    """`overlap_sums` along one axis: from n entries to 2n."""
    n = x.shape[axis]
    head = np.cumsum(x, axis=axis)  # head[i]: pixels 0..i
    total = np.take(head, [n - 1], axis=axis)
    lead = np.concatenate([np.zeros_like(total), np.take(head, np.arange(n - 1), axis=axis)], axis=axis)
    return np.concatenate([total - lead, lead], axis=axis)  # pixels d..n-1, then 0..d-n-1


def align(a: np.ndarray | MotionFrame, b: np.ndarray | MotionFrame, min_overlap: float = 0.3) -> Alignment:
    """The translation of `b` onto `a` with the highest NCC of their detail over the overlap,
    among shifts that leave at least `min_overlap` of the image overlapping (smaller overlaps
    match by chance). Pass `prepare`d frames to reuse their FFTs across pairs."""
    fa = a if isinstance(a, MotionFrame) else None
    fb = b if isinstance(b, MotionFrame) else None
    ia = fa.image if fa is not None else a
    ib = fb.image if fb is not None else b
    assert isinstance(ia, np.ndarray) and isinstance(ib, np.ndarray)
    if ia.shape != ib.shape or ia.ndim != 2:
        return Alignment(-1.0, 0, 0, -1.0, int(ia.shape[-1]))
    r = ncc_surface(fa or prepare(ia), fb or prepare(ib), min_overlap)
    rows, cols = r.shape
    k = int(np.argmax(r))
    dy, dx = divmod(k, cols)
    dy = dy - rows if dy >= rows // 2 else dy
    dx = dx - cols if dx >= cols // 2 else dx
    return Alignment(float(r.flat[k]), dy, dx, float(r[0, 0]), ia.shape[1])


@dataclass(frozen=True)
class Relighting:
    """How a later frame of a fixed view relates to an earlier one: the NCC of their detail at the
    best small shift (handheld jitter; each image's own mean and scale taken out, so a brighter or
    darker view of the same things matches), and how much detail the later one has for each unit
    of the earlier one's (standard deviations)."""

    similarity: float
    detail_ratio: float


def relighting(a: MotionFrame, b: MotionFrame, max_shift: float = RELIT_SHIFT) -> Relighting:
    """`b` compared with `a` as the same view under other light (see `Relighting`), over shifts of
    at most `max_shift` of the width (and 2 pixels). A new picture matches nowhere; a dissolve
    half way to a plain picture matches but has lost most of its detail."""
    h, w = a.image.shape
    if b.image.shape != (h, w):
        return Relighting(-1.0, 0.0)
    r = ncc_surface(a, b, 0.5)
    m = max(2, round(max_shift * w))
    near = r[np.ix_(np.arange(-m, m + 1) % (2 * h), np.arange(-m, m + 1) % (2 * w))]
    n = _overlap((h, w))
    va = a.squares[0, 0] - a.sums[0, 0] ** 2 / n[0, 0]  # whole-image detail variance (shift 0: all of it)
    vb = b.squares[0, 0] - b.sums[0, 0] ** 2 / n[0, 0]
    ratio = float(np.sqrt(max(vb, 0.0) / va)) if va > _MIN_VARIANCE * n[0, 0] else 0.0
    return Relighting(float(near.max()), ratio)


def detail(image: np.ndarray) -> np.ndarray:
    """The image less its Gaussian blur: edges and texture, which only match where they truly are."""
    x = image.astype(np.float64)
    return x - ndimage.gaussian_filter(x, _DETAIL_SIGMA, mode="nearest")


def ncc_surface(a: MotionFrame, b: MotionFrame, min_overlap: float) -> np.ndarray:
    """NCC of a[y + dy, x + dx] with b[y, x] (their detail) over their overlap, for every shift,
    at index [dy mod 2h, dx mod 2w]; -1 where the overlap is too small or blank. Every sum over an
    overlap is a correlation with a mask of ones, so with both frames prepared one more inverse
    FFT gives the whole surface. The second image's sums are the first-image sums at the
    opposite shift."""
    h, w = a.image.shape
    shape = _padded((h, w))
    n1, blank, wide = _overlap((h, w)), _MIN_VARIANCE * _overlap((h, w)), _wide((h, w), min_overlap)
    sa, sb = a.sums, _opposite(b.sums)
    cov = np.fft.irfft2(a.spectrum * np.conj(b.spectrum), shape) - sa * sb / n1
    va = a.squares - sa * sa / n1
    vb = _opposite(b.squares) - sb * sb / n1
    ok = wide & (va > blank) & (vb > blank)
    r = np.divide(cov, np.sqrt(np.maximum(va * vb, 0.0)), out=np.full(shape, -1.0), where=ok)
    return np.clip(r, -1.0, 1.0, out=r)


def _padded(shape: tuple[int, ...]) -> tuple[int, int]:
    return 2 * shape[0], 2 * shape[1]


@lru_cache(maxsize=8)
def _overlap(shape: tuple[int, ...]) -> np.ndarray:
    """For images of this shape: the overlap's pixel count at every shift (`overlap_sums` of ones),
    at least 1."""
    n = np.maximum(np.rint(overlap_sums(np.ones(shape))), 1.0)
    n.flags.writeable = False
    return n


@lru_cache(maxsize=16)
def _wide(shape: tuple[int, ...], min_overlap: float) -> np.ndarray:
    """The shifts whose overlap holds at least `min_overlap` of the image."""
    out = _overlap(shape) >= min_overlap * shape[0] * shape[1]
    out.flags.writeable = False
    return out


def _opposite(x: np.ndarray) -> np.ndarray:
    """x at the opposite shift: y[d] = x[-d], indices modulo the array's shape."""
    return np.roll(x[::-1, ::-1], 1, axis=(0, 1))

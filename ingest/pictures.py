"""Still pictures to RGB: the one decoder for uploads, picture files, PIL images and arrays.

Every picture that becomes a query (search by image, watchlist exemplars, `analyze --watch`,
`dinostream.Engine`) is read here, as an (H, W, 3) uint8 RGB array (the first frame of an
animation). PIL's decompression-bomb limit (`PIL.Image.MAX_IMAGE_PIXELS`) applies:
`PictureTooLarge`; anything else unreadable is `NotAPicture`. Both carry a one-line `reason`
that never shows an object's repr (PIL names a stream `<_io.BytesIO object at 0x...>`).

    rgb = read_rgb(uploaded_bytes)
    rgb = read_rgb(Path("thing.png"))       # PictureError: "cannot read picture thing.png: ..."
    rgb = read_rgb(array)                   # checked and made contiguous
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from dinostream.core.errors import DinostreamError

PictureLike = bytes | bytearray | memoryview | str | Path | Image.Image | np.ndarray

_REPR = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>")


class PictureError(DinostreamError, ValueError):
    """A picture that cannot be used; `reason` says why in a few words."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class NotAPicture(PictureError):
    """Empty, truncated, or not a picture format PIL reads."""


class PictureTooLarge(PictureError):
    """More pixels than PIL's decompression-bomb limit."""


def read_rgb(picture: PictureLike) -> np.ndarray:
    """`picture` as an (H, W, 3) uint8 RGB array: encoded bytes, a file path, a PIL image, or an
    array that is already (H, W, 3) uint8 (returned contiguous). PictureError otherwise."""
    if isinstance(picture, Image.Image):
        return np.asarray(picture.convert("RGB"), dtype=np.uint8)
    if isinstance(picture, str | Path):
        return _decode(picture, f"cannot read picture {picture}")
    if isinstance(picture, bytes | bytearray | memoryview):
        if not len(picture):
            raise NotAPicture("not a readable picture: the file is empty", "the file is empty")
        return _decode(io.BytesIO(picture), "not a readable picture")
    return _checked_array(np.asarray(picture))


def _decode(src: io.BytesIO | str | Path, context: str) -> np.ndarray:
    try:
        with Image.open(src) as img:
            img.load()
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except Image.DecompressionBombError as e:
        raise PictureTooLarge(f"{context}: {_clean(e)}", _clean(e)) from None
    except UnidentifiedImageError:
        reason = "not a picture format this service reads (PNG, JPEG, WebP, GIF, BMP, TIFF, ...)"
        raise NotAPicture(f"{context}: {reason}", reason) from None
    except (OSError, ValueError, SyntaxError) as e:
        reason = _clean(e)
        raise NotAPicture(f"{context}: {reason}", reason) from None


def _checked_array(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        reason = f"images must be (H, W, 3) uint8 RGB, got shape {image.shape} dtype {image.dtype}"
        raise NotAPicture(reason, reason)
    return np.ascontiguousarray(image)


def _clean(e: BaseException) -> str:
    """The exception's message in one line, without object reprs."""
    text = " ".join(str(e).split()) or type(e).__name__
    return _REPR.sub("the data", text)

"""Request bodies under a size limit, and uploaded pictures: what every upload endpoint shares.

The limit is enforced while reading (the declared Content-Length first, then the bytes actually
received), with the app's error shape: 413 `upload_too_large`; a file that is not a picture is
415 `not_an_image`.

    async with limited_form(request, settings.max_upload_bytes, max_files=1) as form:
        data = await form["image"].read()
    rgb = await asyncio.to_thread(decode_rgb, data)

Decoded pixels are bounded per request, not per picture: `dinostream.dashboard.guard` opens a
`pixel_budget(http.max_request_pixels)` around every request, and `decode_rgb` charges each
picture's size (read from its header, before decoding) to it: 413 `too_many_pixels` past it.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import numpy as np
from fastapi import Request
from PIL import Image
from starlette.exceptions import HTTPException
from starlette.types import Message

from dinostream.dashboard.http_common import ApiError
from dinostream.ingest.pictures import PictureError, PictureTooLarge, read_rgb


@contextlib.asynccontextmanager
async def limited_form(
    request: Request, max_bytes: int, *, max_files: int, max_texts: int = 16, setting: str = "http.max_upload_bytes"
) -> AsyncIterator[Any]:
    """The request's multipart form, read within `max_bytes`, with at most `max_files` files (422
    `too_many_images` past it, as a request with too few gets 422) and `max_texts` text fields."""
    limited = Request(request.scope, limited_receive(request, max_bytes, setting))
    try:
        form = await limited.form(max_files=max_files, max_fields=max_texts, max_part_size=4096)
    except HTTPException as e:  # starlette's parser refuses a form past its limits with a bare 400
        text = str(e.detail)
        if e.status_code == 400 and text.startswith("Too many files"):
            raise ApiError(
                422,
                "too_many_images",
                f"too many files: this endpoint takes at most {max_files} in one request",
                details={"max": max_files},
            ) from None
        if e.status_code == 400 and text.startswith("Too many fields"):
            raise ApiError(
                422,
                "too_many_fields",
                f"too many text fields: this endpoint takes at most {max_texts} in one request",
                details={"max": max_texts},
            ) from None
        raise
    try:
        yield form
    finally:
        await form.close()


async def limited_body(request: Request, max_bytes: int) -> bytes:
    """The request's raw body, read within `max_bytes`."""
    return await Request(request.scope, limited_receive(request, max_bytes)).body()


def limited_receive(
    request: Request, max_bytes: int, setting: str = "http.max_upload_bytes"
) -> Callable[[], Awaitable[Message]]:
    """An ASGI receive that raises 413 once more than `max_bytes` are declared or received."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise ApiError(
                400,
                "bad_request",
                f"Content-Length is not a number: {declared!r}",
                details={"header": "content-length"},
            ) from None
        if n > max_bytes:
            raise too_large(max_bytes, setting)
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise too_large(max_bytes, setting)
        return message

    return receive


def too_large(max_bytes: int, setting: str = "http.max_upload_bytes") -> ApiError:
    return ApiError(
        413,
        "upload_too_large",
        f"upload is larger than the {max_bytes}-byte limit",
        details={"limit_bytes": max_bytes, "setting": setting},
    )


class PixelBudget:
    """Pixels the pictures of one request may still decode to (shared by its worker threads)."""

    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max_pixels
        self.used = 0
        self._lock = threading.Lock()

    def charge(self, pixels: int) -> None:
        with self._lock:
            if self.used + pixels > self.max_pixels:
                raise ApiError(
                    413,
                    "too_many_pixels",
                    f"the pictures of this request decode to more than {self.max_pixels} pixels in all "
                    "(http.max_request_pixels): send fewer or smaller pictures",
                    details={"limit_pixels": self.max_pixels, "setting": "http.max_request_pixels"},
                )
            self.used += pixels


_budget: contextvars.ContextVar[PixelBudget | None] = contextvars.ContextVar("pixel_budget", default=None)


@contextlib.contextmanager
def pixel_budget(max_pixels: int) -> Iterator[PixelBudget]:
    """Bound the pixels `decode_rgb` may produce in this context (a request; threads it starts
    with `asyncio.to_thread` share it)."""
    budget = PixelBudget(max_pixels)
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


def _charge_pixels(data: bytes) -> None:
    """Charge the picture's pixel count, read from its header, to the current request's budget."""
    budget = _budget.get()
    if budget is None:
        return
    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the header only
            width, height = img.size
    except Exception:  # noqa: BLE001 - not a picture (or a bomb): the decoder says why
        return
    budget.charge(width * height)


def decode_rgb(data: bytes) -> np.ndarray:
    """Decode an uploaded picture to an (H, W, 3) uint8 RGB array (first frame if animated), with
    `dinostream.ingest.pictures.read_rgb`: 413 `image_too_large` past PIL's pixel limit, else 415."""
    if not data:
        raise ApiError(415, "not_an_image", "the uploaded file is empty")
    _charge_pixels(data)
    try:
        return read_rgb(data)
    except PictureTooLarge as e:
        raise ApiError(413, "image_too_large", f"the picture has too many pixels: {e.reason}") from None
    except PictureError as e:
        raise ApiError(415, "not_an_image", f"the uploaded file is not a readable image: {e.reason}") from None

"""Request bodies under a size limit, and uploaded pictures: what every upload endpoint shares.

The limit is enforced while reading (the declared Content-Length first, then the bytes actually
received), with the app's error shape: 413 `upload_too_large`; a file that is not a picture is
415 `not_an_image`.

    async with limited_form(request, settings.max_upload_bytes, max_files=1) as form:
        data = await form["image"].read()
    rgb = await asyncio.to_thread(decode_rgb, data)
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
from fastapi import Request
from PIL import Image, UnidentifiedImageError
from starlette.types import Message

from dinostream.dashboard.http_common import ApiError


@contextlib.asynccontextmanager
async def limited_form(request: Request, max_bytes: int, *, max_files: int) -> AsyncIterator[Any]:
    """The request's multipart form, read within `max_bytes`."""
    limited = Request(request.scope, limited_receive(request, max_bytes))
    async with limited.form(max_files=max_files, max_fields=16, max_part_size=4096) as form:
        yield form


async def limited_body(request: Request, max_bytes: int) -> bytes:
    """The request's raw body, read within `max_bytes`."""
    return await Request(request.scope, limited_receive(request, max_bytes)).body()


def limited_receive(request: Request, max_bytes: int) -> Callable[[], Awaitable[Message]]:
    """An ASGI receive that raises 413 once more than `max_bytes` are declared or received."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise ApiError(400, "bad_request", f"Content-Length is not a number: {declared!r}") from None
        if n > max_bytes:
            raise too_large(max_bytes)
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise too_large(max_bytes)
        return message

    return receive


def too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "upload_too_large", f"upload is larger than the {max_bytes}-byte limit")


def decode_rgb(data: bytes) -> np.ndarray:
    """Decode an uploaded picture to an (H, W, 3) uint8 RGB array (first frame if animated)."""
    if not data:
        raise ApiError(415, "not_an_image", "the uploaded file is empty")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = img.convert("RGB")
    except Image.DecompressionBombError as e:
        raise ApiError(413, "image_too_large", f"the picture has too many pixels: {e}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ApiError(415, "not_an_image", f"the uploaded file is not a readable image: {e}") from None
    return np.asarray(rgb, dtype=np.uint8)

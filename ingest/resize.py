"""Resizing with FFmpeg's scaler (the one the decoder uses), so uploads and decoded frames match."""

from __future__ import annotations

import av
import numpy as np


def resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, 3) uint8 RGB array to `size` = (width, height) with swscale (bilinear).

    Decoded video goes through the same scaler in `frame.reformat`, so a still image resized
    here gives the model the same pixels a video frame of that image would.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {image.shape} {image.dtype}")
    w, h = size
    if image.shape[1] == w and image.shape[0] == h:
        return np.ascontiguousarray(image)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    return rgb_array(frame.reformat(width=w, height=h, format="rgb24", interpolation="BILINEAR"))


def rgb_array(frame: av.VideoFrame) -> np.ndarray:
    """An rgb24 frame's pixels as a C-contiguous (H, W, 3) uint8 array. PyAV 18.1.1 hands back the
    plane with its row padding as a strided view (a 224-wide row is 672 bytes in a 768-byte line);
    the model's batch, thumbnails and records expect packed rows, so such a view is copied (a
    frame already packed is not)."""
    return np.ascontiguousarray(frame.to_ndarray())

"""A synthetic test video with known cuts, for `dinostream demo`, the tests and the benchmarks.

Each shot has its own colour palette and texture, a shape moving across it and a slow camera
pan, so frames within a shot are similar but not identical and frames across a cut are not.

    >>> cuts = make_video("demo.mp4", shots=4, shot_s=3.0)  # doctest: +SKIP
    >>> cuts  # doctest: +SKIP
    [3.0, 6.0, 9.0]
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np

_PAN_PX_PER_S = 12.0  # camera pan speed; the texture is padded by what a shot pans over


def make_video(
    path: str | os.PathLike[str],
    *,
    shots: int = 4,
    shot_s: float = 3.0,
    fps: int = 25,
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
) -> list[float]:
    """Write an H.264 (yuv420p) mp4 of `shots` distinct shots and return the cut times in seconds.

    The cut times are the presentation times of the first frame of shots 2..n. The pixels are
    deterministic for a given seed; `size` is (width, height) and must be even (yuv420p).
    """
    width, height = size
    if shots < 1 or shot_s <= 0 or fps < 1:
        raise ValueError(f"need shots >= 1, shot_s > 0 and fps >= 1, got {shots}, {shot_s}, {fps}")
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"size must be even and at least 16x16, got {width}x{height}")
    frames_per_shot = [round((k + 1) * shot_s * fps) - round(k * shot_s * fps) for k in range(shots)]
    if min(frames_per_shot) < 1:
        raise ValueError(f"shot_s={shot_s} is shorter than one frame at {fps} fps")

    rng = np.random.default_rng(seed)
    hues = (rng.permutation(shots) + rng.random()) / shots  # evenly spread, shuffled: every shot differs
    cuts: list[float] = []
    with av.open(os.fspath(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20"}
        index = 0
        for k, n in enumerate(frames_per_shot):
            if k:
                cuts.append(index / fps)
            shot = _Shot(rng, float(hues[k]), k, width, height, pad=int(_PAN_PX_PER_S * n / fps) + 2)
            for i in range(n):
                frame = av.VideoFrame.from_ndarray(shot.render(i / fps), format="rgb24")
                frame = frame.reformat(format="yuv420p")
                frame.pts, frame.time_base = index, Fraction(1, fps)
                container.mux(stream.encode(frame))
                index += 1
        container.mux(stream.encode(None))
    return cuts


class _Shot:
    """One shot: a textured, coloured backdrop larger than the frame, a pan, and a moving shape."""

    def __init__(self, rng: np.random.Generator, hue: float, kind: int, width: int, height: int, pad: int) -> None:
        self.width, self.height, self.pad = width, height, pad
        h, w = height + pad, width + pad
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        texture = _texture(rng, kind % 4, x / max(w, h), y / max(w, h))
        dark, light = _hsv_to_rgb(hue, 0.9, 0.25), _hsv_to_rgb((hue + 0.12) % 1.0, 0.6, 0.95)
        self.backdrop = (dark + texture[..., None] * (light - dark)).astype(np.uint8)
        self.shape_rgb = _hsv_to_rgb((hue + 0.5) % 1.0, 1.0, 1.0).astype(np.uint8)
        self.pan = rng.uniform(-1.0, 1.0, 2) * _PAN_PX_PER_S
        self.pan_origin = np.array([pad, pad]) * (self.pan < 0)  # start where the pan has room to go
        self.shape_xy = rng.uniform(0.2, 0.8, 2) * (width, height)
        self.shape_v = rng.uniform(-0.15, 0.15, 2) * (width, height)  # pixels per second
        self.shape_r = int(rng.uniform(0.08, 0.14) * min(width, height))
        self.round = bool(kind % 2)

    def render(self, t: float) -> np.ndarray:
        ox, oy = np.clip(self.pan_origin + self.pan * t, 0, self.pad).astype(int)
        image = self.backdrop[oy : oy + self.height, ox : ox + self.width].copy()
        cx, cy = _bounce(self.shape_xy + self.shape_v * t, (self.width, self.height))
        r = self.shape_r
        x0, x1 = max(int(cx) - r, 0), min(int(cx) + r, self.width)
        y0, y1 = max(int(cy) - r, 0), min(int(cy) + r, self.height)
        if self.round:
            yy, xx = np.ogrid[y0:y1, x0:x1]
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
            image[y0:y1, x0:x1][mask] = self.shape_rgb
        else:
            image[y0:y1, x0:x1] = self.shape_rgb
        return image


def _texture(rng: np.random.Generator, kind: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A [0, 1] float field: stripes, checkerboard, rings or smooth blobs."""
    if kind == 0:
        angle, freq = rng.uniform(0, np.pi), rng.uniform(8, 16)
        return 0.5 + 0.5 * np.sin(2 * np.pi * freq * (x * np.cos(angle) + y * np.sin(angle)))
    if kind == 1:
        cells = rng.uniform(6, 12)
        return ((np.floor(x * cells) + np.floor(y * cells)) % 2).astype(np.float32)
    if kind == 2:
        cx, cy, freq = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.6), rng.uniform(10, 20)
        return 0.5 + 0.5 * np.cos(2 * np.pi * freq * np.hypot(x - cx, y - cy))
    coarse = rng.random((6, 6)).astype(np.float32)  # bilinear upsampling of coarse noise
    gx, gy = x / x.max() * 5, y / y.max() * 5
    x0, y0 = np.minimum(gx.astype(int), 4), np.minimum(gy.astype(int), 4)
    fx, fy = gx - x0, gy - y0
    top = coarse[y0, x0] * (1 - fx) + coarse[y0, x0 + 1] * fx
    bottom = coarse[y0 + 1, x0] * (1 - fx) + coarse[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _bounce(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Reflect a point moving in a straight line off the frame edges."""
    extent = np.asarray(size, dtype=np.float64)
    folded = np.mod(xy, 2 * extent)
    return np.where(folded > extent, 2 * extent - folded, folded)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, dtype=np.float32) * 255

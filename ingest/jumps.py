"""Where the picture jumped between two sampled frames, from the frames the decoder saw in between.

A stream sampled at 2 fps from 25 fps video shows the model one frame in 12; a cut between two
samples is then placed only within half a second. But the decoder often sees the frames in
between (a GOP longer than the sampling step is decoded whole, bar the B-frames nothing
references), and a cut is the one large step in that run. `JumpTracker` follows a sparse grid
of luma points (64 x 36) over every decoded frame and hands each sampled frame the `Jump` of its
span: the largest step, when it happened, and the next largest, so a reader can tell one change
(a cut) from many (motion, a flash). Cost: ~0.12 ms per decoded frame at 720p, ~0.19 at 1080p,
mostly the grid's first reads of a frame the decoder just wrote (cache misses; 2-4 % of decoding
the frame); `IngestSettings.cut_timing` turns it off.

Pure but for `luma_points`, which reads the points out of a decoded PyAV frame.
"""

from __future__ import annotations

import functools

import av
import numpy as np

from dinostream.core.records import Jump

POINTS = (36, 64)  # rows, columns of the luma grid
# Pixel formats whose first plane is 8-bit luma, one byte a pixel: what H.264/HEVC/VP9/MJPEG
# decoders hand out (and hardware decoders after their transfer). Others give no jump.
_LUMA8 = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "nv12", "nv21", "gray"}
)


def luma_points(frame: object) -> np.ndarray | None:
    """The luma of `frame` at a `POINTS` grid (float32, rows x columns), or None for what is not
    a decoded PyAV frame with an 8-bit luma plane."""
    if not isinstance(frame, av.VideoFrame) or frame.format.name not in _LUMA8:
        return None
    plane = frame.planes[0]
    h, w = frame.height, frame.width
    if h <= 0 or w <= 0:
        return None
    y = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
    return sample_points(y[:h, :w])


def sample_points(luma: np.ndarray) -> np.ndarray:
    """`luma` (H, W uint8) at the centres of a `POINTS` grid of cells, float32."""
    ys, xs = _grid(*luma.shape)
    return luma[ys, xs].astype(np.float32)


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = min(POINTS[0], h), min(POINTS[1], w)
    ys = ((np.arange(rows) + 0.5) * h / rows).astype(np.intp)
    xs = ((np.arange(cols) + 0.5) * w / cols).astype(np.intp)
    return ys[:, None], xs[None, :]


class JumpTracker:
    """The largest picture step since the last sampled frame.

    `see_frame(frame, t)` (or `see(points, t)`) for every decoded frame in media-time order (the
    sampled ones too), then `take()` when a frame is sampled: its span's `Jump`, or None when the
    span was not seen whole (the stream's first frame, a format without luma, a size change, time
    going back) or was one step (no frame decoded in between: sampled keyframes, or every frame
    sampled), which says nothing the two samples do not. Not `enabled` (`IngestSettings.cut_timing` off), it reads no
    frame and every `take()` is None."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._last: np.ndarray | None = None
        self._last_t = 0.0
        self._whole = False  # every step since the last take was seen
        self._best: tuple[float, float] | None = None  # (size, t) of the largest step
        self._runner_up = 0.0
        self._steps = 0

    def see_frame(self, frame: object, t: float) -> None:
        """`see` the luma points of a decoded frame (`luma_points`), when enabled."""
        if self.enabled:
            self.see(luma_points(frame), t)

    def see(self, points: np.ndarray | None, t: float) -> None:
        last, last_t = self._last, self._last_t
        self._last, self._last_t = points, t
        if points is None or last is None or last.shape != points.shape or t <= last_t:
            self._whole = False
            return
        size = float(np.abs(points - last).mean())
        self._steps += 1
        if self._best is None or size > self._best[0]:
            if self._best is not None:
                self._runner_up = self._best[0]
            self._best = (size, (last_t + t) / 2)
        else:
            self._runner_up = max(self._runner_up, size)

    def take(self) -> Jump | None:
        best, runner_up, known = self._best, self._runner_up, self._whole and self._steps >= 2
        self._best, self._runner_up, self._whole, self._steps = None, 0.0, True, 0
        return Jump(best[1], best[0], runner_up) if known and best is not None else None

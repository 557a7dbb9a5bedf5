"""A progress line on stderr for long CLI work (analysing or indexing a recording): position,
frames per second and time left. Machine-readable output on stdout is never touched.

Drawn in place with a carriage return on a terminal; when stderr is not a terminal (a log file,
CI) a plain line is written at most every `every_s` seconds instead, so logs stay readable.

    bar = Progress(total_s=video_duration, label="analyze or-1.mp4")
    for rec in records:
        bar.update(rec.pts)          # media seconds reached
    bar.close()
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

_WIDTH = 24


def format_duration(seconds: float) -> str:
    """`1:02:03`, `4:05`, or `?` when unknown."""
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def progress_line(label: str, done_s: float, total_s: float | None, frames: int, elapsed: float) -> str:
    """One line: label, bar and percentage (when the total is known), frames/s, time left."""
    fps = frames / elapsed if elapsed > 0 else 0.0
    parts = [label]
    if total_s and total_s > 0:
        frac = min(max(done_s / total_s, 0.0), 1.0)
        filled = int(frac * _WIDTH)
        parts.append(f"[{'#' * filled}{'.' * (_WIDTH - filled)}] {frac * 100:5.1f}%")
        rate = done_s / elapsed if elapsed > 0 and done_s > 0 else 0.0  # media seconds per second
        left = (total_s - done_s) / rate if rate > 0 else float("nan")
        parts.append(f"{format_duration(done_s)}/{format_duration(total_s)}")
        parts.append(f"{fps:.1f} frames/s")
        parts.append(f"{format_duration(left)} left")
    else:
        parts.append(f"{format_duration(done_s)} of media")
        parts.append(f"{fps:.1f} frames/s")
    return "  ".join(parts)


class Progress:
    def __init__(
        self,
        total_s: float | None,
        label: str,
        *,
        stream: TextIO | None = None,
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total_s = total_s
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = every_s if every_s is not None else (0.2 if self.tty else 10.0)
        self.clock = clock
        self.started = clock()
        self.frames = 0
        self.done_s = 0.0
        self._last_draw = float("-inf")

    def update(self, done_s: float, frames: int = 1) -> None:
        """`frames` more frames were processed; media time `done_s` was reached."""
        self.frames += frames
        self.done_s = max(self.done_s, done_s)
        now = self.clock()
        if now - self._last_draw >= self.every_s:
            self._draw(now)

    def close(self) -> None:
        """Draw the final state and end the line."""
        self._draw(self.clock(), final=True)

    def _draw(self, now: float, final: bool = False) -> None:
        self._last_draw = now
        line = progress_line(self.label, self.done_s, self.total_s, self.frames, now - self.started)
        if self.tty:
            self.stream.write("\r\x1b[K" + line + ("\n" if final else ""))
        elif final or self.frames:
            self.stream.write(line + "\n")
        self.stream.flush()

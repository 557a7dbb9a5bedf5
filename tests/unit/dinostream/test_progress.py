"""The stderr progress line of long CLI work."""

from __future__ import annotations

import io

import pytest

from dinostream.progress import Progress, format_duration, progress_line


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0:00"), (65.4, "1:05"), (3723, "1:02:03"), (float("nan"), "?"), (float("inf"), "?"), (-1, "?")],
    ids=["zero", "minutes", "hours", "nan", "inf", "negative"],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_line_with_a_known_total_has_bar_rate_and_time_left() -> None:
    line = progress_line("analyze or.mp4", done_s=900, total_s=3600, frames=1800, elapsed=60)
    assert line.startswith("analyze or.mp4")
    assert "25.0%" in line and "15:00/1:00:00" in line
    assert "30.0 frames/s" in line
    assert "3:00 left" in line  # 900 media s per 60 s -> 2700 left take 180 s


def test_line_without_a_total_says_how_much_media() -> None:
    line = progress_line("index cam", done_s=30, total_s=None, frames=60, elapsed=10)
    assert "0:30 of media" in line and "6.0 frames/s" in line and "%" not in line


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_not_a_terminal_writes_plain_lines_at_most_every_interval() -> None:
    out, clock = io.StringIO(), _Clock()
    bar = Progress(100.0, "x", stream=out, every_s=10, clock=clock)
    for i in range(50):
        clock.t = i * 0.5  # 25 s of work
        bar.update(i * 2.0)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert 3 <= len(lines) <= 5  # ~ every 10 s plus the final line
    assert "98.0%" in lines[-1]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_line_redrawn_in_place() -> None:
    out, clock = _Tty(), _Clock()
    bar = Progress(10.0, "x", stream=out, clock=clock)
    for i in range(10):
        clock.t = float(i)
        bar.update(float(i + 1))
    bar.close()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert text.count("\r") >= 10 and "100.0%" in text

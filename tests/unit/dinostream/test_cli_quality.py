"""`dinostream quality PICTURE...` (issue 16): the pixel measures of /api/v1/images/quality and
Engine.quality on the command line, as a table or JSON lines; a bad picture is a message and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dinostream.analytics.quality import measure_quality
from dinostream.cli import main


@pytest.fixture
def pictures(tmp_path: Path) -> tuple[Path, Path]:
    y, x = np.mgrid[0:120, 0:160]
    scene = np.stack([(x * 1.5) % 256, (y * 2) % 256, ((x // 10 + y // 10) % 2) * 200 + 20], axis=-1)
    sharp = tmp_path / "sharp.png"
    Image.fromarray(scene.astype(np.uint8)).save(sharp)
    dark = tmp_path / "dark.png"
    Image.fromarray(np.full((120, 160, 3), 3, np.uint8)).save(dark)
    return sharp, dark


def test_json_lines_carry_the_same_measures_as_the_library(
    pictures: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    sharp, dark = pictures
    assert main(["quality", "--json", str(sharp), str(dark)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["picture"] for line in lines] == [str(sharp), str(dark)]
    expected = measure_quality(np.asarray(Image.open(dark).convert("RGB"))).to_dict()
    assert {k: v for k, v in lines[1].items() if k != "picture"} == expected
    assert "dark" in lines[1]["reasons"]
    assert lines[0]["score"] > lines[1]["score"]


def test_table_has_a_row_per_picture_with_its_reasons(
    pictures: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    sharp, dark = pictures
    assert main(["quality", str(sharp), str(dark)]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split()[:2] == ["picture", "score"]
    assert [row.split()[0] for row in rows] == [str(sharp), str(dark)]
    assert "dark" in rows[1]


@pytest.mark.parametrize("bad", ["missing.png", "not_a_picture.jpg"])
def test_a_bad_picture_is_named_and_exits_2(
    pictures: tuple[Path, Path], tmp_path: Path, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / bad
    if bad.startswith("not"):
        path.write_text("no picture here")
    assert main(["quality", str(pictures[0]), str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing printed for the good one before the error
    assert f"cannot read picture {path}" in captured.err

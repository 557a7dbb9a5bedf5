"""`dinostream segment PICTURE --point X,Y ...` (issue 16): Engine.segment on the command line,
the picture-size mask, overlay and heatmap as PNGs and a JSON summary; bad clicks and pictures
are a message and exit 2, random weights a warning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dinostream.cli import main


@pytest.fixture
def block(tmp_path: Path) -> Path:
    img = np.full((128, 128, 3), 40, np.uint8)
    img[32:96, 32:96] = (230, 30, 30)
    path = tmp_path / "block.png"
    Image.fromarray(img).save(path)
    return path


def test_segment_writes_the_mask_overlay_and_heatmap_at_picture_size(
    block: Path, tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mask, overlay, heatmap = (tmp_path / f"{n}.png" for n in ("mask", "overlay", "heatmap"))
    argv = ["segment", str(block), "--point", "0.5,0.5", "--model", str(tiny_model_dir), "--device", "cpu"]
    assert main([*argv, "--mask", str(mask), "--overlay", str(overlay), "--heatmap", str(heatmap)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["grid"] == [14, 14] and summary["points"] == [[0.5, 0.5]]
    assert summary["written"] == {"mask": str(mask), "overlay": str(overlay), "heatmap": str(heatmap)}
    m = np.asarray(Image.open(mask))
    assert m.shape == (128, 128) and m[64, 64] == 255 and m[2, 2] == 0 and m[125, 125] == 0
    for png in (overlay, heatmap):
        assert Image.open(png).size == (128, 128)
    assert 0 < summary["area"] < 1


def test_random_weights_warn_on_stderr(block: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["segment", str(block), "--point", "0.5,0.5", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "dinostream: warning: model random:vits16 has random weights" in captured.err
    assert json.loads(captured.out)["written"] == {}


@pytest.mark.parametrize("point", ["2,3", "0.5", "a,b"])
def test_a_bad_click_is_refused_before_anything_loads(
    block: Path, point: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["segment", str(block), "--point", point])
    assert exit_.value.code == 2
    assert "argument --point" in capsys.readouterr().err


def test_a_bad_picture_is_named_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nothing.png"
    assert main(["segment", str(path), "--point", "0.5,0.5"]) == 2
    assert f"cannot read picture {path}" in capsys.readouterr().err

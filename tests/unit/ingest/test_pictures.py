"""The one picture decoder: every kind of picture to RGB uint8, and one-line reasons without
object reprs for what is not a picture."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dinostream.ingest.pictures import NotAPicture, PictureTooLarge, read_rgb


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def test_bytes_paths_pil_and_arrays_read_the_same_pixels(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    (tmp_path / "p.png").write_bytes(_png(rgb))
    grey = Image.fromarray(rgb).convert("L")
    for picture in (_png(rgb), tmp_path / "p.png", str(tmp_path / "p.png"), Image.fromarray(rgb), rgb[:, :, :]):
        out = read_rgb(picture)
        assert out.dtype == np.uint8 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, rgb)
    assert read_rgb(grey).shape == (12, 20, 3)  # converted to RGB
    assert read_rgb(rgb[:, ::2]).flags.c_contiguous  # a strided view comes back contiguous


@pytest.mark.parametrize(
    ("picture", "reason"),
    [
        (b"", "the file is empty"),
        (b"hello, not a picture", "not a picture format"),
        (_png(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))[:-30], "truncated"),
    ],
    ids=["empty", "text", "truncated-png"],
)
def test_what_is_not_a_picture_says_why_without_object_reprs(picture: bytes, reason: str) -> None:
    with pytest.raises(NotAPicture) as info:
        read_rgb(picture)
    message = str(info.value)
    assert reason in info.value.reason and info.value.reason in message
    assert "object at 0x" not in message and "\n" not in message


def test_a_missing_file_is_named_and_a_bad_array_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(NotAPicture, match=r"cannot read picture .*nope\.png"):
        read_rgb(tmp_path / "nope.png")
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8 RGB, got shape \(8, 8\) dtype float32"):
        read_rgb(np.zeros((8, 8), np.float32))


def test_more_pixels_than_the_bomb_limit_is_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _png(np.zeros((64, 64, 3), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64 * 64 > 2 * 1000: PIL refuses it
    with pytest.raises(PictureTooLarge) as info:
        read_rgb(data)
    assert "4096" in info.value.reason and "object at 0x" not in str(info.value)

"""Embedder: record shapes and dtypes, thumbnails, batch invariance, and agreement with
transformers' own DINOv3 preprocessing fed to the same model."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import DINOv3ViTConfig, DINOv3ViTModel

from analytics.embedder import Embedder
from analytics.model_loader import LoadedModel, load_model
from dinostream.settings import ModelSettings
from ingest.source import Frame

DIM = 48
REGISTERS = 4


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """A tiny DINOv3 saved as a checkpoint and loaded back through load_model."""
    config = DINOv3ViTConfig(
        hidden_size=DIM,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=96,
        patch_size=16,
        num_register_tokens=REGISTERS,
        layerscale_value=1.0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = DINOv3ViTModel(config)
    path: Path = tmp_path_factory.mktemp("embedder-ckpt")
    model.save_pretrained(path)
    return load_model(str(path), device="cpu")


@pytest.fixture(scope="module")
def embedder(loaded: LoadedModel) -> Embedder:
    return Embedder(loaded, ModelSettings(thumbnail_size=160, thumbnail_quality=75))


def _image(h: int, w: int, seed: int) -> np.ndarray:
    """A structured picture (gradients, a block, noise), not pure noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) % 256], axis=-1).astype(np.int32)
    y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
    img[y0 : y0 + h // 3, x0 : x0 + w // 3] = rng.integers(0, 256, 3)
    img += rng.integers(-20, 21, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _frame(h: int, w: int, seed: int, stream: str = "cam-1") -> Frame:
    return Frame(stream=stream, seq=seed, pts=seed / 2, ts=1_700_000_000.0 + seed, image=_image(h, w, seed))


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize(
    ("h", "w", "grid"),
    [(224, 224, (14, 14)), (256, 448, (16, 28))],
    ids=["224-square", "448x256-wide"],
)
def test_record_shapes_dtypes_and_metadata(embedder: Embedder, loaded: LoadedModel, h: int, w: int, grid) -> None:
    frames = [_frame(h, w, 1, "cam-a"), _frame(h, w, 2, "cam-b")]
    recs = embedder.embed(frames)

    assert len(recs) == 2
    for rec, f in zip(recs, frames, strict=True):
        assert (rec.stream, rec.seq, rec.pts, rec.ts) == (f.stream, f.seq, f.pts, f.ts)
        assert (rec.model, rec.untrained) == (loaded.model_id, False)
        assert rec.cls.shape == (DIM,) and rec.pooled.shape == (DIM,)
        assert rec.patches.shape == (*grid, DIM)
        assert rec.cls.dtype == rec.pooled.dtype == rec.patches.dtype == np.float16
        # pooled is the mean of the patch grid (registers and CLS excluded)
        np.testing.assert_allclose(
            rec.pooled.astype(np.float32), rec.patches.astype(np.float32).mean(axis=(0, 1)), atol=2e-3
        )


@pytest.mark.parametrize(("h", "w"), [(224, 224), (256, 448), (96, 64)], ids=["224-square", "448x256", "small-64x96"])
def test_thumbnail_is_a_jpeg_within_the_size(embedder: Embedder, h: int, w: int) -> None:
    [rec] = embedder.embed([_frame(h, w, 3)])
    img = Image.open(io.BytesIO(rec.thumbnail))
    assert img.format == "JPEG"
    expected_long = min(160, max(h, w))  # shrunk to 160 on the long side, never enlarged
    assert max(img.size) == expected_long
    assert abs(img.size[0] / img.size[1] - w / h) < 0.05  # aspect ratio kept


def test_a_frame_embeds_the_same_alone_and_inside_a_batch(embedder: Embedder) -> None:
    target = _frame(224, 224, 10)
    [alone] = embedder.embed([target])
    batch = embedder.embed([_frame(224, 224, 11), target, _frame(224, 224, 12), _frame(224, 224, 13)])
    inside = batch[1]

    assert _cos(alone.cls, inside.cls) > 0.999
    assert _cos(alone.pooled, inside.pooled) > 0.999
    assert _cos(alone.patches, inside.patches) > 0.999
    # and the other frames of the batch really are different pictures
    assert _cos(batch[0].patches, inside.patches) < 0.99


def test_embedding_is_deterministic(embedder: Embedder) -> None:
    frames = [_frame(224, 224, s) for s in (20, 21, 22)]
    first = embedder.embed(frames)
    second = embedder.embed(frames)
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a.cls, b.cls)
        assert np.array_equal(a.pooled, b.pooled)
        assert np.array_equal(a.patches, b.patches)
        assert a.thumbnail == b.thumbnail


def _reference_pixels(image: np.ndarray) -> torch.Tensor:
    """Pixel values from transformers' own preprocessing, without resizing: its PIL/NumPy backend
    with DINOv3ViTImageProcessor's settings (rescale 1/255, ImageNet mean/std). The
    DINOv3ViTImageProcessor class itself needs torchvision, which has no CPU wheel here."""
    from transformers.image_processing_backends import PilBackend
    from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    proc: Any = PilBackend(
        do_resize=False,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=IMAGENET_DEFAULT_MEAN,
        image_std=IMAGENET_DEFAULT_STD,
    )
    pixels = proc(image, return_tensors="pt")["pixel_values"]
    assert tuple(pixels.shape) == (1, 3, *image.shape[:2])
    return pixels


@pytest.mark.parametrize(("h", "w"), [(224, 224), (256, 448)], ids=["224-square", "448x256"])
def test_matches_transformers_preprocessing_and_model_outputs(
    embedder: Embedder, loaded: LoadedModel, h: int, w: int
) -> None:
    frame = _frame(h, w, 30)
    pixels = _reference_pixels(frame.image)
    with torch.inference_mode():
        out = loaded.model(pixel_values=pixels)
    ref_cls = out.pooler_output[0].numpy()
    ref_patches = out.last_hidden_state[0, 1 + REGISTERS :].numpy()
    ref_pooled = ref_patches.mean(axis=0)

    [rec] = embedder.embed([frame])

    assert _cos(rec.cls, ref_cls) >= 0.995
    assert _cos(rec.pooled, ref_pooled) >= 0.995
    assert _cos(rec.patches, ref_patches.reshape(rec.patches.shape)) >= 0.995
    # Tighter than cosine: only fp16 rounding separates the two (this catches, e.g., register
    # tokens mixed into the patch mean, or the CLS taken before the final LayerNorm).
    np.testing.assert_allclose(rec.cls.astype(np.float32), ref_cls, atol=1e-2, rtol=1e-2)
    np.testing.assert_allclose(rec.pooled.astype(np.float32), ref_pooled, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize(
    ("images", "match"),
    [
        ([np.zeros((224, 230, 3), np.uint8)], "not a multiple of the patch size 16"),
        ([np.zeros((200, 224, 3), np.uint8)], "not a multiple of the patch size 16"),
        ([np.zeros((224, 224, 3), np.uint8), np.zeros((224, 256, 3), np.uint8)], "same size"),
        ([np.zeros((224, 224, 3), np.float32)], "uint8"),
        ([np.zeros((224, 224), np.uint8)], r"\(H, W, 3\)"),
    ],
    ids=["width-230", "height-200", "mixed-sizes", "float-pixels", "grayscale"],
)
def test_bad_frames_raise_a_clear_value_error(embedder: Embedder, images: list[np.ndarray], match: str) -> None:
    frames = [Frame("cam-1", i, 0.0, 0.0, img) for i, img in enumerate(images)]
    with pytest.raises(ValueError, match=match):
        embedder.embed(frames)


def test_empty_batches(embedder: Embedder) -> None:
    assert embedder.embed([]) == []
    assert embedder.embed_images([]).shape == (0, DIM)


def test_embed_images_returns_normalised_cls_vectors_for_any_size(embedder: Embedder) -> None:
    images = [_image(100, 130, 40), _image(300, 200, 41), _image(224, 224, 42)]
    vecs = embedder.embed_images(images)

    assert vecs.shape == (3, DIM) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert _cos(vecs[0], vecs[1]) < 0.999  # different pictures, different vectors
    # a 224x224 query is embedded exactly like a 224x224 frame of the same picture
    [rec] = embedder.embed([Frame("cam-1", 0, 0.0, 0.0, images[2])])
    assert _cos(vecs[2], rec.cls) > 0.999


def test_embed_images_rejects_non_rgb_input(embedder: Embedder) -> None:
    with pytest.raises(ValueError, match="uint8"):
        embedder.embed_images([np.zeros((50, 50, 3), np.float64)])

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

from dinostream.core.records import FrameEmbedding, FrameHeader
from dinostream.core.settings import ModelSettings
from dinostream.embedding.embedder import Embedder
from dinostream.embedding.model_loader import LoadedModel, load_model
from dinostream.ingest.resize import resize_rgb
from dinostream.ingest.source import Frame

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


# --- aspect-preserving inputs, pooled and PCA-reduced patch grids ---------------------------------


def _reference_outputs(loaded: LoadedModel, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CLS, mean patch and the (grid_h, grid_w, D) patch grid through transformers' own preprocessing."""
    pixels = _reference_pixels(image)
    with torch.inference_mode():
        out = loaded.model(pixel_values=pixels)
    h, w = image.shape[:2]
    patches = out.last_hidden_state[0, 1 + REGISTERS :].numpy()
    return out.pooler_output[0].numpy(), patches.mean(axis=0), patches.reshape(h // 16, w // 16, -1)


def _avg_pool(grid: np.ndarray, f: int) -> np.ndarray:
    """Average pooling by f with partial windows at the far edges (mean of the cells they hold)."""
    gh, gw, d = grid.shape
    out = np.zeros((-(-gh // f), -(-gw // f), d))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = grid[i * f : (i + 1) * f, j * f : (j + 1) * f].reshape(-1, d).mean(axis=0)
    return out


@pytest.mark.parametrize(
    ("source", "expected_input"),
    [((640, 360), (288, 160)), ((360, 640), (160, 288)), ((400, 300), (256, 192))],
    ids=["16:9", "9:16-portrait", "4:3"],
)
def test_aspect_preserving_input_matches_the_reference_after_the_scaler(
    loaded: LoadedModel, source: tuple[int, int], expected_input: tuple[int, int]
) -> None:
    embedder = Embedder(loaded, ModelSettings(image_size=224, aspect="preserve"))
    assert embedder.input_size(source) == expected_input
    w, h = source
    # The source frame goes through the decoder's scaler; transformers gets the same resized pixels.
    image = resize_rgb(_image(h, w, 50), expected_input)
    [rec] = embedder.embed([Frame("cam-1", 0, 0.0, 0.0, image)])
    ref_cls, ref_pooled, ref_grid = _reference_outputs(loaded, image)

    assert rec.patches.shape == (expected_input[1] // 16, expected_input[0] // 16, DIM)
    assert _cos(rec.cls, ref_cls) >= 0.995
    assert _cos(rec.pooled, ref_pooled) >= 0.995
    assert _cos(rec.patches, ref_grid) >= 0.995


def test_aspect_preserving_sizing_agrees_with_transformers_resizing_the_source_itself(loaded: LoadedModel) -> None:
    """Reference resized by transformers (PIL), ours by swscale: the same picture at 288x160."""
    from transformers.image_processing_backends import PilBackend
    from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling

    embedder = Embedder(loaded, ModelSettings(image_size=224, aspect="preserve"))
    source = _image(360, 640, 51)
    w, h = embedder.input_size((640, 360))
    proc: Any = PilBackend(
        do_resize=True,
        size={"height": h, "width": w},
        resample=PILImageResampling.BILINEAR,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=IMAGENET_DEFAULT_MEAN,
        image_std=IMAGENET_DEFAULT_STD,
    )
    with torch.inference_mode():
        ref = loaded.model(pixel_values=proc(source, return_tensors="pt")["pixel_values"]).pooler_output[0]
    [rec] = embedder.embed([Frame("cam-1", 0, 0.0, 0.0, resize_rgb(source, (w, h)))])
    assert _cos(rec.cls, ref.numpy()) >= 0.995


@pytest.mark.parametrize(
    ("h", "w", "pool", "grid"),
    [(224, 224, 2, (7, 7)), (256, 448, 2, (8, 14)), (256, 448, 3, (6, 10))],
    ids=["224-pool2", "448x256-pool2", "448x256-pool3-partial-edges"],
)
def test_pooled_patch_grid_matches_the_reference(
    loaded: LoadedModel, h: int, w: int, pool: int, grid: tuple[int, int]
) -> None:
    embedder = Embedder(loaded, ModelSettings(patch_pool=pool))
    frame = _frame(h, w, 60)
    [rec] = embedder.embed([frame])
    ref_cls, ref_pooled, ref_grid = _reference_outputs(loaded, frame.image)
    expected = _avg_pool(ref_grid, pool)

    assert rec.patches.shape == (*grid, DIM)
    assert _cos(rec.patches, expected) >= 0.995
    np.testing.assert_allclose(rec.patches.astype(np.float32), expected, atol=1e-2, rtol=1e-2)
    assert _cos(rec.cls, ref_cls) >= 0.995 and _cos(rec.pooled, ref_pooled) >= 0.995  # global outputs unpooled


def test_pca_reduced_patches_match_the_reference_and_say_so_on_the_wire(loaded: LoadedModel) -> None:
    from dinostream.embedding.patch_pca import fit_patch_pca

    plain = Embedder(loaded, ModelSettings(patch_pool=2))
    pca = fit_patch_pca([_frame(224, 224, s) for s in range(70, 76)], 8, embedder=plain)
    embedder = Embedder(loaded, ModelSettings(patch_pool=2, patch_pca_dims=6), patch_pca=pca)
    frame = _frame(224, 224, 80)
    [rec] = embedder.embed([frame])
    ref_cls, _, ref_grid = _reference_outputs(loaded, frame.image)
    expected = pca.truncated(6).transform(_avg_pool(ref_grid, 2))

    assert (rec.dim, rec.patch_dim, rec.patches.shape) == (DIM, 6, (7, 7, 6))
    assert _cos(rec.patches, expected) >= 0.995
    assert _cos(rec.cls, ref_cls) >= 0.995
    data = rec.encode()
    assert FrameHeader.decode(data).patch_dim == 6
    assert np.array_equal(FrameEmbedding.decode(data).patches, rec.patches)


def test_pca_setting_without_a_pca_or_for_another_width_is_refused(loaded: LoadedModel) -> None:
    from dinostream.embedding.patch_pca import PatchPCA, PatchPCAError

    with pytest.raises(PatchPCAError, match="no patch PCA was given"):
        Embedder(loaded, ModelSettings(patch_pca_dims=8))
    wrong = PatchPCA(np.zeros(16), np.eye(16)[:4], np.ones(4), 4.0, model="other")
    with pytest.raises(PatchPCAError, match="16-dim patches"):
        Embedder(loaded, ModelSettings(patch_pca_dims=4), patch_pca=wrong)


# --- record size against the message limit --------------------------------------------------------


def test_record_size_bound_covers_real_records(embedder: Embedder, loaded: LoadedModel) -> None:
    from dinostream.embedding.embedder import record_size_bound

    noisy = Frame("a" * 64, 10**12, 1e9, 1.7e9, np.random.default_rng(0).integers(0, 256, (224, 224, 3), np.uint8))
    [rec] = embedder.embed([noisy])
    assert len(rec.encode()) <= record_size_bound(embedder.settings, DIM, loaded.model_id)


@pytest.mark.parametrize(
    ("hidden", "settings", "fits"),
    [
        (384, ModelSettings(image_size=224), True),  # ViT-S/16 at 224: ~160 KB
        (1024, ModelSettings(image_size=224), True),  # ViT-L at 224: ~400 KB
        (1024, ModelSettings(image_size=448), False),  # ViT-L at 448: 28x28x1024 fp16 = 1.6 MB
        (1024, ModelSettings(image_size=448, patch_pool=2), True),
        (1024, ModelSettings(image_size=448, patch_pca_dims=128), True),
        (384, ModelSettings(image_size=512), True),  # 32x32x384 fp16 = 786 KB + the rest: just fits
        (768, ModelSettings(image_size=512), False),  # ViT-B at 512: 1.6 MB
    ],
    ids=["S-224", "L-224", "L-448", "L-448-pool2", "L-448-pca128", "S-512", "B-512"],
)
def test_configurations_over_the_kafka_limit_are_refused_with_a_way_out(
    hidden: int, settings: ModelSettings, fits: bool
) -> None:
    from dinostream.embedding.embedder import RecordTooLargeError, check_record_size

    if fits:
        check_record_size(settings, hidden, "facebook/dinov3-vitl16-pretrain-lvd1689m", 1_000_000)
        return
    with pytest.raises(RecordTooLargeError) as err:
        check_record_size(settings, hidden, "facebook/dinov3-vitl16-pretrain-lvd1689m", 1_000_000)
    msg = str(err.value)
    assert "1,000,000-byte message limit" in msg and "patch_pool=2" in msg and "patch_pca_dims<=" in msg
    # and the suggested fixes do fit
    k = int(msg.split("patch_pca_dims<=")[1].split()[0])
    check_record_size(settings.model_copy(update={"patch_pool": 2}), hidden, "m", 1_000_000)
    check_record_size(settings.model_copy(update={"patch_pca_dims": k}), hidden, "m", 1_000_000)


def test_embedder_refuses_at_start_up_what_would_not_fit(loaded: LoadedModel) -> None:
    from dinostream.embedding.embedder import RecordTooLargeError

    with pytest.raises(RecordTooLargeError, match="message limit"):
        Embedder(loaded, ModelSettings(image_size=512), max_message_bytes=150_000)
    Embedder(loaded, ModelSettings(image_size=512, patch_pool=4), max_message_bytes=150_000)


# --- out of memory --------------------------------------------------------------------------------


class _OOMAbove(torch.nn.Module):
    """The real model, except that batches larger than `limit` raise CUDA's out-of-memory error."""

    def __init__(self, model: torch.nn.Module, limit: int) -> None:
        super().__init__()
        self.inner = model
        self.limit = limit
        self.sizes: list[int] = []

    def forward(self, pixel_values: torch.Tensor) -> Any:
        self.sizes.append(len(pixel_values))
        if len(pixel_values) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(pixel_values=pixel_values)


def test_out_of_memory_halves_the_batch_and_loses_no_frame(embedder: Embedder, loaded: LoadedModel) -> None:
    import dataclasses

    oom = _OOMAbove(loaded.model, limit=2)
    small = Embedder(dataclasses.replace(loaded, model=oom), embedder.settings)
    frames = [_frame(224, 224, s, stream=f"cam-{s % 3}") for s in range(90, 97)]

    recs = small.embed(frames)
    expected = embedder.embed(frames)

    assert [(r.stream, r.seq) for r in recs] == [(f.stream, f.seq) for f in frames]
    for got, want in zip(recs, expected, strict=True):
        assert _cos(got.cls, want.cls) > 0.999 and _cos(got.patches, want.patches) > 0.999
        assert got.thumbnail == want.thumbnail
    assert oom.sizes == [7, 4, 2, 2, 2, 1]  # 7 -> 4 + 3 -> (2 + 2) + 3 split at the learned cap (2 + 1)
    assert small.oom_cap == 2
    oom.sizes.clear()
    small.embed(frames[:5])  # later batches go straight to the size that fits
    assert oom.sizes == [2, 2, 1]


def test_a_single_frame_that_does_not_fit_raises_a_clear_error(loaded: LoadedModel) -> None:
    import dataclasses

    from dinostream.embedding.embedder import EmbeddingOOMError

    small = Embedder(dataclasses.replace(loaded, model=_OOMAbove(loaded.model, limit=0)), ModelSettings())
    with pytest.raises(EmbeddingOOMError, match=r"single 224x224 frame.*smaller image_size"):
        small.embed([_frame(224, 224, 1), _frame(224, 224, 2)])


# --- torch.compile --------------------------------------------------------------------------------


def test_compiled_embedder_matches_eager(embedder: Embedder, loaded: LoadedModel) -> None:
    compiled = Embedder(loaded, ModelSettings(compile=True))
    for n in (2, 3, 1):  # other batch sizes, a lone frame included: the graph is generalised, not wrong
        frames = [_frame(224, 224, 100 + i) for i in range(n)]
        for got, want in zip(compiled.embed(frames), embedder.embed(frames), strict=True):
            assert _cos(got.cls, want.cls) > 0.999
            assert _cos(got.patches, want.patches) > 0.999


def test_stage_refuses_records_over_the_kafka_limit_at_start_up(loaded: LoadedModel) -> None:
    from dinostream.core.errors import DinostreamError
    from dinostream.core.settings import IngestSettings
    from dinostream.embedding.embedder import RecordTooLargeError
    from dinostream.embedding.stage import EmbeddingStage

    async def sink(batch: list[FrameEmbedding]) -> None:
        return None

    with pytest.raises(RecordTooLargeError) as err:
        EmbeddingStage(loaded, ModelSettings(image_size=512), IngestSettings(), sink, max_message_bytes=150_000)
    assert isinstance(err.value, DinostreamError)  # the CLI prints it as one line and exits non-zero
    assert "patch_pool=" in str(err.value)


class _AllocateThenOOM(torch.nn.Module):
    """The real model, except that a batch larger than `limit` first allocates its activations (a
    tensor held by the failing frame) and then raises CUDA's out-of-memory error, as a real one does."""

    def __init__(self, model: torch.nn.Module, limit: int) -> None:
        super().__init__()
        self.inner = model
        self.limit = limit
        self.held: list[Any] = []  # weak references to the activations of each failed attempt
        self.alive_at_retry: list[bool] = []

    def forward(self, pixel_values: torch.Tensor) -> Any:
        import weakref

        self.alive_at_retry.extend(ref() is not None for ref in self.held)
        self.held.clear()
        if len(pixel_values) > self.limit:
            activations = torch.empty(len(pixel_values), 1 << 16)
            self.held.append(weakref.ref(activations))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(pixel_values=pixel_values)


def test_out_of_memory_retry_runs_after_the_failed_attempts_memory_is_freed(loaded: LoadedModel) -> None:
    import dataclasses

    oom = _AllocateThenOOM(loaded.model, limit=1)
    small = Embedder(dataclasses.replace(loaded, model=oom), ModelSettings())
    frames = [_frame(224, 224, s) for s in range(4)]

    recs = small.embed(frames)

    assert [r.seq for r in recs] == [0, 1, 2, 3]
    # Each retry ran once the traceback of the failed attempt (and the tensors its frames held) was
    # gone: inside the `except` block they would still be alive, and the device could not reuse them.
    assert oom.alive_at_retry and not any(oom.alive_at_retry)


def test_out_of_memory_caps_only_its_input_size_and_the_cap_recovers(
    loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from dinostream.embedding import embedder as embedder_module

    monkeypatch.setattr(embedder_module, "OOM_PATIENCE", 6)

    class _OOMAbovePixels(_OOMAbove):
        """Out of memory above `limit` frames' worth of 224x224 pixels: larger inputs fit fewer frames."""

        def forward(self, pixel_values: torch.Tensor) -> Any:
            self.sizes.append(len(pixel_values))
            if pixel_values[0, 0].numel() * len(pixel_values) > self.limit * 224 * 224:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory.")
            return self.inner(pixel_values=pixel_values)

    oom = _OOMAbovePixels(loaded.model, limit=4)
    small = Embedder(dataclasses.replace(loaded, model=oom), ModelSettings(aspect="square", image_size=448))
    large = [_frame(448, 448, s) for s in range(4)]
    square = [_frame(224, 224, s) for s in range(4)]

    assert len(small.embed(large)) == 4  # 4 at 448 is 16 frames' worth at 224: 4 -> 2 -> 1
    assert small.oom_caps == {(448, 448): 1}
    oom.sizes.clear()
    assert len(small.embed(square)) == 4
    assert oom.sizes == [4]  # the 448 cap does not hold back 224 batches

    oom.limit = 16  # memory came back
    for _ in range(2):
        small.embed(large[:1])  # six batches have now fitted at the cap (four above)...
    oom.sizes.clear()
    small.embed(large)
    assert oom.sizes == [2, 2] and small.oom_caps == {(448, 448): 2}  # ...so the cap doubles

    oom.limit = 4  # and went again: the raised cap falls back, and waits twice as long to rise
    assert len(small.embed(large[:2])) == 2
    assert small.oom_caps == {(448, 448): 1} and small._caps[(448, 448)].patience == 12


def test_a_nan_frame_is_dropped_counted_and_logged_and_the_batch_goes_on(
    loaded: LoadedModel, caplog: pytest.LogCaptureFixture
) -> None:
    import dataclasses
    import logging

    class _NaNForBlack(torch.nn.Module):
        """The real model, except that an all-black frame comes out as NaN (as an fp16 overflow would)."""

        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.inner = model

        def forward(self, pixel_values: torch.Tensor) -> Any:
            out = self.inner(pixel_values=pixel_values)
            black = pixel_values.flatten(2).std(dim=-1).amax(dim=-1) == 0  # one colour: a black frame
            out.last_hidden_state[black] = float("nan")
            return out

    nan = Embedder(dataclasses.replace(loaded, model=_NaNForBlack(loaded.model)), ModelSettings())
    frames = [_frame(224, 224, s, stream=f"cam-{s}") for s in range(4)]
    frames[2] = Frame("cam-dark", 7, 3.5, 1.0, np.zeros((224, 224, 3), np.uint8))

    with caplog.at_level(logging.WARNING, logger="dinostream.embedding.embedder"):
        finished = nan.launch(frames)()
        recs = nan.embed(frames)

    assert [r is None for r in finished] == [False, False, True, False]
    assert [(r.stream, r.seq) for r in recs] == [("cam-0", 0), ("cam-1", 1), ("cam-3", 3)]
    assert nan.nonfinite_frames == 2
    assert "stream cam-dark frame 7" in caplog.text


def test_two_launched_batches_finish_to_the_same_records_as_embed(embedder: Embedder) -> None:
    first = [_frame(224, 224, s) for s in range(3)]
    second = [_frame(224, 224, s, stream="cam-2") for s in range(10, 12)]

    finish_first = embedder.launch(first)
    finish_second = embedder.launch(second)  # launched before the first batch is finished
    got = finish_first() + finish_second()

    want = embedder.embed(first) + embedder.embed(second)
    assert [(r.stream, r.seq) for r in got if r is not None] == [(r.stream, r.seq) for r in want]
    for g, w in zip(got, want, strict=True):
        assert g is not None
        assert np.array_equal(g.patches, w.patches) and g.thumbnail == w.thumbnail


def test_the_first_compiled_call_per_input_size_holds_the_compile_lock(
    loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from dinostream.embedding import embedder as embedder_module

    monkeypatch.setattr(torch, "compile", lambda fn: fn)  # the locking, without compiling
    held: list[bool] = []
    device_step = Embedder._device_step

    def step(self: Embedder, x: torch.Tensor) -> torch.Tensor:
        held.append(embedder_module._COMPILE_LOCK.locked())
        return device_step(self, x)

    monkeypatch.setattr(Embedder, "_device_step", step)
    compiled = Embedder(loaded, ModelSettings(compile=True))
    other = Embedder(loaded, ModelSettings(compile=True))
    threads = [
        threading.Thread(target=e.embed, args=([_frame(224, 224, 1), _frame(224, 224, 2)],)) for e in (compiled, other)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert held == [True, True]  # each embedder's first 224x224 call may compile: one at a time
    held.clear()
    compiled.embed([_frame(224, 224, 3)])
    compiled.embed([_frame(256, 448, 4)])
    assert held == [False, True]  # a known size runs without the lock; a new one takes it


@pytest.mark.parametrize(
    ("w", "h"), [(224, 224), (448, 256), (256, 448), (592, 336), (160, 160), (96, 64), (1000, 17), (17, 1000)]
)
def test_thumbnail_size_is_pils(w: int, h: int) -> None:
    from dinostream.embedding.embedder import thumbnail_size

    img = Image.new("RGB", (w, h))
    img.thumbnail((160, 160))
    assert thumbnail_size((w, h), 160) == img.size


@pytest.mark.parametrize(("h", "w"), [(224, 224), (256, 448)], ids=["square", "wide"])
def test_thumbnails_shrunk_on_the_device_are_pils_within_a_level(
    embedder: Embedder, loaded: LoadedModel, h: int, w: int
) -> None:
    """What CUDA does (resize on the device, JPEG on the host), run on the CPU here."""
    import dataclasses

    frames = [_frame(h, w, s) for s in range(3)]
    shrunk = embedder.shrink(torch.from_numpy(np.stack([f.image for f in frames]))).numpy()
    for f, small in zip(frames, shrunk, strict=True):
        pil = Image.fromarray(f.image)
        pil.thumbnail((160, 160), Image.Resampling.BILINEAR)
        assert small.shape == (pil.height, pil.width, 3)
        assert np.abs(small.astype(int) - np.asarray(pil).astype(int)).mean() < 1.0  # 0.1-0.2 measured

    device = Embedder(dataclasses.replace(loaded), embedder.settings)
    device.device_thumbnails = True
    recs, want = device.embed(frames), embedder.embed(frames)
    assert [(r.stream, r.seq) for r in recs] == [(r.stream, r.seq) for r in want]
    for r, wr in zip(recs, want, strict=True):
        got, ref = Image.open(io.BytesIO(r.thumbnail)), Image.open(io.BytesIO(wr.thumbnail))
        assert (got.format, got.size) == ("JPEG", ref.size)
        diff = np.abs(np.asarray(got).astype(int) - np.asarray(ref).astype(int)).mean()
        assert diff < 4.0, diff  # two JPEG encodings of nearly the same pixels
        assert np.array_equal(r.patches, wr.patches)

"""Patch PCA: it finds the directions the patches vary along, survives a save/load, fits from
records, arrays or frames, and refuses what it cannot use with a message that says why."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import ModelSettings
from dinostream.embedding.embedder import Embedder
from dinostream.embedding.model_loader import load_model
from dinostream.embedding.patch_pca import PatchPCA, PatchPCAError, fit_patch_pca
from dinostream.embedding.pca_fit import main
from dinostream.ingest.source import Frame


def _low_rank(n: int, d: int, rank: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n vectors that vary (almost) only inside a random rank-dimensional subspace, and its basis."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(d, rank)))
    coeffs = rng.normal(size=(n, rank)) * np.linspace(5, 1, rank)
    return 3.0 + coeffs @ basis.T + 0.01 * rng.normal(size=(n, d)), basis.T


def test_pca_recovers_the_subspace_the_patches_vary_in() -> None:
    x, basis = _low_rank(2000, 48, rank=6)
    pca = fit_patch_pca([x], 6)

    assert (pca.dims, pca.in_dim, pca.samples) == (6, 48, 2000)
    assert pca.explained_ratio > 0.999
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(6), atol=1e-5)
    # the components span the true subspace: projecting them onto it loses nothing
    np.testing.assert_allclose(np.linalg.norm(pca.components @ basis.T, axis=1), 1.0, atol=1e-3)
    assert np.all(np.diff(pca.explained_variance) <= 0)  # by decreasing variance
    # round trip through the k dims reconstructs the vectors
    recon = pca.transform(x) @ pca.components + pca.mean
    assert np.abs(recon - x).max() < 0.1


def test_fewer_components_keep_less_variance_and_truncation_agrees_with_a_refit() -> None:
    x, _ = _low_rank(1000, 32, rank=8, seed=1)
    full = fit_patch_pca([x.reshape(10, 100, 32)], 8)  # (H, W, D) grids are accepted too
    three = fit_patch_pca([x], 3)

    assert three.explained_ratio < full.explained_ratio
    np.testing.assert_allclose(full.truncated(3).components, three.components, atol=1e-4)
    np.testing.assert_allclose(full.truncated(3).transform(x), three.transform(x), atol=1e-3)
    with pytest.raises(PatchPCAError, match="cannot use 9"):
        full.truncated(9)


def test_refits_are_deterministic_including_component_signs() -> None:
    x, _ = _low_rank(500, 16, rank=4, seed=2)
    a, b = fit_patch_pca([x], 4), fit_patch_pca([x[::-1].copy()], 4)
    np.testing.assert_allclose(a.components, b.components, atol=1e-5)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    x, _ = _low_rank(300, 24, rank=5, seed=3)
    pca = fit_patch_pca([x], 5, model="random:vits16", patch_pool=2)
    path = tmp_path / "data" / "patch_pca.npz"
    pca.save(path)
    back = PatchPCA.load(path)

    assert (back.model, back.patch_pool, back.samples, back.dims) == ("random:vits16", 2, 300, 5)
    assert np.array_equal(back.components, pca.components) and np.array_equal(back.mean, pca.mean)
    assert back.explained_ratio == pytest.approx(pca.explained_ratio)
    assert not list(path.parent.glob(".*tmp"))  # written atomically, nothing left behind


def test_load_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(PatchPCAError, match=r"no patch PCA at .*python -m dinostream.embedding.pca_fit"):
        PatchPCA.load(tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not an npz")
    with pytest.raises(PatchPCAError, match="not a readable patch PCA file"):
        PatchPCA.load(garbage)
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    with pytest.raises(PatchPCAError, match="not a dinostream-patch-pca/1 file"):
        PatchPCA.load(other)


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG")
    return buf.getvalue()


def _record(patches: np.ndarray, seq: int = 0) -> FrameEmbedding:
    d = 16
    v = np.ones(d, np.float16)
    return FrameEmbedding("cam-1", seq, 0.0, 0.0, "m-1", True, v, v, patches, _jpeg())


def test_fit_from_records_and_refusals() -> None:
    x, _ = _low_rank(4 * 14 * 14, 16, rank=3, seed=4)
    records = [_record(g, i) for i, g in enumerate(x.reshape(4, 14, 14, 16))]
    pca = fit_patch_pca(records, 3)
    assert (pca.model, pca.samples, pca.dims) == ("m-1", 4 * 196, 3)

    reduced = _record(np.zeros((2, 2, 3)))
    with pytest.raises(PatchPCAError, match="already PCA-reduced"):
        fit_patch_pca([reduced], 2)
    with pytest.raises(PatchPCAError, match="between 1 and the patch dimension 16"):
        fit_patch_pca(records, 17)
    with pytest.raises(PatchPCAError, match="no samples"):
        fit_patch_pca([], 2)
    with pytest.raises(PatchPCAError, match="different dimensions"):
        fit_patch_pca([np.zeros((4, 8)), np.zeros((4, 9))], 2)
    with pytest.raises(PatchPCAError, match="need an embedder"):
        fit_patch_pca([Frame("cam-1", 0, 0.0, 0.0, np.zeros((32, 32, 3), np.uint8))], 2)


def test_fit_from_frames_uses_the_embedders_pooled_patches() -> None:
    loaded = load_model("random:tiny", device="cpu")
    embedder = Embedder(loaded, ModelSettings(patch_pool=2))
    rng = np.random.default_rng(5)
    frames = [Frame("cam-1", i, 0.0, 0.0, rng.integers(0, 256, (64, 96, 3), np.uint8)) for i in range(5)]
    frames.append(Frame("cam-2", 0, 0.0, 0.0, rng.integers(0, 256, (32, 32, 3), np.uint8)))  # another shape

    pca = fit_patch_pca(frames, 4, embedder=embedder)

    assert (pca.in_dim, pca.dims, pca.model, pca.patch_pool) == (32, 4, "random:tiny", 2)
    assert pca.samples == 5 * (2 * 3) + 1  # 4x6 grids pooled to 2x3, and one 2x2 grid pooled to 1x1
    with pytest.raises(PatchPCAError, match="does not already apply one"):
        fit_patch_pca(frames, 2, embedder=Embedder(loaded, ModelSettings(patch_pca_dims=4), patch_pca=pca))


def test_command_line_fits_on_a_video_and_saves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dinostream.demo_video import make_video

    video = tmp_path / "cam.mp4"
    make_video(video, shots=2, shot_s=1.0, fps=4, size=(160, 96))
    out = tmp_path / "data" / "patch_pca.npz"
    args = [str(video), "--model", "random:tiny", "--device", "cpu", "--dims", "8", "--out", str(out), "--fps", "2"]

    assert main(args) == 0

    pca = PatchPCA.load(out)
    assert (pca.in_dim, pca.dims, pca.model) == (32, 8, "random:tiny")
    printed = capsys.readouterr().out
    assert "32 -> 8 dims" in printed and "from 4 frames" in printed and str(out) in printed
    assert main([str(tmp_path / "missing.mp4"), "--model", "random:tiny", "--dims", "8", "--out", str(out)]) == 1
    assert "not found" in capsys.readouterr().err


async def test_stage_loads_the_deployments_pca_from_the_data_dir(tmp_path: Path) -> None:
    from dinostream.core.settings import IngestSettings
    from dinostream.embedding.stage import EmbeddingStage

    async def sink(batch: list[FrameEmbedding]) -> None:
        return None

    loaded = load_model("random:tiny", device="cpu")
    x, _ = _low_rank(500, 32, rank=8, seed=6)
    fit_patch_pca([x], 8, model="random:tiny").save(tmp_path / "patch_pca.npz")

    stage = EmbeddingStage(loaded, ModelSettings(patch_pca_dims=4), IngestSettings(), sink, data_dir=tmp_path)
    assert stage.embedder.patch_pca is not None and stage.embedder.patch_dim == 4
    frame = Frame("cam-1", 0, 0.0, 0.0, np.zeros((32, 48, 3), np.uint8))
    assert stage.embedder.embed([frame])[0].patches.shape == (2, 3, 4)

    with pytest.raises(PatchPCAError, match=r"no patch PCA at .*elsewhere\.npz"):
        EmbeddingStage(
            loaded,
            ModelSettings(patch_pca_dims=4, patch_pca_file=Path("elsewhere.npz")),
            IngestSettings(),
            sink,
            data_dir=tmp_path,
        )

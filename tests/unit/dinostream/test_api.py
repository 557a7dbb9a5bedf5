"""The notebook API on the tiny DINOv3 the tests save: plain types, the service's behaviour."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dinostream
from dinostream.api import Engine


@pytest.fixture(scope="module")
def ds(tiny_model_dir: Path) -> Engine:
    return dinostream.Engine.load(str(tiny_model_dir), device="cpu")


def _picture(seed: int, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[0] // 16, size[1] // 16, 3), dtype=np.uint8)
    return np.kron(small, np.ones((16, 16, 1), dtype=np.uint8))  # big flat blocks, like objects


def test_embed_gives_unit_vectors_and_accepts_arrays_pil_and_paths(ds: Engine, tmp_path: Path) -> None:
    a = _picture(1)
    Image.fromarray(a).save(tmp_path / "a.png")
    v = ds.embed([a, Image.fromarray(a), tmp_path / "a.png", _picture(2, (64, 64))])
    assert v.shape == (4, 64) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(v[0], v[2], atol=1e-5)  # a path reads the same pixels
    assert ds.embed([]).shape == (0, 64)


def test_similarity_compare_matrix_and_best_match_agree(ds: Engine) -> None:
    a, b, c = _picture(1), _picture(2), _picture(3)
    noisy = np.clip(a.astype(int) + np.random.default_rng(0).integers(-6, 7, a.shape), 0, 255).astype(np.uint8)
    assert ds.similarity(a, noisy) > ds.similarity(a, b)
    m = ds.similarity_matrix([a, b, c])
    assert m.shape == (3, 3) and np.allclose(np.diag(m), 1.0, atol=1e-5) and np.allclose(m, m.T, atol=1e-6)
    match = ds.best_match(noisy, [b, a, c])
    assert match.index == 1 and match.scores.shape == (3,)
    verdict = ds.compare(a, noisy, threshold=match.score - 1e-3)
    assert verdict.same_subject and verdict.similarity == pytest.approx(match.score, abs=1e-5)
    with pytest.raises(ValueError, match="candidate"):
        ds.best_match(a, [])
    with pytest.raises(ValueError, match="uint8 RGB"):
        ds.embed([np.zeros((8, 8), np.float32)])


def test_video_scene_changes_phases_search_and_keyframes(ds: Engine, cut_video: tuple[Path, list[float]]) -> None:
    path, cuts = cut_video
    records = ds.video(path, fps=5)
    assert [r.seq for r in records] == list(range(len(records))) and len(records) >= 55
    changes = ds.scene_changes(records)
    assert [round(c.t) for c in changes] == [round(t) for t in cuts]
    assert all(c.kind in ("cut", "gradual") for c in changes)
    phases = ds.phases(records)
    assert phases and phases[0].start == 0.0 and phases[-1].end == pytest.approx(records[-1].pts)
    query = _frame(path, 40)  # a decoded frame of the first shot (25 fps: 1.6 s)
    hits = ds.search(query, records, k=3)
    assert len(hits) == 3 and hits[0].score >= hits[-1].score
    assert hits[0].t < cuts[0]  # the best hit is in the shot the query comes from
    keys = ds.keyframes(records, k=4)
    assert len(keys) == 4 and [k.pts for k in keys] == sorted(k.pts for k in keys)


def _frame(path: Path, index: int) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == index:
                return f.to_ndarray(format="rgb24")
    raise AssertionError("video too short")


def test_segment_selects_the_clicked_block(ds: Engine) -> None:
    img = np.full((128, 128, 3), 40, np.uint8)
    img[32:96, 32:96] = (230, 30, 30)
    seg = ds.segment(img, (0.5, 0.5))
    assert seg.mask.shape == seg.similarity.shape == (14, 14)  # the 224 preset's patch grid
    assert seg.mask[7, 7] and not seg.mask[0, 0] and not seg.mask[13, 13]


async def test_video_works_under_a_running_event_loop(ds: Engine, cut_video: tuple[Path, list[float]]) -> None:
    records = await asyncio.to_thread(ds.video, cut_video[0], fps=1)  # a thread: no loop
    assert records
    assert len(ds.video(cut_video[0], fps=1)) == len(records)  # here: a loop is running (as in Jupyter)

"""Aspect-preserving model input sizes: the source's shape within the preset's patch budget, in
whole cells; and the stage that resizes each source to its own size in the decoder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import IngestSettings, ModelSettings
from dinostream.embedding.input_size import PRESETS, grid_size, model_input_size
from dinostream.embedding.model_loader import load_model
from dinostream.embedding.stage import EmbeddingStage
from dinostream.ingest.av_source import VideoInfo, probe_source
from dinostream.ingest.source_plan import SourceSpec


@pytest.mark.parametrize(
    ("source", "image_size", "expected"),
    [
        ((1920, 1080), 224, (288, 160)),  # 16:9 -> 18x10 patches (180 of 196)
        ((1920, 1080), 448, (592, 336)),  # 37x21 (777 of 784)
        ((1920, 1080), 512, (656, 368)),  # 41x23 (943 of 1024; 43x24 would not fit)
        ((1280, 720), 448, (592, 336)),  # only the ratio matters
        ((1080, 1920), 448, (336, 592)),  # portrait: the same, transposed
        ((640, 480), 224, (256, 192)),  # 4:3 -> 16x12 = 192 of 196
        ((500, 500), 224, (224, 224)),  # square sources get the square
        ((3840, 1080), 224, (400, 112)),  # 32:9 -> 25x7 = 175
        ((8000, 100), 224, (1280, 16)),  # 80:1: one row of 80 patches, still not squashed
        ((40, 30), 224, (256, 192)),  # a small source is enlarged to the budget
    ],
    ids=["16:9-224", "16:9-448", "16:9-512", "720p-448", "9:16-448", "4:3-224", "square", "32:9", "80:1", "tiny"],
)
def test_preserve_fits_the_source_shape_into_the_patch_budget(
    source: tuple[int, int], image_size: int, expected: tuple[int, int]
) -> None:
    assert model_input_size(source, image_size=image_size, aspect="preserve") == expected


@pytest.mark.parametrize("preset", PRESETS)
def test_square_is_the_preset_whatever_the_source(preset: int) -> None:
    assert model_input_size((1920, 1080), image_size=preset, aspect="square") == (preset, preset)
    assert model_input_size((333, 777), image_size=preset, aspect="square") == (preset, preset)


def test_anamorphic_pixels_use_the_display_aspect_ratio() -> None:
    # PAL DVD widescreen: 720x576 stored, 64:45 sample aspect ratio, shown as 16:9.
    assert model_input_size((720, 576), image_size=448, aspect="preserve", sample_aspect_ratio=64 / 45) == (592, 336)
    # Unknown or broken metadata falls back to square pixels (5:4 here).
    assert model_input_size((720, 576), image_size=448, aspect="preserve", sample_aspect_ratio=0.0) == (496, 400)


@pytest.mark.parametrize("unit", [16, 32, 64], ids=["pool-1", "pool-2", "pool-4"])
@pytest.mark.parametrize("preset", PRESETS)
def test_every_source_gets_whole_cells_within_budget_and_close_to_its_shape(preset: int, unit: int) -> None:
    rng = np.random.default_rng(preset + unit)
    budget = preset * preset // (unit * unit)
    for _ in range(300):
        w, h = (int(v) for v in rng.integers(16, 4000, 2))
        out_w, out_h = model_input_size((w, h), image_size=preset, aspect="preserve", unit=unit)
        cw, ch = out_w // unit, out_h // unit
        assert out_w % unit == 0 and out_h % unit == 0 and cw >= 1 and ch >= 1
        assert cw * ch <= budget, (w, h)
        long, short = max(w, h) / min(w, h), min(cw, ch)
        if short > 1 and long <= budget / 4:  # not a one-row strip: the shape is kept within rounding
            assert abs(math.log(max(cw, ch) / short) - math.log(long)) <= math.log(1 + 0.5 / short) + 1e-9
        # and the budget is used: one more row on the short side would not fit
        bigger = (short + 1) * max(1, round((short + 1) * long))
        assert bigger > budget or max(cw, ch) == budget // short, (w, h)


def test_pooled_grids_of_preserved_inputs_never_exceed_the_square_presets() -> None:
    for preset in PRESETS:
        for pool in (1, 2, 4):
            square = grid_size((preset, preset), pool=pool)
            for source in ((1920, 1080), (1080, 1920), (1000, 999), (5000, 200)):
                size = model_input_size(source, image_size=preset, aspect="preserve", unit=16 * pool)
                gh, gw = grid_size(size, pool=pool)
                assert gh * gw <= square[0] * square[1]
                assert (gh * 16 * pool, gw * 16 * pool) == (size[1], size[0])  # no partial pooling windows


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"source_size": (0, 10), "image_size": 224, "aspect": "preserve"}, "positive"),
        ({"source_size": (10, 10), "image_size": 8, "aspect": "preserve"}, "at least the unit"),
        ({"source_size": (10, 10), "image_size": 224, "aspect": "stretch"}, "square' or 'preserve"),
    ],
    ids=["empty-source", "too-small-preset", "unknown-aspect"],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        model_input_size(**kwargs)


# --- the stage: each source decoded to its own input size --------------------------------------


async def test_stage_decodes_a_wide_source_to_its_aspect_preserving_size(tmp_path: Path) -> None:
    from dinostream.demo_video import make_video

    video = tmp_path / "wide.mp4"
    make_video(video, shots=1, shot_s=1.0, fps=4, size=(320, 180))
    assert probe_source(str(video), IngestSettings()) == VideoInfo((320, 180), 1.0)
    records: list[FrameEmbedding] = []

    async def sink(batch: list[FrameEmbedding]) -> None:
        records.extend(batch)

    loaded = load_model("random:tiny", device="cpu")
    settings = ModelSettings(model="random:tiny", aspect="preserve", max_wait_ms=1)
    stage = EmbeddingStage(loaded, settings, IngestSettings(sample_fps=4), sink)
    stage.start()
    try:
        await stage.pump(SourceSpec("wide", str(video)))
    finally:
        await stage.stop()

    assert stage.input_sizes == {"wide": (288, 160)}
    assert len(records) == 4 and all(r.patches.shape == (10, 18, 32) for r in records)
    square = EmbeddingStage(loaded, settings.model_copy(update={"aspect": "square"}), IngestSettings(), sink)
    assert await square.resize_target(SourceSpec("wide", str(video))) == (224, 224)


async def test_the_size_probe_opens_an_api_added_source_untrusted(tmp_path: Path) -> None:
    """Issue 17: the probe opened every source as trusted, so an untrusted URL got what decoding refuses."""
    from dinostream.demo_video import make_video
    from dinostream.ingest.url_policy import UrlRefused

    video = tmp_path / "outside" / "wide.mp4"
    video.parent.mkdir()
    make_video(video, shots=1, shot_s=1.0, fps=4, size=(320, 180))
    (tmp_path / "media").mkdir()

    async def sink(batch: list[FrameEmbedding]) -> None:
        pass

    loaded = load_model("random:tiny", device="cpu")
    ingest = IngestSettings(media_roots=[tmp_path / "media"])
    stage = EmbeddingStage(loaded, ModelSettings(model="random:tiny", aspect="preserve"), ingest, sink)
    assert await stage.resize_target(SourceSpec("wide", str(video))) == (288, 160)  # the operator's own
    with pytest.raises(UrlRefused, match="outside the media roots"):
        await stage.resize_target(SourceSpec("wide", str(video), trusted=False))

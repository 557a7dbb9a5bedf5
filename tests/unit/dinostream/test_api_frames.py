"""The notebook API on frame lists and the analyses issue 16 adds to `Engine`: pictures with a
frame rate or timestamps become timed records, one decode serves several analyses of a file, k
phases, anomaly, re-id and watchlist through the service's processors, quality, click-to-segment
at picture size, aspect, and errors and warnings in Python's words."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import dinostream
from dinostream.api import Engine, FrameList, NoFrameTimes, RandomWeights, records_similarity
from dinostream.core.errors import DinostreamError


@pytest.fixture(scope="module")
def ds(tiny_model_dir: Path) -> Engine:
    return dinostream.Engine.load(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def jpegs(cut_video: tuple[Path, list[float]], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The cut video's frames at 5 fps (every 5th of 25), saved as JPEG files, as a recap export."""
    out = tmp_path_factory.mktemp("frames")
    paths = []
    with av.open(str(cut_video[0])) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % 5 == 0:
                paths.append(out / f"frame_{i // 5:04d}.jpg")
                f.to_image().save(paths[-1], quality=90)
    return paths


def test_scene_changes_and_phases_on_a_list_of_jpeg_paths(
    ds: Engine, jpegs: list[Path], cut_video: tuple[Path, list[float]]
) -> None:
    cuts = cut_video[1]
    changes = ds.scene_changes([str(p) for p in jpegs], fps=5)
    assert [round(c.t) for c in changes] == [round(t) for t in cuts]
    same = ds.scene_changes(jpegs, timestamps=[i / 5 for i in range(len(jpegs))])
    assert [c.t for c in same] == [c.t for c in changes]
    phases = ds.phases(jpegs, fps=5, k=4)
    assert [p.label for p in phases] == ["P1", "P2", "P3", "P4"]
    assert [round(p.start) for p in phases[1:]] == [round(t) for t in cuts]
    assert all(p.end > p.start for p in phases) and phases[-1].end == pytest.approx((len(jpegs) - 1) / 5)


def test_a_list_without_times_is_numbered_at_1_fps_with_a_warning(ds: Engine, jpegs: list[Path]) -> None:
    with pytest.warns(NoFrameTimes, match="without fps or timestamps: numbered at 1 fps"):
        records = ds.frames(jpegs)
    assert [r.pts for r in records] == [float(i) for i in range(len(jpegs))]
    assert [r.seq for r in records] == list(range(len(jpegs))) and {r.stream for r in records} == {"frames"}
    # Records of pictures (pts 0 for all) are numbered too, with a warning, instead of giving [].
    flat = ds.embed_records(jpegs[:30])
    with pytest.warns(NoFrameTimes, match="times do not increase"):
        changes = ds.scene_changes(flat)
    assert changes and changes[0].t == pytest.approx(15, abs=1)  # the first cut, 3 s in at 5 fps: picture 15
    with pytest.warns(NoFrameTimes):
        phases = ds.phases(flat, k=2)
    assert all(p.end > p.start for p in phases)


def test_frame_times_are_checked(ds: Engine, jpegs: list[Path]) -> None:
    with pytest.raises(ValueError, match="3 times for 4 frames"):
        ds.frames(jpegs[:4], timestamps=[0, 1, 2])
    with pytest.raises(ValueError, match=r"timestamps must increase: timestamps\[2\]"):
        ds.frames(jpegs[:3], timestamps=[0, 1, 1])
    with pytest.raises(ValueError, match="fps must be a frame rate > 0"):
        ds.frames(jpegs[:3], fps=0)
    with pytest.raises(ValueError, match="not both"):
        FrameList(jpegs[:3], fps=2, timestamps=[0, 1, 2])
    with pytest.raises(ValueError, match="a single one"):
        FrameList(str(jpegs[0]), fps=2)
    with pytest.raises(ValueError, match="timestamps are for a list of pictures"):
        ds.scene_changes(jpegs[0], timestamps=[0.0])
    with pytest.raises(TypeError, match="not a mix"):
        ds.scene_changes([*ds.frames(jpegs[:2], fps=1), jpegs[2]])


def test_one_decode_serves_several_analyses_of_a_file(ds: Engine, cut_video: tuple[Path, list[float]]) -> None:
    path = cut_video[0]
    ds.clear_cache()
    at5 = ds.video(path, fps=5)
    again = ds.video(path, fps=5)
    assert all(a is b for a, b in zip(at5, again, strict=True))  # the same records: no second decode
    at1 = ds.video(path, fps=1)  # subsampled from the 5 fps records
    assert all(any(r.cls is k.cls for k in at5) for r in at1)
    ds.clear_cache()
    fresh = ds.video(path, fps=1)
    assert [r.pts for r in at1] == pytest.approx([r.pts for r in fresh])
    assert [r.seq for r in at1] == list(range(len(at1)))
    # Each kept record's jump covers the whole second since the last kept one, as a 1 fps decode
    # sees it: the cut's step, one frame before the first new sample, stands out.
    for cut in cut_video[1]:
        for recs in (at1, fresh):
            (first_new,) = [r for r in recs if cut - 1e-6 <= r.pts < cut + 1 - 1e-6]
            assert first_new.jump is not None and first_new.jump.dominates(2.0)
            assert abs(first_new.jump.t - cut) <= 0.05, (first_new.jump, cut)
    # scene_changes then phases on the path: one decode at the higher rate (2 fps), phases at 1 fps from it.
    ds.clear_cache()
    ds.scene_changes(path)
    kept = ds._decoded
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.phases(path)
    assert ds._decoded is kept and kept is not None and kept[1] == 2.0


def test_records_similarity_is_normalised_and_matches_the_pictures(ds: Engine, jpegs: list[Path]) -> None:
    records = ds.frames(jpegs[:6], fps=5)
    m = records_similarity(records)
    assert m.shape == (6, 6) and np.allclose(np.diag(m), 1.0, atol=1e-3) and np.allclose(m, m.T, atol=1e-6)
    np.testing.assert_allclose(ds.similarity_matrix(records), m)
    np.testing.assert_allclose(ds.similarity_matrix(jpegs[:6]), m, atol=2e-3)
    assert Engine.records_similarity(records[:2], records).shape == (2, 6)


def test_aspect_square_gives_a_square_grid(tiny_model_dir: Path) -> None:
    picture = np.zeros((96, 192, 3), np.uint8)
    square = Engine.load(str(tiny_model_dir), device="cpu", aspect="square")
    preserve = Engine.load(str(tiny_model_dir), device="cpu")
    assert square.embed_records([picture])[0].patches.shape[:2] == (14, 14)
    gh, gw = preserve.embed_records([picture])[0].patches.shape[:2]
    assert gw > gh
    with pytest.raises(ValueError, match="aspect"):
        Engine.load(str(tiny_model_dir), device="cpu", aspect="round")


def test_random_weights_warn_and_errors_speak_python(tmp_path: Path) -> None:
    with pytest.warns(RandomWeights, match="random weights"):
        Engine.load("random:tiny", device="cpu")
    with pytest.raises(DinostreamError) as err:
        Engine.load(str(tmp_path / "missing"), device="cpu")
    assert "--model" not in str(err.value) and 'Engine.load("random:vits16")' in str(err.value)


def test_phases_say_why_a_short_clip_is_one_phase(ds: Engine, jpegs: list[Path]) -> None:
    with pytest.warns(UserWarning, match=r"under twice the shortest phase \(min_phase_s=10 s\).*pass k="):
        phases = ds.phases(jpegs, fps=5)
    assert len(phases) == 1 and phases[0].start == 0.0 and phases[0].end == pytest.approx((len(jpegs) - 1) / 5)
    with pytest.raises(ValueError, match="k=100 phases need at least 100 frames"):
        ds.phases(jpegs[:10], fps=5, k=100)


def test_quality_through_the_engine(ds: Engine) -> None:
    rng = np.random.default_rng(0)
    clean = np.kron(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), np.ones((10, 10, 1), np.uint8))
    dark = (clean // 16).astype(np.uint8)
    q, qd = ds.quality(clean), ds.quality(Image.fromarray(dark))
    assert qd.score < q.score and "dark" in qd.reasons and q.reasons == ()


def test_segment_with_several_clicks_at_picture_size(ds: Engine) -> None:
    img = np.full((128, 128, 3), 40, np.uint8)
    img[32:96, 32:96] = (230, 30, 30)
    old = ds.segment(img, (0.5, 0.5))  # the one-click call as before: the grid mask is there
    assert old.mask.shape == (14, 14) and old.mask[7, 7] and not old.mask[0, 0]
    assert old.picture_mask.shape == (128, 128) and old.picture_mask[64, 64] and not old.picture_mask[2, 2]
    seg = ds.segment(img, points=[(0.45, 0.5), (0.55, 0.5)], negative=[(0.05, 0.05)])
    assert seg.picture_mask[64, 64] and not seg.picture_mask[5, 5]
    for png in (seg.overlay_png(), seg.heatmap_png()):
        assert Image.open(io.BytesIO(png)).size == (128, 128)
    with pytest.raises(ValueError, match="segment needs a click"):
        ds.segment(img)


# --- anomaly, re-id and watchlist: two cameras as frame lists (see tests/integration/test_analyze_cli.py)

_W, _H, _FPS = 320, 240, 2


def _room(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.empty((_H, _W, 3), np.float32)
    img[:] = rng.uniform(40, 215, 3)
    img[int(_H * rng.uniform(0.55, 0.75)) :] = rng.uniform(20, 235, 3)
    for _ in range(5):
        x0, y0 = rng.integers(0, _W - 60), rng.integers(0, _H - 60)
        img[y0 : y0 + rng.integers(30, 60), x0 : x0 + rng.integers(30, 60)] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _thing(size: int = 72) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    out = np.empty((size, size, 3), np.uint8)
    checker = ((x // 12 + y // 12) % 2).astype(bool)
    out[checker], out[~checker] = (230, 40, 40), (250, 230, 40)
    return out


def _camera(rooms: list[tuple[np.ndarray, float]], walk: tuple[float, float], seconds: float) -> list[np.ndarray]:
    thing = _thing()
    side = thing.shape[0]
    rng = np.random.default_rng(len(rooms))
    frames = []
    for i in range(int(seconds * _FPS)):
        t = i / _FPS
        img = [r for r, start in rooms if start <= t][-1].copy()
        start, dur = walk
        if start <= t < start + dur:
            x = int(-side + (_W + side) * (t - start) / dur)
            x0, x1 = max(x, 0), min(x + side, _W)
            if x1 > x0:
                img[84 : 84 + side, x0:x1] = thing[:, x0 - x : x1 - x]
        frames.append(np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8))  # a camera's noise
    return frames


@pytest.fixture(scope="module")
def cameras() -> list[FrameList]:
    a = _camera([(_room(1), 0), (_room(2), 40)], (25, 8), 60)
    b = _camera([(_room(3), 0)], (25, 8), 40)
    return [FrameList(a, fps=_FPS, stream="cam-a"), FrameList(b, fps=_FPS, stream="cam-b")]


def test_anomaly_reid_and_watchlist_through_the_engine(ds: Engine, cameras: list[FrameList]) -> None:
    anomalies = ds.anomalies(cameras[1])
    assert anomalies and all(a.stream == "cam-b" for a in anomalies)
    assert any(24.0 <= a.t_start <= 33.0 for a in anomalies), anomalies
    (link,) = ds.reid(cameras)
    assert (link.stream, link.matched_stream) == ("cam-b", "cam-a") and 25.0 <= link.t_start <= 33.0
    seen = ds.watch(cameras, {"red case": _thing()})
    assert sorted(s.stream for s in seen) == ["cam-a", "cam-b"]
    assert all(s.label == "red case" and 25.0 <= s.t_start <= 33.0 for s in seen)
    # One camera given as its pictures (a list of arrays) is one video, not a camera per picture.
    (alone,) = ds.watch(list(cameras[1].pictures), [("red case", _thing())], fps=_FPS)
    assert alone.stream == "frames" and 25.0 <= alone.t_start <= 33.0
    with pytest.raises(ValueError, match="at least one exemplar"):
        ds.watch(cameras, {})


# --- dinostream analyze on pictures


def _analyze(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict], str]:
    import json

    from dinostream.cli import main

    rc = main(["analyze", *argv])
    out, err = capsys.readouterr()
    return rc, [json.loads(line) for line in out.splitlines() if line.strip()], err


def test_analyze_takes_pictures_with_fps_or_timestamps(
    tiny_model_dir: Path,
    jpegs: list[Path],
    cut_video: tuple[Path, list[float]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    common = ["--model", str(tiny_model_dir), "--device", "cpu", "--no-progress"]
    rc, events, _ = _analyze([*map(str, jpegs), "--fps", "5", *common], capsys)
    assert rc == 0
    cuts = [round(e["t"]) for e in events if e["type"] == "scene_change"]
    assert cuts == [round(t) for t in cut_video[1]] and {e["stream"] for e in events} == {"frames"}
    times = tmp_path / "times.txt"
    times.write_text("\n".join(str(i / 5) for i in range(len(jpegs))))
    rc, again, _ = _analyze([*map(str, jpegs), "--timestamps", str(times), *common], capsys)
    assert rc == 0 and [round(e["t"]) for e in again if e["type"] == "scene_change"] == cuts
    rc, untimed, _ = _analyze([*map(str, jpegs[:20]), *common], capsys)
    assert rc == 0 and "without --fps or --timestamps: numbered at 1 fps" in caplog.text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["{video}"], "video files or pictures (one video's frames), not both"),
        (["--timestamps", "{missing}"], "--timestamps"),
        (["--fps", "2", "--timestamps", "{times}"], "not both"),
    ],
    ids=["mixed", "no-timestamps-file", "fps-and-timestamps"],
)
def test_analyze_refuses_bad_picture_inputs(
    extra: list[str],
    message: str,
    jpegs: list[Path],
    cut_video: tuple[Path, list[float]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    times = tmp_path / "t.txt"
    times.write_text("0\n1\n")
    subs = {"video": str(cut_video[0]), "missing": str(tmp_path / "nope.txt"), "times": str(times)}
    argv = [str(jpegs[0]), str(jpegs[1]), *(a.format(**subs) for a in extra), "--model", "random:tiny"]
    rc, _, err = _analyze(argv, capsys)
    assert rc != 0 and message in err


def test_compare_and_best_match_answer_as_the_rest_api_does(ds: Engine, jpegs: list[Path]) -> None:
    same, other = ds.compare(jpegs[0], jpegs[1], threshold=0.5), ds.compare(jpegs[0], jpegs[-1], threshold=0.99)
    assert same.distance == pytest.approx(1 - same.similarity) and same.percent == pytest.approx(
        max(0, same.similarity) * 100, abs=0.01
    )
    assert same.confidence in ("low", "medium", "high") and "threshold 0.50" in same.explanation
    assert not other.same_subject and "different subjects" in other.explanation
    match = ds.best_match(jpegs[0], [jpegs[-1], jpegs[1], jpegs[0]])
    assert match.ranking[0] == 2 and sorted(match.ranking) == [0, 1, 2]
    assert list(match.scores[match.ranking]) == sorted(match.scores, reverse=True)

"""`dinostream analyze` on a generated video with known cuts: JSON lines on stdout, near the cuts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
from PIL import Image


def test_analyze_reports_known_cuts(tiny_model_dir: Path, cut_video: tuple[Path, list[float]]) -> None:
    video, cuts = cut_video
    cp = subprocess.run(
        [sys.executable, "-m", "dinostream", "analyze", str(video), "--model", str(tiny_model_dir)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert cp.returncode == 0, cp.stderr
    events = [json.loads(line) for line in cp.stdout.splitlines()]
    assert all({"type", "stream", "t", "score"} <= e.keys() for e in events)
    found = [e["t"] for e in events if e["type"] == "scene_change"]
    assert len(found) == len(cuts), f"cuts {cuts}, found {found}"
    for want, got in zip(cuts, found, strict=True):
        assert abs(want - got) <= 0.75
    assert {e["stream"] for e in events} == {video.stem}


# -- every event type from `analyze`, on two generated camera videos --------------------------

_W, _H, _FPS = 320, 240, 10


def _room(seed: int) -> np.ndarray:
    """A room of its own: a wall colour, a floor and large furniture blocks."""
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
    """A red and yellow checkered case."""
    y, x = np.mgrid[0:size, 0:size]
    out = np.empty((size, size, 3), np.uint8)
    checker = ((x // 12 + y // 12) % 2).astype(bool)
    out[checker], out[~checker] = (230, 40, 40), (250, 230, 40)
    return out


def _camera(path: Path, rooms: list[tuple[np.ndarray, float]], walk: tuple[float, float], seconds: float) -> None:
    """`rooms`: (picture, from second); the thing walks across from `walk[0]` for `walk[1]` s."""
    thing = _thing()
    side = thing.shape[0]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=_FPS)
        s.width, s.height, s.pix_fmt, s.options = _W, _H, "yuv420p", {"g": "10"}
        for i in range(int(seconds * _FPS)):
            t = i / _FPS
            img = [r for r, start in rooms if start <= t][-1].copy()
            start, dur = walk
            if start <= t < start + dur:
                x = int(-side + (_W + side) * (t - start) / dur)
                x0, x1 = max(x, 0), min(x + side, _W)
                if x1 > x0:
                    img[84 : 84 + side, x0:x1] = thing[:, x0 - x : x1 - x]
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode())


def test_analyze_reports_every_event_type_across_two_cameras(tiny_model_dir: Path, tmp_path: Path) -> None:
    """cam-a: a room, the thing walks across at 25 s, a cut to another room at 40 s. cam-b: a third
    room, the thing walks across at 25 s. The watchlist holds a picture of the thing."""
    _camera(tmp_path / "cam-a.mp4", [(_room(1), 0), (_room(2), 40)], (25, 8), 60)
    _camera(tmp_path / "cam-b.mp4", [(_room(3), 0)], (25, 8), 40)
    Image.fromarray(_thing()).save(tmp_path / "thing.png")
    cp = subprocess.run(
        [
            sys.executable, "-m", "dinostream", "analyze", str(tmp_path / "cam-a.mp4"), str(tmp_path / "cam-b.mp4"),
            "--watch", f"red case={tmp_path / 'thing.png'}", "--model", str(tiny_model_dir), "--device", "cpu",
        ],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    events = [json.loads(line) for line in cp.stdout.splitlines()]  # stdout: JSON lines only
    opened = {(e["type"], e["stream"]) for e in events if e["status"] in ("open", "closed")}
    assert {t for t, _ in opened} == {"scene_change", "anomaly", "phase", "reid", "watchlist"}, opened
    (cut,) = [e for e in events if e["type"] == "scene_change"]
    assert (cut["stream"], abs(cut["t"] - 40.0) <= 1.0) == ("cam-a", True)
    phases_a = [(e["t_start"], e["t_end"]) for e in events if e["type"] == "phase" and e["status"] == "closed"]
    assert any(abs(start - 40.0) <= 2.0 for start, _ in phases_a), phases_a
    (link,) = [e for e in events if e["type"] == "reid" and e["status"] == "open"]
    assert (link["stream"], link["details"]["matched_stream"]) == ("cam-b", "cam-a")
    assert 25.0 <= link["t_start"] <= 33.0
    seen = [e for e in events if e["type"] == "watchlist" and e["status"] == "open"]
    assert sorted(e["stream"] for e in seen) == ["cam-a", "cam-b"]
    assert all(25.0 <= e["t_start"] <= 33.0 and e["boxes"][0]["label"] == "red case" for e in seen)
    # Progress goes to stderr, never into the JSON on stdout.
    assert "analyze cam-a.mp4" in cp.stderr and "frames/s" in cp.stderr


def test_analyze_index_makes_a_recording_searchable(
    tiny_model_dir: Path, cut_video: tuple[Path, list[float]], tmp_path: Path
) -> None:
    from dinostream.sinks.qdrant_edge_index import QdrantEdgeIndex

    video, cuts = cut_video
    argv = [sys.executable, "-m", "dinostream", "analyze", str(video), "--model", str(tiny_model_dir)]
    argv += ["--device", "cpu", "--fps", "2", "--index", "--data-dir", str(tmp_path / "data")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for _ in range(2):  # a second run overwrites: ids are deterministic
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
        assert cp.returncode == 0, cp.stderr
    assert "index cuts.mp4" in cp.stderr and "frames/s" in cp.stderr  # the progress line
    events = [json.loads(line) for line in cp.stdout.splitlines()]
    index = QdrantEdgeIndex(tmp_path / "data" / "qdrant", dim=64)
    try:
        assert index.count_frames() == 24  # 12 s at 2 fps, once
        assert index.count_events() == len({e["id"] for e in events}) >= len(cuts)
    finally:
        index.close()

"""`dinostream analyze` on a generated video with known cuts: JSON lines on stdout, near the cuts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


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

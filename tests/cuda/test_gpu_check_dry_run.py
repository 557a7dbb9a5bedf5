"""bench/gpu_check.py runs end to end without CUDA (a dry run on the CPU with tiny sizes) and
writes the JSON the GPU run will write. Not marked `cuda`: it runs in the default suite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_gpu_check_dry_run_writes_every_section(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "bench/gpu_check.py",
            "--out",
            str(tmp_path),
            "--device",
            "cpu",
            "--budget-s",
            "120",
            "--tests-cap-s",
            "90",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "gpu_check.json").read_text())

    assert data["schema"] == "dinostream-gpu-check/1" and data["mode"] == "cpu-dry-run"
    assert data["complete"] is True and data["errors"] == []
    for key in ("env", "ceiling", "tests", "host", "bench", "latency", "goals", "skipped", "plan", "pipeline"):
        assert data[key], key
    assert data["ceiling"]["tflops"] > 0
    assert data["host"]["thumbnail_ms"] > 0 and data["host"]["host_ceiling_fps"] > 0
    # the CUDA tests were collected and each said why it did not run here
    tests = data["tests"]
    assert tests["skipped"] >= 10 and tests["failed"] == tests["errors"] == 0
    assert all("CUDA" in c["msg"] for c in tests["cases"])
    first = data["bench"][0]
    assert (first["model"], first["image_size"], first["mode"]) == ("random:tiny", 32, "eager")
    assert first["flops_per_frame"] > 0
    for point in first["points"]:
        for key in ("batch", "stage_fps", "forward_fps", "stage_vs_forward", "tflops", "of_ceiling", "dropped"):
            assert key in point, key
        assert point["dropped"] == 0
    assert {r["load"] for r in data["latency"]} == {0.5, 0.9}
    assert all(r["p99_ms"] >= r["p50_ms"] > 0 for r in data["latency"])
    assert [g["name"] for g in data["goals"]][:2] == ["vits16_448_stage_fps", "vits16_224_stage_fps"]
    assert any(s["what"] == "compiled mode" for s in data["skipped"])  # degraded, and said so
    log = (tmp_path / "gpu_check.log").read_text()
    assert "== bench tiny@32 fp32 eager" in log and "pytest -m cuda output" in log

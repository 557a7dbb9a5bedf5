"""bench/density.py's quick mode end to end: broker, roles and websocket client, with the stand-in
and the real architecture; it must print its two summary lines with numbers (nothing is timed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench" / "density.py"


@pytest.mark.timeout(1500)
def test_density_bench_quick_mode_prints_its_summary() -> None:
    cp = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=1400,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert cp.returncode == 0, f"{cp.stdout[-3000:]}\n{cp.stderr[-3000:]}"
    lines = cp.stdout.strip().splitlines()
    assert re.fullmatch(r"streams sustained: \d+", lines[-2]), lines[-6:]
    assert re.fullmatch(r"cpu ms/frame outside the model: \d+\.\d \(at N=\d+\)", lines[-1]), lines[-6:]
    # Both runs happened, each with a row of CPU per role.
    assert re.search(r"^== standin \(ZERO-COST MODEL STAND-IN", cp.stdout, re.M)
    assert re.search(r"^== random:vits16 \(on cpu\)", cp.stdout, re.M)
    rows = re.findall(
        r"cpu ms/frame: ingest +([\d.]+) +worker +([\d.]+) +index +([\d.]+) +gateway +([\d.]+) +broker", cp.stdout
    )
    assert len(rows) == 2
    # Each run measured its roles idle first, and each row says the share of that a frame carries.
    assert len(re.findall(r"^  idle, no streams \(3 s\), cpu ms/s: ingest +[\d.]+ .* = +[\d.]+$", cp.stdout, re.M)) == 2
    assert (
        len(re.findall(r"of which the roles' idle cost [\d.]+ .* per frame beyond it -?[\d.]+$", cp.stdout, re.M)) == 2
    )

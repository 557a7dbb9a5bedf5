"""bench/hops.py end to end on a few frames: stand-in records through the worker, index and
gateway hops, with the worker's split by part and its state line (nothing is timed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench" / "hops.py"


@pytest.mark.timeout(600)
def test_hops_bench_prints_every_hop_and_the_worker_s_parts(tmp_path: Path) -> None:
    records = tmp_path / "records.pkl"
    args = [sys.executable, str(BENCH), "--streams", "2", "--warmup", "4", "--frames", "6", "--records", str(records)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for run in ("writes the records", "reads them back"):
        cp = subprocess.run(args, capture_output=True, text=True, timeout=500, env=env)
        assert cp.returncode == 0, f"{run}: {cp.stdout[-3000:]}\n{cp.stderr[-3000:]}"
        assert records.exists(), run
        parts = re.search(r"^worker by part \(ms/frame\): (.*)$", cp.stdout, re.M)
        assert parts is not None, cp.stdout[-2000:]
        names = re.findall(r"([\w:]+(?: \([^)]*\))?) [\d.]+", parts.group(1))
        assert {"anomaly", "scene_change", "quality", "pass:ObjectPass"} <= set(names), names
        assert "host (decode, state, dispatch)" in names, names
        assert re.search(r"^worker state: \d+ KB written per save", cp.stdout, re.M)
        assert re.search(r"^worker state of \S+ by processor \(KB of JSON\):.*\banomaly \d+", cp.stdout, re.M)
        last = cp.stdout.strip().splitlines()[-1]
        assert re.fullmatch(r"cpu ms/frame: worker [\d.]+  index [\d.]+  gateway [\d.]+  = [\d.]+", last), last

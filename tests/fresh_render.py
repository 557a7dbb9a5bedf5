"""Rendering a generated video in a fresh interpreter, for the generators' determinism tests.

libx264 may encode the same frames a little differently on a later call in one process, so a
generator's bytes are compared between videos made by fresh processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]


def render_elsewhere(module: str, make: str, path: Path, seed: int) -> dict[str, object]:
    """`module.make(path, seed=seed)` of a 16 s 160x90 video with 1.5-6 s shots, run by a fresh
    interpreter; its ground truth (`to_dict()`)."""
    code = (
        f"import json, sys; from {module} import {make}; "
        f"t = {make}(sys.argv[1], seed=int(sys.argv[2]), duration=16.0, size=(160, 90), shot_s=(1.5, 6.0)); "
        "print(json.dumps(t.to_dict()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path), str(seed)],
        capture_output=True,
        text=True,
        check=True,
        cwd=_ROOT,
        # ~4 s normally. Once under CI load a test of this kind ran past pytest-timeout's 300 s and
        # its SIGALRM broke pytest's report of it: a hang here now fails in its own words, with
        # the child's output, well before that.
        timeout=120,
    )
    return dict(json.loads(done.stdout))

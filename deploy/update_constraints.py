"""Write deploy/constraints.txt: dinostream's runtime dependency closure at the versions installed in
this environment (run it from the venv where `make test` passed). torch, triton and the nvidia-*
wheels are left out: the Dockerfile pins them (TORCH_VERSION from TORCH_INDEX_URL).

    .venv/bin/python deploy/update_constraints.py
"""

from __future__ import annotations

import importlib.metadata as md
import re
from pathlib import Path

from packaging.requirements import Requirement

SKIP = re.compile(r"^(torch|triton|nvidia-.*|dinostream)$")
HEADER = """\
# Exact versions of dinostream's runtime dependencies for the images (pip install -c), the set the
# test suite passed with. torch and its CUDA wheels are pinned in the Dockerfile (TORCH_VERSION and
# TORCH_INDEX_URL). Refresh: deploy/update_constraints.py, from a venv where `make test` passed.
"""


def closure() -> dict[str, str]:
    seen: dict[str, str] = {}
    expanded: set[tuple[str, str]] = set()
    # (requirement, the extra it was listed under: its marker is evaluated with that extra)
    todo = [(Requirement(r), "") for r in md.requires("dinostream") or []]
    while todo:
        req, extra = todo.pop()
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if SKIP.match(name) or (req.marker and not req.marker.evaluate({"extra": extra})):
            continue
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            continue
        seen[name] = dist.version
        for wanted in ("", *req.extras):
            if (name, wanted) not in expanded:
                expanded.add((name, wanted))
                todo += [(Requirement(r), wanted) for r in dist.requires or []]
    return seen


if __name__ == "__main__":
    pins = closure()
    out = Path(__file__).with_name("constraints.txt")
    out.write_text(HEADER + "".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
    print(f"{out}: {len(pins)} pins")

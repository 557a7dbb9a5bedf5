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
    todo = [Requirement(r) for r in md.requires("dinostream") or [] if "extra ==" not in r]
    while todo:
        req = todo.pop()
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if name in seen or SKIP.match(name) or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            continue
        seen[name] = dist.version
        requires = dist.requires or []
        todo += [Requirement(r) for r in requires if "extra ==" not in r]
        for extra in req.extras:
            todo += [Requirement(r) for r in requires if f'extra == "{extra}"' in r]
    return seen


if __name__ == "__main__":
    pins = closure()
    out = Path(__file__).with_name("constraints.txt")
    out.write_text(HEADER + "".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
    print(f"{out}: {len(pins)} pins")

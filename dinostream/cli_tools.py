"""`dinostream quality`: the picture utilities on the command line (issue 16).

A thin shell over `dinostream.analytics.quality` (the measures `/api/v1/images/quality` and
`Engine.quality` answer); no model is loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

TABLE_COLUMNS = ("score", "sharpness", "brightness", "contrast", "noise", "blockiness")


def add_quality(p: argparse.ArgumentParser) -> None:
    p.add_argument("picture", nargs="+", type=Path, help="pictures to measure (.jpg, .png, ...)")
    p.add_argument("--json", action="store_true", help="one JSON object per picture and line instead of a table")


def run_quality(args: argparse.Namespace, out: TextIO | None = None) -> None:
    """Measure every picture first (a bad one stops the run with PictureError naming it), then print."""
    from dinostream.analytics.quality import measure_quality  # numpy and PIL only when asked
    from dinostream.ingest.pictures import read_rgb

    out = out or sys.stdout
    rows = [(str(path), measure_quality(read_rgb(path)).to_dict()) for path in args.picture]
    if args.json:
        for name, q in rows:
            out.write(json.dumps({"picture": name, **q}) + "\n")
        return
    width = max(len("picture"), *(len(name) for name, _ in rows))
    out.write(f"{'picture':<{width}}  " + "  ".join(f"{c:>10}" for c in TABLE_COLUMNS) + "  reasons\n")
    for name, q in rows:
        cells = "  ".join(f"{q[c]:>10.4g}" for c in TABLE_COLUMNS)
        reasons = "; ".join(q["reasons"]) or "-"
        out.write(f"{name:<{width}}  {cells}  {reasons}\n")

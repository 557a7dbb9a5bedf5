"""`dinostream quality` and `dinostream segment`: the picture utilities on the command line (issue 16).

Thin shells: `quality` over `dinostream.analytics.quality` (the measures `/api/v1/images/quality`
and `Engine.quality` answer, no model loaded); `segment` over `Engine.segment` (what
`/api/v1/segment` answers for an upload).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import TextIO, cast

from dinostream.core.errors import DinostreamError

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
        reasons = "; ".join(cast("list[str]", q["reasons"])) or "-"
        out.write(f"{name:<{width}}  {cells}  {reasons}\n")


def _point(text: str) -> tuple[float, float]:
    """argparse type of --point/--negative: "x,y" with x and y in 0..1 (shares of the width and height)."""
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a point is x,y in 0..1 (e.g. 0.4,0.6), got {text!r}") from None
    if not (0 <= x <= 1 and 0 <= y <= 1):
        raise argparse.ArgumentTypeError(f"point {text!r} is outside the picture: x and y must be in 0..1")
    return x, y


def add_segment(p: argparse.ArgumentParser) -> None:
    p.add_argument("picture", type=Path, help="the picture to segment")
    p.add_argument(
        "--point", action="append", type=_point, required=True, metavar="X,Y", help="a positive click (0..1); repeat"
    )
    p.add_argument("--negative", action="append", type=_point, default=[], metavar="X,Y", help="what to leave out")
    p.add_argument("--threshold", type=float, help="similarity a patch needs (default analytics.reid.click_threshold)")
    p.add_argument("--mask", type=Path, metavar="PNG", help="write the picture-size mask (white inside)")
    p.add_argument("--overlay", type=Path, metavar="PNG", help="write the mask drawn over the picture")
    p.add_argument("--heatmap", type=Path, metavar="PNG", help="write the similarity heatmap over the picture")
    p.add_argument(
        "--model",
        default="random:vits16",
        help="checkpoint directory, .pth file or Hub id (default random:vits16: untrained, masks mean nothing)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N (default: cuda when there is one)")


def run_segment(args: argparse.Namespace, out: TextIO | None = None) -> None:
    """Segment the picture at the clicks with `Engine.segment`, write the PNGs asked for and print
    a JSON summary (box, area, threshold, grid, the files written). Warnings (random weights, no
    GPU) go to stderr as one line each."""
    import numpy as np
    from PIL import Image

    from dinostream.api import Engine
    from dinostream.ingest.pictures import read_rgb

    out = out or sys.stdout
    picture = read_rgb(args.picture)  # a bad picture is named before the model loads
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine = Engine.load(args.model, device=args.device)
    for w in caught:
        print(f"dinostream: warning: {w.message}", file=sys.stderr)
    try:
        seg = engine.segment(picture, points=args.point, negative=args.negative, threshold=args.threshold)
    except ValueError as e:  # a threshold or click the library refuses, in its words
        raise DinostreamError(f"segment: {e}") from None
    written: dict[str, str] = {}
    if args.mask:
        Image.fromarray(seg.picture_mask.astype(np.uint8) * 255).save(args.mask, format="PNG")
        written["mask"] = str(args.mask)
    if args.overlay:
        args.overlay.write_bytes(seg.overlay_png())
        written["overlay"] = str(args.overlay)
    if args.heatmap:
        args.heatmap.write_bytes(seg.heatmap_png())
        written["heatmap"] = str(args.heatmap)
    summary = {
        "picture": str(args.picture),
        "width": int(picture.shape[1]),
        "height": int(picture.shape[0]),
        "grid": list(seg.mask.shape),
        "threshold": seg.threshold,
        "area": round(seg.area, 4),
        "box": seg.box.to_dict(),
        "points": [list(p) for p in seg.points],
        "negative": [list(p) for p in seg.negative],
        "written": written,
    }
    out.write(json.dumps(summary) + "\n")

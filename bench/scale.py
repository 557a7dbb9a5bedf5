"""How many streams the separate roles sustain: now `bench/density.py`, which runs the same topology
and also reports each role's CPU per frame. This keeps the old command working:

    python bench/scale.py --model random:tiny --streams 4,8,16
    # = python bench/density.py --models random:tiny --model-streams 4,8,16
    python bench/scale.py --model standin --streams 8,16,24    # the zero-cost model stand-in

Every other flag (--fps, --device, --image-size, --warmup, --measure, --video-size, ...) passes through.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from density import STANDIN, main  # noqa: E402

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="random:vits16")
    ap.add_argument("--streams", default="1,2,4", help="growing stream counts, comma separated")
    args, rest = ap.parse_known_args()
    counts = "--streams" if args.model == STANDIN else "--model-streams"
    sys.argv = [str(Path(__file__).with_name("density.py")), "--models", args.model, counts, args.streams, *rest]
    asyncio.run(main())

"""Decode cost of sampling: CPU seconds per sampled frame, dinostream's AvSource against a notebook loop.

Generates a 1080p25 H.264 file (libx264, keyframe every second, moving textured content that
does not compress to nothing), then samples it at --fps (default 1) to --size (224x224) with:

- naive: what a notebook does: decode every frame, convert each to a full-resolution RGB
  ndarray, keep the first frame of each sampling interval, resize it with PIL;
- dinostream: `make_source(...).frames()` with IngestSettings(decode=--decode, default "auto":
  keyframes only once the keyframe interval is known to be no longer than the sampling step;
  resizing in FFmpeg's scaler).

CPU time is `time.process_time()` of the whole process, so decoder threads count. The two
alternate, --repeats times each; medians and their ratio are printed.

    python bench/decode.py                    # 20 s of 1080p25, 3 repeats, ~1-2 min on 2 cores
    python bench/decode.py --seconds 30 --repeats 5 --decode all
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

from dinostream.core.settings import IngestSettings
from dinostream.ingest.av_source import make_source

WIDTH, HEIGHT, RATE = 1920, 1080, 25


def make_video(path: Path, seconds: float, gop: int) -> None:
    """1080p25 H.264: a textured background panning under moving bars, a keyframe every `gop` frames."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (HEIGHT, WIDTH * 2, 3), dtype=np.uint8)
    texture = (texture // 4 + np.linspace(0, 180, WIDTH * 2, dtype=np.uint8)[None, :, None]).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {
            "preset": "superfast",
            "crf": "23",
            "g": str(gop),
            "keyint_min": str(gop),
            "sc_threshold": "0",
        }
        for i in range(int(seconds * RATE)):
            x = (i * 16) % WIDTH
            image = np.ascontiguousarray(texture[:, x : x + WIDTH])
            bar = (i * 24) % (WIDTH - 200)
            image[:, bar : bar + 200] = 255 - image[:, bar : bar + 200]
            image[(i * 9) % (HEIGHT - 120) :][:120] //= 2
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def naive(path: Path, fps: float, size: tuple[int, int]) -> int:
    """The notebook loop: every frame decoded and converted to full-size RGB; 1 per interval kept."""
    kept, next_t = 0, 0.0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="rgb24")
            if frame.time is not None and frame.time + 1e-6 >= next_t:
                Image.fromarray(image).resize(size, Image.BILINEAR)
                kept += 1
                next_t += 1.0 / fps
    return kept


def dinostream(path: Path, fps: float, size: tuple[int, int], decode: str) -> tuple[int, int]:
    """AvSource through make_source(...).frames(); returns (sampled, decoded)."""
    settings = IngestSettings(sample_fps=fps, decode=decode)  # type: ignore[arg-type]
    source = make_source(str(path), "bench", settings, size)

    async def run() -> int:
        return sum([1 async for _ in source.frames()])

    return asyncio.run(run()), source.stats.decoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the generated 1080p25 video")
    parser.add_argument("--gop", type=int, default=25, help="keyframe interval in frames (25 = 1 s)")
    parser.add_argument("--fps", type=float, default=1.0, help="sampling rate")
    parser.add_argument("--size", default="224x224", help="sampled frame size WxH")
    parser.add_argument("--decode", default="auto", choices=["auto", "all", "keyframes"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--video", type=Path, help="use this file instead of generating one")
    args = parser.parse_args()
    print("$", shlex.join([Path(sys.executable).name, *sys.argv]), flush=True)
    size = tuple(int(v) for v in args.size.split("x"))
    assert len(size) == 2

    with tempfile.TemporaryDirectory() as tmp:
        path = args.video or Path(tmp) / "bench-1080p25.mp4"
        if args.video is None:
            started = time.monotonic()
            make_video(path, args.seconds, args.gop)
            print(
                f"generated {path.name}: {args.seconds:g} s 1080p25, GOP {args.gop}, "
                f"{path.stat().st_size / 1e6:.1f} MB in {time.monotonic() - started:.1f} s"
            )
        cpu: dict[str, list[float]] = {"naive": [], "dinostream": []}
        frames: dict[str, int] = {}
        decoded = 0
        for _ in range(args.repeats):
            for name in ("naive", "dinostream"):  # alternating, so drift hits both
                before = time.process_time()
                if name == "naive":
                    frames[name] = naive(path, args.fps, size)
                else:
                    frames[name], decoded = dinostream(path, args.fps, size, args.decode)
                cpu[name].append(time.process_time() - before)

    print(
        f"sampling at {args.fps:g} fps to {size[0]}x{size[1]}; CPU seconds of the whole process, "
        f"median of {args.repeats}"
    )
    per = {}
    for name, runs in cpu.items():
        per[name] = statistics.median(runs) / max(frames[name], 1)
        extra = f", decoded {decoded} frames (decode={args.decode})" if name == "dinostream" else ", decoded all"
        print(
            f"  {name:<10} {statistics.median(runs):6.2f} s for {frames[name]} frames = "
            f"{per[name] * 1000:7.1f} ms/frame  (runs: {', '.join(f'{r:.2f}' for r in runs)}){extra}"
        )
    print(f"  ratio      naive / dinostream = {per['naive'] / per['dinostream']:.1f}x less CPU per sampled frame")


if __name__ == "__main__":
    main()

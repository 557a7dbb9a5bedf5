"""Decode cost of sampling: CPU per sampled frame, dinostream's AvSource against a notebook loop, at 1080p and 720p.

For each of --sizes it generates an H.264 file at 25 fps (libx264, a keyframe every --gop frames,
moving textured content that does not compress to nothing), then samples it at --fps (default 1)
to --to (224x224) with:

- naive: what a notebook does: decode every frame, convert each to a full-resolution RGB
  ndarray, keep the first frame of each sampling interval, resize it with PIL;
- dinostream: `make_source(...).frames()` with IngestSettings(decode=--decode, default "auto":
  keyframes only once the keyframe interval is known to be no longer than the sampling step;
  resizing in FFmpeg's scaler; --hwaccel asks for hardware decoding, falling back to software
  with a warning where there is none; --threads sets IngestSettings.decode_threads, default the
  service's: 1, the stream's own decode thread; 0 lets FFmpeg add a thread per core).

CPU time is `time.process_time()` of the whole process, so decoder threads count. The two
alternate, --repeats times each; medians and their ratio are printed, then one line per size.

    python bench/decode.py                          # 20 s at 1080p and 720p, 3 repeats, ~2-3 min on 2 cores
    python bench/decode.py --sizes 1920x1080 --repeats 5 --decode all
    python bench/decode.py --bitrate 6M             # a camera-like bit rate instead of constant quality
    python bench/decode.py --decode all --threads 0 # every frame, with FFmpeg's frame threads
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

RATE = 25


def make_video(path: Path, seconds: float, gop: int, size: tuple[int, int] = (1920, 1080), bitrate: int = 0) -> None:
    """H.264 at 25 fps: a textured background panning under moving bars, a keyframe every `gop` frames.

    Constant quality (crf 23) unless `bitrate` (bits/s) caps it like a camera's encoder.
    """
    width, height = size
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (height, width * 2, 3), dtype=np.uint8)
    texture = (texture // 4 + np.linspace(0, 180, width * 2, dtype=np.uint8)[None, :, None]).astype(np.uint8)
    scale = width / 1920  # motion in the same proportion of the picture at every size
    pan, bar_w, bar_v = max(1, round(16 * scale)), max(1, round(200 * scale)), max(1, round(24 * scale))
    band_h, band_v = max(1, round(120 * scale)), max(1, round(9 * scale))
    options = {"preset": "superfast", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
    if bitrate:
        options |= {"b": str(bitrate), "maxrate": str(bitrate), "bufsize": str(bitrate)}
    else:
        options["crf"] = "23"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = options
        for i in range(int(seconds * RATE)):
            x = (i * pan) % width
            image = np.ascontiguousarray(texture[:, x : x + width])
            bar = (i * bar_v) % (width - bar_w)
            image[:, bar : bar + bar_w] = 255 - image[:, bar : bar + bar_w]
            image[(i * band_v) % (height - band_h) :][:band_h] //= 2
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


def dinostream(
    path: Path, fps: float, size: tuple[int, int], decode: str, hwaccel: str | None, threads: int | None = None
) -> tuple[int, int]:
    """AvSource through make_source(...).frames(); returns (sampled, decoded)."""
    extra: dict[str, object] = {"hwaccel": hwaccel} if hwaccel else {}
    if threads is not None:
        extra["decode_threads"] = threads
    settings = IngestSettings(sample_fps=fps, decode=decode, **extra)  # type: ignore[arg-type]
    source = make_source(str(path), "bench", settings, size)

    async def run() -> int:
        return sum([1 async for _ in source.frames()])

    return asyncio.run(run()), source.stats.decoded


def _size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def _bits(text: str) -> int:
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    return int(float(text.rstrip("kKmM")) * scale)


def compare(label: str, path: Path, args: argparse.Namespace, to: tuple[int, int]) -> str:
    """Run naive and dinostream alternately on one file, print their medians; return the summary line."""
    cpu: dict[str, list[float]] = {"naive": [], "dinostream": []}
    frames: dict[str, int] = {}
    decoded = 0
    for _ in range(args.repeats):
        for name in ("naive", "dinostream"):  # alternating, so drift hits both
            before = time.process_time()
            if name == "naive":
                frames[name] = naive(path, args.fps, to)
            else:
                frames[name], decoded = dinostream(path, args.fps, to, args.decode, args.hwaccel, args.threads)
            cpu[name].append(time.process_time() - before)
    print(
        f"{label}: sampling at {args.fps:g} fps to {to[0]}x{to[1]}; CPU seconds of the whole process, "
        f"median of {args.repeats}"
    )
    per = {}
    for name, runs in cpu.items():
        per[name] = statistics.median(runs) / max(frames[name], 1)
        threads = "default (1 up to 1080p)" if args.threads is None else args.threads
        extra = (
            f", decoded {decoded} frames (decode={args.decode}, threads={threads})"
            if name == "dinostream"
            else ", decoded all"
        )
        print(
            f"  {name:<10} {statistics.median(runs):6.2f} s for {frames[name]} frames = "
            f"{per[name] * 1000:7.1f} ms/frame  (runs: {', '.join(f'{r:.2f}' for r in runs)}){extra}"
        )
    ratio = per["naive"] / per["dinostream"]
    print(f"  ratio      naive / dinostream = {ratio:.1f}x less CPU per sampled frame", flush=True)
    return (
        f"{label}: {per['dinostream'] * 1000:.1f} ms CPU per sampled frame, {ratio:.1f}x less than decoding every frame"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1920x1080,1280x720", help="video sizes WxH, comma separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each generated video")
    parser.add_argument("--gop", type=int, default=25, help="keyframe interval in frames (25 = 1 s)")
    parser.add_argument("--bitrate", default="", help="cap the bit rate (e.g. 6M) instead of crf 23")
    parser.add_argument("--fps", type=float, default=1.0, help="sampling rate")
    parser.add_argument("--to", default="224x224", help="sampled frame size WxH")
    parser.add_argument("--decode", default="auto", choices=["auto", "all", "keyframes"])
    parser.add_argument(
        "--threads", type=int, default=None, help="IngestSettings.decode_threads (default: its default)"
    )
    parser.add_argument("--hwaccel", default=None, help="IngestSettings.hwaccel for dinostream (e.g. cuda)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--video", type=Path, help="use this file instead of generating one (--sizes is ignored)")
    args = parser.parse_args()
    print("$", shlex.join([Path(sys.executable).name, *sys.argv]), flush=True)
    to = _size(args.to)
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        videos: list[tuple[str, Path]] = []
        if args.video is not None:
            videos.append((args.video.name, args.video))
        for text in [] if args.video is not None else args.sizes.split(","):
            size = _size(text)
            path = Path(tmp) / f"bench-{size[1]}p{RATE}.mp4"
            started = time.monotonic()
            make_video(path, args.seconds, args.gop, size, _bits(args.bitrate) if args.bitrate else 0)
            print(
                f"generated {path.name}: {args.seconds:g} s {size[0]}x{size[1]} at {RATE} fps, GOP {args.gop}, "
                f"{path.stat().st_size * 8 / args.seconds / 1e6:.1f} Mbit/s, in {time.monotonic() - started:.1f} s",
                flush=True,
            )
            videos.append((f"{size[0]}x{size[1]}", path))
        for label, path in videos:
            summary.append(compare(label, path, args, to))
    for line in summary:
        print(line)


if __name__ == "__main__":
    main()

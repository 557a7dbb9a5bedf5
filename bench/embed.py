"""The DINOv3 stage against transformers' pipeline, in one process, on the same decoded 1080p frames.

    python bench/embed.py                       # CPU or the first GPU, ViT-S/16 at 224, random weights
    python bench/embed.py --device cuda --batch 32 --frames 256 --repeats 5

Both paths start from the same decoded 1080p frames (PyAV, yuv420p) and use the same model
object (`random:vits16` by default: the real ViT-S/16 architecture, seeded random weights):

  pipeline  transformers.pipeline("image-feature-extraction", batch_size=--batch) fed PIL images of
            the 1080p frames (converted before the clock starts), with a DINOv3-style image
            processor on transformers' PIL backend (DINOv3ViTImageProcessor needs torchvision):
            resize to 224x224 (bilinear), rescale 1/255, ImageNet mean/std, float32 on the host.
  project   the dinostream path: the decoder's scaler (swscale) turns each 1080p frame into a
            224x224 RGB uint8 array, frames go through the MicroBatcher (max_batch=--batch) to the
            Embedder: uint8 to the device, normalised there, fp16 records (CLS, mean patch, grid,
            thumbnail).

Printed: frames/s of each (median of --repeats runs, interleaved so both see the same machine
load), their ratio, the model's forward pass alone at the same batch size (the ceiling any
pipeline can reach on this device), per-frame latency p50/p99 through the MicroBatcher at a
steady load (frames fed at a fixed rate below capacity), peak RSS during each path (and peak
VRAM on CUDA), and the encoded record size against Kafka's default 1 MB limit.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dinostream.core.records import FrameEmbedding  # noqa: E402
from dinostream.core.settings import KafkaSettings, ModelSettings  # noqa: E402
from dinostream.embedding.batcher import MicroBatcher  # noqa: E402
from dinostream.embedding.embedder import Embedder, record_size_bound  # noqa: E402
from dinostream.embedding.model_loader import LoadedModel, load_model  # noqa: E402
from dinostream.ingest.resize import rgb_array  # noqa: E402
from dinostream.ingest.source import Frame  # noqa: E402

if TYPE_CHECKING:
    import av

# PyAV (and the demo video writer) only where frames are decoded: bench/gpu_check.py reuses this
# module's pieces on machines without it.

SOURCE_SIZE = (1920, 1080)
T = TypeVar("T")


def dinov3_pil_processor(size: int, mean: tuple[float, ...], std: tuple[float, ...]):  # type: ignore[no-untyped-def]
    """DINOv3ViTImageProcessor's settings on transformers' PIL backend (no torchvision needed)."""
    from transformers.image_processing_backends import PilBackend
    from transformers.image_utils import PILImageResampling

    class DINOv3ViTImageProcessorPil(PilBackend):
        resample = PILImageResampling.BILINEAR
        image_mean = list(mean)
        image_std = list(std)
        size = {"height": 224, "width": 224}
        do_resize = True
        do_rescale = True
        do_normalize = True

    return DINOv3ViTImageProcessorPil(size={"height": size, "width": size})


class PeakRSS:
    """Peak resident set size of this process while a block runs, sampled from /proc every 5 ms."""

    def __init__(self) -> None:
        self.peak = 0

    @staticmethod
    def now() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:  # not Linux: the process-wide high-water mark instead
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    @contextmanager
    def watch(self) -> Iterator[None]:
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                self.peak = max(self.peak, self.now())
                stop.wait(0.005)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join()
            self.peak = max(self.peak, self.now())


def decoded_1080p(n: int, workdir: Path) -> list[av.VideoFrame]:
    """n decoded 1080p frames (yuv420p, as a camera or file decoder hands them over)."""
    import av

    from dinostream.demo_video import make_video

    video = workdir / "bench-1080p.mp4"
    fps = 25
    make_video(video, shots=max(1, n // 25 + 1), shot_s=1.0, fps=fps, size=SOURCE_SIZE, seed=3)
    frames: list[av.VideoFrame] = []
    with av.open(str(video)) as c:
        for frame in c.decode(video=0):
            frames.append(frame)
            if len(frames) == n:
                break
    return frames


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timed:
    """Wall-clock frames/s and process CPU milliseconds per frame of one run."""

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.wall = self.cpu = 0.0

    @contextmanager
    def clock(self) -> Iterator[Timed]:
        cpu, wall = time.process_time(), time.perf_counter()
        yield self
        self.wall, self.cpu = time.perf_counter() - wall, time.process_time() - cpu

    @property
    def fps(self) -> float:
        return self.frames / self.wall

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.frames * 1000


def on_worker_thread(fn: Callable[[], T]) -> T:
    """Run `fn` on a fresh thread, as the stage runs its model on its executor's thread.

    Every path computes on the same kind of thread: on this CPU build the main thread's OpenMP
    team was measured to spend 2-4x the CPU time of a worker thread's on the same forward pass
    (under load), which would otherwise be charged to whichever path runs on the main thread.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench") as ex:
        return ex.submit(fn).result()


def run_pipeline(pipe, images: list, batch: int) -> Timed:  # type: ignore[no-untyped-def]
    """transformers' pipeline over PIL images of the 1080p frames."""

    def call() -> Timed:
        with Timed(len(images)).clock() as t:
            out = pipe(images, batch_size=batch)
        assert len(out) == len(images)
        return t

    return on_worker_thread(call)


def scaler(size: tuple[int, int]) -> Callable[[av.VideoFrame], np.ndarray]:
    """The decoder's scaler (swscale) from a decoded frame to the model's input size, RGB uint8."""
    w, h = size

    def scale(f: av.VideoFrame) -> np.ndarray:
        return rgb_array(f.reformat(width=w, height=h, format="rgb24", interpolation="BILINEAR"))

    return scale


async def run_project(
    embedders: list[Embedder],
    frames: Sequence[Any],
    batch: int,
    *,
    prepare: Callable[[Any], np.ndarray] | None = None,
    rate: float | None = None,
    max_wait_ms: float = 5.0,
) -> tuple[Timed, MicroBatcher, list[FrameEmbedding]]:
    """Frames through the MicroBatcher and the Embedder(s), each embedder with two batches in flight.

    `prepare` turns each frame into the model's input (the scaler for decoded frames, run in a
    thread like a source's decode thread while the model computes); without it the frames are
    model-sized RGB arrays already. With `rate`, frames are fed at that many per second (a
    steady load) instead of as fast as the stage takes them.
    """
    records: list[FrameEmbedding] = []
    done = asyncio.Event()

    async def sink(batch_records: list[FrameEmbedding]) -> None:
        records.extend(batch_records)
        if len(records) == len(frames):
            done.set()

    batcher = MicroBatcher(embedders, max_batch=batch, max_wait_s=max_wait_ms / 1000, queue_size=2 * batch, sink=sink)
    batcher.start()
    with Timed(len(frames)).clock() as t:
        start = time.perf_counter()
        for i, f in enumerate(frames):
            if rate is not None:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            image = f if prepare is None else await asyncio.to_thread(prepare, f)
            await batcher.put(Frame("bench", i, float(getattr(f, "time", None) or i / 25), time.time(), image))
        await done.wait()
    await batcher.stop()
    return t, batcher, records


def model_only(loaded: LoadedModel, batch: int, size: int, n: int) -> Timed:
    """The forward pass alone on ready-made normalised tensors (in the compute dtype, as the stage
    hands them over): the work both paths share."""
    half = loaded.device.type == "cuda" and loaded.dtype != torch.float32
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    x = x.to(loaded.device, loaded.dtype if half else torch.float32)
    autocast = torch.autocast("cuda", dtype=loaded.dtype) if half else nullcontext()
    steps = max(1, n // batch)

    def call() -> Timed:
        with torch.inference_mode(), autocast:
            loaded.model(pixel_values=x)
            sync(loaded.device)
            with Timed(steps * batch).clock() as t:
                for _ in range(steps):
                    loaded.model(pixel_values=x)
                sync(loaded.device)
        return t

    return on_worker_thread(call)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--batch", type=int, default=8, help="batch size of both paths (default 8)")
    p.add_argument("--frames", type=int, default=16, help="decoded 1080p frames per run (default 16)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved timed runs of each path (default 3)")
    p.add_argument("--model", default="random:vits16", help="model spec (default random:vits16)")
    p.add_argument("--image-size", type=int, default=224, help="model input side (default 224)")
    p.add_argument("--compile", action="store_true", help="torch.compile the stage's device step")
    p.add_argument("--latency-frames", type=int, default=0, help="frames of the steady-load run (default 1.5x frames)")
    args = p.parse_args(argv)
    if min(args.batch, args.frames, args.repeats) < 1:
        p.error("--batch, --frames and --repeats must be at least 1")

    loaded = load_model(args.model, device=args.device)
    dev = loaded.device
    settings = ModelSettings(
        model=args.model, image_size=args.image_size, aspect="square", max_batch=args.batch, compile=args.compile
    )
    limit = KafkaSettings().max_message_bytes
    embedder = Embedder(loaded, settings, max_message_bytes=limit)
    size = embedder.input_size(SOURCE_SIZE)
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{torch.get_num_threads()} threads"
    params = sum(p.numel() for p in loaded.model.parameters()) / 1e6
    dtype = str(loaded.dtype).removeprefix("torch.")
    print(f"device {dev} ({where}), torch {torch.__version__}, model {loaded.model_id} ({params:.1f} M params)")
    print(f"input {size[0]}x{size[1]}, batch {args.batch}, compute {dtype}{', compiled' if args.compile else ''}")
    print(f"load average at start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")

    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    # On CUDA the pipeline gets the model in the stage's compute dtype (as transformers' docs run it).
    pipe_model = loaded.model if dev.type != "cuda" else copy.deepcopy(loaded.model).to(loaded.dtype)
    pipe = pipeline(
        "image-feature-extraction",
        model=pipe_model,
        image_processor=dinov3_pil_processor(args.image_size, loaded.image_mean, loaded.image_std),
        device=dev,
    )

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        frames = decoded_1080p(args.frames, Path(tmp))
        print(f"decoded {len(frames)} frames of {SOURCE_SIZE[0]}x{SOURCE_SIZE[1]} in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    images = [f.to_image() for f in frames]  # the pipeline's input; not counted in its time
    to_pil_ms = (time.perf_counter() - t0) / len(frames) * 1000

    # Warm-up (first-call allocations, oneDNN primitives, compilation) outside the clock.
    t0 = time.perf_counter()
    warm = frames[: min(len(frames), args.batch)]
    run_pipeline(pipe, images[: len(warm)], args.batch)
    scale = scaler(size)
    asyncio.run(run_project([embedder], warm, args.batch, prepare=scale))
    print(f"warm-up{' and compilation' if args.compile else ''}: {time.perf_counter() - t0:.1f} s")

    pipe_runs: list[Timed] = []
    proj_runs: list[Timed] = []
    alone_runs: list[Timed] = []
    rss_pipe, rss_proj = PeakRSS(), PeakRSS()
    vram_pipe = vram_proj = 0
    records: list[FrameEmbedding] = []
    for _ in range(args.repeats):  # interleaved: the three see the same machine load
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        with rss_pipe.watch():
            pipe_runs.append(run_pipeline(pipe, images, args.batch))
        if dev.type == "cuda":
            vram_pipe = max(vram_pipe, torch.cuda.max_memory_allocated(dev))
            torch.cuda.reset_peak_memory_stats(dev)
        with rss_proj.watch():
            timed, _, records = asyncio.run(run_project([embedder], frames, args.batch, prepare=scale))
        proj_runs.append(timed)
        if dev.type == "cuda":
            vram_proj = max(vram_proj, torch.cuda.max_memory_allocated(dev))
        alone_runs.append(model_only(loaded, args.batch, args.image_size, len(frames)))

    def med(runs: list[Timed], attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs)

    n_lat = args.latency_frames or max(args.batch, len(frames) * 3 // 2)
    lat_frames = (frames * (n_lat // len(frames) + 1))[:n_lat]
    rate = 0.6 * med(proj_runs, "fps")
    _, batcher, _ = asyncio.run(
        run_project([embedder], lat_frames, args.batch, prepare=scale, rate=rate, max_wait_ms=settings.max_wait_ms)
    )
    stats = batcher.stats()
    sizes = [len(r.encode()) for r in records]
    bound = record_size_bound(settings, loaded.hidden_size, loaded.model_id)

    def fmt(runs: list[Timed]) -> str:
        fps = ", ".join(f"{r.fps:.2f}" for r in runs)
        return f"{med(runs, 'fps'):7.2f} frames/s {med(runs, 'cpu_ms'):6.0f} CPU-ms/frame  (runs: {fps} frames/s)"

    def ms(s: float | None) -> str:
        return "n/a" if s is None else f"{s * 1000:.0f} ms"

    mib = 1024 * 1024
    pf, sf = med(pipe_runs, "fps"), med(proj_runs, "fps")
    pc, sc, ac = med(pipe_runs, "cpu_ms"), med(proj_runs, "cpu_ms"), med(alone_runs, "cpu_ms")
    print()
    print(f"1080p -> {size[0]}x{size[1]}, {len(frames)} frames per run, {args.repeats} interleaved runs, medians:")
    print(f"  transformers pipeline  {fmt(pipe_runs)}")
    print(f"  dinostream stage       {fmt(proj_runs)}")
    print(f"  model forward alone    {fmt(alone_runs)}  <- normalised tensors ready-made")
    print(f"  ratio stage / pipeline: {sf / pf:.2f}x frames/s, {pc / sc:.2f}x less CPU per frame")
    print(
        f"  beyond the forward pass (CPU time, robust to other load on the machine): pipeline +{pc - ac:.0f} "
        f"ms/frame ({(pc - ac) / pc:.0%} of its CPU), stage +{sc - ac:.0f} ms/frame ({(sc - ac) / sc:.0%})"
    )
    print(f"  (1080p frame -> PIL image for the pipeline, not counted above: {to_pil_ms:.1f} ms/frame)")
    print(
        f"steady load: {len(lat_frames)} frames fed at {rate:.2f} frames/s (60% of the stage's median), "
        f"max_wait {settings.max_wait_ms:g} ms: latency enqueue -> embedding p50 {ms(stats.latency_p50_s)}, "
        f"p99 {ms(stats.latency_p99_s)}, mean batch {stats.mean_batch_size:.1f}"
    )
    print(
        f"peak RSS: during pipeline runs {rss_pipe.peak / mib:.0f} MiB, during stage runs {rss_proj.peak / mib:.0f} MiB"
        " (the whole process: model, decoded frames, both paths' objects)"
    )
    if dev.type == "cuda":
        print(
            f"peak VRAM (torch.cuda.max_memory_allocated): pipeline {vram_pipe / mib:.0f} MiB, "
            f"stage {vram_proj / mib:.0f} MiB"
        )
    g = records[0].patches.shape
    print(
        f"encoded record: {min(sizes):,}-{max(sizes):,} bytes (grid {g[0]}x{g[1]}x{g[2]} fp16 + JPEG thumbnail); "
        f"bound {bound:,}; Kafka default limit {limit:,}"
    )
    print(f"load average at end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The GPU stage, proven and measured in one prepared run: CUDA tests, then the bench, into one JSON.

    make gpu-check OUT=dir                          # what a machine with CUDA runs (under 8 minutes)
    make gpu-check OUT=dir GPU_BUDGET=240 GPU_CHECK_ARGS=--no-tests   # a shorter rerun of the bench
    python bench/gpu_check.py --out dir             # the same; without CUDA: a dry run on the CPU

Writes `dir/gpu_check.json` (results, rewritten after every section, so an interrupted run
still leaves what it measured), `dir/gpu_check.log` and `dir/cuda-tests.xml` (JUnit):

  env       torch / CUDA / GPU, the SDPA backends enabled
  ceiling   a large bf16 matrix product (8192^3) on the same GPU: the TFLOP/s every figure is put against
  tests     `pytest -m cuda tests/cuda` in a subprocess, per-test outcome (capped at 200 s)
  host      CPU cost per frame of what is not the model (thumbnail: PIL's, or the JPEG of one shrunk
            on the device as CUDA does; record; batcher) and the frames/s the host allows
  bench     per model (random DINOv3 weights, the released architectures), input size, precision
            (bf16, fp16) and mode (eager, compiled): a batch sweep of the whole stage (uint8 frames
            at model size in host memory -> MicroBatcher -> Embedder -> fp16 records in host
            memory), the model's forward alone on ready device tensors at each batch, achieved
            TFLOP/s, peak VRAM; transformers' pipeline on the same GPU for the ratio
  latency   per-frame latency p50/p99 through the MicroBatcher at 50% and 90% of the stage's
            measured capacity, max wait at its default
  goals     the issue's targets against the figures
  skipped   what the time budget left out, and why (the run degrades by dropping sizes, in
            priority order, instead of timing out)

Frames are generated with numpy (no video decoding), models built from `DINOv3ViTConfig`, so the
only packages needed are torch, transformers, numpy, pillow and pydantic (bench/gpu_wheels.txt
says how to carry the last where it is missing). Without CUDA every step runs on the CPU with
tiny sizes (`random:tiny` at 32 and 64 pixels, batches 2 and 4), which proves the script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import logging
import os
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def use_source_tree() -> None:
    """Import the stage from this checkout where the project is not installed (a bare GPU machine):
    `dinostream.<stage>` maps to the top-level folders, as setuptools' package-dir does."""
    import dinostream

    if importlib.util.find_spec("dinostream.embedding") is None:
        dinostream.__path__.append(str(ROOT))


use_source_tree()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.embed import dinov3_pil_processor, model_only, on_worker_thread, run_pipeline, run_project  # noqa: E402
from dinostream.core.settings import ModelSettings  # noqa: E402
from dinostream.embedding.embedder import Embedder  # noqa: E402
from dinostream.embedding.model_loader import (  # noqa: E402
    LoadedModel,
    compute_dtype,
    copy_module,
    load_model,
    prepare_for_inference,
)
from dinostream.ingest.source import Frame  # noqa: E402

log = logging.getLogger("gpu_check")

SCHEMA = "dinostream-gpu-check/1"
# (model, input side), in priority order: the goals' model first.
CUDA_MODELS = [("vits16", 224), ("vits16", 448), ("vitb16", 224), ("vitb16", 448), ("vitl16", 224)]
CUDA_BATCHES = [16, 32, 64, 128, 256, 512]
CPU_MODELS = [("tiny", 32), ("tiny", 64)]
CPU_BATCHES = [2, 4]
GOALS = [  # name, target, what it is measured on
    ("vits16_448_stage_fps", 6000.0, "ViT-S/16 at 448, bf16, whole stage, best batch"),
    ("vits16_224_stage_fps", 20000.0, "ViT-S/16 at 224, bf16, whole stage, best batch"),
    ("vits16_224_stage_vs_forward", 0.9, "stage / forward alone at the stage's best batch (within 10%)"),
    ("vits16_224_stage_vs_pipeline", 3.0, "stage / transformers pipeline on the same GPU"),
    ("vits16_224_p99_ms_at_50pct", 50.0, "per-frame latency p99 at 50% load, max wait at its default (at most)"),
]


# --- the run's record ----------------------------------------------------------------------------


class Report:
    """The JSON being built, rewritten after each section, and the clock against the budget."""

    def __init__(self, out: Path, budget_s: float, mode: str) -> None:
        self.path = out / "gpu_check.json"
        self.t0 = time.monotonic()
        self.budget_s = budget_s
        self.data: dict[str, Any] = {
            "schema": SCHEMA,
            "mode": mode,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "budget_s": budget_s,
            "elapsed_s": 0.0,
            "complete": False,
            "env": {},
            "ceiling": {},
            "tests": {},
            "host": {},
            "bench": [],
            "latency": [],
            "goals": [],
            "skipped": [],
            "errors": [],
        }

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.t0)

    def skip(self, what: str, why: str) -> None:
        log.info("skipped %s: %s", what, why)
        self.data["skipped"].append({"what": what, "why": why})

    def error(self, what: str, exc: BaseException) -> None:
        log.exception("%s failed", what, exc_info=exc)
        self.data["errors"].append({"what": what, "error": f"{type(exc).__name__}: {str(exc)[:500]}"})

    def save(self) -> None:
        self.data["elapsed_s"] = round(time.monotonic() - self.t0, 1)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.path)

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        """A section whose failure is recorded, not fatal; the JSON is saved after it."""
        t = time.monotonic()
        log.info("== %s (%.0f s left)", name, self.left())
        try:
            yield
        except Exception as e:  # one broken section must not cost the others' figures
            self.error(name, e)
        finally:
            log.info("== %s done in %.1f s", name, time.monotonic() - t)
            self.save()


# --- sections --------------------------------------------------------------------------------------


def environment(dev: torch.device) -> dict[str, Any]:
    import transformers

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "device": str(dev),
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        env |= {
            "gpu": props.name,
            "capability": f"{props.major}.{props.minor}",
            "sms": props.multi_processor_count,
            "memory_gib": round(props.total_memory / 2**30, 1),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "sdpa_flash": torch.backends.cuda.flash_sdp_enabled(),
            "sdpa_mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
            "sdpa_cudnn": torch.backends.cuda.cudnn_sdp_enabled(),
            "bf16_supported": torch.cuda.is_bf16_supported(),
        }
    else:
        env["threads"] = torch.get_num_threads()
    return env


def matmul_ceiling(dev: torch.device) -> dict[str, Any]:
    """TFLOP/s of a large matrix product: bf16 8192^3 on CUDA (fp32 512^3 on the CPU)."""
    cuda = dev.type == "cuda"
    n, dtype, reps = (8192, torch.bfloat16, 10) if cuda else (512, torch.float32, 5)
    g = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(n, n, device=dev, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=dev, dtype=dtype, generator=g)
    for _ in range(3):
        a @ b
    sync(dev)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(dev)
    s = (time.perf_counter() - t) / reps
    return {"dtype": str(dtype).removeprefix("torch."), "n": n, "ms": round(s * 1e3, 3), "tflops": 2 * n**3 / s / 1e12}


def cuda_tests(out: Path, cap_s: float) -> dict[str, Any]:
    """`pytest -m cuda tests/cuda` in a subprocess, killed at `cap_s`; per-test outcomes from JUnit."""
    xml = out / "cuda-tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "tests/cuda", "-q", "-p", "no:cacheprovider", "-rA"]
    cmd += [f"--junitxml={xml}", "-o", "addopts=", "--timeout=120"]  # a hung test costs 2 minutes, not all
    t = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=cap_s)
        rc, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        rc = None
        text = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        text += f"\n(killed after the {cap_s:.0f} s cap)"
    log.info("pytest -m cuda output:\n%s", text[-20000:])
    result: dict[str, Any] = {"returncode": rc, "seconds": round(time.monotonic() - t, 1), "cap_s": cap_s}
    result |= junit_summary(xml) if xml.exists() else {"cases": [], "note": "no JUnit file (killed or broken)"}
    return result


def junit_summary(xml: Path) -> dict[str, Any]:
    counts = dict.fromkeys(("passed", "failed", "errors", "skipped"), 0)
    cases = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag, name in (("failure", "failed"), ("error", "errors"), ("skipped", "skipped")):
            el = case.find(tag)
            if el is not None:
                outcome, message = name, (el.get("message") or "")[:300]
                break
        counts[outcome] += 1
        cases.append({"name": case.get("name"), "outcome": outcome, "s": float(case.get("time") or 0), "msg": message})
    return counts | {"cases": cases}


def host_costs(dev: torch.device, size: int, n: int) -> dict[str, Any]:
    """CPU milliseconds per frame of the stage's host work at `size`, and the frames/s it allows."""
    loaded = load_model("random:tiny", device="cpu")
    embedder = Embedder(loaded, ModelSettings(model="random:tiny", image_size=size, aspect="square"))
    images = frames_pool(size, min(n, 64))
    t = time.perf_counter()
    for i in range(n):
        embedder.thumbnail(images[i % len(images)])
    thumb_ms = (time.perf_counter() - t) / n * 1e3
    small = embedder.shrink(torch.from_numpy(np.stack(images))).numpy()  # what CUDA hands the host
    t = time.perf_counter()
    for i in range(n):
        embedder._jpeg_of(small[i % len(small)])
    jpeg_ms = (time.perf_counter() - t) / n * 1e3
    host_thumb_ms = jpeg_ms if dev.type == "cuda" else thumb_ms  # CUDA resizes on the device

    # The batcher and record building alone: an embedder that returns prepared records at once.
    [rec] = embedder.embed([Frame("host", 0, 0.0, 0.0, images[0])])

    def fake(frames: list[Frame]) -> list[Any]:
        return [dataclasses.replace(rec, stream=f.stream, seq=f.seq) for f in frames]

    frames = [images[i % len(images)] for i in range(n)]
    timed, _, _ = asyncio.run(run_project([fake], frames, 256))  # type: ignore[list-item]
    batcher_ms = timed.wall / n * 1e3
    return {
        "image_size": size,
        "frames": n,
        "thumbnail_ms": round(thumb_ms, 4),  # PIL resize + JPEG: the CPU path's
        "thumbnail_jpeg_ms": round(jpeg_ms, 4),  # JPEG of a thumbnail shrunk on the device: CUDA's
        "thumbnail_threads": embedder_thumbnail_threads(dev),
        "batcher_and_record_ms": round(batcher_ms, 4),
        "host_ceiling_fps": round(1e3 / max(batcher_ms, host_thumb_ms / embedder_thumbnail_threads(dev)), 1),
    }


def embedder_thumbnail_threads(dev: torch.device) -> int:
    from dinostream.embedding.embedder import _thumbnail_threads

    return _thumbnail_threads() if dev.type == "cuda" else 1


# --- the bench -------------------------------------------------------------------------------------


def frames_pool(size: int, n: int, seed: int = 0) -> list[np.ndarray]:
    """`n` distinct model-sized RGB frames (smooth gradients, blocks and noise, as a camera's are
    neither flat nor white noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for _ in range(n):
        base = np.stack([xx, yy, (xx + yy) // 2], axis=-1) * (255 / max(size - 1, 1))
        y0, x0 = rng.integers(0, size // 2, 2)
        base[y0 : y0 + size // 3, x0 : x0 + size // 3] = rng.integers(0, 256, 3)
        base += rng.normal(0, 12, base.shape)
        out.append(np.clip(base, 0, 255).astype(np.uint8))
    return out


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def flops_per_frame(loaded: LoadedModel, size: int) -> float:
    """The forward's FLOPs for one frame, as counted by PyTorch's FlopCounterMode (matmuls, conv, SDPA)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, size, size, device=loaded.device, dtype=pixel_dtype(loaded))
    with torch.inference_mode(), autocast(loaded), FlopCounterMode(display=False) as counter:
        loaded.model(pixel_values=x)
    return float(counter.get_total_flops())


def pixel_dtype(loaded: LoadedModel) -> torch.dtype:
    return loaded.dtype if loaded.device.type == "cuda" else torch.float32


def autocast(loaded: LoadedModel) -> contextlib.AbstractContextManager[Any]:
    if loaded.device.type == "cuda" and loaded.dtype != torch.float32:
        return torch.autocast("cuda", dtype=loaded.dtype)
    return contextlib.nullcontext()


def with_precision(base: LoadedModel, dev: torch.device, precision: str) -> LoadedModel:
    """`base` (fp32 weights on the CPU) on `dev` in `precision`, as load_model would leave it."""
    dtype = compute_dtype(dev, precision)
    model = copy_module(base.model, dev)
    prepare_for_inference(model, dev, dtype)
    return dataclasses.replace(base, model=model, device=dev, dtype=dtype)


def peak_vram_mib(dev: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(dev) / 2**20, 1) if dev.type == "cuda" else None


def reset_vram(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


@dataclasses.dataclass
class Plan:
    dev: torch.device
    models: list[tuple[str, int]]
    batches: list[int]
    precisions: list[str]
    modes: list[str]
    point_s: float  # timed seconds aimed at per sweep point
    compile_estimate_s: float  # what one compilation is expected to cost
    pipeline_frames: int
    latency_s: float  # seconds of steady load per latency point


def bench_config(
    report: Report, plan: Plan, base: LoadedModel, size: int, precision: str, mode: str, images: list[np.ndarray]
) -> tuple[dict[str, Any], Embedder] | None:
    """One model / size / precision / mode: the batch sweep of the stage and the forward alone."""
    name = f"{base.model_id}@{size} {precision} {mode}"
    dev = plan.dev
    need = (plan.compile_estimate_s if mode == "compiled" else 0) + 6 * plan.point_s
    if report.left() < need:
        report.skip(name, f"{report.left():.0f} s left, about {need:.0f} s needed")
        return None
    loaded = with_precision(base, dev, precision)
    settings = ModelSettings(model=base.model_id, image_size=size, aspect="square", compile=mode == "compiled")
    embedder = Embedder(loaded, settings)
    entry: dict[str, Any] = {
        "model": base.model_id,
        "image_size": size,
        "precision": precision,
        "compute_dtype": str(loaded.dtype).removeprefix("torch."),
        "mode": mode,
        "flops_per_frame": flops_per_frame(loaded, size),
        "points": [],
    }
    report.data["bench"].append(entry)
    t = time.monotonic()
    embedder.warm_up()
    entry["warm_up_s"] = round(time.monotonic() - t, 1)
    fps_guess = None
    for batch in plan.batches:
        if report.left() < 3 * plan.point_s:
            report.skip(f"{name} batch {batch}", f"{report.left():.0f} s left")
            continue
        point: dict[str, Any] = {"batch": batch}
        entry["points"].append(point)
        try:
            reset_vram(dev)
            if mode == "eager":  # the forward alone does not depend on how the stage runs it
                steps = 3 if fps_guess is None else max(3, min(50, int(fps_guess * plan.point_s / 2 / batch)))
                alone = model_only(loaded, batch, size, steps * batch)
                point["forward_fps"] = round(alone.fps, 1)
                fps_guess = alone.fps
            n = batch * (4 if fps_guess is None else max(4, min(100, int(fps_guess * plan.point_s / batch))))
            frames = [images[i % len(images)] for i in range(n)]
            asyncio.run(run_project([embedder], frames[: 2 * batch], batch))  # pinned buffers, allocator, caches
            timed, batcher, records = asyncio.run(run_project([embedder], frames, batch))
            point |= {
                "frames": n,
                "stage_fps": round(timed.fps, 1),
                "stage_cpu_ms_per_frame": round(timed.cpu_ms, 3),
                "mean_batch": round(batcher.stats().mean_batch_size, 1),
                "dropped": batcher.stats().dropped,
                "tflops": float(f"{timed.fps * entry['flops_per_frame'] / 1e12:.4g}"),
                "peak_vram_mib": peak_vram_mib(dev),
            }
            if "forward_fps" in point:
                point["stage_vs_forward"] = round(timed.fps / point["forward_fps"], 3)
            if report.data["ceiling"].get("tflops"):
                point["of_ceiling"] = round(point["tflops"] / report.data["ceiling"]["tflops"], 4)
            assert len(records) == n, f"{len(records)} records for {n} frames"
            log.info("%s batch %d: %s", name, batch, point)
        except Exception as e:  # out of memory at the largest batches ends this sweep, not the run
            point["error"] = f"{type(e).__name__}: {str(e)[:300]}"
            log.warning("%s batch %d failed: %s", name, batch, point["error"])
            break
        finally:
            report.save()
    best = max((p for p in entry["points"] if "stage_fps" in p), key=lambda p: p["stage_fps"], default=None)
    entry["best"] = best
    return entry, embedder


def bench_pipeline(report: Report, plan: Plan, base: LoadedModel, size: int, images: list[np.ndarray]) -> None:
    """transformers' pipeline ("image-feature-extraction") on the same device, the model in bf16
    (fp32 on the CPU) as its docs run it, fed PIL images at model size."""
    from PIL import Image
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    dev = plan.dev
    dtype = compute_dtype(dev, "bf16") if dev.type == "cuda" else torch.float32
    model = copy_module(base.model, dev).to(dtype)
    pipe = pipeline(
        "image-feature-extraction",
        model=model,
        image_processor=dinov3_pil_processor(size, base.image_mean, base.image_std),
        device=dev,
    )
    batch = 64 if dev.type == "cuda" else 4
    pil = [Image.fromarray(images[i % len(images)]) for i in range(plan.pipeline_frames)]
    run_pipeline(pipe, pil[:batch], batch)  # warm-up
    timed = run_pipeline(pipe, pil, batch)
    report.data.setdefault("pipeline", []).append(
        {"model": base.model_id, "image_size": size, "dtype": str(dtype), "batch": batch, "fps": round(timed.fps, 1)}
    )
    log.info("pipeline %s@%d: %.1f frames/s", base.model_id, size, timed.fps)


def bench_latency(
    report: Report, plan: Plan, entry: dict[str, Any], embedder: Embedder, images: list[np.ndarray]
) -> None:
    """Per-frame latency at 50% and 90% of the measured capacity, through the micro-batcher with
    its default max wait and the best batch of the sweep as max_batch."""
    best = entry.get("best")
    if not best:
        report.skip(f"latency {entry['model']}@{entry['image_size']}", "no throughput figure to load it against")
        return
    size = entry["image_size"]
    settings = ModelSettings()  # the defaults: max_wait_ms
    for load in (0.5, 0.9):
        what = f"latency {entry['model']}@{size} {entry['precision']} {entry['mode']} at {load:.0%}"
        if report.left() < plan.latency_s + 5:
            report.skip(what, f"{report.left():.0f} s left")
            continue
        rate = load * best["stage_fps"]
        n = max(4 * best["batch"], int(rate * plan.latency_s))
        frames = [images[i % len(images)] for i in range(n)]
        _, batcher, _ = asyncio.run(
            run_project([embedder], frames, best["batch"], rate=rate, max_wait_ms=settings.max_wait_ms)
        )
        st = batcher.stats()
        row = {
            "model": entry["model"],
            "image_size": size,
            "precision": entry["precision"],
            "mode": entry["mode"],
            "max_batch": best["batch"],
            "max_wait_ms": settings.max_wait_ms,
            "load": load,
            "rate_fps": round(rate, 1),
            "frames": n,
            "p50_ms": None if st.latency_p50_s is None else round(st.latency_p50_s * 1e3, 2),
            "p99_ms": None if st.latency_p99_s is None else round(st.latency_p99_s * 1e3, 2),
            "mean_batch": round(st.mean_batch_size, 1),
        }
        report.data["latency"].append(row)
        log.info("%s: %s", what, row)
        report.save()


def run_bench(report: Report, plan: Plan) -> None:
    """Every configuration, in priority order, within the budget (see `Plan` and the module docstring):
    the first precision eager for every model (the goal model's pipeline and latency right after
    its sweep), the goal model compiled, the other precisions eager, the other models compiled,
    the other precisions compiled."""
    bases: dict[str, LoadedModel] = {}
    pools: dict[int, list[np.ndarray]] = {}

    def base(arch: str) -> LoadedModel:
        if arch not in bases:
            bases[arch] = load_model(f"random:{arch}", device="cpu")
        return bases[arch]

    def pool(size: int) -> list[np.ndarray]:
        if size not in pools:
            pools[size] = frames_pool(size, 64)
        return pools[size]

    first, others = plan.precisions[0], plan.precisions[1:]
    goal_arch = plan.models[0][0]
    compiled = ["compiled"] if "compiled" in plan.modes else []
    tasks = [(m, first, "eager") for m in plan.models]
    tasks += [(m, first, mode) for mode in compiled for m in plan.models if m[0] == goal_arch]
    tasks += [(m, p, "eager") for p in others for m in plan.models]
    tasks += [(m, first, mode) for mode in compiled for m in plan.models if m[0] != goal_arch]
    tasks += [(m, p, mode) for mode in compiled for p in others for m in plan.models]
    report.data["plan"] = [f"{a}@{s} {p} {m}" for (a, s), p, m in tasks]
    done: dict[tuple[str, int, str, str], tuple[dict[str, Any], Embedder]] = {}
    for (arch, size), precision, mode in tasks:
        key = (arch, size, precision, mode)
        with report.section(f"bench {arch}@{size} {precision} {mode}"):
            result = bench_config(report, plan, base(arch), size, precision, mode, pool(size))
            if result is not None:
                done[key] = result
        if (arch, size) != plan.models[0] or precision != first:
            continue
        if mode == "eager":
            with report.section(f"pipeline {arch}@{size}"):
                if report.left() > 20:
                    bench_pipeline(report, plan, base(arch), size, pool(size))
                else:
                    report.skip(f"pipeline {arch}@{size}", f"{report.left():.0f} s left")
        if key in done and (mode == "eager" or beats(done[key][0], done.get((arch, size, first, "eager")))):
            with report.section(f"latency {arch}@{size} {mode}"):
                bench_latency(report, plan, *done[key], pool(size))


def beats(entry: dict[str, Any], other: tuple[dict[str, Any], Embedder] | None) -> bool:
    """Whether `entry`'s best throughput beats `other`'s (worth its own latency figures)."""
    mine = (entry.get("best") or {}).get("stage_fps", 0)
    theirs = (other[0].get("best") or {}).get("stage_fps", 0) if other else 0
    return mine > theirs


def goals(report: Report, model: str) -> list[dict[str, Any]]:
    """The issue's targets against the best figures of the run (bf16, eager or compiled)."""
    data = report.data

    def best(size: int) -> dict[str, Any] | None:
        rows = [
            p
            for e in data["bench"]
            if e["model"] == model and e["image_size"] == size and e["precision"] == "bf16"
            for p in e["points"]
            if "stage_fps" in p
        ]
        return max(rows, key=lambda p: p["stage_fps"], default=None)

    b224, b448 = best(224), best(448)
    eager224 = [
        p
        for e in data["bench"]
        if e["model"] == model and e["image_size"] == 224 and e["precision"] == "bf16" and e["mode"] == "eager"
        for p in e["points"]
        if "stage_vs_forward" in p
    ]
    near = max(eager224, key=lambda p: p["stage_fps"], default=None)
    pipe = next((p for p in data.get("pipeline", []) if p["model"] == model and p["image_size"] == 224), None)
    lat = next(
        (r for r in data["latency"] if r["model"] == model and r["image_size"] == 224 and r["load"] == 0.5), None
    )
    measured = {
        "vits16_448_stage_fps": b448 and b448["stage_fps"],
        "vits16_224_stage_fps": b224 and b224["stage_fps"],
        "vits16_224_stage_vs_forward": near and near["stage_vs_forward"],
        "vits16_224_stage_vs_pipeline": b224 and pipe and round(b224["stage_fps"] / pipe["fps"], 2),
        "vits16_224_p99_ms_at_50pct": lat and lat["p99_ms"],
    }
    out = []
    for name, target, what in GOALS:
        value = measured[name]
        met = None if value is None else (value <= target if name.endswith("_ms_at_50pct") else value >= target)
        out.append({"name": name, "target": target, "measured": value, "met": met, "what": what})
    return out


# --- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json, gpu_check.log, cuda-tests.xml")
    p.add_argument("--device", default="auto", help="auto (CUDA when present, else a CPU dry run), cpu, cuda:N")
    p.add_argument("--budget-s", type=float, help="whole-run budget (default 450 on CUDA, 50 on the CPU)")
    p.add_argument("--tests-cap-s", type=float, help="cap of the CUDA tests (default 200 on CUDA, 60 on the CPU)")
    p.add_argument("--no-tests", action="store_true", help="skip the pytest section")
    p.add_argument("--cpu-compile", action="store_true", help="also compile on the CPU (minutes on a small machine)")
    args = p.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    cuda = args.device != "cpu" and torch.cuda.is_available()
    dev = torch.device(args.device if args.device not in ("auto",) else "cuda:0") if cuda else torch.device("cpu")
    setup_logging(args.out / "gpu_check.log")
    budget = args.budget_s if args.budget_s is not None else (450.0 if cuda else 50.0)
    report = Report(args.out, budget, "cuda" if cuda else "cpu-dry-run")
    if cuda:
        plan = Plan(dev, CUDA_MODELS, CUDA_BATCHES, ["bf16", "fp16"], ["eager", "compiled"], 0.6, 60.0, 512, 3.0)
    else:
        modes = ["eager", "compiled"] if args.cpu_compile else ["eager"]
        plan = Plan(dev, CPU_MODELS, CPU_BATCHES, ["fp32"], modes, 0.2, 150.0, 8, 0.5)
        if not args.cpu_compile:
            report.skip("compiled mode", "no CUDA: compiling on the CPU takes minutes (--cpu-compile to include it)")
    try:
        with report.section("env"):
            report.data["env"] = environment(dev)
            log.info("env: %s", report.data["env"])
        with report.section("ceiling"):
            report.data["ceiling"] = on_worker_thread(lambda: matmul_ceiling(dev))
            log.info("ceiling: %s", report.data["ceiling"])
        with report.section("tests"):
            if args.no_tests:
                report.skip("tests", "--no-tests")
            else:
                cap = args.tests_cap_s if args.tests_cap_s is not None else (200.0 if cuda else 60.0)
                bench_reserve = 220.0 if cuda else 15.0  # the bench's first sizes get at least this
                report.data["tests"] = cuda_tests(args.out, min(cap, max(10.0, report.left() - bench_reserve)))
        with report.section("host"):
            report.data["host"] = host_costs(dev, plan.models[0][1], 2048 if cuda else 64)
            log.info("host: %s", report.data["host"])
        run_bench(report, plan)
        with report.section("goals"):
            report.data["goals"] = goals(report, f"random:{plan.models[0][0]}")
        report.data["complete"] = True
    except KeyboardInterrupt:  # `timeout -s INT` from make: keep what was measured
        report.skip("the rest", "interrupted (time limit)")
    finally:
        report.save()
    summary(report)
    return 0


def setup_logging(path: Path) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for h in (logging.FileHandler(path, mode="w"), logging.StreamHandler(sys.stdout)):
        h.setFormatter(fmt)
        root.addHandler(h)


def summary(report: Report) -> None:
    d = report.data
    print(f"\ngpu check ({d['mode']}): {d['elapsed_s']} s, complete={d['complete']}, JSON {report.path}")
    if d["ceiling"]:
        print(f"  ceiling {d['ceiling']['dtype']} {d['ceiling']['n']}^3: {d['ceiling']['tflops']:.1f} TFLOP/s")
    t = d["tests"]
    if t:
        counts = ", ".join(f"{t.get(k)} {k}" for k in ("passed", "failed", "errors", "skipped"))
        print(f"  tests: {counts}")
    for e in d["bench"]:
        b = e.get("best") or {}
        print(
            f"  {e['model']}@{e['image_size']} {e['precision']} {e['mode']}: best {b.get('stage_fps')} frames/s at "
            f"batch {b.get('batch')} (forward alone {b.get('forward_fps')}, {b.get('tflops')} TFLOP/s)"
        )
    for r in d["latency"]:
        print(
            f"  latency {r['model']}@{r['image_size']} at {r['load']:.0%}: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms"
        )
    for g in d["goals"]:
        print(f"  goal {g['name']}: {g['measured']} (target {g['target']}) met={g['met']}")
    print(f"  skipped: {len(d['skipped'])}, errors: {len(d['errors'])}")


def weight_casts(model: torch.nn.Module, run: Callable[[], Any]) -> list[tuple[tuple[int, ...], str, str]]:
    """Dtype conversions of parameter-sized tensors while `run()` executes: what autocast does to
    every fp32 weight on every step. Empty once the weights are stored in the compute dtype."""
    from torch.utils._python_dispatch import TorchDispatchMode

    sizes = {p.numel() for p in model.parameters() if p.numel() >= 1024}
    seen: list[tuple[tuple[int, ...], str, str]] = []
    casts = (torch.ops.aten.to, torch.ops.aten._to_copy)

    class Casts(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            src = args[0] if args else None
            if (
                func.overloadpacket in casts
                and isinstance(src, torch.Tensor)
                and isinstance(out, torch.Tensor)
                and out.dtype != src.dtype
                and src.numel() in sizes
            ):
                seen.append((tuple(src.shape), str(src.dtype), str(out.dtype)))
            return out

    with Casts():
        run()
    return seen


if __name__ == "__main__":
    sys.exit(main())

"""The embedding stage on a real GPU: accuracy against the CPU, the pinned / non-blocking / two-stream
path, out-of-memory recovery, compilation, several embedders, and what must not happen in the
device step (host synchronisation, the math attention kernel, per-step weight casts)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import threading
from collections.abc import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from bench.gpu_check import weight_casts
from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import ModelSettings
from dinostream.embedding.batcher import MicroBatcher
from dinostream.embedding.embedder import Embedder
from dinostream.embedding.model_loader import LoadedModel, load_model, prepare_for_inference
from dinostream.ingest.source import Frame

pytestmark = pytest.mark.cuda

Frames = Callable[..., list[Frame]]
SQUARE = ModelSettings(model="random:vits16", image_size=224, aspect="square")


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _assert_close(got: list[FrameEmbedding], want: list[FrameEmbedding], floor: float = 0.999) -> None:
    assert [(r.stream, r.seq) for r in got] == [(r.stream, r.seq) for r in want]
    for g, w in zip(got, want, strict=True):
        for field in ("cls", "pooled", "patches"):
            c = _cos(getattr(g, field), getattr(w, field))
            assert c >= floor, f"{g.stream}#{g.seq} {field}: cosine {c:.5f} < {floor}"


def _on_cuda(cpu: LoadedModel, precision: str) -> LoadedModel:
    """The CPU model's very weights on CUDA in `precision`, as load_model prepares them."""
    from dinostream.embedding.model_loader import compute_dtype, copy_module

    dev = torch.device("cuda", torch.cuda.current_device())
    model = copy_module(cpu.model, dev)
    dtype = compute_dtype(dev, precision)
    prepare_for_inference(model, dev, dtype)
    return dataclasses.replace(cpu, model=model, device=dev, dtype=dtype)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_records_match_fp32_on_the_cpu_frame_by_frame(
    vits16_cpu: LoadedModel, make_frames: Frames, precision: str
) -> None:
    frames = make_frames(8)
    want = Embedder(vits16_cpu, SQUARE).embed(frames)
    got = Embedder(_on_cuda(vits16_cpu, precision), SQUARE).embed(frames)
    _assert_close(got, want)
    for g, w in zip(got, want, strict=True):  # resized on the GPU, by PIL on the CPU: the same picture
        a, b = (np.asarray(Image.open(io.BytesIO(r.thumbnail))).astype(int) for r in (g, w))
        assert a.shape == b.shape and np.abs(a - b).mean() < 4.0


def test_encoded_records_have_the_cpu_paths_layout(vits16_cpu: LoadedModel, make_frames: Frames) -> None:
    frames = make_frames(2)
    cpu = Embedder(vits16_cpu, SQUARE).embed(frames)
    gpu = Embedder(_on_cuda(vits16_cpu, "bf16"), SQUARE).embed(frames)
    for c, g in zip(cpu, gpu, strict=True):
        cb, gb = c.encode(), g.encode()
        # the same bytes but for the values: only the JPEG thumbnail's length may differ
        assert len(cb) - len(c.thumbnail) == len(gb) - len(g.thumbnail)
        dc, dg = FrameEmbedding.decode(cb), FrameEmbedding.decode(gb)
        for field in ("cls", "pooled", "patches"):
            a, b = getattr(dc, field), getattr(dg, field)
            assert (a.shape, a.dtype, a.flags.c_contiguous) == (b.shape, b.dtype, b.flags.c_contiguous)
        assert (dc.stream, dc.seq, dc.pts, dc.ts, dc.model) == (dg.stream, dg.seq, dg.pts, dg.ts, dg.model)
        assert dg.thumbnail == g.thumbnail and Image.open(io.BytesIO(dg.thumbnail)).size == (160, 160)


def test_batches_launched_back_to_back_match_batches_run_one_at_a_time(
    vits16_bf16: LoadedModel, make_frames: Frames
) -> None:
    embedder = Embedder(vits16_bf16, SQUARE)
    batches = [make_frames(16, stream=f"cam-{i}", seed=i) for i in range(4)]
    want = [embedder.embed(b) for b in batches]
    finishes = [embedder.launch(b) for b in batches]  # four batches queued before any is finished
    got = [f() for f in finishes]
    for g, w in zip(got, want, strict=True):
        assert all(r is not None for r in g)
        _assert_close(g, w, floor=0.9999)  # type: ignore[arg-type]


def test_staging_buffers_are_not_reused_while_a_long_kernel_delays_their_uploads(
    vits16_bf16: LoadedModel, make_frames: Frames
) -> None:
    embedder = Embedder(vits16_bf16, SQUARE)
    a, b = make_frames(8, stream="a", seed=1), make_frames(8, stream="b", seed=2)
    want_a, want_b = embedder.embed(a), embedder.embed(b)
    torch.cuda.synchronize()
    torch.cuda._sleep(2_000_000_000)  # about a second of GPU time queued ahead of both uploads
    finish_a = embedder.launch(a)
    finish_b = embedder.launch(b)  # its frames are written to pinned memory while a's copy still waits
    _assert_close(finish_a(), want_a, floor=0.9999)  # type: ignore[arg-type]
    _assert_close(finish_b(), want_b, floor=0.9999)  # type: ignore[arg-type]


def test_the_device_step_makes_no_host_synchronisation(vits16_bf16: LoadedModel, make_frames: Frames) -> None:
    embedder = Embedder(vits16_bf16, SQUARE)
    frames = make_frames(16)
    embedder.embed(frames)  # warm: pinned blocks cached, kernels loaded
    torch.cuda.set_sync_debug_mode("error")
    try:
        finish = embedder.launch(frames)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(finish()) == 16


def test_attention_runs_a_fused_sdpa_kernel(vits16_bf16: LoadedModel, make_frames: Frames) -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.profiler import ProfilerActivity, profile

    embedder = Embedder(vits16_bf16, SQUARE)
    frames = make_frames(8)
    fused = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]
    with sdpa_kernel(fused):  # raises "No available kernel" if only the math fallback could run
        embedder.embed(frames)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        embedder.embed(frames)
    names = {e.key for e in prof.key_averages()}
    assert not any("_scaled_dot_product_attention_math" in n for n in names), sorted(names)
    assert any(k in n for n in names for k in ("flash_attention", "efficient_attention", "cudnn_attention"))


def test_no_parameter_sized_casts_per_step(vits16_bf16: LoadedModel, make_frames: Frames) -> None:
    embedder = Embedder(vits16_bf16, SQUARE)
    frames = make_frames(4)
    embedder.embed(frames)
    assert weight_casts(vits16_bf16.model, lambda: embedder.embed(frames)) == []
    linear = next(m for m in vits16_bf16.model.modules() if isinstance(m, torch.nn.Linear))
    assert linear.weight.dtype == torch.bfloat16


def test_a_real_out_of_memory_is_split_and_retried_without_losing_a_frame(
    vits16_bf16: LoadedModel, make_frames: Frames
) -> None:
    embedder = Embedder(vits16_bf16, ModelSettings(model="random:vits16", image_size=448, aspect="square"))
    frames = make_frames(192, size=448)
    want = embedder.embed(frames[:4])
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    room = torch.cuda.memory_allocated() + (1 << 30)  # the weights and 1 GiB: about 32 frames at 448
    torch.cuda.set_per_process_memory_fraction(room / total)
    try:
        got = embedder.embed(frames)
        again = embedder.embed(frames[:64])  # the stage goes on, at the learned cap
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert embedder.oom_caps.get((448, 448), 192) < 192
    assert [(r.stream, r.seq) for r in got] == [(f.stream, f.seq) for f in frames]
    assert len(again) == 64
    _assert_close(got[:4], want)


def test_two_streams_through_the_micro_batcher_keep_their_order(vits16_bf16: LoadedModel, make_frames: Frames) -> None:
    embedder = Embedder(vits16_bf16, SQUARE)
    streams = {s: make_frames(40, stream=s, seed=i) for i, s in enumerate(("left", "right"))}
    records: list[FrameEmbedding] = []

    async def sink(batch: list[FrameEmbedding]) -> None:
        records.extend(batch)

    async def run() -> None:
        batcher = MicroBatcher(embedder, max_batch=8, max_wait_s=0.005, queue_size=16, sink=sink)
        batcher.start()

        async def feed(frames: list[Frame]) -> None:
            for f in frames:
                await batcher.put(f)

        await asyncio.gather(*(feed(f) for f in streams.values()))
        await batcher.stop()

    asyncio.run(run())
    for s, frames in streams.items():
        mine = [r for r in records if r.stream == s]
        assert [r.seq for r in mine] == list(range(40))
        _assert_close(mine[:8], embedder.embed(frames[:8]))


def test_two_embedders_on_two_threads_keep_order_and_agree(vits16_bf16: LoadedModel, make_frames: Frames) -> None:
    embedders = [Embedder(vits16_bf16, SQUARE), Embedder(vits16_bf16, SQUARE)]
    frames = make_frames(64)
    results: list[list[FrameEmbedding]] = [[], []]

    def work(i: int) -> None:
        for k in range(0, 64, 16):
            results[i].extend(embedders[i].embed(frames[k : k + 16]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.seq for r in results[0]] == [r.seq for r in results[1]] == list(range(64))
    _assert_close(results[0], results[1], floor=0.9999)


def test_each_device_thread_makes_its_model_device_current(vits16_bf16: LoadedModel, make_frames: Frames) -> None:
    seen: list[int] = []
    embedder = Embedder(vits16_bf16, SQUARE)

    def work() -> None:
        embedder.embed(make_frames(2))
        seen.append(torch.cuda.current_device())

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == [vits16_bf16.device.index]


# --- compilation last: the slowest (tens of seconds each), so a time cap cuts the fewest tests -----


def test_compiled_step_gives_the_eager_embeddings(vits16_bf16: LoadedModel, make_frames: Frames) -> None:
    frames = make_frames(6)
    compiled = Embedder(vits16_bf16, SQUARE.model_copy(update={"compile": True}))
    compiled.warm_up()
    _assert_close(compiled.embed(frames), Embedder(vits16_bf16, SQUARE).embed(frames))


def test_compiling_over_batch_sizes_and_three_aspect_ratios_makes_at_most_two_graphs(make_frames: Frames) -> None:
    from torch._dynamo.utils import counters

    tiny = load_model("random:tiny", device="cuda", precision="bf16")
    embedder = Embedder(tiny, ModelSettings(model="random:tiny", image_size=64, aspect="preserve", compile=True))
    before = counters["stats"]["unique_graphs"]
    embedder.warm_up()  # the square preset and 16:9
    for h, w in ((64, 64), (48, 80), (80, 48)):
        for n in range(1, 18):
            assert len(embedder.embed(make_frames(n, size=h, width=w))) == n
    assert counters["stats"]["unique_graphs"] - before <= 2

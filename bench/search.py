"""Retrospective search on the embedded Qdrant Edge index: recall@10 and latency against exact search.

100k frames of synthetic, clustered unit vectors (500 "scenes", each frame its scene's direction
plus noise, stored as float16 like the wire records) go into a `QdrantEdgeIndex`; the HNSW graph
is built (`optimize()`, timed); then 200+ queries (a scene's direction plus fresh noise) run
through `query_frames` and through numpy brute force on the same (float16-rounded) vectors.
Prints recall@10 of the index against exact, and p50/p99 latency of both and their ratio.

    python -m bench.search                       # the full run, about 2 minutes
    python -m bench.search --frames 20000 --queries 100
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dinostream.core.records import FrameEmbedding
from dinostream.sinks.qdrant_edge_index import QdrantEdgeIndex
from dinostream.sinks.vector_index import FrameFilter

BASE_TS = 1_700_000_000.0


def clustered(n: int, dim: int, scenes: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`n` unit vectors around `scenes` random unit directions; also the directions."""
    centres = rng.standard_normal((scenes, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, scenes, n)
    x = centres[labels] + noise * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float16), centres


def records(x16: np.ndarray, start: int, stop: int) -> list[FrameEmbedding]:
    one = np.zeros((1, 1, x16.shape[1]), dtype=np.float16)
    return [
        FrameEmbedding(
            stream=f"cam{i % 8}",
            seq=i,
            pts=i * 0.5,
            ts=BASE_TS + i * 0.5,
            model="bench",
            untrained=False,
            cls=x16[i],
            pooled=x16[i],
            patches=one + x16[i],  # a 1x1 grid: the region point stays small
        )
        for i in range(start, stop)
    ]


def percentiles(seconds: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(seconds) * 1000.0, [50, 99])
    return float(p50), float(p99)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--scenes", type=int, default=500)
    ap.add_argument("--noise", type=float, default=1.0, help="noise norm relative to the unit scene direction")
    ap.add_argument("--queries", type=int, default=250)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=2000, help="frames per upsert")
    ap.add_argument(
        "--dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None, help="where the index lives (tmpfs)"
    )
    args = ap.parse_args(argv)
    print("command: python -m bench.search " + shlex.join(sys.argv[1:] if argv is None else argv), flush=True)

    rng = np.random.default_rng(0)
    x16, centres = clustered(args.frames, args.dim, args.scenes, args.noise, rng)
    exact_x = x16.astype(np.float32)
    exact_x /= np.linalg.norm(exact_x, axis=1, keepdims=True)
    qs = centres[rng.integers(0, args.scenes, args.queries)]
    qs = qs + args.noise * rng.standard_normal(qs.shape).astype(np.float32) / np.sqrt(args.dim)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)

    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-search-", dir=args.dir) as tmp:
        index = QdrantEdgeIndex(Path(tmp) / "qdrant", args.dim, region_grid=1)
        try:
            t0 = time.perf_counter()
            for i in range(0, args.frames, args.batch):
                index.upsert_frames(records(x16, i, min(args.frames, i + args.batch)))
            upsert_s = time.perf_counter() - t0
            print(f"indexed {index.count_frames()} frames (dim {args.dim}) in {upsert_s:.1f} s", flush=True)

            # Before the graph exists: a plain segment, searched exhaustively by Qdrant.
            plain = [_timed(index.query_frames, q, args.k) for q in qs[:50]]
            t0 = time.perf_counter()
            index.optimize()
            optimize_s = time.perf_counter() - t0
            print(f"optimize (HNSW build for 'cls') took {optimize_s:.1f} s", flush=True)

            for q in qs[:20]:  # warm the caches
                index.query_frames(q, args.k)
            edge_s, recalls = [], []
            exact_s = []
            for q in qs:
                t0 = time.perf_counter()
                hits = index.query_frames(q, args.k)
                edge_s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                sims = exact_x @ q
                top = np.argpartition(-sims, args.k)[: args.k]
                top = top[np.argsort(-sims[top])]
                exact_s.append(time.perf_counter() - t0)
                got = {h.seq for h in hits}
                recalls.append(len(got & set(top.tolist())) / args.k)
            filtered = [
                _timed(index.query_frames, q, args.k, FrameFilter(streams=["cam3"], since=BASE_TS + 1000))
                for q in qs[:50]
            ]
        finally:
            index.close()

    e50, e99 = percentiles(edge_s)
    b50, b99 = percentiles(exact_s)
    p50, p99 = percentiles(plain)
    f50, f99 = percentiles(filtered)
    print(f"queries: {len(qs)}, k = {args.k}")
    print(f"recall@{args.k} (edge HNSW vs exact): {np.mean(recalls):.4f} (min {np.min(recalls):.2f})")
    print(f"edge HNSW latency:      p50 {e50:7.2f} ms   p99 {e99:7.2f} ms")
    print(f"numpy brute force:      p50 {b50:7.2f} ms   p99 {b99:7.2f} ms")
    print(f"ratio brute/edge:       p50 {b50 / e50:7.1f} x   p99 {b99 / e99:7.1f} x")
    print(f"edge before optimize:   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms  (plain segment, 50 queries)")
    print(f"edge, stream+time filter: p50 {f50:5.2f} ms   p99 {f99:7.2f} ms  (50 queries)")
    ok = np.mean(recalls) >= 0.95 and e99 < 20.0
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(f"goal recall@10 >= 0.95 and p99 < 20 ms: {'met' if ok else 'NOT met'}")
    return 0


def _timed(fn: Callable[..., object], *args: object) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


if __name__ == "__main__":
    raise SystemExit(main())

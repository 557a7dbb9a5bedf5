"""Background analyses of stored videos: one job per asset, its state and progress to poll.

The work itself is a callable the assembly injects (`AnalyzeVideo`: the asset's id, the
video's path and a progress callback in, the result as JSON out; `dinostream.asset_analysis` runs `analyze`'s
pipeline), so this layer never imports the assembly. At most `max_running` analyses run at
once (the others wait, `queued`); the latest `max_kept` finished jobs are kept to be read.

    >>> jobs = AnalysisJobs(run)              # run(asset_id, path, progress) -> dict
    >>> job = jobs.start("a_...", path)       # queued -> running -> done | failed
    >>> jobs.get("a_...").to_dict()           # {"state": "running", "progress": 0.4, ...}
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Progress = Callable[[float], None]
AnalyzeVideo = Callable[[str, Path, Progress], Awaitable[dict[str, Any]]]


@dataclass
class Job:
    asset_id: str
    state: str = "queued"  # queued, running, done, failed
    progress: float = 0.0  # 0..1
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def to_dict(self) -> dict[str, Any]:
        return {
            "asset_id": self.asset_id,
            "state": self.state,
            "progress": round(self.progress, 4),
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "result": self.result,
            "error": self.error,
        }


class AnalysisJobs:
    """The analyses of this process, by asset id."""

    def __init__(self, run: AnalyzeVideo, *, max_running: int = 1, max_kept: int = 100) -> None:
        self.run = run
        self.max_kept = max_kept
        self._jobs: dict[str, Job] = {}
        self._slots = asyncio.Semaphore(max_running)

    def get(self, asset_id: str) -> Job | None:
        return self._jobs.get(asset_id)

    def start(self, asset_id: str, path: Path) -> Job:
        """The asset's analysis: the one queued or running, else a new one started."""
        job = self._jobs.get(asset_id)
        if job is not None and job.active:
            return job
        job = self._jobs[asset_id] = Job(asset_id)
        self._jobs[asset_id] = self._jobs.pop(asset_id)  # newest last
        job.task = asyncio.create_task(self._run(job, path), name=f"analysis-{asset_id}")
        self._forget_old()
        return job

    def cancel(self, asset_id: str) -> None:
        """Stop and forget the asset's analysis (the asset was deleted)."""
        job = self._jobs.pop(asset_id, None)
        if job is not None and job.task is not None and not job.task.done():
            job.task.cancel()

    def stats(self) -> dict[str, int]:
        states = [j.state for j in list(self._jobs.values())]  # a copy: stats may be read from a thread
        return {s: states.count(s) for s in ("queued", "running", "done", "failed")}

    async def close(self) -> None:
        tasks = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, job: Job, path: Path) -> None:
        async with self._slots:
            job.state, job.started_at = "running", time.time()

            def progress(fraction: float) -> None:
                job.progress = min(max(job.progress, float(fraction)), 0.999)  # 1.0 only when done

            try:
                job.result = await self.run(job.asset_id, path, progress)
            except asyncio.CancelledError:
                job.state, job.error = "failed", "cancelled"
                raise
            except Exception as e:  # noqa: BLE001 - the job reports it; the gateway goes on
                log.exception("analysis of asset %s failed", job.asset_id)
                job.state, job.error = "failed", f"{type(e).__name__}: {e}"
            else:
                job.state, job.progress = "done", 1.0
            finally:
                job.finished_at = time.time()

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if not j.active]
        for k in finished[: max(0, len(finished) - self.max_kept)]:
            del self._jobs[k]

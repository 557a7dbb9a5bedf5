"""The loopback RTSP test server (tests/integration/rtsp_server.py: Debian's gst-rtsp-server, run
with the system python, which has `gi`) as an async handle, for the tests and bench/soak.py.

    server = RtspServer("--fps", "10")   # extra arguments for rtsp_server.py
    await server.start()                 # port 0: a free one; after kill(): the same one again
    server.url                           # rtsp://127.0.0.1:PORT/cam
    await server.kill()                  # SIGKILL: the camera disappears without a goodbye
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).resolve().parent / "integration" / "rtsp_server.py"


class RtspServer:
    """One gst-rtsp-server process; `start()` again after `kill()` comes back on the same port."""

    def __init__(self, *args: str) -> None:
        self.args = list(args)
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    async def start(self) -> None:
        """Start the server; raise RuntimeError with its stderr when it does not come up (a missing
        gst-rtsp-server: run `make apt`, part of `make test`)."""
        if not os.access(SYSTEM_PYTHON, os.X_OK):
            raise RuntimeError(f"{SYSTEM_PYTHON} with GStreamer (python3-gi) is missing: run `make apt`")
        proc = self.proc = await asyncio.create_subprocess_exec(
            SYSTEM_PYTHON,
            str(SERVER),
            str(self.port),
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        line = b""
        deadline = time.monotonic() + 30  # a freed port may need a moment after SIGKILL
        while not line.startswith(b"port"):
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), 20)
            except TimeoutError:
                line = b""
            if not line and (proc.returncode is not None or time.monotonic() > deadline):
                err = await _read_stderr(proc)
                await self.kill()
                raise RuntimeError(f"RTSP server did not start on port {self.port}; its stderr:\n{err}")
        self.port = int(line.split()[1])

    async def kill(self) -> None:
        """SIGKILL: the camera disappears without a goodbye."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
        self.proc = None


async def _read_stderr(proc: asyncio.subprocess.Process) -> str:
    if proc.returncode is None:
        proc.send_signal(signal.SIGKILL)
    assert proc.stderr is not None
    return (await asyncio.wait_for(proc.stderr.read(), 5)).decode(errors="replace")

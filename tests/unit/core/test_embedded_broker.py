"""The embedded broker never outlives its owner, even one killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # a real broker, in a child process

CHILD = """
import asyncio, sys
from pathlib import Path
from dinostream.core.embedded_broker import EmbeddedBroker

async def main():
    b = EmbeddedBroker(Path(sys.argv[1]))
    await b.start()
    print(b._proc.pid, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_broker_stops_when_its_owner_is_killed(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "broker.log")], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    broker_pid = int(owner.stdout.readline())
    assert _alive(broker_pid)
    owner.send_signal(signal.SIGKILL)
    owner.wait(10)
    deadline = time.monotonic() + 10
    while _alive(broker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(broker_pid), "the broker outlived the process that started it"

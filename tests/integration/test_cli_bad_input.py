"""Bad input ends with one clear line naming the problem, a non-zero exit, and an untouched data dir."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def _run(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if args[0] == "up":  # never the default port: other tests and services may hold it
        args = (*args, "--http", "127.0.0.1:0")
    return subprocess.run(
        [sys.executable, "-m", "dinostream", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never answers (a dead Kafka or a hung camera)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    yield srv.getsockname()[1]
    srv.close()


def _assert_one_line_error(cp: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert cp.returncode != 0
    assert "Traceback" not in cp.stderr, cp.stderr
    errors = [ln for ln in cp.stderr.splitlines() if ln.startswith("dinostream: error:")]
    assert len(errors) == 1, cp.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.fixture
def corrupt_video(tmp_path: Path) -> Path:
    p = tmp_path / "corrupt.mp4"
    p.write_bytes(os.urandom(50_000))
    return p


def test_up_missing_video(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = tmp_path / "data"
    cp = _run("up", "--source", str(tmp_path / "nope.mp4"), "--model", str(tiny_model_dir), "--data-dir", str(data))
    _assert_one_line_error(cp, "nope.mp4", "not found")
    assert not data.exists()


def test_up_corrupt_video(tmp_path: Path, tiny_model_dir: Path, corrupt_video: Path) -> None:
    data = tmp_path / "data"
    cp = _run("up", "--source", str(corrupt_video), "--model", str(tiny_model_dir), "--data-dir", str(data))
    _assert_one_line_error(cp, "corrupt.mp4")
    assert not data.exists()


def test_analyze_corrupt_video(corrupt_video: Path, tiny_model_dir: Path) -> None:
    cp = _run("analyze", str(corrupt_video), "--model", str(tiny_model_dir))
    _assert_one_line_error(cp, "corrupt.mp4")
    assert cp.stdout == ""


def test_up_unreachable_rtsp(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = tmp_path / "data"
    url = f"rtsp://127.0.0.1:{_closed_port()}/live"
    cp = _run("up", "--source", url, "--model", str(tiny_model_dir), "--data-dir", str(data))
    _assert_one_line_error(cp, url)
    assert not data.exists()


def test_up_unloadable_model(tmp_path: Path, cut_video: tuple[Path, list[float]]) -> None:
    data = tmp_path / "data"
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    (bad / "README").write_text("nothing here")
    cp = _run("up", "--source", str(cut_video[0]), "--model", str(bad), "--data-dir", str(data))
    _assert_one_line_error(cp, "not-a-model", "--model")
    assert not data.exists()


def test_up_dead_kafka(
    tmp_path: Path, tiny_model_dir: Path, cut_video: tuple[Path, list[float]], silent_server: int
) -> None:
    data = tmp_path / "data"
    for bootstrap in (f"127.0.0.1:{_closed_port()}", f"127.0.0.1:{silent_server}"):
        cp = _run(
            "up",
            "--source",
            str(cut_video[0]),
            "--model",
            str(tiny_model_dir),
            "--data-dir",
            str(data),
            "--kafka",
            bootstrap,
            env={"DINOSTREAM_KAFKA__CONNECT_TIMEOUT_S": "3"},  # the error, not the default's 10 s, is under test
        )
        _assert_one_line_error(cp, bootstrap, "Kafka")
        assert "within 3 s" in cp.stderr  # the setting was read: the wait was the one asked for
        assert not data.exists()


def test_bad_flag_value() -> None:
    cp = _run("analyze", "x.mp4", "--fps", "-1")
    _assert_one_line_error(cp, "sample_fps")

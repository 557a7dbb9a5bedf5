"""The `dinostream` command: `up`, `analyze`, `demo`.

Flags override fields of `dinostream.settings.Settings`; a flag left out keeps the default
defined there. Errors a user can fix print one line (`dinostream: error: ...`) and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dinostream.errors import DinostreamError
from dinostream.settings import DEFAULT_MODEL, Settings, describe_validation_error

log = logging.getLogger("dinostream")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help=f"local DINOv3 directory, Hub id, or random:vits16 (default {DEFAULT_MODEL})")
    p.add_argument("--fps", type=float, help="frames sampled per second of video (default 2)")
    p.add_argument("--device", help="auto, cpu or cuda:N (default auto)")
    p.add_argument("--image-size", type=int, help="model input side, a multiple of 16 (default 224)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _add_up(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", action="append", default=[], metavar="URL", help="video file or rtsp:// URL; repeat")
    p.add_argument("--kafka", metavar="BOOTSTRAP", help="Kafka bootstrap servers; default: start an embedded broker")
    p.add_argument("--qdrant-url", metavar="URL", help="Qdrant server; default: embedded Qdrant Edge in the data dir")
    p.add_argument("--data-dir", type=Path, help="where the index and logs live (default ./dinostream-data)")
    p.add_argument("--http", metavar="HOST:PORT", help="dashboard address (default 127.0.0.1:8000; port 0 = any)")
    p.add_argument("--fast", action="store_true", help="read files as fast as possible instead of at native rate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dinostream", description="Real-time video analytics on DINOv3 embeddings.")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole stack on this machine and print the dashboard URL")
    _add_common(up)
    _add_up(up)
    an = sub.add_parser("analyze", help="analyse a video file; one JSON event per line on stdout")
    an.add_argument("video")
    _add_common(an)
    demo = sub.add_parser("demo", help="make a short demo video locally and run `up` on it")
    _add_common(demo)
    _add_up(demo)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Overlay the given flags on the defaults of `Settings`."""
    model: dict[str, Any] = {}
    ingest: dict[str, Any] = {}
    top: dict[str, Any] = {}
    for flag, key in (("model", "model"), ("device", "device"), ("image_size", "image_size")):
        if getattr(args, flag, None) is not None:
            model[key] = getattr(args, flag)
    if args.fps is not None:
        ingest["sample_fps"] = args.fps
    if getattr(args, "source", None) is not None:
        top["sources"] = args.source
        ingest["realtime"] = not args.fast
    if getattr(args, "data_dir", None) is not None:
        top["data_dir"] = args.data_dir
    if getattr(args, "kafka", None):
        top["kafka"] = {"bootstrap": args.kafka}
    if getattr(args, "qdrant_url", None):
        top["index"] = {"qdrant_url": args.qdrant_url}
    if getattr(args, "http", None):
        host, sep, port = args.http.rpartition(":")
        if not sep or not port.isdigit():
            raise DinostreamError(f"--http must be HOST:PORT, got {args.http!r}")
        top["http"] = {"host": host or "127.0.0.1", "port": int(port)}
    return Settings.model_validate({**top, "model": model, "ingest": ingest})


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        for noisy in ("aiokafka", "faust", "mode", "kafka", "httpx", "uvicorn.error", "transformers"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


async def _run_up(settings: Settings) -> None:
    from dinostream.stack import Stack

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def ready(url: str) -> None:
        print(f"dinostream is up: dashboard {url}", flush=True)
        print("press Ctrl-C to stop", flush=True)

    await Stack(settings).run(stop, ready)
    log.info("stopped cleanly")


async def _run_analyze(path: str, settings: Settings) -> None:
    from dinostream.analyze import analyze_file

    def emit(event: Any) -> None:
        sys.stdout.write(json.dumps(event.to_dict(), separators=(",", ":")) + "\n")
        sys.stdout.flush()

    frames = await analyze_file(path, settings, emit)
    log.info("analysed %d frames of %s", frames, path)


def _demo_video(data_dir: Path) -> str:
    from dinostream.demo_video import make_video

    out = data_dir / "demo" / "demo.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    cuts = make_video(out, shots=8, shot_s=5.0)
    log.info("demo video %s: %d shots, cuts at %s s", out, len(cuts) + 1, ", ".join(f"{c:g}" for c in cuts))
    return str(out)


def _default_model_cached() -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(DEFAULT_MODEL, "config.json"), str)
    except Exception:  # noqa: BLE001 - any cache problem means "not available"
        return False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        if args.command == "demo":
            if args.model is None and not _default_model_cached():
                log.warning(
                    "demo: %s is not in the local Hugging Face cache; using random:vits16 "
                    "(untrained weights). Pass --model DIR for real features.",
                    DEFAULT_MODEL,
                )
                args.model = "random:vits16"
            args.source = [*args.source, _demo_video(args.data_dir or Path("dinostream-data"))]
        settings = settings_from_args(args)
        if args.command == "analyze":
            asyncio.run(_run_analyze(args.video, settings))
        else:
            asyncio.run(_run_up(settings))
        return 0
    except DinostreamError as e:
        print(f"dinostream: error: {e}", file=sys.stderr)
        return e.exit_code
    except ValidationError as e:
        print(f"dinostream: error: invalid settings: {describe_validation_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

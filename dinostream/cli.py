"""The `dinostream` command: `up`, `analyze`, `demo`, `streams` (add/list/rm on a running `up` or
gateway), and the separate roles `ingest`, `worker`, `index`, `gateway` (`dinostream.service`).

Flags override fields of `dinostream.core.settings.Settings`; a flag left out keeps the default
defined there. Errors a user can fix print one line (`dinostream: error: ...`) and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dinostream.cli_assets import add_assets, run_assets
from dinostream.cli_client import add_api_arguments
from dinostream.cli_client import api_call as _api_call
from dinostream.cli_tools import add_quality, add_segment, run_quality, run_segment
from dinostream.core.errors import DinostreamError
from dinostream.core.settings import DEFAULT_MODEL, Settings, describe_validation_error, settings_from_env

log = logging.getLogger("dinostream")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="settings file (.toml or .json) shaped like dinostream.core.settings.Settings; environment variables "
        "DINOSTREAM_<SECTION>__<FIELD> override it, flags override both",
    )
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
    p.add_argument(
        "--media-root",
        action="append",
        type=Path,
        metavar="DIR",
        help="directory files added through the API may come from; repeat (default: none, the API adds no files)",
    )
    p.add_argument("--allow-loopback", action="store_true", help="let the API add sources on loopback hosts")
    p.add_argument(
        "--allow-private-networks", action="store_true", help="let the API add cameras on private networks (LAN)"
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="serve the dashboard and API on a non-loopback address without any access token (http.tokens)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dinostream", description="Real-time video analytics on DINOv3 embeddings.")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole stack on this machine and print the dashboard URL")
    _add_common(up)
    _add_up(up)
    an = sub.add_parser(
        "analyze",
        help="analyse video files (as cameras of one site) or a list of pictures (the frames of one video); "
        "one JSON event per line on stdout",
    )
    an.add_argument(
        "video",
        nargs="+",
        help="video files, analysed one after the other; or pictures (.jpg, .png, ...), the frames of one video "
        "in the order given, taken at --fps (or at --timestamps)",
    )
    an.add_argument(
        "--timestamps",
        type=Path,
        metavar="FILE",
        help="pictures only: a text file with each picture's time in seconds, one a line, in order",
    )
    an.add_argument(
        "--watch",
        action="append",
        default=[],
        metavar="LABEL=PICTURE",
        help="look for what PICTURE shows (a crop) and report it as LABEL; repeat",
    )
    an.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    an.add_argument(
        "--index",
        action="store_true",
        help="also write frames and events to the index (Qdrant Edge in --data-dir, or --qdrant-url) for search",
    )
    an.add_argument("--data-dir", type=Path, help="where the index lives (default ./dinostream-data)")
    an.add_argument("--qdrant-url", metavar="URL", help="Qdrant server; default: embedded Qdrant Edge in the data dir")
    _add_common(an)
    demo = sub.add_parser("demo", help="make a short demo video locally and run `up` on it")
    _add_common(demo)
    _add_up(demo)
    _add_streams(sub.add_parser("streams", help="add, list or remove the streams of a running `dinostream up`"))
    add_quality(
        sub.add_parser(
            "quality", help="pixel quality of pictures: sharpness, exposure, contrast, noise, blockiness, a score"
        )
    )
    add_assets(sub.add_parser("assets", help="upload, list, remove or analyse the stored assets of a running service"))
    add_segment(sub.add_parser("segment", help="click-to-segment a picture: a mask, overlay and heatmap at its size"))
    for role, text in ROLE_HELP.items():
        _add_role(sub.add_parser(role, help=text, description=text), role)
    return parser


ROLE_HELP = {
    "ingest": "run the ingest role: the streams of the streams-topic partitions Kafka gives this node, the model, "
    "frame records to Kafka",
    "worker": "run an analytics worker (Faust): frame records in, events out",
    "index": "run the index sink: frame records and events into Qdrant",
    "gateway": "run a gateway: dashboard, HTTP API, websockets, alerts; streams added here go to the streams topic",
}


def _add_role(p: argparse.ArgumentParser, role: str) -> None:
    """The flags of `dinostream <role>`: none required, everything also settable by --config and env."""
    _add_common(p)
    p.add_argument(
        "--kafka",
        metavar="BOOTSTRAP",
        help="Kafka bootstrap servers (or DINOSTREAM_KAFKA__BOOTSTRAP); required: the roles start no broker",
    )
    p.add_argument("--qdrant-url", metavar="URL", help="Qdrant server (index and gateway; default: none)")
    p.add_argument("--data-dir", type=Path, help="where local state and logs live (default ./dinostream-data)")
    p.add_argument("--http", metavar="HOST:PORT", help="health/metrics (gateway: dashboard) address; port 0 = any")
    if role in ("ingest", "gateway"):
        p.add_argument(
            "--media-root",
            action="append",
            type=Path,
            metavar="DIR",
            help="directory stream files may come from; repeat (default: none)",
        )
        p.add_argument("--allow-loopback", action="store_true", help="allow sources on loopback hosts")
        p.add_argument("--allow-private-networks", action="store_true", help="allow cameras on private networks")
    if role == "ingest":
        p.add_argument("--fast", action="store_true", help="read files as fast as possible instead of at native rate")


def _add_streams(p: argparse.ArgumentParser) -> None:
    ssub = p.add_subparsers(dest="streams_command", required=True)
    add = ssub.add_parser("add", help="add a stream; it is kept across restarts")
    add.add_argument("url", help="video file (under the service's media roots) or rtsp://, http(s):// URL")
    add.add_argument("--id", help="stream id (default: derived from the URL)")
    add.add_argument("--sample-fps", type=float, help="frames sampled per second (default: the service's)")
    add.add_argument("--resolution", type=int, help="model resolution preset: 224, 448, 512 (multiple of 16)")
    add.add_argument("--decode", choices=["auto", "all", "keyframes"], help="which frames are decoded")
    add.add_argument(
        "--realtime", action=argparse.BooleanOptionalAction, help="play a file at its native rate (or not)"
    )
    ssub.add_parser("list", help="every stream with its configuration and health")
    rm = ssub.add_parser("rm", help="stop a stream and forget it")
    rm.add_argument("id")
    for q in ssub.choices.values():
        add_api_arguments(
            q,
            "access token (operator or admin to add or remove; env DINOSTREAM_TOKEN), sent as Authorization: "
            "Bearer; needed when the service has tokens set",
        )


def _run_streams(args: argparse.Namespace) -> None:
    if args.streams_command == "add":
        fields = {
            "url": args.url,
            "id": args.id,
            "sample_fps": args.sample_fps,
            "resolution": args.resolution,
            "decode": args.decode,
            "realtime": args.realtime,
        }
        body = {k: v for k, v in fields.items() if v is not None}
        out = _api_call(args.api, "POST", "/api/v1/streams", body, args.token)
    elif args.streams_command == "list":
        out = _api_call(args.api, "GET", "/api/v1/streams", token=args.token)
    else:
        out = _api_call(args.api, "DELETE", f"/api/v1/streams/{urllib.parse.quote(args.id, safe='')}", token=args.token)
    print(json.dumps(out, indent=2))


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _config_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        text = path.read_text()
    except OSError as e:
        raise DinostreamError(f"cannot read settings file {path}: {e.strerror or e}") from None
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as e:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise DinostreamError(f"settings file {path} is not valid {kind}: {e}") from None
    if not isinstance(data, dict):
        raise DinostreamError(f"settings file {path} must hold an object of settings sections")
    return data


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """The defaults of `Settings`, overlaid by the --config file, then DINOSTREAM_* environment
    variables, then the flags given."""
    try:
        base = _deep_merge(_config_file(getattr(args, "config", None)), settings_from_env(environ or os.environ))
    except ValueError as e:
        raise DinostreamError(str(e)) from None
    model: dict[str, Any] = {}
    ingest: dict[str, Any] = {}
    top: dict[str, Any] = {}
    for flag, key in (("model", "model"), ("device", "device"), ("image_size", "image_size")):
        if getattr(args, flag, None) is not None:
            model[key] = getattr(args, flag)
    if args.fps is not None:
        ingest["sample_fps"] = args.fps
    if getattr(args, "source", None):
        top["sources"] = args.source
    if getattr(args, "fast", False):
        ingest["realtime"] = False
    elif hasattr(args, "fast") and "realtime" not in base.get("ingest", {}):
        ingest["realtime"] = True  # `up` plays files like live cameras unless told otherwise
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
    if getattr(args, "media_root", None):
        ingest["media_roots"] = [str(p) for p in args.media_root]
    for flag in ("allow_loopback", "allow_private_networks"):
        if getattr(args, flag, False):
            ingest[flag] = True
    flags = {**top, "model": model, "ingest": ingest}
    return Settings.model_validate(_deep_merge(base, flags))


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        for noisy in ("aiokafka", "faust", "mode", "kafka", "httpx", "uvicorn.error", "transformers"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


async def _run_service(roles: tuple[str, ...], settings: Settings, ready: Callable[[str], None]) -> None:
    from dinostream.service import Service

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await Service(settings, roles).run(stop, ready)


async def _run_role(role: str, settings: Settings) -> None:
    def ready(url: str) -> None:
        print(f"dinostream {role} is up: {url}", flush=True)

    await _run_service((role,), settings, ready)
    log.info("%s stopped cleanly", role)


async def _run_up(settings: Settings) -> None:
    from dinostream.node import ROLES

    def ready(url: str) -> None:
        print(f"dinostream is up: dashboard {url}", flush=True)
        print("press Ctrl-C to stop", flush=True)

    await _run_service(ROLES, settings, ready)
    log.info("stopped cleanly")


def _analyze_inputs(args: argparse.Namespace) -> list[Any]:
    """analyze's inputs: the video paths, or the pictures as one frame list (FrameList) timed by
    --fps or --timestamps; DinostreamError names a mix of both or a bad time."""
    import warnings

    from dinostream.analyze import FrameList, NoFrameTimes, is_picture_path

    pictures = [p for p in args.video if is_picture_path(p)]
    if not pictures:
        if args.timestamps is not None:
            raise DinostreamError("--timestamps is for a list of pictures; videos carry their own times")
        return list(args.video)
    if len(pictures) != len(args.video):
        videos = [p for p in args.video if not is_picture_path(p)]
        raise DinostreamError(
            f"analyze takes video files or pictures (one video's frames), not both: {videos[0]} with {pictures[0]}"
        )
    times = None
    if args.timestamps is not None:
        try:
            lines = args.timestamps.read_text().split()
            times = [float(t) for t in lines]
        except (OSError, ValueError) as e:
            raise DinostreamError(f"--timestamps {args.timestamps}: {e}") from None
    if times is not None and args.fps is not None:
        raise DinostreamError("give --fps or --timestamps for pictures, not both")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NoFrameTimes)
            frames = FrameList(pictures, fps=args.fps, timestamps=times)
    except ValueError as e:
        raise DinostreamError(f"pictures: {e}") from None
    if any(issubclass(w.category, NoFrameTimes) for w in caught):
        log.warning(
            "%d pictures without --fps or --timestamps: numbered at 1 fps (picture i at i s); "
            "scene changes and phases are timed by it",
            len(pictures),
        )
    return [frames]


def _parse_watch(items: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        label, sep, picture = item.partition("=")
        if not sep or not label.strip() or not picture:
            raise DinostreamError(f"--watch must be LABEL=PICTURE, got {item!r}")
        out.append((label.strip(), picture))
    return out


async def _run_analyze(args: argparse.Namespace, settings: Settings) -> None:
    from dinostream.analyze import analyze_files
    from dinostream.core.blas import limit_blas_threads

    limit_blas_threads(settings.blas_threads)  # as a service process does

    def emit(event: Any) -> None:
        sys.stdout.write(json.dumps(event.to_dict(), separators=(",", ":")) + "\n")
        sys.stdout.flush()

    watch = _parse_watch(args.watch)
    inputs = _analyze_inputs(args)
    frames = await analyze_files(
        inputs, settings, emit, watch=watch, show_progress=not args.no_progress, index=args.index
    )
    log.info("analysed %d frames of %s", frames, ", ".join(args.video))


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
    _configure_logging(getattr(args, "verbose", False))
    try:
        if args.command == "streams":
            _run_streams(args)
            return 0
        if args.command == "quality":
            run_quality(args)
            return 0
        if args.command == "assets":
            run_assets(args)
            return 0
        if args.command == "segment":
            run_segment(args)
            return 0
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
        if hasattr(args, "insecure"):  # up and demo serve the dashboard and the API
            from dinostream.dashboard.auth import check_exposure

            check_exposure(settings.http, insecure=args.insecure)  # one line, exit 2
        if args.command in ROLE_HELP:
            from dinostream.node import require_bootstrap

            require_bootstrap(settings, [args.command])  # before anything loads: one line, exit 2
            asyncio.run(_run_role(args.command, settings))
            return 0
        if args.command == "analyze":
            asyncio.run(_run_analyze(args, settings))
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

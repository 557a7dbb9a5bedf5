"""`dinostream assets add|list|rm|analyze`: the stored assets of a running service (issue 16),
through its HTTP API (`dinostream.cli_client`), like `dinostream streams`."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from dinostream.cli_client import add_api_arguments, api_call, multipart
from dinostream.core.errors import DinostreamError

PREFIX = "/api/v1/assets"
POLL_S = 0.5


def add_assets(p: argparse.ArgumentParser) -> None:
    asub = p.add_subparsers(dest="assets_command", required=True)
    add = asub.add_parser("add", help="upload a picture or a video; prints its asset id")
    add.add_argument("file", type=Path)
    add.add_argument("--analyze", action="store_true", help="a video: analyse it too and wait for its shots")
    asub.add_parser("list", help="every stored asset")
    rm = asub.add_parser("rm", help="delete an asset")
    rm.add_argument("id")
    an = asub.add_parser("analyze", help="analyse a stored video, wait for the end and print its shots and cuts")
    an.add_argument("id")
    for q in (add, an):
        q.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
        q.add_argument(
            "--timeout", type=float, default=3600.0, metavar="S", help="give up waiting after S s (default 3600)"
        )
    for q in asub.choices.values():
        add_api_arguments(q, "access token (env DINOSTREAM_TOKEN), sent as Authorization: Bearer")


def run_assets(args: argparse.Namespace) -> None:
    if args.assets_command == "add":
        try:
            content = args.file.read_bytes()
        except OSError as e:
            raise DinostreamError(f"cannot read {args.file}: {e.strerror or e}") from None
        out = api_call(args.api, "POST", PREFIX, token=args.token, raw=multipart("file", args.file.name, content))
        if args.analyze:
            print(json.dumps(out), file=sys.stderr)
            out = _analyze(args, str(out["id"]))
    elif args.assets_command == "list":
        out = api_call(args.api, "GET", PREFIX, token=args.token)
    elif args.assets_command == "rm":
        out = api_call(args.api, "DELETE", f"{PREFIX}/{_quoted(args.id)}", token=args.token)
    else:
        out = _analyze(args, args.id)
    print(json.dumps(out, indent=2))


def _analyze(args: argparse.Namespace, asset_id: str) -> dict[str, Any]:
    """Start (or join) the asset's analysis and poll it to the end: its result, or DinostreamError
    with the job's error. Progress on stderr."""
    url = f"{PREFIX}/{_quoted(asset_id)}/analysis"
    job = api_call(args.api, "POST", url, token=args.token)
    deadline = time.monotonic() + args.timeout
    while job["state"] not in ("done", "failed"):
        if time.monotonic() > deadline:
            raise DinostreamError(f"asset {asset_id}'s analysis did not end within {args.timeout:g} s (--timeout)")
        if not args.no_progress:
            print(f"\ranalysing {asset_id}: {job['state']} {100 * job['progress']:.0f}%", end="", file=sys.stderr)
        time.sleep(POLL_S)
        job = api_call(args.api, "GET", url, token=args.token)
    if not args.no_progress:
        print(file=sys.stderr)
    if job["state"] == "failed":
        raise DinostreamError(f"asset {asset_id}'s analysis failed: {job['error']}")
    result: dict[str, Any] = job["result"]
    return {"asset_id": asset_id, **result}


def _quoted(asset_id: str) -> str:
    return urllib.parse.quote(asset_id, safe="")

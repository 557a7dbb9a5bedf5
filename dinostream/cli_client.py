"""The CLI's client of a running service's HTTP API (`dinostream streams`, `dinostream assets`):
one request, its JSON answer, or a DinostreamError in words (401/403 say how to pass a token)."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
import uuid
from typing import Any

from dinostream.core.errors import DinostreamError

DEFAULT_API = "http://127.0.0.1:8000"  # where `dinostream up` serves


def add_api_arguments(p: argparse.ArgumentParser, token_help: str) -> None:
    """--api and --token (default env DINOSTREAM_TOKEN) of a command that talks to a running service."""
    p.add_argument("--api", default=DEFAULT_API, metavar="URL", help=f"the service's address (default {DEFAULT_API})")
    p.add_argument("--token", default=os.environ.get("DINOSTREAM_TOKEN"), metavar="TOKEN", help=token_help)


def api_call(
    api: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    token: str | None = None,
    *,
    raw: tuple[bytes, str] | None = None,
) -> Any:
    """One request to the service's HTTP API; its JSON answer, or DinostreamError with its message.
    `body` is sent as JSON; `raw` as (bytes, content type), e.g. a multipart upload."""
    url = api.rstrip("/") + path
    data, content_type = (
        raw if raw is not None else (json.dumps(body).encode() if body is not None else None, "application/json")
    )
    req = urllib.request.Request(url, data=data, method=method, headers={"Accept": "application/json"})
    if data is not None:
        req.add_header("Content-Type", content_type)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        answer = e.read()
        try:
            message = json.loads(answer)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = answer.decode(errors="replace").strip()[:300] or e.reason
        hint = " (pass --token or set DINOSTREAM_TOKEN)" if e.code in (401, 403) and not token else ""
        raise DinostreamError(f"{method} {url}: {e.code}: {message}{hint}") from None
    except urllib.error.URLError as e:
        raise DinostreamError(
            f"cannot reach the dinostream API at {api}: {e.reason}; is `dinostream up` running there? (--api URL)"
        ) from None
    except (OSError, ValueError) as e:  # a timeout, a reset, a non-JSON answer
        raise DinostreamError(f"{method} {url} failed: {e}") from None


def multipart(field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one file field: (bytes, content type) for `api_call(raw=...)`."""
    boundary = uuid.uuid4().hex
    safe = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{safe}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"

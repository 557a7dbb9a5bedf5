"""Processor state that may exceed one Kafka message, saved as a head and numbered chunks.

Pure: the worker stores the head under the state's key and chunk i under "<key>#<i>". A state
that fits is its own head (no chunks), so small states look exactly as before.

    >>> head, chunks = split_chunks({"bank": "..."}, max_chars=450_000)
    >>> join_chunks(head, lambda i: chunks[i]) == {"bank": "..."}
    True
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

CHUNKED = "__chunks__"


def split_chunks(state: dict[str, Any], max_chars: int) -> tuple[dict[str, Any], list[str]]:
    """(head, chunks): `state` itself and no chunks when its JSON fits in `max_chars`, else a head
    naming the chunk count and digest, and the JSON text cut into pieces of at most `max_chars`.

    The cuts fall around each large value (anything but an object, of at least a quarter of
    `max_chars` as JSON, however deep): such a value gets chunks of its own, cut from its start, so a
    large part that did not change since the last save (an anomaly model's memory bank) gives the
    same chunks again, which the writer need not send again; what changes is packed around it."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    segments: list[tuple[str, bool]] = []
    _segments(state, max(max_chars // 4, 1), segments)
    text = "".join(t for t, _ in segments)
    if len(text) <= max_chars:
        return state, []
    chunks: list[str] = []
    small: list[str] = []
    for t, large in segments:
        if large:
            chunks += _cut("".join(small), max_chars)
            chunks += _cut(t, max_chars)
            small = []
        else:
            small.append(t)
    chunks += _cut("".join(small), max_chars)
    return {CHUNKED: len(chunks), "sha1": hashlib.sha1(text.encode()).hexdigest()}, chunks


def _cut(text: str, max_chars: int) -> list[str]:
    return [text[i : i + max_chars] for i in range(0, len(text), max_chars)]


def _segments(value: Any, large: int, out: list[tuple[str, bool]]) -> None:
    """`value`'s JSON text (exactly `json.dumps(value, separators=(",", ":"))`) as consecutive
    pieces, each marked when it is a value of at least `large` characters; objects with string keys
    are opened up, anything else is one piece."""
    if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        out.append(("{", False))
        for i, (k, v) in enumerate(value.items()):
            out.append((("," if i else "") + json.dumps(k) + ":", False))
            _segments(v, large, out)
        out.append(("}", False))
        return
    text = json.dumps(value, separators=(",", ":"))
    out.append((text, len(text) >= large))


def chunk_count(head: Any) -> int:
    """How many chunks a stored head names (0 for an inline state or nothing)."""
    return int(head[CHUNKED]) if isinstance(head, dict) and CHUNKED in head else 0


def join_chunks(head: Any, get_chunk: Callable[[int], Any]) -> dict[str, Any] | None:
    """The state a head and its chunks were split from; None (logged) when a chunk is missing or
    does not match the digest, so the caller starts that state afresh rather than from garbage."""
    if not head:
        return None
    n = chunk_count(head)
    if n == 0:
        return dict(head)
    parts = [get_chunk(i) for i in range(n)]
    if not all(isinstance(p, str) for p in parts):
        log.error("saved state is missing %d of its %d chunks; starting afresh", sum(not p for p in parts), n)
        return None
    text = "".join(parts)
    if hashlib.sha1(text.encode()).hexdigest() != head.get("sha1"):
        log.error("saved state's %d chunks do not match its digest; starting afresh", n)
        return None
    return json.loads(text)

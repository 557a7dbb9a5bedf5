"""Retrospective search, stream summaries and image utilities: the HTTP shell over a `VectorIndex`
and the image embedder.

`POST /api/v1/search` takes one query, as either
  - multipart/form-data with the query picture as file field `image`, or a stored picture's
    `asset_id` as a text field (`dinostream.dashboard.assets_api`; fields below as text), or
  - application/json with exactly one of
      `{"frame": {"stream": "cam1", "t": 12.5}}`           the indexed frame nearest media time t
      `{"point": {"stream": "cam1", "t": 12.5, "x": 0.4, "y": 0.6}}`  what is at (x, y) of that
          frame, x and y in 0..1 from the top left: a patch-level query (the clicked part of the
          frame's pooled cell grid, segmented as in `dinostream.analytics.watchlist.click_to_segment`
          with the stream's `ReidSettings.click_threshold`),
          matched against every frame's cells with MaxSim. The answer's `query.heatmap` is the
          similarity of every cell to the clicked one, `query.box` the segmented part.
      `{"event": "<event id>"}`                             the frame that triggered the event
      `{"asset_id": "a_..."}`                               a stored picture
and the optional fields `limit` (1-100, default 10), `cursor`, `streams` (list, or comma-separated
text in a form), `from` / `to` (wall-clock unix seconds, inclusive), `event_types` (only frames
that events of these types refer to), `min_score` (the lowest score that is a match; default:
the best score minus `IndexSettings.match_margin`) and `gap_s` (moment gap, default
`IndexSettings.moment_gap_s`).

Of the nearest `IndexSettings.search_candidates` frames, those that match are merged into moments
(`dinostream.sinks.moments`) and ranked best first. Pagination: an answer carries `next_cursor` (null on the
last page); send it
back as `cursor` with the same query to get the next `limit` moments. A cursor is opaque, tied to
its query (another query gets 422 `invalid_cursor`), and computed afresh: frames indexed meanwhile
may shift the pages.

    >>> app.include_router(search_router(http=HttpSettings(), index_settings=IndexSettings(),
    ...                                  reid_settings=ReidSettings(), hub=hub, index=index,
    ...                                  embed_images=embed, health=health))
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.datastructures import FormData, UploadFile

from dinostream.analytics.quality import measure_quality
from dinostream.analytics.summary import summarize
from dinostream.analytics.verdict import verdict
from dinostream.analytics.watchlist import click_to_segment
from dinostream.core.records import EVENT_TYPES, Event, Heatmap, frame_point_id
from dinostream.core.settings import HttpSettings, IndexSettings, ReidSettings
from dinostream.dashboard.assets_api import picture_bytes
from dinostream.dashboard.http_common import FRAME_THUMBNAIL_PATH, ApiError, EmbedImages, check_stream, require
from dinostream.dashboard.live_hub import LiveHub
from dinostream.dashboard.uploads import decode_rgb, limited_body, limited_form
from dinostream.sinks.asset_store import AssetStore
from dinostream.sinks.moments import Moment, matches, merge_moments, paginate
from dinostream.sinks.vector_index import EventFilter, FrameFilter, FrameHit, StoredFrame, VectorIndex

MAX_SEARCH_LIMIT = 100
DEFAULT_SEARCH_LIMIT = 10
MAX_IMAGES = 100  # pictures one image-utility request may carry
EMBED_BATCH = 16  # pictures decoded and embedded at once (bounds a request's memory)
MAX_EVENT_FRAMES = 5000  # events an event-type search looks at, newest first
MAX_SUMMARY_K = 64
DEFAULT_SUMMARY_K = 8
DEFAULT_SUMMARY_WINDOW_S = 3600.0
_SUMMARY_SLICES = 20  # a window with too many frames is read as this many evenly spaced slices


# ---------- request bodies ----------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FrameRef(_Body):
    stream: str
    t: float = Field(allow_inf_nan=False)


class PointRef(FrameRef):
    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)


class SearchBody(_Body):
    frame: FrameRef | None = None
    point: PointRef | None = None
    event: str | None = Field(None, min_length=1, max_length=200)
    asset_id: str | None = Field(None, min_length=1, max_length=64)
    image: Any = None  # only to answer 415: pictures are uploaded as multipart
    limit: int = Field(DEFAULT_SEARCH_LIMIT, ge=1, le=MAX_SEARCH_LIMIT)
    cursor: str | None = None
    streams: list[str] | None = None
    from_: float | None = Field(None, alias="from", allow_inf_nan=False)
    to: float | None = Field(None, allow_inf_nan=False)
    event_types: list[str] | None = None
    gap_s: float | None = Field(None, ge=0, allow_inf_nan=False)
    min_score: float | None = Field(None, allow_inf_nan=False)

    @field_validator("streams", "event_types")
    @classmethod
    def _none_when_empty(cls, v: list[str] | None) -> list[str] | None:
        return v or None


class _Filters:
    """The filters of a search, validated, as the index wants them."""

    def __init__(
        self,
        streams: Sequence[str] | None,
        since: float | None,
        until: float | None,
        event_types: Sequence[str] | None,
        gap_s: float,
        min_score: float | None,
        margin: float,
    ) -> None:
        self.streams = [check_stream(s) for s in streams] if streams else None
        if since is not None and until is not None and since > until:
            raise ApiError(422, "invalid_time_range", f"'from' ({since}) is after 'to' ({until})")
        self.since, self.until = since, until
        unknown = sorted(set(event_types or ()) - set(EVENT_TYPES))
        if unknown:
            raise ApiError(422, "invalid_event_type", f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
        self.event_types = sorted(set(event_types)) if event_types else None
        self.gap_s = gap_s
        self.min_score = min_score
        self.margin = margin

    def key(self) -> dict[str, Any]:
        return {
            "streams": self.streams,
            "from": self.since,
            "to": self.until,
            "types": self.event_types,
            "gap": self.gap_s,
            "min_score": self.min_score,
        }


class _Query:
    """A resolved query: the vector, which collection it searches, and what to tell about it."""

    def __init__(self, vector: np.ndarray, target: str, key: Any, info: dict[str, Any]) -> None:
        self.vector = vector
        self.target = target  # "frames" (CLS cosine) or "regions" (cells, MaxSim)
        self.key = key  # identifies the query for cursors
        self.info = info


# ---------- the router ----------


def search_router(
    *,
    http: HttpSettings,
    index_settings: IndexSettings,
    reid_settings: ReidSettings | Callable[[str], ReidSettings],
    hub: LiveHub,
    index: VectorIndex | None,
    embed_images: EmbedImages | None,
    health: Callable[[], dict[str, Any]],
    assets: AssetStore | None = None,
) -> APIRouter:
    """Search, summaries and image utilities. Without `index` search and summaries answer 503,
    without `embed_images` image queries and the image utilities do. Pictures may be stored
    `assets` referred to by `asset_id` (a text value in a picture's form field; `asset_id` in search).
    `reid_settings` are the re-identification settings, or those of a stream (`AnalyticsControl.reid`), read at each
    request: a point query segments the clicked frame with its stream's `click_threshold`."""
    router = APIRouter()
    cfg = index_settings

    def click_threshold(stream: str) -> float:
        reid = reid_settings if isinstance(reid_settings, ReidSettings) else reid_settings(stream)
        return reid.click_threshold

    @router.post("/api/v1/search", openapi_extra=_SEARCH_OPENAPI)
    async def search(request: Request) -> dict[str, Any]:
        # The body is parsed here rather than by FastAPI so the size limit is enforced while
        # reading (Content-Length first, then the bytes actually received) with our error shape.
        idx = require(index, "the vector index")
        content_type = request.headers.get("content-type", "").lower()
        if content_type.startswith("multipart/form-data"):
            embed = require(embed_images, "the image embedder")
            async with limited_form(request, http.max_upload_bytes, max_files=1) as form:
                upload, asset_id = form.get("image"), _text_field(form, "asset_id")
                if (upload is None) == (asset_id is None) or isinstance(upload, str):
                    raise ApiError(
                        422,
                        "missing_image",
                        "send the query picture as file field 'image' or a stored picture's 'asset_id' (one of them)",
                        details={"fields": ["image", "asset_id"]},
                    )
                limit = _parse_limit(form.get("limit"))
                cursor = _text_field(form, "cursor")
                filters = _Filters(
                    _split(form.get("streams"), "streams"),
                    _float_field(form, "from"),
                    _float_field(form, "to"),
                    _split(form.get("event_types"), "event_types"),
                    _gap(_float_field(form, "gap_s"), cfg),
                    _float_field(form, "min_score"),
                    cfg.match_margin,
                )
                data = await upload.read() if isinstance(upload, UploadFile) else None
            if data is None:
                assert asset_id is not None
                data = await picture_bytes(assets, asset_id, http.max_upload_bytes)
            query = await _picture_query(embed, data, asset_id)
        elif content_type.startswith("application/json"):
            body = await _json_body(request, http.max_upload_bytes)
            limit, cursor = body.limit, body.cursor
            filters = _Filters(
                body.streams,
                body.from_,
                body.to,
                body.event_types,
                _gap(body.gap_s, cfg),
                body.min_score,
                cfg.match_margin,
            )
            if body.asset_id is not None and not (body.frame or body.point or body.event or body.image):
                data = await picture_bytes(assets, body.asset_id, http.max_upload_bytes)
                query = await _picture_query(require(embed_images, "the image embedder"), data, body.asset_id)
            else:
                with _supported():
                    query = await _resolve_query(idx, body, click_threshold)
        else:
            raise ApiError(
                415,
                "unsupported_media_type",
                "send multipart/form-data with the query picture as file field 'image' (or 'asset_id'), "
                "or application/json with one of 'frame', 'point', 'event' or 'asset_id'",
            )
        offset = _read_cursor(cursor, _fingerprint(query.key, filters))
        with _supported():
            moments, events = await asyncio.to_thread(_moments, idx, query, filters, cfg.search_candidates)
        page, next_offset = paginate(moments, offset, limit)
        return {
            "results": [_moment_json(m, events) for m in page],
            "total": len(moments),
            "next_cursor": None if next_offset is None else _cursor(next_offset, _fingerprint(query.key, filters)),
            "query": query.info,
            "untrained": _untrained(hub, health),
        }

    @router.get("/api/v1/streams/{stream}/summary")
    async def summary(
        stream: str,
        from_: Annotated[float | None, Query(alias="from", description="wall clock, default to - 1 h")] = None,
        to: Annotated[float | None, Query(description="wall clock, default now")] = None,
        k: Annotated[int, Query(ge=1, le=MAX_SUMMARY_K)] = DEFAULT_SUMMARY_K,
    ) -> dict[str, Any]:
        """`k` keyframes that cover the window [from, to] (wall-clock unix seconds) of `stream`:
        `dinostream.analytics.summary` over the frames the index holds, at most `summary_max_frames` of them."""
        idx = require(index, "the vector index")
        check_stream(stream)
        until = time.time() if to is None else to
        since = until - DEFAULT_SUMMARY_WINDOW_S if from_ is None else from_
        if not (math.isfinite(since) and math.isfinite(until)):
            raise ApiError(422, "invalid_time_range", "'from' and 'to' must be finite numbers")
        if since > until:
            raise ApiError(422, "invalid_time_range", f"'from' ({since}) is after 'to' ({until})")
        with _supported():
            frames, in_window = await asyncio.to_thread(
                _window_frames, idx, stream, since, until, cfg.summary_max_frames
            )
        if not frames:
            raise ApiError(404, "no_frames", f"stream {stream!r} has no indexed frames from {since} to {until}")
        vectors = np.stack([_global_vector(f) for f in frames])
        picks = await asyncio.to_thread(summarize, vectors, k, times=[f.ts for f in frames])
        return {
            "stream": stream,
            "from": since,
            "to": until,
            "k": k,
            "frames_in_window": in_window,
            "frames_considered": len(frames),
            "keyframes": [
                {
                    "seq": frames[i].seq,
                    "t": frames[i].t,
                    "ts": frames[i].ts,
                    "thumbnail_url": FRAME_THUMBNAIL_PATH.format(stream=stream, seq=frames[i].seq),
                }
                for i in picks
            ],
        }

    async def read_pictures(request: Request, fields: dict[str, tuple[int, int]]) -> dict[str, list[bytes]]:
        """The pictures of the multipart `fields` (name -> (min, max) count), each an uploaded file
        or a stored picture's asset id (a text value of the same field)."""
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise ApiError(
                415,
                "unsupported_media_type",
                f"send multipart/form-data with file fields {_names(fields)}",
                details={"fields": list(fields)},
            )
        most = sum(hi for _, hi in fields.values())
        datas: dict[str, list[bytes]] = {}
        used = 0  # pictures by asset id count as uploads: http.max_upload_bytes per request
        async with limited_form(request, http.max_upload_bytes, max_files=most, max_texts=16 + most) as form:
            for name, (lo, hi) in fields.items():
                uploads = form.getlist(name)
                _check_count(name, len(uploads), lo, hi)
                datas[name] = []
                for u in uploads:  # a text value in a picture's field is the asset_id of a stored picture
                    if isinstance(u, UploadFile):
                        data = await u.read()
                    else:
                        data = await picture_bytes(assets, u, http.max_upload_bytes - used)
                    used += len(data)
                    datas[name].append(data)
        return datas

    async def embed_uploads(request: Request, fields: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
        """Read the multipart pictures of `fields` (`read_pictures`) and embed them,
        `EMBED_BATCH` at a time: at most that many decoded pictures are held at once, so a
        request of `MAX_IMAGES` costs no more memory than one of 16."""
        embed = require(embed_images, "the image embedder")
        datas = await read_pictures(request, fields)
        names = [n for n in fields for _ in datas[n]]
        flat = [d for n in fields for d in datas[n]]
        chunks = []
        for start in range(0, len(flat), EMBED_BATCH):
            rgbs = [await asyncio.to_thread(decode_rgb, d) for d in flat[start : start + EMBED_BATCH]]
            chunks.append(np.asarray(await embed(rgbs), dtype=np.float32))
            del rgbs
        vecs = _unit(np.concatenate(chunks))
        out: dict[str, np.ndarray] = {}
        for name in fields:
            out[name] = vecs[[i for i, n in enumerate(names) if n == name]]
        return out

    @router.post("/api/v1/images/embed", openapi_extra=_images_openapi({"images": f"1 to {MAX_IMAGES} pictures"}))
    async def images_embed(request: Request) -> dict[str, Any]:
        """One vector per picture (unit length, the embedder's global descriptor), in upload order."""
        vecs = (await embed_uploads(request, {"images": (1, MAX_IMAGES)}))["images"]
        return {"dim": int(vecs.shape[1]), "vectors": vecs.tolist(), "untrained": _untrained(hub, health)}

    @router.post("/api/v1/images/quality", openapi_extra=_images_openapi({"images": f"1 to {MAX_IMAGES} pictures"}))
    async def images_quality(request: Request) -> dict[str, Any]:
        """Each picture's quality from its pixels (`dinostream.analytics.quality`): sharpness,
        exposure, contrast, noise and JPEG blockiness with their 0..1 scores, an overall `score`
        and the `reasons` it is low, in upload order. No model is needed."""
        datas = (await read_pictures(request, {"images": (1, MAX_IMAGES)}))["images"]
        results = []
        for i, data in enumerate(datas):
            rgb = await asyncio.to_thread(decode_rgb, data)
            quality = await asyncio.to_thread(measure_quality, rgb)
            del rgb
            results.append({"index": i, **quality.to_dict()})
        return {"results": results}

    @router.post("/api/v1/images/compare", openapi_extra=_images_openapi({"images": "exactly 2 pictures"}))
    async def images_compare(request: Request) -> dict[str, Any]:
        """Cosine similarity of two pictures, its distance and percentage, and whether they show
        the same subject (cosine at or above `IndexSettings.same_subject_threshold`) with a
        confidence level (`dinostream.analytics.verdict`)."""
        a, b = (await embed_uploads(request, {"images": (2, 2)}))["images"]
        return {**verdict(float(a @ b), cfg.same_subject_threshold).to_dict(), "untrained": _untrained(hub, health)}

    @router.post("/api/v1/images/similarity", openapi_extra=_images_openapi({"images": f"2 to {MAX_IMAGES} pictures"}))
    async def images_similarity(request: Request) -> dict[str, Any]:
        """The cosine similarity matrix of a set of pictures (row i, column j: picture i vs j)."""
        vecs = (await embed_uploads(request, {"images": (2, MAX_IMAGES)}))["images"]
        return {"matrix": (vecs @ vecs.T).tolist(), "count": len(vecs), "untrained": _untrained(hub, health)}

    @router.post(
        "/api/v1/images/match",
        openapi_extra=_images_openapi({"query": "1 picture", "candidates": f"1 to {MAX_IMAGES} pictures"}),
    )
    async def images_match(request: Request) -> dict[str, Any]:
        """Which candidate is most like the query: its index (in upload order), every cosine, and
        the candidates ranked best first, each with its verdict (`dinostream.analytics.verdict`)."""
        vecs = await embed_uploads(request, {"query": (1, 1), "candidates": (1, MAX_IMAGES)})
        scores = vecs["candidates"] @ vecs["query"][0]
        threshold = cfg.same_subject_threshold
        order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
        ranked = [
            {"rank": r + 1, "index": i, **verdict(float(scores[i]), threshold).to_dict()} for r, i in enumerate(order)
        ]
        best = order[0]
        return {
            "best": best,
            "scores": scores.tolist(),
            "same_subject": bool(scores[best] >= threshold),
            "threshold": threshold,
            "confidence": ranked[0]["confidence"],
            "ranked": ranked,
            "untrained": _untrained(hub, health),
        }

    return router


# ---------- search internals ----------


async def _picture_query(embed: EmbedImages, data: bytes, asset_id: str | None) -> _Query:
    """A query by picture: its embedding, searched among frames by CLS cosine."""
    rgb = await asyncio.to_thread(decode_rgb, data)
    vecs = await embed([rgb])
    info: dict[str, Any] = {"kind": "image"} if asset_id is None else {"kind": "image", "asset_id": asset_id}
    return _Query(np.asarray(vecs[0], dtype=np.float32), "frames", hashlib.sha256(data).hexdigest(), info)


@contextlib.contextmanager
def _supported() -> Iterator[None]:
    """A capability the configured index lacks is a 501, not a crash."""
    try:
        yield
    except NotImplementedError as e:
        raise ApiError(501, "not_supported", str(e) or "the vector index cannot do this") from None


async def _resolve_query(idx: VectorIndex, body: SearchBody, click_threshold: Callable[[str], float]) -> _Query:
    given = [name for name in ("frame", "point", "event", "asset_id") if getattr(body, name) is not None]
    if body.image is not None:
        raise ApiError(
            415, "unsupported_media_type", "upload the query picture as multipart/form-data file field 'image'"
        )
    if len(given) != 1:
        got = f"got {', '.join(given)}" if given else "got none"
        raise ApiError(
            422,
            "invalid_query",
            f"send exactly one of 'frame', 'point', 'event' or 'asset_id' ({got})",
            details={"given": given},
        )
    if body.frame is not None:
        stream = check_stream(body.frame.stream)
        f = await asyncio.to_thread(idx.frame_at, stream, body.frame.t)
        if f is None:
            raise ApiError(404, "frame_not_found", f"stream {stream!r} has no indexed frames")
        return _Query(f.cls, "frames", ["frame", stream, f.seq], {"kind": "frame", **_frame_json(f)})
    if body.point is not None:
        p = body.point
        stream = check_stream(p.stream)
        f = await asyncio.to_thread(idx.frame_at, stream, p.t, with_cells=True)
        if f is None:
            raise ApiError(404, "frame_not_found", f"stream {stream!r} has no indexed frames")
        if f.cells is None:
            raise ApiError(
                404, "frame_not_found", f"frame {f.seq} of stream {stream!r} has no stored patch grid for a point query"
            )
        # The stored cells were centred when stored (see dinostream.sinks.index_payload.region_cells).
        seg = click_to_segment(f.cells, (p.x, p.y), click_threshold(stream), centering=0.0)
        info = {
            "kind": "point",
            **_frame_json(f),
            "x": p.x,
            "y": p.y,
            "box": seg.box.to_dict(),
            "heatmap": Heatmap(np.clip(seg.similarity, 0.0, 1.0)).to_dict(),
        }
        return _Query(seg.vector, "regions", ["point", stream, f.seq, p.x, p.y], info)
    assert body.event is not None
    event = await asyncio.to_thread(idx.event, body.event)
    if event is None:
        raise ApiError(404, "event_not_found", f"no indexed event has id {body.event!r}")
    f = await asyncio.to_thread(_event_frame, idx, event)
    if f is None:
        raise ApiError(404, "frame_not_found", f"event {event.id!r}: stream {event.stream!r} has no indexed frames")
    info = {"kind": "event", "event": {"id": event.id, "type": event.type}, **_frame_json(f)}
    return _Query(f.cls, "frames", ["event", event.id], info)


def _event_frame(idx: VectorIndex, event: Event) -> StoredFrame | None:
    """The frame an event refers to last (for a cut: the first frame after it), else the nearest in time."""
    for seq in reversed(event.frames):
        f = idx.frame(event.stream, seq)
        if f is not None:
            return f
    return idx.frame_at(event.stream, event.t)


def _moments(
    idx: VectorIndex, query: _Query, filters: _Filters, candidates: int
) -> tuple[list[Moment], dict[str, list[Event]]]:
    """The moments of a query (blocking), and for event-type searches the events of each frame."""
    by_frame: dict[str, list[Event]] = {}
    if filters.event_types is not None:
        where_events = EventFilter(filters.streams, filters.event_types, filters.since, filters.until)
        for e in idx.events(where_events, MAX_EVENT_FRAMES):
            for seq in e.frames:
                by_frame.setdefault(frame_point_id(e.stream, seq), []).append(e)
        if not by_frame:
            return [], by_frame
    where = FrameFilter(filters.streams, filters.since, filters.until, list(by_frame) if by_frame else None)
    if query.target == "regions":
        hits = idx.query_regions(query.vector, candidates, where)
    else:
        hits = idx.query_frames(query.vector, candidates, where)
    return merge_moments(matches(hits, filters.min_score, filters.margin), filters.gap_s), by_frame


def _moment_json(m: Moment, events: dict[str, list[Event]]) -> dict[str, Any]:
    best = m.best
    out: dict[str, Any] = {
        "stream": m.stream,
        "seq": best.seq,
        "t": best.t,
        "ts": best.ts,
        "score": float(best.score),
        "thumbnail_url": FRAME_THUMBNAIL_PATH.format(stream=m.stream, seq=best.seq),
        "start_t": m.start_t,
        "end_t": m.end_t,
        "start_ts": m.start_ts,
        "end_ts": m.end_ts,
        "hits": len(m.hits),
    }
    if events:
        seen: dict[str, Event] = {}
        for h in m.hits:
            for e in events.get(h.point_id, ()):
                seen.setdefault(e.id, e)
        out["events"] = [{"id": e.id, "type": e.type, "t": e.t, "ts": e.ts} for e in seen.values()]
    return out


def _frame_json(f: StoredFrame | FrameHit) -> dict[str, Any]:
    return {
        "stream": f.stream,
        "seq": f.seq,
        "t": f.t,
        "ts": f.ts,
        "thumbnail_url": FRAME_THUMBNAIL_PATH.format(stream=f.stream, seq=f.seq),
    }


def _window_frames(
    idx: VectorIndex, stream: str, since: float, until: float, most: int
) -> tuple[list[StoredFrame], int]:
    """The window's frames in ts order, at most `most`, evenly spread over time when there are more."""
    n = idx.count_frames_where(FrameFilter([stream], since, until))
    if n <= most:
        return idx.frames_between(stream, since, until, most), n
    edges = np.linspace(since, until, _SUMMARY_SLICES + 1)
    per_slice = max(1, most // _SUMMARY_SLICES)
    frames: dict[int, StoredFrame] = {}
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        # The first frames of each slice: coverage over the whole window, not its start only.
        for f in idx.frames_between(stream, float(lo), float(hi), per_slice):
            frames.setdefault(f.seq, f)
    return sorted(frames.values(), key=lambda f: (f.ts, f.seq)), n


def _global_vector(f: StoredFrame) -> np.ndarray:
    """As `dinostream.analytics.scene_change.global_vector`: unit CLS and unit mean-patch vectors, concatenated."""
    cls = _unit(f.cls[None])[0]
    pooled = _unit(f.pooled[None])[0]
    return np.concatenate([cls, pooled]) / np.sqrt(2.0)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _gap(gap_s: float | None, cfg: IndexSettings) -> float:
    return cfg.moment_gap_s if gap_s is None else gap_s


def _fingerprint(key: Any, filters: _Filters) -> str:
    text = json.dumps([key, filters.key()], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cursor(offset: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(f"{offset}:{fingerprint}".encode()).decode().rstrip("=")


def _read_cursor(cursor: str | None, fingerprint: str) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        offset_text, fp = raw.split(":", 1)
        offset = int(offset_text)
        if offset < 0:
            raise ValueError
    except ValueError:
        raise ApiError(422, "invalid_cursor", "cursor is not one this server issued; start without one") from None
    if fp != fingerprint:
        raise ApiError(422, "invalid_cursor", "cursor belongs to another query or filters; start without one")
    return offset


# ---------- request reading (shared with the image utilities) ----------


async def _json_body(request: Request, max_bytes: int) -> SearchBody:
    raw = await limited_body(request, max_bytes)
    try:
        return SearchBody.model_validate_json(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise ApiError(422, "invalid_request", f"{where}: {first.get('msg', 'invalid value')}{more}") from None


def _parse_limit(raw: Any) -> int:
    if raw is None or raw == "":
        return DEFAULT_SEARCH_LIMIT
    limit = None
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            limit = int(raw)
    if limit is None or not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise ApiError(422, "invalid_limit", f"limit must be an integer from 1 to {MAX_SEARCH_LIMIT}, got {raw!r}")
    return limit


def _split(raw: Any, name: str) -> list[str] | None:
    """A comma-separated text field as a list; None when absent or empty."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ApiError(422, f"invalid_{name.rstrip('s')}", f"{name} must be a comma-separated text field")
    return [s.strip() for s in raw.split(",") if s.strip()] or None


def _text_field(form: FormData, name: str) -> str | None:
    raw = form.get(name)
    if raw is not None and not isinstance(raw, str):
        raise ApiError(422, "invalid_request", f"{name} must be a text field")
    return raw or None


def _float_field(form: FormData, name: str) -> float | None:
    raw = _text_field(form, name)
    if raw is None:
        return None
    try:
        v = float(raw)
    except ValueError:
        v = math.nan
    if not math.isfinite(v) or (name == "gap_s" and v < 0):
        raise ApiError(422, "invalid_request", f"{name} must be a finite number, got {raw!r}")
    return v


def _check_count(name: str, got: int, lo: int, hi: int) -> None:
    """Too few and too many pictures are both 422, with what was expected in `details`."""
    if lo <= got <= hi:
        return
    span = f"{lo}" if lo == hi else f"{lo} to {hi}"
    code = "missing_image" if got < lo else "too_many_images"
    raise ApiError(
        422,
        code,
        f"send {span} image files as form field '{name}', got {got}",
        details={"field": name, "min": lo, "max": hi, "got": got},
    )


def _names(fields: dict[str, tuple[int, int]]) -> str:
    return ", ".join(repr(n) for n in fields)


def _untrained(hub: LiveHub, health: Callable[[], dict[str, Any]]) -> bool:
    """Whether scores are meaningless: a stream, or the health report's `untrained` or
    `model.untrained`, says the weights are random."""
    if hub.untrained:
        return True
    try:
        report = health()
        model = report.get("model")
        return bool(report.get("untrained")) or (isinstance(model, dict) and bool(model.get("untrained")))
    except Exception:
        return False


_FILTER_PROPS: dict[str, Any] = {
    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_SEARCH_LIMIT, "default": DEFAULT_SEARCH_LIMIT},
    "cursor": {"type": "string", "description": "next_cursor of the previous page"},
    "from": {"type": "number", "description": "wall-clock unix seconds, inclusive"},
    "to": {"type": "number", "description": "wall-clock unix seconds, inclusive"},
    "gap_s": {"type": "number", "minimum": 0, "description": "hits at most this far apart are one moment"},
    "min_score": {"type": "number", "description": "lowest matching score; default best - match_margin"},
}
_SEARCH_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary", "description": "query picture"},
                        "streams": {"type": "string", "description": "comma-separated stream ids; all when empty"},
                        "event_types": {"type": "string", "description": "comma-separated event types"},
                        **_FILTER_PROPS,
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "exactly one of frame, point, event",
                    "properties": {
                        "frame": {
                            "type": "object",
                            "properties": {"stream": {"type": "string"}, "t": {"type": "number"}},
                        },
                        "point": {
                            "type": "object",
                            "properties": {
                                "stream": {"type": "string"},
                                "t": {"type": "number"},
                                "x": {"type": "number", "minimum": 0, "maximum": 1},
                                "y": {"type": "number", "minimum": 0, "maximum": 1},
                            },
                        },
                        "event": {"type": "string", "description": "event id"},
                        "streams": {"type": "array", "items": {"type": "string"}},
                        "event_types": {"type": "array", "items": {"type": "string", "enum": list(EVENT_TYPES)}},
                        **_FILTER_PROPS,
                    },
                }
            },
        },
    }
}


def _images_openapi(fields: dict[str, str]) -> dict[str, Any]:
    props = {
        name: {"type": "array", "items": {"type": "string", "format": "binary"}, "description": what}
        for name, what in fields.items()
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": {"type": "object", "required": list(fields), "properties": props}}
            },
        }
    }

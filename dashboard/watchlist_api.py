"""Watchlist management over HTTP: register what to look for, list it, remove it, and preview a
click-to-segment on a live frame.

An exemplar is made from an uploaded crop (multipart: `image`, `label`, optional `id`, optional
`frame` = "WIDTHxHEIGHT" of the frames it was cut from, default 1280x720: see
`dinostream.analytics.exemplars.CropExemplar`), from a
click on a recent frame of a stream (JSON `{"label", "frame": {"stream", "seq"}, "point": {"x",
"y"}}`: the patches similar to the clicked one, as in zero-shot click-to-segment), or from a box
drawn on it (`"box": {"x0", "y0", "x1", "y1"}`). Registering writes it to the watchlist topic,
which every analytics worker follows; this router applies it to its own copy at once so a
listing shows it immediately.

    app.include_router(watchlist_router(watchlist, publish, recent, embed_record, reid_settings, max_upload))
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dinostream.analytics.exemplars import DEFAULT_FRAME, CropExemplar
from dinostream.analytics.segmentation import (
    DEFAULT_SMOOTH,
    MAX_CLICKS,
    PictureSegment,
    heatmap_png,
    overlay_png,
    segment_picture,
)
from dinostream.analytics.watchlist import (
    Exemplar,
    Watchlist,
    click_to_segment,
    exemplar_from_patches,
)
from dinostream.core.errors import BrokerError
from dinostream.core.records import Box, FrameEmbedding
from dinostream.core.settings import ReidSettings
from dinostream.dashboard.assets_api import picture_bytes
from dinostream.dashboard.http_common import ApiError, check_stream
from dinostream.dashboard.recent_frames import RecentFrames
from dinostream.dashboard.uploads import decode_rgb, limited_body, limited_form
from dinostream.sinks.asset_store import AssetStore

# Publishes one exemplar (None removes `exemplar_id`) to the watchlist topic.
Publish = Callable[[str, Exemplar | None], Awaitable[None]]
EmbedRecord = Callable[[np.ndarray], Awaitable[FrameEmbedding]]
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_FRAME = re.compile(r"^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FrameRef(_Strict):
    stream: str
    seq: int = Field(ge=0)


class PointRef(_Strict):
    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)


class BoxRef(_Strict):
    x0: float = Field(ge=0, le=1)
    y0: float = Field(ge=0, le=1)
    x1: float = Field(ge=0, le=1)
    y1: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> BoxRef:
        if not (self.x0 < self.x1 and self.y0 < self.y1):
            raise ValueError("box needs x0 < x1 and y0 < y1")
        return self


class FromFrame(_Strict):
    """An exemplar from a recent frame: a click (`point`) or a drawn `box`, not both."""

    id: str | None = None
    label: str = Field("", max_length=200)
    frame: FrameRef
    point: PointRef | None = None
    box: BoxRef | None = None
    threshold: float | None = Field(None, ge=-1, le=1, description="click-to-segment similarity; default: settings")

    @model_validator(mode="after")
    def _one_selection(self) -> FromFrame:
        if (self.point is None) == (self.box is None):
            raise ValueError("give either point (a click) or box (a drawn rectangle)")
        return self


class SegmentRequest(_Strict):
    """A click-to-segment: on a recent `frame` of a stream or a stored picture (`asset_id`), one
    `point` or several `points` (positive clicks) and `negative` ones."""

    frame: FrameRef | None = None
    asset_id: str | None = Field(None, min_length=1, max_length=64)
    point: PointRef | None = None
    points: list[PointRef] = Field(default_factory=list, max_length=MAX_CLICKS)
    negative: list[PointRef] = Field(default_factory=list, max_length=MAX_CLICKS)
    threshold: float | None = Field(None, ge=-1, le=1)
    smooth: float = Field(DEFAULT_SMOOTH, ge=0, le=8, description="Gaussian σ in patch widths at picture size")
    pictures: bool = Field(True, description="add the mask, overlay and heatmap as base64 PNGs")

    @model_validator(mode="after")
    def _one_source_and_a_click(self) -> SegmentRequest:
        if (self.frame is None) == (self.asset_id is None):
            raise ValueError("give either frame (a recent frame of a stream) or asset_id (a stored picture)")
        if self.point is None and not self.points:
            raise ValueError("give point or points: at least one positive click")
        return self

    @property
    def positive(self) -> list[tuple[float, float]]:
        return [(p.x, p.y) for p in ([self.point] if self.point is not None else []) + self.points]

    @property
    def picture_size(self) -> bool:
        """Whether the answer is at picture size (anything beyond the single click on a frame)."""
        return self.asset_id is not None or bool(self.points) or bool(self.negative)


def watchlist_router(
    watchlist: Watchlist,
    publish: Publish,
    recent: RecentFrames,
    embed_record: EmbedRecord | None,
    reid: ReidSettings | Callable[[str], ReidSettings],
    max_upload_bytes: int,
    assets: AssetStore | None = None,
) -> APIRouter:
    """`reid`: the re-identification settings, or the settings of a stream (`AnalyticsControl.reid`),
    read at each request: a click on a stream's frame segments with that stream's threshold.
    `assets`: stored pictures `/api/v1/segment` takes by `asset_id`."""
    router = APIRouter(tags=["watchlist"])

    def reid_of(stream: str) -> ReidSettings:
        return reid if isinstance(reid, ReidSettings) else reid(stream)

    @router.get("/api/v1/watchlist")
    async def list_exemplars() -> dict[str, Any]:
        return {"exemplars": [{"id": e.id, "label": e.label, "dim": int(e.vector.shape[0])} for e in watchlist]}

    @router.post("/api/v1/watchlist", status_code=201)
    async def add_exemplar(request: Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "").lower()
        if content_type.startswith("multipart/form-data"):
            ex_id, label, vector, extra = await _from_upload(request)
        elif content_type.startswith("application/json"):
            ex_id, label, vector, extra = await _from_frame(request)
        else:
            raise ApiError(
                415,
                "unsupported_media_type",
                "send multipart/form-data with an image crop as 'image', or JSON naming a frame and a point or box",
            )
        try:
            exemplar = Exemplar(ex_id or f"ex-{uuid.uuid4().hex[:12]}", label, vector)
            watchlist.add(exemplar)
        except ValueError as e:  # a degenerate vector, or another model's dimension
            raise ApiError(422, "invalid_exemplar", str(e)) from None
        await publish(exemplar.id, exemplar)
        return {"id": exemplar.id, "label": exemplar.label, **extra}

    @router.delete("/api/v1/watchlist/{exemplar_id}")
    async def remove_exemplar(exemplar_id: str) -> dict[str, Any]:
        if not watchlist.remove(exemplar_id):
            raise ApiError(404, "exemplar_not_found", f"no exemplar {exemplar_id!r} on the watchlist")
        await publish(exemplar_id, None)
        return {"id": exemplar_id, "removed": True}

    @router.post("/api/v1/segment")
    async def segment(request: Request) -> dict[str, Any]:
        """Click-to-segment preview (nothing is registered) on a recent frame of a stream, an
        uploaded picture or a stored one (`asset_id`): every patch's similarity to the clicked one,
        the selected mask and its box. Several positive `points` and `negative` clicks, an upload
        or an asset answer at picture size too (`dinostream.analytics.segmentation`): the mask,
        an overlay and a heatmap as base64 PNGs.

        JSON `{"frame": {"stream", "seq"} | "asset_id": "a_...", "point": {"x", "y"},
        "points": [...], "negative": [...], "threshold", "smooth", "pictures"}`, or multipart
        with the picture as file field `image` (or text `asset_id`) and `points` / `negative` as
        JSON text (`[[0.4, 0.6]]`)."""
        content_type = request.headers.get("content-type", "").lower()
        if content_type.startswith("multipart/form-data"):
            body, data = await _segment_form(request)
        else:
            body, data = await _json(request, SegmentRequest), None
        if body.frame is not None and not body.picture_size:
            assert body.point is not None
            rec = await _recent(body.frame)
            settings = reid_of(body.frame.stream)
            threshold = settings.click_threshold if body.threshold is None else body.threshold
            grid_seg = click_to_segment(
                rec.patches, (body.point.x, body.point.y), threshold, centering=settings.feature_centering
            )
            return {
                "grid": list(grid_seg.similarity.shape),
                "similarity": np.round(grid_seg.similarity, 4).tolist(),
                "mask": grid_seg.mask.astype(int).tolist(),
                "box": grid_seg.box.to_dict(),
                "threshold": threshold,
            }
        if body.frame is not None:
            rec = await _recent(body.frame)
            settings = reid_of(body.frame.stream)
            if not rec.thumbnail:
                raise ApiError(
                    404,
                    "thumbnail_not_found",
                    f"frame {rec.seq} of stream {rec.stream!r} carries no picture to segment at picture size",
                )
            rgb = await asyncio.to_thread(decode_rgb, rec.thumbnail)  # what the dashboard shows of it
            patches = rec.patches
        else:
            if data is None:
                assert body.asset_id is not None
                data = await picture_bytes(assets, body.asset_id, max_upload_bytes)
            if embed_record is None:
                raise ApiError(503, "embedding_unavailable", "no model in this process to embed the picture")
            settings = reid_of("")  # no stream: the defaults
            rgb = await asyncio.to_thread(decode_rgb, data)
            patches = (await embed_record(rgb)).patches
        threshold = settings.click_threshold if body.threshold is None else body.threshold
        try:
            seg = await asyncio.to_thread(
                segment_picture,
                patches,
                (rgb.shape[1], rgb.shape[0]),
                body.positive,
                [(p.x, p.y) for p in body.negative],
                threshold=threshold,
                centering=settings.feature_centering,
                smooth=body.smooth,
            )
        except ValueError as e:
            raise ApiError(422, "invalid_request", str(e)) from None
        out: dict[str, Any] = {
            "grid": list(seg.similarity.shape),
            "similarity": np.round(seg.similarity, 4).tolist(),
            "mask": seg.mask.astype(int).tolist(),
            "box": seg.box.to_dict(),
            "threshold": threshold,
            "size": [int(rgb.shape[1]), int(rgb.shape[0])],
            "area": seg.area,
            "points": [list(p) for p in seg.points],
            "negative": [list(p) for p in seg.negative],
        }
        if body.pictures:
            out.update(await asyncio.to_thread(_pngs, rgb, seg))
        return out

    async def _segment_form(request: Request) -> tuple[SegmentRequest, bytes | None]:
        async with limited_form(request, max_upload_bytes, max_files=1) as form:
            upload = form.get("image")
            fields: dict[str, Any] = {}
            for name in ("points", "negative"):
                raw = form.get(name)
                if raw is not None and raw != "":
                    if not isinstance(raw, str):
                        raise ApiError(422, "invalid_request", f"{name} must be JSON text such as [[0.4, 0.6]]")
                    fields[name] = _click_list(name, raw)
            for name in ("threshold", "smooth", "asset_id"):
                raw = form.get(name)
                if isinstance(raw, str) and raw != "":
                    fields[name] = raw
            data = await upload.read() if upload is not None and not isinstance(upload, str) else None
        if data is None and "asset_id" not in fields:
            raise ApiError(
                422,
                "missing_image",
                "send the picture as file field 'image' or a stored picture's 'asset_id'",
                details={"fields": ["image", "asset_id"]},
            )
        if data is not None:
            if "asset_id" in fields:
                raise ApiError(422, "invalid_request", "send either file field 'image' or 'asset_id', not both")
            fields["asset_id"] = "upload"  # the source is the upload: stands in for the validator
        try:
            body = SegmentRequest.model_validate(fields)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "body"
            raise ApiError(422, "invalid_request", f"{where}: {first.get('msg', 'invalid value')}") from None
        return body, data

    async def _from_upload(request: Request) -> tuple[str | None, str, np.ndarray, dict[str, Any]]:
        if embed_record is None:
            raise ApiError(503, "embedding_unavailable", "no model in this process to embed an uploaded crop")
        async with limited_form(request, max_upload_bytes, max_files=1) as form:
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise ApiError(422, "missing_image", "form field 'image' must be an uploaded image file")
            data = await upload.read()
            label = str(form.get("label") or "")
            ex_id = form.get("id")
            frame = _frame_size(form.get("frame"))
        rgb = await asyncio.to_thread(decode_rgb, data)
        vector = await _crop_vector(embed_record, rgb, frame, reid_of(""))  # no stream: the defaults
        return _check_id(ex_id), label[:200], vector, {"source": "image", "frame": f"{frame[0]}x{frame[1]}"}

    async def _from_frame(request: Request) -> tuple[str | None, str, np.ndarray, dict[str, Any]]:
        body = await _json(request, FromFrame)
        rec = await _recent(body.frame)
        extra: dict[str, Any] = {"source": "frame", "frame": body.frame.model_dump()}
        settings = reid_of(body.frame.stream)
        if body.point is not None:
            threshold = settings.click_threshold if body.threshold is None else body.threshold
            seg = click_to_segment(
                rec.patches, (body.point.x, body.point.y), threshold, centering=settings.feature_centering
            )
            vector, extra["box"] = seg.vector, seg.box.to_dict()
        else:
            assert body.box is not None
            box = Box(body.box.x0, body.box.y0, body.box.x1, body.box.y1)
            vector = exemplar_from_patches(rec.patches, box, centering=settings.feature_centering)
            extra["box"] = box.to_dict()
            if not np.isfinite(vector).all():
                raise ApiError(422, "invalid_box", "the box covers no patch centre; draw it larger")
        return _check_id(body.id), body.label, vector, extra

    async def _json(request: Request, model: type[_Strict]) -> Any:
        raw = await limited_body(request, 65536)
        try:
            return model.model_validate_json(raw)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "body"
            raise ApiError(422, "invalid_request", f"{where}: {first.get('msg', 'invalid value')}") from None

    async def _recent(ref: FrameRef) -> FrameEmbedding:
        check_stream(ref.stream)
        try:
            rec = await recent.get(ref.stream, ref.seq)
        except BrokerError as e:
            raise ApiError(503, "broker_unavailable", str(e)) from None
        if rec is None:
            kept = recent.seqs(ref.stream)
            span = f"frames {kept[0]}-{kept[-1]} are" if kept else "no frame is"
            raise ApiError(
                404,
                "frame_not_found",
                f"frame {ref.seq} of stream {ref.stream!r} is not among the recent frames kept for clicks ({span})",
            )
        return rec

    return router


async def _crop_vector(
    embed_record: EmbedRecord, rgb: np.ndarray, frame: tuple[int, int], settings: ReidSettings
) -> np.ndarray:
    """The crop as the frames it was cut from see it (`CropExemplar`); the first view's record
    tells the patch grid the others are shifted on."""
    plan = CropExemplar(rgb, frame)
    first = await embed_record(plan.centred().scene)
    views = plan.views(first.patches.shape[:2])
    pictures = [views[0].empty] + [p for v in views[1:] for p in (v.scene, v.empty)]
    rest = [r.patches for r in await asyncio.gather(*(embed_record(p) for p in pictures))]
    scenes, empties = [first.patches, *rest[1::2]], [rest[0], *rest[2::2]]
    return plan.vector(views, scenes, empties, settings)


def _click_list(name: str, raw: str) -> list[dict[str, float]]:
    """`[[x, y], ...]` (JSON text of a form field) as PointRef fields."""
    try:
        points = json.loads(raw)
        return [{"x": float(x), "y": float(y)} for x, y in points]
    except (ValueError, TypeError):
        raise ApiError(
            422, "invalid_request", f"{name} must be JSON text of [x, y] pairs such as [[0.4, 0.6]]"
        ) from None


def _pngs(rgb: np.ndarray, seg: PictureSegment) -> dict[str, str]:
    """The picture-size mask (white on black), the overlay and the heatmap as base64 PNGs."""
    buf = io.BytesIO()
    Image.fromarray(seg.picture_mask.astype(np.uint8) * 255).save(buf, format="PNG")
    return {
        "mask_png": base64.b64encode(buf.getvalue()).decode(),
        "overlay_png": base64.b64encode(overlay_png(rgb, seg.picture_mask)).decode(),
        "heatmap_png": base64.b64encode(heatmap_png(seg.heatmap, rgb)).decode(),
    }


def _frame_size(raw: Any) -> tuple[int, int]:
    if raw is None or raw == "":
        return DEFAULT_FRAME
    m = _FRAME.match(raw) if isinstance(raw, str) else None
    if m is None:
        raise ApiError(422, "invalid_frame", f"frame must be WIDTHxHEIGHT in pixels, got {raw!r}")
    return int(m.group(1)), int(m.group(2))


def _check_id(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not _ID.match(raw):
        raise ApiError(422, "invalid_id", f"exemplar id must be 1-128 of A-Z a-z 0-9 _ . : -, got {raw!r}")
    return raw

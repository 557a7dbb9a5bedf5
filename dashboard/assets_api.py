"""`/api/v1/assets`: upload a picture or a video once, then refer to it by `asset_id`.

- `POST /api/v1/assets` (multipart, file field `file`, at most `http.max_asset_bytes`): the type
  is told by the content (`dinostream.sinks.asset_store.sniff`) and proved by opening it (a
  picture is decoded, a video's header read): 201 with the asset's metadata, `id` among it.
  Not a picture or a video: 415 `unsupported_asset` (`not_an_image`, `not_a_video` when it only
  looks like one); too big: 413 `upload_too_large`.
- `GET /api/v1/assets` lists them, `GET /api/v1/assets/{id}` is one's metadata, `DELETE` deletes
  it; unknown or expired: 404 `asset_not_found`; not an id: 422 `invalid_asset_id`.
- `POST /api/v1/assets/{id}/analysis` analyses a stored video in the background (202 with the
  job; `dinostream.dashboard.analysis_jobs`), `GET` polls it: `state`, `progress`, and when done
  `result` (cuts, shots with kind, times, keyframe and quality, phases, anomalies). A picture:
  422 `wrong_asset_kind`; never started: 404 `analysis_not_found`.

Assets are kept `http.asset_retention_days` under `<data dir>/assets`. The image utilities and
search take `asset_id`s of pictures where they take uploads (`picture_bytes`).

    >>> app.include_router(assets_router(store, http))
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import av
from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile

from dinostream.core.settings import HttpSettings
from dinostream.dashboard.analysis_jobs import AnalysisJobs, Job
from dinostream.dashboard.http_common import ApiError, public_text
from dinostream.dashboard.uploads import decode_rgb, limited_form
from dinostream.sinks.asset_store import AssetError, AssetMeta, AssetStore

PREFIX = "/api/v1/assets"
_STATUS = {
    "empty_asset": 415,
    "unsupported_asset": 415,
    "asset_too_large": 413,
    "asset_not_found": 404,
    "invalid_asset_id": 422,
}


def asset_error(e: AssetError, asset_id: str | None = None) -> ApiError:
    """The HTTP answer to an AssetError: one status per kind (`_STATUS`)."""
    code = "upload_too_large" if e.code == "asset_too_large" else e.code
    details = {"asset_id": asset_id} if asset_id is not None else {}
    return ApiError(_STATUS.get(e.code, 422), code, str(e), details=details)


def asset_json(meta: AssetMeta) -> dict[str, Any]:
    return {**meta.to_dict(), "url": f"{PREFIX}/{meta.id}"}


async def picture_bytes(store: AssetStore | None, asset_id: str, room: int) -> bytes:
    """The bytes of the picture asset `asset_id`: 404 unknown, 422 `wrong_asset_kind` for a video,
    413 `upload_too_large` when it is larger than `room`, the bytes the request may still carry
    (a picture referred to by id counts as if uploaded: http.max_upload_bytes per request)."""
    if store is None:
        raise ApiError(503, "assets_unavailable", "stored assets are not configured in this process")
    try:
        meta = await asyncio.to_thread(store.get, asset_id)
    except AssetError as e:
        raise asset_error(e, asset_id) from None
    if meta is None:
        raise ApiError(
            404,
            "asset_not_found",
            f"no asset {asset_id!r} (never stored, deleted or expired)",
            details={"asset_id": asset_id},
        )
    if meta.kind != "image":
        raise ApiError(
            422,
            "wrong_asset_kind",
            f"asset {asset_id} is a {meta.kind}, not a picture",
            details={"asset_id": asset_id, "kind": meta.kind, "expected": "image"},
        )
    if meta.bytes > room:
        raise ApiError(
            413,
            "upload_too_large",
            "the pictures of this request, uploaded or stored, are larger than the upload limit",
            details={"asset_id": asset_id, "setting": "http.max_upload_bytes"},
        )
    try:
        return await asyncio.to_thread(store.path(asset_id).read_bytes)
    except (AssetError, FileNotFoundError):  # deleted meanwhile
        raise ApiError(404, "asset_not_found", f"no asset {asset_id!r}", details={"asset_id": asset_id}) from None


def probe_video(path: Path) -> dict[str, Any]:
    """What a video file's header says (size, duration, frame rate, codec); ValueError when it
    holds no readable video stream."""
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            if not container.streams.video:
                raise ValueError("it holds no video stream")
            video = container.streams.video[0]
            ctx = video.codec_context
            width, height = int(video.width or ctx.width or 0), int(video.height or ctx.height or 0)
            if width <= 0 or height <= 0:
                raise ValueError("its video stream has no picture size")
            duration = None
            if container.duration:
                duration = float(container.duration / av.time_base)
            elif video.duration and video.time_base:
                duration = float(video.duration * video.time_base)
            rate = video.average_rate or video.guessed_rate
            return {
                "width": width,
                "height": height,
                "duration_s": duration,
                "fps": float(rate) if rate else None,
                "frames": int(video.frames) or None,
                "codec": ctx.name,
            }
    except av.error.FFmpegError as e:
        raise ValueError(f"it cannot be read as a video ({type(e).__name__})") from None


def assets_router(store: AssetStore, http: HttpSettings, jobs: AnalysisJobs | None = None) -> APIRouter:
    """Upload, inspect and delete stored assets, and with `jobs` analyse stored videos (see the
    module's docstring)."""
    router = APIRouter(prefix=PREFIX, tags=["assets"])

    async def known(asset_id: str) -> AssetMeta:
        try:
            meta = await asyncio.to_thread(store.get, asset_id)
        except AssetError as e:
            raise asset_error(e, asset_id) from None
        if meta is None:
            raise ApiError(
                404,
                "asset_not_found",
                f"no asset {asset_id!r} (never stored, deleted or expired)",
                details={"asset_id": asset_id},
            )
        return meta

    @router.post("", status_code=201, openapi_extra=_UPLOAD_OPENAPI)
    async def upload(request: Request) -> dict[str, Any]:
        """Store a picture or a video; its metadata with `id`, the `asset_id` other endpoints take."""
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise ApiError(
                415, "unsupported_media_type", "send multipart/form-data with the picture or video as file field 'file'"
            )
        async with limited_form(request, http.max_asset_bytes, max_files=1, setting="http.max_asset_bytes") as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ApiError(
                    422,
                    "missing_file",
                    "form field 'file' must be an uploaded picture or video",
                    details={"field": "file"},
                )
            try:
                meta = await asyncio.to_thread(store.put_stream, upload.file, filename=upload.filename)
            except AssetError as e:
                raise asset_error(e) from None
        try:
            info = await _open(store, meta, http.max_upload_bytes)
        except ApiError:
            await asyncio.to_thread(store.delete, meta.id)  # nothing that cannot be opened is kept
            raise
        return asset_json(await asyncio.to_thread(store.update_info, meta.id, info))

    @router.get("")
    async def list_assets() -> dict[str, Any]:
        """Every stored asset, oldest first."""
        return {"assets": [asset_json(m) for m in await asyncio.to_thread(store.list)]}

    @router.get("/{asset_id}")
    async def get_asset(asset_id: str) -> dict[str, Any]:
        return asset_json(await known(asset_id))

    @router.delete("/{asset_id}")
    async def delete_asset(asset_id: str) -> dict[str, Any]:
        await known(asset_id)
        if jobs is not None:
            jobs.cancel(asset_id)
        deleted = await asyncio.to_thread(store.delete, asset_id)
        if not deleted:  # deleted meanwhile by another request
            raise ApiError(404, "asset_not_found", f"no asset {asset_id!r}", details={"asset_id": asset_id})
        return {"id": asset_id, "deleted": True}

    @router.post("/{asset_id}/analysis", status_code=202)
    async def start_analysis(asset_id: str) -> dict[str, Any]:
        """Analyse a stored video in the background (shots, phases, anomalies: `analyze`'s
        pipeline); the job's state, to poll with GET. One per asset: while one runs, POST answers it."""
        if jobs is None:
            raise ApiError(503, "analysis_unavailable", "video analysis is not configured in this process")
        meta = await known(asset_id)
        if meta.kind != "video":
            raise ApiError(
                422,
                "wrong_asset_kind",
                f"asset {asset_id} is a {meta.kind}: only a video can be analysed",
                details={"asset_id": asset_id, "kind": meta.kind, "expected": "video"},
            )
        return _job_json(jobs.start(asset_id, store.root / asset_id / "data"))

    @router.get("/{asset_id}/analysis")
    async def get_analysis(asset_id: str) -> dict[str, Any]:
        """The asset's analysis: `state` queued, running (with `progress` 0..1), done (with
        `result`) or failed (with `error`)."""
        if jobs is None:
            raise ApiError(503, "analysis_unavailable", "video analysis is not configured in this process")
        await known(asset_id)
        job = jobs.get(asset_id)
        if job is None:
            raise ApiError(
                404,
                "analysis_not_found",
                f"asset {asset_id} has not been analysed: POST {PREFIX}/{asset_id}/analysis starts it",
                details={"asset_id": asset_id},
            )
        return _job_json(job)

    return router


def _job_json(job: Job) -> dict[str, Any]:
    out = job.to_dict()
    if out["error"] is not None:
        out["error"] = public_text(out["error"])
    return out


async def _open(store: AssetStore, meta: AssetMeta, max_picture_bytes: int) -> dict[str, Any]:
    """Open the stored asset as what its content claims: a picture is decoded, a video probed."""
    path = store.root / meta.id / "data"
    if meta.kind == "image":
        if meta.bytes > max_picture_bytes:  # it could never be used: a request carries at most that
            raise ApiError(
                413,
                "upload_too_large",
                f"a picture asset may be at most {max_picture_bytes} bytes, as one upload may",
                details={"limit_bytes": max_picture_bytes, "setting": "http.max_upload_bytes"},
            )
        data = await asyncio.to_thread(path.read_bytes)
        rgb = await asyncio.to_thread(decode_rgb, data)  # 415 not_an_image, 413 past the pixel limits
        return {"width": int(rgb.shape[1]), "height": int(rgb.shape[0])}
    try:
        return await asyncio.to_thread(probe_video, path)
    except ValueError as e:
        raise ApiError(
            415,
            "not_a_video",
            f"the file looks like a {meta.format} video but {e}",
            details={"format": meta.format},
        ) from None


_UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary", "description": "picture or video"}},
                }
            }
        },
    }
}

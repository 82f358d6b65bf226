"""Videos: upload, list, metadata and thumbnails."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ..core import Service
from ..deps import ServiceDep, VideoId, inject_faults, video_or_404
from ..errors import ApiError, error_responses
from ..media import DecodedSpan, FFmpegError, NotAVideo, safe_filename
from ..storage import Video, now
from ..uploads import UploadRejected, receive_upload

router = APIRouter(tags=["videos"], dependencies=[Depends(inject_faults)])

UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "minLength": 1,
                        "contentMediaType": "video/*",
                        "description": "A video file: it must decode, to its full duration, "
                        "with frames within the pixel limit",
                    }
                },
            },
            "encoding": {"file": {"contentType": "video/*"}},
        }
    },
}


@router.post(
    "/api/upload",
    status_code=201,
    responses=error_responses(400, 408, 413, 415, 422, 500),
    openapi_extra={"requestBody": UPLOAD_BODY},
)
async def upload(svc: ServiceDep, request: Request) -> dict[str, Any]:
    """Store an uploaded video: streamed to disk, size-limited, probed, then recorded."""
    return await handle_upload(svc, request)


@router.get("/api/videos", responses=error_responses(422, 500))
async def list_videos(
    svc: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """List videos, oldest first."""
    videos, count = await svc.store.list_videos(limit, offset)
    return {
        "videos": [v.public() for v in videos],
        "count": count,
        "limit": limit,
        "offset": offset,
    }


@router.get("/api/videos/{video_id}", responses=error_responses(404, 422, 500))
async def get_video(svc: ServiceDep, video_id: VideoId) -> dict[str, Any]:
    """Return one video's metadata."""
    return (await video_or_404(svc, video_id)).public()


@router.get(
    "/api/videos/{video_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **error_responses(404, 422, 500)},
)
async def thumbnail(
    svc: ServiceDep,
    video_id: VideoId,
    t: Annotated[
        float, Query(ge=0, allow_inf_nan=False, description="Seconds into the video")
    ] = 0.0,
) -> Response:
    """Return a JPEG of the frame at ``t`` seconds, from the cache when possible."""
    video = await video_or_404(svc, video_id)
    if t >= video.duration:
        raise ApiError(
            422, "t_out_of_range", f"t={t} is past the end of the video ({video.duration:.3f} s)"
        )
    try:
        image, hit = await svc.thumbnails.get(
            video.id, svc.settings.data_dir / video.path, t, video.duration
        )
    except FFmpegError as exc:
        raise ApiError(500, "ffmpeg_failed", str(exc)) from exc
    return Response(
        image,
        media_type="image/jpeg",
        headers={"X-Cache": "HIT" if hit else "MISS", "Cache-Control": "public, max-age=3600"},
    )


def check_frame_size(width: int, height: int, max_pixels: int, max_side: int) -> None:
    """Refuse (422) a video whose frames are bigger than the limits, before decoding any.

    >>> try:
    ...     check_frame_size(16000, 16000, 3840 * 2160, 4096)
    ... except UploadRejected as exc:
    ...     print(exc.status, exc.code)
    422 frame_too_large
    """
    if width * height > max_pixels or max(width, height) > max_side:
        raise UploadRejected(
            422,
            "frame_too_large",
            f"the video's frames are {width}x{height} ({width * height:,} pixels); the limit "
            f"is {max_pixels:,} pixels per frame and {max_side} pixels per side",
        )


def check_complete(span: DecodedSpan) -> None:
    """Refuse (422) a video whose data ends before the duration its header states.

    Half a frame of slack (or 10 ms without a known rate) absorbs timestamp rounding;
    a single missing frame is refused.

    >>> check_complete(DecodedSpan(4.0, 4.0, 0.1))
    >>> try:
    ...     check_complete(DecodedSpan(4.0, 3.9, 0.1))
    ... except UploadRejected as exc:
    ...     print(exc.code)
    truncated_video
    """
    if span.missing > max(span.frame_seconds / 2, 0.01):
        raise UploadRejected(
            422,
            "truncated_video",
            f"the video's header says it lasts {span.stated_end:.3f} s but its data ends at "
            f"{span.decoded_end:.3f} s: the file was cut short; upload the complete file",
        )


async def handle_upload(svc: Service, request: Request) -> dict[str, Any]:
    """Receive, validate and store one upload; count it by outcome whatever happens."""
    s, m = svc.settings, svc.metrics
    start = time.perf_counter()
    status = "failed"
    received = None
    stored: Path | None = None
    try:
        try:
            received = await receive_upload(request, s.tmp_dir, s.max_upload_bytes)
            probe = await svc.media.probe(received.path)
            check_frame_size(probe.width, probe.height, s.max_video_pixels, s.max_video_side)
            # ffprobe reads headers only: decoding the first frame, and the last ones (from
            # the last keyframe on), proves the media data is there, usable, and as long
            # as the header claims. In-process, like thumbnails; counted as the probe.
            await svc.media.thumbnail(received.path, 0.0, probe.duration, operation="probe")
            check_complete(await svc.media.decoded_span(received.path))
        except UploadRejected as exc:
            status = "rejected"
            # Refused mid-body (too large, stalled): the rest is never read, so the
            # connection can't carry another request.
            headers = {"Connection": "close"} if exc.status in (408, 413) else None
            raise ApiError(exc.status, exc.code, exc.message, headers) from exc
        except NotAVideo as exc:
            status = "rejected"
            raise ApiError(415, "not_a_video", f"the file is not a video: {exc}") from exc
        except FFmpegError as exc:
            if svc.faults.ffmpeg_broken:
                raise ApiError(500, "ffmpeg_failed", str(exc)) from exc
            status = "rejected"
            raise ApiError(422, "corrupt_video", f"the video could not be decoded: {exc}") from exc
        video_id = uuid.uuid4().hex
        stored = s.uploads_dir / f"{video_id}.video"
        os.replace(received.path, stored)
        video = Video(
            id=video_id,
            filename=safe_filename(received.filename),
            path=str(stored.relative_to(s.data_dir)),
            source="upload",
            size_bytes=received.size,
            duration=probe.duration,
            width=probe.width,
            height=probe.height,
            codec=probe.codec,
            created_at=now(),
        )
        await svc.store.add_video(video)
        status = "success"
        return video.public()
    finally:
        if status != "success" and stored is not None:
            stored.unlink(missing_ok=True)
        if received is not None:
            received.path.unlink(missing_ok=True)
        m.video_uploads.labels(status=status).inc()
        m.upload_duration.observe(time.perf_counter() - start)

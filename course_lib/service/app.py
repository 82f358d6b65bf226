"""The VrewCraft service: a small, real, instrumented video backend (FastAPI).

Endpoints (errors are always JSON ``{"error": code, "detail": ...}``):

========================================  ===============================================
``POST /api/upload``                      multipart field ``file``; probed by ffprobe
``GET  /api/videos``                      list (``limit``, ``offset``)
``GET  /api/videos/{video_id}``           one video
``GET  /api/videos/{video_id}/thumbnail`` JPEG at ``?t=SECONDS``, cached
``POST /api/videos/{video_id}/trim``      ``{"start": s, "end": s}`` -> 202 + job
``GET  /api/jobs/{job_id}``               job state and progress
``WS   /ws/jobs/{job_id}``                job state pushed on every progress change
``GET  /metrics``                         Prometheus exposition (job ``vrewcraft-backend``)
``GET  /healthz``                         200 once started
``/admin/faults``                         the fault switch (see ``faults.py``)
========================================  ===============================================

>>> from prometheus_client import CollectorRegistry
>>> app = make_app(registry=CollectorRegistry(), settings=Settings(data_dir=Path("/tmp/vc")))
>>> app.title
'VrewCraft'
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import psutil
from fastapi import Body, Depends, FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .cache import ThumbnailCache, make_cache
from .faults import FaultState, FaultUpdate
from .jobs import JobManager
from .media import FFmpegError, Media, NotAVideo, safe_filename
from .metrics import VrewCraftMetrics, register_default_collectors
from .middleware import PrometheusMiddleware, route_label
from .settings import Settings
from .storage import Video, VideoStore, now
from .thumbnails import ThumbnailService
from .uploads import UploadRejected, receive_upload

log = logging.getLogger(__name__)

#: Ids are ours (uuid hex, "sample-N"): anything else, e.g. "../x", is refused with 422
#: before it gets near the database or the file system.
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
VideoId = Annotated[str, PathParam(pattern=ID_PATTERN, description="Video id")]
JobId = Annotated[str, PathParam(pattern=ID_PATTERN, description="Job id")]

ERROR_RESPONSE = {
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"error": {"type": "string"}, "detail": {}}}
        }
    }
}


class ApiError(Exception):
    """An error answered as JSON with a status code."""

    def __init__(self, status: int, code: str, detail: Any) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


class TrimRequest(BaseModel):
    """Body of POST /api/videos/{video_id}/trim."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    start: float = Field(ge=0, description="First second to keep")
    end: float = Field(gt=0, description="Second to stop at (exclusive)")


@dataclass
class Service:
    """Everything one app instance owns; built in make_app, started by the lifespan."""

    settings: Settings
    metrics: VrewCraftMetrics
    faults: FaultState
    media: Media
    store: VideoStore | None = None
    cache: ThumbnailCache | None = None
    thumbnails: ThumbnailService | None = None
    jobs: JobManager | None = None
    sample_ids: list[str] = field(default_factory=list)

    def pool_stats(self) -> dict[str, int]:
        """Return DB pool counts (zeros before start-up)."""
        if self.store is None:
            return {"idle": 0, "active": 0, "total": 0}
        return self.store.pool.stats()

    async def start(self) -> None:
        """Create directories, open the database and cache, make sure samples exist."""
        s = self.settings
        for d in (s.uploads_dir, s.processed_dir, s.samples_dir, s.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        for stale in s.tmp_dir.iterdir():  # leftovers of a crash: never half-written data
            stale.unlink(missing_ok=True)
        self.store = await asyncio.to_thread(VideoStore, s.db_path, s.db_pool_size)
        self.cache = await make_cache(s.redis_url, s.cache_entries, s.cache_ttl_seconds)
        self.thumbnails = ThumbnailService(self.cache, self.media, self.metrics)
        self.jobs = JobManager(
            self.store,
            self.media,
            self.metrics,
            s.data_dir,
            s.processed_dir,
            s.max_concurrent_trims,
        )
        self.sample_ids = await ensure_samples(self)

    async def stop(self) -> None:
        """Cancel jobs, stop the thumbnail decoding threads, close the cache and database."""
        if self.jobs is not None:
            await self.jobs.close()
        await self.media.close()
        if self.cache is not None:
            await self.cache.close()
        if self.store is not None:
            self.store.close()


async def ensure_samples(svc: Service) -> list[str]:
    """Generate missing sample clips (in parallel) and register them; return their ids."""
    s = svc.settings
    store = svc.store
    assert store is not None

    async def one(index: int) -> str:
        """Make sure sample number ``index`` exists on disk and in the database."""
        video_id = f"sample-{index + 1}"
        path = s.samples_dir / f"{video_id}.mp4"
        if not path.exists():
            await svc.media.generate_sample(path, index, s.sample_seconds)
        if await store.get_video(video_id) is None:
            probe = await svc.media.probe(path)
            await store.add_video(
                Video(
                    id=video_id,
                    filename=path.name,
                    path=str(path.relative_to(s.data_dir)),
                    source="sample",
                    size_bytes=path.stat().st_size,
                    duration=probe.duration,
                    width=probe.width,
                    height=probe.height,
                    codec=probe.codec,
                    created_at=now(),
                )
            )
        return video_id

    return list(await asyncio.gather(*(one(i) for i in range(s.sample_count))))


def read_memory(process: psutil.Process) -> dict[str, int]:
    """Return this process's memory by type, in bytes, as the kernel reports it.

    rss: resident in RAM (what the HighMemoryUsage alert watches); vms: virtual address
    space; shared: resident pages shared with other processes (libraries); data: heap
    plus stack, the closest thing to Node's "heap used".
    """
    info = process.memory_info()
    return {
        "rss": info.rss,
        "vms": info.vms,
        "shared": getattr(info, "shared", 0),
        "data": getattr(info, "data", 0),
    }


def make_app(
    registry: CollectorRegistry | None = None, settings: Settings | None = None
) -> FastAPI:
    """Build one VrewCraft app with its metrics on ``registry`` (a fresh one by default).

    Nothing touches the disk or starts a process until the app's lifespan starts
    (uvicorn, or ``with TestClient(app)``).

    >>> from fastapi.testclient import TestClient
    >>> import tempfile
    >>> app = make_app(settings=Settings(data_dir=Path(tempfile.mkdtemp()), sample_count=1))
    >>> with TestClient(app) as client:
    ...     client.get("/healthz").json()["status"]
    'ok'
    """
    registry = CollectorRegistry() if registry is None else registry
    settings = Settings() if settings is None else settings
    register_default_collectors(registry)
    metrics = VrewCraftMetrics(registry)
    faults = FaultState()
    media = Media(
        metrics,
        broken=lambda: faults.ffmpeg_broken,
        ffmpeg_bin=settings.ffmpeg,
        ffprobe_bin=settings.ffprobe,
        thumbnail_width=settings.thumbnail_width,
        thumbnail_threads=settings.thumbnail_threads,
    )
    svc = Service(settings=settings, metrics=metrics, faults=faults, media=media)
    process = psutil.Process(os.getpid())
    metrics.watch_memory(lambda: read_memory(process))
    metrics.watch_db_pool(svc.pool_stats)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        """Start the service's resources and release them on shutdown."""
        try:
            await svc.start()
            yield
        finally:
            await svc.stop()

    app = FastAPI(
        title="VrewCraft",
        version="1.0.0",
        lifespan=lifespan,
        description="Toy video-editing backend instrumented for Prometheus.",
    )
    app.state.service = svc
    if settings.instrument_http:
        app.add_middleware(PrometheusMiddleware, metrics=metrics)
    _install_error_handlers(app)

    async def inject_faults(request: Request) -> None:
        """Apply the fault switch's added latency and error ratio to /api routes."""
        route = route_label(request.scope)
        delay = faults.latency_for(route)
        if delay > 0:
            await asyncio.sleep(delay)
        if faults.should_fail(route):
            raise ApiError(500, "injected_fault", "error injected by /admin/faults")

    api = [Depends(inject_faults)]

    async def get_video_or_404(video_id: str) -> Video:
        """Return the video row or answer 404."""
        assert svc.store is not None
        video = await svc.store.get_video(video_id)
        if video is None:
            raise ApiError(404, "not_found", f"no video with id {video_id!r}")
        return video

    # --- service endpoints ------------------------------------------------------------

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, Any]:
        """Report readiness: 200 once the lifespan has started."""
        return {
            "status": "ok",
            "cache": svc.cache.kind if svc.cache is not None else None,
            "samples": len(svc.sample_ids),
        }

    @app.get("/metrics", tags=["service"], response_class=Response)
    async def metrics_endpoint(request: Request) -> Response:
        """Expose every metric of this app's registry (text or OpenMetrics by Accept)."""
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), media_type=content_type)

    # --- videos -------------------------------------------------------------------------

    @app.post(
        "/api/upload",
        status_code=201,
        tags=["videos"],
        dependencies=api,
        responses={s: ERROR_RESPONSE for s in (400, 413, 415, 422)},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    }
                },
            }
        },
    )
    async def upload(request: Request) -> dict[str, Any]:
        """Store an uploaded video: streamed to disk, size-limited, probed, then recorded."""
        return await handle_upload(svc, request)

    @app.get("/api/videos", tags=["videos"], dependencies=api)
    async def list_videos(
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> dict[str, Any]:
        """List videos, oldest first."""
        assert svc.store is not None
        videos, count = await svc.store.list_videos(limit, offset)
        return {
            "videos": [v.public() for v in videos],
            "count": count,
            "limit": limit,
            "offset": offset,
        }

    @app.get(
        "/api/videos/{video_id}", tags=["videos"], dependencies=api, responses={404: ERROR_RESPONSE}
    )
    async def get_video(video_id: VideoId) -> dict[str, Any]:
        """Return one video's metadata."""
        return (await get_video_or_404(video_id)).public()

    @app.get(
        "/api/videos/{video_id}/thumbnail",
        tags=["videos"],
        dependencies=api,
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, 404: ERROR_RESPONSE, 422: ERROR_RESPONSE},
    )
    async def thumbnail(
        video_id: VideoId,
        t: Annotated[
            float, Query(ge=0, allow_inf_nan=False, description="Seconds into the video")
        ] = 0.0,
    ) -> Response:
        """Return a JPEG of the frame at ``t`` seconds, from the cache when possible."""
        video = await get_video_or_404(video_id)
        if t >= video.duration:
            raise ApiError(
                422,
                "t_out_of_range",
                f"t={t} is past the end of the video ({video.duration:.3f} s)",
            )
        assert svc.thumbnails is not None
        try:
            image, hit = await svc.thumbnails.get(
                video.id, settings.data_dir / video.path, t, video.duration
            )
        except FFmpegError as exc:
            raise ApiError(500, "ffmpeg_failed", str(exc)) from exc
        return Response(
            image,
            media_type="image/jpeg",
            headers={"X-Cache": "HIT" if hit else "MISS", "Cache-Control": "public, max-age=3600"},
        )

    @app.post(
        "/api/videos/{video_id}/trim",
        status_code=202,
        tags=["edits"],
        dependencies=api,
        responses={404: ERROR_RESPONSE, 422: ERROR_RESPONSE},
    )
    async def trim(video_id: VideoId, body: Annotated[TrimRequest, Body()]) -> dict[str, Any]:
        """Start a trim job keeping [start, end); follow it at /api/jobs or /ws/jobs."""
        video = await get_video_or_404(video_id)
        problem = None
        if body.start >= body.end:
            problem = f"start ({body.start}) must be before end ({body.end})"
        elif body.end > video.duration + 0.001:
            problem = f"end ({body.end}) is past the end of the video ({video.duration:.3f} s)"
        if problem:
            metrics.video_edits.labels(edit_type="trim", status="rejected").inc()
            raise ApiError(422, "invalid_range", problem)
        assert svc.jobs is not None
        job = await svc.jobs.submit(video, body.start, body.end)
        return {
            "job_id": job.id,
            "status": job.status,
            "job": job.public(),
            "status_url": f"/api/jobs/{job.id}",
            "websocket_url": f"/ws/jobs/{job.id}",
        }

    @app.get(
        "/api/jobs/{job_id}", tags=["edits"], dependencies=api, responses={404: ERROR_RESPONSE}
    )
    async def get_job(job_id: JobId) -> dict[str, Any]:
        """Return a job's state and progress (0..1)."""
        assert svc.jobs is not None
        job = await svc.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "not_found", f"no job with id {job_id!r}")
        return job.public()

    @app.websocket("/ws/jobs/{job_id}")
    async def job_progress(websocket: WebSocket, job_id: str) -> None:
        """Push the job's state on every change until it finishes, then close (1000)."""
        await websocket.accept()
        metrics.websocket_connections.inc()
        try:
            assert svc.jobs is not None
            job = await svc.jobs.get(job_id) if _valid_id(job_id) else None
            if job is None:
                await websocket.send_json(
                    {"error": "not_found", "detail": f"no job with id {job_id!r}"}
                )
                await websocket.close(code=4404)
                return
            async for state in svc.jobs.watch(job_id):
                await websocket.send_json(state.public())
            await websocket.close(code=1000)
        except WebSocketDisconnect:
            pass  # the client left; nothing to clean up but the gauge
        finally:
            metrics.websocket_connections.dec()

    # --- fault switch -------------------------------------------------------------------

    @app.get("/admin/faults", tags=["admin"])
    async def get_faults() -> dict[str, Any]:
        """Show the active faults."""
        return faults.snapshot()

    async def apply_faults(update: FaultUpdate, replace: bool) -> dict[str, Any]:
        """Apply a fault update (and a requested cache flush); return the new state."""
        faults.update(update.model_dump(), replace=replace)
        if update.flush_cache and svc.cache is not None:
            await svc.cache.clear()
            faults.cache_flushes += 1
        return faults.snapshot()

    @app.post("/admin/faults", tags=["admin"])
    async def merge_faults(update: FaultUpdate) -> dict[str, Any]:
        """Merge the given fields into the active faults."""
        return await apply_faults(update, replace=False)

    @app.put("/admin/faults", tags=["admin"])
    async def replace_faults(update: FaultUpdate) -> dict[str, Any]:
        """Replace the active faults (missing fields reset)."""
        return await apply_faults(update, replace=True)

    @app.delete("/admin/faults", tags=["admin"])
    async def clear_faults() -> dict[str, Any]:
        """Clear every fault."""
        faults.clear()
        return faults.snapshot()

    return app


def _valid_id(value: str) -> bool:
    """Return whether ``value`` looks like one of our ids."""
    return 0 < len(value) <= 64 and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)


async def handle_upload(svc: Service, request: Request) -> dict[str, Any]:
    """Receive, validate and store one upload; count it by outcome whatever happens."""
    s, m = svc.settings, svc.metrics
    assert svc.store is not None
    start = time.perf_counter()
    status = "failed"
    received = None
    stored: Path | None = None
    try:
        try:
            received = await receive_upload(request, s.tmp_dir, s.max_upload_bytes)
            probe = await svc.media.probe(received.path)
            # ffprobe reads headers only; decoding one frame proves the data is usable
            # (in-process, like thumbnails; counted as part of the probe).
            await svc.media.thumbnail(received.path, 0.0, probe.duration, operation="probe")
        except UploadRejected as exc:
            status = "rejected"
            raise ApiError(exc.status, exc.code, exc.message) from exc
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


def _error(status: int, code: str, detail: Any) -> JSONResponse:
    """Return the JSON error response used everywhere."""
    return JSONResponse({"error": code, "detail": jsonable_encoder(detail)}, status_code=status)


HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}


def _install_error_handlers(app: FastAPI) -> None:
    """Make every error a JSON body ``{"error": code, "detail": ...}``."""

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        """Answer our own errors."""
        return _error(exc.status, exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """Answer invalid parameters or bodies with 422 and the list of problems."""
        problems = [
            {k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()
        ]
        return _error(422, "validation_error", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Answer routing errors (404, 405, ...) as JSON."""
        response = _error(
            exc.status_code, HTTP_CODES.get(exc.status_code, "http_error"), exc.detail
        )
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        """Answer anything unforeseen with a 500 (logged with its traceback)."""
        log.error("unhandled error", exc_info=exc)
        return _error(500, "internal_error", "unexpected server error")

"""Edits: start a trim job, read its state, follow it over a WebSocket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field

from ..deps import JobId, ServiceDep, VideoId, inject_faults, is_valid_id, video_or_404
from ..errors import ApiError, error_responses
from ..jobs import QueueFull
from ..storage import Job

router = APIRouter(tags=["edits"])
api = [Depends(inject_faults)]


#: The shortest trim ffmpeg can express: ``-t`` is given in milliseconds (3 decimals),
#: so anything shorter rounds to 0 and the trim could only fail.
MIN_TRIM_SECONDS = 0.001


class TrimRequest(BaseModel):
    """Body of POST /api/videos/{video_id}/trim (JSON numbers only: "1", true are refused)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    start: float = Field(ge=0, description="First second to keep")
    end: float = Field(
        gt=0,
        description=f"Second to stop at (exclusive); at least {MIN_TRIM_SECONDS} s after start",
    )


@router.post(
    "/api/videos/{video_id}/trim",
    status_code=202,
    dependencies=api,
    responses=error_responses(400, 404, 408, 413, 422, 429, 500),
)
async def trim(
    svc: ServiceDep, video_id: VideoId, body: Annotated[TrimRequest, Body()]
) -> dict[str, Any]:
    """Start a trim job keeping [start, end); follow it at /api/jobs or /ws/jobs."""
    video = await video_or_404(svc, video_id)
    problem = None
    if body.start >= body.end:
        problem = f"start ({body.start}) must be before end ({body.end})"
    elif round(body.end - body.start, 3) < MIN_TRIM_SECONDS:
        problem = (
            f"the trim is {body.end - body.start:.6f} s long; the shortest ffmpeg can cut "
            f"is {MIN_TRIM_SECONDS} s"
        )
    elif body.end > video.duration + 0.001:
        problem = f"end ({body.end}) is past the end of the video ({video.duration:.3f} s)"
    if problem:
        svc.metrics.video_edits.labels(edit_type="trim", status="rejected").inc()
        raise ApiError(422, "invalid_range", problem)
    try:
        job = await svc.jobs.submit(video, body.start, body.end)
    except QueueFull as exc:
        raise ApiError(
            429, "queue_full", str(exc), headers={"Retry-After": str(exc.retry_after)}
        ) from exc
    return {
        "job_id": job.id,
        "status": job.status,
        "job": job.public(),
        "status_url": f"/api/jobs/{job.id}",
        "websocket_url": f"/ws/jobs/{job.id}",
    }


@router.get("/api/jobs/{job_id}", dependencies=api, responses=error_responses(404, 422, 500))
async def get_job(svc: ServiceDep, job_id: JobId) -> dict[str, Any]:
    """Return a job's state and progress (0..1)."""
    job = await svc.jobs.get(job_id)
    if job is None:
        raise ApiError(404, "not_found", f"no job with id {job_id!r}")
    return job.public()


@router.websocket("/ws/jobs/{job_id}")
async def job_progress(websocket: WebSocket, svc: ServiceDep, job_id: str) -> None:
    """Push the job's state on every change until it finishes, then close (1000)."""
    await websocket.accept()
    svc.metrics.websocket_connections.inc()
    try:
        job = await svc.jobs.get(job_id) if is_valid_id(job_id) else None
        if job is None:
            await websocket.send_json(
                {"error": "not_found", "detail": f"no job with id {job_id!r}"}
            )
            await websocket.close(code=4404)
            return
        await _push_until_done_or_gone(websocket, svc.jobs.watch(job_id))
    except WebSocketDisconnect:
        pass  # the client left; nothing to clean up but the gauge
    finally:
        svc.metrics.websocket_connections.dec()


async def _push_until_done_or_gone(websocket: WebSocket, states: AsyncIterator[Job]) -> None:
    """Send every state until the job finishes (then close 1000) or the client leaves.

    A client that leaves is noticed at once by reading the socket meanwhile, not at the
    next progress update: a queued job may have none for a long time, and the gauge of
    open connections must drop when the client goes.
    """

    async def push() -> None:
        async for state in states:
            await websocket.send_json(state.public())
        await websocket.close(code=1000)

    async def client_gone() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # clients have nothing to say; ignore what they send

    tasks = {asyncio.create_task(push()), asyncio.create_task(client_gone())}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()  # a send that failed because the client left: WebSocketDisconnect

"""Route dependencies: the running service, checked ids, a video or 404, the fault switch.

Routes declare what they need with a type, e.g. ``svc: ServiceDep``; FastAPI resolves
it per request from ``app.state.service`` (put there by the app's lifespan).

>>> is_valid_id("sample-1"), is_valid_id("../etc")
(True, False)
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from fastapi import Depends
from fastapi import Path as PathParam
from starlette.requests import HTTPConnection

from .core import Service
from .errors import ApiError
from .middleware import route_label
from .storage import Video

#: Ids are ours (uuid hex, "sample-N"): anything else, e.g. "../x", is refused with 422
#: before it gets near the database or the file system.
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_ID = re.compile(ID_PATTERN)

VideoId = Annotated[str, PathParam(pattern=ID_PATTERN, description="Video id")]
JobId = Annotated[str, PathParam(pattern=ID_PATTERN, description="Job id")]


def is_valid_id(value: str) -> bool:
    """Return whether ``value`` matches ``ID_PATTERN`` (for routes that can't declare it)."""
    return _ID.fullmatch(value) is not None


async def get_service(connection: HTTPConnection) -> Service:
    """Return the started service of this app (HTTP requests and WebSockets alike)."""
    # async, though it never awaits: FastAPI runs a plain `def` dependency in its thread
    # pool, a hop that cost ~150 us of CPU on every request (bench/instrumentors.py).
    svc = getattr(connection.app.state, "service", None)
    if svc is None:  # only reachable if a request arrives outside the lifespan
        raise ApiError(503, "not_started", "the service has not finished starting")
    return svc


ServiceDep = Annotated[Service, Depends(get_service)]


async def video_or_404(svc: Service, video_id: str) -> Video:
    """Return the video row or answer 404.

    Called in the handler rather than declared as a dependency, so that an invalid body
    or query is reported (422) before a missing video (404), whatever the lookup says.
    """
    video = await svc.store.get_video(video_id)
    if video is None:
        raise ApiError(404, "not_found", f"no video with id {video_id!r}")
    return video


async def inject_faults(svc: ServiceDep, connection: HTTPConnection) -> None:
    """Apply the fault switch's added latency and error ratio to /api routes."""
    route = route_label(connection.scope)
    delay = svc.faults.latency_for(route)
    if delay > 0:
        await asyncio.sleep(delay)
    if svc.faults.should_fail(route):
        raise ApiError(500, "injected_fault", "error injected by /admin/faults")

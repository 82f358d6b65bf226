"""The VrewCraft service: a small, real, instrumented video backend (FastAPI).

Endpoints (errors are always JSON ``{"error": code, "detail": ...}``), one router per
area in ``routes/``:

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

>>> from pathlib import Path
>>> from prometheus_client import CollectorRegistry
>>> app = make_app(registry=CollectorRegistry(), settings=Settings(data_dir=Path("/tmp/vc")))
>>> app.title
'VrewCraft'
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psutil
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from .core import Service
from .errors import install_error_handlers
from .faults import FaultState
from .looplag import event_loop_lag_histogram, watch_event_loop_lag
from .media import Media
from .metrics import VrewCraftMetrics, register_default_collectors
from .middleware import PrometheusMiddleware
from .routes import ROUTERS
from .settings import Settings

#: What the DB pool gauge reports while the service is not running.
NO_POOL = {"idle": 0, "active": 0, "total": 0}


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
    (uvicorn, or ``with TestClient(app)``), which puts the started ``Service`` on
    ``app.state.service`` for the routes.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from fastapi.testclient import TestClient
    >>> app = make_app(settings=Settings(data_dir=Path(tempfile.mkdtemp()), sample_count=1))
    >>> with TestClient(app) as client:
    ...     client.get("/healthz").json()["status"]
    'ok'
    """
    registry = CollectorRegistry() if registry is None else registry
    settings = Settings() if settings is None else settings
    register_default_collectors(registry)
    metrics = VrewCraftMetrics(registry)
    loop_lag = event_loop_lag_histogram(registry)
    faults = FaultState()
    media = Media(
        metrics,
        broken=lambda: faults.ffmpeg_broken,
        ffmpeg_bin=settings.ffmpeg,
        ffprobe_bin=settings.ffprobe,
        thumbnail_width=settings.thumbnail_width,
        thumbnail_threads=settings.thumbnail_threads,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Start the service, publish it on ``app.state`` and stop it on shutdown."""
        svc = await Service.start(settings, registry, metrics, faults, media)
        app.state.service = svc
        try:
            async with watch_event_loop_lag(loop_lag):
                yield
        finally:
            app.state.service = None
            await svc.stop()

    app = FastAPI(
        title="VrewCraft",
        version="1.0.0",
        lifespan=lifespan,
        description="Toy video-editing backend instrumented for Prometheus.",
    )
    app.state.service = None
    process = psutil.Process(os.getpid())
    metrics.watch_memory(lambda: read_memory(process))
    metrics.watch_db_pool(
        lambda: app.state.service.store.pool.stats() if app.state.service else NO_POOL
    )
    if settings.instrument_http:
        app.add_middleware(PrometheusMiddleware, metrics=metrics)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app

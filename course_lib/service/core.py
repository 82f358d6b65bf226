"""The running service: everything one app instance owns once its lifespan has started.

``make_app`` builds the parts that exist before start-up (settings, metrics, fault
switch, media); ``Service.start`` opens the rest (directories, database, cache, jobs,
samples) and the lifespan puts the result on ``app.state.service``, where routes get it
through the ``ServiceDep`` dependency (``deps.py``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from .cache import ThumbnailCache, make_cache
from .faults import FaultState
from .jobs import JobManager
from .media import Media
from .metrics import VrewCraftMetrics
from .settings import Settings
from .storage import Video, VideoStore, now
from .thumbnails import ThumbnailService


@dataclass
class Service:
    """One started VrewCraft instance: its settings, metrics and open resources."""

    settings: Settings
    registry: CollectorRegistry
    metrics: VrewCraftMetrics
    faults: FaultState
    media: Media
    store: VideoStore
    cache: ThumbnailCache
    thumbnails: ThumbnailService
    jobs: JobManager
    sample_ids: list[str] = field(default_factory=list)

    @classmethod
    async def start(
        cls,
        settings: Settings,
        registry: CollectorRegistry,
        metrics: VrewCraftMetrics,
        faults: FaultState,
        media: Media,
    ) -> Service:
        """Create directories, open the database and cache, make sure samples exist."""
        s = settings
        for d in (s.uploads_dir, s.processed_dir, s.samples_dir, s.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        for stale in s.tmp_dir.iterdir():  # leftovers of a crash: never half-written data
            stale.unlink(missing_ok=True)
        store = await asyncio.to_thread(VideoStore, s.db_path, s.db_pool_size)
        try:
            cache = await make_cache(s.redis_url, s.cache_entries, s.cache_ttl_seconds)
        except BaseException:
            store.close()
            raise
        jobs = JobManager(
            store, media, metrics, s.data_dir, s.processed_dir, s.max_concurrent_trims
        )
        svc = cls(
            settings=s,
            registry=registry,
            metrics=metrics,
            faults=faults,
            media=media,
            store=store,
            cache=cache,
            thumbnails=ThumbnailService(
                cache, media, metrics, bypass=lambda: faults.cache_disabled
            ),
            jobs=jobs,
        )
        try:
            svc.sample_ids = await ensure_samples(s, store, media)
        except BaseException:
            await svc.stop()
            raise
        return svc

    async def stop(self) -> None:
        """Cancel jobs, stop the thumbnail decoding threads, close the cache and database."""
        await self.jobs.close()
        await self.media.close()
        await self.cache.close()
        self.store.close()


async def ensure_samples(settings: Settings, store: VideoStore, media: Media) -> list[str]:
    """Generate missing sample clips (in parallel) and register them; return their ids."""
    s = settings

    async def one(index: int) -> str:
        """Make sure sample number ``index`` exists on disk and in the database."""
        video_id = f"sample-{index + 1}"
        path = s.samples_dir / f"{video_id}.mp4"
        if not path.exists():
            await media.generate_sample(path, index, s.sample_seconds)
        if await store.get_video(video_id) is None:
            probe = await media.probe(path)
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

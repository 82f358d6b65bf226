"""Trim jobs: run ffmpeg in the background, publish progress to WebSocket watchers.

A job lives in memory while it runs (progress changes many times a second) and is
saved to SQLite when it is created and when it finishes, so ``GET /api/jobs/{id}``
works after a restart too. Watchers wait on an ``asyncio.Condition`` and get every
state change; nobody polls.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

from .media import FFmpegError, Media
from .metrics import VrewCraftMetrics
from .storage import Job, Video, VideoStore, now

log = logging.getLogger(__name__)

FINISHED = ("succeeded", "failed")


class JobManager:
    """Create, run and watch trim jobs."""

    def __init__(
        self,
        store: VideoStore,
        media: Media,
        metrics: VrewCraftMetrics,
        data_dir: Path,
        processed_dir: Path,
        max_concurrent: int = 2,
    ) -> None:
        self.store = store
        self.media = media
        self.metrics = metrics
        self.data_dir = data_dir
        self.processed_dir = processed_dir
        self._slots = asyncio.Semaphore(max_concurrent)
        self._live: dict[str, Job] = {}
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, video: Video, start: float, end: float) -> Job:
        """Create a queued trim job for ``video`` and start it in the background."""
        job = Job(
            id=uuid.uuid4().hex,
            video_id=video.id,
            edit_type="trim",
            start=start,
            end=end,
            status="queued",
            progress=0.0,
            error=None,
            output_video_id=None,
            created_at=now(),
            finished_at=None,
        )
        await self.store.save_job(job)
        self._live[job.id] = job
        task = asyncio.get_running_loop().create_task(self._run(job, video))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def get(self, job_id: str) -> Job | None:
        """Return the live job, or the stored one."""
        return self._live.get(job_id) or await self.store.get_job(job_id)

    async def watch(self, job_id: str) -> AsyncIterator[Job]:
        """Yield the job now and after every change, until it has finished."""
        job = await self.get(job_id)
        if job is None:
            return
        last: tuple | None = None
        while True:
            state = (job.status, job.progress)
            if state != last:
                last = state
                yield job
            if job.status in FINISHED:
                return
            async with self._changed:
                await self._changed.wait_for(partial(_changed_since, job, last))

    async def _publish(self, job: Job, **changes: object) -> None:
        """Change a live job and wake its watchers."""
        for key, value in changes.items():
            setattr(job, key, value)
        async with self._changed:
            self._changed.notify_all()

    async def _run(self, job: Job, video: Video) -> None:
        """Run one trim: queued -> running -> succeeded/failed, never stuck on a path."""
        output_id = uuid.uuid4().hex
        dst = self.processed_dir / f"{output_id}.mp4"
        try:
            async with self._slots:
                await self._publish(job, status="running")

                async def on_progress(value: float) -> None:
                    """Forward ffmpeg progress to watchers."""
                    await self._publish(job, progress=round(value, 3))

                await self.media.trim(
                    self.data_dir / video.path, dst, job.start, job.end, on_progress
                )
                probe = await self.media.probe(dst)
                await self.store.add_video(
                    Video(
                        id=output_id,
                        filename=f"trim-{video.filename}",
                        path=str(dst.relative_to(self.data_dir)),
                        source="trim",
                        size_bytes=dst.stat().st_size,
                        duration=probe.duration,
                        width=probe.width,
                        height=probe.height,
                        codec=probe.codec,
                        created_at=now(),
                    )
                )
        except (FFmpegError, ValueError, OSError) as exc:
            dst.unlink(missing_ok=True)
            self.metrics.video_edits.labels(edit_type="trim", status="failed").inc()
            log.warning("trim job %s failed: %s", job.id, exc)
            await self._finish(job, status="failed", error=str(exc))
        except BaseException:
            dst.unlink(missing_ok=True)
            self.metrics.video_edits.labels(edit_type="trim", status="failed").inc()
            await self._finish(job, status="failed", error="cancelled (service shutting down)")
            raise
        else:
            self.metrics.video_edits.labels(edit_type="trim", status="success").inc()
            await self._finish(job, status="succeeded", progress=1.0, output_video_id=output_id)

    async def _finish(self, job: Job, **changes: object) -> None:
        """Record the final state, save it, wake watchers and forget the live copy."""
        await self._publish(job, finished_at=now(), **changes)
        try:
            await asyncio.shield(self.store.save_job(job))
        finally:
            # Keep it briefly so watchers that connect right now still see it live.
            loop = asyncio.get_running_loop()
            loop.call_later(30.0, self._live.pop, job.id, None)

    async def close(self) -> None:
        """Cancel running jobs (their partial outputs are removed) and wait for them."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _changed_since(job: Job, seen: tuple | None) -> bool:
    """Return whether ``job``'s status or progress differs from ``seen``."""
    return (job.status, job.progress) != seen

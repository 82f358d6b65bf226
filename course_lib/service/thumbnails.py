"""Cached thumbnails: the Python twin of the seed's ``ThumbnailService`` (part 2.6).

Like the seed's service, which calls a native addon (``native.extractThumbnail``), a
miss decodes the frame in-process: with PyAV, FFmpeg's own libraries, on a small pool
of decoding threads (``Media.thumbnail``). Spawning the ffmpeg CLI per miss cost ~40 ms
of process start-up alone, most of a miss's latency; the decode itself takes ~5 ms.

Every lookup increments ``vrewcraft_thumbnail_requests_total{cache_status}`` and is
timed into ``vrewcraft_thumbnail_duration_seconds``; misses are also timed into
``vrewcraft_thumbnail_miss_duration_seconds`` so their latency isn't drowned by hits.
The seed's in-process hit-ratio gauge is kept (with its caveats, see metrics.py).

>>> thumbnail_key("abc", 1.234)
'abc@1.23'
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from .cache import CACHE_ERRORS, ThumbnailCache
from .media import Media
from .metrics import VrewCraftMetrics

log = logging.getLogger(__name__)


def thumbnail_key(video_id: str, t: float) -> str:
    """Return the cache key of a thumbnail: video id and time rounded to 10 ms."""
    return f"{video_id}@{t:.2f}"


class ThumbnailService:
    """Serve thumbnails from the cache, decoding them in-process on a miss."""

    def __init__(
        self,
        cache: ThumbnailCache,
        media: Media,
        metrics: VrewCraftMetrics,
        bypass: Callable[[], bool] = lambda: False,
    ) -> None:
        self.cache = cache
        # The fault switch's cache_disabled: when it returns True the cache is skipped.
        self.bypass = bypass
        self.media = media
        self.metrics = metrics
        self.hits = 0
        self.misses = 0
        # Misses being extracted right now, by key: concurrent misses for the same frame
        # wait for the one extraction instead of starting their own ("single flight").
        # Without this, a hot frame requested 20 times while cold is decoded 20 times,
        # and the other misses queue behind those duplicates for the decoding threads.
        self._inflight: dict[str, asyncio.Future[bytes]] = {}

    async def get(self, video_id: str, path: Path, t: float, duration: float) -> tuple[bytes, bool]:
        """Return (JPEG bytes, was it a cache hit)."""
        t = round(t, 2)
        key = thumbnail_key(video_id, t)
        start = time.perf_counter()
        cached = await self._cache_get(key)
        self._count(hit=cached is not None)
        try:
            if cached is not None:
                return cached, True
            return await self._extract_once(key, path, t, duration), False
        finally:
            # Observed on every path (errors too), in both histograms for misses, so
            # that total - misses = hits holds bucket by bucket.
            elapsed = time.perf_counter() - start
            self.metrics.thumbnail_duration.observe(elapsed)
            if cached is None:
                self.metrics.thumbnail_miss_duration.observe(elapsed)

    async def _extract_once(self, key: str, path: Path, t: float, duration: float) -> bytes:
        """Extract and cache one frame, sharing the work with concurrent misses."""
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(self._extract(key, path, t, duration))
            self._inflight[key] = future
            future.add_done_callback(lambda done: self._forget(key, done))
        # shield: one waiter giving up (client gone) must not cancel the others' work.
        return await asyncio.shield(future)

    def _forget(self, key: str, done: asyncio.Future[bytes]) -> None:
        """Drop a finished extraction; mark its error retrieved (waiters got it already)."""
        self._inflight.pop(key, None)
        if not done.cancelled():
            done.exception()

    async def _extract(self, key: str, path: Path, t: float, duration: float) -> bytes:
        """Decode one frame and store it in the cache."""
        image = await self.media.thumbnail(path, t, duration)
        await self._cache_set(key, image)
        return image

    async def _cache_get(self, key: str) -> bytes | None:
        """Read the cache; an unreachable (or bypassed) cache is a miss, not an outage."""
        if self.bypass():
            return None
        try:
            return await self.cache.get(key)
        except CACHE_ERRORS as exc:
            log.warning("thumbnail cache read failed, extracting instead: %s", exc)
            return None

    async def _cache_set(self, key: str, image: bytes) -> None:
        """Write the cache; failing to cache must not fail the request."""
        if self.bypass():
            return
        try:
            await self.cache.set(key, image)
        except CACHE_ERRORS as exc:
            log.warning("thumbnail cache write failed: %s", exc)

    def _count(self, hit: bool) -> None:
        """Count a hit or miss and refresh the seed's in-process ratio gauge."""
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        self.metrics.thumbnail_requests.labels(cache_status="hit" if hit else "miss").inc()
        self.metrics.thumbnail_cache_hit_ratio.set(self.hits / (self.hits + self.misses))

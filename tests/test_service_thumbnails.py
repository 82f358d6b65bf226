"""ThumbnailService: concurrent misses share one extraction, and every lookup is counted."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from course_lib.lesson import sample_value as value
from course_lib.service.cache import LRUCache
from course_lib.service.media import FFmpegError, Media
from course_lib.service.metrics import VrewCraftMetrics
from course_lib.service.testing import rendered_samples
from course_lib.service.thumbnails import ThumbnailService

# Every test here renders or decodes real video with ffmpeg.
pytestmark = pytest.mark.ffmpeg


def run_service(scenario, broken: bool = False):
    """Run ``scenario(service)`` with a fresh service; return (its result, registry)."""
    registry = CollectorRegistry()
    metrics = VrewCraftMetrics(registry)
    media = Media(metrics, broken=lambda: broken)
    service = ThumbnailService(LRUCache(64), media, metrics)

    async def main():
        try:
            return await scenario(service)
        finally:
            await media.close()

    return asyncio.run(main()), registry


def test_concurrent_misses_for_one_frame_decode_it_once():
    clip = rendered_samples() / "sample-2.mp4"

    async def scenario(service):
        first = await asyncio.gather(*(service.get("s2", clip, 1.5, 6.0) for _ in range(20)))
        again = await service.get("s2", clip, 1.5, 6.0)
        return first, again

    (first, again), registry = run_service(scenario)
    assert {image for image, _ in first} == {again[0]} and again[1] is True
    assert all(not hit for _, hit in first)  # all 20 were misses, counted as such...
    assert value(registry, "vrewcraft_thumbnail_requests_total", cache_status="miss") == 20
    assert value(registry, "vrewcraft_thumbnail_requests_total", cache_status="hit") == 1
    # ...served by a single decode
    assert value(registry, "vrewcraft_ffmpeg_duration_seconds_count", operation="thumbnail") == 1
    assert value(registry, "vrewcraft_thumbnail_miss_duration_seconds_count") == 20
    assert value(registry, "vrewcraft_thumbnail_duration_seconds_count") == 21
    assert value(registry, "vrewcraft_ffmpeg_jobs_active") == 0


def test_a_failed_extraction_is_shared_counted_once_and_not_cached():
    clip = rendered_samples() / "sample-2.mp4"

    async def scenario(service):
        results = await asyncio.gather(
            *(service.get("s2", clip, 2.0, 6.0) for _ in range(5)), return_exceptions=True
        )
        return results, len(service.cache)

    (results, cached), registry = run_service(scenario, broken=True)
    assert cached == 0
    assert all(isinstance(r, FFmpegError) for r in results)
    assert value(registry, "vrewcraft_ffmpeg_errors_total", operation="thumbnail") == 1
    assert value(registry, "vrewcraft_thumbnail_miss_duration_seconds_count") == 5
    assert value(registry, "vrewcraft_ffmpeg_jobs_active") == 0

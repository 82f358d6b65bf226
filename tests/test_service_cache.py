"""Both thumbnail caches: the in-process LRU and Redis (a private redis-server per test run)."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from course_lib.service.app import make_app
from course_lib.service.cache import REDIS_PREFIX, LRUCache, RedisCache, make_cache
from course_lib.service.testing import redis_server, seeded_settings

# Real redis-server processes and an app whose samples ffmpeg renders.
pytestmark = [pytest.mark.ffmpeg, pytest.mark.process]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """Yield the URL of a redis-server started for this module (fails if not installed)."""
    if shutil.which("redis-server") is None:
        pytest.fail(
            "redis-server is required for the Redis cache tests: "
            "apt-get install redis-server (or brew install redis)"
        )
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def test_lru_evicts_least_recently_used_and_clears():
    async def scenario():
        cache = LRUCache(max_entries=3)
        for key in "abc":
            await cache.set(key, key.encode())
        await cache.get("a")  # now "b" is the oldest
        await cache.set("d", b"d")
        assert await cache.get("b") is None
        assert [await cache.get(k) for k in "acd"] == [b"a", b"c", b"d"]
        assert len(cache) == 3
        assert await cache.clear() == 3
        assert await cache.get("a") is None

    asyncio.run(scenario())


def test_redis_cache_roundtrip_ttl_and_prefix_scoped_flush(redis_url):
    import redis

    other = redis.Redis.from_url(redis_url)
    other.set("someone-else:key", b"keep me")

    async def scenario():
        cache = await make_cache(redis_url, max_entries=8, ttl_seconds=60)
        assert isinstance(cache, RedisCache) and cache.kind == "redis"
        try:
            await cache.set("v@1.00", b"\xff\xd8jpeg")
            assert await cache.get("v@1.00") == b"\xff\xd8jpeg"
            assert await cache.get("missing") is None
            ttl = other.ttl(REDIS_PREFIX + "v@1.00")
            assert 0 < ttl <= 60
            assert await cache.clear() == 1
            assert await cache.get("v@1.00") is None
        finally:
            await cache.close()

    asyncio.run(scenario())
    assert other.get("someone-else:key") == b"keep me"  # the flush only touched our keys
    other.delete("someone-else:key")
    other.close()


def test_unreachable_redis_fails_at_startup():
    async def scenario():
        await make_cache("redis://127.0.0.1:1/0", max_entries=8, ttl_seconds=60)

    with pytest.raises(OSError):
        asyncio.run(scenario())


def test_app_serves_thumbnails_from_redis_shared_between_instances(redis_url, tmp_path):
    # Two app instances (think: two replicas) share one Redis: a miss on the first is a
    # hit on the second, which the in-process LRU could never do.
    results = []
    for name in ("replica-a", "replica-b"):
        registry = CollectorRegistry()
        settings = seeded_settings(tmp_path / name, sample_count=1, redis_url=redis_url)
        with TestClient(make_app(registry=registry, settings=settings)) as client:
            assert client.get("/healthz").json()["cache"] == "redis"
            response = client.get("/api/videos/sample-1/thumbnail", params={"t": 2.25})
            assert response.status_code == 200
            results.append(
                (
                    response.headers["x-cache"],
                    response.content,
                    registry.get_sample_value(
                        "vrewcraft_thumbnail_requests_total", {"cache_status": "hit"}
                    ),
                )
            )
            if name == "replica-b":
                assert client.post("/admin/faults", json={"flush_cache": True}).status_code == 200
                again = client.get("/api/videos/sample-1/thumbnail", params={"t": 2.25})
                assert again.headers["x-cache"] == "MISS"
    (first, image_a, _), (second, image_b, hits_b) = results
    assert (first, second) == ("MISS", "HIT")
    assert image_a == image_b and hits_b == 1

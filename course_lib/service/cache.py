"""Thumbnail caches: an in-process LRU (default) and Redis (when REDIS_URL is set).

Both have the same async interface: ``get(key) -> bytes | None``, ``set(key, value)``,
``clear()`` (the fault switch's "cache flush") and ``close()``.

>>> import asyncio
>>> cache = LRUCache(max_entries=2)
>>> async def demo():
...     await cache.set("a", b"1"); await cache.set("b", b"2"); await cache.get("a")
...     await cache.set("c", b"3")           # evicts "b", the least recently used
...     return await cache.get("a"), await cache.get("b")
>>> asyncio.run(demo())
(b'1', None)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol, cast


class CacheUnavailable(ConnectionError):
    """The cache backend can't be reached; callers treat it as a miss."""


#: What a cache may raise when its backend is unreachable: callers degrade to a miss.
CACHE_ERRORS = (OSError, TimeoutError)

#: Every Redis key we write starts with this, so a flush never touches other data.
REDIS_PREFIX = "vrewcraft:thumbnail:"


class ThumbnailCache(Protocol):
    """What the thumbnail service needs from a cache."""

    kind: str

    async def get(self, key: str) -> bytes | None:
        """Return the cached value or None."""

    async def set(self, key: str, value: bytes) -> None:
        """Store a value."""

    async def clear(self) -> int:
        """Drop every entry; return how many were dropped."""

    async def close(self) -> None:
        """Release connections."""


class LRUCache:
    """A bounded least-recently-used cache in this process's memory."""

    kind = "lru"

    def __init__(self, max_entries: int = 512) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, bytes] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        """Return the value and mark it most recently used."""
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes) -> None:
        """Store a value, evicting the least recently used entries beyond the bound."""
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    async def clear(self) -> int:
        """Drop every entry."""
        dropped = len(self._data)
        self._data.clear()
        return dropped

    async def close(self) -> None:
        """Nothing to release."""

    def __len__(self) -> int:
        return len(self._data)


class RedisCache:
    """Thumbnails in Redis with a TTL, shared by every replica that uses the same server."""

    kind = "redis"

    def __init__(self, url: str, ttl_seconds: int = 3600) -> None:
        # Imported here: the default (LRU) path doesn't need the asyncio client loaded.
        import redis.asyncio as redis_asyncio
        from redis.exceptions import RedisError

        self._errors = RedisError
        self.url = url
        self.ttl_seconds = ttl_seconds
        self._redis = redis_asyncio.Redis.from_url(
            url, socket_timeout=2.0, socket_connect_timeout=2.0
        )

    async def ping(self) -> None:
        """Fail early (at start-up) if the server is unreachable."""
        try:
            await self._redis.ping()
        except self._errors as exc:
            raise CacheUnavailable(f"redis at {self.url}: {exc}") from exc

    async def get(self, key: str) -> bytes | None:
        """Return the value or None."""
        try:
            # The client is made without decode_responses, so values come back as bytes.
            return cast(bytes | None, await self._redis.get(REDIS_PREFIX + key))
        except self._errors as exc:
            raise CacheUnavailable(f"redis: {exc}") from exc

    async def set(self, key: str, value: bytes) -> None:
        """Store a value with the TTL."""
        try:
            await self._redis.set(REDIS_PREFIX + key, value, ex=self.ttl_seconds)
        except self._errors as exc:
            raise CacheUnavailable(f"redis: {exc}") from exc

    async def clear(self) -> int:
        """Delete our keys only (SCAN by prefix; never FLUSHDB someone else's data)."""
        dropped = 0
        batch: list[bytes] = []
        async for key in self._redis.scan_iter(match=REDIS_PREFIX + "*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                dropped += await self._redis.delete(*batch)
                batch.clear()
        if batch:
            dropped += await self._redis.delete(*batch)
        return dropped

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


async def make_cache(redis_url: str | None, max_entries: int, ttl_seconds: int) -> ThumbnailCache:
    """Return a connected Redis cache if ``redis_url`` is set, else an LRU.

    >>> import asyncio
    >>> asyncio.run(make_cache(None, 8, 60)).kind
    'lru'
    """
    if not redis_url:
        return LRUCache(max_entries)
    cache = RedisCache(redis_url, ttl_seconds)
    try:
        await cache.ping()
    except BaseException:
        await cache.close()
        raise
    return cache

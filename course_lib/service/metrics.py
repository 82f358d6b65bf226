"""The VrewCraft metric definitions: every metric of the course catalog, in one place.

This is the Python twin of the seed's ``metrics.ts`` (part 2.2). Names, label names
and buckets are the catalog's, exactly. The differences from the seed are fixes:

* Metrics are created on a registry passed in, never on the global default one, so
  two apps (or a notebook re-running a cell) never collide with "Duplicated timeseries".
* The default process/platform/GC collectors keep their standard, unprefixed names
  (``process_resident_memory_bytes``): the seed prefixed them with ``vrewcraft_`` and
  then queried the unprefixed name in its dashboard, which found nothing.
* One extra histogram, ``vrewcraft_thumbnail_miss_duration_seconds``, makes cache-miss
  latency visible on its own; see its comment.

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> registry = CollectorRegistry()
>>> m = VrewCraftMetrics(registry)
>>> m.video_uploads.labels(status="success").inc()
>>> b'vrewcraft_video_uploads_total{status="success"} 1.0' in generate_latest(registry)
True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

__all__ = ["VrewCraftMetrics", "register_default_collectors"]

# Buckets are chosen around the targets we alert on, so that each threshold is a
# bucket boundary and `histogram_quantile` can tell "below" from "above" exactly.
# API latency: the HighAPILatency alert fires at p99 > 0.2 s; buckets span 1 ms .. 5 s.
HTTP_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5)
# Thumbnails: the target is p99 < 50 ms, so the buckets are dense around 0.05.
THUMBNAIL_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1)
# ffmpeg jobs: the seed's buckets, sized for trims (half a second to a minute). Probes
# (~40 ms) and in-process thumbnail decodes (~5 ms) all land in the first bucket; for
# thumbnail latency read the thumbnail histograms, whose buckets are made for it.
FFMPEG_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60)
# Uploads include the network transfer, so they are slower still.
UPLOAD_BUCKETS = (0.5, 1, 2, 5, 10, 30)


def register_default_collectors(registry: CollectorRegistry) -> None:
    """Register the process, platform and GC collectors on ``registry``, unprefixed.

    They give ``process_resident_memory_bytes``, ``process_cpu_seconds_total``,
    ``python_info`` and ``python_gc_*``: the standard names every dashboard expects.
    """
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


class VrewCraftMetrics:
    """Every VrewCraft metric, defined on one registry.

    >>> m = VrewCraftMetrics(CollectorRegistry())
    >>> with m.ffmpeg_job("trim"):
    ...     pass  # run ffmpeg here; duration is observed, the active gauge goes back to 0
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

        # === Counters: things that happened. Query them with rate()/increase(). ===

        # Every HTTP request. `route` is the route *template* ("/api/videos/{video_id}"),
        # never the raw path: raw paths would create one time series per video id and
        # per 404 probe (the seed's mistake). Unmatched paths all share route="<unmatched>".
        self.http_requests = Counter(
            "vrewcraft_http_requests_total",
            "Total number of HTTP requests",
            ["method", "route", "status_code"],
            registry=registry,
        )
        # Upload attempts by outcome: success, rejected (client error: empty, too
        # large, not a video) or failed (our fault: disk, database).
        self.video_uploads = Counter(
            "vrewcraft_video_uploads_total",
            "Total number of video uploads",
            ["status"],
            registry=registry,
        )
        # Edit jobs: edit_type="trim"; status is success, failed or rejected (bad range).
        self.video_edits = Counter(
            "vrewcraft_video_edits_total",
            "Total number of video edits",
            ["edit_type", "status"],
            registry=registry,
        )
        # Thumbnail lookups, cache_status="hit" or "miss". The hit ratio belongs in
        # PromQL: sum(rate(...{cache_status="hit"}[5m])) / sum(rate(...[5m])).
        self.thumbnail_requests = Counter(
            "vrewcraft_thumbnail_requests_total",
            "Total number of thumbnail requests",
            ["cache_status"],
            registry=registry,
        )
        # ffmpeg/ffprobe runs that failed, by operation: probe, thumbnail, trim.
        self.ffmpeg_errors = Counter(
            "vrewcraft_ffmpeg_errors_total",
            "Total number of FFmpeg errors",
            ["operation"],
            registry=registry,
        )

        # === Histograms: distributions. Quantiles come from histogram_quantile(). ===

        # Same labels as the request counter, so every route has its own latency.
        # Remember to `sum by (le)` (or `by (le, route)`) before histogram_quantile.
        self.http_request_duration = Histogram(
            "vrewcraft_http_request_duration_seconds",
            "HTTP request duration in seconds",
            ["method", "route", "status_code"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        # All thumbnail lookups, hits and misses together (the seed's metric). A p99
        # over a 90% hit ratio is mostly hits, so it hides slow misses...
        self.thumbnail_duration = Histogram(
            "vrewcraft_thumbnail_duration_seconds",
            "Thumbnail extraction duration in seconds",
            buckets=THUMBNAIL_BUCKETS,
            registry=registry,
        )
        # ...so cache misses are also observed here, with the *same* buckets. Misses
        # get their own quantiles, and because both histograms count the same events
        # per bucket, hits are exactly `thumbnail_duration - thumbnail_miss_duration`
        # bucket by bucket. Adding a cache_status label to the catalog metric would
        # have done the same, but the catalog's label set is fixed.
        self.thumbnail_miss_duration = Histogram(
            "vrewcraft_thumbnail_miss_duration_seconds",
            "Thumbnail duration in seconds of cache misses only (extraction by ffmpeg)",
            buckets=THUMBNAIL_BUCKETS,
            registry=registry,
        )
        self.ffmpeg_duration = Histogram(
            "vrewcraft_ffmpeg_duration_seconds",
            "FFmpeg processing duration in seconds",
            ["operation"],
            buckets=FFMPEG_BUCKETS,
            registry=registry,
        )
        # From the first byte of the request body to the stored, probed file.
        self.upload_duration = Histogram(
            "vrewcraft_upload_duration_seconds",
            "Video upload duration in seconds",
            buckets=UPLOAD_BUCKETS,
            registry=registry,
        )

        # === Gauges: current values that go up and down. ===

        self.websocket_connections = Gauge(
            "vrewcraft_websocket_connections",
            "Number of active WebSocket connections",
            registry=registry,
        )
        # Only changed through ffmpeg_job(): a context manager, so no failure path can
        # leave it incremented (the seed's version leaked it).
        self.ffmpeg_jobs_active = Gauge(
            "vrewcraft_ffmpeg_jobs_active",
            "Number of active FFmpeg jobs",
            registry=registry,
        )
        # Kept because the seed has it, but it is a lesson, not a tool: it is computed
        # inside one process, resets on restart and cannot be averaged across replicas
        # (the seed's mistake). Derive the ratio from thumbnail_requests_total instead.
        self.thumbnail_cache_hit_ratio = Gauge(
            "vrewcraft_thumbnail_cache_hit_ratio",
            "Thumbnail cache hit ratio (0-1)",
            registry=registry,
        )
        # Real numbers from the OS, read at scrape time (see watch_memory).
        self.memory_usage = Gauge(
            "vrewcraft_memory_usage_bytes",
            "Memory usage in bytes",
            ["type"],
            registry=registry,
        )
        # The SQLite connection pool: idle + active = total (see watch_db_pool).
        self.db_pool_connections = Gauge(
            "vrewcraft_db_pool_connections",
            "Database connection pool status",
            ["state"],
            registry=registry,
        )

    @contextmanager
    def ffmpeg_job(self, operation: str) -> Iterator[None]:
        """Count one ffmpeg run as active, time it, and count it as an error if it raises.

        >>> registry = CollectorRegistry()
        >>> m = VrewCraftMetrics(registry)
        >>> try:
        ...     with m.ffmpeg_job("trim"):
        ...         raise RuntimeError("ffmpeg exited with 1")
        ... except RuntimeError:
        ...     pass
        >>> registry.get_sample_value("vrewcraft_ffmpeg_jobs_active")
        0.0
        >>> registry.get_sample_value("vrewcraft_ffmpeg_errors_total", {"operation": "trim"})
        1.0
        """
        self.ffmpeg_jobs_active.inc()
        start = time.perf_counter()  # monotonic: wall-clock jumps can't skew it (unlike Date.now())
        try:
            yield
        except BaseException:
            self.ffmpeg_errors.labels(operation=operation).inc()
            raise
        finally:
            self.ffmpeg_duration.labels(operation=operation).observe(time.perf_counter() - start)
            self.ffmpeg_jobs_active.dec()

    def watch_memory(self, read: Callable[[], dict[str, int]]) -> None:
        """Make ``vrewcraft_memory_usage_bytes{type}`` read ``read()[type]`` at scrape time."""
        for memory_type in read():
            self.memory_usage.labels(type=memory_type).set_function(
                partial(_item, read, memory_type)
            )

    def watch_db_pool(self, read: Callable[[], dict[str, int]]) -> None:
        """Make ``vrewcraft_db_pool_connections{state}`` read ``read()[state]`` at scrape time."""
        for state in read():
            self.db_pool_connections.labels(state=state).set_function(partial(_item, read, state))


def _item(read: Callable[[], dict[str, int]], key: str) -> float:
    """Return ``read()[key]``: a gauge's value, read at scrape time."""
    return read()[key]

"""Event-loop lag: how long something that happens now waits for the event loop to notice.

The HTTP middleware starts a request's clock only when the event loop gets to the
request. While the loop is busy with other requests (or a slow synchronous call, or a
garbage collection), a new request's bytes wait in the socket buffer, and no server-side
latency histogram sees that wait; the client does. This watcher makes the wait visible
as ``vrewcraft_event_loop_lag_seconds`` (the seed's Node service would read prom-client's
``nodejs_eventloop_lag_seconds``).

How: a helper thread wakes every ``interval`` and hands the loop a callback stamped with
the moment it was due, the way a socket hands it a request; the callback observes how
late it ran. A timer inside the loop can't measure this: it only fires after the batch of
work that delayed it, and the selector rounds its timeouts up to whole milliseconds.

>>> import asyncio
>>> from prometheus_client import CollectorRegistry
>>> registry = CollectorRegistry()
>>> lag = event_loop_lag_histogram(registry)
>>> async def serve_for_a_while():
...     async with watch_event_loop_lag(lag, interval=0.01):
...         await asyncio.sleep(0.1)
>>> asyncio.run(serve_for_a_while())
>>> registry.get_sample_value("vrewcraft_event_loop_lag_seconds_count") >= 5
True
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from time import perf_counter

from prometheus_client import CollectorRegistry, Histogram

#: Sampling period. 40 samples a second cost well under 0.1 % of a core.
INTERVAL_SECONDS = 0.025
#: Well under a millisecond on an idle loop; every millisecond of lag is added to requests
#: without showing in the HTTP histogram, so the buckets start small.
LOOP_LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


def event_loop_lag_histogram(registry: CollectorRegistry) -> Histogram:
    """Define ``vrewcraft_event_loop_lag_seconds`` on ``registry``.

    It is a runtime metric of the process, like ``process_cpu_seconds_total``, not one of
    the catalog's application metrics, so it lives here rather than in ``metrics.py``.
    """
    return Histogram(
        "vrewcraft_event_loop_lag_seconds",
        "Time an event waits for the event loop to run its callback, in seconds",
        buckets=LOOP_LAG_BUCKETS,
        registry=registry,
    )


@contextlib.asynccontextmanager
async def watch_event_loop_lag(
    histogram: Histogram, interval: float = INTERVAL_SECONDS
) -> AsyncIterator[None]:
    """Observe the event loop's lag into ``histogram`` every ``interval`` s inside the block."""
    if interval <= 0:
        raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
    loop = asyncio.get_running_loop()
    stop = threading.Event()

    def observe(due: float) -> None:
        histogram.observe(max(0.0, perf_counter() - due))

    def probe() -> None:
        while True:
            due = perf_counter() + interval
            if stop.wait(interval):
                return
            loop.call_soon_threadsafe(observe, due)

    thread = threading.Thread(target=probe, name="event-loop-lag", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()  # returns at once: the thread was waiting on `stop`

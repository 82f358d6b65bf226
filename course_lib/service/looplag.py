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
>>> from course_lib.service.metrics import VrewCraftMetrics
>>> m = VrewCraftMetrics(CollectorRegistry())
>>> async def busy_for_a_while():
...     async with watch_event_loop_lag(m.event_loop_lag, interval=0.01):
...         await asyncio.sleep(0.1)
>>> asyncio.run(busy_for_a_while())
>>> m.registry.get_sample_value("vrewcraft_event_loop_lag_seconds_count") >= 5
True
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from time import perf_counter

from prometheus_client import Histogram

#: Sampling period. 40 samples a second cost well under 0.1 % of a core.
INTERVAL_SECONDS = 0.025


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

"""Event-loop lag: how long work that is ready waits before the event loop runs it.

The HTTP middleware starts a request's clock only when the event loop gets to the
request. While the loop is busy with other requests (or a slow synchronous call, or a
garbage collection), a new request waits in the socket buffer and the ready queue, and
no server-side latency histogram sees that wait; the client does. This watcher makes the
wait visible as ``vrewcraft_event_loop_lag_seconds``, measured the way Node's prom-client
measures ``nodejs_eventloop_lag_seconds``: every ``interval`` a timer fires, then the
watcher times one trip to the back of the ready queue.

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
from collections.abc import AsyncIterator
from time import perf_counter

from prometheus_client import Histogram

#: Sampling period. 40 samples a second cost ~1 ms of CPU per second (0.1 %).
INTERVAL_SECONDS = 0.025


@contextlib.asynccontextmanager
async def watch_event_loop_lag(
    histogram: Histogram, interval: float = INTERVAL_SECONDS
) -> AsyncIterator[None]:
    """Observe the event loop's lag into ``histogram`` every ``interval`` s inside the block."""
    if interval <= 0:
        raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
    task = asyncio.create_task(_sample(histogram, interval), name="event-loop-lag")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _sample(histogram: Histogram, interval: float) -> None:
    """Sleep, then time one trip through the ready queue, forever."""
    while True:
        await asyncio.sleep(interval)
        # sleep(0) puts this task at the back of the ready queue: it runs again only
        # after every callback and request step that was ready before it.
        started = perf_counter()
        await asyncio.sleep(0)
        histogram.observe(perf_counter() - started)

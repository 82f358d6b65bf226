"""The event-loop lag histogram sees a busy loop, stays small on an idle one, and stops."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from course_lib.service.app import make_app
from course_lib.service.looplag import event_loop_lag_histogram, watch_event_loop_lag
from course_lib.service.testing import seeded_settings

LAG = "vrewcraft_event_loop_lag_seconds"
BLOCK_SECONDS = 0.01  # each step of the busy coroutine holds the loop this long


def share_at_most(registry: CollectorRegistry, le: str) -> float:
    """Return the share of lag samples at most ``le`` seconds."""
    count = registry.get_sample_value(f"{LAG}_count")
    assert count and count >= 10, f"too few lag samples ({count}) to judge"
    return registry.get_sample_value(f"{LAG}_bucket", {"le": le}) / count


def watch(busy: bool) -> CollectorRegistry:
    """Watch the loop for 0.4 s, idle or kept busy by 10 ms synchronous steps."""
    registry = CollectorRegistry()
    lag = event_loop_lag_histogram(registry)

    async def main() -> None:
        # An interval that is no multiple of the busy steps, so samples don't stay in phase.
        async with watch_event_loop_lag(lag, interval=0.0037):
            deadline = time.monotonic() + 0.4
            while time.monotonic() < deadline:
                if busy:
                    time.sleep(BLOCK_SECONDS)  # the mistake: blocking inside async code
                    await asyncio.sleep(0)
                else:
                    await asyncio.sleep(0.01)
        assert not [t for t in threading.enumerate() if t.name == "event-loop-lag"]

    asyncio.run(main())
    return registry


def test_a_busy_loop_shows_as_lag():
    # Lag is spread over 0-10 ms: a quarter of the samples would be under 2.5 ms.
    assert share_at_most(watch(busy=True), "0.0025") < 0.5


def test_an_idle_loop_shows_less_lag_than_a_busy_one():
    # Relative, not absolute: on a loaded machine the probe thread itself wakes late,
    # which reads as lag in both runs alike.
    idle, busy = watch(busy=False), watch(busy=True)
    assert share_at_most(idle, "0.0025") > share_at_most(busy, "0.0025") + 0.25


@pytest.mark.ffmpeg
def test_the_service_exposes_loop_lag_while_it_runs(tmp_path):
    registry = CollectorRegistry()
    app = make_app(registry=registry, settings=seeded_settings(tmp_path))
    with TestClient(app) as client:
        time.sleep(0.2)
        assert client.get("/healthz").status_code == 200
        text = client.get("/metrics").text
    assert f"{LAG}_bucket" in text
    assert registry.get_sample_value(f"{LAG}_count") >= 1


def test_interval_must_be_positive():
    lag = event_loop_lag_histogram(CollectorRegistry())

    async def main() -> None:
        async with watch_event_loop_lag(lag, interval=0):
            pass

    with pytest.raises(ValueError, match="interval must be > 0"):
        asyncio.run(main())

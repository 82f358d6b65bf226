"""Exercises of notebook 02_collecting_metrics (one ``register`` call each)."""

from __future__ import annotations

from .core import register
from .kinds import MetricDefinition


def _thumbnail_histogram(registry):
    """Build the reference thumbnail-latency histogram in ``registry``."""
    from prometheus_client import Histogram

    return Histogram("vrewcraft_thumbnail_duration_seconds", "Time to serve a thumbnail.",
                     buckets=[0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1], registry=registry)


register(MetricDefinition(
    "02.thumbnail_histogram", type="histogram", name="vrewcraft_thumbnail_duration_seconds",
    buckets=[0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1], build=_thumbnail_histogram,
    nudge="Histogram(name, help, buckets=[…], registry=scratch); durations are in seconds."))

"""Exercises of notebook 02_collecting_metrics (one ``register`` call each)."""

from __future__ import annotations

from typing import Any

from course_lib.lesson import sample_value

from .core import register
from .kinds import MetricDefinition, Predicate, PromQL

# --- 02.thumbnail_histogram: define a catalog histogram with the seed's buckets ----------------


def _thumbnail_histogram(registry):
    """Build the reference thumbnail-latency histogram in ``registry``."""
    from prometheus_client import Histogram

    return Histogram(
        "vrewcraft_thumbnail_duration_seconds",
        "Time to serve a thumbnail.",
        buckets=[0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1],
        registry=registry,
    )


register(
    MetricDefinition(
        "02.thumbnail_histogram",
        type="histogram",
        name="vrewcraft_thumbnail_duration_seconds",
        buckets=[0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1],
        build=_thumbnail_histogram,
        nudge="Histogram(name, help, buckets=[…], registry=scratch); durations are in seconds.",
    )
)

# --- 02.requests_by_route: per-route request rate -----------------------------------------------

register(
    PromQL(
        "02.requests_by_route",
        "sum by (route) (rate(vrewcraft_http_requests_total[1m]))",
        require_labels=["route"],
        nudge="rate(…[1m]) of the request counter gives one series per method, route and status "
        "code; add them up keeping only the route label.",
    )
)

# --- 02.ffmpeg_job: instrument a job so the active gauge cannot leak ------------------------------


class _Boom(RuntimeError):
    """The failure the check injects into a job."""


def _check_ffmpeg_job(answer: Any, _stack: Any) -> bool | str:
    """Run ``answer(metrics, operation, work)`` with a job that works and one that raises."""
    from prometheus_client import CollectorRegistry

    from course_lib.service.metrics import VrewCraftMetrics

    if not callable(answer):
        return (
            "answer with a function: def run_job(metrics, operation, work): … that runs "
            "work() and returns its result."
        )
    m = VrewCraftMetrics(CollectorRegistry())
    reg = m.registry

    def value(name: str, **labels: str) -> float:
        return sample_value(reg, name, **labels)

    seen_active: list[float] = []

    def ok_work():
        seen_active.append(value("vrewcraft_ffmpeg_jobs_active"))
        return "done"

    def failing_work():
        seen_active.append(value("vrewcraft_ffmpeg_jobs_active"))
        raise _Boom("ffmpeg exited with status 1")

    result = answer(m, "trim", ok_work)
    if seen_active != [1.0]:
        return (
            "while work() runs, vrewcraft_ffmpeg_jobs_active should be 1 — increment it "
            "before calling work()"
            if seen_active
            else "your function never called work()."
        )
    if result != "done":
        return "return what work() returned, so the caller gets the job's result."
    if value("vrewcraft_ffmpeg_jobs_active") != 0:
        return "after a successful job the active gauge should be back to 0 — decrement it."
    if value("vrewcraft_ffmpeg_duration_seconds_count", operation="trim") != 1:
        return "observe the job's duration in metrics.ffmpeg_duration.labels(operation=operation)."
    if value("vrewcraft_ffmpeg_errors_total", operation="trim"):
        return "a job that succeeded must not count as an ffmpeg error."
    try:
        answer(m, "trim", failing_work)
    except _Boom:
        pass
    else:
        return (
            "the job's exception disappeared: count it, then let it propagate (raise) so "
            "the caller knows the job failed."
        )
    if value("vrewcraft_ffmpeg_jobs_active") != 0:
        return (
            "the job failed and vrewcraft_ffmpeg_jobs_active stayed at 1: the gauge leaked "
            "(the seed's bug). Decrement it in a finally: block."
        )
    if value("vrewcraft_ffmpeg_errors_total", operation="trim") != 1:
        return "a failed job should add 1 to metrics.ffmpeg_errors.labels(operation=operation)."
    if value("vrewcraft_ffmpeg_duration_seconds_count", operation="trim") != 2:
        return "observe the duration of failed jobs too (in the finally: block)."
    return True


def _reference_ffmpeg_job(metrics, operation, work):
    """Run ``work()`` as one instrumented ffmpeg job (the reference answer)."""
    import time

    metrics.ffmpeg_jobs_active.inc()
    start = time.perf_counter()
    try:
        return work()
    except BaseException:
        metrics.ffmpeg_errors.labels(operation=operation).inc()
        raise
    finally:
        metrics.ffmpeg_duration.labels(operation=operation).observe(time.perf_counter() - start)
        metrics.ffmpeg_jobs_active.dec()


register(
    Predicate(
        "02.ffmpeg_job",
        solution=_reference_ffmpeg_job,
        test=_check_ffmpeg_job,
        expects="a function run_job(metrics, operation, work)",
        nudge="inc() the active gauge, then try: return work() / except: count the error and "
        "raise / finally: observe the duration and dec() the gauge.",
    )
)

# --- 02.cache_hit_ratio: a ratio belongs in PromQL -----------------------------------------------

register(
    PromQL(
        "02.cache_hit_ratio",
        'sum(rate(vrewcraft_thumbnail_requests_total{cache_status="hit"}[5m]))'
        " / sum(rate(vrewcraft_thumbnail_requests_total[5m]))",
        rel_tol=1e-6,
        nudge="hits per second divided by all thumbnail requests per second, both over [5m] and "
        "summed, from vrewcraft_thumbnail_requests_total (not the gauge).",
    )
)

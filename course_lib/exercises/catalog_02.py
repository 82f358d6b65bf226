"""Exercises of notebook 02_collecting_metrics (one ``register`` call each)."""

from __future__ import annotations

from typing import Any

import promql_parser as pp

from course_lib.lesson import sample_value
from course_lib.promql_hints import functions_used, range_windows

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
        nudge="Histogram(name, help, buckets=[…], registry=mine); durations are in seconds.",
    )
)

# --- 02.requests_by_route: per-route request rate -----------------------------------------------


def _per_minute_rate_shape(query: str) -> str | None:
    """Ask for a rate over the last minute, as the task says."""
    if "irate" in functions_used(query):
        return (
            "irate(…) is the rate between the last two samples only, not over the last "
            "minute: use rate(…[1m])."
        )
    windows = range_windows(query)
    if windows and windows != {60.0}:
        got = ", ".join(f"{w:g}s" for w in sorted(windows))
        return f"the task asks for the last minute: use a [1m] window (yours: {got})."
    return None


# Numbers decide, so `sum without (method, status_code)` and `sum by (route, job)` pass; a
# kept label that splits a route in several series does not.
register(
    PromQL(
        "02.requests_by_route",
        "sum by (route) (rate(vrewcraft_http_requests_total[1m]))",
        require_labels=["route"],
        structure=_per_minute_rate_shape,
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
    wall_clock = _wall_clock_call(answer)
    if wall_clock:
        return (
            f"{wall_clock} reads the wall clock, which jumps when the system time is "
            "corrected (the seed's Date.now() bug): time durations with time.perf_counter() "
            "or time.monotonic()."
        )
    m = VrewCraftMetrics(CollectorRegistry())
    reg = m.registry
    shortcut_used = []

    def forbidden_shortcut(*args, **kwargs):
        shortcut_used.append(True)
        return VrewCraftMetrics.ffmpeg_job(m, *args, **kwargs)

    m.ffmpeg_job = forbidden_shortcut  # type: ignore[method-assign]  # to notice its use

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
    if shortcut_used:
        return (
            "your function calls metrics.ffmpeg_job, the service's own answer: write the "
            "inc()/try/finally yourself."
        )
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
    if not 0 <= value("vrewcraft_ffmpeg_duration_seconds_sum", operation="trim") < 5:
        return "the observed duration is not the job's run time: observe the seconds it took."
    if value("vrewcraft_ffmpeg_duration_seconds_count", operation="trim") != 1:
        return "observe the job's duration in metrics.ffmpeg_duration.labels(operation=operation)."
    if value("vrewcraft_ffmpeg_errors_total", operation="trim"):
        return "a job that succeeded must not count as an ffmpeg error."
    # Two jobs at once: while the inner one runs, two are active. set(1)/set(0) says 1, and
    # when the inner job ends it says 0 although the outer one is still running.
    during: list[float] = []

    def inner_work():
        during.append(value("vrewcraft_ffmpeg_jobs_active"))
        return "inner"

    def outer_work():
        answer(m, "thumbnail", inner_work)
        during.append(value("vrewcraft_ffmpeg_jobs_active"))
        return "outer"

    answer(m, "trim", outer_work)
    if during != [2.0, 1.0]:
        return (
            f"with two jobs running at once the active gauge read {during[0]:g} (expected 2), "
            f"and {during[-1]:g} once the inner job finished (expected 1): count jobs with "
            "inc() and dec(), not set(1)/set(0), so concurrent jobs add up."
        )
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
    if value("vrewcraft_ffmpeg_duration_seconds_count", operation="trim") != 3:
        return "observe the duration of failed jobs too (in the finally: block)."
    return True


_WALL_CLOCK = {("time", "time"), ("time", "time_ns"), ("datetime", "now"), ("datetime", "utcnow")}


def _wall_clock_call(func: Any) -> str | None:
    """Return the wall-clock call in ``func``'s source (e.g. "time.time()"), if any."""
    import ast
    import inspect
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return None  # no source to read (a builtin, a lambda in a REPL): judge by behaviour
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        fn = node.func
        if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name | ast.Attribute):
            owner = fn.value.id if isinstance(fn.value, ast.Name) else fn.value.attr
            if (owner, fn.attr) in _WALL_CLOCK:
                return f"{owner}.{fn.attr}()"
        if isinstance(fn, ast.Name) and fn.id in ("time", "time_ns"):
            return f"{fn.id}()"  # from time import time
    return None


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


def _top_ratio(node):
    """Return the top-level division of a query, looking through parentheses."""
    while isinstance(node, pp.ParenExpr):
        node = node.expr
    return node if isinstance(node, pp.BinaryExpr) and str(node.op) == "/" else None


def _is_aggregated(node) -> bool:
    """Tell whether every series in a side of a division went through an aggregation."""
    if isinstance(node, pp.AggregateExpr | pp.NumberLiteral):
        return True
    if isinstance(node, pp.VectorSelector | pp.MatrixSelector):
        return False
    if isinstance(node, pp.BinaryExpr):
        return _is_aggregated(node.lhs) and _is_aggregated(node.rhs)
    if isinstance(node, pp.ParenExpr | pp.UnaryExpr | pp.SubqueryExpr):
        return _is_aggregated(node.expr)
    if isinstance(node, pp.Call):
        return all(_is_aggregated(a) for a in node.args if isinstance(a, pp.Expr))
    return True


def _hit_ratio_shape(query: str) -> str | None:
    """Ask for a ratio of rates over 5 minutes from the counter, with matching sides."""
    if "vrewcraft_thumbnail_cache_hit_ratio" in query:
        return (
            "that is the in-process gauge this section takes apart: compute the ratio from "
            "vrewcraft_thumbnail_requests_total instead."
        )
    if "irate" in functions_used(query):
        return "irate(…) looks at the last two samples only: use rate(…[5m])."
    windows = range_windows(query)
    if windows and windows != {300.0}:
        got = ", ".join(f"{w:g}s" for w in sorted(windows))
        return f"the task asks for the last 5 minutes: use [5m] windows (yours: {got})."
    ratio = _top_ratio(pp.parse(query))
    if ratio is None or ratio.modifier is not None:
        return None
    if not (_is_aggregated(ratio.lhs) and _is_aggregated(ratio.rhs)):
        return (
            "dividing one vector by another pairs up series whose labels are exactly the same. "
            'Your hits side has cache_status="hit", so its only partner on the other side is the '
            "hit series itself: you get hits / hits = 1, and the misses never count. Sum each "
            "side first, sum(rate(…hit…[5m])) / sum(rate(…[5m])), so both are one series with "
            "the same (no) labels."
        )
    return None


register(
    PromQL(
        "02.cache_hit_ratio",
        'sum(rate(vrewcraft_thumbnail_requests_total{cache_status="hit"}[5m]))'
        " / sum(rate(vrewcraft_thumbnail_requests_total[5m]))",
        rel_tol=1e-6,
        structure=_hit_ratio_shape,
        nudge="hits per second divided by all thumbnail requests per second, both over [5m] and "
        "summed, from vrewcraft_thumbnail_requests_total (not the gauge).",
    )
)

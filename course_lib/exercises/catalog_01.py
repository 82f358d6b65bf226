"""Exercises of notebook 01_prometheus_basics (one ``register`` call each)."""

from __future__ import annotations

from typing import Any

from course_lib.promql_hints import functions_used, range_windows

from .core import register
from .kinds import Number, Predicate, PromQL

# --- 01.metric_types: tell the four types apart ------------------------------------------------

METRIC_TYPES = ("counter", "gauge", "histogram", "summary")

#: Four catalog metrics, their type, and why (the hint for a wrong answer).
_TYPE_OF = {
    "vrewcraft_http_requests_total": (
        "counter",
        "requests served only ever go up (until a restart), and the _total suffix "
        "is the counter convention",
    ),
    "vrewcraft_ffmpeg_jobs_active": (
        "gauge",
        "jobs start and finish, so the number running goes up and down",
    ),
    "vrewcraft_thumbnail_duration_seconds": (
        "histogram",
        "you want p99 latency across every instance; a histogram's buckets can be "
        "summed across instances, a summary's quantiles can't",
    ),
    "vrewcraft_memory_usage_bytes": (
        "gauge",
        "memory in use is a current level that rises and falls",
    ),
}


def _check_metric_types(answer: Any, _stack: Any) -> bool | str:
    """Accept a dict that gives each metric of _TYPE_OF its type."""
    if not isinstance(answer, dict):
        return (
            "answer with a dict {metric name: type}, e.g. "
            "{'vrewcraft_http_requests_total': 'counter', …}."
        )
    missing = [name for name in _TYPE_OF if name not in answer]
    if missing:
        return f"classify every metric; missing: {', '.join(missing)}."
    for name, (want, why) in _TYPE_OF.items():
        got = str(answer[name]).strip().lower()
        if got not in METRIC_TYPES:
            return f"{answer[name]!r} is not a metric type; pick one of {', '.join(METRIC_TYPES)}."
        if got != want:
            return f"{name} is not a {got}: {why}."
    return True


register(
    Predicate(
        "01.metric_types",
        solution={name: t for name, (t, _) in _TYPE_OF.items()},
        test=_check_metric_types,
        expects="a dict {metric name: 'counter' | 'gauge' | 'histogram' | 'summary'}",
        nudge="Ask of each metric: can it go down? Is it one number, or a distribution you want "
        "percentiles of?",
    )
)

# --- 01.target_count: read a number off the stack ----------------------------------------------

register(
    Number(
        "01.target_count",
        query="count(up)",
        rel_tol=0,
        nudge="Every target Prometheus scrapes has one row in lesson.targets(stack) and one up "
        "series.",
    )
)

# --- first PromQL --------------------------------------------------------------------------------

register(
    PromQL(
        "01.up_query",
        'up{job="prometheus"}',
        require_labels=["job"],
        nudge="The metric is called up; keep only the series whose job label is prometheus.",
    )
)


def _scrape_rate_shape(query: str) -> str | None:
    """Ask for what the task says: a per-second rate over the last minute."""
    used = functions_used(query)
    if "irate" in used:
        return (
            "irate(…) uses only the last two samples in the window, so it is the rate of the "
            "last scrape interval, not of the last minute: use rate(…[1m])."
        )
    if not used & {"rate", "increase"}:
        return "a per-second rate of a counter needs rate(…[1m])."
    windows = range_windows(query)
    if windows != {60.0}:
        got = ", ".join(f"{w:g}s" for w in sorted(windows)) or "none"
        return f"the task asks for the last minute: use a [1m] window (yours: {got})."
    return None


# Any form with the right number passes: with or without sum(), job and instance kept or
# not, increase(…[1m]) / 60. The shape check rejects what the numbers can't tell apart:
# irate() equals rate() on a counter that grows steadily, as this one does.
register(
    PromQL(
        "01.scrape_rate",
        'rate(prometheus_tsdb_head_samples_appended_total{type="float"}[1m])',
        structure=_scrape_rate_shape,
        nudge="prometheus_tsdb_head_samples_appended_total is a counter; a counter needs rate(…) "
        "over a window, here [1m] for the last minute.",
    )
)

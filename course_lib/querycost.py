"""How long a query takes, in Prometheus' own words (``stats=all``), not the client's clock.

>>> query_seconds(stack.prometheus_url, "up") < 1.0
True
>>> end = stack.history_window().end
>>> query_seconds(stack.prometheus_url, "rate(up[5m])", start=end - 3600, end=end, step=60) < 5
True
"""

from __future__ import annotations

import statistics

from course_lib import prom

__all__ = ["evaluate", "query_seconds", "series_count", "speedup"]


def evaluate(url: str, promql: str, **params) -> tuple[float, dict]:
    """Return (first value, stats) of a query, timings included; NaN when the result is empty.

    Extra ``params`` (start, end, step) make it a range query.
    """
    path = "query_range" if params else "query"
    data = prom.api(url, path, query=promql, stats="all", **params)
    result = data["result"]
    if not result:
        value = float("nan")
    elif "values" in result[0]:  # a range query: its last point
        value = float(result[0]["values"][-1][1])
    else:
        value = float(result[0]["value"][1])
    return value, data.get("stats", {})


def query_seconds(url: str, promql: str, runs: int = 5, **range_params) -> float:
    """Return the median evaluation time Prometheus reports (``stats=all``) for ``promql``.

    Give ``start``, ``end`` and ``step`` (Unix seconds, seconds) to time a range query,
    what a dashboard panel sends.
    """
    times = [
        evaluate(url, promql, **range_params)[1]["timings"]["evalTotalTime"] for _ in range(runs)
    ]
    return statistics.median(times)


def speedup(url: str, panels: dict[str, tuple[str, str]], runs: int = 5, **window):
    """Time each panel's raw query and its recorded twin over ``window``; return a DataFrame.

    ``panels`` maps a panel name to ``(raw query, recorded series)``; ``window`` gives
    ``start``, ``end`` and ``step`` of the range query a dashboard would send.

    >>> end = stack.history_window().end
    >>> raw = "sum by (job, route) (rate(vrewcraft_http_requests_total[5m]))"
    >>> panels = {"requests": (raw, "job_route:vrewcraft_http_requests:rate5m")}
    >>> window = {"start": end - 3600, "end": end, "step": 60}
    >>> list(speedup(stack.prometheus_url, panels, runs=1, **window).columns)
    ['raw_ms', 'recorded_ms', 'speedup']
    """
    import pandas as pd

    rows = []
    for name, (raw, recorded) in panels.items():
        raw_s = query_seconds(url, raw, runs, **window)
        recorded_s = query_seconds(url, recorded, runs, **window)
        rows.append(
            {
                "panel": name,
                "raw_ms": raw_s * 1e3,
                "recorded_ms": recorded_s * 1e3,
                "speedup": raw_s / recorded_s,
            }
        )
    return pd.DataFrame(rows).set_index("panel")


def series_count(url: str, selector: str, window: str = "5m") -> float:
    """Return how many series ``selector`` had at any time in the last ``window``."""
    value, _ = evaluate(url, f"count(last_over_time({selector}[{window}]))")
    return 0.0 if value != value else value

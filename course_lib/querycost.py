"""How long a query takes, in Prometheus' own words (``stats=all``), not the client's clock.

>>> query_seconds("http://127.0.0.1:9090", "up")                        # doctest: +SKIP
0.000113
>>> query_seconds(url, "rate(x_total[5m])", start=t0, end=t1, step=2)  # doctest: +SKIP
"""

from __future__ import annotations

import statistics

import requests

__all__ = ["evaluate", "query_seconds"]


def evaluate(url: str, promql: str, **params) -> tuple[float, dict]:
    """Return (first value, stats) of a query, timings included; NaN when the result is empty.

    Extra ``params`` (start, end, step) make it a range query.
    """
    path = "query_range" if params else "query"
    body = requests.get(
        f"{url}/api/v1/{path}", params={"query": promql, "stats": "all", **params}, timeout=60
    ).json()
    if body.get("status") != "success":
        raise RuntimeError(f"{url} rejected {promql!r}: {body.get('error')}")
    result = body["data"]["result"]
    if not result:
        value = float("nan")
    elif "values" in result[0]:  # a range query: its last point
        value = float(result[0]["values"][-1][1])
    else:
        value = float(result[0]["value"][1])
    return value, body["data"].get("stats", {})


def query_seconds(url: str, promql: str, runs: int = 5, **range_params) -> float:
    """Return the median evaluation time Prometheus reports (``stats=all``) for ``promql``.

    Give ``start``, ``end`` and ``step`` (Unix seconds, seconds) to time a range query,
    what a dashboard panel sends.
    """
    times = [
        evaluate(url, promql, **range_params)[1]["timings"]["evalTotalTime"] for _ in range(runs)
    ]
    return statistics.median(times)

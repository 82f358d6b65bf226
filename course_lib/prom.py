"""PromQL to pandas: run a query against a real Prometheus and get a tidy DataFrame.

>>> df = query("http://127.0.0.1:9090", 'up')                          # doctest: +SKIP
>>> df[["job", "instance", "value"]]                                   # doctest: +SKIP
             job        instance  value
0     prometheus  127.0.0.1:9090    1.0

Every row is one sample: one column per label, ``timestamp`` (UTC) and ``value``.
Range queries return the same long format with one row per series per step.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import requests
from prometheus_api_client import PrometheusApiClientException

TimeLike = datetime | float | int | str


class PromQLError(RuntimeError):
    """Prometheus rejected a query; the message is Prometheus' own, plus the query."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail or message  # Prometheus' words alone, e.g. "bad_data: parse error…"


def client(url: str):
    """Return a prometheus-api-client connection to ``url``."""
    from prometheus_api_client import PrometheusConnect

    return PrometheusConnect(url=url, disable_ssl=True, timeout=30)


def to_datetime(value: TimeLike) -> datetime:
    """Turn a datetime, Unix seconds or RFC 3339 string into an aware UTC datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


class PrometheusUnreachable(PromQLError):
    """Nothing answered like Prometheus at the URL (not started, wrong port, crashed)."""


def query_raw(url: str, promql: str, time: TimeLike | None = None) -> tuple[str, Any]:
    """Evaluate an instant query; return (resultType, result) exactly as the HTTP API sends them.

    >>> query_raw("http://127.0.0.1:9090", "1 + 1")                  # doctest: +SKIP
    ('scalar', [1795000000.0, '2'])
    """
    params = {"query": promql}
    if time is not None:
        params["time"] = to_datetime(time).timestamp()
    try:
        resp = requests.get(f"{url}/api/v1/query", params=params, timeout=30)
        body = resp.json()
    except requests.RequestException as exc:
        raise PrometheusUnreachable(
            f"Prometheus at {url} is not reachable ({type(exc).__name__}): start the stack "
            "(`make lab`, or run the notebook's stack check cell) and try again."
        ) from None
    except ValueError:
        raise PrometheusUnreachable(
            f"{url} did not answer like Prometheus (HTTP {resp.status_code})."
        ) from None
    if body.get("status") != "success":
        detail = f"{body.get('errorType', 'error')}: {body.get('error')}"
        raise PromQLError(f"Prometheus at {url} rejected the query {promql!r}: {detail}", detail)
    return body["data"]["resultType"], body["data"]["result"]


def query(url: str, promql: str, time: TimeLike | None = None) -> pd.DataFrame:
    """Evaluate an instant query and return one row per series.

    >>> query("http://127.0.0.1:9090", "vector(1)")["value"].tolist()   # doctest: +SKIP
    [1.0]
    """
    result_type, result = query_raw(url, promql, time)
    if result_type in ("scalar", "string"):
        result = [{"metric": {}, "value": result}]
    rows = [
        {**series["metric"], "timestamp": series["value"][0], "value": series["value"][1]}
        for series in result
    ]
    return _tidy(rows)


def query_range(
    url: str, promql: str, start: TimeLike, end: TimeLike, step: str | float = "15s"
) -> pd.DataFrame:
    """Evaluate a range query and return one row per series per step.

    >>> query_range(url, "up", start=now - 600, end=now, step="30s")  # doctest: +SKIP
    """
    step_text = f"{step}s" if isinstance(step, int | float) else step
    try:
        result = client(url).custom_query_range(
            promql, start_time=to_datetime(start), end_time=to_datetime(end), step=step_text
        )
    except PrometheusApiClientException as exc:
        raise PromQLError(f"Prometheus at {url} rejected the query {promql!r}: {exc}") from None
    rows = [
        {**series["metric"], "timestamp": ts, "value": value}
        for series in result
        for ts, value in series["values"]
    ]
    return _tidy(rows)


def last(window: timedelta | float, end: TimeLike | None = None) -> tuple[datetime, datetime]:
    """Return (start, end) covering the last ``window`` (seconds or timedelta) before ``end``."""
    end_dt = to_datetime(end) if end is not None else datetime.now(tz=UTC)
    span = window if isinstance(window, timedelta) else timedelta(seconds=window)
    return end_dt - span, end_dt


def _tidy(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(
            {"timestamp": pd.Series(dtype="datetime64[ns, UTC]"), "value": pd.Series(dtype=float)}
        )
    df["timestamp"] = pd.to_datetime(df["timestamp"].astype(float), unit="s", utc=True)
    df["value"] = df["value"].astype(float)
    labels = sorted(c for c in df.columns if c not in ("timestamp", "value"))
    return (
        df[[*labels, "timestamp", "value"]]
        .sort_values([*labels, "timestamp"])
        .reset_index(drop=True)
    )

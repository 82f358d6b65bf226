"""Prometheus' HTTP API from Python: every request to Prometheus goes through this module.

Queries come back as tidy DataFrames: one row per sample, one column per label,
``timestamp`` (UTC) and ``value``; range queries use the same long format with
one row per series per step.

>>> df = query(stack.prometheus_url, 'up{job="prometheus"}')
>>> df[["job", "value"]].to_dict("records")
[{'job': 'prometheus', 'value': 1.0}]

The same errors everywhere: ``PromQLError`` when Prometheus rejects a request
(its own words in ``.detail``), ``PrometheusUnreachable`` when nothing answers
like Prometheus at the URL.

>>> query(stack.prometheus_url, "sum(")                 # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
course_lib.prom.PromQLError: Prometheus at ... rejected the query 'sum(': bad_data: ...

All requests share one path: prometheus-api-client's ``PrometheusConnect`` on a
``requests`` session whose response hook turns Prometheus' error answers into
``PromQLError``; endpoints the client has no method for (status pages, instant
queries with their result type) use the same session through ``api()``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import requests
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from course_lib.supervisor import NotReadyError, poll

__all__ = [
    "Connection",
    "PromQLError",
    "PrometheusUnreachable",
    "api",
    "client",
    "duration_seconds",
    "last",
    "query",
    "query_range",
    "query_raw",
    "scrape_interval",
    "series",
    "status",
    "targets",
    "to_datetime",
    "wait_for",
]

TimeLike = datetime | float | int | str

#: Seconds one request may take before it counts as unanswered.
TIMEOUT = 30.0


class PromQLError(RuntimeError):
    """Prometheus rejected a request; the message is Prometheus' own, plus the query."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail or message  # Prometheus' words alone, e.g. "bad_data: parse error…"


class PrometheusUnreachable(PromQLError):
    """Nothing answered like Prometheus at the URL (not started, wrong port, crashed)."""


class _Rejected(Exception):
    """Raised by the response hook; ``_errors`` adds the URL and the query."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class _NotPrometheus(Exception):
    """An answer that is not Prometheus' JSON (another program on the port, a proxy page)."""


def _check_response(resp: requests.Response, *args: Any, **kwargs: Any) -> None:
    """Raise unless 200: ``_Rejected`` with Prometheus' error, else ``_NotPrometheus``."""
    if resp.status_code == 200:
        return
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("status") != "error":
        path = resp.request.path_url.split("?")[0]
        raise _NotPrometheus(f"HTTP {resp.status_code} for {path}")
    raise _Rejected(f"{body.get('errorType', 'error')}: {body.get('error')}")


class Connection(PrometheusConnect):
    """prometheus-api-client's connection with the course's error handling on every request.

    No retries: an unreachable Prometheus fails at once, and waits poll on purpose.
    """

    def __init__(self, url: str, timeout: float = TIMEOUT):
        self.session = requests.Session()
        self.session.hooks["response"].append(_check_response)
        super().__init__(
            url=url.rstrip("/"),
            session=self.session,
            timeout=timeout,
            retry=Retry(total=0, raise_on_status=False),
        )

    def api(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``/api/v1/<path>`` and return the ``data`` field of Prometheus' answer."""
        resp = self.session.get(
            f"{self.url}/api/v1/{path.lstrip('/')}", params=params, timeout=self._timeout
        )
        return resp.json()["data"]


def client(url: str, timeout: float = TIMEOUT) -> Connection:
    """Return a connection to the Prometheus at ``url`` (wrap its calls in the module's errors).

    >>> client(stack.prometheus_url).get_label_values("job")  # doctest: +ELLIPSIS
    [...'prometheus'...]
    """
    return Connection(url, timeout)


@contextlib.contextmanager
def _errors(url: str, what: str) -> Iterator[None]:
    """Turn whatever a request to ``url`` raised into PromQLError or PrometheusUnreachable."""
    try:
        yield
    except _Rejected as exc:
        message = f"Prometheus at {url} rejected {what}: {exc.detail}"
        raise PromQLError(message, exc.detail) from None
    except (_NotPrometheus, requests.exceptions.JSONDecodeError, KeyError) as exc:
        raise PrometheusUnreachable(
            f"{url} did not answer like Prometheus ({exc or type(exc).__name__}): "
            "is it Prometheus' URL, and the right API path?"
        ) from None
    except requests.RequestException as exc:
        raise PrometheusUnreachable(
            f"Prometheus at {url} is not reachable ({type(exc).__name__}): start the stack "
            "(`make lab`, or run the notebook's stack check cell) and try again."
        ) from None


def api(url: str, path: str, **params: Any) -> Any:
    """GET ``/api/v1/<path>`` of the Prometheus at ``url``; return the ``data`` field.

    >>> api(stack.prometheus_url, "status/flags")["storage.tsdb.retention.time"]
    '30d'
    """
    with _errors(url, f"the request {path!r}"), client(url) as conn:
        return conn.api(path, params or None)


def status(url: str, page: str) -> Any:
    """Return one status page: ``config``, ``flags``, ``runtimeinfo``, ``buildinfo``, ``tsdb``.

    >>> "storageRetention" in status(stack.prometheus_url, "runtimeinfo")
    True
    """
    return api(url, f"status/{page}")


def targets(url: str, state: str = "active") -> list[dict[str, Any]]:
    """Return the scrape targets in ``state`` (``active`` or ``dropped``) as the API lists them.

    >>> sorted({t["labels"]["job"] for t in targets(stack.prometheus_url)})[:1]
    ['alertmanager']
    """
    with _errors(url, "the targets request"), client(url) as conn:
        found = conn.get_targets(state=state)
    return found["droppedTargets" if state == "dropped" else "activeTargets"]


def series(url: str, match: str, start: TimeLike, end: TimeLike | None = None) -> list[dict]:
    """Return the label sets of the series matching ``match`` with samples in [start, end].

    >>> {s["job"] for s in series(stack.prometheus_url, 'up{job="prometheus"}', last(60)[0])}
    {'prometheus'}
    """
    end_dt = to_datetime(end) if end is not None else datetime.now(tz=UTC)
    with _errors(url, f"the series request {match!r}"), client(url) as conn:
        return conn.get_series(to_datetime(start), end_dt, params={"match[]": match})


def scrape_interval(url: str) -> float:
    """Return the global scrape interval, in seconds, of the configuration Prometheus loaded.

    >>> scrape_interval(stack.prometheus_url)
    2.0
    """
    import yaml

    config = yaml.safe_load(status(url, "config")["yaml"])
    return duration_seconds(config["global"]["scrape_interval"])


def duration_seconds(text: str) -> float:
    """Return a Prometheus duration such as "1m30s" in seconds.

    >>> duration_seconds("1m30s"), duration_seconds("500ms")
    (90.0, 0.5)
    """
    import promql_parser

    # promql-parser 0.11's parse_duration reads "500ms" as 500 µs; in a range selector
    # the same duration comes out right.
    node = promql_parser.parse(f"x[{text}]")
    if not isinstance(node, promql_parser.MatrixSelector):
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return node.range.total_seconds()


def to_datetime(value: TimeLike) -> datetime:
    """Turn a datetime, Unix seconds or RFC 3339 string into an aware UTC datetime.

    >>> to_datetime(0), to_datetime("2026-01-02T03:04:05Z").isoformat()
    (datetime.datetime(1970, 1, 1, 0, 0, tzinfo=datetime.timezone.utc), '2026-01-02T03:04:05+00:00')
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def query_raw(url: str, promql: str, time: TimeLike | None = None) -> tuple[str, Any]:
    """Evaluate an instant query; return (resultType, result) exactly as the HTTP API sends them.

    >>> query_raw(stack.prometheus_url, "1 + 1", time=1e9)
    ('scalar', [1000000000, '2'])
    """
    params: dict[str, Any] = {"query": promql}
    if time is not None:
        params["time"] = to_datetime(time).timestamp()
    with _errors(url, f"the query {promql!r}"), client(url) as conn:
        data = conn.api("query", params)
    return data["resultType"], data["result"]


def query(url: str, promql: str, time: TimeLike | None = None) -> pd.DataFrame:
    """Evaluate an instant query and return one row per series.

    >>> query(stack.prometheus_url, "vector(1)")["value"].tolist()
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

    >>> start, end = last(60)
    >>> len(query_range(stack.prometheus_url, "vector(1)", start, end, step="30s"))
    3
    """
    step_text = f"{step}s" if isinstance(step, int | float) else step
    with _errors(url, f"the query {promql!r}"), client(url) as conn:
        result = conn.custom_query_range(
            promql, start_time=to_datetime(start), end_time=to_datetime(end), step=step_text
        )
    rows = [
        {**series["metric"], "timestamp": ts, "value": value}
        for series in result
        for ts, value in series["values"]
    ]
    return _tidy(rows)


def wait_for(
    url: str,
    promql: str,
    predicate: Callable[[pd.DataFrame], bool] = lambda df: not df.empty,
    timeout: float = 30.0,
    interval: float = 0.5,
    time: TimeLike | None = None,
) -> pd.DataFrame:
    """Poll ``promql`` (evaluated at ``time``, default now) until ``predicate(df)`` holds.

    Return that DataFrame; a rejected query fails at once.

    >>> wait_for(stack.prometheus_url, 'up{job="prometheus"} == 1')["value"].tolist()
    [1.0]
    """
    seen = pd.DataFrame()

    def holds() -> bool:
        nonlocal seen
        seen = query(url, promql, time)
        return bool(predicate(seen))

    if poll(holds, timeout=timeout, interval=interval):
        return seen
    raise NotReadyError(
        f"{promql!r} did not reach the expected state within {timeout:.0f}s; "
        f"last result:\n{seen.to_string()}"
    )


def last(window: timedelta | float, end: TimeLike | None = None) -> tuple[datetime, datetime]:
    """Return (start, end) covering the last ``window`` (seconds or timedelta) before ``end``.

    >>> start, end = last(600, end=0)
    >>> (end - start).total_seconds()
    600.0
    """
    end_dt = to_datetime(end) if end is not None else datetime.now(tz=UTC)
    span = window if isinstance(window, timedelta) else timedelta(seconds=window)
    return end_dt - span, end_dt


def _tidy(rows: list[dict]) -> pd.DataFrame:
    """Return one row per sample: label columns (le in numeric order), timestamp, value."""
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
        .sort_values([*labels, "timestamp"], key=_numeric_bounds)
        .reset_index(drop=True)
    )


#: Labels whose values are numbers, so "+Inf" sorts last and "0.5" before "10".
NUMERIC_LABELS = ("le", "quantile")


def _numeric_bounds(column: pd.Series) -> pd.Series:
    """Sort key: bucket bounds and quantiles by their number, other labels as text."""
    if column.name in NUMERIC_LABELS:
        return pd.to_numeric(column, errors="coerce")
    return column

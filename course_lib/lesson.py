"""Small helpers the lesson notebooks share, so notebook cells stay short.

* ``api`` / ``targets``: read Prometheus' HTTP API (status, targets) as data.
* ``push`` / ``delete_push``: push a registry to the Pushgateway (or delete a group) and
  wait until Prometheus has *scraped* the change, instead of sleeping.
* ``samples``: the samples of a registry or of exposition text, as a DataFrame.
* ``sample_value``: one sample's value from a registry (0 while the series doesn't exist).
* ``describe_metric``: what a metric object declares (name, type, labels, buckets).
* ``show_source``: display course_lib's own code of a class or function.
* ``side_by_side``: files next to each other (the seed's configuration and the course's).
* ``raw_samples``: the raw samples of a range selector (``x[1m]``) at one instant.
* ``make_clip`` / ``wait_for_job``: a small real video to upload; poll a trim job to its end.
* ``line_plot``: a plotly line chart of a ``query_range`` DataFrame, refusing empty data.
* ``progress``: which exercises you have done, per notebook (``python -m course_lib progress``).
* ``explain``: a query's parse tree with every sub-expression evaluated on the stack.

>>> from prometheus_client import CollectorRegistry, Counter
>>> reg = CollectorRegistry()
>>> Counter("demo_jobs", "Jobs done.", registry=reg).inc(3)
>>> samples(reg).query("name == 'demo_jobs_total'")["value"].tolist()
[3.0]
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import requests

from course_lib import prom
from course_lib.supervisor import poll

__all__ = [
    "CATALOG",
    "MetricInfo",
    "api",
    "delete_push",
    "describe_metric",
    "explain",
    "fetch_text",
    "line_plot",
    "make_clip",
    "progress",
    "push",
    "raw_samples",
    "sample_value",
    "samples",
    "series_names",
    "show_source",
    "seed_file",
    "side_by_side",
    "targets",
    "wait_for_job",
    "wait_for_scrape",
]

TIMEOUT = 15.0

#: The service's metric catalog, the seed tutorial's plus fixes: name -> (type, label names,
#: histogram buckets). Notebook 02 checks VrewCraftMetrics against it.
CATALOG: dict[str, tuple[str, tuple[str, ...], tuple[float, ...] | None]] = {
    "vrewcraft_http_requests_total": ("counter", ("method", "route", "status_code"), None),
    "vrewcraft_video_uploads_total": ("counter", ("status",), None),
    "vrewcraft_video_edits_total": ("counter", ("edit_type", "status"), None),
    "vrewcraft_thumbnail_requests_total": ("counter", ("cache_status",), None),
    "vrewcraft_ffmpeg_errors_total": ("counter", ("operation",), None),
    "vrewcraft_http_request_duration_seconds": (
        "histogram",
        ("method", "route", "status_code"),
        (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
    ),
    "vrewcraft_thumbnail_duration_seconds": ("histogram", (), (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1)),
    "vrewcraft_ffmpeg_duration_seconds": ("histogram", ("operation",), (0.5, 1, 2, 5, 10, 30, 60)),
    "vrewcraft_upload_duration_seconds": ("histogram", (), (0.5, 1, 2, 5, 10, 30)),
    "vrewcraft_websocket_connections": ("gauge", (), None),
    "vrewcraft_ffmpeg_jobs_active": ("gauge", (), None),
    "vrewcraft_thumbnail_cache_hit_ratio": ("gauge", (), None),
    "vrewcraft_memory_usage_bytes": ("gauge", ("type",), None),
    "vrewcraft_db_pool_connections": ("gauge", ("state",), None),
}


def api(stack: Any, path: str, **params: Any) -> Any:
    """GET ``/api/v1/<path>`` of the stack's Prometheus; return the ``data`` field.

    >>> api(stack, "status/flags")["storage.tsdb.retention.time"]
    '30d'
    """
    return prom.api(stack.prometheus_url, path, **params)


def targets(stack: Any) -> pd.DataFrame:
    """Return Prometheus' active scrape targets: job, instance, health, interval, last error."""
    rows = [
        {
            "job": t["labels"].get("job"),
            "instance": t["labels"].get("instance"),
            "health": t["health"],
            "scrape_url": t["scrapeUrl"],
            "scrape_interval": t.get("scrapeInterval"),
            "last_scrape_seconds": t.get("lastScrapeDuration"),
            "last_error": t.get("lastError", ""),
        }
        for t in prom.targets(stack.prometheus_url)
    ]
    return pd.DataFrame(rows).sort_values("job").reset_index(drop=True)


def series_names(stack: Any, match: str, since: float) -> set[str]:
    """Return the metric names of series matching ``match`` that have samples since ``since``.

    Unlike an instant query, this ignores series that stopped before ``since`` (for
    example those of a process that has since restarted).
    """
    return {series["__name__"] for series in prom.series(stack.prometheus_url, match, since)}


def fetch_text(url: str) -> str:
    """Return the body of ``url`` as text (e.g. a component's ``/metrics``)."""
    resp = requests.get(url, timeout=TIMEOUT)
    resp.raise_for_status()
    return resp.text


def wait_for_scrape(stack: Any, job: str, timeout: float = 30.0) -> float:
    """Wait until Prometheus has scraped ``job`` after this call started; return that time.

    Everything the target did before the call is then in Prometheus: no sleeping, no guessing.
    """
    started = time.time()
    stack.wait_for(
        f'timestamp(up{{job="{job}"}})',
        lambda df: not df.empty and df["value"].min() >= started,
        timeout=timeout,
        interval=0.2,
    )
    return started


def _selector(job: str, grouping_key: Mapping[str, str] | None) -> str:
    """Return the selector of one Pushgateway group (no instance in the key: instance="")."""
    labels = {"job": job, "instance": "", **(grouping_key or {})}
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def push(
    stack: Any,
    registry: Any,
    job: str,
    grouping_key: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> pd.DataFrame:
    """Push ``registry`` to the Pushgateway as group ``job`` and wait until Prometheus scraped it.

    The Pushgateway stamps every group with ``push_time_seconds``; the push has
    reached Prometheus once the value Prometheus holds is at least the push time.
    Returns that ``push_time_seconds`` row.
    """
    from prometheus_client import push_to_gateway

    started = time.time()
    push_to_gateway(
        stack.pushgateway_url,
        job=job,
        registry=registry,
        grouping_key=dict(grouping_key or {}),
        timeout=TIMEOUT,
    )
    return stack.wait_for(
        f"push_time_seconds{_selector(job, grouping_key)}",
        lambda df: not df.empty and df["value"].max() >= started,
        timeout=timeout,
        interval=0.2,
    )


def delete_push(
    stack: Any, job: str, grouping_key: Mapping[str, str] | None = None, timeout: float = 30.0
) -> None:
    """Delete a Pushgateway group and wait until Prometheus has scraped the Pushgateway without it.

    From then on the group's series get no new samples (Prometheus marks them stale).
    """
    from prometheus_client import delete_from_gateway

    delete_from_gateway(
        stack.pushgateway_url, job=job, grouping_key=dict(grouping_key or {}), timeout=TIMEOUT
    )
    wait_for_scrape(stack, "pushgateway", timeout=timeout)


def sample_value(registry: Any, name: str, **labels: str) -> float:
    """Return one sample's value from ``registry``; 0 when the series doesn't exist yet.

    >>> from prometheus_client import CollectorRegistry, Counter
    >>> reg = CollectorRegistry()
    >>> Counter("demo_jobs", "Jobs done.", ["kind"], registry=reg).labels(kind="trim").inc(2)
    >>> sample_value(reg, "demo_jobs_total", kind="trim"), sample_value(reg, "demo_jobs_total")
    (2.0, 0.0)
    """
    return registry.get_sample_value(name, labels) or 0.0


@dataclass(frozen=True)
class MetricInfo:
    """What a prometheus_client metric object declares, as ``describe_metric`` reads it."""

    name: str  #: the family name as exposed: a counter's ends in ``_total``
    type: str  #: counter, gauge, histogram, summary, …
    help: str
    labels: tuple[str, ...]  #: label names
    buckets: tuple[float, ...] | None  #: a histogram's upper bounds without +Inf, else None
    is_child: bool  #: True for one labelled child, the result of ``.labels(…)``


def describe_metric(metric: Any) -> MetricInfo:
    """Return the name, type, help, label names and buckets a metric object declares.

    Name, type and help come from the public ``describe()``. prometheus_client has no
    public API for the label names or buckets of a metric that has no samples yet, so
    this is the one place that reads its private attributes.

    >>> from prometheus_client import CollectorRegistry, Histogram
    >>> latency = Histogram("demo_seconds", "Latency.", ["route"], buckets=[0.1, 1],
    ...                     registry=CollectorRegistry())
    >>> describe_metric(latency)
    MetricInfo(name='demo_seconds', type='histogram', help='Latency.', labels=('route',), \
buckets=(0.1, 1.0), is_child=False)
    """
    family = metric.describe()[0]
    suffix = "_total" if family.type == "counter" else ""
    bounds = getattr(metric, "_upper_bounds", None)
    return MetricInfo(
        name=family.name + suffix,
        type=family.type,
        help=family.documentation,
        labels=tuple(getattr(metric, "_labelnames", ())),
        buckets=None if bounds is None else tuple(b for b in bounds if b != math.inf),
        is_child=bool(getattr(metric, "_labelvalues", ())),
    )


def seed_file(name: str) -> str:
    """Return a configuration file as the seed tutorial publishes it (``course_lib/seed/``).

    >>> "latest" in seed_file("docker-compose.yml")
    True
    """
    from pathlib import Path

    return (Path(__file__).parent / "seed" / name).read_text()


def side_by_side(texts: Mapping[str, str]) -> Any:
    """Return texts (title -> text) as one HTML row of code columns, for comparing files.

    >>> side_by_side({"seed": "a: 1", "course": "a: 2"}).data.count("<pre")
    2
    """
    import html

    from IPython.display import HTML

    cells = "".join(
        f'<td style="vertical-align:top;text-align:left"><b>{html.escape(title)}</b>'
        f'<pre style="font-size:0.85em">{html.escape(text)}</pre></td>'
        for title, text in texts.items()
    )
    return HTML(f"<table><tr>{cells}</tr></table>")


def show_source(obj: Any) -> None:
    """Display the source code of a class or function from course_lib in the notebook."""
    import inspect

    from IPython.display import Markdown, display

    display(Markdown(f"```python\n{inspect.getsource(obj)}```"))


def samples(source: Any) -> pd.DataFrame:
    """Return every sample of a registry (or of exposition text) as name, labels, value.

    Labels go in one ``labels`` column as a dict, so families with different label
    names fit in one table; ``type`` is the family's metric type.
    """
    if isinstance(source, str | bytes):
        from prometheus_client.parser import text_string_to_metric_families

        text = source.decode() if isinstance(source, bytes) else source
        families = list(text_string_to_metric_families(text))
    else:
        families = list(source.collect())
    rows = [
        {
            "family": f.name,
            "type": f.type,
            "name": s.name,
            "labels": dict(s.labels),
            "value": float(s.value),
        }
        for f in families
        for s in f.samples
    ]
    return pd.DataFrame(rows, columns=["family", "type", "name", "labels", "value"])


def explain(stack: Any, promql: str, time: Any = None):
    """Show ``promql`` as its parse tree, every node evaluated on the stack at ``time`` (None: now).

    >>> at = stack.history_window().at(20 * 3600)  # 20:00 in the day of history
    >>> query = "sum by (le) (rate(vrewcraft_thumbnail_duration_seconds_bucket[5m]))"
    >>> tree = explain(stack, query, at)
    >>> tree.root.labels, tree.root.series
    (('le',), 8)
    """
    from course_lib.explain import explain as explain_tree

    return explain_tree(stack, promql, time)


def raw_samples(stack: Any, selector: str, window: str, at: float) -> pd.DataFrame:
    """Return the raw samples of ``selector[window]`` evaluated at ``at`` (one row per sample).

    This is what ``rate()`` and ``increase()`` see: the scraped values inside the window.
    ``timestamp`` is a UTC time, as in ``stack.query``.
    """
    data = api(stack, "query", query=f"{selector}[{window}]", time=at)
    rows = [
        {**s["metric"], "timestamp": float(ts), "value": float(v)}
        for s in data["result"]
        for ts, v in s["values"]
    ]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(
            {"timestamp": pd.Series(dtype="datetime64[ns, UTC]"), "value": pd.Series(dtype=float)}
        )
    df["timestamp"] = pd.to_datetime(df["timestamp"], unit="s", utc=True)
    return df.sort_values("timestamp").reset_index(drop=True)


def line_plot(
    df: pd.DataFrame,
    title: str,
    color: str | None = None,
    y_title: str = "value",
    min_points: int = 2,
):
    """Return a plotly line chart of a ``query_range`` DataFrame (timestamp, value, labels).

    Refuses (AssertionError) data a chart would hide problems in: fewer than
    ``min_points`` rows, or NaN/infinite values.
    """
    import plotly.express as px

    assert len(df) >= min_points, f"{title}: only {len(df)} points to plot"
    assert df["value"].map(math.isfinite).all(), f"{title}: NaN or infinite values"
    if color is not None:
        assert color in df.columns, f"{title}: no label {color!r} in {list(df.columns)}"
    fig = px.line(df, x="timestamp", y="value", color=color, markers=True, title=title)
    fig.update_layout(
        yaxis_title=y_title,
        xaxis_title="time (UTC)",
        height=360,
        margin={"l": 40, "r": 20, "t": 50, "b": 40},
    )
    return fig


def make_clip(path: Any, seconds: float = 1.0) -> Any:
    """Write a small real MP4 (ffmpeg's test pattern) to ``path`` and return the path."""
    from course_lib.service.media import make_clip as render

    return render(path, seconds=seconds)


def wait_for_job(stack: Any, job_id: str, timeout: float = 60.0) -> dict:
    """Poll ``/api/jobs/{job_id}`` until the job succeeded or failed; return its JSON."""
    job: dict = {}

    def finished() -> bool:
        nonlocal job
        job = requests.get(f"{stack.service_url}/api/jobs/{job_id}", timeout=TIMEOUT).json()
        return job.get("status") in ("succeeded", "failed")

    if not poll(finished, timeout, interval=0.1):
        raise TimeoutError(f"job {job_id} still {job.get('status')} after {timeout:.0f}s")
    return job


def progress() -> pd.DataFrame:
    """Return your progress: per notebook, exercises done, tried and not started.

    >>> progress().loc["01", "status"]        # doctest: +SKIP
    'done'
    """
    from course_lib import progress as progress_mod

    return progress_mod.table()

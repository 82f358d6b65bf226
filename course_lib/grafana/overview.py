"""The VrewCraft overview dashboard, as code (grafana-foundation-sdk).

The seed's dashboard (part 3.3) is hand-written JSON; this module builds its
corrected twin with Grafana's own SDK, and ``write()`` saves it as the bare
dashboard object Grafana's file provisioning loads
(``monitoring/grafana/dashboards/vrewcraft.json``). A test rebuilds it and fails
when the committed file drifts from this code.

>>> board = dashboard_dict()
>>> board["uid"], board["panels"][0]["type"]
('vrewcraft-overview', 'stat')

Regenerate the committed file after changing a panel::

    python -m course_lib.grafana.overview
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import gauge, prometheus, stat, timeseries
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    ReduceDataOptions,
    VizLegendOptions,
)
from grafana_foundation_sdk.builders.dashboard import Dashboard, QueryVariable, ThresholdsConfig
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    GraphThresholdsStyleMode,
    LegendDisplayMode,
    LegendPlacement,
)
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    GridPos,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
)

from course_lib.config import repo_root

__all__ = [
    "DASHBOARD_PATH",
    "DASHBOARD_UID",
    "DATASOURCE",
    "DATASOURCE_UID",
    "build",
    "dashboard_dict",
    "panel_dict",
    "query",
    "to_json",
    "write",
]

#: Fixed uids: links to the dashboard and its data source survive a re-provisioning.
DASHBOARD_UID = "vrewcraft-overview"
DATASOURCE_UID = "vrewcraft-prometheus"
DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
DASHBOARD_PATH = repo_root() / "monitoring" / "grafana" / "dashboards" / "vrewcraft.json"

# Alert thresholds of the course (the seed's alert rules, with the aggregation fixes).
API_P99_SECONDS = 0.2  # HighAPILatency
THUMBNAIL_P99_SECONDS = 0.05  # HighThumbnailLatency
ERROR_RATIO = 0.05  # HighErrorRate
MEMORY_BYTES = 1024**3  # HighMemoryUsage
FFMPEG_ERRORS_PER_SECOND = 0.1  # FFmpegErrorSpike
CACHE_HIT_RATIO = 0.8  # LowCacheHitRatio

BACKEND = 'job="vrewcraft-backend"'
ROUTE = 'route=~"$route"'
REQUESTS = f"vrewcraft_http_requests_total{{{ROUTE}}}"
ERRORS = f'vrewcraft_http_requests_total{{status_code=~"5..", {ROUTE}}}'
LATENCY = f"vrewcraft_http_request_duration_seconds_bucket{{{ROUTE}}}"
THUMBS = "vrewcraft_thumbnail_duration_seconds_bucket"
MISSES = "vrewcraft_thumbnail_miss_duration_seconds_bucket"


def query(expr: str, legend: str = "", ref_id: str = "A", instant: bool = False):
    """Return a Prometheus query builder (one panel target).

    >>> query("up", "{{job}}").build().legend_format
    '{{job}}'
    """
    target = prometheus.Dataquery().expr(expr).ref_id(ref_id).datasource(DATASOURCE)
    if legend:
        target = target.legend_format(legend)
    return target.instant() if instant else target.range()


def thresholds(*steps: tuple[float, str], base: str = "green") -> ThresholdsConfig:
    """Return absolute thresholds: ``base`` below the first step, each color from its value on."""
    return (
        ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps(
            [Threshold(value=None, color=base)] + [Threshold(value=v, color=c) for v, c in steps]
        )
    )


def _graph(title: str, unit: str, description: str, pos: tuple[int, int, int, int]):
    """Return a time series panel with the house defaults (bottom legend, threshold lines)."""
    x, y, w, h = pos
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .grid_pos(GridPos(x=x, y=y, w=w, h=h))
        .legend(
            VizLegendOptions()
            .display_mode(LegendDisplayMode.LIST)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .thresholds_style(GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.DASHED))
    )


def _stat(title: str, unit: str, description: str, pos: tuple[int, int, int, int], calc: str):
    """Return a stat panel that reduces its series with ``calc`` (lastNotNull, mean, max...)."""
    x, y, w, h = pos
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .grid_pos(GridPos(x=x, y=y, w=w, h=h))
        .reduce_options(ReduceDataOptions().calcs([calc]).values(False))
        .color_mode(BigValueColorMode.VALUE)
        .graph_mode(BigValueGraphMode.AREA)
    )


def _p99(buckets: str, by: str = "le", q: float = 0.99) -> str:
    """Return the aggregated quantile query (seed erratum 1: sum by (le) first)."""
    return f"histogram_quantile({q}, sum by ({by}) (rate({buckets}[$__rate_interval])))"


def panels() -> list[Any]:
    """Return every panel builder of the overview, top to bottom, left to right."""
    top = [
        _stat(
            "Target up",
            "none",
            "1 while Prometheus can scrape the backend. 0 means every other panel is stale: "
            "the process is down or unreachable (alert TargetDown).",
            (0, 0, 4, 4),
            "lastNotNull",
        )
        .with_target(query(f"up{{{BACKEND}}}", "{{instance}}"))
        .thresholds(thresholds((1, "green"), base="red")),
        _stat(
            "Request rate",
            "reqps",
            "Requests per second on the selected routes. A sudden drop to 0 with the target "
            "up means clients stopped reaching the service (DNS, load balancer).",
            (4, 0, 4, 4),
            "lastNotNull",
        )
        .with_target(query(f"sum(rate({REQUESTS}[$__rate_interval]))", "req/s"))
        .thresholds(thresholds()),
        _stat(
            "Error ratio (range)",
            "percentunit",
            "Share of requests answered 5xx over the whole time range. Above 5% the "
            "HighErrorRate alert fires.",
            (8, 0, 4, 4),
            "lastNotNull",
        )
        .with_target(
            query(
                # `or vector(0)`: no 5xx at all is a ratio of 0, not "No data".
                f"(sum(increase({ERRORS}[$__range])) or vector(0))"
                f" / sum(increase({REQUESTS}[$__range]))",
                "5xx ratio",
                instant=True,
            )
        )
        .thresholds(thresholds((ERROR_RATIO, "red"))),
        _stat(
            "API p99",
            "s",
            "99th percentile of request latency over all selected routes, now. Above 200 ms "
            "one request in a hundred is slow enough to hurt (HighAPILatency).",
            (12, 0, 4, 4),
            "lastNotNull",
        )
        .with_target(query(_p99(LATENCY), "p99"))
        .thresholds(thresholds((API_P99_SECONDS, "red"))),
        gauge.Panel()
        .title("Thumbnail cache hit ratio")
        .description(
            "Hits / all thumbnail lookups, from the counters (not the in-process gauge, which "
            "resets on restart). Below 80% most thumbnails are decoded again: slow and costly."
        )
        .datasource(DATASOURCE)
        .unit("percentunit")
        .min(0)
        .max(1)
        .grid_pos(GridPos(x=16, y=0, w=4, h=4))
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .with_target(
            query(
                'sum(rate(vrewcraft_thumbnail_requests_total{cache_status="hit"}'
                "[$__rate_interval])) / sum(rate(vrewcraft_thumbnail_requests_total"
                "[$__rate_interval]))",
                "hit ratio",
            )
        )
        .thresholds(thresholds((CACHE_HIT_RATIO, "green"), base="red")),
        _stat(
            "ffmpeg jobs active",
            "short",
            "ffmpeg jobs running now. Stuck high with no job finishing means jobs hang; "
            "a value that never returns to 0 when idle means a leaked gauge.",
            (20, 0, 4, 4),
            "lastNotNull",
        )
        .with_target(query("sum(vrewcraft_ffmpeg_jobs_active)", "active"))
        .thresholds(thresholds((4, "orange"))),
    ]
    graphs = [
        _graph(
            "API latency p50 / p95 / p99",
            "s",
            "Request latency percentiles of the selected routes (buckets summed before the "
            "quantile). p99 above the dashed 200 ms line for 5 minutes fires HighAPILatency.",
            (0, 4, 12, 8),
        )
        .with_target(query(_p99(LATENCY, q=0.99), "p99", "A"))
        .with_target(query(_p99(LATENCY, q=0.95), "p95", "B"))
        .with_target(query(_p99(LATENCY, q=0.5), "p50", "C"))
        .thresholds(thresholds((API_P99_SECONDS, "red"))),
        _graph(
            "Thumbnail p99: all, hits, misses",
            "s",
            "p99 of thumbnail lookups. 'all' is mostly cache hits and hides slow misses; "
            "'misses' is the decode path. Above 50 ms fires HighThumbnailLatency.",
            (12, 4, 12, 8),
        )
        .with_target(query(_p99(THUMBS), "all", "A"))
        .with_target(
            query(
                "histogram_quantile(0.99, sum by (le) (rate(vrewcraft_thumbnail_duration_seconds"
                "_bucket[$__rate_interval])) - sum by (le) (rate(vrewcraft_thumbnail_miss_"
                "duration_seconds_bucket[$__rate_interval])))",
                "hits",
                "B",
            )
        )
        .with_target(query(_p99(MISSES), "misses", "C"))
        .thresholds(thresholds((THUMBNAIL_P99_SECONDS, "red"))),
        _graph(
            "Request rate by route",
            "reqps",
            "Requests per second per route template. A route that drops to zero while the "
            "others go on is broken for clients.",
            (0, 12, 12, 8),
        )
        .with_target(query(f"sum by (route) (rate({REQUESTS}[$__rate_interval]))", "{{route}}"))
        .thresholds(thresholds()),
        _graph(
            "p99 latency by route",
            "s",
            "p99 per route template: tells which route makes the overall p99 high. "
            "Above 200 ms the route is slow for one request in a hundred.",
            (12, 12, 12, 8),
        )
        .with_target(query(_p99(LATENCY, by="le, route"), "{{route}}"))
        .thresholds(thresholds((API_P99_SECONDS, "red"))),
        _graph(
            "Error ratio by route",
            "percentunit",
            "Share of 5xx answers per route (0 where a route had no error). Above 5% for "
            "5 minutes on the whole service fires HighErrorRate.",
            (0, 20, 12, 8),
        )
        .with_target(
            query(
                f"(sum by (route) (rate({ERRORS}[$__rate_interval])) or sum by (route) "
                f"(rate({REQUESTS}[$__rate_interval])) * 0) / sum by (route) "
                f"(rate({REQUESTS}[$__rate_interval]))",
                "{{route}}",
            )
        )
        .thresholds(thresholds((ERROR_RATIO, "red"))),
        _graph(
            "ffmpeg errors by operation",
            "suffix: err/s",
            "Failed ffmpeg runs per second, by operation (probe, thumbnail, trim). Above "
            "0.1/s for 5 minutes fires FFmpegErrorSpike: broken binary, codec or disk.",
            (12, 20, 12, 8),
        )
        .with_target(
            # An operation that never failed has no error series yet: show it at 0.
            query(
                "sum by (operation) (rate(vrewcraft_ffmpeg_errors_total[$__rate_interval])) or "
                "sum by (operation) (rate(vrewcraft_ffmpeg_duration_seconds_count"
                "[$__rate_interval])) * 0",
                "{{operation}}",
            )
        )
        .thresholds(thresholds((FFMPEG_ERRORS_PER_SECOND, "red"))),
        _graph(
            "Uploads by outcome",
            "suffix: uploads/s",
            "Upload attempts per second by status. 'failed' is our fault (disk, database); "
            "'rejected' is a client sending a bad file. Any 'failed' needs a look.",
            (0, 28, 8, 8),
        )
        .with_target(
            query(
                "sum by (status) (rate(vrewcraft_video_uploads_total[$__rate_interval]))",
                "{{status}}",
            )
        )
        .thresholds(thresholds()),
        _graph(
            "Memory (RSS)",
            "bytes",
            "Resident memory of the backend process. A staircase that never comes down is a "
            "leak; above 1 GiB for 10 minutes fires HighMemoryUsage.",
            (8, 28, 8, 8),
        )
        .with_target(query(f"process_resident_memory_bytes{{{BACKEND}}}", "RSS {{instance}}"))
        .thresholds(thresholds((MEMORY_BYTES, "red"))),
        _graph(
            "CPU",
            "percentunit",
            "CPU time of the backend process per second (100% = one core busy). Flat at "
            "100% means the single worker is saturated and latency will follow.",
            (16, 28, 8, 8),
        )
        .with_target(
            query(
                f"rate(process_cpu_seconds_total{{{BACKEND}}}[$__rate_interval])",
                "CPU {{instance}}",
            )
        )
        .thresholds(thresholds((0.9, "orange"))),
    ]
    return [panel.id(number) for number, panel in enumerate(top + graphs, start=1)]


def build() -> Dashboard:
    """Return the overview dashboard builder (call ``.build()`` for the model)."""
    route = (
        QueryVariable("route")
        .label("Route")
        .description("Route templates to show; All matches every route.")
        .datasource(DATASOURCE)
        .query("label_values(vrewcraft_http_requests_total, route)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )
    board = (
        Dashboard("VrewCraft overview")
        .uid(DASHBOARD_UID)
        .description("Golden signals of the VrewCraft backend, with the course's alert lines.")
        .tags(["vrewcraft"])
        .timezone("utc")
        .refresh("10s")
        .time("now-1h", "now")
        .editable()
        .with_variable(route)
    )
    for panel in panels():
        board = board.with_panel(panel)
    return board


def to_json(builder: Any) -> dict[str, Any]:
    """Return a builder's model as plain JSON data (dicts, lists, numbers, strings)."""
    return json.loads(json.dumps(builder.build(), cls=JSONEncoder))


def panel_dict(builder: Any) -> dict[str, Any]:
    """Return one panel builder as its JSON data (what Grafana stores for the panel)."""
    return to_json(builder)


def dashboard_dict() -> dict[str, Any]:
    """Return the overview as the bare dashboard object (no ``{"dashboard": ...}`` wrapper)."""
    return to_json(build())


def dumps(board: dict[str, Any]) -> str:
    """Return the committed file's text for ``board`` (stable key order, trailing newline)."""
    return json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(path: Path = DASHBOARD_PATH) -> Path:
    """Write the overview dashboard JSON to ``path`` and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(dashboard_dict()), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write(Path(sys.argv[1]) if len(sys.argv) > 1 else DASHBOARD_PATH))

"""Draw a Grafana dashboard with plotly, from its own queries on a real Prometheus.

No Grafana needed: every panel's targets are expanded the way Grafana does
(``macros``), run on Prometheus over the chosen time range, and drawn where the
panel's ``gridPos`` puts it, honouring ``legendFormat``, units, thresholds and the
stat/gauge reductions.

>>> board = overview.dashboard_dict()                                   # doctest: +SKIP
>>> results = evaluate(board, stack.prometheus_url, *prom.last(15 * 60))  # doctest: +SKIP
>>> fig = figure(results)                                               # doctest: +SKIP
>>> write_html(fig, "vrewcraft.html")                                   # doctest: +SKIP

What it leaves out: a stat panel's sparkline, value mappings, overrides, and panel
types other than timeseries, stat and gauge (they are drawn as "not supported").
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from course_lib import prom

from .lint import panel_queries, walk_panels
from .macros import ALL, QueryContext, expand, format_duration
from .provisioning import scrape_interval as provisioned_scrape_interval

__all__ = [
    "PanelResult",
    "Series",
    "evaluate",
    "figure",
    "format_value",
    "reduce",
    "render",
    "write_html",
]

GRID_COLUMNS = 24
ROW_PX = 30  # Grafana's grid row height
DASHBOARD_PX = 1200  # the width the page is drawn at (a laptop screen)
# Grafana's named colours, so thresholds look like they do in Grafana.
COLORS = {
    "green": "#73BF69",
    "red": "#F2495C",
    "orange": "#FF9830",
    "yellow": "#FADE2A",
    "blue": "#5794F2",
    "purple": "#B877D9",
    "text": "#464c54",
}
PALETTE = ["#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0"]
SUPPORTED = ("timeseries", "stat", "gauge")


@dataclass
class Series:
    """One line of a panel: its display name, labels and samples (UTC timestamps, floats)."""

    name: str
    labels: dict[str, str]
    timestamps: pd.DatetimeIndex
    values: np.ndarray
    ref_id: str = "A"


@dataclass
class PanelResult:
    """A panel's expanded queries and the series they returned."""

    panel: dict[str, Any]
    queries: list[str] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    step: float = 0.0
    start: float = 0.0  # the time range the panel was evaluated over (Unix seconds)
    end: float = 0.0

    @property
    def title(self) -> str:
        """Return the panel's title."""
        return self.panel.get("title", "")

    @property
    def unit(self) -> str:
        """Return the panel's unit (fieldConfig.defaults.unit)."""
        return ((self.panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit") or ""

    @property
    def has_data(self) -> bool:
        """Tell whether some series has at least one non-NaN sample."""
        return any(np.isfinite(s.values).any() for s in self.series)


# --- querying --------------------------------------------------------------------------------


def legend_name(legend_format: str, labels: Mapping[str, str], expr: str) -> str:
    """Return a series' display name as Grafana builds it from ``legendFormat``.

    >>> legend_name("{{route}} p99", {"route": "/api/videos"}, "q")
    '/api/videos p99'
    >>> legend_name("", {"job": "x"}, "q"), legend_name("", {}, "sum(up)")
    ('{job="x"}', 'sum(up)')
    """
    if legend_format and legend_format != "__auto":
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), legend_format)
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    if not shown:
        return labels.get("__name__") or expr
    body = ", ".join(f'{k}="{v}"' for k, v in sorted(shown.items()))
    return f"{labels.get('__name__', '')}{{{body}}}"


def _to_series(df: pd.DataFrame, target: Mapping[str, Any], expr: str) -> list[Series]:
    if df.empty:
        return []
    label_cols = [c for c in df.columns if c not in ("timestamp", "value")]
    groups = df.groupby(label_cols, dropna=False, sort=True) if label_cols else [((), df)]
    out = []
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        labels = {k: v for k, v in zip(label_cols, key, strict=True) if isinstance(v, str)}
        out.append(
            Series(
                name=legend_name(target.get("legendFormat", ""), labels, expr),
                labels=labels,
                timestamps=pd.DatetimeIndex(group["timestamp"]),
                values=group["value"].to_numpy(dtype=float),
                ref_id=target.get("refId", "A"),
            )
        )
    return out


def _run_target(url: str, target: Mapping[str, Any], expr: str, ctx: QueryContext) -> list[Series]:
    if target.get("instant"):
        return _to_series(prom.query(url, expr, time=ctx.end), target, expr)
    start, end = ctx.aligned()
    df = prom.query_range(url, expr, start, end, step=format_duration(ctx.interval))
    series = _to_series(df, target, expr)
    # Like Grafana, a step with no sample is a gap (NaN), not a line drawn across it.
    grid = pd.date_range(
        pd.Timestamp(start, unit="s", tz="UTC"),
        pd.Timestamp(end, unit="s", tz="UTC"),
        freq=pd.Timedelta(seconds=ctx.interval),
    )
    for s in series:
        if len(s.timestamps) < len(grid):
            values = pd.Series(s.values, index=s.timestamps).reindex(grid)
            s.timestamps, s.values = grid, values.to_numpy(dtype=float)
    return series


def _default_variables(board: Mapping[str, Any]) -> dict[str, Any]:
    """Return each template variable's value as the dashboard opens: All where allowed."""
    values = {}
    for variable in (board.get("templating") or {}).get("list") or []:
        current = (variable.get("current") or {}).get("value")
        values[variable["name"]] = current or (ALL if variable.get("includeAll") else None)
    return values


def evaluate(
    board: Mapping[str, Any],
    url: str,
    start: prom.TimeLike,
    end: prom.TimeLike,
    variables: Mapping[str, str | Sequence[str]] | None = None,
    scrape_interval: float | None = None,
    dashboard_px: int = DASHBOARD_PX,
) -> list[PanelResult]:
    """Run every panel's queries on the Prometheus at ``url`` over [start, end].

    ``variables`` overrides template variables (default: each at its dashboard default,
    All for include-all ones); ``scrape_interval`` defaults to the provisioned data
    source's ``timeInterval``. Each panel gets Grafana's intervals for its own width.
    Raises ``prom.PromQLError`` naming the panel when Prometheus rejects a query.
    """
    t0, t1 = prom.to_datetime(start).timestamp(), prom.to_datetime(end).timestamp()
    values = {**_default_variables(board), **(variables or {})}
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise ValueError(f"template variables without a value: {missing}; pass variables=.")
    definitions = {v["name"]: v for v in (board.get("templating") or {}).get("list") or []}
    results, jobs = [], []
    for panel in walk_panels(board):
        if panel.get("type") == "row":
            continue
        uid = (panel.get("datasource") or {}).get("uid", "")
        scrape = scrape_interval or provisioned_scrape_interval(uid)
        pos = panel.get("gridPos") or {}
        if not isinstance(pos.get("w"), int) or not isinstance(pos.get("h"), int):
            raise ValueError(
                f"panel {panel.get('title', '?')!r} has no gridPos with a width and height: "
                "give it gridPos {x, y, w, h} (lint.lint() lists every such problem)."
            )
        width = max(1, round(pos["w"] / GRID_COLUMNS * dashboard_px))
        ctx = QueryContext(start=t0, end=t1, width_px=width, scrape_interval=scrape)
        result = PanelResult(panel=panel, step=ctx.interval, start=t0, end=t1)
        results.append(result)
        for target in panel.get("targets") or []:
            if target.get("expr") in panel_queries(panel):
                expr = expand(target["expr"], ctx, values, definitions)
                result.queries.append(expr)
                jobs.append((result, target, expr, ctx))
    # Prometheus answers queries in parallel; a dashboard's 20-odd queries need not queue.
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [(r, pool.submit(_run_target, url, t, e, c)) for r, t, e, c in jobs]
        for result, future in futures:
            try:
                result.series.extend(future.result())
            except prom.PromQLError as exc:
                raise prom.PromQLError(f"panel {result.title!r}: {exc}", exc.detail) from None
    return results


# --- values, units, thresholds ----------------------------------------------------------------

_REDUCERS = {
    "lastNotNull": lambda v: v[np.isfinite(v)][-1] if np.isfinite(v).any() else math.nan,
    "last": lambda v: v[-1] if len(v) else math.nan,
    "firstNotNull": lambda v: v[np.isfinite(v)][0] if np.isfinite(v).any() else math.nan,
    "first": lambda v: v[0] if len(v) else math.nan,
    "mean": lambda v: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan,
    "max": lambda v: float(np.nanmax(v)) if np.isfinite(v).any() else math.nan,
    "min": lambda v: float(np.nanmin(v)) if np.isfinite(v).any() else math.nan,
    "sum": lambda v: float(np.nansum(v)),
    "count": lambda v: float(len(v)),
}


def reduce(values: np.ndarray, calc: str) -> float:
    """Reduce a series to one number the way a stat/gauge panel's ``calcs`` says.

    >>> reduce(np.array([1.0, 3.0, np.nan]), "lastNotNull"), reduce(np.array([1.0, 3.0]), "mean")
    (3.0, 2.0)
    """
    try:
        return float(_REDUCERS[calc](np.asarray(values, dtype=float)))
    except KeyError:
        supported = sorted(_REDUCERS)
        raise ValueError(f"reduction {calc!r} is not supported; use one of {supported}.") from None


def _scale(unit: str, magnitude: float) -> tuple[float, str]:
    """Return (factor, suffix) to show values of ``unit`` around ``magnitude``."""
    if unit == "s":
        if magnitude < 1e-3:
            return 1e6, " µs"
        return (1e3, " ms") if magnitude < 1 else (1.0, " s")
    if unit == "bytes":
        for power, name in ((3, "GiB"), (2, "MiB"), (1, "KiB")):
            if magnitude >= 1024**power:
                return 1 / 1024**power, f" {name}"
        return 1.0, " B"
    if unit == "percentunit":
        return 100.0, "%"
    if unit == "percent":
        return 1.0, "%"
    if unit.startswith("suffix:"):
        return 1.0, " " + unit.removeprefix("suffix:").strip()
    return 1.0, {"reqps": " req/s", "ops": " ops/s"}.get(unit, "")


def format_value(unit: str, value: float) -> str:
    """Return a value the way a panel shows it: scaled, with its unit.

    >>> format_value("s", 0.187), format_value("percentunit", 0.042), format_value("bytes", 3e8)
    ('187 ms', '4.2%', '286 MiB')
    """
    if value is None or not math.isfinite(value):
        return "No data"
    factor, suffix = _scale(unit, abs(value))
    return f"{value * factor:.3g}{suffix}"


def threshold_color(panel: Mapping[str, Any], value: float) -> str:
    """Return the colour of the threshold step ``value`` falls in (base colour below the first)."""
    steps = (((panel.get("fieldConfig") or {}).get("defaults") or {}).get("thresholds") or {}).get(
        "steps"
    ) or [{"value": None, "color": "green"}]
    color = steps[0]["color"]
    for step in steps[1:]:
        if step.get("value") is not None and math.isfinite(value) and value >= step["value"]:
            color = step["color"]
    return COLORS.get(color, color)


def _threshold_steps(panel: Mapping[str, Any]) -> list[tuple[float, str]]:
    steps = (((panel.get("fieldConfig") or {}).get("defaults") or {}).get("thresholds") or {}).get(
        "steps"
    ) or []
    return [
        (s["value"], COLORS.get(s["color"], s["color"]))
        for s in steps
        if s.get("value") is not None
    ]


# --- drawing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Box:
    """A panel's place on the page, in paper coordinates (0..1, y up)."""

    x0: float
    x1: float
    y0: float
    y1: float


def _boxes(results: list[PanelResult]) -> tuple[list[_Box], int]:
    rows = max(r.panel["gridPos"]["y"] + r.panel["gridPos"]["h"] for r in results)
    height = rows * ROW_PX
    gap_x, gap_y = 0.004, 4 / height
    boxes = []
    for r in results:
        pos = r.panel["gridPos"]
        boxes.append(
            _Box(
                x0=pos["x"] / GRID_COLUMNS + gap_x,
                x1=(pos["x"] + pos["w"]) / GRID_COLUMNS - gap_x,
                y0=1 - (pos["y"] + pos["h"]) / rows + gap_y,
                y1=1 - pos["y"] / rows - gap_y,
            )
        )
    return boxes, height


def _calc(panel: Mapping[str, Any]) -> str:
    calcs = ((panel.get("options") or {}).get("reduceOptions") or {}).get("calcs") or []
    return calcs[0] if calcs else "lastNotNull"


@dataclass
class _Canvas:
    """The figure being drawn, as plain data: built in one go (plotly validates it once)."""

    data: list[dict[str, Any]] = field(default_factory=list)
    layout: dict[str, Any] = field(default_factory=dict)
    shapes: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)

    def text(self, x: float, y: float, text: str, **options: Any) -> None:
        """Add a text annotation at paper coordinates (x, y)."""
        self.annotations.append(
            dict(x=x, y=y, xref="paper", yref="paper", showarrow=False, text=text, **options)
        )


def _draw_timeseries(canvas: _Canvas, n: int, r: PanelResult, box: _Box, px: float) -> None:
    axis = "" if n == 1 else str(n)
    peak = max(
        (np.nanmax(np.abs(s.values)) for s in r.series if np.isfinite(s.values).any()), default=1.0
    )
    factor, suffix = _scale(r.unit, peak)
    per_line = 5 if box.x1 - box.x0 > 0.4 else 3
    legend_px, title_px = 22 + 13 * math.ceil(len(r.series) / per_line), 26
    plot_y0 = min(box.y0 + (legend_px + 18) / px, box.y1 - 0.02)
    canvas.layout[f"xaxis{axis}"] = dict(
        domain=[box.x0 + 0.02, box.x1 - 0.005],
        anchor=f"y{axis}",
        type="date",
        range=[pd.Timestamp(t, unit="s") for t in (r.start, r.end)],
        tickfont=dict(size=9),
        gridcolor="#eee",
    )
    canvas.layout[f"yaxis{axis}"] = dict(
        domain=[plot_y0, box.y1 - title_px / px],
        anchor=f"x{axis}",
        ticksuffix=suffix,
        tickfont=dict(size=9),
        rangemode="tozero",
        gridcolor="#eee",
    )
    for i, s in enumerate(r.series):
        canvas.data.append(
            dict(
                type="scatter",
                # Naive UTC datetime64: copied and serialised as one array, not object by object.
                x=s.timestamps.tz_localize(None).to_numpy(),
                y=s.values * factor,
                name=s.name,
                mode="lines",
                line=dict(width=1.5, color=PALETTE[i % len(PALETTE)]),
                xaxis=f"x{axis}",
                yaxis=f"y{axis}",
                showlegend=False,
                hovertemplate=f"%{{y:.3g}}{suffix}<extra>{s.name}</extra>",
            )
        )
    # The legend is one annotation per panel: plotly's own legends don't lay out per panel.
    entries = [
        f'<span style="color:{PALETTE[i % len(PALETTE)]}">━</span> {html.escape(s.name)}'
        for i, s in enumerate(r.series)
    ]
    lines = ["   ".join(entries[i : i + per_line]) for i in range(0, len(entries), per_line)]
    canvas.text(
        box.x0 + 0.006,
        box.y0 + 4 / px,
        "<br>".join(lines),
        xanchor="left",
        yanchor="bottom",
        align="left",
        font=dict(size=9),
    )
    for value, color in _threshold_steps(r.panel):
        if value <= peak * 1.5:  # a line far above the data would flatten it
            canvas.shapes.append(
                dict(
                    type="line",
                    xref=f"x{axis} domain",
                    yref=f"y{axis}",
                    x0=0,
                    x1=1,
                    y0=value * factor,
                    y1=value * factor,
                    line=dict(color=color, dash="dash", width=1),
                )
            )


def _draw_indicator(canvas: _Canvas, r: PanelResult, box: _Box, px: float) -> None:
    calc = _calc(r.panel)
    shown: list[Any] = list(r.series[:4]) or [None]
    width = (box.x1 - box.x0) / len(shown)
    for i, s in enumerate(shown):
        value = reduce(s.values, calc) if s is not None else math.nan
        factor, suffix = _scale(r.unit, abs(value) if math.isfinite(value) else 1.0)
        top = box.y1 - (34 if r.panel["type"] == "gauge" else 24) / px
        domain = dict(x=[box.x0 + i * width, box.x0 + (i + 1) * width], y=[box.y0 + 4 / px, top])
        color = threshold_color(r.panel, value)
        trace: dict[str, Any] = dict(
            type="indicator",
            mode="number",
            value=value * factor if math.isfinite(value) else None,
            domain=domain,
            number=dict(suffix=suffix, valueformat=".3~g", font=dict(color=color, size=26)),
            title=dict(text=s.name if s is not None and len(shown) > 1 else "", font=dict(size=9)),
        )
        if r.panel["type"] == "gauge":
            defaults = (r.panel.get("fieldConfig") or {}).get("defaults") or {}
            low, high = defaults.get("min", 0) * factor, defaults.get("max", 1) * factor
            steps = _threshold_steps(r.panel)
            edges = [low] + [v * factor for v, _ in steps] + [high]
            colors = [threshold_color(r.panel, -math.inf)] + [c for _, c in steps]
            trace.update(
                mode="gauge+number",
                gauge=dict(
                    axis=dict(range=[low, high], tickfont=dict(size=8)),
                    bar=dict(color=color, thickness=0.5),
                    steps=[
                        dict(range=[a, b], color=c)
                        for a, b, c in zip(edges, edges[1:], colors, strict=False)
                    ],
                ),
            )
        canvas.data.append(trace)


def figure(
    results: list[PanelResult], title: str = "", dashboard_px: int = DASHBOARD_PX
) -> go.Figure:
    """Draw evaluated panels in their grid layout; one plotly figure for the whole dashboard."""
    if not results:
        raise ValueError("no panels to draw: evaluate() a dashboard with panels first.")
    boxes, height = _boxes(results)
    canvas = _Canvas()
    graph_number = 0
    for r, box in zip(results, boxes, strict=True):
        canvas.shapes.append(
            dict(
                type="rect",
                xref="paper",
                yref="paper",
                x0=box.x0,
                x1=box.x1,
                y0=box.y0,
                y1=box.y1,
                line=dict(color="#d8d9da", width=1),
                fillcolor="rgba(0,0,0,0)",
                layer="below",
            )
        )
        canvas.text(
            box.x0 + 0.006,
            box.y1 - 4 / height,
            f"<b>{r.title}</b>",
            xanchor="left",
            yanchor="top",
            font=dict(size=11),
            hovertext=r.panel.get("description", ""),
        )
        if r.panel.get("type") == "timeseries":
            graph_number += 1
            _draw_timeseries(canvas, graph_number, r, box, height)
            if not r.has_data:
                _no_data(canvas, box)
        elif r.panel.get("type") in ("stat", "gauge"):
            _draw_indicator(canvas, r, box, height)
        else:
            _no_data(canvas, box, f"panel type {r.panel.get('type')!r} is not supported here")
    layout = dict(
        canvas.layout,
        shapes=canvas.shapes,
        annotations=canvas.annotations,
        title=dict(text=title, font=dict(size=14), x=0.005, y=1, yanchor="top", pad=dict(t=6)),
        width=dashboard_px,
        height=height + 40,
        margin=dict(l=8, r=8, t=40, b=8),
        plot_bgcolor="white",
        paper_bgcolor="white",
        hovermode="x unified",
    )
    return go.Figure(data=canvas.data, layout=layout)


def _no_data(canvas: _Canvas, box: _Box, text: str = "No data") -> None:
    canvas.text(
        (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2, text, font=dict(size=12, color="#999")
    )


def render(
    board: Mapping[str, Any],
    url: str,
    start: prom.TimeLike,
    end: prom.TimeLike,
    variables: Mapping[str, str | Sequence[str]] | None = None,
    scrape_interval: float | None = None,
) -> tuple[go.Figure, list[PanelResult]]:
    """Evaluate and draw ``board`` over [start, end]; return the figure and the panel results.

    ``variables`` and ``scrape_interval`` are passed to ``evaluate``.

    >>> fig, results = render(overview.dashboard_dict(), stack.prometheus_url,
    ...                       *prom.last(900))                              # doctest: +SKIP
    """
    results = evaluate(board, url, start, end, variables, scrape_interval)
    t0, t1 = prom.to_datetime(start), prom.to_datetime(end)
    span = f"{t0:%Y-%m-%d %H:%M} – {t1:%Y-%m-%d %H:%M} UTC"
    return figure(results, title=f"{board.get('title', 'dashboard')} · {span}"), results


def write_html(fig: go.Figure, path: str | Path) -> Path:
    """Write ``fig`` as a standalone HTML page (plotly.js bundled: works offline)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(
        path,
        include_plotlyjs=True,
        full_html=True,
        config={"displaylogo": False, "responsive": False},
    )
    return path

"""Exercises of notebook 04_grafana_dashboards (one ``register`` call each).

The panel exercises take a panel built with grafana-foundation-sdk (or its JSON as a
dict); the check lints it, evaluates its query on the live Prometheus next to the
reference panel over the same minutes, and draws it with the course's renderer.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .core import ExerciseFailed, ExerciseSetupError, prometheus_url, register
from .kinds import Predicate

WINDOW_S = 180  # minutes of live data both panels are evaluated over


def _as_dict(answer: Any) -> dict[str, Any]:
    """Return the panel's JSON data from an SDK builder, an SDK model or a dict."""
    from course_lib.grafana.overview import to_json

    if isinstance(answer, dict):
        return answer
    if hasattr(answer, "build"):
        return to_json(answer)
    if hasattr(answer, "to_json"):
        return to_json(type("Built", (), {"build": lambda _self: answer})())
    raise ExerciseFailed(
        f"answer with a panel: timeseries.Panel()... (a grafana-foundation-sdk builder) or its "
        f"JSON as a dict, not a {type(answer).__name__}."
    )


def _board(panel: dict[str, Any]) -> dict[str, Any]:
    """Return a one-panel dashboard around ``panel`` (with the overview's $route variable)."""
    from course_lib.grafana.overview import dashboard_dict

    panel = {**panel, "gridPos": panel.get("gridPos") or {"x": 0, "y": 0, "w": 12, "h": 8}}
    panel.setdefault("id", 1)
    overview = dashboard_dict()
    return {"uid": "exercise", "templating": overview["templating"], "panels": [panel]}


def _evaluate(board: dict[str, Any], url: str, window: tuple[float, float]):
    from course_lib import prom as prom_df
    from course_lib.grafana import render

    try:
        (result,) = render.evaluate(board, url, *window)
    except prom_df.PromQLError as exc:
        raise ExerciseFailed(f"Prometheus rejected the panel's query: {exc}") from None
    render.figure([result])  # the panel must also draw
    return result


def _same_values(mine, reference) -> bool:
    """Tell whether two panel results hold the same numbers (series order and names aside)."""

    def ordered(result):
        return sorted((s.values for s in result.series), key=lambda v: tuple(np.nan_to_num(v)))

    def close(a: np.ndarray, b: np.ndarray) -> bool:
        # Equivalent queries can differ at a step where a series doesn't exist yet (a
        # counter never incremented): compare where both have a value, most of the steps.
        both = np.isfinite(a) & np.isfinite(b)
        enough = both.sum() >= 0.8 * np.isfinite(b).sum()
        return a.shape == b.shape and enough and np.allclose(a[both], b[both])

    return all(close(a, b) for a, b in zip(ordered(mine), ordered(reference), strict=True))


def _threshold_values(panel: dict[str, Any]) -> list[float]:
    steps = (((panel.get("fieldConfig") or {}).get("defaults") or {}).get("thresholds") or {}).get(
        "steps"
    ) or []
    return [s["value"] for s in steps if s.get("value") is not None]


def _check_panel(
    answer: Any,
    stack: Any,
    *,
    reference: Any,
    types: tuple[str, ...],
    unit: str,
    threshold: float,
    unit_hints: dict[str, str],
    query_hints: list[tuple[str, str]],
    many_hint: str,
) -> str:
    """Lint, evaluate and compare a learner's panel with the reference; return a ✅ message."""
    from course_lib.grafana import lint, render

    panel = _as_dict(answer)
    if panel.get("type") not in types:
        return (
            f"the panel is a {panel.get('type')!r} panel; build a {' or '.join(types)} panel "
            f"({types[0]}.Panel())."
        )
    exprs = lint.panel_queries(panel)
    if len(exprs) != 1:
        return f"give the panel exactly one query (with_target(...)); it has {len(exprs)}."
    for pattern, hint in query_hints:
        if re.search(pattern, exprs[0]):
            return hint
    problems = lint.lint(_board(panel))
    if problems:
        return problems[0]
    got_unit = panel["fieldConfig"]["defaults"]["unit"]
    if got_unit != unit:
        return unit_hints.get(
            got_unit, f"unit {got_unit!r} does not fit: the query returns {unit}."
        )
    if not any(math.isclose(v, threshold) for v in _threshold_values(panel)):
        got = _threshold_values(panel)
        scaled = [
            v for v in got if math.isclose(v, threshold * 1000) or math.isclose(v, threshold * 100)
        ]
        if scaled:
            return (
                f"a threshold at {scaled[0]:g} is in the wrong unit: thresholds use the query's "
                f"own unit, so the alert line is at {threshold:g}."
            )
        return f"add a threshold step at {threshold:g}, the alert threshold (got {got or 'none'})."
    url = prometheus_url(stack)
    end = time.time()
    window = (end - WINDOW_S, end)
    mine = _evaluate(_board(panel), url, window)
    ref = _evaluate(_board(_as_dict(reference)), url, window)
    if not ref.has_data:
        from .core import ExerciseSetupError

        raise ExerciseSetupError(
            "the reference panel has no data yet: is the traffic generator running? "
            "Run the stack check cell, wait a minute, and check again."
        )
    if len(mine.series) != len(ref.series):
        return (
            f"the panel draws {len(mine.series)} lines; the reference draws {len(ref.series)}. "
            + (many_hint if len(mine.series) > len(ref.series) else "Keep the reference's labels.")
        )
    if not _same_values(mine, ref):
        return (
            "the panel's numbers differ from the reference over the same minutes: check the "
            "quantile, the metric and the [$__rate_interval] window."
        )
    last = render.reduce(ref.series[0].values, "lastNotNull")
    return (
        f"right: {len(mine.series)} series, the same {len(ref.series[0].values)} points as the "
        f"reference (now {render.format_value(unit, last)}); lint clean, drawn"
    )


@dataclass
class _PanelCheck(Predicate):
    """A Predicate whose test returns the whole ✅ message ("right: ...") or the hint."""

    def evaluate(self, answer: Any, stack: Any) -> str:
        """Check ``answer``; return the success message or raise ExerciseFailed."""
        if self.test is None:
            raise ExerciseSetupError(f"{self.id}: no test= function defined.")
        message = str(self.test(answer, stack))
        if message.startswith("right"):
            return message
        raise ExerciseFailed(message)


# --- 04.p99_panel: the seed's latency panel, corrected, built with the SDK -----------------------


def _p99_reference():
    from grafana_foundation_sdk.builders import timeseries

    from course_lib.grafana import overview

    return (
        timeseries.Panel()
        .title("API p99")
        .description("p99 of all requests; above 200 ms for 5 minutes fires HighAPILatency.")
        .datasource(overview.DATASOURCE)
        .unit("s")
        .with_target(
            overview.query(
                "histogram_quantile(0.99, sum by (le) "
                "(rate(vrewcraft_http_request_duration_seconds_bucket[$__rate_interval])))",
                "p99",
            )
        )
        .thresholds(overview.thresholds((0.2, "red")))
    )


def _check_p99_panel(answer: Any, stack: Any) -> str:
    return _check_panel(
        answer,
        stack,
        reference=_p99_reference(),
        types=("timeseries",),
        many_hint="Sum the buckets by le alone before histogram_quantile: every other "
        "label you keep draws one more line.",
        unit="s",
        threshold=0.2,
        unit_hints={
            "ms": "the query returns seconds (Prometheus' base unit): set unit('s'); "
            "Grafana scales it to ms for display.",
        },
        query_hints=[
            (
                r"\[\s*5m\s*\]",
                "use [$__rate_interval] instead of [5m]: the window then "
                "follows the zoom level and never falls below four scrapes.",
            ),
            (r"histogram_quantile\(\s*0?\.95", "this panel shows the 99th percentile: 0.99."),
            (
                r"^histogram_quantile\(\s*0?\.99\s*,\s*rate\(",
                "sum the buckets by le before "
                "histogram_quantile (seed erratum): without it you get one line per series.",
            ),
        ],
    )


register(
    _PanelCheck(
        "04.p99_panel",
        solution_from_stack=lambda _stack: _p99_reference(),
        test=_check_p99_panel,
        expects="a panel: timeseries.Panel().title(...)... (grafana-foundation-sdk)",
        nudge="timeseries.Panel() with .description(...), .datasource(DATASOURCE), .unit('s'), "
        ".with_target(query('histogram_quantile(0.99, sum by (le) (rate(..._bucket"
        "[$__rate_interval])))')) and .thresholds(thresholds((0.2, 'red'))).",
    )
)

# --- 04.rate_interval: what Grafana sends instead of $__rate_interval -----------------------------

RATE_INTERVAL_CASE = {"hours": 6, "width_px": 600, "scrape_interval": 2}


def _rate_interval_reference() -> str:
    from course_lib.grafana.macros import QueryContext, format_duration

    case = RATE_INTERVAL_CASE
    ctx = QueryContext(0, case["hours"] * 3600, case["width_px"], case["scrape_interval"])
    return format_duration(ctx.rate_interval)


def _seconds(answer: Any) -> float | None:
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int | float):
        return float(answer)
    if isinstance(answer, str):
        text = answer.strip().replace(" ", "")
        parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
        if parts and "".join(n + u for n, u in parts) == text:
            scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
            return sum(float(n) * scale[u] for n, u in parts)
    return None


def _check_rate_interval(answer: Any, _stack: Any) -> bool | str:
    from course_lib.grafana.macros import QueryContext, round_interval

    seconds = _seconds(answer)
    if seconds is None:
        return "answer with a duration such as '45s' or '1m30s' (or a number of seconds)."
    case = RATE_INTERVAL_CASE
    ctx = QueryContext(0, case["hours"] * 3600, case["width_px"], case["scrape_interval"])
    raw = ctx.range / case["width_px"]
    if math.isclose(seconds, ctx.rate_interval):
        return True
    if math.isclose(seconds, raw):
        return (
            f"{raw:g}s is the range divided by the width, before Grafana rounds it to a 'nice' "
            f"interval ({round_interval(raw):g}s) — and $__rate_interval adds a scrape on top."
        )
    if math.isclose(seconds, raw + case["scrape_interval"]):
        return "round the interval first (Grafana's table), then add one scrape interval."
    if math.isclose(seconds, ctx.interval):
        return f"{ctx.interval:g}s is $__interval; $__rate_interval adds one scrape interval."
    if math.isclose(seconds, 4 * case["scrape_interval"]):
        return "4 × the scrape interval is only the floor; here $__interval + scrape is larger."
    return "not quite: $__rate_interval = max($__interval + scrape interval, 4 × scrape interval)."


register(
    Predicate(
        "04.rate_interval",
        solution_from_stack=lambda _stack: _rate_interval_reference(),
        test=_check_rate_interval,
        expects="a duration string like '1m' (or seconds as a number)",
        nudge="$__interval = (range / width) rounded by Grafana; then "
        "max($__interval + scrape, 4 × scrape).",
    )
)

# --- 04.hit_ratio_panel: the seed's cache gauge, from counters ----------------------------------


def _hit_ratio_reference():
    from grafana_foundation_sdk.builders import gauge

    from course_lib.grafana import overview

    return (
        gauge.Panel()
        .title("Thumbnail cache hit ratio")
        .description("Hits / all lookups from the counters; below 80% fires LowCacheHitRatio.")
        .datasource(overview.DATASOURCE)
        .unit("percentunit")
        .min(0)
        .max(1)
        .with_target(
            overview.query(
                'sum(rate(vrewcraft_thumbnail_requests_total{cache_status="hit"}'
                "[$__rate_interval])) / sum(rate(vrewcraft_thumbnail_requests_total"
                "[$__rate_interval]))",
                "hit ratio",
            )
        )
        .thresholds(overview.thresholds((0.8, "green"), base="red"))
    )


def _check_hit_ratio_panel(answer: Any, stack: Any) -> str:
    return _check_panel(
        answer,
        stack,
        reference=_hit_ratio_reference(),
        types=("gauge", "stat"),
        many_hint="Sum both rates into one number each (sum(...)), then divide: a ratio "
        "per label value is another panel.",
        unit="percentunit",
        threshold=0.8,
        unit_hints={
            "percent": "'percent' expects 0..100; the ratio runs 0..1: use 'percentunit'.",
        },
        query_hints=[
            (
                r"vrewcraft_thumbnail_cache_hit_ratio",
                "derive the ratio from the counter "
                "vrewcraft_thumbnail_requests_total: the in-process gauge resets on restart and "
                "can't be combined across replicas (seed erratum).",
            ),
            (
                r'cache_status="miss"\}[^/]*\)\)\s*/',
                'that is the miss ratio: put the hits (cache_status="hit") on top.',
            ),
        ],
    )


register(
    _PanelCheck(
        "04.hit_ratio_panel",
        solution_from_stack=lambda _stack: _hit_ratio_reference(),
        test=_check_hit_ratio_panel,
        expects="a panel: gauge.Panel()... (grafana-foundation-sdk)",
        nudge="gauge.Panel() with unit('percentunit'), min(0), max(1), a threshold step at 0.8, "
        "and sum(rate(hits[$__rate_interval])) / sum(rate(all[$__rate_interval])).",
    )
)

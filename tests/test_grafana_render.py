"""Every panel query of the overview runs on the real Prometheus; the dashboard renders without
Grafana, and its standalone page draws every panel in a real headless Chromium."""

from __future__ import annotations

import math
import shutil
import time

import numpy as np
import pytest

from course_lib import history, prom
from course_lib.grafana import lint, overview, render
from course_lib.grafana.macros import QueryContext

pytestmark = pytest.mark.stack

WINDOW = 300  # seconds of live data the panels are evaluated over


@pytest.fixture(scope="module")
def window(stack):
    """Return (start, end) of a window in which every panel of the overview has data."""
    # The traffic generator uploads, trims and fetches thumbnails; wait until each of those
    # has happened twice in a row of scrapes, so rate() has two samples to work with.
    for query in (
        "sum(rate(vrewcraft_video_uploads_total[1m])) > 0",
        "sum(rate(vrewcraft_thumbnail_miss_duration_seconds_count[1m])) > 0",
        "sum(rate(vrewcraft_ffmpeg_duration_seconds_count[1m])) > 0",
    ):
        stack.wait_for(query, timeout=120)
    return prom.last(WINDOW)


@pytest.fixture(scope="module")
def results(stack, window):
    return render.evaluate(overview.dashboard_dict(), stack.prometheus_url, *window)


def test_every_panel_query_runs_and_returns_data(results):
    board = overview.dashboard_dict()
    expected = sum(len(lint.panel_queries(p)) for p in board["panels"])
    assert expected == 19
    assert sum(len(r.queries) for r in results) == expected
    for r in results:
        assert all("$" not in q for q in r.queries), r.queries  # every macro was expanded
        assert r.has_data, f"panel {r.title!r} returned no data: {r.queries}"
        # Every query of the panel (refId) has data, not only the first one. A single series
        # may be all NaN (a p99 of a route idle in the window is 0/0): Grafana draws nothing.
        for target in r.panel["targets"]:
            finite = [
                s.values[np.isfinite(s.values)] for s in r.series if s.ref_id == target["refId"]
            ]
            assert any(v.size for v in finite), f"{r.title!r} query {target['refId']}: no data"
            assert all((v >= 0).all() for v in finite), f"{r.title!r}: negative values"


def test_legend_format_names_the_series(results):
    by_title = {r.title: r for r in results}
    assert [s.name for s in by_title["API latency p50 / p95 / p99"].series] == ["p99", "p95", "p50"]
    routes = {s.name for s in by_title["Request rate by route"].series}
    assert "/api/videos" in routes and "/metrics" in routes
    assert all(s.name.startswith("RSS 127.0.0.1:") for s in by_title["Memory (RSS)"].series)


def test_step_is_grafanas_interval(results, window):
    start, end = (t.timestamp() for t in window)
    for r in results:
        width = round(r.panel["gridPos"]["w"] / 24 * render.DASHBOARD_PX)
        assert r.step == QueryContext(start, end, width, scrape_interval=2).interval


def test_stat_values_match_prometheus(stack, results, window):
    """The stat reduction (lastNotNull) equals the query evaluated at the last step."""
    by_title = {r.title: r for r in results}
    up = by_title["Target up"]
    assert render.reduce(up.series[0].values, "lastNotNull") == 1.0
    ratio = by_title["Error ratio (range)"]
    direct = stack.query(
        '(sum(increase(vrewcraft_http_requests_total{status_code=~"5.."}[300s])) or vector(0))'
        " / sum(increase(vrewcraft_http_requests_total[300s]))",
        time=window[1].timestamp(),
    )["value"].iloc[0]
    assert math.isclose(render.reduce(ratio.series[0].values, "lastNotNull"), direct)


def test_route_variable_filters_the_queries(stack, window):
    board = overview.dashboard_dict()
    only = render.evaluate(board, stack.prometheus_url, *window, variables={"route": ["/metrics"]})
    by_route = next(r for r in only if r.title == "Request rate by route")
    assert [s.name for s in by_route.series] == ["/metrics"]
    assert 'route=~"/metrics"' in by_route.queries[0]


def test_a_rejected_query_names_the_panel(stack, window):
    board = overview.dashboard_dict()
    board["panels"] = [board["panels"][6]]
    board["panels"][0]["targets"][0]["expr"] = "sum by (le) (rate(up[$__rate_interval])"
    with pytest.raises(prom.PromQLError, match="panel 'API latency p50 / p95 / p99'"):
        render.evaluate(board, stack.prometheus_url, *window)


def test_figure_draws_every_panel(results):
    fig = render.figure(results, title="test")
    graphs = [r for r in results if r.panel["type"] == "timeseries"]
    assert len([k for k in fig.layout if k.startswith("xaxis")]) == len(graphs) == 9
    assert len([t for t in fig.data if t.type == "indicator"]) >= 6
    assert sum(len(r.series) for r in graphs) == len([t for t in fig.data if t.type == "scatter"])
    assert {a.text for a in fig.layout.annotations} >= {f"<b>{r.title}</b>" for r in results}


def test_a_panel_without_grid_position_is_named(stack, window):
    board = overview.dashboard_dict()
    board["panels"] = [board["panels"][0]]
    del board["panels"][0]["gridPos"]
    with pytest.raises(ValueError, match="panel 'Target up' has no gridPos"):
        render.evaluate(board, stack.prometheus_url, *window)


def test_figure_refuses_nothing_to_draw():
    with pytest.raises(ValueError, match="no panels to draw"):
        render.figure([])


# --- over the day of history -------------------------------------------------------------------


@pytest.fixture(scope="module")
def day(stack):
    return stack.history_window()


def _incident(day) -> tuple[float, float]:
    """Return the thumbnail incident with half an hour either side."""
    return day.at_event("thumbnail_incident") - 1800, day.at_event(
        "thumbnail_incident", "end"
    ) + 1800


def test_every_panel_query_has_data_over_the_day(stack, day):
    results = render.evaluate(overview.dashboard_dict(), stack.prometheus_url, day.start, day.end)
    assert sum(len(r.queries) for r in results) == 19
    for r in results:
        for target in r.panel["targets"]:
            mine = [s for s in r.series if s.ref_id == target["refId"]]
            assert any(np.isfinite(s.values).any() for s in mine), f"{r.title} {target['refId']}"
    by_title = {r.title: r for r in results}
    # A half-width panel is 600 px: 24 h / 600 = 144 s, which Grafana rounds to a 2 m step.
    assert by_title["API latency p50 / p95 / p99"].step == 120


def test_the_incident_shows_on_the_dashboard(stack, day):
    results = render.evaluate(
        overview.dashboard_dict(),
        stack.prometheus_url,
        *_incident(day),
        scrape_interval=history.STEP,
    )
    by_title = {r.title: {s.name: s.values for s in r.series} for r in results}
    peak = {
        name: np.nanmax(values)
        for name, values in by_title["Thumbnail p99: all, hits, misses"].items()
    }
    assert peak["misses"] > overview.THUMBNAIL_P99_SECONDS > peak["hits"]
    assert np.nanmax(by_title["ffmpeg errors by operation"]["thumbnail"]) > 0.1
    assert np.nanmax(by_title["Thumbnail cache hit ratio"]["hit ratio"]) <= 1.0


def test_a_too_small_scrape_interval_empties_the_graphs(stack, day):
    """The data source says 2 s, the day was scraped every 15 s: zoomed in, rate() finds one
    sample per window and the graphs go empty, exactly as they would in Grafana."""
    results = render.evaluate(overview.dashboard_dict(), stack.prometheus_url, *_incident(day))
    empty = [r.title for r in results if r.panel["type"] == "timeseries" and not r.has_data]
    assert "API latency p50 / p95 / p99" in empty and "Memory (RSS)" not in empty


def test_whole_dashboard_renders_fast(stack, day):
    t0 = time.perf_counter()
    render.render(overview.dashboard_dict(), stack.prometheus_url, day.start, day.end)
    elapsed = time.perf_counter() - t0
    assert elapsed < 5.0, f"rendering the overview over 24 h took {elapsed:.1f}s (budget 5 s)"


# --- the standalone page in a real browser --------------------------------------------------------


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    raise AssertionError(
        "no chromium on PATH: `make test` installs it (scripts/install-system-deps.sh)"
    )


def test_standalone_page_draws_every_panel_in_chromium(results, tmp_path, repo):
    from playwright.sync_api import sync_playwright

    page_path = render.write_html(
        render.figure(results, title="VrewCraft overview"), tmp_path / "vrewcraft.html"
    )
    html = page_path.read_text()
    assert "<script src=" not in html and len(html) > 3_000_000  # plotly.js is inline
    graphs = sum(r.panel["type"] == "timeseries" for r in results)
    stats = sum(max(1, min(4, len(r.series))) for r in results if r.panel["type"] != "timeseries")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1240, "height": 1200})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
            page.route(
                "http*://**", lambda route: (errors.append(route.request.url), route.abort())
            )
            page.goto(page_path.as_uri())
            page.wait_for_selector(".js-plotly-plot svg.main-svg", timeout=30_000)
            assert page.locator(".cartesianlayer .subplot").count() == graphs
            assert page.locator(".indicatorlayer .trace").count() == stats
            # One SVG trace per series, and every graph panel drew a line (a path with a "d").
            traces = page.locator(".scatterlayer .trace").count()
            assert traces == sum(len(r.series) for r in results if r.panel["type"] == "timeseries")
            drawn = page.evaluate(
                """() => Array.from(document.querySelectorAll('.cartesianlayer .subplot')).map(
                    panel => Array.from(panel.querySelectorAll('.scatterlayer path.js-line'))
                                  .some(p => (p.getAttribute('d') || '').length > 10))"""
            )
            assert len(drawn) == graphs and all(drawn), drawn
            for r in results:
                assert page.get_by_text(r.title, exact=True).count() == 1, r.title
            shot = repo / ".course-test" / "screenshots" / "vrewcraft-overview.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 20_000
        finally:
            browser.close()
    assert errors == []  # no JS error, and nothing fetched from the network

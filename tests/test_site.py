"""The course site: built from the executed notebooks, a page each, figures interactive offline."""

from __future__ import annotations

import re
import time

import nbformat
import pytest

from course_tools import build

PLOTLY_JSON = "application/vnd.plotly.v1+json"


@pytest.fixture(scope="module")
def executed(request):
    """The executed notebooks in build/solutions, (re)running any missing or stale one.

    In a full `make test` run the notebook tests wrote them moments ago.
    """
    stale = [p for p in build.notebooks() if not build.is_fresh(p)]
    if stale:
        request.getfixturevalue("stack")
        for path in stale:
            build.execute(path, build.solutions_dir() / path.name)
    return build.notebooks(build.solutions_dir())


@pytest.fixture(scope="module")
def site(executed, tmp_path_factory):
    t0 = time.monotonic()
    index = build.build_site(out_dir=tmp_path_factory.mktemp("site") / "html")
    print(f"site built in {time.monotonic() - t0:.1f}s: {index}")
    return index.parent


def _figure_count(path) -> int:
    nb = nbformat.read(path, as_version=4)
    return sum(
        PLOTLY_JSON in output.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


@pytest.mark.notebook
def test_every_notebook_has_a_page_with_every_figure(executed, site):
    assert [p.name for p in executed] == [p.name for p in build.notebooks()]
    index = (site / "index.html").read_text()
    for path in executed:
        page = site / f"{path.stem}.html"
        assert page.exists(), f"no page for {path.name}"
        assert f'href="{path.stem}.html"' in index, f"{path.name} missing from the index"
        html = page.read_text()
        figures = _figure_count(path)
        # Each figure is a div drawn by Plotly.newPlot with its data inline.
        assert html.count("Plotly.newPlot(") == figures, (path.name, figures)
        if figures:
            assert "plotly.js v" in html or "plotly.min.js" not in html  # plotly.js inline
            assert not re.search(r'<script[^>]+src="https?://[^"]*plotly', html), path.name


@pytest.mark.notebook
def test_errata_are_collected_on_one_page(executed, site):
    found = build.errata(executed)
    assert found, "no 'Seed errata' block in any notebook"
    page = (site / "errata.html").read_text()
    for title, _ in found:
        assert title.split("·")[-1].strip() in page, title
    assert page.count('class="section"') + page.count("<section") >= len(found)


@pytest.mark.notebook
@pytest.mark.browser
def test_a_site_page_draws_its_figure_offline_in_chromium(executed, site, browser, stack):
    with_figures = [p for p in executed if _figure_count(p)]
    assert with_figures, "no notebook draws a plotly figure"
    first = with_figures[0]
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    network: list[str] = []
    page.route("http*://**", lambda route: (network.append(route.request.url), route.abort()))
    try:
        page.goto((site / f"{first.stem}.html").as_uri())
        page.locator(".js-plotly-plot svg.main-svg").first.wait_for(timeout=20_000)
        drawn = page.locator(".js-plotly-plot").count()
        assert drawn == _figure_count(first), drawn
        shot = stack.config.state_dir / "screenshots" / f"site-{first.stem}.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        print(f"site screenshot: {shot}")
    finally:
        page.close()
    assert errors == [], errors
    assert network == [], network  # everything the page needs is in the site

"""The learner's path in a real browser, and the stack UIs under the Jupyter server's URL.

JupyterLab runs as `make lab` starts it (own port, a token, Jupyter dirs inside
the state directory) on a copy of notebooks/; Chromium opens notebook 01, runs
the stack check and the counter-reset plot, and we look at what a person sees.
"""

from __future__ import annotations

import re
import time

import nbformat
import pytest
import requests

from course_lib import lab

NOTEBOOK = "01_prometheus_basics.ipynb"
IDLE = "Python 3 (ipykernel) | Idle"
# Cells picked by what they do, not by position: the stack check, the cell that pushes the
# counter with a reset, and the plot of it (a learner jumping to section 5 runs these three).
CELL_MARKERS = ("stack = ensure_running()", "pushed_values = [", "lesson.line_plot(")


def _cell_indexes(path) -> list[int]:
    cells = nbformat.read(path, as_version=4).cells
    found = []
    for marker in CELL_MARKERS:
        matches = [i for i, c in enumerate(cells) if c.cell_type == "code" and marker in c.source]
        assert len(matches) == 1, f"{path.name}: {len(matches)} cells contain {marker!r}"
        found.append(matches[0])
    return found


def _run_cell(page, cell, timeout_s: float = 60) -> None:
    """Select ``cell`` in command mode, press Shift+Enter, wait until its prompt shows a number."""
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputPrompt").click()
    page.keyboard.press("Shift+Enter")
    prompt = cell.locator(".jp-InputPrompt")
    deadline = time.monotonic() + timeout_s
    while not re.fullmatch(r"\[\d+\]:", prompt.inner_text().strip()):
        assert time.monotonic() < deadline, f"cell still running: {prompt.inner_text()!r}"
        time.sleep(0.2)


@pytest.mark.stack
@pytest.mark.browser
def test_learner_runs_the_stack_check_and_a_plot_in_chromium(lab_server, browser, stack, repo):
    check_index, data_index, plot_index = _cell_indexes(lab_server["root"] / NOTEBOOK)
    shots = stack.config.state_dir / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and errors.append(f"console: {msg.text}"))
    t0 = time.monotonic()
    try:
        page.goto(f"{lab_server['url']}lab/tree/{NOTEBOOK}?reset&token={lab_server['token']}")
        panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        # The status bar, not the toolbar: a kernel dialog would leave the toolbar "idle" too.
        page.get_by_text(IDLE).wait_for(timeout=60_000)
        cells = panel.locator(".jp-Notebook .jp-Cell")
        assert cells.count() == len(nbformat.read(repo / "notebooks" / NOTEBOOK, 4).cells)

        _run_cell(page, cells.nth(check_index), timeout_s=90)
        check_output = cells.nth(check_index).locator(".jp-Cell-outputArea").inner_text()
        assert stack.prometheus_url in check_output, check_output  # this stack, not a learner's

        _run_cell(page, cells.nth(data_index))
        data_output = cells.nth(data_index).locator(".jp-Cell-outputArea").inner_text()
        assert "window [" in data_output and "Error" not in data_output, data_output

        plot_cell = cells.nth(plot_index)
        _run_cell(page, plot_cell)
        figure = plot_cell.locator(".js-plotly-plot svg.main-svg").first
        figure.wait_for(timeout=30_000)
        line = plot_cell.locator(".scatterlayer path.js-line").first
        assert len(line.get_attribute("d") or "") > 10, "the plot drew no line"
        assert plot_cell.get_by_text("a reset after 40").count() >= 1  # the figure's title
        assert page.locator(".jp-OutputArea-output[data-mime-type*='error']").count() == 0
        elapsed = time.monotonic() - t0
        page.screenshot(path=str(shots / "lab-01-notebook.png"))
        plot_cell.screenshot(path=str(shots / "lab-01-plot.png"))
    finally:
        page.close()
    print(f"browser path took {elapsed:.1f}s; screenshots: {shots}/lab-01-*.png")
    assert errors == [], errors


# --- the stack UIs under the Jupyter server's URL ------------------------------------------------


def _proxied(lab_server, path: str, **params) -> requests.Response:
    params["token"] = lab_server["token"]
    return requests.get(f"{lab_server['url']}{path}", params=params, timeout=15)


@pytest.mark.stack
def test_prometheus_ui_and_a_query_work_through_the_jupyter_proxy(lab_server):
    page = _proxied(lab_server, "prometheus/classic/graph")
    assert page.status_code == 200 and "<title>Prometheus" in page.text, page.text[:300]
    assert 'var PATH_PREFIX = "/prometheus";' in page.text
    assets = re.findall(r'(?:src|href)="/(prometheus/classic/static/[^"?]+)', page.text)
    assert len(assets) >= 10 and not re.search(r'"/classic/', page.text)
    for asset in assets:
        assert _proxied(lab_server, asset).status_code == 200, asset
    # The UI's own API calls go to PATH_PREFIX + "/api/v1/...".
    result = _proxied(lab_server, "prometheus/api/v1/query", query='up{job="prometheus"}').json()
    assert result["status"] == "success" and result["data"]["result"][0]["value"][1] == "1"
    # A redirect stays under the prefix instead of jumping to the Jupyter server's root.
    redirect = requests.get(
        f"{lab_server['url']}prometheus/",
        params={"token": lab_server["token"]},
        allow_redirects=False,
        timeout=15,
    )
    assert redirect.status_code in (302, 303, 307), redirect.status_code
    assert redirect.headers["Location"].startswith("/prometheus/"), redirect.headers["Location"]


#: Debian's Prometheus ships a popper.js build that is an ES module loaded as a classic script.
DEBIAN_POPPER_ERROR = "Unexpected token 'export'"


@pytest.mark.stack
@pytest.mark.browser
def test_prometheus_ui_runs_a_query_in_chromium_through_the_proxy(lab_server, browser, stack):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and errors.append(f"console: {msg.text}"))
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("response", lambda response: response.status >= 400 and failed.append(response.url))
    try:
        page.goto(f"{lab_server['url']}prometheus/classic/graph?token={lab_server['token']}")
        page.locator("textarea[name=expr]").fill('up{job="pushgateway"}')
        page.locator("input.execute_btn").click()
        row = page.locator(".console table tbody tr", has_text="pushgateway").first
        row.wait_for(timeout=15_000)
        assert stack.config.address("pushgateway") in row.inner_text()
        page.screenshot(path=str(stack.config.state_dir / "screenshots" / "prometheus-proxy.png"))
    finally:
        page.close()
    assert failed == [], failed
    assert [e for e in errors if DEBIAN_POPPER_ERROR not in e] == [], errors


@pytest.mark.stack
def test_alertmanager_pushgateway_and_api_docs_work_through_the_jupyter_proxy(lab_server):
    assert "Alertmanager" in _proxied(lab_server, "alertmanager/").text
    status = _proxied(lab_server, "alertmanager/api/v2/status").json()
    assert status["cluster"]["status"] == "disabled"  # a single instance
    assert "Pushgateway" in _proxied(lab_server, "pushgateway/").text
    docs = _proxied(lab_server, "vrewcraft-api/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    # The page asks for the OpenAPI document under the proxy, not at the Jupyter server's root.
    assert "url: '/vrewcraft-api/openapi.json'" in docs.text, docs.text
    openapi = _proxied(lab_server, "vrewcraft-api/openapi.json").json()
    assert openapi["paths"], "the service's OpenAPI lists no routes"


@pytest.mark.stack
def test_launcher_lists_every_stack_ui(lab_server):
    servers = _proxied(lab_server, "server-proxy/servers-info").json()["server_processes"]
    by_name = {s["name"]: s for s in servers}
    assert set(lab.PROXIED) <= set(by_name), sorted(by_name)
    for name, (_, path_info, title) in lab.PROXIED.items():
        entry = by_name[name]["launcher_entry"]
        assert entry["enabled"] and entry["title"] == title and entry["path_info"] == path_info


@pytest.mark.stack
def test_proxy_needs_the_token(lab_server):
    anonymous = requests.get(
        f"{lab_server['url']}prometheus/api/v1/query",
        params={"query": "up"},
        allow_redirects=False,
        timeout=15,
    )
    assert anonymous.status_code in (302, 403), anonymous.status_code


def test_ui_url_names_the_proxied_path():
    assert lab.ui_url("prometheus", "classic/graph") == "/prometheus/classic/graph"
    assert lab.ui_url("service", "docs", base_url="/user/ana/") == "/user/ana/vrewcraft-api/docs"
    with pytest.raises(KeyError, match="choose one of"):
        lab.ui_url("grafana")


def test_prefix_rewrite_leaves_other_bodies_alone():
    headers = {"Location": "/graph"}
    assert lab.prometheus_behind_prefix(b'{"a": "/classic/x"}', headers, "/p") == (
        b'{"a": "/classic/x"}'
    )
    assert headers["Location"] == "/p/graph"
    headers = {"Location": "/p/graph"}
    lab.prometheus_behind_prefix(b"", headers, "/p")
    assert headers["Location"] == "/p/graph"  # already prefixed: not doubled


# --- doctor: the notebooks' needs, checked without a browser --------------------------------------


def test_doctor_finds_everything_the_notebooks_need_on_this_machine(tmp_path, monkeypatch):
    from course_lib.config import StackConfig

    monkeypatch.setenv("COURSE_STATE_DIR", str(tmp_path))
    findings = lab.doctor(StackConfig.from_env())
    assert [f for f in findings if f[0] == "error"] == []
    text = "\n".join(t for _, t in findings)
    assert "kernel python3" in text and "JupyterLab proxies" in text


def test_doctor_names_a_module_a_notebook_imports_but_the_machine_lacks(tmp_path, monkeypatch):
    import nbformat as nbf

    from course_lib.config import StackConfig

    nb = nbf.v4.new_notebook()
    nb.cells = [
        nbf.v4.new_code_cell("%matplotlib inline\nimport pandas as pd\nfrom nosuchmod.x import y"),
        nbf.v4.new_code_cell("def broken(:\n    pass"),  # a syntax error doesn't stop the doctor
    ]
    nbf.write(nb, tmp_path / "09_demo.ipynb")
    monkeypatch.setenv("COURSE_STATE_DIR", str(tmp_path / "state"))
    errors = [t for level, t in lab.doctor(StackConfig.from_env(), tmp_path) if level == "error"]
    assert len(errors) == 1 and "nosuchmod" in errors[0] and "09_demo.ipynb" in errors[0], errors
    assert "make setup" in errors[0]

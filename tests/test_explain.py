"""explain(): node facts of evaluated parse trees, on series we control, with a real Prometheus.

A scratch exporter serves counters and a histogram whose values grow at fixed
rates with the wall clock (12 method/route/status series, 9 buckets each), and
a real Prometheus scrapes it every second; so series counts, label sets and
ratios are known exactly, and the seed's mistakes can be shown node by node.
"""

from __future__ import annotations

import html
import itertools
import math
import shutil
import subprocess
import time
from types import SimpleNamespace

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from course_lib import history, lesson, prom
from course_lib.exercises import ExerciseFailed, get
from course_lib.explain import divergence, explain
from course_lib.supervisor import free_port, poll, stop_child

METHODS = ("GET", "POST")
ROUTES = ("/api/upload", "/api/videos", "/api/thumbnails")
STATUSES = ("200", "500")
LE = ("0.001", "0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf")
#: Cumulative share of requests at or below each bucket bound.
SHARE = (0.0, 0.1, 0.3, 0.6, 0.8, 0.95, 0.99, 1.0, 1.0)
HIT_RATE, MISS_RATE = 4.0, 1.0
JOB_RATES = {"a": 2.0, "b": 3.0}

REQUESTS = "vrewcraft_http_requests_total"
BUCKET = "vrewcraft_http_request_duration_seconds_bucket"


def _request_rate(method: str, route: str, status: str) -> float:
    """Requests per second of one method/route/status series (fixed, all different)."""
    return (
        (2.0 if method == "GET" else 1.0)
        * (ROUTES.index(route) + 1)
        * (1.0 if status == "200" else 0.25)
    )


class SyntheticCollector:
    """Counters that grow at fixed per-second rates since their start; ``restart`` resets one."""

    def __init__(self) -> None:
        self.started = time.time()
        self.job_started = {worker: self.started for worker in JOB_RATES}

    def restart(self, worker: str) -> None:
        """Reset worker's jobs counter to 0, like a process restart."""
        self.job_started[worker] = time.time()

    def collect(self):
        elapsed = time.time() - self.started
        requests_total = CounterMetricFamily(
            "vrewcraft_http_requests", "Requests.", labels=["method", "route", "status_code"]
        )
        duration = HistogramMetricFamily(
            "vrewcraft_http_request_duration_seconds",
            "Latency.",
            labels=["method", "route", "status_code"],
        )
        for method, route, status in itertools.product(METHODS, ROUTES, STATUSES):
            count = _request_rate(method, route, status) * elapsed
            requests_total.add_metric([method, route, status], count)
            duration.add_metric(
                [method, route, status],
                buckets=[(le, share * count) for le, share in zip(LE, SHARE, strict=True)],
                sum_value=0.05 * count,
            )
        thumbnails = CounterMetricFamily(
            "vrewcraft_thumbnail_requests", "Thumbnails.", labels=["cache_status"]
        )
        thumbnails.add_metric(["hit"], HIT_RATE * elapsed)
        thumbnails.add_metric(["miss"], MISS_RATE * elapsed)
        jobs = CounterMetricFamily("explain_jobs", "Jobs done.", labels=["worker"])
        for worker, rate in JOB_RATES.items():
            jobs.add_metric([worker], rate * (time.time() - self.job_started[worker]))
        yield from (requests_total, duration, thumbnails, jobs)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Serve SyntheticCollector, scrape it every 1 s with a real Prometheus; yield a stack-like."""
    assert shutil.which("prometheus"), "prometheus binary missing: run `make test` to install it"
    registry = CollectorRegistry()
    collector = SyntheticCollector()
    registry.register(collector)
    exporter_port, port = free_port(), free_port()
    server, _thread = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    tmp = tmp_path_factory.mktemp("explain-prometheus")
    (tmp / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: synthetic
    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]
""")
    log = (tmp / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url, "count_over_time(explain_jobs_total[1m]) >= 4", proc, tmp)
        yield SimpleNamespace(prometheus_url=url, collector=collector, proc=proc, tmp=tmp)
    finally:
        stop_child(proc)
        log.close()
        server.shutdown()
        server.server_close()


def _wait_for(url: str, query: str, proc, tmp, timeout: float = 40) -> float:
    """Poll until ``query`` returns a series; return the time it did."""

    def has_result() -> bool:
        try:
            return not prom.query(url, query).empty
        except prom.PrometheusUnreachable:
            return False

    if poll(has_result, timeout, interval=0.2, alive=lambda: proc.poll() is None):
        return time.time()
    if proc.poll() is not None:
        pytest.fail(f"prometheus exited:\n{(tmp / 'prometheus.log').read_text()[-2000:]}")
    pytest.fail(f"{query!r} returned nothing within {timeout:.0f}s")


# --- node facts ------------------------------------------------------------------------------

UNAGGREGATED_P99 = f"histogram_quantile(0.99, rate({BUCKET}[5m]))"
P99 = f"histogram_quantile(0.99, sum by (le) (rate({BUCKET}[5m])))"


@pytest.mark.process
def test_unaggregated_quantile_shows_one_quantile_per_series(synthetic):
    tree = explain(synthetic, UNAGGREGATED_P99)
    assert [n.expr for n in tree.nodes] == [
        UNAGGREGATED_P99,
        "0.99",
        f"rate({BUCKET}[5m])",
        f"{BUCKET}[5m]",
    ]
    assert [n.depth for n in tree.nodes] == [0, 1, 1, 2]
    root, phi, rate, window = tree.nodes
    assert (root.result_type, root.series, root.labels) == (
        "instant vector",
        12,
        ("instance", "job", "method", "route", "status_code"),
    )
    assert phi.result_type == "scalar" and phi.values == [({}, 0.99)]
    assert (rate.series, rate.labels) == (
        108,
        ("instance", "job", "le", "method", "route", "status_code"),
    )
    assert window.result_type == "range vector" and window.series == 108
    low, high = window.samples_per_series
    assert 4 <= low <= high
    assert window.resets == 0
    assert "108 series → 12 (one per instance, job, method, route, status_code)" in root.explanation
    assert any("one quantile per series" in w for w in root.warnings)
    assert "per-second increase of each counter over [5m], resets handled" in rate.explanation


@pytest.mark.process
def test_sum_by_le_collapses_the_buckets_to_one_quantile(synthetic):
    tree = explain(synthetic, P99)
    sum_node = tree.node(f"sum by (le) (rate({BUCKET}[5m]))")
    assert (sum_node.series, sum_node.labels) == (9, ("le",))
    assert "adds the series up, keeping only le: 108 series → 9" in sum_node.explanation
    assert (tree.root.series, tree.root.labels) == (1, ())
    # Every series puts exactly 99 % of requests at or below 1 s: the p99 is that bound.
    assert tree.root.values[0][1] == pytest.approx(1.0, rel=1e-9)
    assert not any(n.warnings or n.error for n in tree.nodes)


@pytest.mark.process
def test_ratio_without_sum_shows_the_label_mismatch_on_the_division(synthetic):
    query = f'rate({REQUESTS}{{status_code="500"}}[5m]) / sum(rate({REQUESTS}[5m]))'
    tree = explain(synthetic, query)
    left, right = tree.root.children
    assert (left.series, left.labels) == (6, ("instance", "job", "method", "route", "status_code"))
    assert (right.series, right.labels) == (1, ())
    assert tree.root.series == 0
    assert "6 left, 1 right, 0 matched → 0" in tree.root.explanation
    assert "no series match" in tree.root.error
    assert (
        "{instance, job, method, route, status_code}" in tree.root.error
        and "right side {}" in tree.root.error
    )

    fixed = explain(synthetic, f"sum({query.split(' / ')[0]}) / sum(rate({REQUESTS}[5m]))")
    assert (fixed.root.series, fixed.root.error) == (1, "")
    total = sum(_request_rate(*c) for c in itertools.product(METHODS, ROUTES, STATUSES))
    errors = sum(_request_rate(m, r, "500") for m, r in itertools.product(METHODS, ROUTES))
    assert fixed.root.values[0][1] == pytest.approx(errors / total, rel=1e-3)
    assert "1 left, 1 right, 1 matched → 1" in fixed.root.explanation


@pytest.mark.process
def test_rate_of_a_sum_shows_the_reset(synthetic):
    url, proc, tmp = synthetic.prometheus_url, synthetic.proc, synthetic.tmp
    # rate() divides by the whole window: let the series get older than [10s] first.
    _wait_for(url, "count_over_time(explain_jobs_total[1m]) >= 12", proc, tmp)
    synthetic.collector.restart("b")
    restarted = time.time()
    # Two more scrapes, so every 1 s step of the subquery below can see the drop.
    _wait_for(url, f'timestamp(explain_jobs_total{{worker="b"}}) > {restarted + 2}', proc, tmp)
    at = time.time()
    wrong = explain(synthetic, "rate(sum(explain_jobs_total)[10s:1s])", at)
    window = wrong.node("sum(explain_jobs_total)[10s:1s]")
    assert window.kind == "subquery" and window.resets == 1
    assert "reads each dip as a reset of the whole sum" in window.explanation
    assert any("rate() of a sum" in w for w in wrong.root.warnings)

    right = explain(synthetic, "sum(rate(explain_jobs_total[10s]))", at)
    per_series = right.node("explain_jobs_total[10s]")
    assert per_series.resets == 1 and "rate/increase correct for" in per_series.explanation
    true_rate = sum(JOB_RATES.values())
    assert right.root.values[0][1] == pytest.approx(true_rate, rel=0.2)
    # The sum dropped by worker b's whole count (>= 3/s × 12 s), and rate() added it back
    # as if the sum had restarted from 0: >= 36 extra over a 10 s window, 3.6/s too much.
    assert wrong.root.values[0][1] > 1.5 * true_rate


@pytest.mark.process
def test_a_failing_node_shows_prometheus_error_on_that_node(synthetic):
    tree = explain(synthetic, "explain_jobs_total / on() explain_jobs_total")
    assert "many-to-many matching not allowed" in tree.root.error
    assert [c.series for c in tree.root.children] == [2, 2]
    assert not any(c.error for c in tree.root.children)
    assert "⚠" in str(tree) and "many-to-many" in tree._repr_html_()


@pytest.mark.process
def test_empty_selector_says_nothing_matches(synthetic):
    tree = explain(synthetic, 'sum(rate(explain_jobs_total{worker="z"}[1m]))')
    assert [n.series for n in tree.nodes] == [0, 0, 0]
    assert "no series has samples" in tree.node('explain_jobs_total{worker="z"}[1m]').explanation
    bare = explain(synthetic, 'explain_jobs_total{worker="z"}')
    assert 'with worker="z": 0 series (nothing matches' in bare.root.explanation


@pytest.mark.process
def test_rendering_text_and_static_html(synthetic):
    tree = explain(synthetic, P99)
    text = str(tree)
    lines = text.splitlines()
    assert lines[0] == P99
    assert any(line.startswith("├─ 0.99") for line in lines)
    assert any(line.startswith("└─ sum by (le)") for line in lines)
    assert any(line.startswith("      └─ " + BUCKET + "[5m]") for line in lines)
    assert "instant vector · 9 series · {le}" in text
    page = tree._repr_html_()
    assert page.count("<tr>") == len(tree.nodes) + 1  # header + one row per node
    assert "<script" not in page and "widget" not in page
    exported = _export_html(tree)
    assert '<table class="promql-explain">' in exported
    assert html.escape(f"rate({BUCKET}[5m])") in exported
    frame = tree.to_frame()
    assert frame["series"].tolist()[-2:] == [108, 108]
    assert frame["depth"].tolist() == [0, 1, 1, 2, 3]


def _export_html(tree) -> str:
    """Return the HTML nbconvert makes of a notebook whose one cell displayed ``tree``."""
    import nbformat
    from nbconvert import HTMLExporter

    cell = nbformat.v4.new_code_cell("lesson.explain(stack, query)")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data", data={"text/html": tree._repr_html_(), "text/plain": str(tree)}
        )
    ]
    body, _ = HTMLExporter().from_notebook_node(nbformat.v4.new_notebook(cells=[cell]))
    return body


@pytest.mark.process
def test_lesson_explain_and_node_lookup(synthetic):
    tree = lesson.explain(synthetic, f"sum by(le)(rate({BUCKET}[5m]))")
    assert tree.node(f"rate({BUCKET}[5m])").series == 108
    with pytest.raises(KeyError, match="no node"):
        tree.node("rate(nothing[5m])")


@pytest.mark.process
def test_bad_input_says_what_to_do(synthetic):
    with pytest.raises(ValueError, match="PromQL syntax error"):
        explain(synthetic, "rate(sum(explain_jobs_total))")
    with pytest.raises(ValueError, match="query string"):
        explain(synthetic, "   ")
    with pytest.raises(ValueError, match="Prometheus URL"):
        explain(object(), "up")


@pytest.mark.process
def test_speed_of_a_ten_node_query(synthetic):
    query = (
        f'sum by (route) (rate({REQUESTS}{{status_code="500"}}[1m])) '
        f"/ sum by (route) (rate({REQUESTS}[1m])) > 0.1"
    )
    tree = explain(synthetic, query)
    assert len(tree.nodes) == 9
    assert tree.elapsed < 1.0, str(tree)
    # Every route fails a fifth of its requests (0.25 of every 1.25 per second).
    assert tree.root.explanation == "keeps the series whose value is > 0.1: 3 series → 3"
    assert [v for _, v in tree.root.values] == pytest.approx([0.2] * 3, rel=1e-3)
    assert tree.root.sample_text().startswith('{route="/api/thumbnails"} 0.2, ')


# --- divergence: the exercise feedback -----------------------------------------------------


@pytest.mark.process
def test_divergence_names_the_first_node_that_departs(synthetic):
    rate = f"rate({REQUESTS}[1m])"
    note = divergence(synthetic, f"sum({rate})", f"sum by (route) ({rate})")
    assert note == (
        f"your `{rate}` matches the reference's; then your `sum({rate})` drops route, "
        f"which the reference keeps: 1 series instead of 3"
    )
    note = divergence(
        synthetic, f"sum by (route) (rate({REQUESTS}[5m]))", f"sum by (route) ({rate})"
    )
    assert note is not None and note.startswith(f"your `{REQUESTS}[5m]` spans [5m], the ")
    assert "reference's [1m]" in note
    assert divergence(synthetic, f"sum by(route)({rate})", f"sum by (route) ({rate})") is None


@pytest.mark.process
def test_divergence_when_the_answer_lacks_a_step(synthetic):
    rate = f"rate({REQUESTS}[1m])"
    note = divergence(synthetic, rate, f"sum by (route) ({rate})")
    assert f"your `{rate}` matches the reference's" in note
    assert "the reference then applies `sum by (route)" in note and "12 series instead of 3" in note


@pytest.mark.process
def test_requests_by_route_feedback_names_the_node(synthetic):
    exercise = get("02.requests_by_route")
    assert exercise.check(exercise.solution, synthetic).ok
    with pytest.raises(ExerciseFailed) as info:
        exercise.check(f"sum by (method) (rate({REQUESTS}[1m]))", synthetic)
    message = str(info.value)
    assert "label route is missing" in message  # the existing, more specific hint stays first
    assert f"your `rate({REQUESTS}[1m])` matches the reference's" in message
    assert "keeps method, which the reference drops" in message


@pytest.mark.process
def test_cache_hit_ratio_feedback_names_the_division(synthetic):
    exercise = get("02.cache_hit_ratio")
    assert exercise.check(exercise.solution, synthetic).ok
    answer = (
        'rate(vrewcraft_thumbnail_requests_total{cache_status="hit"}[5m])'
        " / sum(rate(vrewcraft_thumbnail_requests_total[5m]))"
    )
    with pytest.raises(ExerciseFailed) as info:
        exercise.check(answer, synthetic)
    message = str(info.value)
    assert "returns 0 series" in message
    assert "Where it goes wrong: your `rate(" in message
    assert "the reference then applies `sum(…)`" in message
    assert "at your `… / …`: no series match" in message


@pytest.mark.parametrize(
    "query",
    [
        "1 + 2 * 3",
        "-explain_jobs_total",
        "vector(1)",
        "time() - 60",
        'absent(explain_jobs_total{worker="z"})',
        "topk(1, explain_jobs_total)",
        'count_values("jobs", round(explain_jobs_total))',
        'label_replace(explain_jobs_total, "who", "$1", "worker", "(.*)")',
        "quantile_over_time(0.9, explain_jobs_total[1m])",
        "predict_linear(explain_jobs_total[1m], 60)",
        "max_over_time(sum(rate(explain_jobs_total[10s]))[1m:5s] offset 1s)",
        "explain_jobs_total > bool 10",
        "explain_jobs_total and on (worker) explain_jobs_total > 0",
        "explain_jobs_total / ignoring (worker) group_left"
        " sum without (worker) (explain_jobs_total)",
        "explain_jobs_total[1m]",
        "scalar(sum(explain_jobs_total))",
    ],
)
@pytest.mark.process
def test_every_kind_of_node_gets_facts_and_an_explanation(synthetic, query):
    tree = explain(synthetic, query)
    for node in tree.nodes:
        assert node.explanation, node
        assert node.result_type in ("instant vector", "range vector", "scalar", "string"), node
        assert not node.error, node
        if node.result_type in ("instant vector", "range vector"):
            assert node.series is not None and len(node.values) == node.series
    assert len(tree._repr_html_()) > 100 and str(tree).startswith(tree.root.expr)


def test_unreachable_prometheus_says_so():
    from course_lib.prom import PrometheusUnreachable

    with pytest.raises(PrometheusUnreachable, match="not reachable"):
        explain(f"http://127.0.0.1:{free_port()}", "up")


# --- the seed's mistakes on the day of history ------------------------------------------------

HTTP_BUCKET = "vrewcraft_http_request_duration_seconds_bucket"
HTTP = "vrewcraft_http_requests_total"


def _live_series(day, name: str, offset: float, window: float = 300) -> int:
    """Count the day's series of ``name`` with 2+ samples in [offset - window, offset]."""
    first, last = math.ceil((offset - window) / history.STEP), math.floor(offset / history.STEP)
    return sum(
        int((~np.isnan(s.values[first : last + 1])).sum()) >= 2
        for s in history.series(name, instance=day.instance)
    )


@pytest.mark.stack
def test_history_unaggregated_p99_is_one_quantile_per_series(stack):
    day = stack.history_window()
    offset = history.event("thumbnail_incident").start + 10 * 60  # 19:50
    wrong = explain(stack, f"histogram_quantile(0.99, rate({HTTP_BUCKET}[5m]))", day.at(offset))
    kinds = _live_series(day, "vrewcraft_http_request_duration_seconds_count", offset)
    assert kinds > 5
    assert wrong.root.series == kinds
    assert {"method", "route", "status_code"} <= set(wrong.root.labels)
    assert wrong.node(f"rate({HTTP_BUCKET}[5m])").series == kinds * 9  # 8 bounds + Inf
    assert any("one quantile per series" in w for w in wrong.root.warnings)

    right = explain(
        stack, f"histogram_quantile(0.99, sum by (le) (rate({HTTP_BUCKET}[5m])))", day.at(offset)
    )
    summed = right.node(f"sum by (le) (rate({HTTP_BUCKET}[5m]))")
    assert (summed.series, summed.labels) == (9, ("le",))
    assert f"{kinds * 9} series → 9" in summed.explanation
    assert (right.root.series, right.root.labels) == (1, ())


@pytest.mark.stack
def test_history_ratio_without_sum_finds_no_match(stack):
    day = stack.history_window()
    at = day.at(history.event("error_burst").start + 10 * 60)  # 14:20
    errors = f'rate({HTTP}{{status_code=~"5.."}}[5m])'
    wrong = explain(stack, f"{errors} / sum(rate({HTTP}[5m]))", at)
    assert wrong.root.series == 0 and "no series match" in wrong.root.error
    assert wrong.root.children[0].series >= 1 and wrong.root.children[1].series == 1

    right = explain(stack, f"sum({errors}) / sum(rate({HTTP}[5m])) > 0.05", at)
    ratio = right.root.children[0]
    (_, errors_per_s), (_, all_per_s) = (c.values[0] for c in ratio.children)
    assert ratio.values[0][1] == pytest.approx(errors_per_s / all_per_s, rel=1e-9)
    assert right.root.series == 1  # the burst trips the 5 % error-rate alert


@pytest.mark.stack
def test_history_rate_of_sum_across_the_deploy(stack):
    day = stack.history_window()
    at = day.at(history.event("deploy").start + 150)  # 2.5 min after every counter restarted
    wrong = explain(stack, f"rate(sum({HTTP})[5m:15s])", at)
    assert wrong.node(f"sum({HTTP})[5m:15s]").resets >= 1
    right = explain(stack, f"sum(rate({HTTP}[5m]))", at)
    window = right.node(f"{HTTP}[5m]")
    assert window.resets >= 1 and "rate/increase correct for" in window.explanation
    assert wrong.root.values[0][1] > 1.5 * right.root.values[0][1]

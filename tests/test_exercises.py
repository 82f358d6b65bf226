"""Every exercise checker accepts the right answer and rejects typical wrong ones, for real.

PromQL and Number checks run against a throwaway real Prometheus started by
this module (it scrapes itself every second, plus a job whose target is down);
alert rules go through the real promtool.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from types import SimpleNamespace

import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

from course_lib import prom as prom_api
from course_lib.exercises import (
    BLANK,
    AlertRule,
    CheckResult,
    ExerciseFailed,
    ExerciseNotAnswered,
    ExerciseSetupError,
    MetricDefinition,
    Number,
    Predicate,
    PromQL,
    check,
    get,
    register,
    solution,
)
from course_lib.supervisor import free_port, http_ok, poll, stop_child

BUCKET = "prometheus_http_request_duration_seconds_bucket"
APPENDED = "prometheus_tsdb_head_samples_appended_total"


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    """Run a real Prometheus on a free port, scraping itself every 1s; yield a stack-like object."""
    # A missing binary fails (never skips): `make test` installs it.
    assert shutil.which("prometheus"), "prometheus binary missing: run `make test` to install it"
    tmp = tmp_path_factory.mktemp("prometheus")
    port, dead_port = free_port(), free_port()
    (tmp / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ['127.0.0.1:{port}']}}]
  - job_name: down
    static_configs: [{{targets: ['127.0.0.1:{dead_port}']}}]
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
        _wait_for_data(url, proc, tmp / "prometheus.log")
        yield SimpleNamespace(prometheus_url=url)
    finally:
        stop_child(proc)
        log.close()


def _wait_for_data(url: str, proc: subprocess.Popen, log_path) -> None:
    """Poll until Prometheus is ready and has 3+ self-scrapes (enough for rate over [1m])."""
    query = 'count_over_time(up{job="prometheus"}[1m]) >= 3 and on() count(up) == 2'

    def has_data() -> bool:
        # /-/ready first: its requests are also the data of the raw-counter test below.
        return http_ok(f"{url}/-/ready") and not prom_api.query(url, query).empty

    if poll(has_data, timeout=40, interval=0.2, alive=lambda: proc.poll() is None):
        return
    state = "exited early" if proc.poll() is not None else "had no data after 40 s"
    pytest.fail(f"prometheus {state}:\n{log_path.read_text()[-2000:]}")


def _fails(exercise, answer, stack=None) -> str:
    """Return the message of the ExerciseFailed that ``answer`` must raise."""
    with pytest.raises(ExerciseFailed) as info:
        exercise.check(answer, stack)
    return str(info.value)


# --- the mechanism ----------------------------------------------------------------------------


@pytest.mark.parametrize("blank", [BLANK, None, "", "   ", ...])
def test_unanswered_names_the_exercise_says_what_to_write_and_nudges(blank):
    with pytest.raises(ExerciseNotAnswered) as info:
        check("01.up_query", blank)
    text = str(info.value)
    assert "01.up_query" in text and "PromQL" in text and "Hint:" in text
    assert not isinstance(info.value, AssertionError)


def test_blank_and_failure_types():
    assert repr(BLANK) == "BLANK" and not BLANK
    assert issubclass(ExerciseFailed, AssertionError)


def test_unknown_exercise_suggests_close_ids():
    with pytest.raises(KeyError, match="01.up_query"):
        get("01.up_qery")


def test_ids_are_unique():
    with pytest.raises(ValueError, match="twice"):
        register(PromQL("01.up_query", "up"))


def test_result_renders_as_a_check_mark():
    result = CheckResult("01.x", True, "right")
    assert result.ok and bool(result)
    assert str(result) == "✅ 01.x: right"
    assert result._repr_markdown_() == "✅ **01.x** — right"


@pytest.mark.process
def test_example_catalog_solutions_pass(prom):
    for exercise_id in ("01.up_query", "01.scrape_rate", "02.thumbnail_histogram"):
        result = check(exercise_id, solution(exercise_id, prom), prom)
        assert result.ok, exercise_id
        assert result.message.startswith("right")


@pytest.mark.process
def test_stack_may_be_a_url_or_come_from_the_environment(prom, monkeypatch):
    assert check("01.up_query", 'up{job="prometheus"}', prom.prometheus_url).ok
    monkeypatch.setenv("COURSE_PROMETHEUS_URL", prom.prometheus_url)
    assert check("01.up_query", 'up{job="prometheus"}').ok


# --- (a) PromQL ---------------------------------------------------------------------------


@pytest.mark.process
def test_promql_rejects_too_many_series(prom):
    message = _fails(get("01.up_query"), "up", prom)
    assert "01.up_query" in message
    assert "returns 2 series, the expected one returns 1" in message


@pytest.mark.process
def test_promql_feedback_names_the_node_that_departs(prom):
    message = _fails(get("01.up_query"), "up", prom)
    assert "Where it goes wrong: your `up` returns 2 series instead of 1." in message
    message = _fails(get("01.scrape_rate"), f"rate({APPENDED}[1m])", prom)
    assert f"Where it goes wrong: your `{APPENDED}[1m]` holds" in message
    message = _fails(get("01.scrape_rate"), f'increase({APPENDED}{{type="float"}}[1m])', prom)
    assert "your `increase(…[1m])` stands where the reference has `rate(…[1m])`" in message
    assert "60× too big" in message  # the more specific hint is still there
    message = _fails(get("01.scrape_rate"), f'{APPENDED}{{type="float"}}[1m]', prom)
    assert "returns a range vector" in message
    assert "the reference then applies `rate(" in message and "returns an instant vector" in message


@pytest.mark.process
def test_promql_rejects_an_empty_result(prom):
    message = _fails(get("01.up_query"), 'up{job="prometheus"} == 0', prom)
    assert "returns 0 series" in message and "label matchers" in message


@pytest.mark.process
def test_promql_rejects_the_wrong_series(prom):
    message = _fails(get("01.up_query"), 'up{job="down"}', prom)
    assert 'job="prometheus"' in message and "not in your result" in message


@pytest.mark.process
def test_promql_rejects_different_values(prom):
    message = _fails(get("01.up_query"), 'up{job="prometheus"} * 2', prom)
    assert "values differ" in message and "you got 2, expected 1" in message


@pytest.mark.process
def test_promql_accepts_equivalent_queries(prom):
    exercise = get("01.scrape_rate")
    for answer in (
        f'rate({APPENDED}{{type="float"}}[1m])',
        f'sum by (job, instance) (rate({APPENDED}{{type="float"}}[1m]))',
        f'  rate({APPENDED}{{type="float", job="prometheus"}}[1m])  ',
        f'sum(rate({APPENDED}{{type="float"}}[1m]))',
    ):
        assert exercise.check(answer, prom).ok, answer


@pytest.mark.process
def test_promql_bare_counter_gets_the_counter_hint(prom):
    message = _fails(get("01.scrape_rate"), f'{APPENDED}{{type="float"}}', prom)
    assert "is a counter" in message and "rate(" in message


@pytest.mark.process
def test_promql_increase_instead_of_rate_gets_the_factor_hint(prom):
    message = _fails(get("01.scrape_rate"), f'increase({APPENDED}{{type="float"}}[1m])', prom)
    assert "60× too big" in message


@pytest.mark.process
def test_promql_extra_labels_that_split_a_series_are_rejected(prom):
    message = _fails(get("01.scrape_rate"), f"rate({APPENDED}[1m])", prom)
    assert "returns 2 series, the expected one returns 1" in message


@pytest.mark.process
def test_scrape_rate_judges_the_shape_the_task_asks_for(prom):
    exercise = get("01.scrape_rate")
    for answer in (  # right, written other ways
        f'sum(rate({APPENDED}{{type="float"}}[1m]))',
        f'sum by (job) (rate({APPENDED}{{type="float"}}[60s]))',
        f'increase({APPENDED}{{type="float"}}[1m]) / 60',
    ):
        assert exercise.check(answer, prom).ok, answer
    wrong = {  # irate agrees with rate on this steady counter: only the shape tells
        f'irate({APPENDED}{{type="float"}}[1m])': "last two samples",
        f'rate({APPENDED}{{type="float"}}[2m])': "last minute",
        f'sum(irate({APPENDED}{{type="float"}}[1m]))': "last two samples",
    }
    for answer, expected in wrong.items():
        assert expected in _fails(exercise, answer, prom), answer


@pytest.mark.process
def test_the_counter_hint_suggests_an_answer_the_check_accepts(prom):
    import re

    exercise = get("01.scrape_rate")
    message = _fails(exercise, f'{APPENDED}{{type="float"}}', prom)
    suggested = re.search(r"\((rate\(.+?\[1m\]\))", message).group(1)
    assert 'type="float"' in suggested
    assert exercise.check(suggested, prom).ok


@pytest.mark.process
def test_promql_short_window_uses_the_stacks_scrape_interval(prom):
    # The test Prometheus scrapes every 1s, so [2s] is too short and [4s] is not.
    message = _fails(get("01.scrape_rate"), f'rate({APPENDED}{{type="float"}}[2s])', prom)
    assert "[2s] spans only 2 scrape(s) at a 1s scrape interval" in message


QUANTILE = PromQL(
    "t.p90",
    f"histogram_quantile(0.9, sum by (le) (rate({BUCKET}[1m])))",
    nudge="Aggregate the buckets first.",
)


@pytest.mark.process
def test_promql_quantile_exercise(prom):
    assert QUANTILE.check(f"histogram_quantile(0.9, sum by (le) (rate({BUCKET}[1m])))", prom).ok
    assert QUANTILE.check(f"histogram_quantile(0.90, sum(rate({BUCKET}[1m])) by (le))", prom).ok
    message = _fails(QUANTILE, f"histogram_quantile(0.9, rate({BUCKET}[1m]))", prom)
    assert "one quantile per series" in message and "Result check" in message
    message = _fails(QUANTILE, f"histogram_quantile(0.9, sum(rate({BUCKET}[1m])))", prom)
    assert "drops the le label" in message
    message = _fails(QUANTILE, f"histogram_quantile(0.5, sum by (le) (rate({BUCKET}[1m])))", prom)
    assert "values differ" in message and "Aggregate the buckets first." in message


@pytest.mark.process
def test_promql_require_labels(prom):
    exercise = PromQL(
        "t.by_handler",
        "sum by (handler) (rate(prometheus_http_requests_total[1m]))",
        require_labels=["handler"],
    )
    assert exercise.check("sum(rate(prometheus_http_requests_total[1m])) by (handler)", prom).ok
    message = _fails(exercise, "sum(rate(prometheus_http_requests_total[1m]))", prom)
    assert "label handler is missing" in message
    message = _fails(exercise, "rate(prometheus_http_requests_total[1m])", prom)
    assert "code" in message and "instance" in message


@pytest.mark.process
def test_promql_range_vector_syntax_error_and_rejected_query(prom):
    exercise = get("01.up_query")
    assert "range vector" in _fails(exercise, 'up{job="prometheus"}[1m]', prom)
    assert "syntax error" in _fails(exercise, 'up{job="prometheus"', prom)
    message = _fails(exercise, "up / on() up", prom)
    assert "Prometheus rejected your query" in message
    assert "write the query as a string" in _fails(exercise, 1, prom)


@pytest.mark.process
def test_promql_hint_fails_even_when_numbers_match(prom):
    answer = "vector(1) or on() rate(go_goroutines[1m])"
    strict = PromQL("t.strict", "vector(1)")
    assert "numbers match right now, but" in _fails(strict, answer, prom)
    assert PromQL("t.lenient", "vector(1)", hints_fail=False).check(answer, prom).ok


@pytest.mark.process
def test_promql_hint_the_reference_shares_is_no_mistake(prom):
    exercise = PromQL("t.raw_counter", 'prometheus_http_requests_total{handler="/-/ready"}')
    assert exercise.check('prometheus_http_requests_total{handler="/-/ready"}', prom).ok


@pytest.mark.process
def test_promql_fixed_evaluation_time(prom):
    at = time.time() - 2
    exercise = PromQL("t.at", "time()", at=at, rel_tol=0, abs_tol=1e-3)
    assert exercise.check(f"vector({at!r})", prom).ok
    assert "values differ" in _fails(exercise, f"vector({at + 1!r})", prom)


@pytest.mark.process
def test_promql_setup_problems_are_not_the_learners_fault(prom):
    with pytest.raises(ExerciseSetupError, match="no data"):
        PromQL("t.empty", 'up{job="nope"}').check("up", prom)
    with pytest.raises(ExerciseSetupError, match="not reachable"):
        get("01.up_query").check("up", f"http://127.0.0.1:{free_port()}")


# --- (b) metric definitions ---------------------------------------------------------------------


def _hist(
    name="vrewcraft_thumbnail_duration_seconds",
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1),
    **kwargs,
):
    """Build a learner-style histogram in a scratch registry."""
    return Histogram(
        name, "Thumbnail latency.", buckets=buckets, registry=CollectorRegistry(), **kwargs
    )


def test_metric_accepts_the_right_histogram():
    exercise = get("02.thumbnail_histogram")
    assert exercise.check(_hist()).ok
    assert exercise.check(_hist(buckets=[0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, float("inf")])).ok
    assert "0.01 0.02 0.05" in exercise.check(solution("02.thumbnail_histogram")).message


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            lambda: Summary(
                "vrewcraft_thumbnail_duration_seconds", "x", registry=CollectorRegistry()
            ),
            "can't be aggregated",
        ),
        (
            lambda: Gauge(
                "vrewcraft_thumbnail_duration_seconds", "x", registry=CollectorRegistry()
            ),
            "needs a histogram",
        ),
        (lambda: _hist(name="thumbnail_duration_seconds"), "vrewcraft_ prefix"),
        (lambda: _hist(name="vrewcraft_thumbnail_duration_ms"), "seconds, not milliseconds"),
        (lambda: _hist(name="vrewcraft_thumbnail_latency_seconds"), "should be called"),
        (lambda: _hist(buckets=Histogram.DEFAULT_BUCKETS), "default buckets"),
        (lambda: _hist(buckets=[10, 20, 50, 100, 200, 500, 1000]), "milliseconds"),
        (lambda: _hist(buckets=[0.01, 0.05, 0.1, 0.2, 0.5, 1, 2]), "missing 0.02; extra 2"),
        (lambda: _hist(labelnames=["path"]), "unbounded values"),
        (lambda: _hist(labelnames=["cache_status"]), "not part of this metric"),
        (lambda: "vrewcraft_thumbnail_duration_seconds", "metric object"),
    ],
)
def test_metric_rejects(answer, expected):
    assert expected in _fails(get("02.thumbnail_histogram"), answer())


REQUESTS = MetricDefinition(
    "t.requests",
    type="counter",
    name="vrewcraft_http_requests_total",
    labelnames=["method", "route", "status_code"],
)


def test_metric_counter_labels_and_total_suffix():
    labels = ["method", "route", "status_code"]
    for name in ("vrewcraft_http_requests_total", "vrewcraft_http_requests"):
        assert REQUESTS.check(Counter(name, "Requests.", labels, registry=CollectorRegistry())).ok
    assert "label status_code is missing" in _fails(
        REQUESTS,
        Counter(
            "vrewcraft_http_requests_total",
            "Requests.",
            ["method", "route"],
            registry=CollectorRegistry(),
        ),
    )
    counter = Counter(
        "vrewcraft_http_requests_total", "Requests.", labels, registry=CollectorRegistry()
    )
    assert "labelled child" in _fails(REQUESTS, counter.labels("GET", "/api/videos", "200"))
    assert "only goes up" in _fails(
        REQUESTS,
        Gauge("vrewcraft_http_requests_total", "Requests.", labels, registry=CollectorRegistry()),
    )
    assert "help text" in _fails(
        REQUESTS, Counter("vrewcraft_http_requests_total", "", labels, registry=CollectorRegistry())
    )


# --- (c) numbers ----------------------------------------------------------------------------


@pytest.mark.process
def test_number_against_a_reference_query(prom):
    exercise = Number("t.targets", query="count(up)", rel_tol=0)
    assert solution_of(exercise, prom) == 2
    assert exercise.check(2, prom).ok
    assert exercise.check("2", prom).ok
    assert "too high" in _fails(exercise, 3, prom)
    assert "too low" in _fails(exercise, 1.5, prom)
    assert "not True/False" in _fails(exercise, True, prom)
    assert "is not a number" in _fails(exercise, "two", prom)
    assert "pandas table" in _fails(exercise, pd.DataFrame({"value": [2.0]}), prom)


def solution_of(exercise, stack):
    """Return the reference value of an unregistered exercise."""
    return exercise.reference(stack)


def test_number_tolerance_and_factor_hints():
    exercise = Number("t.ratio", value=0.25, rel_tol=0.02)
    assert exercise.check(0.254).ok
    assert "100× too big" in _fails(exercise, 25)
    assert "60× too small" in _fails(Number("t.rps", value=6.0), 0.1)


@pytest.mark.process
def test_number_reference_must_be_one_value(prom):
    with pytest.raises(ExerciseSetupError, match="returns 2 values"):
        Number("t.bad", query="up").check(1, prom)


# --- (d) alert rules --------------------------------------------------------------------------

P99 = (
    "histogram_quantile(0.99, sum by (le) "
    "(rate(vrewcraft_http_request_duration_seconds_bucket[5m])))"
)
HIGH_LATENCY = AlertRule(
    "t.high_api_latency",
    f"alert: HighAPILatency\nexpr: {P99} > 0.2\nfor: 5m\nlabels:\n  severity: warning\n",
    alert="HighAPILatency",
    threshold=0.2,
    op=">",
    for_="5m",
    labels={"severity": "warning"},
)


def _rule(expr=f"{P99} > 0.2", name="HighAPILatency", extra="for: 5m\nlabels: {severity: warning}"):
    """Write an alert rule the way a learner would."""
    return f"alert: {name}\nexpr: {expr}\n{extra}\n"


@pytest.mark.process
def test_alert_rule_accepts_the_right_rule_in_any_wrapping():
    assert HIGH_LATENCY.check(HIGH_LATENCY.solution).ok
    assert HIGH_LATENCY.check(_rule(extra="for: 300s\nlabels: {severity: warning}")).ok
    assert HIGH_LATENCY.check(_rule(expr=f"0.2 < {P99}")).ok
    whole_file = (
        "groups:\n  - name: latency\n    rules:\n      - alert: HighAPILatency\n"
        f"        expr: {P99} > 0.2\n        for: 5m\n"
        "        labels: {severity: warning}\n"
    )
    assert HIGH_LATENCY.check(whole_file).ok


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("alert: HighAPILatency\n  expr: [", "not valid YAML"),
        ("just some words", "expected an alerting rule"),
        (_rule(expr="rate(vrewcraft_http_requests_total) > 0.2"), "promtool check rules rejects"),
        (
            _rule(extra="for: 5 minutes\nlabels: {severity: warning}"),
            "promtool check rules rejects",
        ),
        (_rule(name="highapilatency"), "case-sensitive"),
        (_rule(name="ApiSlow"), "no alerting rule named HighAPILatency"),
        (_rule(expr=f"{P99} > 200"), "1000× too big"),
        (_rule(expr=f"{P99} > 0.5"), "threshold is 0.5"),
        (_rule(expr=f"{P99} < 0.2"), "comparison is <"),
        (_rule(expr=P99), "comparison with a number"),
        (_rule(extra="labels: {severity: warning}"), "add for: 5m"),
        (_rule(extra="for: 1m\nlabels: {severity: warning}"), "for: 1m"),
        (_rule(extra="for: 5m"), "add labels: {severity: warning}"),
        (_rule(extra="for: 5m\nlabels: {severity: critical}"), "label severity is 'critical'"),
        # the seed's un-aggregated quantile, and irate in an alert
        (
            _rule(
                expr="histogram_quantile(0.99, "
                "rate(vrewcraft_http_request_duration_seconds_bucket[5m])) > 0.2"
            ),
            "one quantile per series",
        ),
        (_rule(expr=P99.replace("rate(", "irate(") + " > 0.2"), "irate() sees only"),
        (42, "YAML string"),
    ],
)
@pytest.mark.process
def test_alert_rule_rejects(answer, expected):
    assert expected in _fails(HIGH_LATENCY, answer)


TARGET_DOWN = AlertRule(
    "t.target_down",
    "alert: TargetDown\nexpr: up == 0\nfor: 5m\nlabels: {severity: critical}",
    alert="TargetDown",
    promtool_tests="""
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="api", instance="a"}'
        values: '1 0x10'
    alert_rule_test:
      - eval_time: 8m
        alertname: TargetDown
        exp_alerts:
          - exp_labels: {job: api, instance: a, severity: critical}
""",
)


@pytest.mark.process
def test_alert_rule_unit_tests_run_in_promtool():
    assert "passes the rule tests" in TARGET_DOWN.check(TARGET_DOWN.solution).message
    assert "does not fire as expected" in _fails(
        TARGET_DOWN, "alert: TargetDown\nexpr: up < 0\nfor: 5m\nlabels: {severity: critical}"
    )
    assert "does not fire as expected" in _fails(
        TARGET_DOWN, "alert: TargetDown\nexpr: up == 0\nfor: 10m\nlabels: {severity: critical}"
    )


# --- (e) free-form ------------------------------------------------------------------------------


@pytest.mark.process
def test_predicate(prom):
    exercise = Predicate(
        "t.pull",
        solution="pull",
        expects="'pull' or 'push'",
        test=lambda a, _: a.lower() == "pull" or "Who opens the connection?",
        nudge="Think of who scrapes whom.",
    )
    assert exercise.check("Pull").ok
    assert "Who opens the connection?" in _fails(exercise, "push")
    with pytest.raises(ExerciseNotAnswered, match="'pull' or 'push'"):
        exercise.check(BLANK)
    boolean = Predicate("t.bool", solution=3, test=lambda a, _: a == 3, nudge="Count them.")
    assert "Count them." in _fails(boolean, 4)
    from_stack = Predicate(
        "t.url",
        solution_from_stack=lambda s: s.prometheus_url,
        test=lambda a, s: a == s.prometheus_url,
    )
    assert from_stack.check(from_stack.reference(prom), prom).ok


def test_a_failed_check_shows_its_message_not_a_traceback():
    failed = ExerciseFailed("❌ 01.x: the window is too short.\nWhere it goes wrong: …")
    assert failed._render_traceback_() == [
        "❌ 01.x: the window is too short.",
        "Where it goes wrong: …",
    ]
    blank = ExerciseNotAnswered("01.x is not answered yet: replace BLANK with a query.")
    assert blank._render_traceback_() == ["✍️ 01.x is not answered yet: replace BLANK with a query."]

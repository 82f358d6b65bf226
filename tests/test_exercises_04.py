"""The checks of notebook 04 accept right panels (however written) and reject the usual mistakes."""

from __future__ import annotations

import pytest
from grafana_foundation_sdk.builders import gauge, stat, timeseries

from course_lib.exercises import ExerciseFailed, ExerciseNotAnswered, check, get, solution
from course_lib.grafana.overview import DATASOURCE, panel_dict, query, thresholds

BUCKETS = "vrewcraft_http_request_duration_seconds_bucket"
P99 = f"histogram_quantile(0.99, sum by (le) (rate({BUCKETS}[$__rate_interval])))"
HITS = 'sum(rate(vrewcraft_thumbnail_requests_total{cache_status="hit"}[$__rate_interval]))'
ALL = "sum(rate(vrewcraft_thumbnail_requests_total[$__rate_interval]))"


def p99_panel(expr=P99, unit="s", threshold=0.2, description="Slow above 200 ms."):
    return (
        timeseries.Panel()
        .title("p99")
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .with_target(query(expr))
        .thresholds(thresholds((threshold, "red")))
    )


def ratio_panel(expr=f"{HITS} / {ALL}", unit="percentunit", threshold=0.8, kind=gauge):
    return (
        kind.Panel()
        .title("hit ratio")
        .description("Below 80% thumbnails are decoded again.")
        .datasource(DATASOURCE)
        .unit(unit)
        .with_target(query(expr))
        .thresholds(thresholds((threshold, "green"), base="red"))
    )


def rejected(exercise_id, answer, stack) -> str:
    with pytest.raises(ExerciseFailed) as info:
        check(exercise_id, answer, stack)
    return str(info.value)


# --- 04.rate_interval (no stack needed) ---------------------------------------------------


@pytest.mark.parametrize("answer", ["32s", 32, 32.0, " 32 s ", "32000ms"])
def test_rate_interval_accepts_the_value_written_any_way(answer):
    assert check("04.rate_interval", answer).ok
    assert solution("04.rate_interval") == "32s"


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        ("36s", "before Grafana rounds it"),
        ("38s", "round the interval first"),
        ("30s", "is $__interval"),
        (8, "only the floor"),
        ("1m", "not quite"),
        ("soon", "answer with a duration"),
        (True, "answer with a duration"),
    ],
)
def test_rate_interval_rejects_the_usual_mistakes(answer, hint):
    assert hint in rejected("04.rate_interval", answer, None)


def test_blank_panel_answer_names_what_to_write():
    with pytest.raises(ExerciseNotAnswered, match="timeseries.Panel"):
        check("04.p99_panel", None)


# --- the panel checks, on the live stack ---------------------------------------------------


@pytest.fixture(scope="module")
def live(stack):
    stack.wait_for("sum(rate(vrewcraft_thumbnail_requests_total[1m])) > 0", timeout=120)
    stack.wait_for(f"sum(rate({BUCKETS.replace('_bucket', '_count')}[1m])) > 0", timeout=120)
    return stack


@pytest.mark.stack
@pytest.mark.parametrize(
    "answer",
    [
        lambda: solution("04.p99_panel"),
        lambda: p99_panel(
            f"histogram_quantile(0.99, sum(rate({BUCKETS}[$__rate_interval])) by (le))"
        ),
        lambda: p99_panel(
            f'histogram_quantile(0.99, sum by (le) (rate({BUCKETS}{{route=~"$route"}}'
            "[$__rate_interval])))"
        ),
        lambda: panel_dict(p99_panel()),  # the panel's JSON instead of the builder
    ],
)
def test_p99_panel_accepts_right_panels(live, answer):
    result = check("04.p99_panel", answer(), live)
    assert result.ok and "lint clean, drawn" in result.message


@pytest.mark.stack
@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (
            lambda: p99_panel(f"histogram_quantile(0.99, rate({BUCKETS}[$__rate_interval]))"),
            "sum the buckets by le",
        ),
        (
            lambda: p99_panel(
                f"histogram_quantile(0.99, sum by (le, route) (rate({BUCKETS}[$__rate_interval])))"
            ),
            "Sum the buckets by le alone",
        ),
        (
            lambda: p99_panel(P99.replace("$__rate_interval", "5m")),
            "[$__rate_interval] instead of [5m]",
        ),
        (lambda: p99_panel(P99.replace("0.99", "0.95")), "99th percentile"),
        (lambda: p99_panel(P99.replace("0.99", "0.9")), "numbers differ"),
        (lambda: p99_panel(unit="ms"), "set unit('s')"),
        (lambda: p99_panel(threshold=200), "wrong unit"),
        (lambda: p99_panel(threshold=0.5), "threshold step at 0.2"),
        (lambda: p99_panel(description=""), "has no description"),
        (lambda: p99_panel(P99.replace("sum by (le) (", "sum by (le) ((")), "does not parse"),
        (lambda: ratio_panel(kind=stat), "build a timeseries panel"),
        (lambda: "histogram_quantile(0.99, ...)", "answer with a panel"),
    ],
)
def test_p99_panel_rejects_the_usual_mistakes(live, answer, hint):
    assert hint in rejected("04.p99_panel", answer(), live)


@pytest.mark.stack
@pytest.mark.parametrize(
    "answer",
    [
        lambda: solution("04.hit_ratio_panel"),
        lambda: ratio_panel(kind=stat),
        lambda: ratio_panel(
            "1 - sum(rate(vrewcraft_thumbnail_requests_total{cache_status='miss'}"
            f"[$__rate_interval])) / {ALL}"
        ),
    ],
)
def test_hit_ratio_panel_accepts_right_panels(live, answer):
    assert check("04.hit_ratio_panel", answer(), live).ok


@pytest.mark.stack
@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (lambda: ratio_panel("vrewcraft_thumbnail_cache_hit_ratio"), "from the counter"),
        (
            lambda: ratio_panel(
                'sum(rate(vrewcraft_thumbnail_requests_total{cache_status="miss"}'
                f"[$__rate_interval])) / {ALL}"
            ),
            "miss ratio",
        ),
        (lambda: ratio_panel(unit="percent"), "use 'percentunit'"),
        (lambda: ratio_panel(threshold=80), "wrong unit"),
        (
            lambda: ratio_panel(
                "sum by (cache_status) (rate(vrewcraft_thumbnail_requests_total[$__rate_interval]))"
                " / ignoring(cache_status) group_left " + ALL
            ),
            "Sum both rates",
        ),
        (lambda: p99_panel(), "build a gauge or stat panel"),
    ],
)
def test_hit_ratio_panel_rejects_the_usual_mistakes(live, answer, hint):
    assert hint in rejected("04.hit_ratio_panel", answer(), live)


def test_every_04_exercise_has_a_nudge():
    for exercise_id in ("04.p99_panel", "04.rate_interval", "04.hit_ratio_panel"):
        assert get(exercise_id).nudge

"""Notebook 03's exercises, checked on the day of history: right answers in several spellings
pass, the classic wrong ones fail with the hint that names the mistake."""

from __future__ import annotations

import pytest

from course_lib.exercises import ExerciseFailed, get, solution
from course_lib.exercises.catalog_03 import reads_metric, uses_function

HTTP = "vrewcraft_http_requests_total"
BUCKETS = "vrewcraft_http_request_duration_seconds_bucket"
THUMBS = "vrewcraft_thumbnail_requests_total"
HIT = f'{THUMBS}{{cache_status="hit"}}'
MISS = f'{THUMBS}{{cache_status="miss"}}'


def test_mistake_detectors_read_the_parse_tree():
    assert uses_function("irate")("sum by (route) (irate(x_total[5m]))")
    assert not uses_function("irate")('sum(rate(x_total{f="irate("}[5m]))')
    assert reads_metric("g")("avg_over_time(g[5m]) * 2")
    assert not reads_metric("g")("sum(rate(g_total[5m]))")
    assert not uses_function("rate")("sum(rate(x[5m])")  # does not parse


CASES = {
    "03.api_p99": {
        "right": [
            f"histogram_quantile(0.99, sum without (method, route, status_code, instance, job) "
            f"(rate({BUCKETS}[5m])))",
            f"histogram_quantile(0.99, sum by (le) (increase({BUCKETS}[5m])))",
        ],
        "wrong": {
            f"histogram_quantile(0.99, rate({BUCKETS}[5m]))": "un-aggregated",
            f"histogram_quantile(0.99, sum by (le) ({BUCKETS}))": "counter",
            f"histogram_quantile(0.99, sum by (le) (rate({BUCKETS}[30s])))": "scrape",
            f"histogram_quantile(0.95, sum by (le) (rate({BUCKETS}[5m])))": "values differ",
            f"histogram_quantile(99, sum by (le) (rate({BUCKETS}[5m])))": "between 0 and 1",
        },
    },
    "03.route_rates": {
        "right": [
            f"sum without (method, status_code, instance, job) (rate({HTTP}[5m]))",
            f"sum by (route) (increase({HTTP}[5m])) / 300",
        ],
        "wrong": {
            f"sum by (route) (irate({HTTP}[5m]))": "irate",
            f"sum by (route) ({HTTP})": "counter",
            f"sum(rate({HTTP}[5m]))": "route",
            f"sum by (route) (increase({HTTP}[5m]))": "300×",
        },
    },
    "03.hit_ratio": {
        "right": [
            f"sum(rate({HIT}[5m])) / (sum(rate({HIT}[5m])) + sum(rate({MISS}[5m])))",
            f"1 - sum(rate({MISS}[5m])) / sum(rate({THUMBS}[5m]))",
        ],
        "wrong": {
            "vrewcraft_thumbnail_cache_hit_ratio": "in-process gauge",
            "avg_over_time(vrewcraft_thumbnail_cache_hit_ratio[5m])": "in-process gauge",
            f"sum({HIT}) / sum({THUMBS})": "counter",
            f"sum(rate({HIT}[5m])) / sum(rate({MISS}[5m]))": "values differ",
        },
    },
    "03.error_ratio": {
        "right": [
            f'sum(increase({HTTP}{{status_code=~"5.."}}[5m])) / sum(increase({HTTP}[5m]))',
            f'1 - sum(rate({HTTP}{{status_code!~"5.."}}[5m])) / sum(rate({HTTP}[5m]))',
        ],
        "wrong": {
            f'sum({HTTP}{{status_code=~"5.."}}) / sum({HTTP})': "counter",
            f'rate({HTTP}{{status_code=~"5.."}}[5m]) / rate({HTTP}[5m])': "series",
            f'sum(rate({HTTP}{{status_code=~"4..|5.."}}[5m])) / sum(rate({HTTP}[5m]))': "differ",
        },
    },
}


@pytest.mark.stack
@pytest.mark.parametrize("exercise_id", sorted(CASES))
def test_day_exercises_accept_right_answers_and_name_the_mistake_in_wrong_ones(stack, exercise_id):
    exercise = get(exercise_id)
    assert exercise.check(solution(exercise_id, stack), stack).ok
    for answer in CASES[exercise_id]["right"]:
        assert exercise.check(answer, stack).ok, answer
    for answer, hint in CASES[exercise_id]["wrong"].items():
        with pytest.raises(ExerciseFailed, match=hint):
            exercise.check(answer, stack)


@pytest.mark.stack
def test_incident_minutes_counts_the_query_not_the_script(stack):
    from course_lib import history

    exercise = get("03.incident_minutes")
    minutes = solution("03.incident_minutes", stack)
    event = history.event("thumbnail_incident")
    assert 20 <= minutes <= 60 and minutes != (event.end - event.start) / 60
    assert exercise.check(minutes, stack).ok
    assert exercise.check(minutes + 1, stack).ok  # another alignment of the minute grid
    wrong = {
        (event.end - event.start) / 60: "scripted event",
        minutes * 60: "seconds",
        minutes + 10: "too many",
        minutes - 10: "too few",
        "twelve": "number of minutes",
        float("nan"): "NaN",
    }
    for answer, hint in wrong.items():
        with pytest.raises(ExerciseFailed, match=hint):
            exercise.check(answer, stack)


#: One wrong answer per PromQL exercise, and the node its feedback must name.
NODE_FEEDBACK = {
    "03.api_p99": (
        f"histogram_quantile(0.99, rate({BUCKETS}[5m]))",
        f"your `rate({BUCKETS}[5m])` matches the reference's; the reference then applies "
        "`sum by (le) (…)`, which yours doesn't",
    ),
    "03.route_rates": (
        f"sum(rate({HTTP}[5m]))",
        f"then your `sum(rate({HTTP}[5m]))` drops route, which the reference keeps",
    ),
    "03.hit_ratio": (
        f"sum(rate({HIT}[5m])) / sum(rate({MISS}[5m]))",
        f"your `{MISS}[5m]` holds 1 series instead of 2",
    ),
    "03.error_ratio": (
        f'rate({HTTP}{{status_code=~"5.."}}[5m]) / rate({HTTP}[5m])',
        "the reference then applies `sum(…)`, which yours doesn't",
    ),
}


@pytest.mark.stack
@pytest.mark.parametrize("exercise_id", sorted(NODE_FEEDBACK))
def test_day_exercises_name_the_node_where_a_wrong_answer_departs(stack, exercise_id):
    answer, node = NODE_FEEDBACK[exercise_id]
    with pytest.raises(ExerciseFailed) as info:
        get(exercise_id).check(answer, stack)
    message = str(info.value)
    assert "Where it goes wrong: " in message and node in message, message

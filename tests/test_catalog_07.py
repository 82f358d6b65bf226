"""Exercises of notebook 07 reject usual wrong answers and accept right ones written otherwise."""

from __future__ import annotations

import time

import pytest

from course_lib import scale
from course_lib.exercises import ExerciseFailed, ExerciseNotAnswered, get, solution
from course_lib.traffic import TrafficRunner

# --- 07.series_count ---------------------------------------------------------------------------


@pytest.mark.parametrize("right", [528, "528", "528.0", 528.0, " 5_28 "])
def test_series_count_accepts_the_number_however_written(right):
    assert get("07.series_count").check(right).ok


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (48, "label combinations"),  # 2 * 6 * 4
        (384, "_sum and _count"),  # buckets only
        (432, "_sum and _count"),  # buckets and +Inf
        (12, "multiply"),  # 2 + 6 + 4
        (132, "multiply"),  # (2 + 6 + 4) * 11
        (1000, "multiply the values"),
        (528.5, "whole number"),
        ("many", "whole number"),
        (True, "whole number"),
    ],
)
def test_series_count_rejects_miscounts_with_the_reason(wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        get("07.series_count").check(wrong)


def test_series_count_blank_gives_the_nudge():
    from course_lib.exercises import BLANK

    with pytest.raises(ExerciseNotAnswered, match="several series per combination"):
        get("07.series_count").check(BLANK)


# --- 07.ha_relabel -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "right",
    [
        {"action": "labeldrop", "regex": "replica"},
        {"action": "LabelDrop", "regex": "(replica)"},
        "action: labeldrop\nregex: replica",
        "- action: labeldrop\n  regex: replica|__replica__",
        [{"regex": "repl.ca", "action": "labeldrop"}],
    ],
)
def test_ha_relabel_accepts_every_rule_that_drops_only_replica(right):
    assert get("07.ha_relabel").check(right).ok


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        ({"action": "drop", "source_labels": ["replica"], "regex": "b"}, "whole series"),
        ({"action": "keep", "regex": "a"}, "whole series"),
        ({"action": "labelkeep", "regex": "replica"}, "labelkeep keeps only"),
        ({"action": "labeldrop", "regex": "cluster"}, "does not match the name replica"),
        ({"action": "labeldrop", "regex": ".*"}, "also drops"),
        ({"action": "labeldrop", "regex": "replica|cluster"}, "also drops cluster"),
        ({"action": "replace", "target_label": "replica", "replacement": ""}, "labeldrop"),
        ({"action": "labeldrop", "regex": "replica("}, "does not compile"),
        ("labeldrop replica", "one relabel rule as a dict"),
        ("action: [labeldrop", "not valid YAML"),
    ],
)
def test_ha_relabel_rejects_rules_that_lose_samples_or_labels(wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        get("07.ha_relabel").check(wrong)


# --- 07.recording_rule: the name is checked before anything is evaluated ----------------------


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("vrewcraft_http_requests_rate5m", "level:metric:operations"),
        ("Job:vrewcraft_http_requests:rate5m", "level:metric:operations"),
        ("job:vrewcraft_http_requests_total:rate5m", "drop _total"),
        ("job:http_requests:rate5m", "vrewcraft_http_requests, not http_requests"),
        ("instance:vrewcraft_http_requests:rate5m", "starts with job:, not instance:"),
        ("job:vrewcraft_http_requests:rate1m", "rate5m for rate"),
        ("job:vrewcraft_http_requests:sum", "rate5m for rate"),
    ],
)
def test_recording_rule_names_are_read_against_the_expression(name, hint):
    rule = {"record": name, "expr": "sum by (job) (rate(vrewcraft_http_requests_total[5m]))"}
    with pytest.raises(ExerciseFailed, match=hint):
        get("07.recording_rule").check(rule, "http://127.0.0.1:1")  # never reached


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        ("record: job:x:rate5m\n  expr: [", "not valid YAML"),
        ({"record": "job:vrewcraft_http_requests:rate5m"}, "two keys"),
        ("sum by (job) (rate(vrewcraft_http_requests_total[5m]))", "two keys"),
    ],
)
def test_recording_rule_needs_a_rule(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        get("07.recording_rule").check(answer, "http://127.0.0.1:1")


@pytest.mark.stack
def test_recording_rule_expression_is_evaluated_on_the_live_stack(stack):
    stack.wait_for("sum by (job) (rate(vrewcraft_http_requests_total[5m]))", timeout=60)
    exercise = get("07.recording_rule")
    assert exercise.check(solution("07.recording_rule"), stack).ok
    written_otherwise = (
        "- record: job:vrewcraft_http_requests:rate5m\n"
        "  expr: sum(rate(vrewcraft_http_requests_total[5m])) by (job)\n"
    )
    assert exercise.check(written_otherwise, stack).ok
    for expr, hint in (
        ("sum(rate(vrewcraft_http_requests_total[5m]))", "expression is not"),
        ("sum by (job) (vrewcraft_http_requests_total)", "expression is not"),
    ):
        rule = {"record": "job:vrewcraft_http_requests:rate5m", "expr": expr}
        with pytest.raises(ExerciseFailed, match=hint):
            exercise.check(rule, stack)


# --- 07.pooled_p99: needs a replica scraped through file SD ------------------------------------


@pytest.mark.stack
def test_pooled_p99_against_a_file_discovered_replica(stack):
    cfg = stack.config
    try:
        scale.start(["replica-1"], cfg)
        scale.set_replica_targets(["replica-1"], cfg)
        stack.wait_for('up{pod="replica-1"} == 1', timeout=40)
        mix = {"list_videos": 1.0, "get_video": 1.0}
        with TrafficRunner(cfg.url("replica-1"), rate=20, duration=0, mix=mix):
            time.sleep(4)  # two scrapes with traffic
        bucket = 'vrewcraft_http_request_duration_seconds_bucket{job="vrewcraft-replicas"}'
        stack.wait_for(f"sum(rate({bucket}[1m])) > 0", timeout=20)
        exercise = get("07.pooled_p99")
        assert exercise.check(solution("07.pooled_p99"), stack).ok
        assert exercise.check(
            f"histogram_quantile(0.99, sum(rate({bucket}[1m])) by (le))", stack
        ).ok
        for wrong in (
            # averaged per-replica quantiles: with one replica the number even agrees
            f"avg(histogram_quantile(0.99, sum by (instance, le) (rate({bucket}[1m]))))",
            f"histogram_quantile(0.99, sum(rate({bucket}[1m])))",  # le dropped
            f"histogram_quantile(0.5, sum by (le) (rate({bucket}[1m])))",  # the median
        ):
            with pytest.raises(ExerciseFailed):
                exercise.check(wrong, stack)

        # Removing the target from the file removes it from Prometheus, no restart.
        scale.set_replica_targets([], cfg)
        stack.wait_for('up{pod="replica-1"}', lambda df: df.empty, timeout=40)
    finally:
        scale.stop(scale.REPLICAS, cfg)
    assert scale.running(cfg) == []

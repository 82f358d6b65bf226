"""Each classic PromQL mistake is recognised; the correct forms get no hint."""

from __future__ import annotations

import pytest

from course_lib.promql_hints import CODES, Hint, alert_hints, hints, metric_kind

B = "vrewcraft_http_request_duration_seconds_bucket"
C = "vrewcraft_http_requests_total"
SUM = "vrewcraft_http_request_duration_seconds_sum"
COUNT = "vrewcraft_http_request_duration_seconds_count"

WRONG = [
    # the seed's form: one quantile per series instead of the service's p99
    (f"histogram_quantile(0.99, rate({B}[5m]))", "quantile-not-aggregated"),
    (f"histogram_quantile(0.99, sum(rate({B}[5m])))", "quantile-drops-le"),
    (f"histogram_quantile(0.99, sum by (route) (rate({B}[5m])))", "quantile-drops-le"),
    (f"histogram_quantile(0.99, sum without (le) (rate({B}[5m])))", "quantile-drops-le"),
    (f"histogram_quantile(99, sum by (le) (rate({B}[5m])))", "quantile-phi-out-of-range"),
    (f"histogram_quantile(0.99, sum by (le) (rate({SUM}[5m])))", "quantile-not-buckets"),
    ("histogram_quantile(0.5, vrewcraft_websocket_connections)", "quantile-not-buckets"),
    (f"sum(rate({B}[5m]))", "bucket-without-le"),
    (f"sum by (route) (rate({B}[5m]))", "bucket-without-le"),
    (f"rate(sum({C})[5m:])", "rate-of-sum"),
    (f"increase(sum by (route) ({C})[1h:1m])", "rate-of-sum"),
    ("rate(vrewcraft_websocket_connections[5m])", "rate-of-gauge"),
    ("irate(vrewcraft_memory_usage_bytes[1m])", "rate-of-gauge"),
    ("increase(vrewcraft_ffmpeg_jobs_active[1h])", "rate-of-gauge"),
    ("rate(vrewcraft_ffmpeg_jobs_active[5m:30s])", "rate-of-gauge"),
    (f"delta({C}[5m])", "delta-of-counter"),
    (C, "counter-without-rate"),
    (f"sum by (route) ({C})", "counter-without-rate"),
    (f"{C} - {C} offset 1h", "counter-without-rate"),
    (f"{SUM} / {COUNT}", "counter-without-rate"),
    (f"rate({C}[10s])", "range-too-short"),
    (f"rate({C}[5s])", "range-too-short"),
    ("avg_over_time(vrewcraft_websocket_connections[15s])", "range-too-short"),
    (
        f"avg(histogram_quantile(0.99, sum by (le, instance) (rate({B}[5m]))))",
        "aggregated-quantile",
    ),
    ('avg(rpc_duration_seconds{quantile="0.99"})', "aggregated-quantile"),
    (f"sum(rate({C}[5m])", "syntax-error"),
    (f"rate({C})", "syntax-error"),
    ("", "syntax-error"),
    ("SELECT * FROM metrics", "syntax-error"),
]

RIGHT = [
    f"histogram_quantile(0.99, sum by (le) (rate({B}[5m])))",
    f"histogram_quantile(0.99, sum by (le, route) (rate({B}[5m])))",
    f"histogram_quantile(0.99, sum by (route, le) (rate({B}[5m])))",
    f"histogram_quantile(0.99, sum without (method, status_code, instance) (rate({B}[5m])))",
    f"histogram_quantile(0.5, sum(rate({B}[5m])) by (le))",
    f"sum by (le) (rate({B}[5m]))",
    # the Apdex/SLO idiom pins one bucket, so summing it without le is fine
    f'sum(rate({B}{{le="0.1"}}[5m])) / sum(rate({COUNT}[5m]))',
    f"rate({C}[1m])",
    f"sum by (route) (rate({C}[5m]))",
    f"sum(rate({C}[5m])) by (route)",
    f"rate({C}[5m:])",
    f"sum(increase({C}[1h]))",
    f'sum(rate({C}{{status_code=~"5.."}}[5m])) / sum(rate({C}[5m]))',
    f"rate({SUM}[5m]) / rate({COUNT}[5m])",
    "up",
    'up{job="prometheus"} == 0',
    "vrewcraft_websocket_connections",
    "deriv(vrewcraft_memory_usage_bytes[10m])",
    "max_over_time(vrewcraft_ffmpeg_jobs_active[5m])",
    f"count({C})",
    f"count by (route) ({C})",
    f"absent({C})",
    f"topk(3, sum by (route) (rate({C}[5m])))",
    f"{C}[5m]",  # raw samples, looked at on purpose
    "vrewcraft_memory_usage_bytes > 1024 * 1024 * 1024",
]


@pytest.mark.parametrize(("query", "code"), WRONG)
def test_mistake_is_recognised(query, code):
    found = hints(query)
    assert found, f"no hint for {query!r}"
    assert found[0].code == code, [h.code for h in found]
    assert found[0].message and "\n" not in found[0].message


@pytest.mark.parametrize("query", RIGHT)
def test_correct_form_gets_no_hint(query):
    assert hints(query) == []


def test_quantile_hint_explains_and_shows_the_fix():
    (hint,) = hints(f"histogram_quantile(0.99, rate({B}[5m]))")
    assert "one quantile per series" in hint.message
    assert f"sum by (le) (rate({B}[5m]))" in hint.message
    assert hint.expr.startswith("histogram_quantile(0.99")


def test_range_window_is_judged_against_the_scrape_interval():
    assert hints(f"rate({C}[1m])", scrape_interval=5) == []
    assert hints(f"rate({C}[20s])", scrape_interval=5) == []
    assert [h.code for h in hints(f"rate({C}[1m])", scrape_interval=30)] == ["range-too-short"]
    (hint,) = hints(f"rate({C}[10s])", scrape_interval=5)
    assert "[10s]" in hint.message and "[20s]" in hint.message


def test_irate_is_only_a_mistake_in_alerts():
    query = f"sum(irate({C}[1m])) > 10"
    assert hints(query) == []
    assert [h.code for h in hints(query, for_alert=True)] == ["irate-in-alert"]
    assert [h.code for h in alert_hints(query)] == ["irate-in-alert"]
    assert alert_hints(f"sum(rate({C}[5m])) > 10") == []


def test_syntax_error_carries_the_parser_message():
    (hint,) = hints(f"sum(rate({C}[5m])")
    assert hint.code == "syntax-error"
    assert "unclosed left parenthesis" in hint.message


def test_metric_types_override_naming_conventions():
    assert [h.code for h in hints("rate(jobs_done[5m])")] == ["rate-of-gauge"]
    assert hints("rate(jobs_done[5m])", metric_types={"jobs_done": "counter"}) == []
    assert hints("queue_total", metric_types={"queue_total": "gauge"}) == []
    assert hints("rate(latency_count[5m])", metric_types={"latency": "summary"}) == []
    # a native histogram has no _bucket series and needs no sum by (le)
    assert (
        hints("histogram_quantile(0.9, rate(latency[5m]))", metric_types={"latency": "histogram"})
        == []
    )


def test_metric_kind_by_name():
    for name in (C, "x_count", "x_sum", "x_bucket", "process_cpu_seconds_total"):
        assert metric_kind(name) == "counter"
    for name in ("up", "vrewcraft_thumbnail_cache_hit_ratio", "vrewcraft_db_pool_connections"):
        assert metric_kind(name) == "gauge"
    assert metric_kind(None) is None


def test_name_given_as_matcher_is_recognised():
    assert [h.code for h in hints('rate({__name__="vrewcraft_websocket_connections"}[5m])')] == [
        "rate-of-gauge"
    ]


def test_several_mistakes_come_most_specific_first():
    codes = [h.code for h in hints(f"histogram_quantile(0.99, sum(rate({B}[2s])))")]
    assert codes == ["quantile-drops-le", "range-too-short"]


def test_hint_api():
    hint = Hint("range-too-short", "window too short", "rate(x_total[2s])")
    assert str(hint) == "window too short"
    assert hint == Hint("range-too-short", "window too short")  # expr is not identity
    assert {code for _, code in WRONG} | {"irate-in-alert"} == set(CODES)

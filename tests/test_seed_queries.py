"""Every PromQL expression of the seed tutorial runs against the day of history.

The expressions are copied from the seed tutorial "Prometheus + Grafana monitoring":
its list of key queries (part 3.4), its dashboard's panel targets (part 3.3) and its
alert rules (part 4.2, the rules that go with the Alertmanager setup of part 4.1).
``nodejs_*`` metrics have no Python twin; they are mapped to the catalog's
``vrewcraft_memory_usage_bytes{type}`` (the mapping is the only edit). Each expression
must be accepted and return data at a time of the day where it has something to say;
each alert must fire where the day's script says it should.
"""

from __future__ import annotations

import pytest

from course_lib import history

H = 3600
INCIDENT = history.event("thumbnail_incident").start + 10 * 60  # 19:50
BURST = history.event("error_burst").start + 10 * 60  # 14:20
AFTER_DEPLOY = history.event("deploy").end + 60  # 10:31:15, the cache is cold again

#: Node.js heap gauges -> the Python service's memory gauges (same job and instance).
NODEJS = {
    "nodejs_heap_size_used_bytes / nodejs_heap_size_total_bytes": (
        'vrewcraft_memory_usage_bytes{type="data"} '
        '/ ignoring (type) vrewcraft_memory_usage_bytes{type="vms"}'
    ),
    "nodejs_heap_size_used_bytes{job='vrewcraft-backend'}": (
        "vrewcraft_memory_usage_bytes{job='vrewcraft-backend',type=\"data\"}"
    ),
}

# Part 3.4: the key queries.
KEY_QUERIES = [
    "histogram_quantile(0.99, rate(vrewcraft_http_request_duration_seconds_bucket[5m]))",
    "histogram_quantile(0.99, rate(vrewcraft_http_request_duration_seconds_bucket"
    '{route="/api/upload"}[5m]))',
    "rate(vrewcraft_http_requests_total[5m])",
    'sum(rate(vrewcraft_http_requests_total{status_code=~"5.."}[5m])) '
    "/ sum(rate(vrewcraft_http_requests_total[5m]))",
    "histogram_quantile(0.99, rate(vrewcraft_thumbnail_duration_seconds_bucket[5m]))",
    "vrewcraft_thumbnail_cache_hit_ratio",
    "rate(vrewcraft_thumbnail_requests_total[5m])",
    'rate(vrewcraft_ffmpeg_duration_seconds_sum{operation="trim"}[5m]) '
    '/ rate(vrewcraft_ffmpeg_duration_seconds_count{operation="trim"}[5m])',
    "rate(vrewcraft_ffmpeg_errors_total[5m])",
    "vrewcraft_ffmpeg_jobs_active",
    "process_resident_memory_bytes",
    "rate(process_cpu_seconds_total[5m]) * 100",
    "nodejs_heap_size_used_bytes / nodejs_heap_size_total_bytes",
    'vrewcraft_db_pool_connections{state="total"}',
    'vrewcraft_db_pool_connections{state="idle"}',
    "vrewcraft_websocket_connections",
]

# Part 3.3: the dashboard's panel targets.
DASHBOARD = [
    "histogram_quantile(0.99, rate(vrewcraft_http_request_duration_seconds_bucket[5m]))",
    "histogram_quantile(0.95, rate(vrewcraft_http_request_duration_seconds_bucket[5m]))",
    "histogram_quantile(0.50, rate(vrewcraft_http_request_duration_seconds_bucket[5m]))",
    "histogram_quantile(0.99, rate(vrewcraft_thumbnail_duration_seconds_bucket[5m]))",
    "sum(rate(vrewcraft_http_requests_total[5m])) by (route)",
    "vrewcraft_thumbnail_cache_hit_ratio",
    "vrewcraft_ffmpeg_jobs_active",
    "process_resident_memory_bytes{job='vrewcraft-backend'}",
    "nodejs_heap_size_used_bytes{job='vrewcraft-backend'}",
    'sum(rate(vrewcraft_http_requests_total{status_code=~"5.."}[5m]))',
    "sum(rate(vrewcraft_ffmpeg_errors_total[5m]))",
]

# Part 4.2: the alert rules, and when in the day each should fire (None: never today).
ALERTS = {
    "HighAPILatency": (
        "histogram_quantile(0.99, rate(vrewcraft_http_request_duration_seconds_bucket[5m])) > 0.2",
        BURST,
    ),
    "HighThumbnailLatency": (
        "histogram_quantile(0.99, rate(vrewcraft_thumbnail_duration_seconds_bucket[5m])) > 0.05",
        INCIDENT,
    ),
    "HighErrorRate": (
        'sum(rate(vrewcraft_http_requests_total{status_code=~"5.."}[5m])) '
        "/ sum(rate(vrewcraft_http_requests_total[5m])) > 0.05",
        BURST,
    ),
    "HighMemoryUsage": ("process_resident_memory_bytes > 1073741824", None),
    "FFmpegErrorSpike": ("rate(vrewcraft_ffmpeg_errors_total[5m]) > 0.1", INCIDENT),
    "LowCacheHitRatio": ("vrewcraft_thumbnail_cache_hit_ratio < 0.8", AFTER_DEPLOY),
}

COMPARISONS = (" > ", " < ")


def _python(expr: str) -> str:
    return NODEJS.get(expr, expr)


def _left_side(expr: str) -> str:
    for op in COMPARISONS:
        if op in expr:
            return expr.rsplit(op, 1)[0]
    return expr


@pytest.mark.stack
@pytest.mark.parametrize(
    "expr",
    sorted(set(KEY_QUERIES + DASHBOARD)),
    ids=lambda e: e[:60],
)
def test_every_seed_query_returns_data_on_the_day(stack, expr):
    day = stack.history_window()
    # Evening peak with the incident: every metric of the catalog is moving.
    df = stack.query(_python(expr), time=day.at(INCIDENT))
    assert not df.empty, f"{expr} returned nothing at 19:50"
    assert df["value"].notna().any(), f"{expr} returned only NaN"


@pytest.mark.stack
@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_every_seed_alert_expression_runs_and_fires_when_the_day_says(stack, alert):
    expr, fires_at = ALERTS[alert]
    day = stack.history_window()
    assert not stack.query(_left_side(expr), time=day.at(12 * H)).empty
    quiet = stack.query(expr, time=day.at(6 * H))  # a quiet morning: nothing should fire
    if alert == "HighAPILatency":
        # The seed's un-aggregated p99 fires per series: uploads take seconds by nature, so
        # their series fires all day. Aggregated, the service's p99 is quiet.
        assert set(quiet["route"]) == {"/api/upload"}, quiet
        fixed = expr.replace("rate(", "sum by (le) (rate(").replace("[5m]))", "[5m])))")
        assert stack.query(fixed, time=day.at(6 * H)).empty
    else:
        assert quiet.empty, f"{alert} fires at 06:00:\n{quiet}"
    if fires_at is None:
        # Never during the whole day (RSS stays near 250 MB): the rule runs, and is quiet.
        assert stack.query(f"max_over_time(({expr})[1d:1m])", time=day.end - 60).empty
    else:
        assert not stack.query(expr, time=day.at(fires_at)).empty, (
            f"{alert} does not fire at {history.clock(fires_at)}"
        )

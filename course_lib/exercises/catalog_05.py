"""Exercises of notebook 05_alerting (one ``register`` call each).

Alert rules are checked by the real promtool (``check rules``, then ``test rules``
against the cases below); the routing exercise by the real amtool.
"""

from __future__ import annotations

from typing import Any

import yaml

from .core import register
from .kinds import AlertRule, Predicate

# --- 05.error_rate_rule: HighErrorRate from counters, /api routes only -------------------------

register(
    AlertRule(
        "05.error_rate_rule",
        """\
alert: HighErrorRate
expr: |
  sum(rate(vrewcraft_http_requests_total{route=~"/api/.*", status_code=~"5.."}[5m]))
    /
  sum(rate(vrewcraft_http_requests_total{route=~"/api/.*"}[5m]))
    > 0.05
for: 5m
labels:
  severity: critical
""",
        alert="HighErrorRate",
        threshold=0.05,
        op=">",
        for_="5m",
        labels={"severity": "critical"},
        scrape_interval=2.0,
        # 10% of /api/videos fails from minute 10, while 1000 /metrics scrapes a minute
        # succeed: counted in, they dilute the ratio under 5% and the alert never fires.
        promtool_tests="""
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'vrewcraft_http_requests_total{route="/api/videos", status_code="200"}'
        values: '0+100x10 1090+90x20'
      - series: 'vrewcraft_http_requests_total{route="/api/videos", status_code="500"}'
        values: '0+0x10 10+10x20'
      - series: 'vrewcraft_http_requests_total{route="/metrics", status_code="200"}'
        values: '0+1000x30'
    alert_rule_test:
      - eval_time: 10m
        alertname: HighErrorRate
        exp_alerts: []
      - eval_time: 17m
        alertname: HighErrorRate
        exp_alerts: []
      - eval_time: 18m
        alertname: HighErrorRate
        exp_alerts:
          - exp_labels: {severity: critical}
""",
        nudge="Divide the rate of 5xx /api requests by the rate of all /api requests "
        '(route=~"/api/.*"), each summed over every series, and compare with 0.05.',
    )
)

# --- 05.api_latency_rule: HighAPILatency with the seed's erratum fixed -------------------------

register(
    AlertRule(
        "05.api_latency_rule",
        """\
alert: HighAPILatency
expr: |
  histogram_quantile(0.99,
    sum by (le) (rate(vrewcraft_http_request_duration_seconds_bucket{route=~"/api/.*"}[5m]))
  ) > 0.2
for: 5m
labels:
  severity: warning
""",
        alert="HighAPILatency",
        threshold=0.2,
        op=">",
        for_="5m",
        labels={"severity": "warning"},
        scrape_interval=2.0,
        # The whole API slows down: one alert for the service, not one per series.
        promtool_tests="""
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'vrewcraft_http_request_duration_seconds_bucket{route="/api/videos", le="0.1"}'
        values: '0+100x10 1070+70x20'
      - series: 'vrewcraft_http_request_duration_seconds_bucket{route="/api/videos", le="0.5"}'
        values: '0+100x30'
      - series: 'vrewcraft_http_request_duration_seconds_bucket{route="/api/videos", le="+Inf"}'
        values: '0+100x30'
      - series: 'vrewcraft_http_request_duration_seconds_bucket{route="/api/upload", le="0.1"}'
        values: '0+100x10 1070+70x20'
      - series: 'vrewcraft_http_request_duration_seconds_bucket{route="/api/upload", le="0.5"}'
        values: '0+100x30'
      - series: 'vrewcraft_http_request_duration_seconds_bucket{route="/api/upload", le="+Inf"}'
        values: '0+100x30'
    alert_rule_test:
      - eval_time: 15m
        alertname: HighAPILatency
        exp_alerts: []
      - eval_time: 16m
        alertname: HighAPILatency
        exp_alerts:
          - exp_labels: {severity: warning}
""",
        nudge="histogram_quantile(0.99, sum by (le) (rate(…_bucket[5m]))) > 0.2: add the "
        "buckets of every series up, keeping only le, before taking the quantile.",
    )
)

# --- 05.cache_ratio_rule: LowCacheHitRatio from the hit/miss counter ---------------------------

register(
    AlertRule(
        "05.cache_ratio_rule",
        """\
alert: LowCacheHitRatio
expr: |
  sum(rate(vrewcraft_thumbnail_requests_total{cache_status="hit"}[10m]))
    /
  sum(rate(vrewcraft_thumbnail_requests_total[10m]))
    < 0.8
for: 10m
labels:
  severity: info
""",
        alert="LowCacheHitRatio",
        threshold=0.8,
        op="<",
        for_="10m",
        labels={"severity": "info"},
        scrape_interval=2.0,
        # Hits fall from 90% to 50% at minute 10. The in-process gauge only exists in
        # the service; in this test there is nothing but the counter to compute from.
        promtool_tests="""
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'vrewcraft_thumbnail_requests_total{cache_status="hit"}'
        values: '0+90x10 950+50x40'
      - series: 'vrewcraft_thumbnail_requests_total{cache_status="miss"}'
        values: '0+10x10 150+50x40'
    alert_rule_test:
      - eval_time: 22m
        alertname: LowCacheHitRatio
        exp_alerts: []
      - eval_time: 23m
        alertname: LowCacheHitRatio
        exp_alerts:
          - exp_labels: {severity: info}
""",
        nudge='Hits per second (cache_status="hit") divided by all lookups per second, from '
        "vrewcraft_thumbnail_requests_total over 10m, compared with 0.8.",
    )
)

# --- 05.video_team_route: a route checked with amtool ------------------------------------------

#: The receiver the routing exercise adds to the course's configuration.
VIDEO_TEAM = {"name": "video-team", "webhook_configs": [{"url": "http://127.0.0.1:5001/video"}]}

#: Alert labels and the receivers Alertmanager must pick for them.
ROUTING_CASES: list[tuple[dict[str, str], list[str]]] = [
    ({"team": "video", "severity": "warning"}, ["video-team"]),
    ({"team": "video", "severity": "info"}, ["video-team"]),
    ({"team": "video", "severity": "critical"}, ["oncall-critical"]),
    ({"severity": "critical"}, ["oncall-critical"]),
    ({"severity": "warning"}, ["team-email"]),
    ({"severity": "info"}, ["info-digest"]),
    ({"alertname": "Unlabelled"}, ["team-email"]),
]

_VIDEO_TEAM_ROUTES = """\
- matchers: ['severity="critical"']
  receiver: oncall-critical
- matchers: ['team="video"']
  receiver: video-team
- matchers: ['severity="warning"']
  receiver: team-email
- matchers: ['severity="info"']
  receiver: info-digest
  group_wait: 1m
  group_interval: 30m
  repeat_interval: 24h
"""


def _check_routes(answer: Any, _stack: Any) -> bool | str:
    """Route ``answer`` (a YAML list of routes) with amtool; compare every case."""
    from course_lib.alerting import receivers_with_routes
    from course_lib.supervisor import ConfigError

    if not isinstance(answer, str):
        return "write the routes as a YAML string (a list, each item with matchers: and receiver:)."
    try:
        routes = yaml.safe_load(answer)
    except yaml.YAMLError as exc:
        return f"that is not valid YAML: {exc}"
    if isinstance(routes, dict) and "routes" in routes:
        routes = routes["routes"]
    if not isinstance(routes, list) or not all(isinstance(r, dict) for r in routes):
        return "expected a list of routes, e.g. - matchers: ['team=\"video\"']\\n  receiver: …"
    try:
        got = receivers_with_routes(routes, [VIDEO_TEAM], [labels for labels, _ in ROUTING_CASES])
    except ConfigError as exc:
        return str(exc)
    for (labels, want), have in zip(ROUTING_CASES, got, strict=True):
        if have == want:
            continue
        shown = ", ".join(f"{k}={v}" for k, v in labels.items())
        if labels.get("severity") == "critical" and "video-team" in have:
            return (
                f"{{{shown}}} goes to {have}: the first matching route wins, so a page for the "
                "video team never reaches on-call. Keep the critical route above the team route."
            )
        if len(have) > 1:
            return (
                f"{{{shown}}} goes to {have}, more than one receiver: `continue: true` lets "
                "an alert match the routes below too. Remove it here."
            )
        return f"{{{shown}}} goes to {have}; it should go to {want}."
    return True


register(
    Predicate(
        "05.video_team_route",
        solution=_VIDEO_TEAM_ROUTES,
        test=_check_routes,
        expects="the routes: list as a YAML string",
        nudge="Routes are tried top to bottom and the first match wins (unless it says "
        'continue: true). Add a route for team="video" to the receiver video-team, placed so '
        "that critical alerts still page on-call.",
    )
)

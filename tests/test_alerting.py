"""Alert rules, their unit tests, Alertmanager routing and the alerting exercises, checked
with the real promtool and amtool (no stack needed)."""

from __future__ import annotations

import re

import pytest
import yaml

from course_lib import alerting
from course_lib.alerting import (
    ALERTMANAGER_CONFIG,
    RULE_TESTS_DIR,
    RULES_FILE,
    SEED_DIR,
    receivers,
    run_rule_tests,
    workshop_rules,
)
from course_lib.config import StackConfig, repo_root
from course_lib.exercises import ExerciseFailed, get, solution

RULES_DIR = RULES_FILE.parent
RUNBOOK = repo_root() / "notebooks" / "runbook.md"


def all_alert_rules() -> list[dict]:
    return [
        rule
        for path in sorted(RULES_DIR.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


# --- the rules ----------------------------------------------------------------------------------

# name: (threshold as written in the expr, for, severity), from the seed tutorial's part 4.2
SEED_ALERTS = {
    "HighAPILatency": ("> 0.2", "5m", "warning"),
    "HighThumbnailLatency": ("> 0.05", "5m", "critical"),
    "HighErrorRate": ("> 0.05", "5m", "critical"),
    "HighMemoryUsage": ("> 1073741824", "10m", "warning"),
    "FFmpegErrorSpike": ("> 0.1", "5m", "warning"),
    "LowCacheHitRatio": ("< 0.8", "10m", "info"),
}


def test_the_seed_alerts_keep_their_names_thresholds_for_and_severity():
    rules = {r["alert"]: r for r in yaml.safe_load(RULES_FILE.read_text())["groups"][0]["rules"]}
    assert set(SEED_ALERTS) <= set(rules)
    for name, (threshold, for_, severity) in SEED_ALERTS.items():
        rule = rules[name]
        assert rule["expr"].rstrip().endswith(threshold), (name, rule["expr"])
        assert (rule["for"], rule["labels"]["severity"]) == (for_, severity), name


def test_quantiles_are_aggregated_and_ratios_come_from_counters():
    for rule in all_alert_rules():
        expr = rule["expr"]
        if "histogram_quantile" in expr:
            assert re.search(r"sum by \(le\)", expr), rule["alert"]
        assert "vrewcraft_thumbnail_cache_hit_ratio" not in expr  # the in-process gauge
        if "process_resident_memory_bytes" in expr:
            assert 'job="vrewcraft-backend"' in expr


def test_every_alert_says_what_how_bad_and_where_the_runbook_is():
    headings = set(re.findall(r"^## (\w+)$", RUNBOOK.read_text(), re.M))
    for rule in all_alert_rules():
        name, notes = rule["alert"], rule["annotations"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        assert rule["labels"].get("service"), f"{name}: Alertmanager groups by service"
        assert notes["summary"], name
        assert "$value" in notes["description"], f"{name}: the description shows the value"
        anchor = notes["runbook_url"].rsplit("#", 1)[1]
        assert anchor == name and anchor in headings, f"{name}: no runbook section {anchor}"


def test_every_alert_has_unit_tests_that_fire_and_hold_it():
    tested: dict[str, set[bool]] = {}
    for path in RULE_TESTS_DIR.glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                tested.setdefault(check["alertname"], set()).add(bool(check["exp_alerts"]))
    for rule in all_alert_rules():
        assert tested.get(rule["alert"]) == {True, False}, (
            f"{rule['alert']}: needs a case where it fires and one where it must not"
        )


def test_the_healthy_day_fires_nothing():
    day = yaml.safe_load((RULE_TESTS_DIR / "vrewcraft_test.yml").read_text())["tests"][-1]
    assert len(day["input_series"]) >= 10  # every metric the rules read
    firing = day["promql_expr_test"][0]
    assert firing["expr"].startswith('count_over_time(ALERTS{alertstate="firing"}[1d])')
    assert firing["exp_samples"] == []


@pytest.mark.process
def test_rule_unit_tests_pass_with_promtool():
    for path in sorted(RULE_TESTS_DIR.glob("*.yml")):
        result = run_rule_tests(path)
        assert result.ok, result.output


@pytest.mark.process
def test_the_seed_expressions_fail_the_cases_the_fixed_rules_pass():
    fixed = run_rule_tests(SEED_DIR / "seed_test.yml")
    assert fixed.ok, fixed.output
    seed = run_rule_tests(SEED_DIR / "seed_test.yml", [SEED_DIR / "alerts.yml"])
    assert not seed.ok
    # One alert per series instead of one for the service...
    assert 'route="/api/videos/{video_id}/thumbnail"' in seed.output
    # ...and a spike spread over operations that never fires.
    assert re.search(r"alertname: FFmpegErrorSpike, time: 10m,.*?got:\[\]", seed.output, re.S)


def test_run_rule_tests_names_a_missing_file():
    with pytest.raises(FileNotFoundError, match="no rule test file"):
        run_rule_tests(RULE_TESTS_DIR / "nope.yml")


# --- the workshop copy --------------------------------------------------------------------------


@pytest.mark.process
def test_workshop_copy_keeps_thresholds_and_shortens_for_and_windows(tmp_path):
    copy = workshop_rules(for_="10s", window="15s")
    real = {r["alert"]: r for r in yaml.safe_load(RULES_FILE.read_text())["groups"][0]["rules"]}
    rules = copy["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == list(alerting.SEED_ALERTS)
    for rule in rules:
        original = real[rule["alert"]]
        assert rule["for"] == "10s"
        assert not re.search(r"\[(5m|10m)\]", rule["expr"])
        assert rule["expr"] == re.sub(r"\[\w+\]", "[15s]", original["expr"])
        assert rule["labels"] == {**original["labels"], "rules": "workshop"}
    path = tmp_path / "workshop.yml"
    path.write_text(yaml.safe_dump(copy))
    import subprocess

    out = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_workshop_copy_of_an_unknown_alert_is_refused():
    with pytest.raises(KeyError, match="no alert HighErorRate"):
        workshop_rules(alerts=["HighErorRate"])


def test_replay_counts_each_firing_once():
    firings = alerting._firings
    assert firings([], step=60, hold=300) == []
    assert firings([0, 60, 120, 180, 240], step=60, hold=300) == []  # 4 minutes: pending
    assert firings([0, 60, 120, 180, 240, 300, 360], step=60, hold=300) == [300]
    two = [0, 60, 120, 600, 660, 720, 780]  # a gap resets `for`
    assert firings(two, step=60, hold=120) == [120, 720]
    assert firings([0, 60], step=60, hold=0) == [0]  # no `for`: fires at once


def test_notifications_link_to_the_provisioned_dashboard():
    template = (ALERTMANAGER_CONFIG.parent / "templates" / "vrewcraft.tmpl").read_text()
    uid = re.search(r"127\.0\.0\.1:3000/d/([\w-]+)", template).group(1)
    dashboards = (repo_root() / "monitoring" / "grafana" / "dashboards").glob("*.json")
    assert any(f'"uid": "{uid}"' in path.read_text() for path in dashboards), uid


def test_monitoring_dir_comes_from_the_environment(tmp_path):
    assert StackConfig.from_env({}).monitoring_dir == repo_root() / "monitoring"
    cfg = StackConfig.from_env({"COURSE_MONITORING_DIR": str(tmp_path)})
    assert cfg.monitoring_dir == tmp_path


# --- Alertmanager routing -----------------------------------------------------------------------

ROUTES = [
    (
        {"alertname": "HighErrorRate", "severity": "critical", "service": "vrewcraft"},
        "oncall-critical",
    ),
    ({"alertname": "HighAPILatency", "severity": "warning", "service": "vrewcraft"}, "team-email"),
    ({"alertname": "LowCacheHitRatio", "severity": "info", "service": "vrewcraft"}, "info-digest"),
    ({"alertname": "TargetDown", "severity": "warning", "job": "pushgateway"}, "team-email"),
    ({"alertname": "Watchdog"}, "team-email"),  # no severity: the default receiver
    ({"alertname": "X", "severity": "page"}, "team-email"),  # an unknown severity too
]


@pytest.mark.process
@pytest.mark.parametrize(("labels", "receiver"), ROUTES, ids=lambda x: str(x))
def test_amtool_routes_each_severity(labels, receiver):
    assert receivers(labels) == [receiver]


def test_every_route_of_the_tree_is_tested():
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    in_tree = {config["route"]["receiver"]} | {r["receiver"] for r in config["route"]["routes"]}
    assert in_tree == {receiver for _, receiver in ROUTES}


def test_inhibition_rules_cover_twins_and_target_down():
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    rules = {
        (tuple(r["source_matchers"]), tuple(r["target_matchers"]), tuple(r["equal"]))
        for r in config["inhibit_rules"]
    }
    assert (('severity="critical"',), ('severity="warning"',), ("alertname", "service")) in rules
    assert (('alertname="TargetDown"',), ('alertname!="TargetDown"',), ("service",)) in rules
    assert config["route"]["group_by"] == ["alertname", "service"]


@pytest.mark.process
def test_receivers_reports_amtool_errors(tmp_path):
    broken = tmp_path / "alertmanager.yml"
    broken.write_text("route:\n  receiver: nobody\n")
    with pytest.raises(alerting.ConfigError, match="amtool rejected"):
        receivers({"severity": "critical"}, broken)


# --- the exercises of notebook 05 ---------------------------------------------------------------


def _fails(exercise_id: str, answer) -> str:
    with pytest.raises(ExerciseFailed) as info:
        get(exercise_id).check(answer)
    return str(info.value)


ERRORS = 'vrewcraft_http_requests_total{route=~"/api/.*", status_code=~"5.."}'
ALL = 'vrewcraft_http_requests_total{route=~"/api/.*"}'


def _error_rule(expr: str, extra: str = "for: 5m\nlabels: {severity: critical}") -> str:
    return f"alert: HighErrorRate\nexpr: {expr}\n{extra}\n"


@pytest.mark.process
def test_error_rate_rule_accepts_other_correct_forms():
    assert get("05.error_rate_rule").check(solution("05.error_rate_rule")).ok
    for expr in (
        f"sum(rate({ERRORS}[5m])) / sum(rate({ALL}[5m])) > 0.05",
        f"0.05 < sum(increase({ERRORS}[5m])) / sum(increase({ALL}[5m]))",
        f"sum without (method, route, status_code) (rate({ERRORS}[5m])) / "
        f"sum without (method, route, status_code) (rate({ALL}[5m])) > 0.05",
    ):
        answer = _error_rule(
            expr, "for: 300s\nlabels: {severity: critical}\nannotations: {summary: 'errors'}"
        )
        assert get("05.error_rate_rule").check(answer).ok, expr


@pytest.mark.process
@pytest.mark.parametrize(
    ("expr", "extra", "expected"),
    [
        # /metrics scrapes dilute the ratio: the test case never fires
        (
            'sum(rate(vrewcraft_http_requests_total{status_code=~"5.."}[5m])) / '
            "sum(rate(vrewcraft_http_requests_total[5m])) > 0.05",
            None,
            "does not fire as expected",
        ),
        # no sum: one alert per route
        (f"rate({ERRORS}[5m]) / rate({ALL}[5m]) > 0.05", None, "does not fire as expected"),
        (f"sum(rate({ERRORS}[5m])) / sum(rate({ALL}[5m])) > 5", None, "too big"),
        (f"sum(rate({ERRORS}[5m])) / sum(rate({ALL}[5m])) < 0.05", None, "comparison is <"),
        (
            f"sum(rate({ERRORS}[5m])) / sum(rate({ALL}[5m])) > 0.05",
            "labels: {severity: critical}",
            "add for: 5m",
        ),
        (
            f"sum(rate({ERRORS}[5m])) / sum(rate({ALL}[5m])) > 0.05",
            "for: 5m\nlabels: {severity: warning}",
            "label severity is 'warning'",
        ),
        (f"sum({ERRORS}) / sum({ALL}) > 0.05", None, "is a counter"),
    ],
)
def test_error_rate_rule_rejects(expr, extra, expected):
    answer = _error_rule(expr) if extra is None else _error_rule(expr, extra)
    assert expected in _fails("05.error_rate_rule", answer)


BUCKETS = 'vrewcraft_http_request_duration_seconds_bucket{route=~"/api/.*"}'


@pytest.mark.process
def test_api_latency_rule_accepts_and_rejects():
    exercise = get("05.api_latency_rule")
    assert exercise.check(solution("05.api_latency_rule")).ok
    good = (
        f"alert: HighAPILatency\nexpr: histogram_quantile(0.99, sum by (le) (rate({BUCKETS}[5m])))"
        " > 0.2\nfor: 5m\nlabels: {severity: warning}\n"
    )
    assert exercise.check(good).ok
    assert exercise.check(good.replace("sum by (le)", "sum without (method, route, status_code)"))
    seed = good.replace("sum by (le) (rate(", "(rate(")
    assert "one quantile per series" in _fails("05.api_latency_rule", seed)
    per_route = good.replace("sum by (le)", "sum by (le, route)")
    assert "does not fire as expected" in _fails("05.api_latency_rule", per_route)
    assert "1000× too big" in _fails("05.api_latency_rule", good.replace("> 0.2", "> 200"))


@pytest.mark.process
def test_cache_ratio_rule_accepts_and_rejects():
    exercise = get("05.cache_ratio_rule")
    assert exercise.check(solution("05.cache_ratio_rule")).ok
    hits = 'vrewcraft_thumbnail_requests_total{cache_status="hit"}'
    misses = 'vrewcraft_thumbnail_requests_total{cache_status="miss"}'
    rule = "alert: LowCacheHitRatio\nexpr: {}\nfor: 10m\nlabels: {{severity: info}}\n"
    other = f"sum(rate({hits}[10m])) / (sum(rate({hits}[10m])) + sum(rate({misses}[10m]))) < 0.8"
    assert exercise.check(rule.format(other)).ok
    wrong = {
        "vrewcraft_thumbnail_cache_hit_ratio < 0.8": "does not fire as expected",
        f"sum(rate({hits}[10m])) / sum(rate({misses}[10m])) < 0.8": "does not fire as expected",
        f"sum(rate({hits}[10m])) / sum(rate(vrewcraft_thumbnail_requests_total[10m])) > 0.8": (
            "comparison is >"
        ),
    }
    for expr, expected in wrong.items():
        assert expected in _fails("05.cache_ratio_rule", rule.format(expr)), expr


def _routes(*routes: str) -> str:
    return "\n".join(routes) + "\n"


CRITICAL = "- matchers: ['severity=\"critical\"']\n  receiver: oncall-critical"
VIDEO = "- matchers: ['team=\"video\"']\n  receiver: video-team"
WARNING = "- matchers: ['severity=\"warning\"']\n  receiver: team-email"
INFO = "- matchers: ['severity=\"info\"']\n  receiver: info-digest"


@pytest.mark.process
def test_video_team_route_accepts_other_correct_trees():
    exercise = get("05.video_team_route")
    assert exercise.check(solution("05.video_team_route")).ok
    assert exercise.check(_routes(CRITICAL, VIDEO, WARNING, INFO)).ok
    nested = (
        "- match: {team: video}\n  receiver: video-team\n  routes:\n"
        "    - matchers: ['severity=\"critical\"']\n      receiver: oncall-critical\n"
    )
    assert exercise.check(_routes(nested, CRITICAL, WARNING, INFO)).ok


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (_routes(VIDEO, CRITICAL, WARNING, INFO), "first matching route wins"),
        (_routes(CRITICAL, VIDEO + "\n  continue: true", WARNING, INFO), "continue: true"),
        (_routes(CRITICAL, WARNING, INFO), "should go to ['video-team']"),
        (_routes(CRITICAL, VIDEO.replace("video-team", "video"), WARNING, INFO), "amtool"),
        (_routes(CRITICAL, VIDEO, WARNING), "should go to ['info-digest']"),
        ("routes: [", "not valid YAML"),
        ("receiver: video-team", "expected a list of routes"),
        (42, "YAML string"),
    ],
)
@pytest.mark.process
def test_video_team_route_rejects(answer, expected):
    assert expected in _fails("05.video_team_route", answer)

"""The overview dashboard file: generated from code, lint-clean, provisioned; the lint catches
each seed erratum; Grafana's macros expand the way Grafana does."""

from __future__ import annotations

import copy
import doctest
import json

import pytest
import yaml

from course_lib.grafana import lint, macros, overview, provisioning, render
from course_lib.grafana.macros import ALL, QueryContext, expand

SEED = json.loads(
    "\n".join(
        line
        for line in (overview.Path(lint.__file__).parent / "seed_dashboard.jsonc")
        .read_text()
        .splitlines()
        if not line.lstrip().startswith("//")
    )
)


@pytest.mark.parametrize("module", [lint, macros, overview, provisioning, render])
def test_doctests(module):
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0


def test_committed_json_matches_the_code():
    committed = overview.DASHBOARD_PATH.read_text(encoding="utf-8")
    assert committed == overview.dumps(overview.dashboard_dict()), (
        "monitoring/grafana/dashboards/vrewcraft.json drifted from course_lib/grafana/overview.py:"
        " run `python -m course_lib.grafana.overview` and commit the result."
    )


def test_the_sdk_parses_its_own_output():
    from grafana_foundation_sdk.models.dashboard import Dashboard

    board = json.loads(overview.DASHBOARD_PATH.read_text())
    parsed = Dashboard.from_json(board)
    assert parsed.uid == overview.DASHBOARD_UID
    assert len(parsed.panels) == len(board["panels"]) == 15


def test_committed_dashboard_is_lint_clean():
    uids = provisioning.datasource_uids()
    assert lint.lint_file(overview.DASHBOARD_PATH, uids) == []


def test_dashboard_is_bare_with_a_fixed_uid_and_the_route_variable():
    board = json.loads(overview.DASHBOARD_PATH.read_text())
    assert "dashboard" not in board and board["uid"] == "vrewcraft-overview"
    (route,) = board["templating"]["list"]
    assert (route["name"], route["includeAll"], route["multi"], route["allValue"]) == (
        "route",
        True,
        True,
        ".*",
    )


def test_thresholds_sit_at_the_alert_thresholds():
    board = overview.dashboard_dict()
    steps = {
        p["title"]: [s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]]
        for p in board["panels"]
    }
    assert steps["API latency p50 / p95 / p99"] == [0.2]
    assert steps["Thumbnail p99: all, hits, misses"] == [0.05]
    assert steps["Error ratio by route"] == [0.05]
    assert steps["Memory (RSS)"] == [1024**3]
    assert steps["ffmpeg errors by operation"] == [0.1]
    assert steps["Thumbnail cache hit ratio"] == [0.8]


def test_provisioning_points_at_the_dashboard_directory_and_a_fixed_uid():
    (source,) = provisioning.datasources()
    assert source["uid"] == overview.DATASOURCE_UID and source["url"] == "http://127.0.0.1:9090"
    prom_config = yaml.safe_load(
        (provisioning.PROVISIONING_DIR.parent.parent / "prometheus" / "prometheus.yml").read_text()
    )
    assert source["jsonData"]["timeInterval"] == prom_config["global"]["scrape_interval"]
    providers = yaml.safe_load(
        (provisioning.PROVISIONING_DIR / "dashboards" / "vrewcraft.yml").read_text()
    )["providers"]
    assert [p["options"]["path"] for p in providers] == ["/etc/grafana/dashboards"]


def test_scrape_interval_rejects_an_unreadable_interval(tmp_path):
    (tmp_path / "datasources").mkdir()
    (tmp_path / "datasources" / "x.yml").write_text(
        "datasources: [{uid: a, jsonData: {timeInterval: soon}}]"
    )
    with pytest.raises(ValueError, match="timeInterval 'soon'"):
        provisioning.scrape_interval("a", tmp_path)
    with pytest.raises(KeyError, match="no provisioned data source with uid 'b'"):
        provisioning.scrape_interval("b", tmp_path)


# --- the lint: every rule fires on the seed's mistake, and only there ---------------------------


def test_lint_rejects_the_seed_wrapper():
    (problem,) = lint.lint(SEED)
    assert 'wraps the dashboard in {"dashboard": ...}' in problem


def test_lint_finds_every_seed_erratum():
    problems = "\n".join(lint.lint(SEED["dashboard"]))
    assert problems.count("is a 'graph' panel") == 5
    assert problems.count("legacy panel 'alert'") == 1
    assert problems.count("has no description") == 7
    assert problems.count("has no unit") == 7  # the seed's units live in graph-only yaxes
    assert problems.count("neither a provisioned uid") == 7


def test_lint_rejects_comments_in_the_file(tmp_path):
    path = tmp_path / "seed.json"
    path.write_text((overview.Path(lint.__file__).parent / "seed_dashboard.jsonc").read_text())
    (problem,) = lint.lint_file(path)
    assert "is not JSON" in problem and "no comments" in problem


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda b: b.pop("uid"), "has no uid"),
        (lambda b: b["panels"][6]["gridPos"].update(x=6), "overlaps"),
        (lambda b: b["panels"][6]["gridPos"].update(x=20), "the grid has 24"),
        (lambda b: b["panels"][6]["targets"][0].update(expr="rate(x[5m]"), "does not parse"),
        (lambda b: b["panels"][6]["targets"][0].update(expr="rate(x[$window])"), "$window"),
        (lambda b: b["panels"][6]["fieldConfig"]["defaults"].pop("unit"), "has no unit"),
        (lambda b: b["panels"][6].update(description=" "), "has no description"),
        (lambda b: b["panels"][6].update(datasource={"uid": "elsewhere"}), "'elsewhere'"),
        (lambda b: b["panels"][6].update(type="graph"), "'graph' panel"),
        (lambda b: b["panels"][6].update(alert={"name": "x"}), "legacy panel 'alert'"),
        (lambda b: b["panels"][6].update(targets=[]), "has no query"),
    ],
)
def test_lint_catches_each_mistake(mutate, expected):
    board = copy.deepcopy(overview.dashboard_dict())
    mutate(board)
    problems = lint.lint(board)
    assert any(expected in p for p in problems), problems


def test_lint_accepts_a_template_variable_as_data_source():
    board = copy.deepcopy(overview.dashboard_dict())
    board["templating"]["list"].append({"name": "ds", "type": "datasource"})
    board["panels"][6]["datasource"] = {"uid": "${ds}"}
    board["panels"][6]["targets"][0].pop("datasource")
    assert lint.lint(board) == []


# --- Grafana's macros ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("span", "width", "interval", "rate_interval"),
    [
        (900, 600, 2, 8),  # 1.5 s a pixel is below the scrape interval: the floor wins
        (6 * 3600, 600, 30, 32),  # 36 s rounds down to 30 s
        (24 * 3600, 600, 120, 122),  # 144 s rounds to 2 m
        (24 * 3600, 1200, 60, 62),
        (7 * 86400, 1200, 600, 602),  # 504 s rounds to 10 m
    ],
)
def test_intervals_follow_grafana(span, width, interval, rate_interval):
    ctx = QueryContext(start=1000, end=1000 + span, width_px=width, scrape_interval=2)
    assert (ctx.interval, ctx.rate_interval, ctx.range) == (interval, rate_interval, span)


def test_expand_replaces_every_macro_and_variable():
    ctx = QueryContext(start=0, end=3600, width_px=600, scrape_interval=2)
    expr = 'increase(x{route=~"$route", a="${route}"}[$__range]) / $__interval_ms + [[route]]'
    out = expand(expr, ctx, {"route": ALL}, {"route": {"includeAll": True, "allValue": ".*"}})
    assert out == 'increase(x{route=~".*", a=".*"}[3600s]) / 5000 + .*'
    assert expand("x[$__rate_interval]", ctx) == "x[8s]"  # max(5s + 2s, 4 × 2s)


def test_expand_escapes_regex_values_like_grafana():
    ctx = QueryContext(start=0, end=60)
    out = expand(
        'x{route=~"$route"}', ctx, {"route": ["/a/{id}", "/b.c"]}, {"route": {"multi": True}}
    )
    assert out == 'x{route=~"(/a/\\\\{id\\\\}|/b\\\\.c)"}'


def test_expand_names_an_unknown_variable():
    with pytest.raises(ValueError, match=r"uses \$route.*pass variables=\{'route'"):
        expand('x{route=~"$route"}', QueryContext(start=0, end=60))


def test_query_context_rejects_a_backwards_range():
    with pytest.raises(ValueError, match="ends .* before it starts"):
        QueryContext(start=100, end=50)
    with pytest.raises(ValueError, match="must be positive"):
        QueryContext(start=0, end=50, width_px=0)


def test_all_without_all_value_needs_values():
    with pytest.raises(ValueError, match="neither an allValue"):
        macros.variable_value(ALL, {"name": "route", "includeAll": True})

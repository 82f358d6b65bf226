"""Fault drills on the real test stack: crash a component, watch alerting cope, recover.

Each drill states its time bound; the measured times are printed (``pytest -s``).
Together they take about four minutes, most of it in `for: 1m` of TargetDown and in the
30 seconds Alertmanager is kept down.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import requests

from course_lib import alerting, supervisor
from course_lib import stack as stack_mod

pytestmark = pytest.mark.stack


def kill9(stack, name: str) -> int:
    """SIGKILL one component of the stack (no chance to clean up); return its pid."""
    record = supervisor.read_pid(stack_mod.component(name).pid_file(stack.config))
    assert record is not None and record.process() is not None, f"{name} is not running"
    os.kill(record.pid, signal.SIGKILL)
    assert supervisor.poll(lambda: record.process() is None, timeout=10)
    return record.pid


def course_up(env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m course_lib up` the way a learner would."""
    return subprocess.run(
        [sys.executable, "-m", "course_lib", "up", "--timeout", "90"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


def test_invalid_rule_file_is_refused_and_the_running_rules_stay(stack, tmp_path):
    """Bound: 30 s (promtool runs once, nothing restarts)."""
    t0 = time.monotonic()
    before = {g["name"]: len(g["rules"]) for g in alerting.rule_groups(stack)}
    monitoring = tmp_path / "monitoring"
    shutil.copytree(alerting.MONITORING, monitoring)
    (monitoring / "prometheus" / "rules" / "broken.yml").write_text(
        "groups:\n  - name: broken\n    rules:\n      - alert: Broken\n"
        "        expr: rate(vrewcraft_http_requests_total[5m]\n"
    )
    out = course_up({"COURSE_MONITORING_DIR": str(monitoring)})
    assert out.returncode == 1
    # promtool's own words, naming the source file the learner has to fix.
    assert "promtool check config rejected" in out.stderr
    assert "broken.yml" in out.stderr and "unclosed left parenthesis" in out.stderr, out.stderr
    # Nothing was installed or reloaded: Prometheus still runs the same rules.
    assert not list(stack.config.config_dir.rglob("broken.yml"))
    assert {g["name"]: len(g["rules"]) for g in alerting.rule_groups(stack)} == before
    assert stack.query('up{job="prometheus"}')["value"].tolist() == [1.0]
    elapsed = time.monotonic() - t0
    print(f"invalid rule file refused in {elapsed:.1f}s")
    assert elapsed < 30


def test_prometheus_kill9_keeps_scraped_samples_and_reevaluates_rules(stack):
    """Bound: 60 s from the crash to Prometheus answering with its old samples."""
    # A freshly started stack may hold only seconds of live data: wait for 30 s of it.
    stack.wait_for('count_over_time(up{job="vrewcraft-backend"}[30s]) >= 12', timeout=60)
    end = time.time() - 2
    window = {"start": end - 30, "end": end, "step": "2s"}
    before = stack.query_range('up{job="vrewcraft-backend"}', **window)
    assert len(before) >= 10, before  # 30 s of 2 s scrapes
    t_kill = time.monotonic()
    kill9(stack, "prometheus")
    out = course_up()
    assert out.returncode == 0, out.stderr
    t_back = time.monotonic() - t_kill
    after = stack.query_range('up{job="vrewcraft-backend"}', **window)
    # Every sample scraped before the crash came back from the write-ahead log.
    assert after[["timestamp", "value"]].equals(before[["timestamp", "value"]])
    restarted = time.time()

    def evaluated_again() -> bool:
        groups = alerting.rule_groups(stack)
        return all(
            g["lastEvaluation"] and _unix(g["lastEvaluation"]) > restarted - 1 for g in groups
        )

    assert supervisor.poll(evaluated_again, timeout=15, interval=0.5)
    assert all(r["health"] == "ok" for g in alerting.rule_groups(stack) for r in g["rules"])
    print(f"Prometheus back with its samples {t_back:.1f}s after kill -9")
    assert t_back < 60


def _unix(rfc3339: str) -> float:
    import pandas as pd

    return pd.Timestamp(rfc3339).timestamp()


def test_alertmanager_down_30s_while_firing_still_notifies(stack):
    """Bound: the notification arrives within 60 s of Alertmanager's return."""
    faults = f"{stack.service_url}/admin/faults"
    alerting.load_workshop_rules(stack, alerts=["HighErrorRate"])
    workshop = {"rules": "workshop"}
    try:
        alerting.wait_for_alert(stack, "HighErrorRate", None, labels=workshop, timeout=60)
        t_stop = time.time()
        kill9(stack, "alertmanager")
        requests.post(
            faults, json={"error_ratio": 1.0, "error_routes": ["/api/videos"]}, timeout=10
        )
        alerting.wait_for_alert(stack, "HighErrorRate", "firing", labels=workshop, timeout=60)
        # Keep Alertmanager down for 30 s in all, while Prometheus fails to deliver.
        supervisor.poll(lambda: time.time() >= t_stop + 30, timeout=40, interval=0.5)
        assert alerting.notifications(stack, t_stop).query("alertname == 'HighErrorRate'").empty
        out = course_up()
        assert out.returncode == 0, out.stderr
        t_back = time.time()
        mail = alerting.wait_for_notification(
            stack, t_stop, timeout=60, alertname="HighErrorRate", status="firing", channel="email"
        )
        print(f"notification {mail['received_at'] - t_back:.1f}s after Alertmanager returned")
        assert mail["received_at"] - t_back < 60
    finally:
        requests.delete(faults, timeout=10)
        alerting.wait_for_alert(stack, "HighErrorRate", None, labels=workshop, timeout=60)
        alerting.unload_workshop_rules(stack)


def test_service_kill9_is_notified_restarted_and_resolved(stack):
    """Bounds: TargetDown email within 120 s of the crash (for: 1m + group_wait 10s + a
    scrape and an evaluation); resolved email within 60 s of `course_lib up`."""
    t_kill = time.time()
    kill9(stack, "service")
    down = alerting.wait_for_notification(
        stack, t_kill, timeout=120, alertname="TargetDown", service="vrewcraft", status="firing"
    )
    assert down["channel"] == "email" and "vrewcraft-backend" in down["text"]
    notified = down["received_at"] - t_kill
    out = course_up()
    assert out.returncode == 0, out.stderr
    assert "service: started" in out.stdout
    t_up = time.time()
    resolved = alerting.wait_for_notification(
        stack, t_up, timeout=60, alertname="TargetDown", service="vrewcraft", status="resolved"
    )
    print(
        f"TargetDown notified {notified:.1f}s after kill -9; "
        f"resolved {resolved['received_at'] - t_up:.1f}s after the restart"
    )
    assert notified < 120
    assert stack.query('up{job="vrewcraft-backend"}')["value"].tolist() == [1.0]

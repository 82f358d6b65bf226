"""The stack supervisor: real processes, real ports, and the errors a learner would hit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import smtplib
import socket
import sys
import urllib.request
from email.message import EmailMessage

import psutil
import pytest
import requests

import course_lib.stack as stack_mod
from course_lib import prom, sinks, supervisor
from course_lib.config import DEFAULT_PORTS, StackConfig, port_env_var, repo_root
from course_lib.stack import Component
from course_lib.supervisor import free_port


@pytest.fixture
def scratch_cfg(tmp_path):
    """A config with its own free ports and state directory, for stacks the test starts itself."""
    names = [*DEFAULT_PORTS, "slowpoke", "crasher", "web"]
    return StackConfig(
        state_dir=tmp_path / "state",
        ports={n: free_port() for n in names},
        monitoring_dir=repo_root() / "monitoring",
    )


def python_component(name: str, code: str, **kwargs) -> Component:
    return Component(name=name, argv=lambda cfg, py: [py, "-c", code], **kwargs)


# --- errors before anything starts --------------------------------------------------------------


@pytest.mark.process
def test_invalid_prometheus_config_reports_promtool_message(scratch_cfg, tmp_path):
    monitoring = tmp_path / "monitoring"
    shutil.copytree(repo_root() / "monitoring", monitoring)
    config = monitoring / "prometheus" / "prometheus.yml"
    config.write_text(
        config.read_text().replace("scrape_interval: 2s", "scrape_interval: 2 parsecs")
    )
    cfg = StackConfig(**{**scratch_cfg.__dict__, "monitoring_dir": monitoring})
    with pytest.raises(stack_mod.ConfigError) as err:
        stack_mod.up(cfg, timeout=5)
    message = str(err.value)
    assert "promtool check config rejected" in message
    assert '"2 parsecs"' in message  # promtool's own words, not a timeout
    assert not any(p.read_text() for p in cfg.pid_dir.glob("*.pid"))
    stack_mod.down(cfg)


def test_port_in_use_names_port_and_holder(scratch_cfg):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", scratch_cfg.port("prometheus")))
        squatter.listen()
        with pytest.raises(stack_mod.PortInUseError) as err:
            stack_mod.up(scratch_cfg, timeout=5)
    message = str(err.value)
    assert f"Port {scratch_cfg.port('prometheus')} for prometheus is already in use" in message
    assert f"pid {os.getpid()}" in message
    assert "COURSE_PROMETHEUS_PORT=" in message
    assert list(scratch_cfg.pid_dir.glob("*.pid")) == []  # nothing was started


def test_missing_binaries_give_the_install_command(scratch_cfg, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(supervisor.MissingBinaryError) as err:
        stack_mod.up(scratch_cfg)
    message = str(err.value)
    for name in (
        "prometheus (for prometheus)",
        "prometheus-alertmanager or alertmanager",
        "prometheus-pushgateway or pushgateway",
    ):
        assert name in message
    assert "install -y --no-install-recommends" in message


# --- components that misbehave ------------------------------------------------------------------


@pytest.mark.process
def test_component_not_ready_in_time_shows_its_log(scratch_cfg, monkeypatch):
    slow = python_component(
        "slowpoke",
        "print('warming up the flux capacitor', flush=True);import time; time.sleep(60)",
        health_path="/healthz",
    )
    monkeypatch.setattr(stack_mod, "COMPONENTS", [slow])
    try:
        with pytest.raises(stack_mod.NotReadyError) as err:
            stack_mod.up(scratch_cfg, timeout=1)
        message = str(err.value)
        assert "slowpoke did not become ready within 1s" in message
        assert "warming up the flux capacitor" in message
    finally:
        stack_mod.down(scratch_cfg)


@pytest.mark.process
def test_component_that_exits_while_starting_shows_exit_code_and_log(scratch_cfg, monkeypatch):
    crasher = python_component(
        "crasher", "print('config is broken: no such thing'); raise SystemExit(3)"
    )
    monkeypatch.setattr(stack_mod, "COMPONENTS", [crasher])
    with pytest.raises(stack_mod.NotReadyError) as err:
        stack_mod.up(scratch_cfg, timeout=10)
    assert "crasher exited with code 3 while starting" in str(err.value)
    assert "config is broken: no such thing" in str(err.value)


@pytest.mark.process
def test_dead_component_shows_in_status_and_up_restarts_it(scratch_cfg, monkeypatch):
    web = Component(
        name="web",
        health_path="/",
        argv=lambda cfg, py: [py, "-m", "http.server", str(cfg.port("web")), "--bind", "127.0.0.1"],
    )
    monkeypatch.setattr(stack_mod, "COMPONENTS", [web])
    try:
        first = stack_mod.up(scratch_cfg, timeout=10)
        assert first.started == ["web"]
        assert [r.state for r in stack_mod.status(scratch_cfg)] == ["healthy"]
        pid = supervisor.read_pid(web.pid_file(scratch_cfg)).pid
        os.kill(pid, signal.SIGKILL)
        assert supervisor.poll(lambda: stack_mod.status(scratch_cfg)[0].state == "dead", timeout=5)
        assert stack_mod.status(scratch_cfg)[0].pid == pid

        messages = []
        second = stack_mod.up(scratch_cfg, timeout=10, progress=messages.append)
        assert second.started == ["web"]
        assert any("removing stale pid file" in m for m in messages)
        assert stack_mod.status(scratch_cfg)[0].state == "healthy"
        assert stack_mod.up(scratch_cfg, timeout=10).started == []  # healthy: reused
    finally:
        assert stack_mod.down(scratch_cfg) == ["web"]
    assert [r.state for r in stack_mod.status(scratch_cfg)] == ["stopped"]


@pytest.mark.process
def test_real_stack_cycle_leaves_no_process_behind(scratch_cfg, monkeypatch):
    monkeypatch.setattr(
        stack_mod,
        "COMPONENTS",
        [c for c in stack_mod.COMPONENTS if c.name in ("pushgateway", "prometheus")],
    )
    try:
        ready = stack_mod.up(scratch_cfg, timeout=30)
        assert set(ready.started) == {"pushgateway", "prometheus"}
        up = ready.query('up{job=~"pushgateway|prometheus"}')
        assert sorted(up["job"]) == ["prometheus", "pushgateway"]
        assert up["value"].tolist() == [1.0, 1.0]
        pids = [supervisor.read_pid(c.pid_file(scratch_cfg)).pid for c in stack_mod.COMPONENTS]
    finally:
        stack_mod.down(scratch_cfg)
    assert not [
        p
        for p in pids
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]
    assert supervisor.port_is_free(scratch_cfg.port("prometheus"))


# --- the isolated session stack -----------------------------------------------------------------


@pytest.mark.stack
def test_every_target_is_up(stack):
    up = stack.query("up")
    assert set(up["job"]) >= {"prometheus", "alertmanager", "pushgateway", "vrewcraft-backend"}
    assert (up["value"] == 1).all(), up


@pytest.mark.stack
def test_test_stack_is_isolated_from_the_lab_stack(stack):
    assert stack.config.state_dir.name == ".course-test"
    assert stack.config.port("prometheus") != DEFAULT_PORTS["prometheus"]


@pytest.mark.stack
def test_every_listener_binds_loopback_only(stack):
    checked = 0
    for comp in stack_components_running(stack):
        proc = psutil.Process(supervisor.read_pid(comp.pid_file(stack.config)).pid)
        for p in [proc, *proc.children(recursive=True)]:
            for conn in p.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    checked += 1
                    assert conn.laddr.ip == "127.0.0.1", (comp.name, conn)
    assert checked >= 5


def stack_components_running(running):
    return [c for c in stack_mod.COMPONENTS if supervisor.read_pid(c.pid_file(running.config))]


@pytest.mark.stack
def test_up_again_reuses_the_healthy_stack(stack):
    before = {
        c.name: supervisor.read_pid(c.pid_file(stack.config)).pid
        for c in stack_components_running(stack)
    }
    again = stack_mod.up(stack.config, timeout=30)
    assert again.started == []
    after = {
        c.name: supervisor.read_pid(c.pid_file(stack.config)).pid
        for c in stack_components_running(stack)
    }
    assert before == after


@pytest.mark.stack
def test_prometheus_admin_api_is_off(stack):
    resp = requests.post(f"{stack.prometheus_url}/api/v1/admin/tsdb/snapshot", timeout=5)
    assert resp.status_code != 200
    assert "admin APIs disabled" in resp.text


@pytest.mark.stack
def test_bad_promql_raises_prometheus_message(stack):
    with pytest.raises(prom.PromQLError) as err:
        stack.query("rate(up[5m]")
    assert "rate(up[5m]" in str(err.value)
    assert "parse error" in str(err.value)


@pytest.mark.stack
def test_status_reports_every_component_healthy(stack):
    rows = {r.name: r for r in stack_mod.status(stack.config)}
    for name in ("prometheus", "alertmanager", "pushgateway", "smtp-sink", "webhook-sink"):
        assert rows[name].state == "healthy", rows[name]
        assert rows[name].address == stack.config.address(name)
        assert rows[name].pid


@pytest.mark.stack
def test_smtp_sink_records_real_email(stack):
    msg = EmailMessage()
    msg["Subject"] = "[VrewCraft] sink test"
    msg["From"] = "alerts@vrewcraft.local"
    msg["To"] = "team@vrewcraft.local"
    msg.set_content("p99 is on fire")
    with smtplib.SMTP("127.0.0.1", stack.config.port("smtp-sink"), timeout=5) as smtp:
        smtp.send_message(msg)
    emails = sinks.read_emails(stack.config.sink_dir)
    assert emails[-1]["subject"] == "[VrewCraft] sink test"
    assert "p99 is on fire" in emails[-1]["body"]
    assert emails[-1]["rcpt_tos"] == ["team@vrewcraft.local"]


@pytest.mark.stack
def test_webhook_sink_records_posts_and_rejects_non_json(stack):
    url = f"http://{stack.config.address('webhook-sink')}/slack"
    body = json.dumps({"text": "HighErrorRate firing"}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.read() == b"ok"
    recorded = sinks.read_webhooks(stack.config.sink_dir)[-1]
    assert recorded["json"] == {"text": "HighErrorRate firing"}
    bad = requests.post(url, data=b"not json", timeout=5)
    assert bad.status_code == 400
    assert "body is not JSON" in bad.json()["error"]


@pytest.mark.stack
def test_external_mode_starts_nothing(stack, tmp_path):
    cfg = StackConfig.from_env(
        {"COURSE_PROMETHEUS_URL": stack.prometheus_url, "COURSE_STATE_DIR": str(tmp_path)}
    )
    external = stack_mod.up(cfg, timeout=30)
    assert external.started == []
    assert external.prometheus_url == stack.prometheus_url
    assert not list(tmp_path.iterdir())
    assert not external.query("up").empty


def test_external_mode_with_nothing_there_says_what_to_do():
    cfg = StackConfig.from_env({"COURSE_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(stack_mod.NotReadyError, match="does not answer .*docker compose up"):
        stack_mod.up(cfg, timeout=1)


@pytest.mark.process
def test_cli_status_and_doctor_run(scratch_cfg, monkeypatch, capsys):
    from course_lib.__main__ import main

    monkeypatch.setenv("COURSE_STATE_DIR", str(scratch_cfg.state_dir))
    for name in DEFAULT_PORTS:  # free ports: a fixed offset may collide with another stack
        monkeypatch.setenv(port_env_var(name), str(scratch_cfg.port(name)))
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "prometheus" in out and "stopped" in out
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert "prometheus:" in out and "version" in out
    assert code == 0, out


def test_cli_reports_errors_without_traceback(monkeypatch, capsys):
    from course_lib.__main__ import main

    monkeypatch.setenv("COURSE_PORT_OFFSET", "lots")
    assert main(["status"]) == 1
    assert "COURSE_PORT_OFFSET='lots' is not a whole number" in capsys.readouterr().err


@pytest.mark.process
def test_doctor_flags_a_port_held_by_another_program(scratch_cfg):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", scratch_cfg.port("pushgateway")))
        squatter.listen()
        findings = stack_mod.doctor(scratch_cfg)
    errors = [text for level, text in findings if level == "error"]
    assert any(f"Port {scratch_cfg.port('pushgateway')} for pushgateway" in e for e in errors)


def test_python_components_run_on_this_interpreter():
    assert stack_mod._resolve_binary(stack_mod.component("smtp-sink")) == sys.executable


@pytest.mark.process
def test_dependent_component_starts_after_its_dependency_is_healthy(scratch_cfg, monkeypatch):
    # "web" needs a second to listen; "crasher" exits at once unless web already answers.
    slow_web = Component(
        name="web",
        health_path="/",
        argv=lambda cfg, py: [
            py,
            "-c",
            "import time, http.server as h; time.sleep(1); h.ThreadingHTTPServer("
            f"('127.0.0.1', {cfg.port('web')}), h.SimpleHTTPRequestHandler).serve_forever()",
        ],
    )
    client = Component(
        name="crasher",
        has_port=False,
        health_path=None,
        after=("web",),
        argv=lambda cfg, py: [
            py,
            "-c",
            "import time, urllib.request; urllib.request.urlopen("
            f"'http://127.0.0.1:{cfg.port('web')}/', timeout=2); time.sleep(60)",
        ],
    )
    monkeypatch.setattr(stack_mod, "COMPONENTS", [slow_web, client])
    try:
        assert stack_mod.up(scratch_cfg, timeout=10).started == ["web", "crasher"]
        assert [r.state for r in stack_mod.status(scratch_cfg)] == ["healthy", "healthy"]
    finally:
        stack_mod.down(scratch_cfg)

"""Static checks of monitoring/ and docker-compose.yml with the real tools."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from course_lib.config import repo_root

MONITORING = repo_root() / "monitoring"


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=60, cwd=repo_root(), env=env
    )


def compose_env(**extra: str) -> dict[str, str]:
    """Return the environment without a Grafana password, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "GRAFANA_ADMIN_PASSWORD"}
    return {**env, **extra}


@pytest.mark.process
def test_promtool_accepts_the_prometheus_config():
    out = run("promtool", "check", "config", str(MONITORING / "prometheus" / "prometheus.yml"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@pytest.mark.parametrize(
    "rule_file", sorted((MONITORING / "prometheus" / "rules").glob("*.yml")), ids=lambda p: p.name
)
@pytest.mark.process
def test_promtool_accepts_each_rule_file(rule_file):
    out = run("promtool", "check", "rules", str(rule_file))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.process
def test_promtool_rule_unit_tests_pass():
    tests = sorted(str(p) for p in (MONITORING / "prometheus" / "tests").glob("*.yml"))
    assert tests
    out = run("promtool", "test", "rules", *tests)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.process
def test_amtool_accepts_the_alertmanager_config():
    out = run("amtool", "check-config", str(MONITORING / "alertmanager" / "alertmanager.yml"))
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_receiver_is_routed():
    # The seed's mistake: a receiver no route uses never gets a notification.
    config = yaml.safe_load((MONITORING / "alertmanager" / "alertmanager.yml").read_text())

    def routed(route):
        yield route.get("receiver")
        for child in route.get("routes", []):
            yield from routed(child)

    used = set(routed(config["route"]))
    assert {r["name"] for r in config["receivers"]} <= used


def test_no_secrets_in_the_repo():
    pattern = re.compile(
        r"(smtp_auth_password|auth_password|api_url):\s*['\"]?(?!http://127)"
        r"[^\s'\"]+|hooks\.slack\.com/services/[A-Z0-9]|"
        r"GF_SECURITY_ADMIN_PASSWORD=",
        re.IGNORECASE,
    )
    files = [
        *MONITORING.rglob("*.yml"),
        *MONITORING.rglob("*.json"),
        repo_root() / "docker-compose.yml",
    ]
    offenders = [f"{f}: {m.group(0)}" for f in files for m in pattern.finditer(f.read_text())]
    assert offenders == []


def test_compose_images_are_pinned_and_listen_on_loopback():
    compose = yaml.safe_load((repo_root() / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name} uses unpinned {image}"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"
        listen = [a for a in service.get("command", []) if "listen-address=" in a]
        assert all("=127.0.0.1:" in a or a.endswith("=") for a in listen), (name, listen)


@pytest.mark.process
def test_compose_file_is_valid():
    # Validates offline; no Docker engine needed. `make test` installs docker-compose.
    assert shutil.which("docker-compose"), "docker-compose missing: `make test` installs it"
    env = compose_env(GRAFANA_ADMIN_PASSWORD="a-test-only-password")
    out = run("docker-compose", "-f", "docker-compose.yml", "config", "-q", env=env)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.process
def test_compose_refuses_grafana_without_an_admin_password():
    out = run("docker-compose", "-f", "docker-compose.yml", "config", "-q", env=compose_env())
    assert out.returncode != 0
    assert "set GRAFANA_ADMIN_PASSWORD" in out.stderr


@pytest.mark.process
def test_compose_grafana_is_locked_down_and_provisioned_read_only():
    env = compose_env(GRAFANA_ADMIN_PASSWORD="a-test-only-password")
    out = run("docker-compose", "-f", "docker-compose.yml", "config", env=env)
    assert out.returncode == 0, out.stderr
    grafana = yaml.safe_load(out.stdout)["services"]["grafana"]
    settings = grafana["environment"]
    assert settings["GF_SECURITY_ADMIN_PASSWORD"] == "a-test-only-password"
    assert (
        settings["GF_SERVER_HTTP_ADDR"] == "127.0.0.1" and settings["GF_SERVER_HTTP_PORT"] == "3000"
    )
    assert settings["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert settings["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["network_mode"] == "host"
    mounts = {v.split(":")[1]: v for v in (str(m) for m in grafana["volumes"]) if ":/etc/" in v}
    assert mounts.keys() == {"/etc/grafana/provisioning", "/etc/grafana/dashboards"}
    assert all(v.endswith(":ro") for v in mounts.values()), mounts
    # The provider reads the directory the dashboards are mounted at.
    provider = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "dashboards" / "vrewcraft.yml").read_text()
    )["providers"][0]
    assert provider["options"]["path"] == "/etc/grafana/dashboards"

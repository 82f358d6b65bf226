from pathlib import Path

import pytest

from course_lib.config import DEFAULT_PORTS, StackConfig, port_env_var


def test_defaults_are_the_lab_ports_on_loopback():
    cfg = StackConfig.from_env({})
    assert dict(cfg.ports) == DEFAULT_PORTS
    assert cfg.url("prometheus") == "http://127.0.0.1:9090"
    assert cfg.state_dir.name == ".course"
    assert not cfg.external


def test_offset_moves_every_port_and_overrides_win():
    cfg = StackConfig.from_env(
        {
            "COURSE_PORT_OFFSET": "10000",
            "COURSE_SERVICE_PORT": "4000",
            "COURSE_STATE_DIR": "/tmp/somewhere",
        }
    )
    assert cfg.port("prometheus") == 19090
    assert cfg.port("alertmanager") == 19093
    assert cfg.port("service") == 4000
    assert cfg.state_dir == Path("/tmp/somewhere")
    assert cfg.log_dir == Path("/tmp/somewhere/logs")


def test_external_urls_switch_to_external_mode():
    cfg = StackConfig.from_env({"COURSE_PROMETHEUS_URL": "http://prom.example:9090/"})
    assert cfg.external
    assert cfg.url("prometheus") == "http://prom.example:9090"
    assert cfg.url("alertmanager") == "http://127.0.0.1:9093"


@pytest.mark.parametrize(
    "env, needle",
    [
        ({"COURSE_PORT_OFFSET": "ten"}, "COURSE_PORT_OFFSET='ten' is not a whole number"),
        ({"COURSE_PROMETHEUS_PORT": "70000"}, "COURSE_PROMETHEUS_PORT=70000 is outside 0-65535"),
        ({"COURSE_TRAFFIC_RATE": "lots"}, "COURSE_TRAFFIC_RATE='lots' is not a number"),
    ],
)
def test_bad_settings_name_the_variable(env, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        StackConfig.from_env(env)


def test_flags_turn_components_off():
    cfg = StackConfig.from_env({"COURSE_TRAFFIC": "0", "COURSE_SERVICE": "off"})
    assert not cfg.traffic and not cfg.service


def test_port_env_var_names():
    assert port_env_var("smtp-sink") == "COURSE_SMTP_SINK_PORT"

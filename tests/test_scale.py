"""Extra processes of notebook 07: configs promtool accepts, clear errors, clean stops."""

from __future__ import annotations

import json
import random
import socket

import psutil
import pytest
import requests

import course_lib.stack as stack_mod
from course_lib import cardinality, scale, supervisor
from course_lib.config import DEFAULT_PORTS, StackConfig, repo_root
from course_lib.exercises import get


def free_port() -> int:
    # Below the ephemeral range, so no outgoing connection can take the port meanwhile.
    for port in random.Random().sample(range(21000, 29000), 200):
        if supervisor.port_is_free(port):
            return port
    raise RuntimeError("no free port between 21000 and 29000")


@pytest.fixture
def scratch_cfg(tmp_path):
    """A config with its own free ports and state directory; the test stops what it starts."""
    cfg = StackConfig(
        state_dir=tmp_path / "state",
        ports={name: free_port() for name in DEFAULT_PORTS},
        monitoring_dir=repo_root() / "monitoring",
    )
    yield cfg
    scale.stop(cfg=cfg)


# --- configurations ---------------------------------------------------------------------------


@pytest.mark.process
def test_every_generated_prometheus_config_passes_promtool(scratch_cfg, tmp_path):
    configs = {
        "scratch": scale.scratch_config(scratch_cfg),
        "global": scale.global_config(scratch_cfg),
        "ha-a": scale.ha_config(scratch_cfg, "a"),
        **{f"shard-{s}": scale.shard_config(s, 2, "b") for s in (0, 1)},
    }
    for name, config in configs.items():
        assert scale.check_config(config, tmp_path / f"{name}.yml") == "SUCCESS", name


@pytest.mark.process
def test_a_broken_config_gets_promtools_words(tmp_path):
    bad = {"global": {"scrape_interval": "soon"}}
    with pytest.raises(supervisor.ConfigError, match="soon"):
        scale.check_config(bad, tmp_path / "bad.yml")


def test_ha_pair_differs_only_in_the_replica_label_which_it_drops_on_write(scratch_cfg):
    a, b = scale.ha_config(scratch_cfg, "a"), scale.ha_config(scratch_cfg, "b")
    assert a["global"]["external_labels"]["replica"] == "a"
    b["global"]["external_labels"]["replica"] = "a"
    assert a == b
    (relabel,) = a["remote_write"][0]["write_relabel_configs"]
    assert get("07.ha_relabel").check(relabel).ok  # the exercise accepts what the stack runs


def test_shards_split_targets_and_reject_a_shard_out_of_range():
    keep = scale.shard_config(1, 3, "a")["scrape_configs"][0]["relabel_configs"]
    assert keep[0]["modulus"] == 3 and keep[1] == {
        "source_labels": ["__tmp_shard"],
        "regex": "1",
        "action": "keep",
    }
    with pytest.raises(ValueError, match="outside 0..2"):
        scale.shard_config(3, 3, "a")


def test_replica_targets_are_file_sd_json_and_unknown_names_are_refused(scratch_cfg):
    path = scale.set_replica_targets(["replica-1", "replica-3"], scratch_cfg)
    groups = json.loads(path.read_text())
    assert groups == [
        {"targets": [scratch_cfg.address("replica-1")], "labels": {"pod": "replica-1"}},
        {"targets": [scratch_cfg.address("replica-3")], "labels": {"pod": "replica-3"}},
    ]
    with pytest.raises(ValueError, match="replica-9"):
        scale.set_replica_targets(["replica-9"], scratch_cfg)


def test_extra_ports_move_with_the_offset():
    cfg = StackConfig.from_env({"COURSE_PORT_OFFSET": "18000"})
    assert cfg.port("victoria-metrics") == 26428
    assert {cfg.port(r) for r in scale.REPLICAS} == {21011, 21012, 21013}


# --- errors before anything starts ---------------------------------------------------------------


@pytest.mark.process
def test_missing_binary_names_it_and_the_install_command(scratch_cfg, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to find
    with pytest.raises(supervisor.MissingBinaryError, match="victoria-metrics") as info:
        scale.start(["victoria-metrics", "prometheus-ha-a"], scratch_cfg)
    assert "apt-get install" in str(info.value) or "brew install" in str(info.value)
    assert scale.running(scratch_cfg) == []


@pytest.mark.process
def test_a_taken_port_names_the_component_and_the_variable(scratch_cfg):
    port = scratch_cfg.port("scratch-target")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(supervisor.PortInUseError, match=f"{port}.*COURSE_SCRATCH_TARGET_PORT"):
            scale.start(["scratch-target"], scratch_cfg, progress=print)
    assert scale.running(scratch_cfg) == []


def test_unknown_names_list_the_choices(scratch_cfg):
    with pytest.raises(KeyError, match="replica-1.*victoria-metrics"):
        scale.start(["replica-7"], scratch_cfg)
    with pytest.raises(supervisor.StackError, match="not running"):
        scale.kill("replica-1", scratch_cfg)


def test_an_external_stack_gets_no_extra_processes(scratch_cfg):
    external = StackConfig(
        state_dir=scratch_cfg.state_dir,
        ports=scratch_cfg.ports,
        external_urls={"prometheus": "http://127.0.0.1:1"},
    )
    with pytest.raises(supervisor.StackError, match="COURSE_PROMETHEUS_URL"):
        scale.start(["scratch-target"], external)


# --- real processes ------------------------------------------------------------------------


@pytest.mark.process
def test_cardinality_is_measured_from_prometheus_and_everything_is_cleaned_up(scratch_cfg):
    started = scale.start(["scratch-target", "prometheus-scratch"], scratch_cfg)
    assert started == ["scratch-target", "prometheus-scratch"]
    pids = [
        supervisor.read_pid(scale.extra_component(n).pid_file(scratch_cfg)).pid for n in started
    ]
    for pid in pids:  # loopback only
        listening = [
            c.laddr.ip for c in psutil.Process(pid).net_connections() if c.status == "LISTEN"
        ]
        assert listening and set(listening) == {"127.0.0.1"}, listening

    df = cardinality.measure(scratch_cfg, steps=(10, 200), runs=1)
    assert df["label_values"].tolist() == [0, 10, 200]
    assert df["head_series"].diff().iloc[-1] == pytest.approx(190, abs=20)
    assert df["body_bytes"].iloc[-1] > 190 * 40
    top = cardinality.tsdb_status(scratch_cfg.url("prometheus-scratch"))
    values_by_label = dict(top["labelValueCountByLabelName"].itertuples(index=False))
    assert values_by_label["user_id"] == 200

    assert sorted(scale.stop(cfg=scratch_cfg)) == sorted(started)
    assert scale.running(scratch_cfg) == []
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)
    assert not (scratch_cfg.data_dir / "prometheus-scratch").exists()
    assert not list(scratch_cfg.pid_dir.glob("*.pid"))


@pytest.mark.process
def test_the_scratch_target_refuses_bad_sizes_with_a_reason(scratch_cfg):
    scale.start(["scratch-target"], scratch_cfg)
    url = scratch_cfg.url("scratch-target")
    for bad in ("-1", str(cardinality.MAX_SERIES + 1), "many"):
        resp = requests.get(f"{url}/series", params={"n": bad}, timeout=5)
        assert resp.status_code == 400 and f"n={bad}" in resp.text.replace("'", ""), resp.text
    assert requests.get(f"{url}/series", params={"n": 3}, timeout=5).text.strip() == "3"
    assert requests.get(f"{url}/metrics", timeout=5).text.count("scratch_requests_total{") == 3
    assert requests.get(f"{url}/nope", timeout=5).status_code == 404


@pytest.mark.process
def test_down_stops_the_extra_processes_too(scratch_cfg):
    scale.start(["scratch-target"], scratch_cfg)
    assert scale.running(scratch_cfg) == ["scratch-target"]
    assert "scratch-target" in stack_mod.down(scratch_cfg)
    assert scale.running(scratch_cfg) == []


@pytest.mark.process
def test_kill_is_a_crash_and_stop_cleans_up_after_it(scratch_cfg):
    scale.start(["scratch-target"], scratch_cfg)
    pid = scale.kill("scratch-target", scratch_cfg)
    assert scale.running(scratch_cfg) == []
    assert scale.extra_component("scratch-target").pid_file(scratch_cfg).exists()  # stale
    assert scale.stop(cfg=scratch_cfg) == []  # nothing alive to stop, pid file removed
    assert not scale.extra_component("scratch-target").pid_file(scratch_cfg).exists()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"

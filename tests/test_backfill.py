"""The day of history in a real Prometheus: placed once, exact to 1e-9, never over live data."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import time

import pytest
from promql_reference import (
    histogram_rate_quantile,
    increase,
    instant,
    irate,
    rate,
    resets,
)

import course_lib.stack as stack_mod
from course_lib import backfill, history, prom, supervisor
from course_lib.config import DEFAULT_PORTS, StackConfig, repo_root

H = 3600
THUMB = "/api/videos/{video_id}/thumbnail"


def _cfg(tmp_path, **changes) -> StackConfig:
    ports = {name: 40000 + i for i, name in enumerate(DEFAULT_PORTS)}
    base = StackConfig(state_dir=tmp_path / "state", ports=ports)
    return StackConfig(**{**base.__dict__, **changes})


# --- failure modes: clear messages, nothing half-written ----------------------------------------


def _tiny_day(path, start, instance, points=None):
    path.write_text(f'up{{job="x",instance="{instance}"}} 1 {start}\n# EOF\n')
    return 1, 1


def test_history_can_be_switched_off():
    assert not StackConfig.from_env({"COURSE_HISTORY": "0"}).history
    assert StackConfig.from_env({}).history


def test_missing_promtool_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(supervisor.MissingBinaryError, match="install|brew"):
        backfill.place_before_start(_cfg(tmp_path), print)
    assert not (tmp_path / "state" / "history.json").exists()


@pytest.mark.process
def test_failing_promtool_shows_its_words_and_the_way_out(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "promtool"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'block writer: invalid magic number' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(history, "write_openmetrics", _tiny_day)
    cfg = _cfg(tmp_path)
    with pytest.raises(backfill.HistoryError) as err:
        backfill.place_before_start(cfg, print)
    message = str(err.value)
    assert "exit 3" in message and "invalid magic number" in message
    assert "COURSE_HISTORY=0" in message
    assert not (cfg.state_dir / "history.json").exists()
    assert not (cfg.state_dir / backfill.SCRATCH).exists()


def test_disk_full_before_writing(tmp_path, monkeypatch):
    real = backfill.shutil.disk_usage
    monkeypatch.setattr(backfill.shutil, "disk_usage", lambda p: real(p)._replace(free=10 * 2**20))
    cfg = _cfg(tmp_path)
    with pytest.raises(backfill.HistoryError, match="not enough disk space.*10 MB are free"):
        backfill.place_before_start(cfg, print)
    assert not (cfg.state_dir / backfill.SCRATCH).exists()


def test_disk_full_while_writing(tmp_path, monkeypatch):
    def full(path, start, instance, points=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(history, "write_openmetrics", full)
    cfg = _cfg(tmp_path)
    with pytest.raises(backfill.HistoryError, match="not enough disk space"):
        backfill.place_before_start(cfg, print)
    assert not (cfg.state_dir / backfill.SCRATCH).exists()


def test_data_dir_of_another_prometheus_version_is_refused_and_left_alone(tmp_path):
    cfg = _cfg(tmp_path)
    block = cfg.data_dir / "prometheus" / "01HV0000000000000000000000"
    block.mkdir(parents=True)
    meta = '{"version": 2, "ulid": "01HV0000000000000000000000"}'
    (block / "meta.json").write_text(meta)
    with pytest.raises(backfill.HistoryError, match="another Prometheus version"):
        backfill.place_before_start(cfg, print)
    assert (block / "meta.json").read_text() == meta


def test_damaged_record_says_what_to_delete(tmp_path):
    cfg = _cfg(tmp_path)
    cfg.state_dir.mkdir(parents=True)
    (cfg.state_dir / "history.json").write_text("{not json")
    with pytest.raises(backfill.HistoryError, match="history.json is damaged"):
        backfill.window(cfg)


@pytest.mark.process
def test_fresh_tsdb_gets_the_day_before_start_and_only_once(tmp_path):
    cfg = _cfg(tmp_path)
    lines = []
    now = 1_795_000_007.5
    assert backfill.place_before_start(cfg, lines.append, now=now)
    day = backfill.window(cfg)
    assert day.end == 1_795_000_005 and day.start == day.end - history.DAY
    assert day.instance == cfg.address("service")
    assert (day.series, day.samples, day.version) == (274, 1_523_071, history.VERSION)
    assert any("274 series, 1,523,071 samples" in line for line in lines)
    blocks = sorted(p.name for p in (cfg.data_dir / "prometheus").iterdir())
    assert len(blocks) == 2
    # A second start adds nothing.
    assert backfill.place_before_start(cfg, lines.append, now=now + 600)
    assert sorted(p.name for p in (cfg.data_dir / "prometheus").iterdir()) == blocks
    assert backfill.window(cfg) == day
    # Once retention has started deleting the day, it needs a fresh one.
    assert not day.aged_out(now + 28 * 86_400) and day.aged_out(now + 31 * 86_400)


@pytest.mark.process
def test_an_interrupted_move_is_finished_at_the_next_start(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path)
    real_rename = backfill.Path.rename
    moved = []

    def crash_after_one(self, target):
        if moved:
            raise KeyboardInterrupt("the machine went down")
        moved.append(self.name)
        return real_rename(self, target)

    monkeypatch.setattr(backfill.Path, "rename", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        backfill.place_before_start(cfg, print, now=1_795_000_007)
    monkeypatch.undo()
    half = backfill.window(cfg)
    assert not half.complete and len(half.blocks) == 2 and moved == [half.blocks[0]]
    lines = []
    assert backfill.place_before_start(cfg, lines.append, now=1_795_000_007 + 60)
    day = backfill.window(cfg)
    assert day.complete and day.blocks == half.blocks and day.start == half.start
    assert sorted(p.name for p in (cfg.data_dir / "prometheus").iterdir()) == list(day.blocks)
    assert lines == ["history: finished moving in the blocks of an interrupted backfill"]
    assert not (cfg.state_dir / backfill.SCRATCH).exists()


# --- exact values on the test stack --------------------------------------------------------------


def _one(stack, promql: str, at: float) -> float:
    df = stack.query(promql, time=at)
    assert len(df) == 1, f"{promql}: {len(df)} series\n{df}"
    return float(df["value"].iloc[0])


def _series(day, name: str, **labels: str) -> list[history.Series]:
    return [
        s
        for s in history.series(name, instance=day.instance)
        if all(s.label(k) == v for k, v in labels.items())
    ]


def _same(got: float, want: float) -> bool:
    if math.isnan(want):
        return math.isnan(got)
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.stack
def test_the_test_stack_has_the_whole_day_and_no_live_sample_inside_it(stack):
    day = stack.history_window()
    assert day.instance == stack.config.address("service")
    # No live sample inside the day: Prometheus' own scrapes start after it ends.
    assert stack.query('count_over_time(up{job="prometheus"}[1d])', time=day.end - 1).empty
    n = _one(stack, 'count_over_time(up{job="vrewcraft-backend"}[1d])', day.end - 1)
    assert n == history.POINTS


@pytest.mark.stack
def test_exact_values_at_fixed_offsets(stack):
    day = stack.history_window()
    incident = history.event("thumbnail_incident").start + 10 * 60  # 19:50
    burst = history.event("error_burst").start + 10 * 60  # 14:20
    after_deploy = 11 * H  # the last hour includes the restart at 10:30
    http = "vrewcraft_http_requests_total"
    videos = {"method": "GET", "route": "/api/videos", "status_code": "200"}
    (rss,) = _series(day, "process_resident_memory_bytes")
    (cpu,) = _series(day, "process_cpu_seconds_total")
    (ratio_gauge,) = _series(day, "vrewcraft_thumbnail_cache_hit_ratio")

    def rate_sum(series, at, window=300):
        return sum(r for s in series if (r := rate(s.values, at, window)) is not None)

    cases = [
        (
            "p99 of thumbnails during the incident",
            "histogram_quantile(0.99, sum by (le) "
            "(rate(vrewcraft_thumbnail_duration_seconds_bucket[5m])))",
            incident,
            histogram_rate_quantile(
                0.99, _series(day, "vrewcraft_thumbnail_duration_seconds_bucket"), incident
            ),
        ),
        (
            "p99 of cache misses during the incident",
            "histogram_quantile(0.99, sum by (le) "
            "(rate(vrewcraft_thumbnail_miss_duration_seconds_bucket[5m])))",
            incident,
            histogram_rate_quantile(
                0.99, _series(day, "vrewcraft_thumbnail_miss_duration_seconds_bucket"), incident
            ),
        ),
        (
            "API p50 at noon",
            "histogram_quantile(0.5, sum by (le) "
            "(rate(vrewcraft_http_request_duration_seconds_bucket[5m])))",
            12 * H,
            histogram_rate_quantile(
                0.5, _series(day, "vrewcraft_http_request_duration_seconds_bucket"), 12 * H
            ),
        ),
        (
            "p95 of GET /api/videos during the error burst",
            "histogram_quantile(0.95, sum by (le) (rate(vrewcraft_http_request_duration_"
            'seconds_bucket{route="/api/videos"}[5m])))',
            burst,
            histogram_rate_quantile(
                0.95,
                _series(day, "vrewcraft_http_request_duration_seconds_bucket", route="/api/videos"),
                burst,
            ),
        ),
        (
            "error ratio during the burst",
            f'sum(rate({http}{{status_code=~"5.."}}[5m])) / sum(rate({http}[5m]))',
            burst,
            rate_sum([s for s in _series(day, http) if s.label("status_code")[0] == "5"], burst)
            / rate_sum(_series(day, http), burst),
        ),
        (
            "increase() across the deploy's counter reset",
            f'increase({http}{{method="GET",route="/api/videos",status_code="200"}}[1h])',
            after_deploy,
            increase(_series(day, http, **videos)[0].values, after_deploy, 3600),
        ),
        (
            "requests in the hour of the deploy",
            f"sum(increase({http}[1h]))",
            after_deploy,
            sum(increase(s.values, after_deploy, 3600) or 0.0 for s in _series(day, http)),
        ),
        (
            "cache hit ratio from counters during the incident",
            'sum(rate(vrewcraft_thumbnail_requests_total{cache_status="hit"}[5m])) '
            "/ sum(rate(vrewcraft_thumbnail_requests_total[5m]))",
            incident,
            rate_sum(
                _series(day, "vrewcraft_thumbnail_requests_total", cache_status="hit"), incident
            )
            / rate_sum(_series(day, "vrewcraft_thumbnail_requests_total"), incident),
        ),
        (
            "the seed's hit ratio gauge during the incident",
            "vrewcraft_thumbnail_cache_hit_ratio",
            incident,
            instant(ratio_gauge.values, incident),
        ),
        (
            "CPU use at 08:00",
            "rate(process_cpu_seconds_total[5m])",
            8 * H,
            rate(cpu.values, 8 * H, 300),
        ),
        (
            "resident memory just after the deploy",
            "process_resident_memory_bytes",
            after_deploy,
            instant(rss.values, after_deploy),
        ),
        (
            "ffmpeg errors per second during the incident",
            "sum(rate(vrewcraft_ffmpeg_errors_total[5m]))",
            incident,
            rate_sum(_series(day, "vrewcraft_ffmpeg_errors_total"), incident),
        ),
        (
            "irate of thumbnails at 20:00",
            f'irate({http}{{route="{THUMB}",status_code="200"}}[1m])',
            20 * H,
            irate(_series(day, http, route=THUMB, status_code="200")[0].values, 20 * H, 60),
        ),
        (
            "process restarts seen in the hour of the deploy",
            "resets(process_cpu_seconds_total[1h])",
            after_deploy,
            float(resets(cpu.values, after_deploy, 3600)),
        ),
        (
            "average trim time in the afternoon",
            'rate(vrewcraft_ffmpeg_duration_seconds_sum{operation="trim"}[30m]) / '
            'rate(vrewcraft_ffmpeg_duration_seconds_count{operation="trim"}[30m])',
            16 * H,
            rate(
                _series(day, "vrewcraft_ffmpeg_duration_seconds_sum", operation="trim")[0].values,
                16 * H,
                1800,
            )
            / rate(
                _series(day, "vrewcraft_ffmpeg_duration_seconds_count", operation="trim")[0].values,
                16 * H,
                1800,
            ),
        ),
    ]
    wrong = []
    for what, promql, offset, want in cases:
        got = _one(stack, promql, day.at(offset))
        if not _same(got, want):
            wrong.append(f"{what}: Prometheus {got!r}, from the day's samples {want!r}")
    assert not wrong, "\n".join(wrong)
    # The headline numbers are what the story says.
    assert cases[0][3] > 0.05  # the incident's thumbnail p99 crosses 50 ms
    assert cases[4][3] > 0.05  # the burst's error ratio crosses 5 %
    assert cases[13][3] == 1.0  # one restart


@pytest.mark.stack
def test_second_up_adds_nothing(stack):
    before = stack.history_window()
    blocks = sorted((stack.config.data_dir / "prometheus").glob("*/meta.json"))
    again = stack_mod.up(stack.config)
    assert again.started == [] and again.history_window() == before
    assert sorted((stack.config.data_dir / "prometheus").glob("*/meta.json")) == blocks


# --- survives a crash, never eats live data, and a day that aged out is replaced ----------------


@pytest.mark.stack
def test_history_survives_restarts_and_a_crash_and_is_replaced_when_aged_out(tmp_path):
    from test_stack import free_port

    cfg = StackConfig(
        state_dir=tmp_path / "state",
        ports={n: free_port() for n in DEFAULT_PORTS},
        monitoring_dir=repo_root() / "monitoring",
        traffic=False,
    )
    url = cfg.url("prometheus")
    count_day = 'count_over_time(up{job="vrewcraft-backend"}[1d])'
    try:
        stack = stack_mod.up(cfg)
        day = stack.history_window()
        # A few live scrapes (the lab scrapes every 2 s) before the crash.
        stack.wait_for('count_over_time(up{job="prometheus"}[10m]) >= 2', timeout=30)
        crash_at = time.time()
        live = prom.query(url, 'count_over_time(up{job="prometheus"}[10m])', time=crash_at)
        live_before = float(live["value"].iloc[0])
        assert live_before >= 2
        # kill -9 Prometheus, then `up` again: the day and the live samples are still there.
        pid = supervisor.read_pid(stack_mod.component("prometheus").pid_file(cfg)).pid
        os.kill(pid, signal.SIGKILL)
        stack = stack_mod.up(cfg)
        assert prom.query(url, count_day, time=day.end - 1)["value"].iloc[0] == history.POINTS
        live = prom.query(url, 'count_over_time(up{job="prometheus"}[10m])', time=crash_at)
        assert float(live["value"].iloc[0]) >= live_before
        # down/up: same.
        stack_mod.down(cfg)
        stack = stack_mod.up(cfg)
        assert stack.history_window() == day
        assert prom.query(url, count_day, time=day.end - 1)["value"].iloc[0] == history.POINTS
        # Pretend the day aged out of retention: `up` places a fresh one before all the data.
        record = cfg.state_dir / "history.json"
        old = json.loads(record.read_text())
        record.write_text(json.dumps({**old, "start": old["start"] - 40 * 86_400}))
        stack = stack_mod.up(cfg)
        fresh = stack.history_window()
        assert fresh.end <= day.start, "the fresh day overlaps the old one"
        assert prom.query(url, count_day, time=fresh.end - 1)["value"].iloc[0] == history.POINTS
        assert prom.query(url, count_day, time=day.end - 1)["value"].iloc[0] == history.POINTS
    finally:
        stack_mod.down(cfg)


@pytest.mark.process
def test_doctor_says_where_the_day_is_and_when_it_is_outdated(tmp_path):
    cfg = _cfg(tmp_path)
    assert ("ok", "day of history: not written yet; `up` writes it") in stack_mod.doctor(cfg)
    cfg.state_dir.mkdir(parents=True)
    day = {"start": 1_795_000_005 - 86_400, "end": 1_795_000_005, "instance": "x"}
    record = cfg.state_dir / "history.json"
    record.write_text(json.dumps({**day, "version": history.VERSION}))
    line = next(text for _, text in stack_mod.doctor(cfg) if text.startswith("day of history"))
    assert "2026-11-17 11:06 → 2026-11-18 11:06 UTC" in line
    record.write_text(json.dumps({**day, "version": "0123456789ab"}))
    level, text = next(f for f in stack_mod.doctor(cfg) if f[1].startswith("day of history"))
    assert level == "warn" and "make clean" in text

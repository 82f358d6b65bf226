"""``python -m course_lib.service``: the process the stack supervisor starts."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from course_lib.service.testing import env_without_redis
from course_lib.supervisor import free_port, http_ok, poll, stop_child

# Starts the service's CLI as a process; it renders its samples with ffmpeg.
pytestmark = [pytest.mark.ffmpeg, pytest.mark.process]


def start(data_dir, port):
    """Start the service; return the process."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "course_lib.service",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        env=env_without_redis(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_healthy(proc, url, timeout=20.0) -> float:
    """Wait for /healthz to answer 200; return seconds waited."""
    began = time.monotonic()

    def alive() -> bool:
        return proc.poll() is None

    healthy = poll(lambda: http_ok(f"{url}/healthz"), timeout, interval=0.02, alive=alive)
    assert alive(), proc.stdout.read().decode()
    assert healthy, "service not healthy in time"
    return time.monotonic() - began


def stop(proc) -> int:
    """Send SIGTERM and return the exit code."""
    return stop_child(proc, timeout=15)


def test_cold_start_serves_metrics_and_stops_cleanly_then_reuses_samples(tmp_path):
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(data_dir, port)
    try:
        wait_healthy(proc, url)
        metrics = httpx.get(f"{url}/metrics").text
        assert "process_resident_memory_bytes" in metrics
        assert "vrewcraft_db_pool_connections" in metrics
        videos = httpx.get(f"{url}/api/videos").json()["videos"]
        assert len([v for v in videos if v["source"] == "sample"]) == 4
    finally:
        assert stop(proc) == 0
    samples = sorted((data_dir / "samples").iterdir())
    assert [p.name for p in samples] == [f"sample-{i}.mp4" for i in range(1, 5)]
    mtimes = [p.stat().st_mtime_ns for p in samples]

    proc = start(data_dir, port)
    try:
        wait_healthy(proc, url)
        assert len(httpx.get(f"{url}/api/videos").json()["videos"]) == 4
    finally:
        assert stop(proc) == 0
    assert [p.stat().st_mtime_ns for p in sorted((data_dir / "samples").iterdir())] == mtimes
    assert not any(name.endswith(".partial") for name in os.listdir(data_dir / "samples"))


def test_binds_loopback_by_default():
    from course_lib.service.__main__ import parse_args

    args = parse_args([])
    assert (args.host, args.port) == ("127.0.0.1", 3001)

"""Crash drill: kill -9 the service mid-trim, start it again, and check it recovers.

After a SIGKILL nothing of the service's own cleanup runs. What must still hold:
ffmpeg dies with it (the kernel's parent-death signal), and the next start fails the
jobs that were queued or running (with a reason, so their WebSockets close), removes
the half-written ``.partial`` outputs, and counts only the WebSockets really open.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx
import psutil
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from course_lib.service.media import make_clip
from course_lib.service.testing import env_without_redis, free_port, seeded_settings
from course_lib.supervisor import poll, stop_child

# The service runs as its own process and trims with ffmpeg.
pytestmark = [pytest.mark.ffmpeg, pytest.mark.process]


def start(data_dir, port) -> subprocess.Popen:
    """Start the service as the stack does; return once it answers /healthz."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "course_lib.service", "--port", str(port)]
        + ["--data-dir", str(data_dir)],
        env=env_without_redis(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    assert poll(healthy, timeout=30, alive=lambda: proc.poll() is None), "service didn't start"
    return proc


def websocket_gauge(url: str) -> float:
    """Return vrewcraft_websocket_connections as the service exposes it."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    line = next(x for x in text.splitlines() if x.startswith("vrewcraft_websocket_connections "))
    return float(line.split()[1])


def test_kill_9_mid_trim_then_restart_recovers(tmp_path):
    data_dir = tmp_path / "data"
    seeded_settings(data_dir, sample_count=4)  # the CLI's 4 samples, copied: a fast start
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ws_url = f"ws://127.0.0.1:{port}"
    proc = start(data_dir, port)
    try:
        # A minute of 640x360 video: each trim re-encodes for seconds.
        clip = make_clip(tmp_path / "long.mp4", seconds=60, size="640x360")
        with clip.open("rb") as fh:
            video = httpx.post(f"{url}/api/upload", files={"file": fh}, timeout=60).json()
        # Two trims run (the default slots), the third waits in the queue.
        jobs = [
            httpx.post(
                f"{url}/api/videos/{video['id']}/trim", json={"start": 0, "end": 59}, timeout=10
            ).json()["job_id"]
            for _ in range(3)
        ]

        def running() -> list[str]:
            states = [httpx.get(f"{url}/api/jobs/{j}", timeout=5).json() for j in jobs]
            return [s["status"] for s in states if s["progress"] > 0]

        assert poll(lambda: running() == ["running", "running"], timeout=30), running()
        ffmpegs = [p for p in psutil.Process(proc.pid).children(recursive=True)]
        assert len(ffmpegs) == 2 and all(p.name() == "ffmpeg" for p in ffmpegs), ffmpegs
        assert list((data_dir / "processed").glob(".*.partial"))

        # A client that leaves is no longer counted, even though its job has no news.
        with connect(f"{ws_url}/ws/jobs/{jobs[2]}") as watcher:
            assert json.loads(watcher.recv(timeout=5))["status"] == "queued"
            with connect(f"{ws_url}/ws/jobs/{jobs[2]}") as leaver:
                leaver.recv(timeout=5)
                assert websocket_gauge(url) == 2
            assert poll(lambda: websocket_gauge(url) == 1, timeout=5), websocket_gauge(url)

            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            gone, alive = psutil.wait_procs(ffmpegs, timeout=5)
            assert alive == [], f"ffmpeg outlived the service: {alive}"
            try:
                watcher.recv(timeout=5)
                raise AssertionError("the WebSocket stayed open after the service died")
            except ConnectionClosed:
                pass
    finally:
        if proc.poll() is None:
            proc.kill()

    proc = start(data_dir, port)
    try:
        assert list((data_dir / "processed").glob(".*.partial")) == []
        for job_id in jobs:
            job = httpx.get(f"{url}/api/jobs/{job_id}", timeout=5).json()
            assert job["status"] == "failed", job
            assert job["error"].startswith("interrupted: the service stopped while this job")
            assert job["finished_at"] is not None
            # A watcher of an interrupted job gets its final state and a normal close.
            with connect(f"{ws_url}/ws/jobs/{job_id}") as ws:
                assert json.loads(ws.recv(timeout=5))["status"] == "failed"
                try:
                    ws.recv(timeout=5)
                except ConnectionClosed as closed:
                    assert closed.rcvd is not None and closed.rcvd.code == 1000
        running_state = {httpx.get(f"{url}/api/jobs/{j}").json()["error"] for j in jobs}
        assert any("was running" in e for e in running_state)
        assert any("was queued" in e for e in running_state)
        assert poll(lambda: websocket_gauge(url) == 0, timeout=5)
        # And the service works: a new trim of the same video succeeds.
        job = httpx.post(
            f"{url}/api/videos/{video['id']}/trim", json={"start": 0, "end": 2}, timeout=10
        ).json()
        done = lambda: httpx.get(f"{url}/api/jobs/{job['job_id']}").json()["status"]  # noqa: E731
        assert poll(lambda: done() in ("succeeded", "failed"), timeout=60)
        assert done() == "succeeded"
    finally:
        stop_child(proc, timeout=15)

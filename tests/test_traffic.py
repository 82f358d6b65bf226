"""The traffic generator: fixed rate, seeded mix, realistic hit ratio, clean stops."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading

import pytest
from prometheus_client import CollectorRegistry

from course_lib.service.app import make_app
from course_lib.service.testing import seeded_settings, serve_in_thread
from course_lib.supervisor import poll
from course_lib.traffic import (
    STANDARD_MIX,
    TrafficRunner,
    _Catalog,
    _Generator,
    _hot_frames,
    run_traffic,
)

# Drives a real service whose samples (and the mix's uploads) ffmpeg renders.
pytestmark = pytest.mark.ffmpeg


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """Yield (base URL, registry) of a real uvicorn-served app."""
    registry = CollectorRegistry()
    app = make_app(
        registry=registry,
        settings=seeded_settings(tmp_path_factory.mktemp("traffic"), sample_count=2),
    )
    with serve_in_thread(app) as url:
        yield url, registry


def plans(seed: int, n: int = 300) -> list[tuple[str, dict]]:
    """Return the first ``n`` planned requests of a generator with ``seed``."""
    gen = _Generator("http://x", 10, 1, seed, False, threading.Event(), STANDARD_MIX, 8, 5, print)
    videos = [("sample-1", 6.0), ("sample-2", 6.0)]
    gen.catalog = _Catalog(videos, *_hot_frames(videos))
    out = []
    for _ in range(n):
        kind = gen.rng.choices(gen.kinds, gen.weights)[0]
        out.append((kind, gen._plan(kind)))
    return out


def test_the_mix_is_deterministic_per_seed_and_skewed():
    assert plans(3) == plans(3)
    assert plans(3) != plans(4)
    kinds = [k for k, _ in plans(3, 2000)]
    assert kinds.count("thumbnail") / len(kinds) == pytest.approx(0.64, abs=0.05)
    for kind in ("upload", "trim", "not_found", "bad_request", "list_videos"):
        assert kind in kinds
    thumbs = [(p["video"], p["t"]) for k, p in plans(3, 2000) if k == "thumbnail"]
    top = max(set(thumbs), key=thumbs.count)
    assert thumbs.count(top) / len(thumbs) > 0.1  # a hot frame, not a uniform spread


def test_fixed_rate_mix_and_hit_ratio_against_the_service(service):
    url, registry = service
    lines: list[str] = []
    warm = run_traffic(
        url, rate=25, duration=4, seed=1, progress=True, progress_every=1.0, out=lines.append
    )
    # Open loop: every scheduled request is sent, or counted as skipped if the service
    # fell more than max_in_flight requests behind (it shouldn't at this rate).
    assert warm.sent + warm.skipped == 100 and warm.transport_errors == 0
    assert warm.sent >= 90
    assert any(line.startswith("[traffic ") for line in lines)
    assert lines[-1].startswith("[traffic done]")
    statuses = warm.status_counts()
    assert statuses["5xx"] == 0, warm.as_dict()
    assert statuses["4xx"] >= 3  # the 404s and bad requests of the mix

    # Another seed: different requests, same popular frames (now cached): steady state.
    # The long-run ratio (~0.9) is measured by bench/service.py; a short run is noisier.
    steady = run_traffic(url, rate=25, duration=6, seed=2, progress=False)
    assert 0.8 <= steady.hit_ratio <= 0.98, steady.as_dict()
    hits = registry.get_sample_value("vrewcraft_thumbnail_requests_total", {"cache_status": "hit"})
    assert hits == warm.thumbnail_hits + steady.thumbnail_hits


def test_uploads_and_trims_of_the_mix_succeed(service):
    url, _ = service
    summary = run_traffic(
        url, rate=10, duration=2, seed=3, progress=False, mix={"upload": 1, "trim": 1}
    )
    assert summary.by_kind["upload"][201] >= 3, summary.as_dict()
    assert summary.by_kind["trim"][202] >= 3, summary.as_dict()


def test_runs_inside_a_running_event_loop_like_jupyter(service):
    url, _ = service

    async def notebook_cell():
        return run_traffic(url, rate=20, duration=1, seed=2, progress=False)

    assert asyncio.run(notebook_cell()).sent == 20


def test_background_runner_stops_on_request(service):
    url, _ = service
    runner = TrafficRunner(url, rate=20, duration=0, seed=5).start()
    assert poll(lambda: runner.summary.sent >= 10, timeout=10, interval=0.05)
    assert runner.running
    summary = runner.stop()
    assert not runner.running and summary.sent >= 10


def test_cli_runs_until_sigterm_and_prints_a_summary(service):
    url, _ = service
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "course_lib.traffic",
            "--target",
            url,
            "--rate",
            "20",
            "--duration",
            "0",
            "--json",
            "--progress-every",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Two progress lines (one per 0.5 s of sending): the generator is well under way,
    # however long the process took to start.
    progress = [proc.stderr.readline() for _ in range(2)]
    assert all(line.startswith("[traffic") for line in progress), progress
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["sent"] >= 10 and summary["status"].get("5xx", 0) == 0
    assert "[traffic" in err


def test_rejects_nonsense_arguments():
    with pytest.raises(ValueError):
        TrafficRunner("http://127.0.0.1:1", rate=0)
    with pytest.raises(ValueError):
        run_traffic("http://127.0.0.1:1", duration=0)

"""The VrewCraft endpoints work for real (ffmpeg, SQLite, cache) and are measured."""

from __future__ import annotations

import io
import random
import string
import time

import av
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from course_lib.lesson import sample_value as value
from course_lib.service.app import make_app
from course_lib.service.media import make_clip
from course_lib.service.middleware import UNMATCHED_ROUTE
from course_lib.service.testing import seeded_settings
from course_lib.supervisor import poll

# Every test here renders or decodes real video with ffmpeg.
pytestmark = pytest.mark.ffmpeg

THUMB_ROUTE = "/api/videos/{video_id}/thumbnail"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """Yield (client, registry, data_dir) of one started app shared by this module."""
    data_dir = tmp_path_factory.mktemp("service")
    registry = CollectorRegistry()
    app = make_app(registry=registry, settings=seeded_settings(data_dir))
    with TestClient(app) as client:
        yield client, registry, data_dir


def test_healthz_and_sample_videos(service):
    client, _, _ = service
    assert client.get("/healthz").json() == {"status": "ok", "cache": "lru", "samples": 2}
    listing = client.get("/api/videos").json()
    ids = {v["id"] for v in listing["videos"]}
    assert {"sample-1", "sample-2"} <= ids
    video = client.get("/api/videos/sample-1").json()
    assert video["duration"] == pytest.approx(6.0, abs=0.1)
    assert video["width"] == 320 and video["codec"] == "h264"
    assert "path" not in video


def test_thumbnail_miss_then_hit_is_counted_and_timed_apart(service):
    client, registry, _ = service
    before_miss = value(registry, "vrewcraft_thumbnail_requests_total", cache_status="miss")
    before_hit = value(registry, "vrewcraft_thumbnail_requests_total", cache_status="hit")
    before_all = value(registry, "vrewcraft_thumbnail_duration_seconds_count")
    before_misses = value(registry, "vrewcraft_thumbnail_miss_duration_seconds_count")

    first = client.get("/api/videos/sample-2/thumbnail", params={"t": 2.5})
    second = client.get("/api/videos/sample-2/thumbnail", params={"t": 2.5})
    assert first.status_code == second.status_code == 200
    assert first.headers["content-type"] == "image/jpeg"
    assert first.content[:2] == b"\xff\xd8"  # JPEG magic
    with av.open(io.BytesIO(first.content), format="image2pipe") as jpeg:
        assert next(jpeg.decode(video=0)).width == 160  # Settings.thumbnail_width
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert first.content == second.content

    assert (
        value(registry, "vrewcraft_thumbnail_requests_total", cache_status="miss")
        == before_miss + 1
    )
    assert (
        value(registry, "vrewcraft_thumbnail_requests_total", cache_status="hit") == before_hit + 1
    )
    assert value(registry, "vrewcraft_thumbnail_duration_seconds_count") == before_all + 2
    assert value(registry, "vrewcraft_thumbnail_miss_duration_seconds_count") == before_misses + 1
    ratio = value(registry, "vrewcraft_thumbnail_cache_hit_ratio")
    assert 0 < ratio < 1
    assert value(registry, "vrewcraft_ffmpeg_jobs_active") == 0


def test_different_times_give_different_frames(service):
    client, _, _ = service
    a = client.get("/api/videos/sample-1/thumbnail", params={"t": 0.5}).content
    b = client.get("/api/videos/sample-1/thumbnail", params={"t": 4.0}).content
    assert a != b


def test_route_label_is_the_template_not_the_path(service):
    client, registry, _ = service
    client.get("/api/videos/sample-1")
    client.get("/api/videos/sample-2")
    assert (
        value(
            registry,
            "vrewcraft_http_requests_total",
            method="GET",
            route="/api/videos/{video_id}",
            status_code="200",
        )
        >= 2
    )
    text = client.get("/metrics").text
    assert 'route="/api/videos/sample-1"' not in text


def test_a_thousand_unknown_paths_add_at_most_one_route_value(service):
    client, _, _ = service

    def routes() -> set[str]:
        text = client.get("/metrics").text
        return {
            s.labels["route"]
            for f in text_string_to_metric_families(text)
            if f.name == "vrewcraft_http_requests"
            for s in f.samples
        }

    before = routes()
    rng = random.Random(7)
    for _ in range(1000):
        depth = rng.randint(1, 4)
        path = "/" + "/".join(
            "".join(rng.choices(string.ascii_letters + "-._~%20", k=8)) for _ in range(depth)
        )
        method = rng.choice(["GET", "POST", "DELETE", "BREW"])
        client.request(method, path)
    new = routes() - before
    assert new <= {UNMATCHED_ROUTE}, new
    assert len(new) <= 1


def test_unknown_methods_are_folded_into_other(service):
    client, registry, _ = service
    client.request("PROPFIND", "/api/videos")
    methods = {
        s.labels["method"]
        for f in text_string_to_metric_families(client.get("/metrics").text)
        if f.name == "vrewcraft_http_requests"
        for s in f.samples
    }
    assert "PROPFIND" not in methods and "OTHER" in methods


def test_upload_stores_file_and_row_and_counts_success(service, tmp_path):
    client, registry, data_dir = service
    clip = make_clip(tmp_path / "clip.mp4")
    before = value(registry, "vrewcraft_video_uploads_total", status="success")
    with clip.open("rb") as fh:
        response = client.post("/api/upload", files={"file": ("my clip.mp4", fh, "video/mp4")})
    assert response.status_code == 201, response.text
    video = response.json()
    assert video["source"] == "upload" and video["filename"] == "my clip.mp4"
    assert video["size_bytes"] == clip.stat().st_size
    assert (data_dir / "uploads" / f"{video['id']}.video").read_bytes() == clip.read_bytes()
    assert client.get(f"/api/videos/{video['id']}").status_code == 200
    assert value(registry, "vrewcraft_video_uploads_total", status="success") == before + 1
    assert value(registry, "vrewcraft_upload_duration_seconds_count") >= 1
    assert list((data_dir / "tmp").iterdir()) == []


def test_trim_job_streams_real_progress_over_websocket(service):
    client, registry, data_dir = service
    before = value(registry, "vrewcraft_video_edits_total", edit_type="trim", status="success")
    started = client.post("/api/videos/sample-1/trim", json={"start": 0.5, "end": 5.5})
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    updates = []
    with client.websocket_connect(f"/ws/jobs/{job_id}") as ws:
        assert value(registry, "vrewcraft_websocket_connections") == 1
        while True:
            message = ws.receive_json()
            updates.append(message)
            if message["status"] in ("succeeded", "failed"):
                break
    assert updates[-1]["status"] == "succeeded", updates[-1]
    progress = [u["progress"] for u in updates]
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    assert any(0 < p < 1 for p in progress), "no intermediate progress from ffmpeg"
    poll(lambda: value(registry, "vrewcraft_websocket_connections") == 0, timeout=2, interval=0.01)
    assert value(registry, "vrewcraft_websocket_connections") == 0

    job = client.get(f"/api/jobs/{job_id}").json()
    output = client.get(f"/api/videos/{job['output_video_id']}").json()
    assert output["source"] == "trim"
    assert output["duration"] == pytest.approx(5.0, abs=0.2)
    assert (
        value(registry, "vrewcraft_video_edits_total", edit_type="trim", status="success")
        == before + 1
    )
    assert value(registry, "vrewcraft_ffmpeg_duration_seconds_count", operation="trim") >= 1
    assert value(registry, "vrewcraft_ffmpeg_jobs_active") == 0
    assert not [p for p in (data_dir / "processed").iterdir() if p.name.endswith(".partial")]


def test_websocket_for_unknown_job_says_so_and_closes(service):
    client, registry, _ = service
    with client.websocket_connect("/ws/jobs/nope") as ws:
        assert ws.receive_json()["error"] == "not_found"
    assert value(registry, "vrewcraft_websocket_connections") == 0


def test_every_catalog_metric_is_exposed(service):
    client, _, _ = service
    client.get("/api/videos/sample-1/thumbnail", params={"t": 1})
    text = client.get("/metrics").text
    for name in (
        "vrewcraft_http_requests_total",
        "vrewcraft_video_uploads_total",
        "vrewcraft_video_edits_total",
        "vrewcraft_thumbnail_requests_total",
        "vrewcraft_http_request_duration_seconds_bucket",
        "vrewcraft_thumbnail_duration_seconds_bucket",
        "vrewcraft_thumbnail_miss_duration_seconds_bucket",
        "vrewcraft_ffmpeg_duration_seconds_bucket",
        "vrewcraft_upload_duration_seconds_bucket",
        "vrewcraft_websocket_connections",
        "vrewcraft_ffmpeg_jobs_active",
        "vrewcraft_thumbnail_cache_hit_ratio",
        'vrewcraft_memory_usage_bytes{type="rss"}',
        'vrewcraft_db_pool_connections{state="total"}',
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ):
        assert name in text, name
    total = [
        s
        for f in text_string_to_metric_families(text)
        if f.name == "vrewcraft_db_pool_connections"
        for s in f.samples
        if s.labels["state"] == "total"
    ]
    assert total[0].value >= 1  # the pool really opened connections


def test_fault_switch_latency_errors_flush_and_broken_ffmpeg(service):
    client, registry, _ = service
    assert client.get("/admin/faults").json()["error_ratio"] == 0
    try:
        state = client.post(
            "/admin/faults",
            json={
                "latency": {"/api/videos/{video_id}": 0.2},
                "error_ratio": 1.0,
                "error_routes": ["/api/videos"],
            },
        ).json()
        assert state["latency"] == {"/api/videos/{video_id}": 0.2}
        start = time.perf_counter()
        assert client.get("/api/videos/sample-1").status_code == 200
        assert time.perf_counter() - start >= 0.2
        failed = client.get("/api/videos")
        assert failed.status_code == 500 and failed.json()["error"] == "injected_fault"
        assert client.get("/metrics").status_code == 200  # monitoring unaffected
        assert (
            value(
                registry,
                "vrewcraft_http_requests_total",
                method="GET",
                route="/api/videos",
                status_code="500",
            )
            >= 1
        )

        client.get("/api/videos/sample-2/thumbnail", params={"t": 3.3})
        flushed = client.post("/admin/faults", json={"flush_cache": True}).json()
        assert flushed["cache_flushes"] == 1
        again = client.get("/api/videos/sample-2/thumbnail", params={"t": 3.3})
        assert again.headers["x-cache"] == "MISS"

        errors = value(registry, "vrewcraft_ffmpeg_errors_total", operation="thumbnail")
        client.put("/admin/faults", json={"ffmpeg_broken": True})
        broken = client.get("/api/videos/sample-2/thumbnail", params={"t": 4.4})
        assert broken.status_code == 500 and broken.json()["error"] == "ffmpeg_failed"
        assert "thumbnail failed" in broken.json()["detail"]
        assert "injected fault" in broken.json()["detail"]
        assert value(registry, "vrewcraft_ffmpeg_errors_total", operation="thumbnail") == errors + 1
        assert value(registry, "vrewcraft_ffmpeg_jobs_active") == 0
        assert client.get("/api/videos").status_code == 200  # PUT replaced the error ratio
    finally:
        cleared = client.delete("/admin/faults").json()
    assert cleared["ffmpeg_broken"] is False and cleared["latency"] == {}
    assert client.get("/api/videos/sample-2/thumbnail", params={"t": 4.4}).status_code == 200


def test_fault_switch_rejects_nonsense(service):
    client, _, _ = service
    assert client.post("/admin/faults", json={"error_ratio": 2}).status_code == 422
    assert client.post("/admin/faults", json={"latency": {"*": -1}}).status_code == 422
    assert client.post("/admin/faults", json={"surprise": 1}).status_code == 422

"""Bad input to the service: each case gets a clear JSON 4xx, is counted, leaves nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from course_lib.lesson import sample_value as value
from course_lib.service.app import make_app
from course_lib.service.media import make_clip
from course_lib.service.testing import corrupt_video, rendered_samples, seeded_settings

# Every test here renders or decodes real video with ffmpeg.
pytestmark = pytest.mark.ffmpeg

LIMIT = 256 * 1024  # a small upload limit so the 413 tests are cheap


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """Yield (client, registry, data_dir); sample-3 is a corrupt video (header intact)."""
    root = tmp_path_factory.mktemp("bad-input")
    data_dir = root / "data"
    settings = seeded_settings(data_dir, sample_count=3, max_upload_bytes=LIMIT)
    corrupt_video(rendered_samples() / "sample-1.mp4", data_dir / "samples" / "sample-3.mp4")
    (root / "outside.txt").write_text("must not be touched")
    registry = CollectorRegistry()
    with TestClient(make_app(registry=registry, settings=settings)) as client:
        yield client, registry, data_dir


def files_under(path: Path) -> dict[str, tuple[int, float]]:
    """Return relative path -> (size, mtime) for every file under ``path``, SQLite excluded."""
    return {
        str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime)
        for p in path.rglob("*")
        if p.is_file() and "sqlite3" not in p.name
    }


def assert_error(response, status: int, code: str | None = None) -> dict:
    """Assert a JSON error with ``status`` (and ``code``) and return its body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and body.get("detail")
    if code is not None:
        assert body["error"] == code, body
    return body


def call_asgi(
    client: TestClient, path: str, headers: dict[str, str], chunks: list[bytes]
) -> tuple[int, dict, int]:
    """POST ``chunks`` straight to the ASGI app; return (status, JSON body, chunks read)."""
    read = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal read
        if read < len(chunks):
            read += 1
            return {
                "type": "http.request",
                "body": chunks[read - 1],
                "more_body": read < len(chunks),
            }
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }

    async def run() -> None:
        await client.app(scope, receive, send)

    client.portal.call(run)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), read


def multipart_head(boundary: str) -> bytes:
    """Return the multipart preamble of a 'file' part."""
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="big.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
    ).encode()


class TestUploads:
    def test_non_video_is_415(self, service):
        client, registry, data_dir = service
        before = files_under(data_dir)
        rejected = value(registry, "vrewcraft_video_uploads_total", status="rejected")
        errors = value(registry, "vrewcraft_ffmpeg_errors_total", operation="probe")
        response = client.post(
            "/api/upload",
            files={"file": ("notes.mp4", b"this is a text file, not a video\n" * 50, "video/mp4")},
        )
        assert_error(response, 415, "not_a_video")
        assert value(registry, "vrewcraft_video_uploads_total", status="rejected") == rejected + 1
        # Garbage from a client is not an ffmpeg failure: no FFmpegErrorSpike from it.
        assert value(registry, "vrewcraft_ffmpeg_errors_total", operation="probe") == errors
        assert files_under(data_dir) == before

    def test_an_image_is_not_a_video(self, service):
        client, _, _ = service
        jpeg = client.get("/api/videos/sample-1/thumbnail", params={"t": 1}).content
        assert_error(
            client.post("/api/upload", files={"file": ("a.jpg", jpeg, "image/jpeg")}),
            415,
            "not_a_video",
        )

    def test_not_multipart_is_415(self, service):
        client, _, _ = service
        response = client.post(
            "/api/upload",
            content=b"\x00" * 100,
            headers={"content-type": "application/octet-stream"},
        )
        assert_error(response, 415, "unsupported_media_type")

    def test_empty_file_is_400(self, service):
        client, registry, data_dir = service
        before = files_under(data_dir)
        rejected = value(registry, "vrewcraft_video_uploads_total", status="rejected")
        assert_error(
            client.post("/api/upload", files={"file": ("empty.mp4", b"", "video/mp4")}),
            400,
            "empty_upload",
        )
        assert value(registry, "vrewcraft_video_uploads_total", status="rejected") == rejected + 1
        assert files_under(data_dir) == before

    def test_missing_file_field_is_400(self, service):
        client, _, _ = service
        assert_error(
            client.post("/api/upload", files={"video": ("a.mp4", b"x", "video/mp4")}),
            400,
            "missing_file",
        )

    def test_malformed_multipart_is_400(self, service):
        client, _, _ = service
        response = client.post(
            "/api/upload",
            content=b"--zz\r\nnot a header line\r\n\r\n",
            headers={"content-type": "multipart/form-data; boundary=zz"},
        )
        assert response.status_code == 400, response.text

    def test_declared_oversize_is_413_before_reading_the_body(self, service):
        client, registry, data_dir = service
        before = files_under(data_dir)
        rejected = value(registry, "vrewcraft_video_uploads_total", status="rejected")
        chunks = [b"\x00" * 65536] * 64  # 4 MiB, 16x the limit
        status, body, read = call_asgi(
            client,
            "/api/upload",
            {"content-type": "multipart/form-data; boundary=b0", "content-length": str(65536 * 64)},
            chunks,
        )
        assert (status, body["error"]) == (413, "too_large")
        assert read == 0
        assert value(registry, "vrewcraft_video_uploads_total", status="rejected") == rejected + 1
        assert files_under(data_dir) == before

    def test_streamed_oversize_is_413_without_reading_it_all(self, service):
        client, _, data_dir = service
        before = files_under(data_dir)
        chunks = [multipart_head("b1")] + [b"\x00" * 65536] * 64  # no content-length
        status, body, read = call_asgi(
            client, "/api/upload", {"content-type": "multipart/form-data; boundary=b1"}, chunks
        )
        assert (status, body["error"]) == (413, "too_large")
        assert read <= LIMIT // 65536 + 2, f"read {read} of {len(chunks)} chunks"
        assert files_under(data_dir) == before
        assert list((data_dir / "tmp").iterdir()) == []

    def test_corrupt_video_is_422_counted_and_leaves_nothing(self, service, tmp_path):
        client, registry, data_dir = service
        bad = corrupt_video(make_clip(tmp_path / "ok.mp4", seconds=2), tmp_path / "bad.mp4")
        before = files_under(data_dir)
        errors = value(registry, "vrewcraft_ffmpeg_errors_total", operation="probe")
        with bad.open("rb") as fh:
            response = client.post("/api/upload", files={"file": ("bad.mp4", fh, "video/mp4")})
        assert_error(response, 422, "corrupt_video")
        assert value(registry, "vrewcraft_ffmpeg_errors_total", operation="probe") == errors + 1
        assert value(registry, "vrewcraft_ffmpeg_jobs_active") == 0
        assert files_under(data_dir) == before


class TestLookups:
    @pytest.mark.parametrize(
        "path",
        [
            "/api/videos/doesnotexist",
            "/api/videos/doesnotexist/thumbnail",
            "/api/jobs/doesnotexist",
        ],
    )
    def test_unknown_id_is_404(self, service, path):
        client, _, _ = service
        assert_error(client.get(path), 404, "not_found")

    def test_trim_of_unknown_video_is_404(self, service):
        client, _, _ = service
        assert_error(client.post("/api/videos/nope/trim", json={"start": 0, "end": 1}), 404)

    @pytest.mark.parametrize(
        "t", ["-1", "-0.001", "NaN", "nan", "inf", "-inf", "abc", "6.0", "100", "1e309"]
    )
    def test_bad_thumbnail_time_is_422(self, service, t):
        client, registry, _ = service
        misses = value(registry, "vrewcraft_thumbnail_requests_total", cache_status="miss")
        assert_error(client.get("/api/videos/sample-1/thumbnail", params={"t": t}), 422)
        assert value(registry, "vrewcraft_thumbnail_requests_total", cache_status="miss") == misses

    @pytest.mark.parametrize(
        "raw_id",
        [
            "..",
            "..%2F..%2Fetc%2Fpasswd",
            "%2e%2e%2f%2e%2e%2foutside.txt",
            "a%5Cb",
            "sample-1%00",
            "..%5C..%5Coutside.txt",
            "%2F",
            "a.b",
            "~root",
            "x" * 65,
        ],
    )
    def test_path_characters_in_ids_touch_nothing(self, service, raw_id):
        client, _, data_dir = service
        outside = data_dir.parent / "outside.txt"
        before = (files_under(data_dir), outside.stat().st_mtime, outside.read_text())
        for url in (
            f"/api/videos/{raw_id}",
            f"/api/videos/{raw_id}/thumbnail?t=0",
            f"/api/jobs/{raw_id}",
        ):
            response = client.get(url, follow_redirects=False)
            if response.status_code == 307:  # "/api/videos//" -> the listing, harmless
                assert response.headers["location"].endswith("/api/videos")
                continue
            assert response.status_code in (404, 422), (url, response.status_code)
            assert "error" in response.json()
        trim = client.post(
            f"/api/videos/{raw_id}/trim", json={"start": 0, "end": 1}, follow_redirects=False
        )
        assert trim.status_code in (404, 405, 422)
        assert (files_under(data_dir), outside.stat().st_mtime, outside.read_text()) == before


class TestTrims:
    @pytest.mark.parametrize(
        "body",
        [
            {"start": 3, "end": 3},
            {"start": 4, "end": 2},
            {"start": 0, "end": 6.5},
            {"start": 5, "end": 60},
        ],
    )
    def test_bad_range_is_422_and_counted_as_rejected(self, service, body):
        client, registry, _ = service
        rejected = value(
            registry, "vrewcraft_video_edits_total", edit_type="trim", status="rejected"
        )
        assert_error(client.post("/api/videos/sample-1/trim", json=body), 422, "invalid_range")
        assert (
            value(registry, "vrewcraft_video_edits_total", edit_type="trim", status="rejected")
            == rejected + 1
        )

    @pytest.mark.parametrize(
        "raw",
        [
            '{"start": -1, "end": 2}',
            '{"start": NaN, "end": 2}',
            '{"start": 0}',
            '{"start": "a", "end": 2}',
            "not json",
            '{"start": 0, "end": 2, "speed": 9}',
            "[]",
        ],
    )
    def test_malformed_body_is_422(self, service, raw):
        client, _, _ = service
        response = client.post(
            "/api/videos/sample-1/trim", content=raw, headers={"content-type": "application/json"}
        )
        assert_error(response, 422)

    def test_corrupt_video_trim_fails_counted_with_no_partial_output(self, service):
        client, registry, data_dir = service
        errors = value(registry, "vrewcraft_ffmpeg_errors_total", operation="trim")
        failed = value(registry, "vrewcraft_video_edits_total", edit_type="trim", status="failed")
        processed_before = set(os.listdir(data_dir / "processed"))
        started = client.post("/api/videos/sample-3/trim", json={"start": 1, "end": 4})
        assert started.status_code == 202
        with client.websocket_connect(started.json()["websocket_url"]) as ws:
            while (state := ws.receive_json())["status"] not in ("succeeded", "failed"):
                pass
        assert state["status"] == "failed"
        assert "trim failed" in state["error"]
        assert client.get(f"/api/jobs/{state['id']}").json()["status"] == "failed"
        assert value(registry, "vrewcraft_ffmpeg_errors_total", operation="trim") == errors + 1
        assert (
            value(registry, "vrewcraft_video_edits_total", edit_type="trim", status="failed")
            == failed + 1
        )
        assert value(registry, "vrewcraft_ffmpeg_jobs_active") == 0
        assert set(os.listdir(data_dir / "processed")) == processed_before

    def test_corrupt_video_thumbnail_is_a_clear_counted_error(self, service):
        client, registry, _ = service
        errors = value(registry, "vrewcraft_ffmpeg_errors_total", operation="thumbnail")
        body = assert_error(
            client.get("/api/videos/sample-3/thumbnail", params={"t": 2}), 500, "ffmpeg_failed"
        )
        assert "thumbnail failed" in body["detail"]
        assert value(registry, "vrewcraft_ffmpeg_errors_total", operation="thumbnail") == errors + 1
        assert value(registry, "vrewcraft_ffmpeg_jobs_active") == 0

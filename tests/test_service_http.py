"""HTTP hygiene: HEAD on every GET route, a true Allow header, docs routes labelled."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from course_lib.service.app import make_app
from course_lib.service.testing import seeded_settings

DOCS = ["/openapi.json", "/docs", "/redoc"]

# The app under test renders its samples with ffmpeg.
pytestmark = pytest.mark.ffmpeg


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """Yield (client, registry) of one app with one sample video."""
    registry = CollectorRegistry()
    settings = seeded_settings(tmp_path_factory.mktemp("http"), sample_count=1)
    with TestClient(make_app(registry=registry, settings=settings)) as client:
        yield client, registry


def get_paths(client: TestClient) -> list[str]:
    """Return a concrete URL for every GET route, documented or not."""
    paths = client.get("/openapi.json").json()["paths"]
    concrete = [
        p.replace("{video_id}", "sample-1").replace("{job_id}", "nope")
        for p, ops in paths.items()
        if "get" in ops
    ]
    return concrete + DOCS


def test_every_get_route_answers_head_with_get_status_and_headers_but_no_body(service):
    client, _ = service
    paths = get_paths(client)
    assert {"/healthz", "/metrics", "/api/videos/sample-1/thumbnail", "/docs"} <= set(paths)
    for path in paths:
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code, path
        assert head.headers["content-type"] == get.headers["content-type"], path
        assert head.content == b"", path


def test_options_lists_the_real_methods(service):
    client, _ = service
    expected = {
        "/healthz": "GET, HEAD, OPTIONS",
        "/api/upload": "OPTIONS, POST",
        "/api/videos/sample-1/trim": "OPTIONS, POST",
        "/api/videos/sample-1": "GET, HEAD, OPTIONS",
        "/admin/faults": "DELETE, GET, HEAD, OPTIONS, POST, PUT",
        "/docs": "GET, HEAD, OPTIONS",
    }
    for path, allow in expected.items():
        response = client.options(path)
        assert (response.status_code, response.headers["allow"]) == (204, allow), path
    assert client.options("/no/such/path").status_code == 404


def test_a_wrong_method_is_405_with_the_real_allow_header(service):
    client, _ = service
    response = client.put("/api/videos/sample-1")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"
    assert response.json()["error"] == "method_not_allowed"
    assert client.head("/api/upload").headers["allow"] == "OPTIONS, POST"


def test_docs_routes_get_their_own_route_label(service):
    client, registry = service
    for path in DOCS:
        assert client.get(path).status_code == 200
        count = registry.get_sample_value(
            "vrewcraft_http_requests_total", {"method": "GET", "route": path, "status_code": "200"}
        )
        assert count and count >= 1, path
    assert "<title>VrewCraft - Swagger UI</title>" in client.get("/docs").text


def test_every_error_status_is_documented_with_its_meaning(service):
    client, _ = service
    paths = client.get("/openapi.json").json()["paths"]
    trim = paths["/api/videos/{video_id}/trim"]["post"]["responses"]
    assert set(trim) == {"202", "400", "404", "408", "413", "422", "429", "500"}
    assert "Retry-After" in trim["429"]["headers"]
    assert "start not before end" in trim["422"]["description"]
    upload = paths["/api/upload"]["post"]["responses"]
    assert set(upload) == {"201", "400", "408", "413", "415", "422", "500"}
    file_schema = paths["/api/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert file_schema["schema"]["properties"]["file"]["minLength"] == 1
    latency = client.get("/openapi.json").json()["components"]["schemas"]["FaultUpdate"]
    assert "maximum" in str(latency["properties"]["latency"])

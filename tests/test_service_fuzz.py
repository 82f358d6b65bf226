"""Fuzz every documented endpoint from /openapi.json: nothing may answer 5xx unexpectedly.

Driven with hypothesis directly (``operation.as_strategy()``) rather than schemathesis'
pytest plugin, and capped at a few examples per operation to stay fast.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from prometheus_client import CollectorRegistry

from course_lib.service.app import make_app
from course_lib.service.testing import seeded_settings, serve_in_thread

# The app under test renders its samples with ffmpeg.
pytestmark = pytest.mark.ffmpeg

EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    """Yield the URL of a real uvicorn-served app (one for the whole module)."""
    data_dir = tmp_path_factory.mktemp("fuzz")
    app = make_app(
        registry=CollectorRegistry(),
        settings=seeded_settings(data_dir, max_upload_bytes=512 * 1024),
    )
    with serve_in_thread(app) as url:
        yield url


def test_no_unexpected_server_errors(base_url):
    # The fault switch is left out on purpose: its whole job is to cause 5xx.
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    schema = schema.exclude(path_regex="^/admin")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/api/upload",
        "/api/videos",
        "/api/videos/{video_id}",
        "/api/videos/{video_id}/thumbnail",
        "/api/videos/{video_id}/trim",
        "/api/jobs/{job_id}",
    }
    server_errors: list[str] = []
    calls = 0

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case):
        nonlocal calls
        response = case.call(base_url=base_url, timeout=30)
        calls += 1
        if response.status_code >= 500:
            server_errors.append(
                f"{case.method} {case.path}: {response.status_code} {response.text[:200]}"
            )

    for operation in operations:
        given(case=operation.as_strategy())(fuzz)()
    assert calls >= len(operations) * 5
    assert server_errors == []

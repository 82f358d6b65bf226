"""schemathesis over every documented operation, with every one of its checks.

The equivalent of ``st run --checks all`` (status codes, content types, headers and
bodies conform to the OpenAPI document; schema-valid data is accepted, schema-invalid
data rejected; unsupported methods get 405 with a true ``Allow``; no 5xx), driven with
hypothesis directly (``operation.as_strategy()``) rather than schemathesis' pytest
plugin, and capped at a few examples per operation and mode to stay fast.

One rule no schema can state: an uploaded file must be a video. Schema-valid random
bytes are therefore checked by every check but ``positive_data_acceptance``, plus an
explicit one (a documented 415/422 naming why); a real clip gets every check, and 201.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from prometheus_client import CollectorRegistry
from schemathesis.generation.modes import GenerationMode
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

from course_lib.service.app import make_app
from course_lib.service.faults import MAX_MEMORY_MB
from course_lib.service.media import make_clip
from course_lib.service.testing import seeded_settings, serve_in_thread

# The app under test renders its samples with ffmpeg.
pytestmark = pytest.mark.ffmpeg

EXAMPLES = 25
#: Why a schema-valid upload may still be refused: the file is not a usable video.
NOT_A_USABLE_VIDEO = {
    415: {"not_a_video"},
    422: {"corrupt_video", "truncated_video", "frame_too_large"},
}


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


def small_memory_fault(case):
    """Cap a valid ``memory_mb`` fault at 16 MiB: up to 2 GiB is valid, but not here.

    Values outside the schema stay as drawn: they are the negative cases, which the
    service must refuse (capping one would turn it into a valid request).
    """
    body = case.body
    if isinstance(body, dict) and type(body.get("memory_mb")) is int:
        body["memory_mb"] = 16 if 16 < body["memory_mb"] <= MAX_MEMORY_MB else body["memory_mb"]
    return case


def run(strategy, check_case) -> int:
    """Run ``check_case`` on EXAMPLES cases drawn from ``strategy``; return the calls made."""
    calls = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def fuzz(case):
        nonlocal calls
        calls += 1
        check_case(case)

    fuzz()
    return calls


def test_every_operation_passes_every_check(base_url, tmp_path):
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    # The fault switch goes last: the faults it sets would turn later /api calls into 500s.
    operations.sort(key=lambda op: op.path.startswith("/admin"))
    assert {f"{op.method.upper()} {op.path}" for op in operations} == {
        "GET /healthz",
        "GET /metrics",
        "POST /api/upload",
        "GET /api/videos",
        "GET /api/videos/{video_id}",
        "GET /api/videos/{video_id}/thumbnail",
        "POST /api/videos/{video_id}/trim",
        "GET /api/jobs/{job_id}",
        "GET /admin/faults",
        "POST /admin/faults",
        "PUT /admin/faults",
        "DELETE /admin/faults",
    }

    def all_checks(case) -> None:
        case.call_and_validate(base_url=base_url, timeout=30)

    def upload_of_any_bytes(case) -> None:
        response = case.call_and_validate(
            base_url=base_url, timeout=30, excluded_checks=[positive_data_acceptance]
        )
        if response.status_code != 201:
            code = response.json()["error"]
            if code not in NOT_A_USABLE_VIDEO.get(response.status_code, ()):
                raise RejectedPositiveData(
                    operation=case.operation.label,
                    message=f"schema-valid upload refused for another reason: {code}",
                    status_code=response.status_code,
                    allowed_statuses=["201", "415", "422"],
                )

    clip = make_clip(tmp_path / "clip.mp4").read_bytes()
    calls = 0
    for op in operations:
        if op.path == "/api/upload":
            calls += run(op.as_strategy(), upload_of_any_bytes)
            calls += run(op.as_strategy(body={"file": clip}), all_checks)
        else:
            calls += run(op.as_strategy().map(small_memory_fault), all_checks)
        if op.path_parameters or op.query or op.headers or op.body:  # something to break
            negative = op.as_strategy(generation_mode=GenerationMode.NEGATIVE)
            calls += run(negative.map(small_memory_fault), all_checks)
    assert calls >= 15 * len(operations)

"""The faults the alerting lesson needs: held memory (HighMemoryUsage), a bypassed cache
(LowCacheHitRatio); both bounded and undone by clearing the faults."""

from __future__ import annotations

import psutil
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from course_lib.service.app import make_app
from course_lib.service.faults import MAX_MEMORY_MB, FaultUpdate, MemoryBallast
from course_lib.service.testing import seeded_settings

pytestmark = pytest.mark.ffmpeg  # the app renders its sample videos with ffmpeg


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """Yield (client, registry) of one started app shared by this module."""
    registry = CollectorRegistry()
    app = make_app(registry=registry, settings=seeded_settings(tmp_path_factory.mktemp("svc")))
    with TestClient(app) as client:
        yield client, registry


def rss_mb(registry) -> float:
    return registry.get_sample_value("vrewcraft_memory_usage_bytes", {"type": "rss"}) / 2**20


@pytest.mark.ffmpeg
def test_memory_fault_grows_resident_memory_and_clearing_frees_it(service):
    client, registry = service
    before = rss_mb(registry)
    try:
        state = client.post("/admin/faults", json={"memory_mb": 200}).json()
        assert state["memory_mb"] == 208  # whole 16 MiB chunks
        grown = rss_mb(registry)
        assert grown - before >= 190, (before, grown)  # resident, not only reserved
        # The same value reaches Prometheus as the standard process metric.
        assert registry.get_sample_value("process_resident_memory_bytes") / 2**20 >= grown - 16
    finally:
        cleared = client.delete("/admin/faults").json()
    assert cleared["memory_mb"] == 0
    assert rss_mb(registry) - before < 50, "the memory was not given back to the OS"


def test_memory_fault_is_bounded():
    assert FaultUpdate(memory_mb=64).memory_mb == 64
    with pytest.raises(ValueError, match="less than or equal to 2048"):
        FaultUpdate(memory_mb=MAX_MEMORY_MB + 1)
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        FaultUpdate(memory_mb=-1)


def test_memory_fault_refuses_more_than_half_the_available_memory(monkeypatch):
    class Tight:
        available = 1000 * 2**20

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Tight())
    with pytest.raises(ValueError, match="at most 500"):
        FaultUpdate(memory_mb=600)
    assert FaultUpdate(memory_mb=400).memory_mb == 400


@pytest.mark.ffmpeg
def test_memory_fault_rejects_bad_input_with_a_clear_error(service):
    client, _ = service
    reply = client.post("/admin/faults", json={"memory_mb": 999999})
    assert reply.status_code == 422
    assert "memory_mb" in str(reply.json()["detail"])
    assert client.get("/admin/faults").json()["memory_mb"] == 0  # nothing half-applied


def test_ballast_shrinks_and_grows_in_chunks():
    ballast = MemoryBallast()
    ballast.resize(40)
    assert ballast.held_mb == 48
    ballast.resize(16)
    assert ballast.held_mb == 16
    ballast.resize(0)
    assert ballast.held_mb == 0


@pytest.mark.ffmpeg
def test_cache_disabled_makes_every_lookup_a_miss_until_cleared(service):
    client, registry = service

    def lookups(status):
        labels = {"cache_status": status}
        return registry.get_sample_value("vrewcraft_thumbnail_requests_total", labels) or 0

    url = "/api/videos/sample-1/thumbnail"
    client.get(url, params={"t": 0.5})
    assert client.get(url, params={"t": 0.5}).headers["x-cache"] == "HIT"
    hits = lookups("hit")
    try:
        assert client.post("/admin/faults", json={"cache_disabled": True}).json()["cache_disabled"]
        for _ in range(3):
            reply = client.get(url, params={"t": 0.5})
            assert reply.status_code == 200 and reply.headers["x-cache"] == "MISS"
        assert lookups("hit") == hits  # the hit counter stands still: the ratio falls
    finally:
        client.delete("/admin/faults")
    assert client.get(url, params={"t": 0.5}).headers["x-cache"] == "HIT"  # cache intact

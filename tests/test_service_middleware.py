"""The HTTP metrics middleware records exactly what the plain, uncached way records.

Its speed comes from caching labelled children per (method, route, status); these tests
prove the cache changes nothing a scrape can see, by running the same requests through
it and through a reference middleware that calls ``.labels()`` on every request.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from fastapi import FastAPI, Response
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from course_lib.service import middleware
from course_lib.service.metrics import VrewCraftMetrics
from course_lib.service.middleware import KNOWN_METHODS, PrometheusMiddleware, route_label

SLOW_SECONDS = 0.015  # lands between the 0.01 and 0.05 buckets, whatever the machine


class ReferenceMiddleware:
    """The straightforward way: resolve the labels and call ``.labels()`` every time."""

    def __init__(self, app: ASGIApp, metrics: VrewCraftMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
            labels = (method, route_label(scope), str(status))
            self.metrics.http_requests.labels(*labels).inc()
            self.metrics.http_request_duration.labels(*labels).observe(time.perf_counter() - start)


def small_app(middleware_class: type, registry: CollectorRegistry) -> FastAPI:
    """Return an app with templated, failing, slow and odd-status routes, instrumented."""
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict:
        return {"id": item_id}

    @app.post("/items", status_code=201)
    async def add_item() -> dict:
        return {}

    @app.get("/teapot")
    async def teapot() -> Response:
        return Response(status_code=418)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("handler failed")

    @app.get("/slow")
    async def slow() -> dict:
        await asyncio.sleep(SLOW_SECONDS)
        return {}

    app.add_middleware(middleware_class, metrics=VrewCraftMetrics(registry))
    return app


#: (method, path): templated hits, validation errors, unmatched paths, a method the route
#: lacks (405), methods folded to OTHER, a handler that raises, a non-standard status.
REQUESTS = [
    ("GET", "/items/1"),
    ("GET", "/items/2"),
    ("GET", "/items/not-a-number"),
    ("POST", "/items"),
    ("DELETE", "/items"),
    ("GET", "/teapot"),
    ("GET", "/boom"),
    ("GET", "/nope/1"),
    ("GET", "/nope/2"),
    ("BREW", "/teapot"),
    ("PROPFIND", "/nope"),
    ("HEAD", "/items/3"),
    ("GET", "/slow"),
]


def http_samples(registry: CollectorRegistry) -> dict[tuple, float]:
    """Return every HTTP metric sample a scrape shows, except those holding durations.

    Durations differ from run to run, and with them the sum and the finite buckets; the
    +Inf bucket and the count don't (durations land in the right buckets: tested below).
    """
    samples = {}
    for family in registry.collect():
        if not family.name.startswith("vrewcraft_http_"):
            continue
        for sample in family.samples:
            if sample.name.endswith(("_created", "_sum")) or (
                sample.name.endswith("_bucket") and sample.labels["le"] != "+Inf"
            ):
                continue
            key = (sample.name, tuple(sorted(sample.labels.items())))
            samples[key] = sample.value
    return samples


def drive(app: FastAPI, sequence: list[tuple[str, str]]) -> None:
    """Send ``sequence`` of (method, path) to ``app``, raising handlers included."""
    with TestClient(app, raise_server_exceptions=False) as client:
        for method, path in sequence:
            client.request(method, path)


@pytest.mark.slow
def test_cached_middleware_records_what_the_reference_records():
    sequence = random.Random(17).choices(REQUESTS, k=400)
    cached, reference = CollectorRegistry(), CollectorRegistry()
    drive(small_app(PrometheusMiddleware, cached), sequence)
    drive(small_app(ReferenceMiddleware, reference), sequence)

    got, expected = http_samples(cached), http_samples(reference)
    assert got == expected
    # Not vacuous: every kind of request above left its own series.
    series = {
        (dict(labels)["method"], dict(labels)["route"], dict(labels)["status_code"])
        for name, labels in got
        if name == "vrewcraft_http_requests_total"
    }
    assert series == {
        ("GET", "/items/{item_id}", "200"),
        ("GET", "/items/{item_id}", "422"),  # validation error, still the template
        ("HEAD", "/items/{item_id}", "405"),
        ("POST", "/items", "201"),
        ("DELETE", "/items", "405"),  # a method the route lacks
        ("GET", "/teapot", "418"),
        ("OTHER", "/teapot", "405"),  # BREW, folded
        ("GET", "/boom", "500"),  # the handler raised
        ("GET", "<unmatched>", "404"),
        ("OTHER", "<unmatched>", "404"),
        ("GET", "/slow", "200"),
    }
    total = sum(v for (name, _), v in got.items() if name == "vrewcraft_http_requests_total")
    assert total == len(sequence)


def test_durations_land_in_the_right_buckets():
    registry = CollectorRegistry()
    drive(small_app(PrometheusMiddleware, registry), [("GET", "/slow")] * 5)
    labels = {"method": "GET", "route": "/slow", "status_code": "200"}
    name = "vrewcraft_http_request_duration_seconds"

    def bucket(le: str) -> float | None:
        return registry.get_sample_value(f"{name}_bucket", {**labels, "le": le})

    assert bucket("0.01") == 0  # each request slept 15 ms: none is faster than 10 ms
    assert bucket("5.0") == bucket("+Inf") == 5
    assert registry.get_sample_value(f"{name}_sum", labels) >= 5 * SLOW_SECONDS


def test_route_template_is_worked_out_once_per_label_set(monkeypatch):
    calls = []

    def counting_route_label(scope: Scope) -> str:
        calls.append(scope.get("route"))
        return route_label(scope)

    monkeypatch.setattr(middleware, "route_label", counting_route_label)
    registry = CollectorRegistry()
    drive(small_app(PrometheusMiddleware, registry), [("GET", "/items/1")] * 50)
    assert len(calls) == 1
    assert (
        registry.get_sample_value(
            "vrewcraft_http_requests_total",
            {"method": "GET", "route": "/items/{item_id}", "status_code": "200"},
        )
        == 50
    )

"""course_lib.prom: one path to Prometheus, the same two errors from every function."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from course_lib import prom
from course_lib.supervisor import NotReadyError, free_port

# Every function that talks to Prometheus, called with a URL.
CALLS = {
    "query": lambda url: prom.query(url, "up"),
    "query_raw": lambda url: prom.query_raw(url, "up"),
    "query_range": lambda url: prom.query_range(url, "up", time.time() - 60, time.time(), "15s"),
    "api": lambda url: prom.api(url, "status/flags"),
    "status": lambda url: prom.status(url, "config"),
    "targets": lambda url: prom.targets(url),
    "series": lambda url: prom.series(url, "up", time.time() - 60),
    "scrape_interval": lambda url: prom.scrape_interval(url),
    "wait_for": lambda url: prom.wait_for(url, "up", timeout=0.1),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_nothing_listening_is_unreachable_for_every_call(call):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(prom.PrometheusUnreachable, match="is not reachable") as err:
        call(url)
    assert url in str(err.value) and "start the stack" in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no requests traceback


@contextlib.contextmanager
def other_server(status: int, body: bytes) -> Iterator[str]:
    """Serve ``body`` with ``status`` for every GET on a real socket; yield the base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "body"), [(404, b"<h1>Not found</h1>"), (200, b"<html>")])
@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_another_program_on_the_port_is_not_taken_for_prometheus(call, status, body):
    expected = pytest.raises(prom.PrometheusUnreachable, match="did not answer like Prometheus")
    with other_server(status, body) as url, expected:
        call(url)


@pytest.mark.stack
def test_range_query_rejection_carries_prometheus_own_words(stack):
    with pytest.raises(prom.PromQLError) as err:
        prom.query_range(stack.prometheus_url, "rate(up[5m]", time.time() - 60, time.time())
    assert not isinstance(err.value, prom.PrometheusUnreachable)
    assert err.value.detail.startswith("bad_data: ") and "parse error" in err.value.detail
    assert "rate(up[5m]" in str(err.value) and stack.prometheus_url in str(err.value)


@pytest.mark.stack
def test_range_query_with_too_many_points_says_so(stack):
    end = time.time()
    with pytest.raises(prom.PromQLError, match="exceeded maximum resolution"):
        prom.query_range(stack.prometheus_url, "up", end - 86400, end, step="1s")


@pytest.mark.stack
def test_instant_query_rejection_carries_prometheus_own_words(stack):
    with pytest.raises(prom.PromQLError) as err:
        prom.query_raw(stack.prometheus_url, "sum(up")
    assert err.value.detail.startswith("bad_data: ")


@pytest.mark.stack
def test_series_with_a_bad_matcher_is_rejected(stack):
    with pytest.raises(prom.PromQLError, match="bad_data"):
        prom.series(stack.prometheus_url, "{}", time.time() - 60)


@pytest.mark.stack
def test_unknown_api_path_names_status_and_path(stack):
    with pytest.raises(prom.PrometheusUnreachable, match="HTTP 404 for /api/v1/status/nonsense"):
        prom.status(stack.prometheus_url, "nonsense")


@pytest.mark.stack
def test_status_pages_and_targets_read_the_running_stack(stack):
    assert prom.status(stack.prometheus_url, "runtimeinfo")["storageRetention"] == "30d"
    assert "headStats" in prom.status(stack.prometheus_url, "tsdb")
    jobs = {t["labels"]["job"] for t in prom.targets(stack.prometheus_url)}
    assert {"prometheus", "pushgateway", "alertmanager"} <= jobs
    assert prom.scrape_interval(stack.prometheus_url) == 2.0


@pytest.mark.stack
def test_wait_for_gives_up_with_the_last_result(stack):
    with pytest.raises(NotReadyError, match="did not reach the expected state within 1s"):
        prom.wait_for(stack.prometheus_url, "vector(1)", lambda df: df.empty, timeout=1)


@pytest.mark.stack
def test_wait_for_a_rejected_query_fails_at_once(stack):
    began = time.monotonic()
    with pytest.raises(prom.PromQLError):
        prom.wait_for(stack.prometheus_url, "sum(", timeout=30)
    assert time.monotonic() - began < 5


def test_durations_in_every_unit():
    assert [prom.duration_seconds(d) for d in ("500ms", "15s", "1m30s", "2h", "1d")] == [
        0.5,
        15.0,
        90.0,
        7200.0,
        86400.0,
    ]
    with pytest.raises(ValueError):
        prom.duration_seconds("5 minutes")

"""Every request has a bounded cost: body size, header and body time, queue length.

Run against a real uvicorn server (real sockets), with short client timeouts so that
"held forever" becomes "answered in half a second".
"""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
from prometheus_client import CollectorRegistry

from course_lib.service.app import make_app
from course_lib.service.testing import seeded_settings, serve_in_thread

CLIENT_TIMEOUT = 0.5

# The app under test renders its samples with ffmpeg.
pytestmark = pytest.mark.ffmpeg


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Yield (base URL, port, data dir) of a served app with 0.5 s client timeouts."""
    data_dir = tmp_path_factory.mktemp("limits")
    settings = seeded_settings(
        data_dir,
        sample_count=1,
        client_timeout_seconds=CLIENT_TIMEOUT,
        max_body_bytes=4096,
    )
    with serve_in_thread(make_app(registry=CollectorRegistry(), settings=settings)) as url:
        yield url, int(url.rsplit(":", 1)[1]), data_dir


def exchange(port: int, data: bytes, wait: float = 5.0) -> tuple[bytes, float]:
    """Send ``data`` on a new connection; return (everything answered, seconds to close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        start = time.monotonic()
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            return answer + b"<still open>", time.monotonic() - start
        return answer, time.monotonic() - start


def json_body(answer: bytes) -> dict:
    """Return the JSON body of a raw HTTP response."""
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


def test_a_declared_oversize_json_body_is_413_before_it_is_sent(server):
    _, port, _ = server
    head = (
        "POST /api/videos/sample-1/trim HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nContent-Length: 300000000\r\n\r\n"
    )
    answer, _ = exchange(port, head.encode())  # not one byte of the 300 MB follows
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
    body = json_body(answer)
    assert body["error"] == "too_large"
    assert "over the limit of 4096 bytes" in body["detail"]


def test_a_chunked_oversize_json_body_is_413_once_past_the_limit(server):
    url, _, _ = server

    def chunks():
        yield b'{"start": 0, "end": 1, "pad": "'
        for _ in range(10_000):  # 10 MB if it were all read
            yield b"x" * 1000

    response = requests.post(
        f"{url}/api/videos/sample-1/trim",
        data=chunks(),
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


def test_half_sent_request_headers_get_408_and_the_connection_closes(server):
    _, port, _ = server
    answer, seconds = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    assert b"<still open>" not in answer
    assert seconds < CLIENT_TIMEOUT + 1.0


def test_a_keep_alive_connection_gets_the_same_deadline_for_its_next_request(server):
    _, port, _ = server
    first = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    answer, seconds = exchange(port, first + b"GET /healthz HTTP/1.1\r\nHo")
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.count(b"HTTP/1.1 408 ") == 1 and b"<still open>" not in answer
    assert seconds < CLIENT_TIMEOUT + 1.0


def test_a_stalled_body_gets_408_json(server):
    _, port, _ = server
    head = (
        "POST /api/videos/sample-1/trim HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nContent-Length: 40\r\n\r\n"
    )
    answer, seconds = exchange(port, head.encode() + b'{"start": 0,')  # then nothing
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    assert json_body(answer)["error"] == "request_timeout"
    assert "nothing received for 0.5 s" in json_body(answer)["detail"]
    assert seconds < CLIENT_TIMEOUT + 1.0


def test_a_stalled_upload_gets_408_and_leaves_no_temporary_file(server):
    _, port, data_dir = server
    head = (
        "POST /api/upload HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: multipart/form-data; boundary=zz\r\nContent-Length: 100000\r\n\r\n"
        '--zz\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'
    )
    answer, _ = exchange(port, head.encode() + b"\x00" * 5000)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    assert json_body(answer)["error"] == "request_timeout"
    assert list((data_dir / "tmp").iterdir()) == []


@pytest.mark.parametrize(
    ("target", "extra_header"),
    [("/ws/jobs/" + "a" * 70_000, ""), ("/ws/jobs/abc", "X-Pad: " + "p" * 9000 + "\r\n")],
    ids=["long request line", "long header line"],
)
def test_an_oversized_websocket_upgrade_is_400_at_once(server, target, extra_header):
    _, port, _ = server
    upgrade = (
        f"GET {target} HTTP/1.1\r\nHost: x\r\n{extra_header}Upgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    answer, seconds = exchange(port, upgrade.encode())
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:100]
    assert b"limited to 8192 bytes" in answer
    assert seconds < CLIENT_TIMEOUT  # answered at once, not by the header deadline


def test_a_full_trim_queue_is_429_with_retry_after(tmp_path):
    # No trim slot at all: every job waits, so the queue fills deterministically.
    settings = seeded_settings(tmp_path, sample_count=1, max_concurrent_trims=0, max_queued_trims=2)
    from fastapi.testclient import TestClient

    with TestClient(make_app(registry=CollectorRegistry(), settings=settings)) as client:
        body = {"start": 0, "end": 1}
        accepted = [client.post("/api/videos/sample-1/trim", json=body) for _ in range(2)]
        assert [r.status_code for r in accepted] == [202, 202]
        refused = client.post("/api/videos/sample-1/trim", json=body)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "2"
        assert refused.json()["error"] == "queue_full"
        assert "2 trim jobs are already waiting" in refused.json()["detail"]
        for r in accepted:
            assert client.get(r.json()["status_url"]).json()["status"] == "queued"


def test_head_over_a_real_connection_sends_headers_only(server):
    _, port, _ = server
    answer, _ = exchange(
        port,
        b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    head, rest = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert length > 0  # the GET's length, announced ...
    assert rest.startswith(b"HTTP/1.1 200 ")  # ... but no body: the next response follows

"""Measure the service's memory under the worst input its limits allow, and print it.

What it does, on 127.0.0.1 with a free port and a temporary directory:

1. Starts ``python -m course_lib.service`` and samples its RSS every 5 ms from here.
2. Uploads the largest frames allowed (3840x2160, a 4 s clip, every frame different)
   and then asks for 8 thumbnails at once, all cache misses: the decodes are bounded
   by the decoding slots (2), so 8 requests cost what 2 do.
3. Sends the largest accepted upload (20 MiB of bytes: refused as not a video after the
   probe) and a 300 MB JSON trim body (refused with 413 before it is read).
4. Shows that what the limits refuse costs nothing: a 16000x16000 clip (422 at probe
   time, no frame decoded).

Prints one line per scenario: its peak RSS, how much RSS grew during it and above the
idle baseline (memory freed by Python or glibc is not always returned to the system,
so later scenarios start from the earlier peaks), and the answer.

Usage::

    python bench/limits.py
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil

from course_lib.service.media import make_clip
from course_lib.service.settings import Settings
from course_lib.service.testing import env_without_redis, free_port
from course_lib.supervisor import poll, stop_child

MB = 1024 * 1024


@contextlib.contextmanager
def peak_rss(pid: int) -> Iterator[Callable[[], tuple[int, int]]]:
    """Sample ``pid``'s RSS every 5 ms while the block runs; yield a getter of (start, peak)."""
    process = psutil.Process(pid)
    start = peak = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield lambda: (start, peak)
    finally:
        done.set()
        thread.join()


def huge_json_body(port: int, size: int = 300_000_000) -> str:
    """Announce a ``size``-byte trim body, send 1 MB of it, return the status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST /api/videos/sample-1/trim HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n".encode()
        )
        with contextlib.suppress(OSError):  # the server answers and closes early
            sock.sendall(b'{"start": 0, "end": 1, "x": "' + b"x" * MB)
        return sock.recv(200).split(b"\r\n")[0].decode()


async def thumbnails(url: str, video_id: str, count: int) -> list[int]:
    """Request ``count`` different thumbnails at once; return their status codes."""
    async with httpx.AsyncClient(timeout=60) as client:
        responses = await asyncio.gather(
            *(
                client.get(f"{url}/api/videos/{video_id}/thumbnail", params={"t": 0.4 * i})
                for i in range(count)
            )
        )
    return [r.status_code for r in responses]


def main() -> None:
    """Run every scenario against a fresh service and print the figures."""
    limits = Settings()
    print(
        f"limits: upload {limits.max_upload_bytes // MB} MiB, JSON body "
        f"{limits.max_body_bytes // 1024} KiB, frames {limits.max_video_pixels:,} px "
        f"(<= {limits.max_video_side} per side), {limits.thumbnail_threads} decodes at once, "
        f"{limits.max_concurrent_trims} trims + {limits.max_queued_trims} queued, "
        f"client timeout {limits.client_timeout_seconds:g} s, "
        f"ffmpeg timeout {limits.ffmpeg_timeout_seconds:g} s"
    )
    with tempfile.TemporaryDirectory(prefix="vrewcraft-limits-") as tmp:
        work = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "course_lib.service", "--port", str(port)]
            + ["--data-dir", str(work / "data")],
            env=env_without_redis(),
        )
        try:
            assert poll(lambda: _healthy(url), timeout=120, alive=lambda: proc.poll() is None), (
                "the service did not start"
            )
            time.sleep(1.0)
            base = psutil.Process(proc.pid).memory_info().rss
            print(f"idle RSS: {base / MB:.0f} MiB")

            uhd = make_clip(work / "uhd.mp4", seconds=4, size="3840x2160")
            with peak_rss(proc.pid) as peak, uhd.open("rb") as fh:
                up = httpx.post(f"{url}/api/upload", files={"file": fh}, timeout=120)
            _report(
                f"upload 3840x2160 x 4 s ({uhd.stat().st_size / MB:.1f} MiB)",
                peak(),
                base,
                up.status_code,
            )
            video_id = up.json()["id"]
            with peak_rss(proc.pid) as peak:
                codes = asyncio.run(thumbnails(url, video_id, 8))
            _report("8 thumbnail misses at once on it", peak(), base, sorted(set(codes)))

            junk = work / "junk.mp4"
            junk.write_bytes(b"\0" * limits.max_upload_bytes)
            with peak_rss(proc.pid) as peak, junk.open("rb") as fh:
                r = httpx.post(f"{url}/api/upload", files={"file": fh}, timeout=120)
            _report("largest upload in bytes (20 MiB, not a video)", peak(), base, r.status_code)

            with peak_rss(proc.pid) as peak:
                status = huge_json_body(port)
            _report("300 MB JSON trim body", peak(), base, status)

            bomb = make_clip(work / "bomb.mp4", seconds=0.2, size="16000x16000", source="color")
            with peak_rss(proc.pid) as peak, bomb.open("rb") as fh:
                r = httpx.post(f"{url}/api/upload", files={"file": fh}, timeout=120)
            _report(
                f"16000x16000 clip ({bomb.stat().st_size / 1024:.0f} KiB)",
                peak(),
                base,
                f"{r.status_code} {r.json()['error']}",
            )
        finally:
            stop_child(proc, timeout=15)


def _healthy(url: str) -> bool:
    """Return whether the service answers /healthz."""
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _report(what: str, span: tuple[int, int], base: int, answer: object) -> None:
    """Print one scenario's peak RSS, and how much it grew during the scenario."""
    start, peak = span
    print(
        f"{what:<48} peak RSS {peak / MB:4.0f} MiB (+{(peak - start) / MB:3.0f} in it, "
        f"+{(peak - base) / MB:3.0f} over idle) -> {answer}"
    )


if __name__ == "__main__":
    main()

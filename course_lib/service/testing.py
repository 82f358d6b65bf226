"""Helpers for the service's tests and benchmark: sample reuse, redis-server, a served app."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from course_lib.supervisor import free_port, poll, stop_child, tcp_ok

from .media import Media
from .metrics import VrewCraftMetrics
from .settings import Settings


@cache
def rendered_samples(count: int = 4, seconds: float = 6.0) -> Path:
    """Render sample clips once per process and return their directory (reused after)."""
    target = Path(tempfile.mkdtemp(prefix="vrewcraft-samples-"))
    media = Media(VrewCraftMetrics(CollectorRegistry()), broken=lambda: False)

    async def render() -> None:
        """Render every clip in parallel."""
        await asyncio.gather(
            *(
                media.generate_sample(target / f"sample-{i + 1}.mp4", i, seconds)
                for i in range(count)
            )
        )

    asyncio.run(render())
    return target


def seeded_settings(data_dir: Path, sample_count: int = 2, **overrides: Any) -> Settings:
    """Return settings for ``data_dir`` with pre-rendered samples copied in (fast start)."""
    samples = data_dir / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    source = rendered_samples()
    for i in range(sample_count):
        name = f"sample-{i + 1}.mp4"
        if not (samples / name).exists():
            shutil.copyfile(source / name, samples / name)
    return Settings(data_dir=data_dir, sample_count=sample_count, **overrides)


def corrupt_video(src: Path, dst: Path, seed: int = 1) -> Path:
    """Copy ``src`` with its media data (``mdat``) overwritten by random bytes.

    The header (``moov``, at the front thanks to faststart) is intact, so ffprobe
    accepts the file; decoding any frame fails.
    """
    import random

    data = bytearray(src.read_bytes())
    start = data.find(b"mdat")
    if start < 0:
        raise ValueError(f"{src} has no mdat box")
    rng = random.Random(seed)
    data[start + 4 :] = rng.randbytes(len(data) - start - 4)
    dst.write_bytes(bytes(data))
    return dst


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """Run a private redis-server on a free port in ``workdir``; yield its URL.

    Raises RuntimeError with an install hint if ``redis-server`` is not on PATH.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server not found: install it (Debian/Ubuntu: "
            "apt-get install redis-server; macOS: brew install redis)"
        )
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not poll(
            lambda: tcp_ok(port, timeout=0.2),
            timeout=10,
            interval=0.02,
            alive=lambda: proc.poll() is None,
        ):
            raise RuntimeError(f"redis-server did not start on port {port}")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_child(proc, timeout=5)


def env_without_redis() -> dict[str, str]:
    """Return os.environ without REDIS_URL (so a test gets the LRU cache)."""
    return {k: v for k, v in os.environ.items() if k != "REDIS_URL"}


@contextlib.contextmanager
def serve_in_thread(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a background thread; yield its base URL."""
    import threading

    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="error",
            access_log=False,
            lifespan="on",
            ws="websockets-sansio",
        )
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        started = poll(lambda: server.started, timeout=30, interval=0.01, alive=thread.is_alive)
        if not started:
            raise RuntimeError("the service did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)

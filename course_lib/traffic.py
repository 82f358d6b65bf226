"""A traffic generator for VrewCraft: a seeded, realistic mix at a fixed request rate.

The mix: mostly thumbnails with skewed popularity (a few hot frames get most of the
requests, so the cache hit ratio settles around 90%), listings and video lookups,
some small uploads and trims (a few followed over the WebSocket), and a sprinkle of
404s and bad requests. Requests are scheduled *open loop*: request i is sent at
``i / rate`` seconds whatever the service's latency, like real users, so a slow
service shows up as latency, not as a politely lower rate.

From a notebook (works inside Jupyter's running event loop: the generator runs in
a thread with its own loop)::

    >>> summary = run_traffic(stack.service_url, rate=20, duration=2, progress=False)
    >>> summary.sent + summary.skipped, summary.transport_errors  # 20 req/s for 2 s
    (40, 0)

In the background while you watch Prometheus::

    >>> runner = TrafficRunner(stack.service_url, rate=5, progress=False).start()
    >>> runner.stop().transport_errors
    0

From a shell (duration 0 runs until SIGTERM/SIGINT)::

    python -m course_lib.traffic --target http://127.0.0.1:3001 --rate 5 --duration 0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

#: Relative weights of the request kinds in the standard mix.
STANDARD_MIX: dict[str, float] = {
    "thumbnail": 64.0,
    "list_videos": 12.0,
    "get_video": 10.0,
    "job_status": 4.0,
    "not_found": 3.0,
    "bad_request": 2.5,
    "trim": 1.5,  # each trim re-encodes video: a few per second is a real CPU load
    "upload": 1.0,
    "bad_upload": 0.5,
    "healthz": 1.0,
}
#: Share of thumbnail requests that go to the popular frames; the rest ask for a random
#: frame (almost always a miss). This sets the long-run hit ratio (~0.93 minus warm-up).
HOT_SHARE = 0.93
#: Popular frames per video; their popularity follows Zipf's law (rank^-ZIPF_S).
HOT_FRAMES_PER_VIDEO = 6
ZIPF_S = 1.1
#: Share of trims followed to the end over the WebSocket.
WEBSOCKET_SHARE = 0.25


@dataclass
class TrafficSummary:
    """What a traffic run did, as seen by the client."""

    target: str
    seconds: float = 0.0
    sent: int = 0
    skipped: int = 0
    transport_errors: int = 0
    by_kind: dict[str, Counter] = field(default_factory=dict)
    thumbnail_hits: int = 0
    thumbnail_misses: int = 0
    latencies: dict[str, deque] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Return requests sent per second."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def hit_ratio(self) -> float:
        """Return the thumbnail cache hit ratio seen in X-Cache headers."""
        total = self.thumbnail_hits + self.thumbnail_misses
        return self.thumbnail_hits / total if total else 0.0

    def status_counts(self) -> Counter:
        """Return responses by status class ("2xx", "4xx", "5xx")."""
        total: Counter = Counter()
        for statuses in self.by_kind.values():
            for status, n in statuses.items():
                total[f"{status // 100}xx"] += n
        return total

    def quantile(self, q: float, kind: str | None = None) -> float:
        """Return a latency quantile in seconds (exact, over the recorded samples)."""
        values = sorted(v for k, d in self.latencies.items() if kind in (None, k) for v in d)
        if not values:
            return math.nan
        return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly summary."""
        return {
            "target": self.target,
            "seconds": round(self.seconds, 2),
            "sent": self.sent,
            "rate": round(self.rate, 2),
            "skipped": self.skipped,
            "transport_errors": self.transport_errors,
            "status": dict(self.status_counts()),
            "by_kind": {k: {str(s): n for s, n in v.items()} for k, v in self.by_kind.items()},
            "hit_ratio": round(self.hit_ratio, 4),
            "p50_ms": round(self.quantile(0.5) * 1000, 1),
            "p99_ms": round(self.quantile(0.99) * 1000, 1),
        }

    def __str__(self) -> str:
        s = self.status_counts()
        return (
            f"{self.sent} requests in {self.seconds:.1f} s ({self.rate:.1f}/s): "
            f"2xx={s['2xx']} 4xx={s['4xx']} 5xx={s['5xx']} "
            f"transport errors={self.transport_errors}, thumbnail hit ratio "
            f"{self.hit_ratio:.0%}, p50 {self.quantile(0.5) * 1000:.0f} ms, "
            f"p99 {self.quantile(0.99) * 1000:.0f} ms"
        )


@dataclass
class _Catalog:
    """What the generator knows about the service: sample videos and recent jobs."""

    videos: list[tuple[str, float]]
    hot: list[tuple[str, float]]
    hot_weights: list[float]
    jobs: deque = field(default_factory=lambda: deque(maxlen=50))


def _hot_frames(videos: list[tuple[str, float]]) -> tuple[list[tuple[str, float]], list[float]]:
    """Pick the popular (video, t) frames and their Zipf weights.

    Popularity belongs to the content, not to a run: it is seeded by the video ids, so
    every run (whatever its seed) finds the same frames popular, like real viewers.
    """
    frames = []
    for vid, duration in videos:
        rng = random.Random(vid)
        frames += [
            (vid, round(rng.uniform(0, max(0.0, duration - 0.2)), 1))
            for _ in range(HOT_FRAMES_PER_VIDEO)
        ]
    random.Random(len(frames)).shuffle(frames)
    return frames, [1.0 / (rank**ZIPF_S) for rank in range(1, len(frames) + 1)]


def _render_clips(count: int = 2) -> list[bytes]:
    """Render tiny clips to upload (empty if ffmpeg is missing)."""
    if shutil.which("ffmpeg") is None:
        return []
    from course_lib.service.media import make_clip

    with tempfile.TemporaryDirectory(prefix="vrewcraft-traffic-") as tmp:
        return [
            make_clip(Path(tmp) / f"clip-{i}.mp4", seconds=1 + i).read_bytes() for i in range(count)
        ]


class _Generator:
    """One traffic run (lives on the event loop of the runner's thread)."""

    def __init__(
        self,
        target: str,
        rate: float,
        duration: float,
        seed: int,
        progress: bool,
        stop: threading.Event,
        mix: dict[str, float],
        max_in_flight: int,
        progress_every: float,
        out: Callable[[str], None],
    ) -> None:
        self.target = target.rstrip("/")
        self.rate = rate
        self.duration = duration
        self.rng = random.Random(seed)
        self.progress = progress
        self.stop = stop
        self.kinds = list(mix)
        self.weights = [mix[k] for k in self.kinds]
        self.max_in_flight = max_in_flight
        self.progress_every = progress_every
        self.out = out
        self.summary = TrafficSummary(target=self.target)
        self.clips: list[bytes] = []
        self.catalog = _Catalog([], [], [])
        self.in_flight: set[asyncio.Task] = set()

    async def run(self) -> TrafficSummary:
        """Discover the service, then send the mix until the duration or a stop."""
        self.clips = await asyncio.to_thread(_render_clips)
        limits = httpx.Limits(
            max_connections=self.max_in_flight, max_keepalive_connections=self.max_in_flight
        )
        async with httpx.AsyncClient(base_url=self.target, timeout=15.0, limits=limits) as client:
            await self._discover(client)
            await self._send_loop(client)
        return self.summary

    async def _discover(self, client: httpx.AsyncClient) -> None:
        """Learn the sample videos (ids and durations) from the listing."""
        response = await client.get("/api/videos", params={"limit": 200})
        response.raise_for_status()
        videos = response.json()["videos"]
        samples = [v for v in videos if v["source"] == "sample"] or videos
        if not samples:
            raise RuntimeError(f"{self.target} has no videos to request")
        chosen = sorted((v["id"], float(v["duration"])) for v in samples)
        hot, weights = _hot_frames(chosen)
        self.catalog = _Catalog(chosen, hot, weights)

    async def _send_loop(self, client: httpx.AsyncClient) -> None:
        """Schedule request i at i/rate seconds (open loop) and report progress."""
        start = time.perf_counter()
        next_report = self.progress_every
        i = 0
        while not self.stop.is_set():
            due = i / self.rate
            if self.duration and due >= self.duration:
                break
            delay = start + due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(min(delay, 0.25))
                continue  # re-check the stop flag at least four times a second
            kind = self.rng.choices(self.kinds, self.weights)[0]
            params = self._plan(kind)  # drawn now, so the sequence depends on the seed only
            i += 1
            if len(self.in_flight) >= self.max_in_flight:
                self.summary.skipped += 1  # the service is this far behind: don't pile on
            else:
                task = asyncio.ensure_future(self._send(client, kind, params))
                self.in_flight.add(task)
                task.add_done_callback(self.in_flight.discard)
            elapsed = time.perf_counter() - start
            if self.progress and elapsed >= next_report:
                next_report += self.progress_every
                self.summary.seconds = elapsed
                self.out(f"[traffic {elapsed:6.1f}s] {self.summary}")
        if self.in_flight:
            _, pending = await asyncio.wait(self.in_flight, timeout=15)
            for task in pending:
                task.cancel()
        self.summary.seconds = time.perf_counter() - start
        if self.progress:
            self.out(f"[traffic done] {self.summary}")

    def _plan(self, kind: str) -> dict[str, Any]:
        """Draw the random choices of one request from the seeded generator."""
        rng, cat = self.rng, self.catalog
        video, duration = rng.choice(cat.videos)
        if kind == "thumbnail":
            if rng.random() < HOT_SHARE:
                video, t = rng.choices(cat.hot, cat.hot_weights)[0]
            else:
                t = round(rng.uniform(0, duration - 0.01), 2)
            return {"video": video, "t": t}
        if kind == "trim":
            start = round(rng.uniform(0, max(0.0, duration - 2.0)), 1)
            return {
                "video": video,
                "start": start,
                "end": round(min(duration, start + rng.uniform(0.5, 2.0)), 1),
                "websocket": rng.random() < WEBSOCKET_SHARE,
            }
        if kind == "upload":
            return {"clip": rng.randrange(max(1, len(self.clips))), "n": rng.randrange(10**6)}
        if kind == "not_found":
            choice = rng.choice(["video", "thumbnail", "job", "path"])
            return {
                "choice": choice,
                "id": f"missing-{rng.randrange(10**6)}",
                "path": f"/api/{rng.choice(['video', 'vids', 'admin/x'])}/{rng.randrange(999)}",
            }
        if kind == "bad_request":
            return {
                "video": video,
                "duration": duration,
                "choice": rng.choice(
                    [
                        "negative_t",
                        "t_past_end",
                        "nan_t",
                        "trim_reversed",
                        "trim_past_end",
                        "bad_id",
                    ]
                ),
            }
        return {"video": video, "pick": rng.random()}

    async def _send(self, client: httpx.AsyncClient, kind: str, p: dict[str, Any]) -> None:
        """Send one request of ``kind`` and record its outcome."""
        began = time.perf_counter()
        try:
            response = await self._request(client, kind, p)
        except (httpx.HTTPError, OSError):
            self.summary.transport_errors += 1
            return
        finally:
            self.summary.sent += 1
        elapsed = time.perf_counter() - began
        self.summary.by_kind.setdefault(kind, Counter())[response.status_code] += 1
        self.summary.latencies.setdefault(kind, deque(maxlen=100_000)).append(elapsed)
        if kind == "thumbnail" and response.status_code == 200:
            if response.headers.get("x-cache") == "HIT":
                self.summary.thumbnail_hits += 1
            else:
                self.summary.thumbnail_misses += 1
        if kind == "trim" and response.status_code == 202:
            job_id = response.json()["job_id"]
            self.catalog.jobs.append(job_id)
            if p["websocket"]:
                await self._follow(job_id)

    async def _request(
        self, client: httpx.AsyncClient, kind: str, p: dict[str, Any]
    ) -> httpx.Response:
        """Build and send the HTTP request for one planned action."""
        if kind == "thumbnail":
            return await client.get(f"/api/videos/{p['video']}/thumbnail", params={"t": p["t"]})
        if kind == "list_videos":
            return await client.get("/api/videos", params={"limit": 20})
        if kind == "get_video":
            return await client.get(f"/api/videos/{p['video']}")
        if kind == "healthz":
            return await client.get("/healthz")
        if kind == "job_status":
            if self.catalog.jobs:
                jobs = list(self.catalog.jobs)
                return await client.get(f"/api/jobs/{jobs[int(p['pick'] * len(jobs))]}")
            return await client.get("/api/videos", params={"limit": 5})
        if kind == "trim":
            return await client.post(
                f"/api/videos/{p['video']}/trim", json={"start": p["start"], "end": p["end"]}
            )
        if kind == "upload" and self.clips:
            return await client.post(
                "/api/upload",
                files={"file": (f"traffic-{p['n']}.mp4", self.clips[p["clip"]], "video/mp4")},
            )
        if kind in ("upload", "bad_upload"):
            return await client.post(
                "/api/upload",
                files={"file": ("notes.mp4", b"definitely not a video\n" * 20, "video/mp4")},
            )
        if kind == "not_found":
            urls = {
                "video": f"/api/videos/{p['id']}",
                "thumbnail": f"/api/videos/{p['id']}/thumbnail",
                "job": f"/api/jobs/{p['id']}",
                "path": p["path"],
            }
            return await client.get(urls[p["choice"]])
        if kind == "bad_request":
            return await self._bad_request(client, p)
        raise ValueError(f"unknown request kind {kind!r}")

    async def _bad_request(self, client: httpx.AsyncClient, p: dict[str, Any]) -> httpx.Response:
        """Send one request the service must refuse with a 4xx."""
        thumb = f"/api/videos/{p['video']}/thumbnail"
        trim = f"/api/videos/{p['video']}/trim"
        choice = p["choice"]
        if choice == "negative_t":
            return await client.get(thumb, params={"t": -1})
        if choice == "t_past_end":
            return await client.get(thumb, params={"t": p["duration"] + 5})
        if choice == "nan_t":
            return await client.get(thumb, params={"t": "NaN"})
        if choice == "trim_reversed":
            return await client.post(trim, json={"start": 2, "end": 1})
        if choice == "trim_past_end":
            return await client.post(trim, json={"start": 0, "end": p["duration"] + 10})
        return await client.get("/api/videos/..%2F..%2Fetc%2Fpasswd")

    async def _follow(self, job_id: str) -> None:
        """Follow a job over the WebSocket until it finishes (keeps the WS gauge real)."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        url = self.target.replace("http", "ws", 1) + f"/ws/jobs/{job_id}"
        with contextlib.suppress(WebSocketException, OSError, TimeoutError):
            async with asyncio.timeout(60), connect(url) as ws:
                async for message in ws:
                    if json.loads(message).get("status") in ("succeeded", "failed"):
                        break


class TrafficRunner:
    """Run traffic in a background thread with its own event loop.

    >>> runner = TrafficRunner("http://127.0.0.1:3001", rate=5, duration=10)
    >>> runner.running
    False
    """

    def __init__(
        self,
        target: str,
        rate: float = 20.0,
        duration: float = 30.0,
        seed: int = 0,
        progress: bool = False,
        mix: dict[str, float] | None = None,
        max_in_flight: int = 64,
        progress_every: float = 5.0,
        out: Callable[[str], None] | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if duration < 0:
            raise ValueError("duration must be >= 0 (0 = until stopped)")
        self._stop = threading.Event()
        self._generator = _Generator(
            target,
            rate,
            duration,
            seed,
            progress,
            self._stop,
            dict(mix or STANDARD_MIX),
            max_in_flight,
            progress_every,
            out or (lambda line: print(line, flush=True)),
        )
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def running(self) -> bool:
        """Return whether the traffic thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def summary(self) -> TrafficSummary:
        """Return the (live) summary."""
        return self._generator.summary

    def start(self) -> TrafficRunner:
        """Start sending in the background; return self."""
        if self._thread is not None:
            raise RuntimeError("already started")

        def target() -> None:
            """Run the generator on this thread's own event loop."""
            try:
                asyncio.run(self._generator.run())
            except BaseException as exc:  # handed to the caller by wait()
                self._error = exc

        self._thread = threading.Thread(target=target, name="vrewcraft-traffic", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> TrafficSummary:
        """Wait for the run to end (Ctrl-C stops it cleanly); return the summary."""
        assert self._thread is not None, "start() first"
        try:
            self._thread.join(timeout)
        except KeyboardInterrupt:
            self._stop.set()
            self._thread.join(30)
        if self._error is not None:
            raise self._error
        return self.summary

    def stop(self, timeout: float = 30.0) -> TrafficSummary:
        """Ask the run to stop, wait for in-flight requests; return the summary."""
        self._stop.set()
        return self.wait(timeout) if self._thread is not None else self.summary

    def __enter__(self) -> TrafficRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_traffic(
    target: str,
    rate: float = 20.0,
    duration: float = 30.0,
    seed: int = 0,
    progress: bool = True,
    **kwargs: Any,
) -> TrafficSummary:
    """Send the standard mix at ``rate`` req/s for ``duration`` s; return what happened.

    Safe to call from Jupyter: the requests run on a private event loop in a thread.

    >>> run_traffic(stack.service_url, rate=20, duration=1, progress=False).transport_errors
    0
    """
    if duration <= 0:
        raise ValueError("run_traffic needs a duration; use TrafficRunner to run until stopped")
    return TrafficRunner(target, rate, duration, seed, progress, **kwargs).start().wait()


def main(argv: list[str] | None = None) -> int:
    """Command line: send traffic until the duration ends or SIGTERM/SIGINT arrives."""
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.traffic",
        description="Send a realistic request mix to VrewCraft.",
    )
    parser.add_argument("--target", default="http://127.0.0.1:3001")
    parser.add_argument("--rate", type=float, default=5.0, help="requests per second")
    parser.add_argument(
        "--duration",
        type=float,
        default=60.0,
        help="seconds to run; 0 = until SIGTERM/SIGINT (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--progress-every", type=float, default=10.0, help="seconds between progress lines"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)

    runner = TrafficRunner(
        args.target,
        args.rate,
        args.duration,
        args.seed,
        progress=not args.quiet,
        progress_every=args.progress_every,
        out=lambda line: print(line, file=sys.stderr, flush=True),
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner._stop.set())
    runner.start()
    while runner.running:  # wait with a timeout so signal handlers run promptly
        runner.wait(0.2)
    summary = runner.wait()
    print(json.dumps(summary.as_dict()) if args.json else summary, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

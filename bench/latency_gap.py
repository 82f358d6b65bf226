"""What the server's latency histogram misses: client-side vs server-side latency by concurrency.

The service's HTTP histogram starts its clock in the middleware, after uvicorn has read
and parsed the request and the event loop got round to it. Under concurrent load the
requests queue before that point, and only a client sees the wait. This benchmark
measures the same requests from both sides at rising concurrency:

* client: ``hey`` with 1, 10 and 50 connections, each sending 5 req/s to one cached
  thumbnail (exact per-request latencies from hey's CSV);
* server histogram: ``vrewcraft_http_request_duration_seconds`` for that route, turned
  into quantiles the way ``histogram_quantile`` does (what a dashboard would show);
* where the gap comes from: the service's ``vrewcraft_event_loop_lag_seconds``, and, in
  this benchmark's server only, a timestamp taken when uvicorn received the request's
  bytes (its protocol's ``data_received``, the earliest point the ASGI server offers)
  subtracted from the time the app started on it: the wait in the ready queue.

Rounds alternate the order of the concurrency levels (1, 10, 50, then 50, 10, 1, ...);
samples are pooled per level. Results go to ``bench/results/latency_gap.json``.

Usage::

    python bench/latency_gap.py                  # 3 rounds x 10 s per level
    python bench/latency_gap.py --rounds 1 --seconds 5
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import httpx

RESULTS = Path(__file__).resolve().parent / "results" / "latency_gap.json"
LEVELS = (1, 10, 50)
RATE_PER_CONNECTION = 5.0
THUMB_PATH = "/api/videos/sample-1/thumbnail?t=1.0"
THUMB_ROUTE = "/api/videos/{video_id}/thumbnail"
TIMINGS_PATH = "/_bench/timings"
RECEIVED_KEY = "vrewcraft.bench.received_ns"


# --- the benchmark's server: the service, plus an arrival timestamp --------------------


def stamped_protocol() -> type:
    """Return uvicorn's h11 protocol, stamping each request's scope when its bytes arrive."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class StampedH11Protocol(H11Protocol):
        """H11Protocol that records when a request's first bytes were handed to it."""

        def data_received(self, data: bytes) -> None:
            received = perf_counter_ns()
            super().data_received(data)  # parses, builds the scope, schedules the app
            cycle = getattr(self, "cycle", None)
            if cycle is not None and RECEIVED_KEY not in cycle.scope:
                cycle.scope[RECEIVED_KEY] = received  # the app's task hasn't run yet

    return StampedH11Protocol


class ArrivalTimer:
    """ASGI wrapper: per /api request, the wait before the app ran and the app's own time."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.waits: list[float] = []
        self.inside: list[float] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            if scope["type"] == "http" and scope["path"] == TIMINGS_PATH:
                await self.report(send)
                return
            await self.app(scope, receive, send)
            return
        started = perf_counter_ns()
        await self.app(scope, receive, send)
        self.inside.append((perf_counter_ns() - started) / 1e9)
        if RECEIVED_KEY in scope:
            self.waits.append((started - scope[RECEIVED_KEY]) / 1e9)

    async def report(self, send: Any) -> None:
        """Answer with the collected timings as JSON, and start collecting afresh."""
        body = json.dumps({"waits": self.waits, "inside": self.inside}).encode()
        self.waits, self.inside = [], []
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def serve(port: int, data_dir: Path) -> None:
    """Serve the instrumented service, wrapped in ArrivalTimer, on 127.0.0.1:``port``."""
    import uvicorn
    from prometheus_client import CollectorRegistry

    from course_lib.service.app import make_app
    from course_lib.service.settings import Settings

    app = make_app(registry=CollectorRegistry(), settings=Settings(data_dir=data_dir))
    config = uvicorn.Config(
        ArrivalTimer(app),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        http=stamped_protocol(),
    )
    uvicorn.Server(config).run()


@contextlib.contextmanager
def server(port: int, work: Path) -> Iterator[str]:
    """Run the benchmark's server for the duration of the block; yield its base URL."""
    from course_lib.supervisor import stop_child

    with (work / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, __file__, "serve", "--port", str(port), "--data-dir", str(work)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited; see {work / 'server.log'}")
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{base}/healthz did not answer within 120 s")
        yield base
    finally:
        stop_child(proc, timeout=20)


# --- reading both sides ----------------------------------------------------------------


def hey(url: str, connections: int, seconds: int) -> list[float]:
    """Return hey's per-request latencies (s): ``connections`` workers at 5 req/s each."""
    out = subprocess.run(
        [
            "hey",
            "-z",
            f"{seconds}s",
            "-c",
            str(connections),
            "-q",
            str(RATE_PER_CONNECTION),
            "-o",
            "csv",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    failed = [r["status-code"] for r in rows if r["status-code"] != "200"]
    if failed or not rows:
        raise RuntimeError(f"hey got {len(rows)} answers, not all 200: {failed[:5]}")
    return [float(r["response-time"]) for r in rows]


def buckets(base: str, name: str, labels: dict[str, str]) -> tuple[dict[float, float], float]:
    """Return the cumulative bucket counts (le -> count) and the sum of one histogram."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base}/metrics", timeout=10).text
    counts: dict[float, float] = {}
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            own = {k: v for k, v in sample.labels.items() if k != "le"}
            if own != labels:
                continue
            if sample.name == f"{name}_bucket":
                counts[float(sample.labels["le"])] = sample.value
            elif sample.name == f"{name}_sum":
                total = sample.value
    return counts, total


def histogram_quantile(q: float, cumulative: dict[float, float]) -> float:
    """Return the q-quantile of cumulative bucket counts, as PromQL's histogram_quantile.

    >>> histogram_quantile(0.5, {0.001: 0, 0.005: 10, float("inf"): 10})
    0.003
    """
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]]
    if total == 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        count = cumulative[le]
        if count >= rank:
            if math.isinf(le):
                return lower  # PromQL answers the highest finite bound
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def exact_quantile(values: Sequence[float], q: float) -> float:
    """Return the q-quantile of raw samples (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def delta(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    """Return bucket counts gained between two scrapes."""
    return {le: after[le] - before.get(le, 0.0) for le in after}


# --- the measurement --------------------------------------------------------------------


def measure(base: str, rounds: int, seconds: int) -> dict[int, dict[str, Any]]:
    """Return pooled client, server-histogram, wait and loop-lag figures per level."""
    http = (
        "vrewcraft_http_request_duration_seconds",
        {
            "method": "GET",
            "route": THUMB_ROUTE,
            "status_code": "200",
        },
    )
    lag = ("vrewcraft_event_loop_lag_seconds", {})
    pooled: dict[int, dict[str, Any]] = {
        c: {"client": [], "waits": [], "inside": [], "http": {}, "lag": {}, "lag_sum": 0.0}
        for c in LEVELS
    }
    for i in range(rounds):
        for connections in LEVELS if i % 2 == 0 else LEVELS[::-1]:
            print(f"  round {i + 1}/{rounds}: {connections} connections ...", flush=True)
            httpx.get(f"{base}{TIMINGS_PATH}", timeout=10)  # drop timings from before
            http_before, _ = buckets(base, *http)
            lag_before, lag_sum_before = buckets(base, *lag)
            client = hey(f"{base}{THUMB_PATH}", connections, seconds)
            http_after, _ = buckets(base, *http)
            lag_after, lag_sum_after = buckets(base, *lag)
            timings = httpx.get(f"{base}{TIMINGS_PATH}", timeout=10).json()
            level = pooled[connections]
            level["client"] += client
            level["waits"] += timings["waits"]
            level["inside"] += timings["inside"]
            for key, after, before in (
                ("http", http_after, http_before),
                ("lag", lag_after, lag_before),
            ):
                for le, gained in delta(after, before).items():
                    level[key][le] = level[key].get(le, 0.0) + gained
            level["lag_sum"] += lag_sum_after - lag_sum_before
    return pooled


def figures(pooled: dict[int, dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Return the stored result: per concurrency level, both sides' p50/p99 in ms."""
    levels = []
    for connections, level in pooled.items():
        server_count = level["http"][math.inf]
        lag_count = level["lag"][math.inf]
        ms = {
            "client_p50": exact_quantile(level["client"], 0.5),
            "client_p99": exact_quantile(level["client"], 0.99),
            "server_histogram_p50": histogram_quantile(0.5, level["http"]),
            "server_histogram_p99": histogram_quantile(0.99, level["http"]),
            "server_exact_p50": exact_quantile(level["inside"], 0.5),
            "server_exact_p99": exact_quantile(level["inside"], 0.99),
            "wait_p50": exact_quantile(level["waits"], 0.5),
            "wait_p99": exact_quantile(level["waits"], 0.99),
            "loop_lag_p99": histogram_quantile(0.99, level["lag"]),
            "loop_lag_mean": level["lag_sum"] / lag_count if lag_count else math.nan,
        }
        levels.append(
            {
                "connections": connections,
                "target_rps": connections * RATE_PER_CONNECTION,
                "requests_client": len(level["client"]),
                "requests_server_histogram": server_count,
                "requests_timed_on_arrival": len(level["waits"]),
                **{f"{k}_ms": round(v * 1000, 3) for k, v in ms.items()},
            }
        )
    return {
        "route": THUMB_ROUTE,
        "url": THUMB_PATH,
        "client": f"hey, {RATE_PER_CONNECTION:g} req/s per connection",
        "rounds": args.rounds,
        "seconds_per_level_per_round": args.seconds,
        "machine": {"cpus": os.cpu_count(), "loadavg_1m_at_end": os.getloadavg()[0]},
        "levels": levels,
    }


def table(result: dict[str, Any]) -> str:
    """Return the concurrency table (milliseconds)."""
    lines = [
        f"GET {result['url']} (cached), {result['client']}, {result['rounds']} rounds x "
        f"{result['seconds_per_level_per_round']} s per level; latencies in ms",
        f"{'conns':>5}{'req/s':>7}{'requests':>9} | {'client p50':>10}{'p99':>8} | "
        f"{'histogram p50':>13}{'p99':>7} | {'exact p99':>9} | {'wait p99':>8}"
        f"{'loop lag p99':>13} | {'p99 gap':>8}",
    ]
    for level in result["levels"]:
        gap = level["client_p99_ms"] - level["server_histogram_p99_ms"]
        lines.append(
            f"{level['connections']:>5}{level['target_rps']:>7.0f}{level['requests_client']:>9}"
            f" | {level['client_p50_ms']:>10.2f}{level['client_p99_ms']:>8.2f}"
            f" | {level['server_histogram_p50_ms']:>13.2f}{level['server_histogram_p99_ms']:>7.2f}"
            f" | {level['server_exact_p99_ms']:>9.2f} | {level['wait_p99_ms']:>8.2f}"
            f"{level['loop_lag_p99_ms']:>13.2f} | {gap:>+8.2f}"
        )
    lines.append(
        "histogram = vrewcraft_http_request_duration_seconds as histogram_quantile reads it; "
        "exact = the same span, unbucketed; wait = bytes received by uvicorn -> app started"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the concurrency benchmark, print the table and store the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    serve_cmd = sub.add_parser("serve", help="run the benchmark's server (used internally)")
    serve_cmd.add_argument("--port", type=int, required=True)
    serve_cmd.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the levels (3)")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per level per round")
    parser.add_argument("--port", type=int, default=None, help="server port (default: free)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="result file (JSON)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.port, args.data_dir)
        return 0
    if shutil.which("hey") is None:
        sys.exit("bench/latency_gap.py needs `hey` on PATH (make bench installs it)")
    from course_lib.service.testing import free_port

    port = free_port() if args.port is None else args.port
    with (
        tempfile.TemporaryDirectory(prefix="vrewcraft-gap-") as work,
        server(port, Path(work)) as base,
    ):
        for _ in range(3):  # the first request extracts the thumbnail; then it's cached
            httpx.get(f"{base}{THUMB_PATH}", timeout=30).raise_for_status()
        pooled = measure(base, args.rounds, args.seconds)
    result = figures(pooled, args)
    print(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"stored in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

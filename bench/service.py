"""Benchmark the VrewCraft service (latency, instrumentation overhead) and print the numbers.

What it does, all on 127.0.0.1 with free ports and a temporary directory:

1. Starts the service twice: instrumented, and with ``--no-http-metrics`` (baseline).
2. Starts a private Prometheus scraping the instrumented one every second.
3. Warm-up: the standard traffic mix, so the thumbnail cache reaches its steady state.
4. Measured phase at a fixed total rate (default 50 req/s for 60 s): the standard mix
   from ``course_lib.traffic`` plus ``hey`` (an external client) on two URLs. Server-side
   quantiles come from ``histogram_quantile`` in Prometheus; client-side ones from hey
   and from the traffic generator; both are compared bucket by bucket.
5. Instrumentation overhead: ``wrk`` on ``/healthz`` of both services, in alternating
   rounds (ABBA order, so drift hits both sides alike), after Prometheus has stopped and
   the mix's last ffmpeg jobs have finished: otherwise scrapes and trims land on the
   instrumented service only and read as "overhead". Then the same comparison
   in-process (no network, no server), to show the middleware's own cost per request.
   Both report medians with their spread (interquartile range) and the paired
   per-round loss, so noise is visible rather than hidden in one number.

Usage::

    python bench/service.py                      # 10 s warm-up, 60 s at 50 req/s
    python bench/service.py --rate 50 --duration 30 --warmup 5
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import csv
import io
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from course_lib import prom
from course_lib.service.metrics import HTTP_BUCKETS, THUMBNAIL_BUCKETS
from course_lib.supervisor import free_port, http_ok, poll, stop_child
from course_lib.traffic import run_traffic

HEY_RATE = 5.0  # req/s hey sends to each of its two URLs


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers 200."""
    if not poll(lambda: http_ok(url), timeout, interval=0.05):
        raise RuntimeError(f"{url} did not come up")


@contextlib.contextmanager
def process(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    """Run a process for the duration of the block, then SIGTERM it."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield
        finally:
            stop_child(proc, timeout=20)


def service(port: int, data_dir: Path, log: Path, instrumented: bool = True):
    """Return a context manager running one service instance."""
    args = [
        sys.executable,
        "-m",
        "course_lib.service",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    if not instrumented:
        args.append("--no-http-metrics")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    return process(args, log, env)


def prometheus(port: int, target_port: int, workdir: Path):
    """Return a context manager running a Prometheus that scrapes the service every 1 s."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: vrewcraft-backend\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
    )
    binary = shutil.which("prometheus") or "prometheus"
    return process(
        [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--config.file={config}",
        ],
        workdir / "prometheus.log",
    )


def promql(base: str, query: str, at: float) -> float:
    """Return the single value of an instant query at ``at`` (NaN when empty)."""
    df = prom.query(base, query, time=at)
    return float(df["value"].iloc[0]) if len(df) else math.nan


def wait_for_scrape(base: str, after: float) -> None:
    """Wait until Prometheus has scraped every target at or after ``after`` (Unix seconds)."""
    prom.wait_for(
        base,
        "timestamp(up)",
        lambda df: not df.empty and df["value"].min() >= after,
        timeout=30,
        interval=0.2,
    )


def bucket_index(value: float, buckets: tuple[float, ...]) -> int:
    """Return the index of the histogram bucket that ``value`` falls in (+Inf = len)."""
    return bisect.bisect_left(list(buckets), value)


def exact_quantile(values: list[float], q: float) -> float:
    """Return the q-quantile of raw samples (nearest rank)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def start_hey(url: str, seconds: float, rate: float) -> subprocess.Popen:
    """Start hey sending ``rate`` req/s to ``url`` for ``seconds``, CSV output."""
    workers = 2
    return subprocess.Popen(
        [
            "hey",
            "-z",
            f"{int(seconds)}s",
            "-c",
            str(workers),
            "-q",
            str(rate / workers),
            "-o",
            "csv",
            url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def hey_latencies(proc: subprocess.Popen) -> tuple[list[float], dict[str, int]]:
    """Collect hey's per-request latencies (s) and status counts."""
    out, _ = proc.communicate(timeout=120)
    latencies, statuses = [], {}
    for row in csv.DictReader(io.StringIO(out)):
        latencies.append(float(row["response-time"]))
        statuses[row["status-code"]] = statuses.get(row["status-code"], 0) + 1
    return latencies, statuses


def wrk_rps(url: str, seconds: int = 4) -> float:
    """Return wrk's requests/s against ``url`` (1 thread, 8 connections)."""
    out = subprocess.run(
        ["wrk", "-t1", "-c8", f"-d{seconds}s", url], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return float(match.group(1))


def wrk_overhead(
    with_url: str, without_url: str, rounds: int, seconds: int
) -> tuple[list[float], list[float]]:
    """Return wrk req/s per round for both URLs, alternating ABBA (with, without, without,
    with, ...) so slow drift of the machine doesn't favour the side that runs first."""
    for url in (with_url, without_url):  # warm-up: connections, allocator, code caches
        wrk_rps(url, 1)
    with_metrics: list[float] = []
    without: list[float] = []
    for i in range(rounds):
        pair = [(with_metrics, with_url), (without, without_url)]
        for results, url in pair if i % 2 == 0 else pair[::-1]:
            results.append(wrk_rps(url, seconds))
    return with_metrics, without


def asgi_costs_us(rounds: int = 20, calls: int = 2000) -> tuple[list[float], list[float]]:
    """Return microseconds per in-process GET /healthz call, per round, with and without
    the metrics middleware (no network, no server): the pure cost of the middleware.
    Both apps are built once and measured in alternating rounds (ABBA), in one loop."""
    import asyncio

    from prometheus_client import CollectorRegistry

    from course_lib.service.app import make_app
    from course_lib.service.settings import Settings

    apps = [
        make_app(
            registry=CollectorRegistry(),
            settings=Settings(data_dir=Path(tempfile.mkdtemp()), instrument_http=instrumented),
        )
        for instrumented in (True, False)
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/healthz",
        "raw_path": b"/healthz",
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: dict) -> None:
        pass

    async def per_call(app, n: int) -> float:
        began = time.perf_counter()
        for _ in range(n):
            await app(dict(scope), receive, send)
        return (time.perf_counter() - began) / n * 1e6

    async def run() -> tuple[list[float], list[float]]:
        for app in apps:
            await per_call(app, calls)  # warm-up
        results: tuple[list[float], list[float]] = ([], [])
        for i in range(rounds):
            order = (0, 1) if i % 2 == 0 else (1, 0)
            for side in order:
                results[side].append(await per_call(apps[side], calls))
        return results

    return asyncio.run(run())


def iqr(values: list[float]) -> tuple[float, float]:
    """Return the interquartile range (25th, 75th percentile) of ``values``."""
    q1, _median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def wait_idle(base: str, timeout: float = 60.0) -> None:
    """Wait until the service runs no ffmpeg job (a trim from the mix may still run)."""

    def idle() -> bool:
        text = httpx.get(f"{base}/metrics", timeout=5).text
        match = re.search(r"^vrewcraft_ffmpeg_jobs_active (\S+)$", text, re.MULTILINE)
        return match is not None and float(match.group(1)) == 0

    poll(idle, timeout, interval=0.2)


def fmt_ms(seconds: float) -> str:
    """Format seconds as milliseconds."""
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


def agree(a: float, b: float, buckets: tuple[float, ...]) -> str:
    """Say whether two latencies fall in the same or adjacent histogram buckets."""
    if math.isnan(a) or math.isnan(b):
        return "n/a"
    gap = abs(bucket_index(a, buckets) - bucket_index(b, buckets))
    return (
        "yes (same bucket)"
        if gap == 0
        else ("yes (adjacent)" if gap == 1 else f"NO ({gap} buckets apart)")
    )


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="total req/s (default 50)")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=10.0, help="warm-up seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--overhead-rounds",
        type=int,
        default=15,
        help="alternating wrk rounds per side for the overhead (default 15)",
    )
    parser.add_argument(
        "--overhead-seconds", type=int, default=2, help="seconds per wrk round (default 2)"
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    for tool in ("prometheus", "hey", "wrk", "ffmpeg"):
        if shutil.which(tool) is None:
            sys.exit(f"bench/service.py needs `{tool}` on PATH")

    work = Path(tempfile.mkdtemp(prefix="vrewcraft-bench-"))
    p_svc, p_plain, p_prom = free_port(), free_port(), free_port()
    svc, plain, prom_url = (f"http://127.0.0.1:{p}" for p in (p_svc, p_plain, p_prom))
    figures: dict[str, object] = {
        "rate": args.rate,
        "duration_s": args.duration,
        "cpus": os.cpu_count(),
    }
    try:
        with (
            service(p_svc, work / "svc", work / "svc.log"),
            service(p_plain, work / "plain", work / "plain.log", instrumented=False),
        ):
            wait_http(f"{svc}/healthz")
            wait_http(f"{plain}/healthz")
            with prometheus(p_prom, p_svc, work / "prom"):
                wait_http(f"{prom_url}/-/ready")

                print(f"warm-up: {args.warmup:.0f} s of the standard mix at {args.rate:.0f} req/s")
                warm = run_traffic(
                    svc, rate=args.rate, duration=args.warmup, seed=args.seed + 1, progress=False
                )
                print(f"  {warm}")

                thumb_url = f"{svc}/api/videos/sample-1/thumbnail?t=1.0"
                list_url = f"{svc}/api/videos"
                gen_rate = args.rate - 2 * HEY_RATE
                print(
                    f"measured: {args.duration:.0f} s, traffic generator {gen_rate:.0f} req/s "
                    f"+ hey {HEY_RATE:.0f} req/s on each of 2 URLs = {args.rate:.0f} req/s"
                )
                wait_for_scrape(prom_url, time.time())  # the window starts on fresh data
                start = time.time()
                hey_list = start_hey(list_url, args.duration, HEY_RATE)
                hey_thumb = start_hey(thumb_url, args.duration, HEY_RATE)
                summary = run_traffic(
                    svc,
                    rate=gen_rate,
                    duration=args.duration,
                    seed=args.seed,
                    progress=True,
                    progress_every=15,
                )
                list_lat, list_status = hey_latencies(hey_list)
                thumb_lat, thumb_status = hey_latencies(hey_thumb)
                end = start + args.duration
                wait_for_scrape(prom_url, end)  # the window's last samples are in
                window = f"{int(args.duration)}s"

                def q(expr: str) -> float:
                    """Evaluate PromQL at the end of the measured window."""
                    return promql(prom_url, expr, end)

                http = "vrewcraft_http_request_duration_seconds_bucket"
                api = f'{http}{{route=~"/api/.*"}}'
                server = {
                    "api_p50": q(f"histogram_quantile(0.5, sum by (le) (rate({api}[{window}])))"),
                    "api_p99": q(f"histogram_quantile(0.99, sum by (le) (rate({api}[{window}])))"),
                    "list_p99": q(
                        f"histogram_quantile(0.99, sum by (le) (rate({http}"
                        f'{{route="/api/videos"}}[{window}])))'
                    ),
                    "thumb_route_p99": q(
                        f"histogram_quantile(0.99, sum by (le) (rate({http}"
                        f'{{route="/api/videos/{{video_id}}/thumbnail"}}[{window}])))'
                    ),
                    "thumb_p50": q(
                        "histogram_quantile(0.5, sum by (le) (rate("
                        f"vrewcraft_thumbnail_duration_seconds_bucket[{window}])))"
                    ),
                    "thumb_p99": q(
                        "histogram_quantile(0.99, sum by (le) (rate("
                        f"vrewcraft_thumbnail_duration_seconds_bucket[{window}])))"
                    ),
                    "miss_p50": q(
                        "histogram_quantile(0.5, sum by (le) (rate("
                        f"vrewcraft_thumbnail_miss_duration_seconds_bucket[{window}])))"
                    ),
                    "miss_p99": q(
                        "histogram_quantile(0.99, sum by (le) (rate("
                        f"vrewcraft_thumbnail_miss_duration_seconds_bucket[{window}])))"
                    ),
                    "hit_ratio": q(
                        "sum(increase(vrewcraft_thumbnail_requests_total"
                        f'{{cache_status="hit"}}[{window}])) / sum(increase('
                        f"vrewcraft_thumbnail_requests_total[{window}]))"
                    ),
                    "error_ratio": q(
                        '(sum(rate(vrewcraft_http_requests_total{status_code=~"5.."}'
                        f"[{window}])) or vector(0)) / sum(rate("
                        f"vrewcraft_http_requests_total[{window}]))"
                    ),
                    "req_rate": q(
                        f'sum(rate(vrewcraft_http_requests_total{{route!="/metrics"}}[{window}]))'
                    ),
                    # The seed's un-aggregated form: one quantile per series.
                    "seed_form_series": q(
                        f"count(histogram_quantile(0.99, rate({http}[{window}])))"
                    ),
                }
                client_thumb = list(summary.latencies.get("thumbnail", []))
                client_api = [v for k, d in summary.latencies.items() if k != "healthz" for v in d]
                client = {
                    "generator_api_p99": exact_quantile(client_api, 0.99),
                    "generator_thumb_p99": exact_quantile(client_thumb, 0.99),
                    "hey_list_p50": exact_quantile(list_lat, 0.5),
                    "hey_list_p99": exact_quantile(list_lat, 0.99),
                    "hey_thumb_p99": exact_quantile(thumb_lat, 0.99),
                    "generator_hit_ratio": summary.hit_ratio,
                }

            # Prometheus has stopped (its scrapes hit the instrumented service only); let
            # the mix's last trims finish, for the same reason.
            wait_idle(svc)
            print(
                f"overhead: wrk -t1 -c8 on /healthz, instrumented vs not, "
                f"{args.overhead_rounds} x {args.overhead_seconds} s each, alternating ABBA"
            )
            with_metrics, without = wrk_overhead(
                f"{svc}/healthz", f"{plain}/healthz", args.overhead_rounds, args.overhead_seconds
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rps_with, rps_without = statistics.median(with_metrics), statistics.median(without)
    overhead = 1 - rps_with / rps_without
    paired = [1 - w / o for w, o in zip(with_metrics, without, strict=True)]
    print("overhead in-process: GET /healthz through the ASGI app, 20 alternating rounds")
    asgi_with, asgi_without = asgi_costs_us()
    us_with, us_without = statistics.median(asgi_with), statistics.median(asgi_without)
    paired_us = [w - o for w, o in zip(asgi_with, asgi_without, strict=True)]

    figures.update(
        {
            "server": server,
            "client": client,
            "hey_status": {"list": list_status, "thumbnail": thumb_status},
            "generator": summary.as_dict(),
            "overhead": {
                "rps_with": rps_with,
                "rps_without": rps_without,
                "loss": overhead,
                "paired_loss": statistics.median(paired),
                "runs_with": with_metrics,
                "runs_without": without,
                "asgi_us_with": us_with,
                "asgi_us_without": us_without,
                "asgi_paired_us": statistics.median(paired_us),
                "asgi_runs_with": asgi_with,
                "asgi_runs_without": asgi_without,
            },
        }
    )

    ok = "PASS"
    bad = "FAIL"
    print()
    print(
        f"== VrewCraft benchmark: {args.rate:.0f} req/s for {args.duration:.0f} s "
        f"on {os.cpu_count()} CPUs =="
    )
    print(
        f"achieved rate (Prometheus, excl. /metrics): {server['req_rate']:.1f} req/s; "
        f"5xx ratio {server['error_ratio']:.2%}"
    )
    print(
        f"API p99 (histogram_quantile, sum by le, /api/*):  {fmt_ms(server['api_p99'])}  "
        f"target < 200 ms: {ok if server['api_p99'] < 0.2 else bad}   "
        f"(p50 {fmt_ms(server['api_p50'])})"
    )
    print(
        f"  client-side, traffic generator (all API kinds):   "
        f"{fmt_ms(client['generator_api_p99'])}  agree within one bucket: "
        f"{agree(server['api_p99'], client['generator_api_p99'], HTTP_BUCKETS)}"
    )
    print(
        f"  GET /api/videos p99: Prometheus {fmt_ms(server['list_p99'])} vs hey "
        f"{fmt_ms(client['hey_list_p99'])} -> "
        f"{agree(server['list_p99'], client['hey_list_p99'], HTTP_BUCKETS)}"
    )
    print(
        f"thumbnail p99 (vrewcraft_thumbnail_duration_seconds): {fmt_ms(server['thumb_p99'])}"
        f"  target < 50 ms: {ok if server['thumb_p99'] < 0.05 else bad}   "
        f"(p50 {fmt_ms(server['thumb_p50'])})"
    )
    print(
        f"  client-side, traffic generator thumbnails:        "
        f"{fmt_ms(client['generator_thumb_p99'])}  agree within one bucket: "
        f"{agree(server['thumb_p99'], client['generator_thumb_p99'], THUMBNAIL_BUCKETS)}"
    )
    print(
        f"  hot thumbnail URL p99: Prometheus route p99 {fmt_ms(server['thumb_route_p99'])}"
        f" vs hey {fmt_ms(client['hey_thumb_p99'])} (hey's URL is always a hit)"
    )
    print(
        f"cache hit ratio (PromQL from counters): {server['hit_ratio']:.1%}  target > 80%: "
        f"{ok if server['hit_ratio'] > 0.8 else bad}  (generator saw "
        f"{client['generator_hit_ratio']:.1%}; the PromQL figure includes hey's always-hit URL)"
    )
    print(
        f"thumbnail cache-miss latency: p50 {fmt_ms(server['miss_p50'])}, p99 "
        f"{fmt_ms(server['miss_p99'])}  goal p99 <= 50 ms: "
        f"{ok if server['miss_p99'] <= 0.05 else bad}"
    )
    (w_q1, w_q3), (o_q1, o_q3) = iqr(with_metrics), iqr(without)
    p_med, (p_q1, p_q3) = statistics.median(paired), iqr(paired)
    print(
        f"instrumentation overhead on /healthz: {rps_with:.0f} req/s with metrics vs "
        f"{rps_without:.0f} without (medians) -> {overhead:+.1%} loss  target <= 5%: "
        f"{ok if overhead <= 0.05 else bad}"
    )
    print(
        f"  spread (IQR): with {w_q1:.0f}-{w_q3:.0f}, without {o_q1:.0f}-{o_q3:.0f} req/s; "
        f"paired per-round loss median {p_med:+.1%} (IQR {p_q1:+.1%} to {p_q3:+.1%}, "
        f"range {min(paired):+.1%} to {max(paired):+.1%}, {len(paired)} rounds)"
    )
    (aw_q1, aw_q3), (ao_q1, ao_q3) = iqr(asgi_with), iqr(asgi_without)
    d_med, (d_q1, d_q3) = statistics.median(paired_us), iqr(paired_us)
    print(
        f"  in-process (no network): {us_with:.1f} us per /healthz call with metrics "
        f"(IQR {aw_q1:.1f}-{aw_q3:.1f}) vs {us_without:.1f} us without "
        f"(IQR {ao_q1:.1f}-{ao_q3:.1f}) -> {us_with - us_without:+.1f} us per request "
        f"(paired rounds: median {d_med:+.1f}, IQR {d_q1:+.1f} to {d_q3:+.1f}); over HTTP "
        f"that is {(us_with - us_without) / (1e6 / rps_without):+.1%} of a request"
    )
    print(
        f"seed's un-aggregated p99 query returns {server['seed_form_series']:.0f} series "
        f"(one per method/route/status), not one number"
    )
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

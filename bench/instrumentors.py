"""Cost of HTTP metrics: the course's middleware against the FastAPI ecosystem's instrumentors.

The same VrewCraft app, built four ways in one run:

* ``none``: no HTTP metrics at all (the baseline);
* ``course``: the service's own ``PrometheusMiddleware``;
* ``instrumentator``: ``prometheus-fastapi-instrumentator``;
* ``starlette_exporter``: ``starlette-exporter``.

Each instrumented variant records the same metric set: a request counter and a latency
histogram (the service's buckets) labelled by method, route template and status code.
``starlette-exporter`` can't leave out its in-progress gauge and ``app_name`` label; that
is part of what it costs.

Two measurements, both in rounds whose order rotates and reverses (so drift of a shared
machine hits every variant alike), reported as median and interquartile range (IQR):

1. In-process: ``GET /healthz`` called straight through the ASGI app, no network, no
   server. The paired difference to ``none`` in the same round is the middleware's own
   cost per request.
2. Over HTTP: one uvicorn server per variant, ``wrk`` against ``/healthz``.

Usage::

    python bench/instrumentors.py                 # both, writes bench/results/instrumentors.json
    python bench/instrumentors.py --http-rounds 0 # in-process only
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

VARIANTS = ("none", "course", "instrumentator", "starlette_exporter")
RESULTS = Path(__file__).resolve().parent / "results" / "instrumentors.json"
PATH = "/healthz"


def build_app(variant: str, data_dir: Path) -> tuple[Any, Any]:
    """Return the VrewCraft app instrumented the ``variant`` way, and its fresh registry."""
    from prometheus_client import CollectorRegistry

    from course_lib.service.app import make_app
    from course_lib.service.metrics import HTTP_BUCKETS
    from course_lib.service.settings import Settings

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: pick one of {', '.join(VARIANTS)}")
    registry = CollectorRegistry()
    settings = Settings(data_dir=data_dir, sample_count=1, instrument_http=variant == "course")
    app = make_app(registry=registry, settings=settings)
    if variant == "instrumentator":
        from prometheus_fastapi_instrumentator import Instrumentator, metrics

        instrumentator = Instrumentator(
            should_group_status_codes=False,  # status "200", not "2xx", like the others
            should_group_untemplated=True,  # unmatched paths share one label value
            registry=registry,
        )
        instrumentator.add(metrics.requests(registry=registry))
        instrumentator.add(metrics.latency(buckets=HTTP_BUCKETS, registry=registry))
        instrumentator.instrument(app)
    elif variant == "starlette_exporter":
        from starlette_exporter import PrometheusMiddleware

        # It registers on the global registry (no parameter for another); one app per
        # process uses it, so that is harmless here.
        app.add_middleware(
            PrometheusMiddleware,
            group_paths=True,  # the route template, not the raw path
            group_unhandled_paths=True,  # count unmatched paths too, as one label value
            filter_unhandled_paths=False,  # (implied by the line above; said to stay quiet)
            buckets=HTTP_BUCKETS,
        )
    return app, registry


def recorded_requests(variant: str, registry: Any) -> float:
    """Return how many GET /healthz 200 requests the variant's counter holds."""
    from prometheus_client import REGISTRY

    name, labels = {
        "course": (
            "vrewcraft_http_requests_total",
            {"method": "GET", "route": PATH, "status_code": "200"},
        ),
        "instrumentator": (
            "http_requests_total",
            {"method": "GET", "handler": PATH, "status": "200"},
        ),
        "starlette_exporter": (
            "starlette_requests_total",
            {"method": "GET", "path": PATH, "status_code": "200", "app_name": "starlette"},
        ),
    }[variant]
    if variant == "starlette_exporter":
        registry = REGISTRY
    return registry.get_sample_value(name, labels) or 0.0


def orders(rounds: int, names: Sequence[str]) -> Iterator[list[str]]:
    """Yield one order per round: rotated by the round, reversed every other round."""
    for i in range(rounds):
        k = (i // 2) % len(names)
        order = list(names[k:]) + list(names[:k])
        yield order if i % 2 == 0 else order[::-1]


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """Return (25th percentile, median, 75th percentile) of ``values``."""
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def summary(values: Sequence[float], resamples: int = 2000) -> dict[str, float]:
    """Return the median, the IQR bounds and a 95% bootstrap interval of the median.

    The IQR is the spread of single rounds; the interval says how well the median
    itself is known, and it narrows as rounds are added (the IQR does not).
    """
    q1, median, q3 = quartiles(values)
    rng = random.Random(0)  # a fixed seed: the same rounds always give the same interval
    medians = sorted(
        statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples)
    )
    return {
        "median": median,
        "q1": q1,
        "q3": q3,
        "ci95_low": medians[int(0.025 * resamples)],
        "ci95_high": medians[int(0.975 * resamples) - 1],
    }


# --- in-process --------------------------------------------------------------------------


def inprocess(rounds: int, calls: int) -> dict[str, list[float]]:
    """Return microseconds per in-process GET /healthz, per round, for every variant."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    built = {v: build_app(v, Path(tempfile.mkdtemp(prefix="vrewcraft-bench-"))) for v in VARIANTS}
    apps = {v: app for v, (app, _) in built.items()}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: dict) -> None:
        return None

    async def per_call_us(app: Any, n: int) -> float:
        # CPU time of this thread, not wall time: on a shared machine the wall clock also
        # counts the time other processes held the core, which is noise, not cost.
        began = time.thread_time_ns()
        for _ in range(n):
            await app(dict(scope), receive, send)
        return (time.thread_time_ns() - began) / n / 1000

    async def run() -> dict[str, list[float]]:
        async with contextlib.AsyncExitStack() as started:
            for app in apps.values():  # the lifespan starts the service /healthz reports on
                await started.enter_async_context(app.router.lifespan_context(app))
            for app in apps.values():  # warm-up: label children, code paths, allocator
                await per_call_us(app, calls)
            results: dict[str, list[float]] = {v: [] for v in VARIANTS}
            for order in orders(rounds, VARIANTS):
                for variant in order:
                    gc.collect()  # a collection inside a round would land on one variant
                    results[variant].append(await per_call_us(apps[variant], calls))
            return results

    results = asyncio.run(run())
    expected = calls * (rounds + 1)
    for variant in VARIANTS[1:]:  # the metric set must really be recorded, every request
        got = recorded_requests(variant, built[variant][1])
        if got != expected:
            raise RuntimeError(f"{variant} counted {got} requests, expected {expected}")
    return results


# --- over HTTP ---------------------------------------------------------------------------


def serve(variant: str, port: int) -> None:
    """Serve the ``variant`` app with uvicorn on 127.0.0.1:``port`` (the service's options)."""
    import uvicorn

    app, _ = build_app(variant, Path(tempfile.mkdtemp(prefix=f"vrewcraft-bench-{variant}-")))
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    uvicorn.Server(config).run()


@contextlib.contextmanager
def servers(ports: dict[str, int], logs: Path) -> Iterator[dict[str, int]]:
    """Run one server per variant for the duration of the block; yield their pids."""
    from course_lib.supervisor import stop_child

    procs: dict[str, subprocess.Popen] = {}
    try:
        for variant, port in ports.items():
            with (logs / f"{variant}.log").open("wb") as log:
                procs[variant] = subprocess.Popen(
                    [sys.executable, __file__, "serve", variant, "--port", str(port)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        for port in ports.values():
            wait_http(f"http://127.0.0.1:{port}{PATH}")
        yield {variant: proc.pid for variant, proc in procs.items()}
    finally:
        for proc in procs.values():
            stop_child(proc, timeout=20)


def wait_http(url: str, timeout: float = 60.0) -> None:
    """Wait until ``url`` answers 200."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")


def wrk(url: str, seconds: int, connections: int = 8) -> tuple[int, float]:
    """Return (requests, requests/s) of one wrk run against ``url`` (1 thread)."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    done = re.search(r"(\d+) requests in", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if done is None or rate is None or "Non-2xx" in out:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return int(done.group(1)), float(rate.group(1))


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system) process ``pid`` has used so far."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def over_http(
    rounds: int, seconds: int, base_port: int | None
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Return wrk req/s and the server's CPU us per request, per round, for every variant.

    Requests/s is what a user feels but moves with everything else the machine runs; the
    server's CPU time per request (from the kernel's accounting) barely does.
    """
    from course_lib.service.testing import free_port

    ports = {v: free_port() if base_port is None else base_port + i for i, v in enumerate(VARIANTS)}
    rps: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu_us: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with (
        tempfile.TemporaryDirectory(prefix="vrewcraft-bench-logs-") as logs,
        servers(ports, Path(logs)) as pids,
    ):
        for port in ports.values():  # warm-up
            wrk(f"http://127.0.0.1:{port}{PATH}", 1)
        for order in orders(rounds, VARIANTS):
            for variant in order:
                before = cpu_seconds(pids[variant])
                done, rate = wrk(f"http://127.0.0.1:{ports[variant]}{PATH}", seconds)
                cpu_us[variant].append((cpu_seconds(pids[variant]) - before) / done * 1e6)
                rps[variant].append(rate)
    return rps, cpu_us


# --- report ------------------------------------------------------------------------------


def figures(
    us: dict[str, list[float]],
    http: tuple[dict[str, list[float]], dict[str, list[float]]] | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Return the stored result: per-variant medians/IQRs and the paired differences."""
    rps, cpu_us = http if http is not None else (None, None)
    variants: dict[str, Any] = {}
    for variant in VARIANTS:
        entry: dict[str, Any] = {"us_per_request": summary(us[variant])}
        if variant != "none":
            entry["overhead_us"] = summary(paired(us, variant, lambda a, b: a - b))
        if rps is not None and cpu_us is not None:
            entry["rps"] = summary(rps[variant])
            entry["server_cpu_us"] = summary(cpu_us[variant])
            if variant != "none":
                entry["throughput_loss"] = summary(paired(rps, variant, lambda a, b: 1 - a / b))
                entry["server_cpu_overhead_us"] = summary(
                    paired(cpu_us, variant, lambda a, b: a - b)
                )
        variants[variant] = entry
    return {
        "path": PATH,
        "cost_clock": "thread CPU time (time.thread_time_ns)",
        "inprocess": {"rounds": args.rounds, "calls_per_round": args.calls},
        "http": None
        if http is None
        else {
            "rounds": args.http_rounds,
            "seconds_per_round": args.http_seconds,
            "client": "wrk -t1 -c8",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_1m_at_end": os.getloadavg()[0],
        },
        "versions": versions(),
        "variants": variants,
        "raw": {"us_per_request": us, "rps": rps, "server_cpu_us": cpu_us},
    }


def paired(values: dict[str, list[float]], variant: str, diff: Any) -> list[float]:
    """Return ``diff(variant, none)`` round by round (both measured in the same round)."""
    return [diff(a, b) for a, b in zip(values[variant], values["none"], strict=True)]


def versions() -> dict[str, str]:
    """Return the versions of the packages compared."""
    from importlib.metadata import version

    names = (
        "fastapi",
        "starlette",
        "uvicorn",
        "prometheus_client",
        "prometheus-fastapi-instrumentator",
        "starlette-exporter",
    )
    return {name: version(name) for name in names}


def cell(stats: dict[str, float], fmt: str) -> str:
    """Format one median (IQR) cell."""
    return f"{stats['median']:{fmt}} ({stats['q1']:{fmt}} to {stats['q3']:{fmt}})"


def table(result: dict[str, Any]) -> str:
    """Return the four-way comparison as a printable table (medians, IQR in brackets)."""
    inproc, http = result["inprocess"], result["http"]
    lines = [
        f"GET {result['path']}: in-process {inproc['rounds']} rounds x "
        f"{inproc['calls_per_round']} calls (CPU us per request)"
        + (
            f"; HTTP {http['client']} {http['rounds']} rounds x {http['seconds_per_round']} s"
            if http
            else ""
        ),
        f"{'variant':<19}{'in-process us':>22}{'overhead us':>24}"
        + (
            f"{'HTTP req/s':>22}{'req/s loss':>26}{'server CPU us/req':>20}{'its overhead':>24}"
            if http
            else ""
        ),
    ]
    for variant, entry in result["variants"].items():
        row = f"{variant:<19}{cell(entry['us_per_request'], '.1f'):>22}"
        row += f"{cell(entry['overhead_us'], '+.1f') if 'overhead_us' in entry else '-':>24}"
        if http:
            row += f"{cell(entry['rps'], '.0f'):>22}"
            loss = entry.get("throughput_loss")
            row += f"{cell(loss, '+.1%') if loss else '-':>26}"
            row += f"{cell(entry['server_cpu_us'], '.0f'):>20}"
            extra = entry.get("server_cpu_overhead_us")
            row += f"{cell(extra, '+.0f') if extra else '-':>24}"
        lines.append(row)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the four-way benchmark, print the table and store the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    serve_cmd = sub.add_parser("serve", help="serve one variant (used by the HTTP rounds)")
    serve_cmd.add_argument("variant", choices=VARIANTS)
    serve_cmd.add_argument("--port", type=int, required=True)
    parser.add_argument("--rounds", type=int, default=40, help="in-process rounds (40)")
    parser.add_argument("--calls", type=int, default=2000, help="calls per in-process round")
    parser.add_argument("--http-rounds", type=int, default=12, help="wrk rounds (0: skip)")
    parser.add_argument("--http-seconds", type=int, default=2, help="seconds per wrk round")
    parser.add_argument(
        "--port", type=int, default=None, help="first of the 4 server ports (default: free ones)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="result file (JSON)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.variant, args.port)
        return 0
    if args.http_rounds and shutil.which("wrk") is None:
        sys.exit("bench/instrumentors.py needs `wrk` on PATH (make bench installs it)")

    print(f"in-process: {args.rounds} rounds x {args.calls} calls per variant ...", flush=True)
    us = inprocess(args.rounds, args.calls)
    http = None
    if args.http_rounds:
        print(f"over HTTP: {args.http_rounds} wrk rounds per variant ...", flush=True)
        http = over_http(args.http_rounds, args.http_seconds, args.port)
    result = figures(us, http, args)
    print(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"stored in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

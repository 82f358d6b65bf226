"""Where the HTTP metrics middleware's few microseconds go, layer by layer.

The four-way benchmark (``bench/instrumentors.py``) times a whole app, so its figure for
the middleware is a small difference between two large, noisy numbers. Here the
middleware wraps a bare ASGI app that answers at once, and so do four partial copies of
it, each adding one part of its work:

* ``layer``: an ASGI layer that only passes the call on;
* ``+ send wrapper``: also wraps ``send`` to catch the status code;
* ``+ bookkeeping``: also reads the clock, folds the method and finds the cached
  labelled children, but updates no metric;
* ``course``: the service's ``PrometheusMiddleware`` itself (two metric updates more).

Each figure is CPU time per request above the bare app, paired within rounds whose order
alternates; medians and IQR. Results go to ``bench/results/middleware_breakdown.json``.

Usage::

    python bench/middleware_breakdown.py
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from time import perf_counter
from typing import Any

from prometheus_client import CollectorRegistry

from course_lib.service.metrics import VrewCraftMetrics
from course_lib.service.middleware import KNOWN_METHODS, PrometheusMiddleware

RESULTS = Path(__file__).resolve().parent / "results" / "middleware_breakdown.json"


class _Route:
    """Stands in for the route object the router leaves in the scope."""

    path = "/healthz"


ROUTE = _Route()
SCOPE = {"type": "http", "method": "GET", "path": "/healthz"}


async def bare(scope: dict, _receive: Any, send: Any) -> None:
    """Answer 200 at once, the way the router marks the matched route."""
    scope["route"] = ROUTE
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


class Layer:
    """Pass the call on, nothing else."""

    def __init__(self, app: Any, metrics: VrewCraftMetrics) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class SendWrapper(Layer):
    """Also catch the status code on its way out (as the middleware does)."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        def send_wrapper(message: dict) -> Any:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        await self.app(scope, receive, send_wrapper)


class Bookkeeping(PrometheusMiddleware):
    """The middleware's code without its two metric updates."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 500

        def send_wrapper(message: dict) -> Any:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            _elapsed = perf_counter() - start
            method = scope["method"]
            if method not in KNOWN_METHODS:
                method = "OTHER"
            route = scope.get("route")
            record = self._records.get((method, id(route), status))
            if record is None:
                record = self._record_for(method, route, status)


LAYERS = {
    "layer": Layer,
    "+ send wrapper": SendWrapper,
    "+ bookkeeping": Bookkeeping,
    "course": PrometheusMiddleware,
}


def measure(rounds: int, calls: int) -> dict[str, list[float]]:
    """Return CPU microseconds per call, per round, of the bare app and every layer."""
    apps: dict[str, Any] = {"bare": bare}
    for name, cls in LAYERS.items():
        apps[name] = cls(bare, metrics=VrewCraftMetrics(CollectorRegistry()))

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: dict) -> None:
        return None

    async def per_call_us(app: Any) -> float:
        began = time.thread_time_ns()
        for _ in range(calls):
            await app(dict(SCOPE), receive, send)
        return (time.thread_time_ns() - began) / calls / 1000

    async def run() -> dict[str, list[float]]:
        for app in apps.values():
            await per_call_us(app)  # warm-up
        results: dict[str, list[float]] = {name: [] for name in apps}
        names = list(apps)
        for i in range(rounds):
            for name in names if i % 2 == 0 else names[::-1]:
                gc.collect()
                results[name].append(await per_call_us(apps[name]))
        return results

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    """Measure, print the breakdown and store it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    raw = measure(args.rounds, args.calls)
    rows = {}
    previous = 0.0
    print(f"CPU us per request above a bare ASGI app ({args.rounds} rounds x {args.calls} calls)")
    print(f"{'':<16}{'median':>8}{'IQR':>18}{'this step':>11}")
    for name in LAYERS:
        above = [a - b for a, b in zip(raw[name], raw["bare"], strict=True)]
        q1, median, q3 = statistics.quantiles(above, n=4, method="inclusive")
        rows[name] = {"median": median, "q1": q1, "q3": q3, "step": median - previous}
        print(f"{name:<16}{median:>8.2f}{f'{q1:.2f} to {q3:.2f}':>18}{median - previous:>+11.2f}")
        previous = median
    result = {
        "rounds": args.rounds,
        "calls_per_round": args.calls,
        "bare_us": statistics.median(raw["bare"]),
        "above_bare_us": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"stored in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

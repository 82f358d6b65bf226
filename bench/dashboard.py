"""Benchmark rendering the VrewCraft overview without Grafana: queries, figure, HTML page.

Renders the whole dashboard over the stack's day of history (24 h; the budget is 5 s),
on the stack configured by the COURSE_* environment (the learner's `make lab` stack by
default; started if needed), or over the last --hours against --url. Prints numbers;
asserts nothing.

    .venv/bin/python bench/dashboard.py [--runs 5] [--hours 24] [--url http://127.0.0.1:9090]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from course_lib import prom, stack
from course_lib.grafana import overview, render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hours", type=float, default=24.0, help="with --url only")
    parser.add_argument("--url", help="Prometheus to query (default: the course stack)")
    args = parser.parse_args()

    if args.url:
        url, (start, end) = args.url, prom.last(args.hours * 3600)
    else:
        running = stack.ensure_running()
        day = running.history_window()
        url, start, end = running.prometheus_url, day.start, day.end
    board = overview.dashboard_dict()
    timings: dict[str, list[float]] = {"queries": [], "figure": [], "html": [], "total": []}
    for _ in range(args.runs):
        t0 = time.perf_counter()
        results = render.evaluate(board, url, start, end)
        t1 = time.perf_counter()
        fig = render.figure(results, title=board["title"])
        t2 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            render.write_html(fig, Path(tmp) / "vrewcraft.html")
        t3 = time.perf_counter()
        for key, value in zip(timings, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
            timings[key].append(value)
    queries = sum(len(r.queries) for r in results)
    points = sum(len(s.values) for r in results for s in r.series)
    series = sum(len(r.series) for r in results)
    hours = (prom.to_datetime(end) - prom.to_datetime(start)).total_seconds() / 3600
    print(f"overview over {hours:g} h: {len(results)} panels, {queries} queries, ", end="")
    print(f"{series} series, {points} points (step of a half-width panel: {results[6].step:g}s)")
    for key, values in timings.items():
        print(f"  {key:8} median {statistics.median(values):.2f}s  max {max(values):.2f}s")


if __name__ == "__main__":
    main()

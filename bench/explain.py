"""Benchmark ``explain()``: a 10-node query, every node evaluated, on the course stack.

Starts the course stack on its own ports (offset 30300) and a temporary state
directory, so it never touches a learner's or the test suite's stack. When the
stack carries the backfilled day of history, the query is evaluated inside the
day's thumbnail incident; otherwise on the live service's traffic (after a
minute of it). Prints the rendered tree once, then the timings; asserts nothing.

    .venv/bin/python bench/explain.py [--runs 20] [--serial] [--port-offset 30300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from course_lib import explain as explain_mod
from course_lib import stack
from course_lib.config import StackConfig

#: Ten nodes: >, max, /, two sums, two rates, two range selectors, 0.05.
QUERY = (
    "max("
    'sum by (route) (rate(vrewcraft_http_requests_total{status_code=~"5.."}[5m]))'
    " / sum by (route) (rate(vrewcraft_http_requests_total[5m]))"
    ") > 0.05"
)


def _history_time(cfg: StackConfig) -> float | None:
    """Return a time inside the backfilled day's incident, or None without a history."""
    try:
        from course_lib import backfill
    except ImportError:
        return None
    day = backfill.window(cfg)
    return day.at_event("thumbnail_incident") + 600 if day else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--port-offset", default="30300", help="COURSE_PORT_OFFSET of the stack")
    parser.add_argument(
        "--serial", action="store_true", help="one node query at a time (for comparison)"
    )
    args = parser.parse_args()
    if args.serial:
        explain_mod.MAX_WORKERS = 1

    with tempfile.TemporaryDirectory(prefix="course-bench-explain-") as tmp:
        env = {"COURSE_PORT_OFFSET": args.port_offset, "COURSE_STATE_DIR": str(Path(tmp) / "state")}
        cfg = StackConfig.from_env(env)
        try:
            running = stack.up(cfg, progress=lambda msg: print(f"[stack] {msg}", flush=True))
            at = _history_time(cfg)
            where = "the backfilled day (thumbnail incident + 10 min)"
            if at is None:
                where = "live traffic (no history on this stack)"
                running.wait_for(
                    "count_over_time(vrewcraft_http_requests_total[5m]) >= 6",
                    timeout=120,
                )
                at = time.time()
            tree = explain_mod.explain(running, QUERY, at)
            print(tree, flush=True)
            timings = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                explain_mod.explain(running, QUERY, at)
                timings.append(time.perf_counter() - t0)
        finally:
            stack.down(cfg)
    print(
        f"\nexplain, {len(tree.nodes)} nodes, {tree.queries} queries, over {where}, "
        f"{'serial' if args.serial else f'{explain_mod.MAX_WORKERS} workers'}: "
        f"median {statistics.median(timings) * 1000:.0f} ms, "
        f"min {min(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms "
        f"({args.runs} runs)"
    )


if __name__ == "__main__":
    main()

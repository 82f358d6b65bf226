"""Benchmark the day of history: generate + backfill, first `up` with it, notebook 03.

* generate + backfill: simulate the day, write OpenMetrics, promtool blocks (fresh
  process caches each run), on a scratch state directory;
* first `up` on a fresh state directory (backfill included), then a second `up`;
* notebook 03 under papermill against that stack.

Runs on its own ports (offset 30300) and a temporary state directory, so it never
touches a learner's or the test suite's stack. Prints numbers; asserts nothing.

    .venv/bin/python bench/history.py [--runs 3] [--no-notebook]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from course_lib import backfill, history, stack
from course_lib.config import StackConfig, repo_root

ENV = {"COURSE_PORT_OFFSET": "30300", "COURSE_TRAFFIC": "0"}


def _cpu_seconds() -> float:
    """Return CPU seconds used by this process and its finished children (promtool)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def generate_and_backfill(tmp: Path) -> dict[str, float]:
    """Time one cold generate + backfill into a fresh TSDB, step by step."""
    history._simulate.cache_clear()
    history.families.cache_clear()
    cfg = StackConfig.from_env({**ENV, "COURSE_STATE_DIR": str(tmp / "gen")})
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    history._simulate(history.SEED)
    t1 = time.perf_counter()
    history.families(cfg.address("service"))
    t2 = time.perf_counter()
    backfill.place_before_start(cfg, lambda _: None)  # writes OpenMetrics, runs promtool
    t3 = time.perf_counter()
    cpu = _cpu_seconds() - cpu0
    day = backfill.window(cfg)
    return {
        "simulate": t1 - t0,
        "metrics": t2 - t1,
        "write+promtool": t3 - t2,
        "total": t3 - t0,
        "cpu": cpu,
        "series": day.series,
        "samples": day.samples,
        "bytes": sum(f.stat().st_size for f in (tmp / "gen").rglob("*") if f.is_file()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-notebook", action="store_true")
    args = parser.parse_args()

    totals, cpus = [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="course-bench-") as tmp:
            r = generate_and_backfill(Path(tmp))
        totals.append(r["total"])
        cpus.append(r["cpu"])
        print(
            f"run {run + 1}: generate+backfill {r['total']:.2f}s, {r['cpu']:.2f} CPU-s "
            f"(simulate {r['simulate']:.2f}s, "
            f"metrics {r['metrics']:.2f}s, OpenMetrics+promtool {r['write+promtool']:.2f}s); "
            f"{r['series']} series, {r['samples']:,} samples, blocks {r['bytes'] / 1e6:.1f} MB",
            flush=True,
        )
    print(
        f"generate+backfill median {statistics.median(totals):.2f}s  "
        f"min {min(totals):.2f}s  max {max(totals):.2f}s; "
        f"CPU median {statistics.median(cpus):.2f}s (on a busy machine, wall time waits for cores)"
    )

    with tempfile.TemporaryDirectory(prefix="course-bench-") as tmp:
        env = {**ENV, "COURSE_STATE_DIR": str(Path(tmp) / "state")}
        cfg = StackConfig.from_env(env)
        try:
            t0 = time.perf_counter()
            ready = stack.up(cfg)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            stack.up(cfg)
            second = time.perf_counter() - t0
            print(
                f"first up (fresh state dir, backfill included) {first:.2f}s; "
                f"second up {second:.2f}s"
            )
            print(f"history window: {ready.history_window()}")
            if not args.no_notebook:
                import papermill

                os.environ.update(env)  # the notebook's kernel inherits the bench stack
                notebook = repo_root() / "notebooks" / "03_promql_and_percentiles.ipynb"
                t0 = time.perf_counter()
                papermill.execute_notebook(
                    str(notebook),
                    str(Path(tmp) / notebook.name),
                    parameters={"SOLUTIONS": True},
                    cwd=str(notebook.parent),
                    kernel_name="python3",
                    progress_bar=False,
                )
                print(f"notebook 03 under papermill {time.perf_counter() - t0:.1f}s")
        finally:
            stack.down(cfg)


if __name__ == "__main__":
    main()

"""Benchmark the stack supervisor: cold `up` until every target is up and a query answers.

Also times a warm `up` (reuse) and `down`.
Runs on its own ports (offset 30000) and a temporary state directory, so it never
touches a learner's or the test suite's stack. Prints numbers; asserts nothing.

    .venv/bin/python bench/stack.py [--runs 3] [--no-service]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from course_lib import stack
from course_lib.config import StackConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-service", action="store_true", help="leave service + traffic off")
    args = parser.parse_args()

    cold, warm, down = [], [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="course-bench-") as tmp:
            env = {"COURSE_PORT_OFFSET": "30000", "COURSE_STATE_DIR": str(Path(tmp) / "state")}
            if args.no_service:
                env["COURSE_SERVICE"] = "0"
            cfg = StackConfig.from_env(env)
            try:
                t0 = time.perf_counter()
                ready = stack.up(cfg)
                answered = ready.query("up")
                cold.append(time.perf_counter() - t0)
                assert (answered["value"] == 1).all()

                t0 = time.perf_counter()
                stack.up(cfg).query("up")
                warm.append(time.perf_counter() - t0)
            finally:
                t0 = time.perf_counter()
                stack.down(cfg)
                down.append(time.perf_counter() - t0)
            print(
                f"run {run + 1}: cold up {cold[-1]:.2f}s  warm up {warm[-1]:.2f}s  "
                f"down {down[-1]:.2f}s  ({len(answered)} targets up)",
                flush=True,
            )

    for name, values in (("cold up", cold), ("warm up", warm), ("down", down)):
        print(
            f"{name:8s} median {statistics.median(values):.2f}s  "
            f"min {min(values):.2f}s  max {max(values):.2f}s"
        )


if __name__ == "__main__":
    main()

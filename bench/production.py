"""Benchmark behind notebook 07's figures: cardinality cost, recording-rule speed-up, HA dedup.

Runs a private course stack (ports offset by 32000, a temporary state directory) and
prints the same tables the notebook shows:

1. Cardinality: one label grown to 10, 100, 1,000 and 10,000 values on the scratch
   target; head series, /metrics size, scrape duration, heap and query time, measured
   from the scratch Prometheus, and the cost per series fitted over the four steps.
2. Recording rules: the p99 and request-rate panels, raw and recorded, as range queries
   (step 60 s) over the stack's day of history, whose recorded series the stack
   backfilled with promtool; median of 5 evaluations as Prometheus times them.
3. Dedup: samples of one series held by each Prometheus of the HA pair and by
   VictoriaMetrics over 20 s, then the largest gap after ``kill -9`` of one of the pair.

Usage::

    python bench/production.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from course_lib import cardinality, prom, querycost, recorded_history, scale, stack
from course_lib.config import StackConfig

PANELS = {
    "p99 latency": (
        "histogram_quantile(0.99, sum by (job, le) "
        "(rate(vrewcraft_http_request_duration_seconds_bucket[5m])))",
        "job:vrewcraft_http_request_duration_seconds:p99_rate5m",
    ),
    "p99 latency by route": (
        "histogram_quantile(0.99, sum by (job, route, le) "
        "(rate(vrewcraft_http_request_duration_seconds_bucket[5m])))",
        "histogram_quantile(0.99, "
        "job_route_le:vrewcraft_http_request_duration_seconds_bucket:rate5m)",
    ),
    "requests by route": (
        "sum by (job, route) (rate(vrewcraft_http_requests_total[5m]))",
        "job_route:vrewcraft_http_requests:rate5m",
    ),
}
SELECTOR = 'up{job="vrewcraft-backend"}'


def bench_cardinality(cfg: StackConfig) -> None:
    scale.start(["scratch-target", "prometheus-scratch"], cfg)
    try:
        t0 = time.monotonic()
        df = cardinality.measure(cfg)
        seconds = time.monotonic() - t0
    finally:
        scale.stop(["scratch-target", "prometheus-scratch"], cfg)
    table = df.assign(
        metrics_kb=df.body_bytes / 1e3,
        scrape_ms=df.scrape_seconds * 1e3,
        heap_mb=df.heap_bytes / 1e6,
        query_ms=df.query_seconds * 1e3,
    )[["label_values", "head_series", "metrics_kb", "scrape_ms", "heap_mb", "query_ms"]]
    print(f"\n== cardinality (measured in {seconds:.1f} s; query {cardinality.QUERY})")
    print(table.round(3).to_string(index=False))
    slopes = cardinality.per_series(df[df.label_values > 0])
    print(
        f"per series: {slopes['heap_bytes'] / 1e3:.2f} KB heap, {slopes['body_bytes']:.0f} B of "
        f"/metrics, {slopes['scrape_seconds'] * 1e6:.2f} µs scrape, "
        f"{slopes['query_seconds'] * 1e6:.2f} µs query"
    )


def bench_recording_rules(ready: stack.Stack) -> None:
    recorded = recorded_history.wait_until_loaded(ready.config)
    window = {"start": recorded["start"], "end": recorded["end"], "step": 60}
    speed = querycost.speedup(ready.prometheus_url, PANELS, **window)
    hours = (window["end"] - window["start"]) / 3600
    print(f"\n== recording rules (range queries over {hours:.1f} h of history, step 60 s)")
    print(speed.round(3).to_string())


def bench_dedup(cfg: StackConfig) -> None:
    vm = cfg.url("victoria-metrics")
    enough = lambda df: not df.empty and df["value"].item() >= 18  # noqa: E731
    prom.wait_for(vm, f"count_over_time({SELECTOR}[40s])", enough, timeout=60)
    copies = scale.ha_samples(cfg, SELECTOR, "20s", at=scale.dedup_aligned(time.time() - 4))
    print("\n== HA pair -> VictoriaMetrics (samples of one series in 20 s)")
    for name, series in copies.items():
        for labels, times in series.items():
            print(
                f"{name:18s} {len(times):3d} samples, min gap {np.diff(times).min():.2f} s  "
                f"{labels}"
            )
    scale.kill("prometheus-ha-a", cfg)
    killed = time.time()
    after = lambda df: not df.empty and df["value"].item() > killed + 6  # noqa: E731
    prom.wait_for(vm, f"timestamp({SELECTOR})", after, timeout=30)
    (across,) = scale.sample_times(vm, SELECTOR, f"{time.time() - killed + 20:.0f}s").values()
    print(
        f"kill -9 prometheus-ha-a: {len(across)} samples from {killed - across[0]:.0f} s before "
        f"to {across[-1] - killed:.0f} s after; largest gap {np.diff(across).max():.2f} s"
    )


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    with tempfile.TemporaryDirectory(prefix="course-bench-") as tmp:
        env = {"COURSE_PORT_OFFSET": "32000", "COURSE_STATE_DIR": str(Path(tmp) / "state")}
        cfg = StackConfig.from_env(env)
        try:
            ready = stack.up(cfg, progress=lambda msg: print(f"[stack] {msg}", flush=True))
            bench_cardinality(cfg)
            scale.start(["victoria-metrics", "prometheus-ha-a", "prometheus-ha-b"], cfg)
            bench_recording_rules(ready)
            bench_dedup(cfg)
        finally:
            stack.down(cfg)


if __name__ == "__main__":
    main()

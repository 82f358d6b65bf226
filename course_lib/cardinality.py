"""What a label costs: grow one label's values on a scratch target and measure Prometheus.

The scratch target serves one counter, ``scratch_requests_total``, with a
``user_id`` label whose number of values is set over HTTP (``/series?n=1000``):
the classic mistake of putting an unbounded id in a label. A scratch Prometheus
(``course_lib.scale``) scrapes it every second; ``measure`` reads the cost back
from that Prometheus itself: head series, ``/metrics`` body size, scrape
duration, heap per series and query time.

Usage (needs the two scratch processes of ``course_lib.scale`` running)::

    df = cardinality.measure()
    df[["label_values", "head_series", "body_bytes"]]

Command line (the scratch target itself)::

    python -m course_lib.cardinality --port 9190
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import requests

from course_lib import prom, querycost
from course_lib.config import HOST, StackConfig
from course_lib.supervisor import NotReadyError

#: The label-value counts the notebook measures.
STEPS = (10, 100, 1_000, 10_000)
#: Largest count the scratch target accepts: a bound, so a typo can't eat the machine.
MAX_SERIES = 50_000
#: The query whose time is measured: touches every series of the metric.
QUERY = "sum(rate(scratch_requests_total[10s]))"

__all__ = ["MAX_SERIES", "QUERY", "STEPS", "ScratchTarget", "measure", "render", "tsdb_status"]


def render(series: int, scrapes: int) -> bytes:
    """Return the exposition text of ``series`` counters that each grew by one per scrape.

    >>> print(render(2, 5).decode())
    # HELP scratch_requests_total Requests, one series per user (a cardinality lesson).
    # TYPE scratch_requests_total counter
    scratch_requests_total{user_id="user-00000"} 5
    scratch_requests_total{user_id="user-00001"} 5
    <BLANKLINE>
    """
    head = (
        "# HELP scratch_requests_total Requests, one series per user (a cardinality lesson).\n"
        "# TYPE scratch_requests_total counter\n"
    )
    lines = [f'scratch_requests_total{{user_id="user-{i:05d}"}} {scrapes}\n' for i in range(series)]
    return (head + "".join(lines)).encode()


class ScratchTarget:
    """A /metrics endpoint whose series count is set at run time (``/series?n=N``)."""

    def __init__(self, host: str = HOST, port: int = 0, series: int = 0) -> None:
        self.series = series
        self.scrapes = 0
        self._lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                url = urlparse(self.path)
                if url.path == "/metrics":
                    self._send(200, target.scrape(), "text/plain; version=0.0.4")
                elif url.path == "/healthz":
                    self._send(200, b"ok\n")
                elif url.path == "/series":
                    self._set(parse_qs(url.query).get("n", [""])[0])
                else:
                    self._send(404, b"not found: try /metrics, /series?n=100 or /healthz\n")

            def _set(self, raw: str) -> None:
                try:
                    n = int(raw)
                except ValueError:
                    self._send(
                        400, f"n={raw!r} is not a whole number; ask e.g. /series?n=1000\n".encode()
                    )
                    return
                try:
                    target.set_series(n)
                except ValueError as exc:
                    self._send(400, f"{exc}\n".encode())
                    return
                self._send(200, f"{target.series}\n".encode())

            def _send(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args) -> None:
                pass  # one line per scrape would drown the log

        self.server = ThreadingHTTPServer((host, port), Handler)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def set_series(self, n: int) -> None:
        """Expose ``n`` series from the next scrape on (0 <= n <= MAX_SERIES)."""
        if not 0 <= n <= MAX_SERIES:
            raise ValueError(f"n={n} series is outside 0..{MAX_SERIES}; pick e.g. n=1000.")
        with self._lock:
            self.series = n

    def scrape(self) -> bytes:
        """Return the next exposition (each scrape adds one to every counter)."""
        with self._lock:
            self.scrapes += 1
            return render(self.series, self.scrapes)


# --- measuring ---------------------------------------------------------------------------------


def _wait(url: str, promql: str, predicate, timeout: float = 20.0) -> float:
    deadline = time.monotonic() + timeout
    while True:
        value, _ = querycost.evaluate(url, promql)
        if value == value and predicate(value):
            return value
        if time.monotonic() >= deadline:
            raise NotReadyError(f"{promql!r} on {url} did not settle in {timeout:.0f}s (={value}).")
        time.sleep(0.2)


def measure(
    cfg: StackConfig | None = None, steps: Sequence[int] = STEPS, runs: int = 5
) -> pd.DataFrame:
    """Grow ``user_id`` through ``steps`` values; return one row of measured costs per step.

    Needs ``scratch-target`` and ``prometheus-scratch`` running (``course_lib.scale``).
    Columns: label_values, head_series, body_bytes, scrape_seconds, heap_bytes, query_seconds.
    """
    cfg = cfg or StackConfig.from_env()
    prom = cfg.url("prometheus-scratch")
    target = cfg.url("scratch-target")
    rows = []
    for n in [0, *steps]:
        requests.get(f"{target}/series", params={"n": n}, timeout=5).raise_for_status()
        # Two scrapes of the new size: the first may have started before the change.
        _wait(prom, 'scrape_samples_scraped{job="scratch"}', lambda v, n=n: v == n)
        after = time.time()
        _wait(prom, 'timestamp(scrape_samples_scraped{job="scratch"})', lambda v, t=after: v > t)
        # The self-scrape that reports head series must come after those samples landed.
        _wait(
            prom,
            'timestamp(prometheus_tsdb_head_series{job="prometheus"})',
            lambda v, t=after: v > t,
        )
        rows.append(
            {
                "label_values": n,
                "head_series": querycost.evaluate(
                    prom, 'prometheus_tsdb_head_series{job="prometheus"}'
                )[0],
                "body_bytes": querycost.evaluate(prom, 'scrape_body_size_bytes{job="scratch"}')[0],
                "scrape_seconds": querycost.evaluate(
                    prom, 'scrape_duration_seconds{job="scratch"}'
                )[0],
                "heap_bytes": querycost.evaluate(
                    prom, 'go_memstats_heap_inuse_bytes{job="prometheus"}'
                )[0],
                "query_seconds": querycost.query_seconds(prom, QUERY, runs=runs),
            }
        )
    return pd.DataFrame(rows)


def per_series(df: pd.DataFrame) -> dict[str, float]:
    """Fit each cost against head series; return the slopes (cost of one more series).

    >>> df = pd.DataFrame({"head_series": [100, 1100], "body_bytes": [0, 50_000],
    ...     "heap_bytes": [1e6, 5e6], "scrape_seconds": [0.001, 0.011],
    ...     "query_seconds": [1e-4, 2.1e-3]})
    >>> {k: round(v, 6) for k, v in per_series(df).items()}
    {'body_bytes': 50.0, 'heap_bytes': 4000.0, 'scrape_seconds': 1e-05, 'query_seconds': 2e-06}
    """
    slopes = {}
    for column in ("body_bytes", "heap_bytes", "scrape_seconds", "query_seconds"):
        slope, _ = np.polyfit(df["head_series"].astype(float), df[column].astype(float), 1)
        slopes[column] = float(slope)
    return slopes


def tsdb_status(url: str, limit: int = 5) -> dict[str, pd.DataFrame]:
    """Return the TSDB status page's top-offender tables (``/api/v1/status/tsdb``) as frames."""
    data = prom.status(url, "tsdb")
    tables = {}
    for key in (
        "seriesCountByMetricName",
        "labelValueCountByLabelName",
        "seriesCountByLabelValuePair",
    ):
        tables[key] = pd.DataFrame(data.get(key, [])[:limit], columns=["name", "value"])
    return tables


def main(argv: list[str] | None = None) -> int:
    """Serve the scratch target until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.cardinality", description="Serve the cardinality scratch target."
    )
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=9190)
    parser.add_argument("--series", type=int, default=0, help="series to start with")
    args = parser.parse_args(argv)
    target = ScratchTarget(args.host, args.port, args.series)
    with contextlib.suppress(KeyboardInterrupt):
        target.server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A day of VrewCraft: 24 h of simulated traffic, request by request, and the metrics it leaves.

Live traffic of a few minutes has no shape; this module gives every stack the
same realistic day, so PromQL lessons have a daily cycle, an incident and a
deploy to look at, and queries at fixed offsets into the day return the same
numbers everywhere.

The day is simulated at the **request level** first (a seeded
``numpy.random.Generator``): every request gets a completion time, a method,
route and status code, and a latency; thumbnail lookups are cache hits or
misses; uploads, trims and ffmpeg runs are events with durations. The metrics
are then *derived* from those requests, scrape by scrape every 15 s (the seed's
scrape interval), exactly as the live service's ``prometheus_client`` would have
counted them. So every histogram is consistent (cumulative buckets,
``+Inf == _count``, ``_sum`` is the sum of the very latencies counted) and the
raw latencies are available for exact percentiles (``requests()``).

Scripted events (``EVENTS``; offsets are seconds into the day, the day starts
at VrewCraft's midnight, so the evening peak is at offset 20 h):

=====================  ===========  ===========  ==================================================
event                  start        end          what happened
=====================  ===========  ===========  ==================================================
deploy                 10:30:00     10:30:15     new version rolled out: the process restarts
                                                 (the scrape at 10:30:00 fails, ``up`` is 0; every
                                                 counter starts again from 0), resident memory
                                                 steps up by ~56 MB, the in-process thumbnail
                                                 cache starts empty (hit ratio dips, then warms up)
error_burst            14:10:00     14:30:00     the database is locked by a long migration:
                                                 half of ``GET /api/videos`` fail with 500 after
                                                 waiting ~1 s for the lock; other routes are fine
thumbnail_incident     19:40:00     20:10:00     at the evening peak the thumbnail cache is
                                                 flushed (hit ratio drops, then recovers), the
                                                 disk holding the videos is slow (extraction 4×
                                                 slower: the thumbnail p99 crosses 50 ms) and 12 %
                                                 of extractions fail (ffmpeg errors, 500s)
=====================  ===========  ===========  ==================================================

Labels match the live service's: ``job="vrewcraft-backend"`` and the
``instance`` Prometheus gives the live scrape target (``127.0.0.1:3001`` on the
lab stack, the service's address with the port offset on the test stack; the
backfill passes the stack's own), so history and live samples form one series.

>>> from course_lib import history
>>> [e.name for e in history.EVENTS]
['deploy', 'error_burst', 'thumbnail_incident']
>>> df = history.requests((19 * 3600, 19 * 3600 + 60))      # one minute of raw requests
>>> sorted(df.columns)[:3]
['cache_status', 'duration_seconds', 'method']
>>> text = history.openmetrics(start=1_700_000_000)          # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from course_lib.config import DEFAULT_PORTS, HOST
from course_lib.service.metrics import (
    FFMPEG_BUCKETS,
    HTTP_BUCKETS,
    THUMBNAIL_BUCKETS,
    UPLOAD_BUCKETS,
)

__all__ = [
    "DAY",
    "VERSION",
    "DEFAULT_INSTANCE",
    "EVENTS",
    "JOB",
    "POINTS",
    "SEED",
    "STEP",
    "Event",
    "Series",
    "clock",
    "event",
    "families",
    "openmetrics",
    "openmetrics_sha256",
    "requests",
    "series",
    "write_openmetrics",
]

SEED = 20_240_615
#: Changes whenever the day's bytes change (the first 12 hex digits of their pinned SHA-256):
#: a stack whose recorded day has another version holds an outdated day.
VERSION = "5741df53fa31"
STEP = 15  # seconds between scrapes, the seed's scrape interval
DAY = 24 * 3600
POINTS = DAY // STEP  # scrapes at offsets 0, 15, ..., DAY - 15
JOB = "vrewcraft-backend"
DEFAULT_INSTANCE = f"{HOST}:{DEFAULT_PORTS['service']}"  # the lab stack's live target


@dataclass(frozen=True)
class Event:
    """One scripted event of the day: ``start``/``end`` in seconds into the day."""

    name: str
    start: int
    end: int
    what: str


def _hms(h: int, m: int = 0, s: int = 0) -> int:
    return h * 3600 + m * 60 + s


EVENTS: tuple[Event, ...] = (
    Event(
        "deploy",
        _hms(10, 30),
        _hms(10, 30, 15),
        "New version deployed: the process restarts (one failed scrape, every counter "
        "starts again from 0), resident memory steps up, the thumbnail cache starts empty.",
    ),
    Event(
        "error_burst",
        _hms(14, 10),
        _hms(14, 30),
        "Database locked by a migration: half of GET /api/videos return 500 after ~1 s.",
    ),
    Event(
        "thumbnail_incident",
        _hms(19, 40),
        _hms(20, 10),
        "Thumbnail cache flushed at the evening peak, extraction 4x slower (p99 above "
        "50 ms), 12% of extractions fail with ffmpeg errors.",
    ),
)


def clock(offset: float) -> str:
    """Return an offset into the day as the day's time of day.

    >>> clock(19 * 3600 + 45 * 60), clock(37815)
    ('19:45', '10:30:15')
    """
    whole = int(round(offset))
    h, m, s = whole // 3600, whole // 60 % 60, whole % 60
    return f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")


def event(name: str) -> Event:
    """Return the scripted event called ``name``.

    >>> event("deploy").start
    37800
    """
    for e in EVENTS:
        if e.name == name:
            return e
    raise KeyError(f"no event {name!r}; the day has " + ", ".join(e.name for e in EVENTS))


# --- the traffic model ------------------------------------------------------------------------

PEAK_RATE = 24.0  # requests per second at the evening peak
# Relative load at each full hour of the day (0 h .. 24 h), linearly interpolated:
# a quiet night, a morning ramp, a lunch bump and the evening peak at 20 h.
HOURLY_LOAD = (
    0.36, 0.26, 0.18, 0.14, 0.12, 0.14, 0.22, 0.35, 0.50, 0.62, 0.68, 0.72, 0.78,
    0.74, 0.70, 0.70, 0.72, 0.78, 0.86, 0.94, 1.00, 0.98, 0.82, 0.58, 0.36,
)  # fmt: skip


@dataclass(frozen=True)
class _Kind:
    """One kind of request: its labels, its share of traffic and its latency (lognormal)."""

    method: str
    route: str
    status: str
    share: float
    median_ms: float
    sigma: float


THUMBNAIL_ROUTE = "/api/videos/{video_id}/thumbnail"
VIDEOS_ROUTE = "/api/videos"
UPLOAD_ROUTE = "/api/upload"
TRIM_ROUTE = "/api/videos/{video_id}/trim"

# The live traffic generator's mix, as routes the service really has. Thumbnail latency
# is not drawn here: it comes from the cache model below.
_KINDS: tuple[_Kind, ...] = (
    _Kind("GET", THUMBNAIL_ROUTE, "200", 64.0, 0.0, 0.0),
    _Kind("GET", VIDEOS_ROUTE, "200", 12.0, 4.0, 0.45),
    _Kind("GET", "/api/videos/{video_id}", "200", 10.0, 2.2, 0.40),
    _Kind("GET", "/api/jobs/{job_id}", "200", 4.0, 1.6, 0.40),
    _Kind("GET", "/api/videos/{video_id}", "404", 2.0, 1.4, 0.35),
    _Kind("GET", "<unmatched>", "404", 1.0, 0.6, 0.35),
    _Kind("GET", THUMBNAIL_ROUTE, "422", 1.5, 1.3, 0.35),
    _Kind("POST", TRIM_ROUTE, "422", 1.0, 1.8, 0.35),
    _Kind("POST", TRIM_ROUTE, "202", 1.5, 6.0, 0.40),
    _Kind("POST", UPLOAD_ROUTE, "201", 0.6, 1900.0, 0.65),
    _Kind("POST", UPLOAD_ROUTE, "415", 0.3, 2.5, 0.40),
    _Kind("POST", UPLOAD_ROUTE, "422", 0.15, 260.0, 0.50),
    _Kind("GET", "/healthz", "200", 1.0, 0.5, 0.30),
)
TOTAL_SHARE = sum(k.share for k in _KINDS)

HIT_RATIO = 0.93  # share of thumbnail lookups that hit a warm cache
WARMUP_S = 900  # an empty cache is warm again after this long
HIT_MS, HIT_SIGMA = 1.8, 0.35
MISS_MS, MISS_SIGMA = 17.0, 0.30
EXTRACT_ERROR = 0.001  # extraction failures on a normal day
BURST_ERROR_SHARE = 0.5  # GET /api/videos failing during the error burst
INCIDENT_SLOWDOWN = 4.0
INCIDENT_ERROR = 0.12
TRIM_S, TRIM_SIGMA = 3.2, 0.45
TRIM_FAIL = 0.01
PROBE_MS, PROBE_SIGMA = 42.0, 0.25
WEBSOCKET_SHARE = 0.25
DB_POOL_SIZE = 5
DB_ROUTES = (VIDEOS_ROUTE, "/api/videos/{video_id}", "/api/jobs/{job_id}")
# The deploy: the old process stops 5 s before the scrape at the deploy time, the new
# one serves 3 s after it; requests in between are refused (not counted by anyone).
STOP_BEFORE_MS, START_AFTER_MS = 5_000, 3_000


# --- request-level simulation -----------------------------------------------------------------


@dataclass(frozen=True)
class _Day:
    """Everything simulated: the request table and the ffmpeg/upload events."""

    requests: pd.DataFrame  # one row per served request (see requests())
    ffmpeg: pd.DataFrame  # one row per ffmpeg run: end_ms, operation, duration_us, failed
    uploads: pd.DataFrame  # one row per upload attempt: end_ms, duration_us, status
    edits: pd.DataFrame  # one row per trim outcome: end_ms, status
    trims: pd.DataFrame  # trim jobs: start_ms, end_ms, websocket (bool)


def _load(offsets_s: np.ndarray) -> np.ndarray:
    """Return the relative load (0..1) at offsets into the day."""
    return np.interp(offsets_s / 3600.0, np.arange(25), np.array(HOURLY_LOAD))


def _lognormal_us(rng: np.random.Generator, median_ms: float, sigma: float, n: int) -> np.ndarray:
    """Draw ``n`` lognormal latencies, in whole microseconds (integers format identically)."""
    draws = rng.lognormal(np.log(median_ms * 1000.0), sigma, n)
    return np.maximum(np.rint(draws), 1).astype(np.int64)


def _kind_index(method: str, route: str, status: str) -> int:
    for i, k in enumerate(_KINDS):
        if (k.method, k.route, k.status) == (method, route, status):
            return i
    raise KeyError((method, route, status))


def _in(ms: np.ndarray, e: Event) -> np.ndarray:
    return (ms > e.start * 1000) & (ms <= e.end * 1000)


def _warmth(ms: np.ndarray, flushes: list[int]) -> np.ndarray:
    """Return the cache hit probability at times ``ms``, after cache flushes at ``flushes``."""
    p = np.full(ms.shape, HIT_RATIO)
    for flush in flushes:
        x = (ms - flush) / (WARMUP_S * 1000.0)
        inside = (x >= 0) & (x < 1)
        # 1 - (1 - x)^2: fast early warm-up as the hot frames come back, then slower.
        p[inside] = HIT_RATIO * (1.0 - (1.0 - x[inside]) ** 2)
    return p


@lru_cache(maxsize=2)
def _simulate(seed: int = SEED) -> _Day:
    """Simulate the day request by request (cached: every caller sees the same day)."""
    rng = np.random.default_rng(seed)
    deploy, burst, incident = (event(n) for n in ("deploy", "error_burst", "thumbnail_incident"))
    interval_start = np.arange(POINTS - 1) * STEP  # intervals (T[k-1], T[k]], k = 1..POINTS-1
    load = _load(interval_start + STEP / 2)

    parts = []
    for i, spec in enumerate(_KINDS):
        lam = PEAK_RATE * spec.share / TOTAL_SHARE * load * STEP
        counts = rng.poisson(lam)
        n = int(counts.sum())
        end_ms = np.repeat(interval_start * 1000, counts) + rng.integers(1, STEP * 1000 + 1, n)
        latency = _lognormal_us(rng, spec.median_ms or 1.0, spec.sigma or 0.3, n)
        parts.append(pd.DataFrame({"kind": i, "end_ms": end_ms, "duration_us": latency}))
    # Prometheus scrapes /metrics once per interval: the service counts those requests too.
    scrapes = pd.DataFrame(
        {"kind": -1, "end_ms": interval_start * 1000 + 4, "duration_us": np.int64(2_900)}
    )
    df = pd.concat([*parts, scrapes], ignore_index=True).sort_values("end_ms", kind="stable")
    down = (df.end_ms > deploy.start * 1000 - STOP_BEFORE_MS) & (
        df.end_ms <= deploy.start * 1000 + START_AFTER_MS
    )
    df = df[~down].reset_index(drop=True)
    kinds = pd.DataFrame(
        [(k.method, k.route, k.status) for k in _KINDS] + [("GET", "/metrics", "200")],
        columns=["method", "route", "status_code"],
        index=[*range(len(_KINDS)), -1],
    )
    df = df.join(kinds, on="kind")
    end = df["end_ms"].to_numpy()
    duration = df["duration_us"].to_numpy().copy()
    status = df["status_code"].to_numpy(dtype=object).copy()

    # The error burst: a share of GET /api/videos waits for the lock, then fails.
    kind = df["kind"].to_numpy()
    videos = kind == _kind_index("GET", VIDEOS_ROUTE, "200")
    hit_burst = videos & _in(end, burst)
    fails = hit_burst & (rng.random(len(df)) < BURST_ERROR_SHARE)
    status[fails] = "500"
    duration[fails] = _lognormal_us(rng, 1050.0, 0.12, int(fails.sum()))

    # Thumbnails: a cache lookup, a hit or a miss; a miss extracts the frame (and may fail).
    thumb = kind == _kind_index("GET", THUMBNAIL_ROUTE, "200")
    t_end = end[thumb]
    flushes = [deploy.start * 1000 + START_AFTER_MS, incident.start * 1000]
    hit = rng.random(len(t_end)) < _warmth(t_end, flushes)
    lookup = np.where(
        hit,
        _lognormal_us(rng, HIT_MS, HIT_SIGMA, len(t_end)),
        _lognormal_us(rng, MISS_MS, MISS_SIGMA, len(t_end)),
    )
    slow = ~hit & _in(t_end, incident)
    lookup[slow] = np.rint(lookup[slow] * INCIDENT_SLOWDOWN).astype(np.int64)
    error_p = np.where(_in(t_end, incident), INCIDENT_ERROR, EXTRACT_ERROR)
    failed = ~hit & (rng.random(len(t_end)) < error_p)
    overhead = rng.integers(150, 450, len(t_end))  # routing, JSON, response: the HTTP layer
    duration[thumb] = lookup + overhead
    thumb_status = np.where(failed, "500", "200").astype(object)
    status[thumb] = thumb_status
    cache_status = np.full(len(df), "", dtype=object)
    cache_status[thumb] = np.where(hit, "hit", "miss")
    code = np.array([int(k.status) for k in _KINDS] + [200])[kind]  # kind -1 is /metrics
    code[fails] = 500
    code[thumb] = np.where(failed, 500, 200)
    is_hit = np.zeros(len(df), dtype=bool)
    is_hit[thumb] = hit
    lookup_us = np.zeros(len(df), dtype=np.int64)
    lookup_us[thumb] = lookup

    requests_df = pd.DataFrame(
        {
            "end_ms": end,
            "method": df["method"].to_numpy(),
            "route": df["route"].to_numpy(),
            "status_code": status,
            "duration_us": duration,
            "cache_status": cache_status,
            "code": code,
            "thumb": thumb,
            "hit": is_hit,
            "lookup_us": lookup_us,
            "kind": kind,
        }
    )

    def of_kind(method: str, route: str, status: str) -> pd.DataFrame:
        return requests_df.loc[kind == _kind_index(method, route, status)]

    # ffmpeg runs: thumbnail extractions (misses), probes (uploads), trims (202s).
    miss_end = t_end[~hit]
    extract_us = np.rint(lookup[~hit] * 0.92).astype(np.int64)
    uploads_ok = of_kind("POST", UPLOAD_ROUTE, "201")
    uploads_bad = of_kind("POST", UPLOAD_ROUTE, "422")  # not decodable: the probe fails
    uploads_415 = of_kind("POST", UPLOAD_ROUTE, "415")
    probe_end = np.concatenate([uploads_ok.end_ms.to_numpy(), uploads_bad.end_ms.to_numpy()])
    probe_us = _lognormal_us(rng, PROBE_MS, PROBE_SIGMA, len(probe_end))
    probe_failed = np.r_[np.zeros(len(uploads_ok), bool), np.ones(len(uploads_bad), bool)]
    trims = of_kind("POST", TRIM_ROUTE, "202")
    trim_start = trims.end_ms.to_numpy()
    trim_us = _lognormal_us(rng, TRIM_S * 1000.0, TRIM_SIGMA, len(trim_start))
    trim_end = trim_start + trim_us // 1000 + 20
    trim_failed = rng.random(len(trim_start)) < TRIM_FAIL
    # A trim still running when the process restarts dies with it: no outcome is recorded.
    cut = deploy.start * 1000 - STOP_BEFORE_MS
    survives = ~((trim_start <= cut) & (trim_end > cut))
    ffmpeg = pd.DataFrame(
        {
            "end_ms": np.concatenate([miss_end, probe_end, trim_end[survives]]),
            "start_ms": np.concatenate(
                [
                    miss_end - extract_us // 1000,
                    probe_end - probe_us // 1000,
                    trim_start[survives],
                ]
            ),
            "operation": ["thumbnail"] * len(miss_end)
            + ["probe"] * len(probe_end)
            + ["trim"] * int(survives.sum()),
            "duration_us": np.concatenate([extract_us, probe_us, trim_us[survives]]),
            "failed": np.concatenate([failed[~hit], probe_failed, trim_failed[survives]]),
        }
    )
    uploads = pd.DataFrame(
        {
            "end_ms": np.concatenate([uploads_ok.end_ms, uploads_bad.end_ms, uploads_415.end_ms]),
            "duration_us": np.concatenate(
                [uploads_ok.duration_us, uploads_bad.duration_us, uploads_415.duration_us]
            ),
            "status": ["success"] * len(uploads_ok)
            + ["rejected"] * (len(uploads_bad) + len(uploads_415)),
        }
    )
    rejected_trims = of_kind("POST", TRIM_ROUTE, "422")
    edits = pd.DataFrame(
        {
            "end_ms": np.concatenate([trim_end[survives], rejected_trims.end_ms]),
            "status": np.where(trim_failed[survives], "failed", "success").tolist()
            + ["rejected"] * len(rejected_trims),
        }
    )
    trims_df = pd.DataFrame(
        {
            "start_ms": trim_start,
            "end_ms": trim_end,
            "websocket": rng.random(len(trim_start)) < WEBSOCKET_SHARE,
        }
    )
    return _Day(requests_df, ffmpeg, uploads, edits, trims_df)


def requests(window: tuple[float, float] | None = None, seed: int = SEED) -> pd.DataFrame:
    """Return the day's raw requests completed in ``window`` = (from, to] seconds into the day.

    One row per request: ``offset`` (seconds into the day, ms resolution),
    ``method``, ``route``, ``status_code``, ``duration_seconds`` (what the HTTP
    histogram observed) and for thumbnails ``cache_status`` and
    ``thumbnail_seconds`` (what the thumbnail histogram observed).

    >>> df = requests((20 * 3600 - 300, 20 * 3600))            # the 5 minutes up to 20:00
    >>> float(df["duration_seconds"].quantile(0.5)) < 0.05
    True
    """
    day = _simulate(seed).requests
    if window is not None:
        lo, hi = (int(round(w * 1000)) for w in window)
        day = day[(day.end_ms > lo) & (day.end_ms <= hi)]
    return pd.DataFrame(
        {
            "offset": day.end_ms.to_numpy() / 1000.0,
            "method": day.method.to_numpy(),
            "route": day.route.to_numpy(),
            "status_code": day.status_code.to_numpy(),
            "duration_seconds": day.duration_us.to_numpy() / 1e6,
            "cache_status": day.cache_status.to_numpy(),
            "thumbnail_seconds": np.where(
                day.cache_status.to_numpy() != "", day.lookup_us.to_numpy() / 1e6, np.nan
            ),
        }
    )


# --- from requests to scraped samples ---------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One time series of the day: ``values[k]`` is the sample at offset ``k * STEP``.

    NaN marks a scrape that didn't happen (the deploy's failed scrape).
    """

    name: str
    labels: tuple[tuple[str, str], ...]
    values: np.ndarray = field(repr=False)

    def label(self, key: str) -> str:
        return dict(self.labels)[key]


@dataclass(frozen=True)
class Family:
    """A metric family: OpenMetrics name, type, help, and its series."""

    name: str
    type: str
    help: str
    series: list[Series]


def _scrape_index(ms: np.ndarray) -> np.ndarray:
    """Return the index of the first scrape that sees an event completed at ``ms``."""
    return (ms + STEP * 1000 - 1) // (STEP * 1000)


def _per_scrape(ms: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Sum events (or weights) by the scrape that first sees them; events past the day drop."""
    k = _scrape_index(np.asarray(ms, dtype=np.int64))
    keep = k < POINTS
    w = None if weights is None else np.asarray(weights, dtype=np.float64)[keep]
    return np.bincount(k[keep], weights=w, minlength=POINTS).astype(np.float64)


def _counter(increments: np.ndarray) -> np.ndarray:
    """Cumulate per-scrape increments into counter samples, restarting at the deploy."""
    kd = event("deploy").start // STEP
    out = np.cumsum(increments, axis=-1)
    out[..., kd + 1 :] -= out[..., kd : kd + 1]  # the new process starts from 0
    out[..., kd] = np.nan  # the scrape during the restart failed
    return out


def _used(values: np.ndarray, count: np.ndarray | None = None) -> np.ndarray:
    """Hide a labelled child's samples until its first use in each process.

    ``prometheus_client`` creates a labelled child (one route, one status) on its first
    ``.labels(...).inc()``; until then the series isn't exposed at all, and after a
    restart it is gone again until used.
    """
    count = values if count is None else count
    kd = event("deploy").start // STEP
    out = values.copy()
    for lo, hi in ((0, kd), (kd + 1, POINTS)):
        used = np.flatnonzero(count[lo:hi] > 0)
        first = lo + (used[0] if len(used) else hi - lo)
        out[..., lo:first] = np.nan
    return out


def _labels(instance: str, **extra: str) -> tuple[tuple[str, str], ...]:
    return (*sorted(extra.items()), ("instance", instance), ("job", JOB))


def _fmt_bound(b: float) -> str:
    return repr(float(b))


def _histogram(
    name: str,
    instance: str,
    bounds: tuple[float, ...],
    end_ms: np.ndarray,
    duration_us: np.ndarray,
    **labels: str,
) -> list[Series]:
    """Derive one histogram's _bucket, _count and _sum series from observations."""
    bounds_us = np.rint(np.array(bounds) * 1e6).astype(np.int64)
    k = _scrape_index(np.asarray(end_ms, dtype=np.int64))
    keep = k < POINTS
    k, us = k[keep], np.asarray(duration_us, dtype=np.int64)[keep]
    bucket = np.searchsorted(bounds_us, us, side="left")  # v <= bound lands in that bucket
    nb = len(bounds) + 1
    grid = np.bincount(k * nb + bucket, minlength=POINTS * nb).reshape(POINTS, nb).T
    cumulative = _counter(np.cumsum(grid, axis=0).astype(np.float64))
    sums = _counter(np.bincount(k, weights=us.astype(np.float64), minlength=POINTS)) / 1e6
    if labels:  # a labelled histogram child appears on its first observation
        cumulative, sums = _used(cumulative, cumulative[-1]), _used(sums, cumulative[-1])
    out = [
        Series(f"{name}_bucket", _labels(instance, **labels, le=le), cumulative[i])
        for i, le in enumerate([*map(_fmt_bound, bounds), "+Inf"])
    ]
    out.append(Series(f"{name}_count", _labels(instance, **labels), cumulative[-1]))
    out.append(Series(f"{name}_sum", _labels(instance, **labels), sums))
    return out


def _in_flight(start_ms: np.ndarray, end_ms: np.ndarray) -> np.ndarray:
    """Return how many [start, end) intervals contain each scrape time."""
    at = np.arange(POINTS, dtype=np.int64) * STEP * 1000
    return (
        np.searchsorted(np.sort(start_ms), at, side="right")
        - np.searchsorted(np.sort(end_ms), at, side="right")
    ).astype(np.float64)


def _process_epochs() -> np.ndarray:
    """Return 0 for scrapes of the first process, 1 after the deploy, NaN for the failed one."""
    kd = event("deploy").start // STEP
    epoch = np.zeros(POINTS)
    epoch[kd + 1 :] = 1
    epoch[kd] = np.nan
    return epoch


@lru_cache(maxsize=4)
def families(instance: str = DEFAULT_INSTANCE, seed: int = SEED) -> tuple[Family, ...]:
    """Return every metric family of the day, derived from the simulated requests.

    Values are relative to the day: timestamps come in only when writing
    (``openmetrics``), so one simulation serves every stack.
    """
    day = _simulate(seed)
    rng = np.random.default_rng(seed + 1)  # gauges' own noise, independent of the traffic
    req = day.requests
    epoch = _process_epochs()
    gap = np.isnan(epoch)
    fams: list[Family] = []

    # HTTP: one counter and one histogram per (method, route, status_code) seen in the day.
    # Group by (kind, status code) as integers: grouping 1.2M label strings is slow.
    keys, inverse = np.unique(
        (req.kind.to_numpy() + 1) * 1000 + req.code.to_numpy(), return_inverse=True
    )
    order = np.argsort(inverse)  # any order within a group: only counted
    bounds = np.searchsorted(inverse[order], np.arange(len(keys) + 1))
    groups = {}
    for i, key in enumerate(keys):
        kind = _KINDS[key // 1000 - 1] if key >= 1000 else None
        method, route = (kind.method, kind.route) if kind else ("GET", "/metrics")
        groups[(route, method, str(key % 1000))] = order[bounds[i] : bounds[i + 1]]
    counters, hists = [], []
    end_all, duration_all = req.end_ms.to_numpy(), req.duration_us.to_numpy()
    for (route, method, status), rows in sorted(groups.items()):
        labels = {"method": method, "route": route, "status_code": status}
        counters.append(
            Series(
                "vrewcraft_http_requests_total",
                _labels(instance, **labels),
                _used(_counter(_per_scrape(end_all[rows]))),
            )
        )
        hists += _histogram(
            "vrewcraft_http_request_duration_seconds",
            instance,
            HTTP_BUCKETS,
            end_all[rows],
            duration_all[rows],
            **labels,
        )
    fams.append(
        Family("vrewcraft_http_requests", "counter", "Total number of HTTP requests", counters)
    )
    fams.append(
        Family(
            "vrewcraft_http_request_duration_seconds",
            "histogram",
            "HTTP request duration in seconds",
            hists,
        )
    )

    # Thumbnails: lookups by cache status, all lookups, and misses alone (same buckets).
    thumbs = req[req.thumb.to_numpy()]
    fams.append(
        Family(
            "vrewcraft_thumbnail_requests",
            "counter",
            "Total number of thumbnail requests",
            [
                Series(
                    "vrewcraft_thumbnail_requests_total",
                    _labels(instance, cache_status=cs),
                    _used(
                        _counter(
                            _per_scrape(
                                thumbs.end_ms.to_numpy()[thumbs.hit.to_numpy() == (cs == "hit")]
                            )
                        )
                    ),
                )
                for cs in ("hit", "miss")
            ],
        )
    )
    fams.append(
        Family(
            "vrewcraft_thumbnail_duration_seconds",
            "histogram",
            "Thumbnail extraction duration in seconds",
            _histogram(
                "vrewcraft_thumbnail_duration_seconds",
                instance,
                THUMBNAIL_BUCKETS,
                thumbs.end_ms.to_numpy(),
                thumbs.lookup_us.to_numpy(),
            ),
        )
    )
    misses = thumbs[~thumbs.hit.to_numpy()]
    fams.append(
        Family(
            "vrewcraft_thumbnail_miss_duration_seconds",
            "histogram",
            "Thumbnail duration in seconds of cache misses only (extraction by ffmpeg)",
            _histogram(
                "vrewcraft_thumbnail_miss_duration_seconds",
                instance,
                THUMBNAIL_BUCKETS,
                misses.end_ms.to_numpy(),
                misses.lookup_us.to_numpy(),
            ),
        )
    )

    # ffmpeg: durations and errors by operation.
    ff = day.ffmpeg
    ops = ("probe", "thumbnail", "trim")
    fams.append(
        Family(
            "vrewcraft_ffmpeg_errors",
            "counter",
            "Total number of FFmpeg errors",
            [
                Series(
                    "vrewcraft_ffmpeg_errors_total",
                    _labels(instance, operation=op),
                    _used(
                        _counter(
                            _per_scrape(ff[(ff.operation == op) & ff.failed].end_ms.to_numpy())
                        )
                    ),
                )
                for op in ops
            ],
        )
    )
    ff_hists = []
    for op in ops:
        sel = ff[ff.operation == op]
        ff_hists += _histogram(
            "vrewcraft_ffmpeg_duration_seconds",
            instance,
            FFMPEG_BUCKETS,
            sel.end_ms.to_numpy(),
            sel.duration_us.to_numpy(),
            operation=op,
        )
    fams.append(
        Family(
            "vrewcraft_ffmpeg_duration_seconds",
            "histogram",
            "FFmpeg processing duration in seconds",
            ff_hists,
        )
    )

    # Uploads and edits.
    up = day.uploads
    fams.append(
        Family(
            "vrewcraft_video_uploads",
            "counter",
            "Total number of video uploads",
            [
                Series(
                    "vrewcraft_video_uploads_total",
                    _labels(instance, status=st),
                    _used(_counter(_per_scrape(up[up.status == st].end_ms.to_numpy()))),
                )
                for st in ("rejected", "success")
            ],
        )
    )
    fams.append(
        Family(
            "vrewcraft_upload_duration_seconds",
            "histogram",
            "Video upload duration in seconds",
            _histogram(
                "vrewcraft_upload_duration_seconds",
                instance,
                UPLOAD_BUCKETS,
                up.end_ms.to_numpy(),
                up.duration_us.to_numpy(),
            ),
        )
    )
    ed = day.edits
    fams.append(
        Family(
            "vrewcraft_video_edits",
            "counter",
            "Total number of video edits",
            [
                Series(
                    "vrewcraft_video_edits_total",
                    _labels(instance, edit_type="trim", status=st),
                    _used(_counter(_per_scrape(ed[ed.status == st].end_ms.to_numpy()))),
                )
                for st in ("failed", "rejected", "success")
            ],
        )
    )

    # Gauges read at scrape time.
    def gauge(name: str, help_text: str, rows: list[tuple[dict, np.ndarray]]) -> Family:
        return Family(
            name,
            "gauge",
            help_text,
            [
                Series(name, _labels(instance, **labels), np.where(gap, np.nan, values))
                for labels, values in rows
            ],
        )

    fams.append(
        gauge(
            "vrewcraft_ffmpeg_jobs_active",
            "Number of active FFmpeg jobs",
            [({}, _in_flight(ff.start_ms.to_numpy(), ff.end_ms.to_numpy()))],
        )
    )
    ws = day.trims[day.trims.websocket]
    fams.append(
        gauge(
            "vrewcraft_websocket_connections",
            "Number of active WebSocket connections",
            [({}, _in_flight(ws.start_ms.to_numpy() + 30, ws.end_ms.to_numpy() + 40))],
        )
    )
    hits = np.cumsum(_per_scrape(thumbs.end_ms.to_numpy()[thumbs.hit.to_numpy()]))
    total = np.cumsum(_per_scrape(thumbs.end_ms.to_numpy()))
    kd = event("deploy").start // STEP
    hits[kd + 1 :] -= hits[kd]
    total[kd + 1 :] -= total[kd]
    # The seed's in-process gauge: hits / lookups since the process started (0 before any).
    ratio = np.divide(hits, total, out=np.zeros(POINTS), where=total > 0)
    fams.append(
        gauge(
            "vrewcraft_thumbnail_cache_hit_ratio", "Thumbnail cache hit ratio (0-1)", [({}, ratio)]
        )
    )
    db_kinds = [i for i, k in enumerate(_KINDS) if k.route in DB_ROUTES]
    db_routes = req[np.isin(req.kind.to_numpy(), db_kinds)]
    busy = _in_flight(
        db_routes.end_ms.to_numpy() - db_routes.duration_us.to_numpy() // 1000,
        db_routes.end_ms.to_numpy(),
    )
    active = np.minimum(busy, DB_POOL_SIZE)
    fams.append(
        gauge(
            "vrewcraft_db_pool_connections",
            "Database connection pool status",
            [
                ({"state": "active"}, active),
                ({"state": "idle"}, DB_POOL_SIZE - active),
                ({"state": "total"}, np.full(POINTS, float(DB_POOL_SIZE))),
            ],
        )
    )

    # Memory: a slow leak-like growth, load-dependent noise, a step at the deploy and decoder
    # buffers during the incident. Whole pages (4096 bytes), like the kernel reports.
    offsets = np.arange(POINTS) * STEP
    load = _load(offsets)
    incident = event("thumbnail_incident")
    rss = np.where(epoch == 1, 241_000_000, 185_000_000) + 420_000 * (offsets / 3600.0)
    rss[epoch == 1] -= 420_000 * (event("deploy").start / 3600.0)
    rss += 18_000_000 * load + rng.normal(0.0, 900_000.0, POINTS)
    rss += np.where((offsets > incident.start) & (offsets <= incident.end), 26_000_000, 0)
    rss = np.rint(rss / 4096) * 4096
    memory = {
        "data": np.rint(rss * 0.71 / 4096) * 4096,
        "rss": rss,
        "shared": np.where(epoch == 1, 43_012_096.0, 41_193_472.0),
        "vms": rss + np.where(epoch == 1, 1_989_140_480.0, 1_902_080_000.0),
    }
    fams.append(
        gauge(
            "vrewcraft_memory_usage_bytes",
            "Memory usage in bytes",
            [({"type": t}, v) for t, v in memory.items()],
        )
    )
    fams.append(
        gauge("process_resident_memory_bytes", "Resident memory size in bytes.", [({}, rss)])
    )
    # CPU: whole clock ticks (1/100 s), as ProcessCollector reads them from /proc.
    per_request = _per_scrape(req.end_ms.to_numpy())
    per_miss = _per_scrape(misses.end_ms.to_numpy())
    ticks = rng.poisson(3.0 + 0.09 * per_request + 0.8 * per_miss).astype(np.float64)
    ticks[0] = 0.0
    ticks = _counter(ticks) + np.where(epoch == 1, 187, 213)  # start-up work before a scrape
    cpu = ticks / 100.0  # one division: the same float on every machine
    fams.append(
        Family(
            "process_cpu_seconds",
            "counter",
            "Total user and system CPU time spent in seconds.",
            [Series("process_cpu_seconds_total", _labels(instance), cpu)],
        )
    )
    up_values = np.where(gap, 0.0, 1.0)
    fams.append(
        Family(
            "up",
            "gauge",
            "Did the scrape succeed (written by Prometheus).",
            [Series("up", _labels(instance), up_values)],
        )
    )
    return tuple(sorted(fams, key=lambda f: f.name))


def series(name: str | None = None, instance: str = DEFAULT_INSTANCE) -> list[Series]:
    """Return the day's series (all, or those whose sample name is ``name``).

    >>> [s.label("cache_status") for s in series("vrewcraft_thumbnail_requests_total")]
    ['hit', 'miss']
    """
    out = [s for f in families(instance) for s in f.series]
    return out if name is None else [s for s in out if s.name == name]


# --- OpenMetrics ------------------------------------------------------------------------------


def _value_text(values: np.ndarray) -> list[str]:
    """Format sample values: integers without a dot, others in Python's shortest repr."""
    ok = ~np.isnan(values)
    if np.array_equal(values[ok], np.rint(values[ok])):  # counts: format in C, all at once
        out = np.full(values.shape, "", dtype=object)
        out[ok] = values[ok].astype(np.int64).astype(str)
        return out.tolist()
    return ["" if v != v else str(int(v)) if v == int(v) else repr(v) for v in values.tolist()]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def iter_openmetrics(
    start: int, instance: str = DEFAULT_INSTANCE, points: range | None = None
) -> Iterator[str]:
    """Yield the day as OpenMetrics text chunks, the first sample at Unix time ``start``.

    ``points`` limits the output to those scrapes (indices into the day), e.g. to
    write one file per TSDB block window.
    """
    if int(start) != start or start % STEP:
        raise ValueError(
            f"start={start!r}: the day starts on a whole multiple of {STEP} s "
            f"(use start - start % {STEP})."
        )
    points = range(POINTS) if points is None else points
    part = slice(points.start, points.stop)
    stamps = [str(int(start) + k * STEP) for k in points]
    for fam in families(instance):
        yield f"# HELP {fam.name} {fam.help}\n# TYPE {fam.name} {fam.type}\n"
        for s in fam.series:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in s.labels)
            head = f"{s.name}{{{labels}}} "
            values = _value_text(s.values[part])
            yield "".join(f"{head}{v} {t}\n" for v, t in zip(values, stamps, strict=True) if v)
    yield "# EOF\n"


def openmetrics(start: int, instance: str = DEFAULT_INSTANCE) -> str:
    """Return the whole day as one OpenMetrics text (about 250 MB; prefer write_openmetrics)."""
    return "".join(iter_openmetrics(start, instance))


def write_openmetrics(
    path, start: int, instance: str = DEFAULT_INSTANCE, points: range | None = None
) -> tuple[int, int]:
    """Write the day (or the scrapes in ``points``) to ``path``; return (series, samples)."""
    points = range(POINTS) if points is None else points
    part = slice(points.start, points.stop)
    counts = [int(np.count_nonzero(~np.isnan(s.values[part]))) for s in series(instance=instance)]
    with open(path, "w", encoding="utf-8", newline="\n", buffering=4 * 1024 * 1024) as fh:
        for chunk in iter_openmetrics(start, instance, points):
            fh.write(chunk)
    return sum(1 for c in counts if c), sum(counts)


def openmetrics_sha256(start: int, instance: str = DEFAULT_INSTANCE) -> str:
    """Return the SHA-256 of the day's OpenMetrics bytes (pinned by a test)."""
    digest = hashlib.sha256()
    for chunk in iter_openmetrics(start, instance):
        digest.update(chunk.encode())
    return digest.hexdigest()

"""What Prometheus 2.42 answers for a few PromQL functions, computed in Python from the day.

The exact-value tests compare Prometheus' answers on the backfilled day with
these, computed independently from ``course_lib.history``'s samples. The
functions follow Prometheus 2.42's ``promql/functions.go`` and
``promql/quantile.go``: range selectors include both ends of ``[t - range, t]``,
rate/increase extrapolate as ``extrapolatedRate`` does, and
``histogram_quantile`` interpolates linearly inside the bucket that holds the rank.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from course_lib import history

STEP = history.STEP


def _window(values: np.ndarray, at: float, range_s: float) -> list[tuple[float, float]]:
    """Return the (offset, value) samples with offset in [at - range_s, at]."""
    lo = math.ceil((at - range_s) / STEP)
    hi = math.floor(at / STEP)
    return [
        (k * STEP, float(values[k]))
        for k in range(max(lo, 0), min(hi, history.POINTS - 1) + 1)
        if not math.isnan(values[k])
    ]


def instant(values: np.ndarray, at: float, lookback: float = 300.0) -> float | None:
    """Return the newest sample at or before ``at`` within the lookback (a plain selector)."""
    samples = _window(values, at, lookback)
    return samples[-1][1] if samples else None


def extrapolated(values: np.ndarray, at: float, range_s: float, *, is_rate: bool) -> float | None:
    """Return rate()/increase() of a counter as Prometheus 2.42 computes it."""
    pts = _window(values, at, range_s)
    if len(pts) < 2:
        return None
    result = pts[-1][1] - pts[0][1]
    last = 0.0
    for _, v in pts:
        if v < last:
            result += last
        last = v
    range_start, range_end = at - range_s, at
    to_start = pts[0][0] - range_start
    to_end = range_end - pts[-1][0]
    sampled = pts[-1][0] - pts[0][0]
    average = sampled / (len(pts) - 1)
    if result > 0 and pts[0][1] >= 0:
        to_zero = sampled * (pts[0][1] / result)
        to_start = min(to_start, to_zero)
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    result = result * (interval / sampled)
    return result / range_s if is_rate else result


def rate(values: np.ndarray, at: float, range_s: float) -> float | None:
    return extrapolated(values, at, range_s, is_rate=True)


def increase(values: np.ndarray, at: float, range_s: float) -> float | None:
    return extrapolated(values, at, range_s, is_rate=False)


def irate(values: np.ndarray, at: float, range_s: float) -> float | None:
    pts = _window(values, at, range_s)
    if len(pts) < 2:
        return None
    (t0, v0), (t1, v1) = pts[-2], pts[-1]
    delta = v1 if v1 < v0 else v1 - v0
    return delta / (t1 - t0)


def resets(values: np.ndarray, at: float, range_s: float) -> int:
    pts = [v for _, v in _window(values, at, range_s)]
    return sum(1 for a, b in zip(pts, pts[1:], strict=False) if b < a)


def bucket_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """Return histogram_quantile(q) of (upper bound, cumulative count) pairs."""
    bs = sorted(buckets)
    if not bs or not math.isinf(bs[-1][0]):
        return math.nan
    # Prometheus 2.42 forces counts to be monotonic before interpolating.
    fixed, top = [], 0.0
    for bound, count in bs:
        top = max(top, count)
        fixed.append((bound, top))
    bs = fixed
    if len(bs) < 2:
        return math.nan
    observations = bs[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(bs) - 1) if bs[i][1] >= rank), len(bs) - 1)
    if b == len(bs) - 1:
        return bs[-2][0]
    if b == 0 and bs[0][0] <= 0:
        return bs[0][0]
    start, end, count = 0.0, bs[b][0], bs[b][1]
    if b > 0:
        start = bs[b - 1][0]
        count -= bs[b - 1][1]
        rank -= bs[b - 1][1]
    return start + (end - start) * (rank / count)


def histogram_rate_quantile(
    q: float, bucket_series: list[history.Series], at: float, range_s: float = 300.0
) -> float:
    """Return histogram_quantile(q, sum by (le) (rate(<buckets>[range]))) at ``at``."""
    by_le: dict[float, float] = {}
    for s in bucket_series:
        r = rate(s.values, at, range_s)
        if r is not None:
            le = float(s.label("le"))
            by_le[le] = by_le.get(le, 0.0) + r
    return bucket_quantile(q, by_le.items())

"""The day of VrewCraft: deterministic, internally consistent, and faithful to its requests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from course_lib import history
from course_lib.lesson import describe_metric
from course_lib.service.metrics import VrewCraftMetrics

# Most tests here build the simulated day (about a million requests) or its text.
pytestmark = pytest.mark.slow

START = 1_699_999_995  # a whole multiple of 15 s
#: SHA-256 of the day's OpenMetrics bytes for START and the lab instance. A change here means
#: every stack's history (and every exact number the notebooks assert) changes: on purpose only.
PINNED_SHA256 = "5741df53fa3144653cd85bd9cbd14ad444c991a2510cf25151fbe20b68de7d08"

KD = history.event("deploy").start // history.STEP


def test_openmetrics_bytes_are_pinned():
    assert history.openmetrics_sha256(START) == PINNED_SHA256
    assert PINNED_SHA256[:12] == history.VERSION, "update history.VERSION with the hash"


def test_openmetrics_text_is_well_formed():
    chunks = history.iter_openmetrics(START)
    head = next(chunks)
    assert head.startswith("# HELP ") and "\n# TYPE " in head
    first = next(chunks).splitlines()[0]
    assert first.endswith(f" {START}") and 'job="vrewcraft-backend"' in first
    *_, last = chunks
    assert last == "# EOF\n"


def test_unaligned_start_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="multiple of 15"):
        next(history.iter_openmetrics(START + 7))


def test_instance_label_is_the_one_given():
    series = history.series("up", instance="127.0.0.1:13001")
    assert [s.label("instance") for s in series] == ["127.0.0.1:13001"]
    assert history.DEFAULT_INSTANCE == "127.0.0.1:3001"


def test_every_catalog_metric_is_there_with_the_live_label_names():
    metrics = VrewCraftMetrics(CollectorRegistry())
    names = {s.name for s in history.series()}
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        info = describe_metric(metric)
        kind = info.type
        sample = info.name + ("_bucket" if kind == "histogram" else "")
        found = history.series(sample)
        assert found, f"{sample} missing from the history"
        want = set(info.labels) | {"job", "instance"} | ({"le"} if kind == "histogram" else set())
        assert {k for k, _ in found[0].labels} == want, sample
    for extra in ("process_resident_memory_bytes", "process_cpu_seconds_total", "up"):
        assert extra in names


def _histograms():
    for fam in history.families():
        if fam.type != "histogram":
            continue
        by_labels: dict = {}
        for s in fam.series:
            key = tuple(kv for kv in s.labels if kv[0] != "le")
            by_labels.setdefault(key, []).append(s)
        yield from by_labels.values()


def test_histograms_are_cumulative_and_inf_equals_count():
    checked = 0
    for group in _histograms():
        buckets = [s for s in group if s.name.endswith("_bucket")]
        count = next(s for s in group if s.name.endswith("_count")).values
        total = next(s for s in group if s.name.endswith("_sum")).values
        bounds = [float(s.label("le")) for s in buckets]
        assert bounds == sorted(bounds) and bounds[-1] == math.inf
        stack = np.vstack([s.values for s in buckets])
        ok = ~np.isnan(count)
        assert (np.diff(stack[:, ok], axis=0) >= 0).all(), "buckets must be cumulative"
        assert np.array_equal(stack[-1, ok], count[ok]), "+Inf must equal _count"
        # _sum is plausible: at most count × the largest finite bound, except the +Inf share.
        finite = bounds[-2]
        above = stack[-1, ok] - stack[-2, ok]
        assert (total[ok] >= 0).all()
        assert (total[ok] <= count[ok] * finite + above * 1e6).all()
        checked += 1
    assert checked >= 20


def test_counters_only_go_down_at_the_deploy():
    for s in history.series():
        if not s.name.endswith(("_total", "_bucket", "_count", "_sum")):
            continue
        v = s.values
        assert np.isnan(v[KD]), f"{s.name}: the deploy's scrape failed, no sample"
        seen = np.flatnonzero(~np.isnan(v))
        drops = seen[1:][np.diff(v[seen]) < 0]
        assert all(k > KD and seen[seen < k][-1] < KD for k in drops), f"{s.name} resets at {drops}"


def test_counter_increments_are_the_requests_completed_in_between():
    k = 19 * 240 + 40  # 19:10, well away from the deploy
    df = history.requests(((k - 20) * 15, k * 15))
    for s in history.series("vrewcraft_http_requests_total"):
        labels = dict(s.labels)
        n = len(
            df[
                (df.route == labels["route"])
                & (df.method == labels["method"])
                & (df.status_code == labels["status_code"])
            ]
        )
        assert s.values[k] - s.values[k - 20] == n, labels


def test_histogram_sum_is_the_sum_of_the_raw_latencies():
    k = 20 * 240
    df = history.requests(((k - 20) * 15, k * 15))
    thumbs = df[df.cache_status != ""]
    (total,) = history.series("vrewcraft_thumbnail_duration_seconds_sum")
    assert math.isclose(
        total.values[k] - total.values[k - 20], thumbs.thumbnail_seconds.sum(), rel_tol=1e-12
    )


def test_hits_are_all_lookups_minus_misses_bucket_by_bucket():
    all_ = history.series("vrewcraft_thumbnail_duration_seconds_bucket")
    miss = history.series("vrewcraft_thumbnail_miss_duration_seconds_bucket")
    (hits,) = [
        s
        for s in history.series("vrewcraft_thumbnail_requests_total")
        if s.label("cache_status") == "hit"
    ]
    diff = all_[-1].values - miss[-1].values
    ok = ~np.isnan(diff) & ~np.isnan(hits.values)
    assert ok.sum() > history.POINTS - 10
    assert np.array_equal(diff[ok], hits.values[ok])


def test_labelled_children_appear_on_first_use_and_again_after_the_restart():
    (errors,) = [
        s
        for s in history.series("vrewcraft_http_requests_total")
        if s.label("route") == "/api/videos" and s.label("status_code") == "500"
    ]
    burst = history.event("error_burst").start // history.STEP
    seen = np.flatnonzero(~np.isnan(errors.values))
    assert seen[0] == burst + 1 and errors.values[seen[0]] >= 1
    (uptime,) = history.series("up")
    assert uptime.values[KD] == 0 and np.nansum(uptime.values) == history.POINTS - 1


def test_the_scripted_events_show_in_the_data():
    names = [e.name for e in history.EVENTS]
    assert names == ["deploy", "error_burst", "thumbnail_incident"]
    for e in history.EVENTS:
        assert 0 < e.start < e.end <= history.DAY and e.what
    with pytest.raises(KeyError, match="deploy"):
        history.event("nope")
    # Incident: the thumbnail p99 of the raw latencies is above 50 ms, an hour earlier it isn't.
    incident = history.event("thumbnail_incident")
    during = history.requests((incident.start + 600, incident.start + 900))
    before = history.requests((incident.start - 3600, incident.start - 3300))
    assert during.thumbnail_seconds.quantile(0.99) > 0.05 > before.thumbnail_seconds.quantile(0.99)
    # Deploy: memory steps up by tens of MB.
    (rss,) = history.series("process_resident_memory_bytes")
    step = np.nanmean(rss.values[KD + 1 : KD + 41]) - np.nanmean(rss.values[KD - 40 : KD])
    assert 30e6 < step < 90e6
    # Error burst: only GET /api/videos fails with 500.
    burst = history.event("error_burst")
    df = history.requests((burst.start, burst.end))
    assert set(df[df.status_code == "500"].route) == {"/api/videos"}


def test_daily_cycle_has_a_quiet_night_and_an_evening_peak():
    night = len(history.requests((3 * 3600, 5 * 3600)))
    evening = len(history.requests((19 * 3600, 21 * 3600)))
    assert evening > 5 * night

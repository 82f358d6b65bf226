"""The notebook helpers in course_lib.lesson: offline behaviour, then against the test stack."""

from __future__ import annotations

import math
import time

import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from course_lib import lesson
from course_lib.service.metrics import VrewCraftMetrics


def test_samples_of_a_registry_and_of_text_agree():
    reg = CollectorRegistry()
    Counter("demo_jobs", "Jobs.", ["kind"], registry=reg).labels(kind="a").inc(2)
    Histogram("demo_seconds", "Latency.", buckets=(0.1, 1), registry=reg).observe(0.5)
    from_registry = lesson.samples(reg)
    from_text = lesson.samples(generate_latest(reg))
    for df in (from_registry, from_text):
        jobs = df[df["name"] == "demo_jobs_total"]
        assert jobs["labels"].tolist() == [{"kind": "a"}] and jobs["value"].tolist() == [2.0]
        buckets = df[df["name"] == "demo_seconds_bucket"]["value"].tolist()
        assert buckets == [0.0, 1.0, 1.0]
    assert set(from_registry["type"]) == {"counter", "histogram"}


def test_samples_of_an_empty_registry_is_an_empty_table():
    df = lesson.samples(CollectorRegistry())
    assert df.empty and list(df.columns) == ["family", "type", "name", "labels", "value"]


def test_catalog_matches_the_service_definitions():
    metrics = VrewCraftMetrics(CollectorRegistry())
    families = {f.name: f.type for f in metrics.registry.collect()}
    for name, (kind, _labels, _buckets) in lesson.CATALOG.items():
        assert families.get(name.removesuffix("_total")) == kind, name
    assert len(lesson.CATALOG) == 14


def test_line_plot_refuses_empty_or_broken_data():
    good = pd.DataFrame(
        {
            "timestamp": pd.to_datetime([1, 2, 3], unit="s", utc=True),
            "value": [1.0, 2.0, 3.0],
            "route": ["/a"] * 3,
        }
    )
    fig = lesson.line_plot(good, "ok", color="route")
    assert len(fig.data) == 1 and list(fig.data[0].y) == [1.0, 2.0, 3.0]
    with pytest.raises(AssertionError, match="only 0 points"):
        lesson.line_plot(good.iloc[:0], "empty")
    with pytest.raises(AssertionError, match="NaN"):
        lesson.line_plot(good.assign(value=[1.0, math.nan, 2.0]), "nan")
    with pytest.raises(AssertionError, match="no label"):
        lesson.line_plot(good, "missing label", color="method")


@pytest.mark.ffmpeg
def test_make_clip_writes_a_real_video(tmp_path):
    import subprocess

    clip = lesson.make_clip(tmp_path / "c.mp4", seconds=1)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(clip)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert math.isclose(float(out.stdout), 1.0, abs_tol=0.2)


@pytest.mark.stack
def test_push_waits_until_prometheus_has_scraped_it(stack):
    reg = CollectorRegistry()
    gauge = Gauge("lesson_test_value", "A pushed test value.", registry=reg)
    for value in (1, 2):
        gauge.set(value)
        lesson.push(stack, reg, job="lesson_test", grouping_key={"instance": "t1"})
        # No sleep: the pushed value is already queryable.
        df = stack.query('lesson_test_value{job="lesson_test", instance="t1"}')
        assert df["value"].tolist() == [value]
    lesson.delete_push(stack, job="lesson_test", grouping_key={"instance": "t1"})
    assert stack.query('lesson_test_value{job="lesson_test"}').empty


@pytest.mark.stack
def test_targets_api_raw_samples_and_wait_for_scrape(stack):
    targets = lesson.targets(stack)
    assert {"prometheus", "pushgateway"} <= set(targets["job"])
    assert lesson.api(stack, "status/flags")["storage.tsdb.retention.time"]
    started = lesson.wait_for_scrape(stack, "prometheus")
    assert stack.query('timestamp(up{job="prometheus"})')["value"].iloc[0] >= started
    raw = lesson.raw_samples(stack, 'up{job="prometheus"}', "10s", time.time())
    assert not raw.empty and set(raw["value"]) == {1.0}
    assert lesson.raw_samples(stack, 'up{job="no-such-job"}', "10s", time.time()).empty

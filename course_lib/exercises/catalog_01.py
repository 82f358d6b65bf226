"""Exercises of notebook 01_prometheus_basics (one ``register`` call each)."""

from __future__ import annotations

from .core import register
from .kinds import PromQL

register(PromQL(
    "01.up_query", 'up{job="prometheus"}', require_labels=["job"],
    nudge="The metric is called up; keep only the series whose job label is prometheus."))

register(PromQL(
    "01.scrape_rate", 'rate(prometheus_tsdb_head_samples_appended_total{type="float"}[1m])',
    match_on=["job", "instance"],
    nudge="prometheus_tsdb_head_samples_appended_total is a counter; a counter needs rate(…) "
          "over a window of about a minute."))

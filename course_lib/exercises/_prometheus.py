"""Talk to Prometheus' HTTP API for the checks: instant queries and the scrape interval."""

from __future__ import annotations

import math
import time as _time
from datetime import datetime
from typing import Any

import requests
import yaml

from .core import ExerciseSetupError, StackLike

TIMEOUT = 15.0
DEFAULT_SCRAPE_INTERVAL = 5.0


class QueryRejected(Exception):
    """Prometheus answered with an error for this query (bad_data, execution, timeout)."""


def prometheus_url(stack: StackLike | str | None) -> str:
    """Return the Prometheus base URL of ``stack`` (None: the COURSE_* environment's stack)."""
    if isinstance(stack, str):
        return stack.rstrip("/")
    if stack is None:
        from course_lib.config import StackConfig

        return StackConfig.from_env().url("prometheus")
    return str(stack.prometheus_url).rstrip("/")


def eval_time(at: float | str | datetime | None) -> float:
    """Return the evaluation time as Unix seconds (None: now)."""
    if at is None:
        return _time.time()
    if isinstance(at, datetime):
        return at.timestamp()
    if isinstance(at, str):
        return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
    return float(at)


def instant(url: str, promql: str, at: float) -> tuple[str, Any]:
    """Evaluate ``promql`` at ``at``; return (resultType, result) as Prometheus sends them."""
    from course_lib import prom

    try:
        return prom.query_raw(url, promql, at)
    except prom.PrometheusUnreachable as exc:
        raise ExerciseSetupError(str(exc)) from None
    except prom.PromQLError as exc:
        # Keep only Prometheus' own words: the learner knows which query they wrote.
        raise QueryRejected(exc.detail) from None


def scrape_interval(url: str) -> float:
    """Return the global scrape interval in seconds from Prometheus' loaded config."""
    try:
        resp = requests.get(f"{url}/api/v1/status/config", timeout=TIMEOUT)
        config = yaml.safe_load(resp.json()["data"]["yaml"])
        text = config["global"]["scrape_interval"]
    except (requests.RequestException, ValueError, KeyError, TypeError, yaml.YAMLError):
        return DEFAULT_SCRAPE_INTERVAL
    return duration_seconds(text)


def duration_seconds(text: str) -> float:
    """Return a Prometheus duration such as "1m30s" in seconds."""
    import promql_parser

    return promql_parser.parse_duration(str(text)).total_seconds()


def as_float(raw: str) -> float:
    """Turn a sample value from the API ("1.5", "NaN", "+Inf") into a float."""
    return float(raw)


def same_value(a: float, b: float, rel_tol: float, abs_tol: float) -> bool:
    """Compare two sample values with tolerance, treating NaN as equal to NaN."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)

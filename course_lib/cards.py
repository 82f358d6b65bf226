"""Interview cards: question, precise answer, the common wrong answer, and a proof on the stack.

Each card is data (``CARDS``): the seed tutorial's ten interview questions plus the ones
real monitoring interviews ask, each tagged with a PCA exam domain and carrying the
Korean term of its key concept, so a learner can answer in either language. A card's
proof runs on the stack (mostly on the day of history, a few live) and returns a
``Proof`` whose ``holds`` says whether the stack agrees with the answer.

>>> card("counter_vs_gauge").domain
'Fundamentals & Concepts'
>>> proof = prove("counter_vs_gauge", stack)                    # doctest: +SKIP
>>> assert proof.holds, proof                                    # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests
import yaml

from course_lib import history
from course_lib.config import repo_root

__all__ = [
    "export",
    "CARDS",
    "DOMAINS",
    "Card",
    "Proof",
    "card",
    "prove",
    "to_csv",
    "to_markdown",
    "to_anki",
]

# The PCA (Prometheus Certified Associate) exam domains and their weights.
DOMAINS = {
    "Fundamentals & Concepts": 0.20,
    "Prometheus Architecture": 0.20,
    "PromQL": 0.30,
    "Instrumentation": 0.10,
    "Alerting & Recording Rules": 0.10,
    "Ecosystem & Integrations": 0.10,
}
FUND, ARCH, PROMQL, INSTR, ALERT, ECO = DOMAINS

H, M = 3600, 60
HTTP = "vrewcraft_http_requests_total"
HTTP_BUCKETS = "vrewcraft_http_request_duration_seconds_bucket"
THUMB = "vrewcraft_thumbnail_duration_seconds"
JOB = f'job="{history.JOB}"'


@dataclass(frozen=True)
class Proof:
    """What a card's proof measured: the claim, the numbers, and whether they bear it out."""

    card: str
    claim: str
    numbers: dict[str, Any]
    holds: bool

    def __str__(self) -> str:
        nums = ", ".join(f"{k}={_fmt(v)}" for k, v in self.numbers.items())
        return f"{'✅' if self.holds else '❌'} {self.card}: {self.claim} ({nums})"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@dataclass(frozen=True)
class Card:
    """One interview question with its answer, the usual wrong answer, and its proof."""

    id: str
    domain: str
    korean: str
    question: str
    answer: str
    wrong: str
    why_wrong: str
    claim: str
    proof: Callable[[Any], tuple[dict[str, Any], bool]] = field(repr=False)
    from_seed: bool = False

    def markdown(self) -> str:
        """Return the card as Markdown (question, answer, wrong answer, domain, Korean term)."""
        seed = " · from the seed" if self.from_seed else ""
        return (
            f"### {self.question}\n\n*{self.domain} · {self.korean}{seed}*\n\n"
            f"**Answer.** {self.answer}\n\n"
            f"**Common wrong answer.** “{self.wrong}” — {self.why_wrong}\n\n"
            f"**Proof on the stack.** {self.claim}"
        )

    def _repr_markdown_(self) -> str:
        return self.markdown()


# --- helpers of the proofs -----------------------------------------------------------------------


def _one(stack: Any, promql: str, at: float) -> float:
    """Return the single value of an instant query (NaN when it returns nothing)."""
    df = stack.query(promql, time=at)
    if df.empty:
        return math.nan
    if len(df) != 1:
        raise ValueError(f"{promql} returned {len(df)} series, expected one")
    return float(df["value"].iloc[0])


def _values(stack: Any, promql: str, start: float, end: float, step: float = 15) -> np.ndarray:
    df = stack.query_range(promql, start, end, step=step)
    return df["value"].to_numpy(dtype=float)


def _p99(buckets: str, by: str = "le") -> str:
    return f"histogram_quantile(0.99, sum by ({by}) (rate({buckets}[5m])))"


# --- the proofs: each returns (numbers, holds) --------------------------------------------------


def _prove_pull(stack: Any):
    up = stack.query("up")
    jobs = sorted(up["job"].unique())
    return {"targets": len(up), "all_up": bool((up["value"] == 1).all()), "jobs": jobs}, (
        len(up) >= 3 and bool((up["value"] == 1).all())
    )


def _prove_counter_gauge(stack: Any):
    day = stack.history_window()
    end = day.end - 1
    counter_resets = _one(
        stack, f'max(resets({HTTP}{{route="/api/videos",status_code="200"}}[1d]))', end
    )
    gauge_drops = _one(stack, "resets(vrewcraft_websocket_connections[1d])", end)
    return {"counter_resets": counter_resets, "gauge_decreases": gauge_drops}, (
        counter_resets == 1 and gauge_drops > 100
    )


def _prove_histogram(stack: Any):
    day = stack.history_window()
    at = day.at(12 * H)
    inf = _one(stack, f'sum({HTTP_BUCKETS}{{le="+Inf"}})', at)
    count = _one(stack, "sum(vrewcraft_http_request_duration_seconds_count)", at)
    df = stack.query(f'{HTTP_BUCKETS}{{route="/api/videos",status_code="200"}}', time=at)
    df["bound"] = df["le"].astype(float)
    cumulative = bool(df.sort_values("bound")["value"].is_monotonic_increasing)
    return {"+Inf": inf, "_count": count, "buckets": len(df), "cumulative": cumulative}, (
        inf == count and cumulative and len(df) > 5
    )


def _prove_promql(stack: Any):
    day = stack.history_window()
    at = day.at(12 * H)
    sel = f'{HTTP}{{route="/api/videos",status_code="200"}}'
    inc = _one(stack, f"increase({sel}[1h])", at)
    rate = _one(stack, f"rate({sel}[1h])", at)
    samples = _one(stack, f"count_over_time({sel}[1m])", at)
    return {"increase_1h": inc, "rate_x_3600": rate * 3600, "samples_in_1m": samples}, (
        abs(inc - rate * 3600) < 1e-6 * max(1, inc) and samples == 5
    )


def _prove_grafana(stack: Any):
    from course_lib.grafana import lint, overview

    board = overview.dashboard_dict()
    queries = [q for p in lint.walk_panels(board) for q in lint.panel_queries(p)]
    names = set()
    for q in queries:
        names |= set(re.findall(r"\b(vrewcraft_[a-z_]+|process_[a-z_]+)\b", q))
    matcher = 'count by (__name__) ({__name__=~"vrewcraft_.+|process_.+"})'
    day = stack.history_window()  # a series may exist only in the history (errors) or only live
    known = set(stack.query(matcher)["__name__"]) | set(
        stack.query(matcher, time=day.end - 1)["__name__"]
    )
    missing = sorted(names - known)
    return {"panel_queries": len(queries), "metrics_read": len(names), "missing": missing}, (
        len(queries) > 5 and not missing
    )


def _prove_p99(stack: Any):
    day = stack.history_window()
    at = day.at_event("thumbnail_incident") + 10 * M
    avg = _one(stack, f"sum(rate({THUMB}_sum[5m])) / sum(rate({THUMB}_count[5m]))", at)
    p99 = _one(stack, _p99(f"{THUMB}_bucket"), at)
    return {"average_ms": avg * 1000, "p99_ms": p99 * 1000}, p99 > 3 * avg and p99 > 0.05 > avg


def _prove_aggregation(stack: Any):
    day = stack.history_window()
    at = day.at(20 * H)
    per_route = stack.query(_p99(HTTP_BUCKETS, "le, route"), time=at)
    per_route = per_route[per_route["value"].notna() & np.isfinite(per_route["value"])]
    mean_of_p99s = float(per_route["value"].mean())
    overall = _one(stack, _p99(HTTP_BUCKETS), at)
    return {
        "mean_of_route_p99s_ms": mean_of_p99s * 1000,
        "p99_of_summed_buckets_ms": overall * 1000,
    }, (len(per_route) >= 3 and abs(mean_of_p99s - overall) / overall > 0.2)


def _prove_cardinality(stack: Any):
    day = stack.history_window()
    at = day.end - 1
    buckets = _one(stack, f"count({HTTP_BUCKETS})", at)
    children = _one(stack, "count(vrewcraft_http_request_duration_seconds_count)", at)
    from course_lib.service.metrics import HTTP_BUCKETS as BOUNDS

    per_child = len(BOUNDS) + (0 if math.isinf(BOUNDS[-1]) else 1)
    return {"bucket_series": buckets, "label_combinations": children, "buckets_each": per_child}, (
        buckets == children * per_child
    )


def _prove_for(stack: Any):
    from course_lib.alerting import run_rule_tests

    rules = {
        "groups": [
            {
                "name": "cards",
                "rules": [{"alert": "Errors", "expr": "errors_per_second > 1", "for": "5m"}],
            }
        ]
    }

    def case(at: str, firing: bool) -> dict:
        alerts = [{"exp_labels": {"alertname": "Errors"}}] if firing else []
        return {"eval_time": at, "alertname": "Errors", "exp_alerts": alerts}

    results = {}
    with tempfile.TemporaryDirectory(prefix="cards-") as tmp:
        (Path(tmp) / "rules.yml").write_text(yaml.safe_dump(rules))
        for name, cases in {
            "pending_at_4m": [case("4m", False), case("6m", True)],
            "firing_at_4m": [case("4m", True)],
        }.items():
            test = {
                "rule_files": ["rules.yml"],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [{"series": "errors_per_second", "values": "5x10"}],
                        "alert_rule_test": cases,
                    }
                ],
            }
            path = Path(tmp) / f"{name}.yml"
            path.write_text(yaml.safe_dump(test))
            results[name] = run_rule_tests(path).ok
    return results, results["pending_at_4m"] and not results["firing_at_4m"]


def _prove_alert_fatigue(stack: Any):
    day = stack.history_window()
    ratio = f'sum(rate({HTTP}{{status_code=~"5.."}}[1m])) / sum(rate({HTTP}[1m])) > 0.002'
    hot = _values(stack, f"({ratio}) or vector(0)", day.at(0), day.at(24 * H - 60), step=60) > 0
    lengths, run = [], 0  # minutes of each episode in which the condition held
    for minute_hot in [*hot, False]:
        if minute_hot:
            run += 1
        elif run:
            lengths.append(run)
            run = 0
    with_for = sum(1 for n in lengths if n >= 5)  # held at every evaluation for 5m
    return {"episodes_without_for": len(lengths), "episodes_with_for_5m": with_for}, (
        with_for == 2 and len(lengths) > with_for
    )


def _push(stack: Any, job: str, value: float) -> None:
    from prometheus_client import CollectorRegistry, Gauge

    from course_lib import lesson

    registry = CollectorRegistry()
    Gauge(
        "cards_batch_last_success_seconds",
        "When the card demo batch job last succeeded.",
        registry=registry,
    ).set(value)
    lesson.push(stack, registry, job)


def _prove_push(stack: Any):
    from course_lib import lesson

    job = "cards-batch"
    _push(stack, job, time.time())
    first = stack.query(f'cards_batch_last_success_seconds{{job="{job}"}}')
    lesson.wait_for_scrape(stack, "pushgateway")
    lesson.wait_for_scrape(stack, "pushgateway")
    later = stack.query(f'cards_batch_last_success_seconds{{job="{job}"}}')
    lesson.delete_push(stack, job)
    return {
        "instance_label": first["instance"].iloc[0] if "instance" in first else "",
        "still_there_after_job_ended": len(later),
    }, (len(first) == 1 and len(later) == 1)


def _prove_staleness(stack: Any):
    from course_lib import lesson

    job = "cards-stale"
    _push(stack, job, 1.0)
    sel = f'cards_batch_last_success_seconds{{job="{job}"}}'
    started = time.time()
    lesson.delete_push(stack, job)
    stack.wait_for(sel, lambda df: df.empty, timeout=60, interval=0.2)
    gone_after = time.time() - started
    day = stack.history_window()
    at = day.at(10 * H + 30 * M + 10)  # the failed scrape of the deploy: no sample at 10:30:00
    seen = _one(stack, "timestamp(vrewcraft_websocket_connections)", at)
    return {
        "live_gone_after_s": round(gone_after, 1),
        "backfilled_gap_served_from_s_before": at - seen,
    }, (gone_after < 60 and at - seen == 25)


def _prove_rate_irate(stack: Any):
    day = stack.history_window()
    start = day.at_event("thumbnail_incident")
    rate = _values(stack, f"sum(rate({HTTP}[5m]))", start, start + 30 * M)
    irate = _values(stack, f"sum(irate({HTTP}[5m]))", start, start + 30 * M)
    jumps_rate, jumps_irate = (
        float(np.abs(np.diff(rate)).mean()),
        float(np.abs(np.diff(irate)).mean()),
    )
    return {
        "rate_step_change": jumps_rate,
        "irate_step_change": jumps_irate,
    }, jumps_irate > 5 * jumps_rate


def _prove_counter_reset(stack: Any):
    day = stack.history_window()
    at = day.at_event("deploy") + 5 * M
    sel = f'{HTTP}{{route="/api/videos",status_code="200"}}'
    delta = _one(stack, f"delta({sel}[10m])", at)
    inc = _one(stack, f"increase({sel}[10m])", at)
    return {"delta_10m": delta, "increase_10m": inc}, delta < 0 < inc


def _prove_recording(stack: Any):
    day = stack.history_window()
    end = day.end - 1
    rule = "job:vrewcraft_thumbnail_errors:ratio_rate5m"
    recorded = stack.query(f"count_over_time({rule}[1d])", time=end)
    raw = stack.query(
        "count_over_time(rate(vrewcraft_thumbnail_requests_total[5m])[1d:5m])", time=end
    )
    return {
        "recorded_points_in_history": 0 if recorded.empty else float(recorded["value"].sum()),
        "raw_points_in_history": float(raw["value"].sum()) if not raw.empty else 0.0,
    }, recorded.empty and not raw.empty


def _prove_up(stack: Any):
    day = stack.history_window()
    failed = _one(stack, f"count_over_time(({{__name__='up',{JOB}}} == 0)[1d:15s])", day.end - 1)
    at_deploy = _one(stack, f"up{{{JOB}}}", day.at_event("deploy"))
    return {
        "failed_scrapes_in_day": failed,
        "up_at_deploy": at_deploy,
    }, failed == 1 and at_deploy == 0


def _prove_created(stack: Any):
    from course_lib import lesson

    text = lesson.fetch_text(stack.service_url + "/metrics")
    created = [
        line for line in text.splitlines() if "_created" in line and not line.startswith("#")
    ]
    total = [line for line in text.splitlines() if line.startswith("vrewcraft_http_requests_total")]
    stamps = [float(line.rsplit(" ", 1)[1]) for line in created]
    plausible = all(1e9 < s <= time.time() for s in stamps)
    return {
        "created_lines": len(created),
        "counter_lines": len(total),
        "look_like_unix_times": plausible,
    }, (len(created) > 0 and plausible)


def _prove_exemplars(stack: Any):
    from prometheus_client import CollectorRegistry, Histogram, generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

    registry = CollectorRegistry()
    h = Histogram("cards_demo_seconds", "Demo latency.", registry=registry)
    h.observe(0.3, exemplar={"trace_id": "abc123"})
    om = openmetrics(registry).decode()
    classic = generate_latest(registry).decode()
    return {
        "in_openmetrics": 'trace_id="abc123"' in om,
        "in_classic_text": "trace_id" in classic,
    }, ('trace_id="abc123"' in om and "trace_id" not in classic)


def _prove_red(stack: Any):
    day = stack.history_window()
    burst, noon = day.at_event("error_burst") + 10 * M, day.at(12 * H)
    rate = _one(stack, f"sum(rate({HTTP}[5m]))", burst)
    err = f'sum(rate({HTTP}{{status_code=~"5.."}}[5m])) / sum(rate({HTTP}[5m]))'
    errors_burst, errors_noon = _one(stack, err, burst), _one(stack, f"({err}) or vector(0)", noon)
    p99 = _one(stack, _p99(HTTP_BUCKETS), burst)
    return {
        "rate_rps": rate,
        "errors_burst": errors_burst,
        "errors_noon": errors_noon,
        "p99_s": p99,
    }, (rate > 0 and errors_burst > 10 * max(errors_noon, 1e-4) and p99 > 0)


def _prove_slo(stack: Any):
    day = stack.history_window()
    end = day.end - 1
    promql = _one(
        stack,
        f'1 - sum(increase({HTTP}{{status_code=~"5.."}}[1d])) / sum(increase({HTTP}[1d]))',
        end,
    )
    reqs = history.requests()
    exact = 1 - float((reqs["status_code"].astype(str).str.startswith("5")).mean())
    return {
        "availability_promql": promql,
        "availability_exact": exact,
        "meets_99_9": exact >= 0.999,
    }, (abs(promql - exact) < 0.001)


def _prove_burn(stack: Any):
    day = stack.history_window()
    err = f'sum(rate({HTTP}{{status_code=~"5.."}}[5m])) / sum(rate({HTTP}[5m]))'
    burst = _one(stack, f"({err}) / 0.001", day.at_event("error_burst") + 10 * M)
    quiet = _one(stack, f"(({err}) or vector(0)) / 0.001", day.at(12 * H))
    return {"burn_rate_burst": burst, "burn_rate_noon": quiet}, burst > 14.4 and quiet < 14.4


def _prove_federation(stack: Any):
    resp = requests.get(
        stack.prometheus_url + "/federate", params={"match[]": 'up{job="prometheus"}'}, timeout=10
    )
    resp.raise_for_status()
    lines = [line for line in resp.text.splitlines() if line.startswith("up{")]
    return {
        "status": resp.status_code,
        "series": len(lines),
        "external_label": 'course="vrewcraft"' in resp.text,
    }, (len(lines) == 1 and 'course="vrewcraft"' in resp.text)


def _prove_dedup(stack: Any):
    from course_lib import alerting

    name = f"CardsDedup{int(time.time())}"
    alert = {
        "labels": {"alertname": name, "severity": "info", "cards": "dedup"},
        "annotations": {"summary": "sent twice by two HA Prometheus replicas"},
    }
    alerting.post_alerts(stack, [alert])
    alerting.post_alerts(stack, [alert])
    held = [a for a in alerting.alertmanager_alerts(stack) if a["labels"].get("alertname") == name]
    return {"posted": 2, "held": len(held)}, len(held) == 1


def _prove_tsdb_status(stack: Any):
    status = requests.get(stack.prometheus_url + "/api/v1/status/tsdb", timeout=10).json()["data"]
    top = status["seriesCountByMetricName"][0]["name"]
    topk = stack.query('topk(5, count by (__name__) ({__name__=~".+"}))')
    return {"tsdb_status_top": top, "topk_query": sorted(topk["__name__"])}, top in set(
        topk["__name__"]
    )


def _prove_interpolation(stack: Any):
    day = stack.history_window()
    end = 12 * H
    at = day.at(end)
    est = _one(stack, f"histogram_quantile(0.99, sum by (le) (rate({THUMB}_bucket[5m])))", at)
    reqs = history.requests((end - 300, end))
    thumbs = reqs[reqs["route"] == history.THUMBNAIL_ROUTE]
    exact = float(np.quantile(thumbs["duration_seconds"], 0.99)) if len(thumbs) else math.nan
    from course_lib.service.metrics import THUMBNAIL_BUCKETS

    bounds = [0.0, *THUMBNAIL_BUCKETS]
    bucket = next((lo, hi) for lo, hi in zip(bounds, bounds[1:], strict=False) if lo < est <= hi)
    return {
        "estimate_ms": est * 1000,
        "exact_ms": exact * 1000,
        "bucket_ms": (bucket[0] * 1000, bucket[1] * 1000),
    }, (bucket[0] <= exact <= bucket[1] and abs(est - exact) > 1e-6)


def _prove_absent(stack: Any):
    missing = stack.query('absent(up{job="nightly-report"})')
    eq_zero = stack.query('up{job="nightly-report"} == 0')
    present = stack.query(f"absent(up{{{JOB}}})")
    return {
        "absent_returns": len(missing),
        "up_eq_0_returns": len(eq_zero),
        "absent_of_live_job": len(present),
    }, (
        len(missing) == 1
        and missing["job"].iloc[0] == "nightly-report"
        and eq_zero.empty
        and present.empty
    )


def _prove_window(stack: Any):
    day = stack.history_window()
    off_grid = day.at(12 * H) + 7  # between two scrapes: a 15 s window holds one sample
    sel = f'{HTTP}{{route="/api/videos",status_code="200"}}'
    too_short = stack.query(f"rate({sel}[15s])", time=off_grid)
    enough = stack.query(f"rate({sel}[1m])", time=off_grid)
    return {
        "rate_15s_series": len(too_short),
        "rate_1m_series": len(enough),
    }, too_short.empty and len(enough) == 1


def _prove_latency_gap(stack: Any):
    path = repo_root() / "bench" / "results" / "latency_gap.json"
    levels = {lv["connections"]: lv for lv in json.loads(path.read_text())["levels"]}
    at50 = levels[50]
    client, server = at50["client_p99_ms"], at50["server_histogram_p99_ms"]
    return {
        "client_p99_ms": client,
        "server_histogram_p99_ms": server,
        "queue_wait_p99_ms": at50["wait_p99_ms"],
    }, (client > 3 * server and at50["wait_p99_ms"] > server)


# --- the catalog ---------------------------------------------------------------------------------

CARDS: tuple[Card, ...] = (
    Card(
        "prom_vs_graphite",
        ARCH,
        "풀 방식 / 시계열 저장 (pull, time-series storage)",
        "Prometheus vs Graphite or InfluxDB: what is the difference?",
        "Prometheus pulls (scrapes) metrics from targets it discovers, stores labelled "
        "time series in its own TSDB, queries them with PromQL and evaluates alert rules "
        "itself. Graphite and InfluxDB receive pushed data; Graphite names series by dotted "
        "paths without labels, and neither ships the scrape-and-alert loop.",
        "Prometheus is just a faster database.",
        "the difference is the model: pull from discovered targets, so a dead target is "
        "itself a signal (up == 0), and multi-dimensional labels, not storage speed.",
        "every target in the config is pulled by Prometheus and reports up == 1.",
        _prove_pull,
        True,
    ),
    Card(
        "counter_vs_gauge",
        FUND,
        "카운터 / 게이지 (counter / gauge)",
        "Counter vs gauge?",
        "A counter only goes up (it resets to 0 when the process restarts); you read it with "
        "rate() or increase(). A gauge is a current value that goes up and down (memory, "
        "connections); you read it as is, or with *_over_time.",
        "A counter is any number that counts, so the number of open connections is a counter.",
        "open connections go down too: a counter that decreases is read by rate() as a reset "
        "and yields nonsense. Counting something that can shrink is a gauge.",
        "over the day the request counter resets exactly once (the deploy) while the "
        "websocket gauge decreases hundreds of times.",
        _prove_counter_gauge,
        True,
    ),
    Card(
        "histogram",
        INSTR,
        "히스토그램, 버킷 기반 (histogram, bucket-based)",
        "What is a histogram in Prometheus?",
        "A set of cumulative counters, one per upper bound le (observations <= le), plus "
        "_sum and _count; the +Inf bucket equals _count. Quantiles are estimated at query "
        "time with histogram_quantile over rate()d buckets.",
        "It stores every observed value so percentiles are exact.",
        "it stores only counts per bucket: percentiles are interpolated within a bucket "
        "and are only as precise as the bucket layout.",
        "at noon the +Inf bucket equals _count and the buckets are cumulative.",
        _prove_histogram,
        True,
    ),
    Card(
        "promql_basics",
        PROMQL,
        "쿼리 언어 (query language)",
        "What is PromQL? Instant vs range vectors?",
        "Prometheus's functional query language. A selector returns an instant vector (one "
        "sample per series at the evaluation time); adding [5m] returns a range vector (all "
        "raw samples in the window), which functions like rate() turn back into an instant "
        "vector. increase(x[1h]) is exactly rate(x[1h]) * 3600.",
        "PromQL is SQL for metrics.",
        "there are no tables or joins by key; it is vector arithmetic with label matching, "
        "and a range vector can't be graphed without a function around it.",
        "increase over 1h equals rate over 1h times 3600, and a 1m window holds 5 samples "
        "at a 15 s scrape interval.",
        _prove_promql,
        True,
    ),
    Card(
        "grafana_role",
        ECO,
        "시각화 대시보드 (visualisation dashboard)",
        "What is Grafana's role?",
        "Grafana visualises and alerts on data it queries from data sources: it stores no "
        "metrics. Each panel sends its PromQL to Prometheus on every refresh.",
        "Grafana collects and stores the metrics.",
        "delete Prometheus and every panel is empty: the data lives in Prometheus, Grafana "
        "only holds the dashboard JSON (queries, layout).",
        "every metric the overview dashboard's panels query exists in Prometheus.",
        _prove_grafana,
        True,
    ),
    Card(
        "why_p99",
        PROMQL,
        "꼬리 지연 (tail latency)",
        "Why watch p99 rather than the average latency?",
        "The average hides the tail: a few slow requests barely move it, yet they are the "
        "ones users feel, and one page load makes many requests so most users meet the tail. "
        "p99 says: 1 in 100 requests is slower than this.",
        "The average is enough if it is low.",
        "in the thumbnail incident the average stays low while the p99 is several times "
        "larger and above the 50 ms target.",
        "at 19:50 the thumbnail p99 is more than 3x the average and above 50 ms while the "
        "average stays below.",
        _prove_p99,
        True,
    ),
    Card(
        "histogram_vs_summary",
        INSTR,
        "서버 계산 / 클라이언트 계산 (computed server- vs client-side)",
        "Histogram vs summary?",
        "A summary computes quantiles in the client: cheap to query, exact for that one "
        "process, but they can't be aggregated across instances or routes. A histogram "
        "exports bucket counters that can be summed across series and windows before "
        "histogram_quantile, at the price of bucket-bounded precision.",
        "Average the per-instance (or per-route) p99s to get the overall p99.",
        "quantiles don't average: the mean of per-route p99s is far from the p99 of all "
        "requests. Sum the buckets first, then take the quantile.",
        "at 20:00 the mean of the per-route p99s differs by more than 20 % from the p99 of "
        "the summed buckets.",
        _prove_aggregation,
        True,
    ),
    Card(
        "label_cardinality",
        FUND,
        "카디널리티 (cardinality)",
        "What are the rules for labels?",
        "Every distinct label combination is a new time series. Label values must be "
        "bounded (route templates, status codes), never user ids, raw URLs or timestamps. "
        "A histogram multiplies it again by its number of buckets.",
        "Labels are free; add as many as useful.",
        "series count is the product of label values times buckets; an unbounded label "
        "explodes memory and query time.",
        "the request-duration histogram has exactly (label combinations) x (buckets) series.",
        _prove_cardinality,
        True,
    ),
    Card(
        "alert_fatigue",
        ALERT,
        "알림 피로 (alert fatigue)",
        "How do you prevent alert fatigue?",
        "Alert on symptoms users feel (error ratio, latency SLOs), with a `for` duration so "
        "blips don't page, sensible thresholds, severity routing, and Alertmanager grouping "
        "and inhibition so one incident is one notification.",
        "Lower the thresholds so nothing is missed.",
        "that pages on every blip; people learn to ignore the pager and miss the real one.",
        "over the day a 0.2 % error ratio over 1m is crossed in several blips; a 5m "
        "`for` keeps only the two real incidents.",
        _prove_alert_fatigue,
        True,
    ),
    Card(
        "pull_vs_push",
        ECO,
        "풀 / 푸시 (pull / push)",
        "Pull vs push: pros and cons?",
        "Pull: Prometheus controls the load and timing, up tells whether a target is alive, "
        "targets come from service discovery. Push fits short-lived batch jobs that end "
        "before a scrape: they push to a Pushgateway which Prometheus scrapes.",
        "Push is always better because targets don't need to be reachable.",
        "a pushed value persists after the job is gone, so 'no news' looks like good news: "
        "staleness and up stop working for it.",
        "a batch job's pushed metric is still in Prometheus two scrapes after the job ended.",
        _prove_push,
        True,
    ),
    Card(
        "rate_irate_increase",
        PROMQL,
        "증가율 (rate)",
        "rate vs irate vs increase?",
        "rate(x[5m]) is the per-second average increase over the whole window; irate uses "
        "only the last two samples (volatile, for fast zoomed-in graphs); increase is rate "
        "times the window length (extrapolated, so not always an integer).",
        "irate is the more accurate rate.",
        "it ignores all samples but the last two, so graphs jump with every scrape and "
        "alerts on it flap.",
        "during the incident irate's step-to-step change is >5x rate's.",
        _prove_rate_irate,
    ),
    Card(
        "counter_resets",
        PROMQL,
        "리셋 (reset)",
        "What happens to rate() when a counter resets?",
        "rate, irate and increase detect a decrease as a reset and add the value after it, "
        "so a restart doesn't produce a negative rate. delta() doesn't, and is for gauges.",
        "Use delta() on the counter; it's the same as increase().",
        "delta doesn't know about resets: across the deploy it goes negative.",
        "across the 10:30 deploy delta() of a request counter is negative, increase() positive.",
        _prove_counter_reset,
    ),
    Card(
        "staleness",
        ARCH,
        "수집 주기 / 신선도 (scrape, staleness)",
        "When does a series disappear after its target stops exposing it?",
        "When a scrape no longer returns a series (or the target goes away), Prometheus "
        "writes a staleness marker and the series vanishes from instant queries at once. "
        "The 5-minute lookback (query.lookback-delta) only applies when there is no marker, "
        "e.g. backfilled data or a gap: then the last sample up to 5 minutes old is returned.",
        "It always lingers for 5 minutes.",
        "that was Prometheus 1.x; since 2.0 staleness markers end it right away.",
        "a deleted Pushgateway group's series is gone within a scrape or two; across the "
        "deploy's failed scrape the history serves the 25 s old sample.",
        _prove_staleness,
    ),
    Card(
        "for_pending",
        ALERT,
        "알림 규칙 (alert rule)",
        "What does `for` do in an alert rule?",
        "The expression must hold at every evaluation for the `for` duration: meanwhile "
        "the alert is pending, then firing. If it stops holding the timer starts again.",
        "`for: 5m` means the alert is sent 5 minutes after it first fired.",
        "nothing is sent while pending; the alert only fires once the condition has held for 5m.",
        "promtool: with `for: 5m` the alert is not firing at 4m and firing at 6m.",
        _prove_for,
    ),
    Card(
        "recording_rules",
        ALERT,
        "기록 규칙 (recording rule)",
        "What are recording rules for, and what do they not do?",
        "They precompute an expensive expression every evaluation interval and store the "
        "result as a new series (named level:metric:operations), so dashboards and alerts "
        "read it cheaply. They start recording when loaded: no history.",
        "A recording rule is a saved query that works over past data too.",
        "it writes samples only from the moment it is loaded; past data stays raw.",
        "over the backfilled day the recorded ratio has no points while the raw expression does.",
        _prove_recording,
    ),
    Card(
        "up_metric",
        ARCH,
        "수집 실패 (scrape failure)",
        "What does `up` tell you?",
        "Prometheus writes up = 1 for each successful scrape and up = 0 when the scrape "
        "fails (connection refused, timeout, bad format), per target.",
        "up == 0 means the host is down.",
        "it means that scrape failed: the process may be restarting, slow, or the network "
        "may be broken; and a target missing from discovery has no up at all.",
        "over the day exactly one scrape failed: the deploy at 10:30.",
        _prove_up,
    ),
    Card(
        "created_series",
        INSTR,
        "생성 시각 (creation time)",
        "What are the `_created` series?",
        "prometheus_client exposes, next to each counter, histogram and summary, the Unix "
        "time the series was created, so a consumer can detect resets and know the start "
        "of the count. Prometheus 2.x stores them as ordinary gauges.",
        "They count how many objects were created.",
        "they are timestamps, not counts; rate() on them is meaningless.",
        "the live service's /metrics has _created lines whose values are Unix times.",
        _prove_created,
    ),
    Card(
        "exemplars",
        INSTR,
        "예시 (exemplar)",
        "What are exemplars?",
        "A sample attached to a bucket or counter carrying labels such as a trace_id, so a "
        "latency spike links to a trace. They travel only in the OpenMetrics (or protobuf) "
        "format, and Prometheus stores them only with --enable-feature=exemplar-storage.",
        "Exemplars are just extra labels on the series.",
        "a label would make every trace id a new series; an exemplar rides alongside "
        "without adding cardinality.",
        "the exemplar appears in OpenMetrics output and not in the classic text format.",
        _prove_exemplars,
    ),
    Card(
        "red_use",
        FUND,
        "에러율 / 지연 시간 (error rate / latency)",
        "What are RED and USE?",
        "RED for services: Rate, Errors, Duration. USE for resources: Utilisation, "
        "Saturation, Errors. Together they say whether users are served and whether "
        "machines are the cause.",
        "CPU and memory are enough to know the service is healthy.",
        "a service can fail with idle CPUs (a locked database): only RED sees users' pain.",
        "in the 14:20 error burst the error ratio is >10x noon's while rate and duration "
        "stay measurable.",
        _prove_red,
    ),
    Card(
        "slo",
        FUND,
        "목표 (objective)",
        "What are SLIs and SLOs?",
        "An SLI is a measured ratio of good events (requests not 5xx, or faster than a "
        "threshold) to all events; the SLO is the target for it over a window (99.9 % "
        "over 30 days).",
        "Availability is the share of time the server is up.",
        "users feel failed requests, not uptime: count good requests over all requests.",
        "the day's availability from PromQL matches the exact share from the request log.",
        _prove_slo,
    ),
    Card(
        "burn_rate",
        ALERT,
        "에러 예산 (error budget)",
        "What are error budgets and burn rates?",
        "The error budget is 1 - SLO (0.1 % of requests at 99.9 %). The burn rate is the "
        "error ratio divided by it: 1 spends the budget exactly over the SLO window, 14.4 "
        "spends 2 % of a 30-day budget in one hour (the usual page threshold).",
        "Alert when the error ratio is above the SLO.",
        "a tiny overshoot then pages as loudly as an outage: alert on burn rate over two "
        "windows instead.",
        "the burn rate exceeds 14.4 during the error burst and is below it at noon.",
        _prove_burn,
    ),
    Card(
        "federation_remote_write",
        ECO,
        "연합 (federation)",
        "Federation vs remote write?",
        "Federation: a Prometheus scrapes /federate of another, pulling selected (usually "
        "aggregated) series; good for hierarchies. Remote write streams every sample to "
        "long-term storage (Thanos, Mimir, VictoriaMetrics) as it is ingested.",
        "Federation is how you build long-term storage.",
        "federating everything copies a TSDB the slow way; long-term storage is remote write.",
        "/federate serves the up series with the external labels attached.",
        _prove_federation,
    ),
    Card(
        "ha_dedup",
        ARCH,
        "고가용성 (high availability)",
        "How do you run Prometheus highly available?",
        "Run two identical Prometheus servers scraping the same targets (distinguished by "
        "an external replica label). Both send the same alerts to Alertmanager, which "
        "deduplicates identical label sets; queries deduplicate in Thanos/Mimir.",
        "Cluster Prometheus like a database with replication.",
        "Prometheus has no clustering; HA is duplication plus deduplication downstream.",
        "the same alert posted twice becomes one alert in Alertmanager.",
        _prove_dedup,
    ),
    Card(
        "high_cardinality",
        ARCH,
        "카디널리티 진단 (cardinality diagnosis)",
        "How do you find what is using the series?",
        'topk(10, count by (__name__) ({__name__=~".+"})) ranks metrics by series '
        "count; the TSDB status page (/api/v1/status/tsdb) lists the same for the head "
        "block, plus the labels with most values.",
        "Look at the biggest metric in the dashboards.",
        "dashboards show what you query, not what is stored: ask the TSDB.",
        "the TSDB status's top metric is among topk(5) of the count-by-name query.",
        _prove_tsdb_status,
    ),
    Card(
        "hq_interpolation",
        PROMQL,
        "보간 오차 (interpolation error)",
        "How precise is histogram_quantile?",
        "It finds the bucket holding the quantile and interpolates linearly inside it, so "
        "the true value is only known to lie in that bucket; precision depends on the "
        "bucket layout near the quantile.",
        "histogram_quantile returns the exact p99.",
        "it assumes observations are spread evenly within the bucket.",
        "at noon the estimated thumbnail p99 differs from the exact p99 of the raw "
        "requests, and both lie in the same bucket.",
        _prove_interpolation,
    ),
    Card(
        "absent",
        ALERT,
        "누락 데이터 (missing data)",
        "How do you alert on missing data?",
        "absent(selector) returns 1 (with the selector's equality labels) when no series "
        "matches, and nothing otherwise; absent_over_time covers windows.",
        "Alert on up == 0.",
        "when the target is gone from discovery or never ran there is no up series at "
        "all, so up == 0 returns nothing and never fires.",
        'absent(up{job="nightly-report"}) returns one series; up == 0 returns none.',
        _prove_absent,
    ),
    Card(
        "scrape_interval_window",
        PROMQL,
        "수집 주기 (scrape interval)",
        "How large must a rate() window be?",
        "At least two samples must fall in the window, so at least 2x the scrape interval, "
        "in practice 4x (one failed scrape doesn't empty it). Grafana's $__rate_interval "
        "does this.",
        "Use the scrape interval as the window.",
        "a window of one interval often holds a single sample and rate returns nothing.",
        "on the 15 s history, rate(x[15s]) off the scrape grid is empty, rate(x[1m]) isn't.",
        _prove_window,
    ),
    Card(
        "latency_gap",
        INSTR,
        "대기 시간 (queueing)",
        "Why do my server p99s look great while users complain?",
        "The server's histogram starts its clock when the handler runs, after the request "
        "waited in the accept queue and the event loop. Under load the wait dominates: "
        "measure at the client (or the load balancer) too.",
        "The server histogram measures what users experience.",
        "it misses the queue in front of the handler.",
        "in the stored benchmark at 50 connections the client p99 is >3x the server "
        "histogram's p99, and the queue wait alone exceeds it.",
        _prove_latency_gap,
    ),
)

_BY_ID = {c.id: c for c in CARDS}


def card(card_id: str) -> Card:
    """Return the card ``card_id``; a clear error lists the known ids."""
    try:
        return _BY_ID[card_id]
    except KeyError:
        raise KeyError(f"no card {card_id!r}; cards: {', '.join(_BY_ID)}") from None


def prove(card_id: str, stack: Any) -> Proof:
    """Run a card's proof on ``stack`` and return what it measured."""
    c = card(card_id)
    numbers, holds = c.proof(stack)
    return Proof(c.id, c.claim, numbers, bool(holds))


# --- exports --------------------------------------------------------------------------------------

FIELDS = ("id", "domain", "korean", "question", "answer", "wrong", "why_wrong", "claim")


def to_csv(path: Path | str | None = None) -> str:
    """Return (and write to ``path``) every card as CSV."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    for c in CARDS:
        writer.writerow([getattr(c, f) for f in FIELDS])
    if path is not None:
        Path(path).write_text(out.getvalue(), encoding="utf-8")
    return out.getvalue()


def to_markdown(path: Path | str | None = None) -> str:
    """Return (and write to ``path``) every card as one Markdown document."""
    text = (
        "# Monitoring interview cards\n\n" + "\n\n---\n\n".join(c.markdown() for c in CARDS) + "\n"
    )
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


DECK_ID, MODEL_ID = 1_606_202_613, 1_606_202_614  # fixed: re-imports update the same deck


def to_anki(path: Path | str) -> Path:
    """Write every card to an Anki deck (.apkg) at ``path``; return the path."""
    import genanki

    model = genanki.Model(
        MODEL_ID,
        "VrewCraft interview card",
        fields=[{"name": f} for f in ("Question", "Answer", "Wrong", "Korean", "Domain", "Id")],
        templates=[
            {
                "name": "Card",
                "qfmt": "{{Question}}<br><small>{{Domain}} · {{Korean}}</small>",
                "afmt": "{{FrontSide}}<hr id=answer>{{Answer}}<br><br><i>Wrong:</i> {{Wrong}}",
            }
        ],
    )
    deck = genanki.Deck(DECK_ID, "VrewCraft monitoring interview")
    for c in CARDS:
        deck.add_note(
            genanki.Note(
                model=model,
                fields=[
                    c.question,
                    c.answer,
                    f"{c.wrong} — {c.why_wrong}",
                    c.korean,
                    c.domain,
                    c.id,
                ],
                guid=genanki.guid_for(c.id),
                tags=[c.domain.split()[0].lower()],
            )
        )
    path = Path(path)
    genanki.Package(deck).write_to_file(str(path))
    return path


def export(
    anki: Path | str | None = None,
    csv_path: Path | str | None = None,
    markdown: Path | str | None = None,
) -> list[Path]:
    """Write the cards to each file given; raise ValueError naming a bad path.

    >>> export(anki="cards.apkg", csv_path="cards.csv")            # doctest: +SKIP
    [PosixPath('cards.apkg'), PosixPath('cards.csv')]
    """
    targets = {"anki": anki, "csv": csv_path, "markdown": markdown}
    wanted = {k: Path(v) for k, v in targets.items() if v}
    if not wanted:
        raise ValueError(
            "say where to write the cards: --anki OUT.apkg, --csv OUT.csv or --markdown OUT.md"
        )
    suffixes = {"anki": ".apkg", "csv": ".csv", "markdown": ".md"}
    for kind, path in wanted.items():
        if not path.parent.is_dir():
            raise ValueError(
                f"{kind}: the folder {path.parent} doesn't exist; create it or pick another path"
            )
        if path.suffix != suffixes[kind]:
            raise ValueError(f"{kind}: {path} should end in {suffixes[kind]}")
    writers: dict[str, Callable[[Path], object]] = {
        "anki": to_anki,
        "csv": to_csv,
        "markdown": to_markdown,
    }
    for kind, path in wanted.items():
        writers[kind](path)
    return list(wanted.values())

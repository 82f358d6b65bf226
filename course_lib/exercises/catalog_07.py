"""Exercises of notebook 07_production_patterns (one ``register`` call each)."""

from __future__ import annotations

import re
from typing import Any

import yaml

from .core import ExerciseFailed, register
from .kinds import Predicate, PromQL

# --- 07.series_count: label values multiply ----------------------------------------------------

#: The histogram of the exercise: its label values and bucket bounds (without +Inf).
SERIES_LABELS = {"method": 2, "route": 6, "status_code": 4}
SERIES_BUCKETS = 8


def _series_count_reference() -> int:
    combos = 1
    for values in SERIES_LABELS.values():
        combos *= values
    return combos * (SERIES_BUCKETS + 3)  # the buckets, +Inf, _sum and _count


def _as_int(answer: Any) -> int | None:
    if isinstance(answer, bool):
        return None
    try:
        value = float(str(answer).replace(",", "").replace("_", "").strip())
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def _check_series_count(answer: Any, _stack: Any) -> bool | str:
    """Accept the number of series of the histogram, reject the usual miscounts with why."""
    mine = _as_int(answer)
    if mine is None:
        return f"answer with a whole number of series, e.g. answer = 100 (got {answer!r})."
    combos = _series_count_reference() // (SERIES_BUCKETS + 3)
    if mine == _series_count_reference():
        return True
    if mine == combos:
        return (
            f"{combos} is the number of label combinations; a histogram stores several series "
            "per combination: one per bucket, +Inf, _sum and _count."
        )
    if mine in (combos * SERIES_BUCKETS, combos * (SERIES_BUCKETS + 1)):
        return "close: besides the buckets (+Inf included), each combination has _sum and _count."
    if mine == sum(SERIES_LABELS.values()) * (SERIES_BUCKETS + 3) or mine == sum(
        SERIES_LABELS.values()
    ):
        return "label values multiply, they don't add: every combination is its own series."
    return "multiply the values of each label, then count the series per combination."


register(
    Predicate(
        "07.series_count",
        solution=_series_count_reference(),
        test=_check_series_count,
        expects="a whole number, e.g. answer = 100",
        nudge="every combination of label values is one series, and a histogram exposes "
        "several series per combination.",
    )
)

# --- 07.pooled_p99: the p99 of a fleet comes from summed buckets ---------------------------------

register(
    PromQL(
        "07.pooled_p99",
        "histogram_quantile(0.99, sum by (le) "
        '(rate(vrewcraft_http_request_duration_seconds_bucket{job="vrewcraft-replicas"}[1m])))',
        rel_tol=0.02,
        nudge="add up the replicas' bucket rates keeping only le, then take the quantile; "
        "never average per-replica quantiles.",
    )
)

# --- 07.recording_rule: name and write a recording rule -------------------------------------------

RULE_NAME = re.compile(r"^(?P<level>[a-z_]+):(?P<metric>[a-z_][a-z0-9_]*):(?P<ops>[a-z0-9_]+)$")
_RULE_REFERENCE = {
    "record": "job:vrewcraft_http_requests:rate5m",
    "expr": "sum by (job) (rate(vrewcraft_http_requests_total[5m]))",
}
_RULE_VALUES = PromQL(
    "07.recording_rule",
    _RULE_REFERENCE["expr"],
    # A scrape landing between the two evaluations moves a 5 m rate by well under 1%.
    rel_tol=0.01,
    nudge="sum by (job) of rate(…[5m]) of the request counter.",
)


def _as_rule(answer: Any) -> dict | str:
    """Return the rule as a dict, or why the answer is not one."""
    if isinstance(answer, str):
        try:
            answer = yaml.safe_load(answer)
        except yaml.YAMLError as exc:
            return f"that is not valid YAML: {exc}"
        if isinstance(answer, list) and len(answer) == 1:
            answer = answer[0]
    if not isinstance(answer, dict) or not {"record", "expr"} <= set(answer):
        return (
            "answer with the rule as a dict (or YAML) with two keys, e.g. "
            "{'record': 'level:metric:operations', 'expr': 'sum by (…) (…)'}."
        )
    return answer


def _check_recording_rule(answer: Any, stack: Any) -> bool | str:
    """Check the name's three parts against the expression, then the values on the stack."""
    rule = _as_rule(answer)
    if isinstance(rule, str):
        return rule
    name, expr = str(rule["record"]).strip(), str(rule["expr"]).strip()
    parts = RULE_NAME.match(name)
    if parts is None:
        return (
            f"{name!r} does not follow level:metric:operations, e.g. "
            "job:vrewcraft_http_requests:rate5m (two colons, lowercase)."
        )
    level, metric, ops = parts["level"], parts["metric"], parts["ops"]
    if metric.endswith("_total"):
        return "drop _total from the metric part: a rate of a counter is no longer a total."
    if metric != "vrewcraft_http_requests":
        return (
            f"the metric part should name what is measured: vrewcraft_http_requests, not {metric}."
        )
    if level != "job":
        return (
            f"the level part says which labels are left after aggregation: sum by (job) leaves "
            f"job, so the name starts with job:, not {level}:."
        )
    window = re.search(r"\[(\w+)\]", expr)
    if window and ops != f"rate{window.group(1)}":
        return (
            f"the operations part should say what was done, window included: "
            f"rate{window.group(1)} for rate(…[{window.group(1)}]), not {ops}."
        )
    if ops != "rate5m":
        return "the panel shows the rate over 5 minutes: the operations part is rate5m."
    try:
        _RULE_VALUES.evaluate(expr, stack)
    except ExerciseFailed as exc:
        return f"the name is right; the expression is not: {exc}"
    return True


register(
    Predicate(
        "07.recording_rule",
        solution=_RULE_REFERENCE,
        test=_check_recording_rule,
        expects="a rule such as {'record': 'level:metric:operations', 'expr': '…'}",
        nudge="level = the labels kept (by …), metric = the name without _total, "
        "operations = what was done, e.g. rate5m.",
    )
)

# --- 07.ha_relabel: make the HA pair's two copies one series -------------------------------------

_HA_LABELS = {"__name__": "up", "job": "vrewcraft-backend", "cluster": "lab", "replica": "a"}


def _check_ha_relabel(answer: Any, _stack: Any) -> bool | str:
    """Accept a write_relabel_configs entry that removes ``replica`` and nothing else."""
    if isinstance(answer, str):
        try:
            answer = yaml.safe_load(answer)
        except yaml.YAMLError as exc:
            return f"that is not valid YAML: {exc}"
    if isinstance(answer, list) and len(answer) == 1:
        answer = answer[0]
    if not isinstance(answer, dict):
        return "answer with one relabel rule as a dict, e.g. {'action': '…', 'regex': '…'}."
    action = str(answer.get("action", "replace")).lower()
    regex = str(answer.get("regex", "(.*)"))
    if action in ("drop", "keep"):
        return (
            f"action {action} decides about whole series: it would {action} the samples "
            "themselves. To remove one label and keep the sample, use labeldrop."
        )
    if action == "labelkeep":
        return (
            "labelkeep keeps only the labels the regex matches; here one label must go: labeldrop."
        )
    if action != "labeldrop":
        return f"action {action!r} rewrites labels; to remove the replica label use labeldrop."
    try:
        dropped = {k for k in _HA_LABELS if re.fullmatch(regex, k)}
    except re.error as exc:
        return f"the regex {regex!r} does not compile: {exc}"
    if "replica" not in dropped:
        return f"labeldrop matches label names: {regex!r} does not match the name replica."
    if dropped != {"replica"}:
        extra = ", ".join(sorted(dropped - {"replica"}))
        return f"{regex!r} also drops {extra}: anchor it to the name replica only."
    return True


register(
    Predicate(
        "07.ha_relabel",
        solution={"action": "labeldrop", "regex": "replica"},
        test=_check_ha_relabel,
        expects="one relabel rule, e.g. {'action': '…', 'regex': '…'}",
        nudge="external labels are added before write relabelling; remove the one label "
        "that differs between the pair.",
    )
)

"""The exercise kinds: PromQL, Number, MetricDefinition, AlertRule and Predicate.

Each kind is a dataclass; a catalog entry is one ``register(Kind(...))`` call:

>>> rate = "rate(prometheus_http_request_duration_seconds_bucket[1m])"
>>> p99 = PromQL("03.p99_query", f"histogram_quantile(0.99, sum by (le) ({rate}))",
...              nudge="Aggregate the buckets before asking for a quantile.")
>>> _ = stack.wait_for(p99.solution)  # a just-started stack needs two scrapes for a rate
>>> p99.check(f"histogram_quantile(0.99, {rate})", stack)
Traceback (most recent call last):
course_lib.exercises.core.ExerciseFailed: ❌ 03.p99_query: histogram_quantile over un-aggregated ...
>>> p99.check(f"histogram_quantile(0.99, sum without (handler, instance, job) ({rate}))", stack)
✅ 03.p99_query: right — 1 series, values match the reference
"""

from __future__ import annotations

import math
import numbers
import operator
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import promql_parser as pp
import yaml

from course_lib import explain, prom
from course_lib.lesson import describe_metric
from course_lib.promql_hints import alert_hints, hints

from .core import Exercise, ExerciseFailed, ExerciseSetupError, StackLike, prometheus_url

__all__ = ["AlertRule", "MetricDefinition", "Number", "Predicate", "PromQL"]

TimeArg = float | str | datetime | None

# Factor between a wrong and a right number, and the mix-up it usually means.
_RATIO_HINTS = (
    (60, "a per-minute vs per-second mix-up? rate() is already per second"),
    (100, "a percent vs ratio mix-up? ratios run from 0 to 1"),
    (300, "increase() over 5m is rate() × 300: did you mix them up?"),
    (1000, "a milliseconds vs seconds mix-up? Prometheus uses seconds"),
    (3600, "increase() over 1h is rate() × 3600: did you mix them up?"),
)


def _ratio_hint(mine: float, expected: float) -> str:
    """Return " — 60× too big: …" when two numbers differ by a telltale factor, else ""."""
    if not mine or not expected or math.isnan(mine) or math.isnan(expected):
        return ""
    ratio = abs(mine / expected)
    for factor, text in _RATIO_HINTS:
        if math.isclose(ratio, factor, rel_tol=0.05):
            return f" — {factor}× too big: {text}"
        if math.isclose(ratio, 1 / factor, rel_tol=0.05):
            return f" — {factor}× too small: {text}"
    return ""


def _fmt_labels(labels: Mapping[str, str]) -> str:
    """Format a label set the PromQL way: {job="x", route="/y"}."""
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _names(labels: Iterable[str]) -> str:
    """Join label names for a message: "instance, job"."""
    return ", ".join(sorted(labels))


# --- PromQL ---------------------------------------------------------------------------------


@dataclass
class PromQL(Exercise):
    """A PromQL answer, evaluated next to ``solution`` on the live Prometheus at the same instant.

    Options: ``match_on`` compares series by these labels only (extra labels
    in the answer are fine); ``require_labels`` must be on every answer
    series; ``rel_tol``/``abs_tol`` for values; ``at`` fixes the evaluation
    time (Unix seconds, RFC 3339 or datetime) for the fixed history;
    ``hints_fail`` fails an answer whose numbers match but that trips a
    PromQL hint the reference doesn't; ``structure`` is what the task asks of
    the query's shape (a function returning what is wrong, or None), for
    tasks whose numbers can't tell a right answer from a wrong one (``irate``
    and ``rate`` agree on a steady counter). Labels the reference doesn't have
    the target's ``job`` and ``instance`` may stay when they don't split a
    reference series in several, and labels that told no series apart may be
    aggregated away.

    >>> ex = PromQL("01.up_query", 'up{job="prometheus"}', require_labels=["job"])
    >>> ex.check('up{job="prometheus"}', stack)
    ✅ 01.up_query: right — 1 series, values match the reference
    """

    kind: ClassVar[str] = "promql"
    what: ClassVar[str] = "a PromQL query string, e.g. answer = 'up'"

    solution: str = ""
    match_on: Sequence[str] | None = None
    require_labels: Sequence[str] = ()
    rel_tol: float = 1e-6
    abs_tol: float = 1e-9
    at: TimeArg = None
    scrape_interval: float | None = None
    metric_types: Mapping[str, str] | None = None
    for_alert: bool = False
    hints_fail: bool = True
    allow_empty: bool = False
    structure: Callable[[str], str | None] | None = None

    def reference(self, stack: StackLike | str | None) -> str:
        """Return the reference answer."""
        return self.solution

    def evaluate(self, answer: Any, stack: StackLike | str | None) -> str:
        """Check ``answer``; return a success message or raise ExerciseFailed."""
        if not isinstance(answer, str):
            raise self.fail(
                f"write the query as a string, e.g. answer = 'up' (got a {type(answer).__name__})."
            )
        query = answer.strip()
        url = prometheus_url(stack)
        scrape = self.scrape_interval or _scrape_interval(url)
        found = hints(query, scrape, metric_types=self.metric_types, for_alert=self.for_alert)
        if found and found[0].code == "syntax-error":
            raise ExerciseFailed(found[0].message)
        # A hint the reference answer trips too is no mistake in this exercise.
        expected_codes = {
            h.code
            for h in hints(
                self.solution, scrape, metric_types=self.metric_types, for_alert=self.for_alert
            )
        }
        new = [h for h in found if h.code not in expected_codes]
        shape = self.structure(query) if self.structure else None
        at = _eval_time(self.at)
        ref_type, ref = self._instant(url, self.solution, at, reference=True)
        if ref_type == "matrix":
            raise ExerciseSetupError(f"{self.id}: the reference query returns a range vector.")
        expected = _samples(ref_type, ref)
        if not expected and not self.allow_empty:
            raise ExerciseSetupError(
                f"{self.id}: the reference query returns no data yet, so nothing can be "
                f"compared — is the stack scraping (and traffic running)? Wait half a minute "
                f"and re-run this cell."
            )
        try:
            my_type, mine = self._instant(url, query, at)
        except ExerciseFailed as exc:
            raise ExerciseFailed(f"{exc}" + (f" {new[0].message}" if new else "")) from None
        problem = _result_type_problem(my_type, ref_type) or _compare(
            _samples(my_type, mine),
            expected,
            self.match_on,
            self.require_labels,
            self.rel_tol,
            self.abs_tol,
        )
        if problem:
            where = explain.feedback(url, query, self.solution, at, self.rel_tol, self.abs_tol)
            if new or shape:
                first = new[0].message if new else shape
                raise ExerciseFailed(f"{first}\n(Result check: {problem}.){where}")
            raise self.fail(problem + "." + where)
        if shape:  # right numbers, but not what the task asks for
            raise ExerciseFailed(f"Your numbers match right now, but: {shape}")
        if new and self.hints_fail:
            raise ExerciseFailed(f"Your numbers match right now, but: {new[0].message}")
        return f"right — {len(expected)} series, values match the reference"

    def _instant(self, url: str, query: str, at: float, reference: bool = False):
        """Run one instant query; a rejected answer fails, a rejected reference is a bug."""
        try:
            return _instant(url, query, at)
        except prom.PromQLError as exc:
            if reference:
                raise ExerciseSetupError(
                    f"{self.id}: Prometheus rejects the reference query {query!r}: {exc.detail}"
                ) from None
            # Prometheus' own words alone: the learner knows which query they wrote.
            raise ExerciseFailed(f"Prometheus rejected your query: {exc.detail}.") from None


def _instant(url: str, query: str, at: float) -> tuple[str, Any]:
    """Evaluate ``query`` at ``at``; an unreachable Prometheus is a setup error, not a failure."""
    try:
        return prom.query_raw(url, query, at)
    except prom.PrometheusUnreachable as exc:
        raise ExerciseSetupError(str(exc)) from None


def _eval_time(at: TimeArg) -> float:
    """Return the evaluation time as Unix seconds (None: now)."""
    return time.time() if at is None else prom.to_datetime(at).timestamp()


#: The scrape interval assumed when Prometheus' configuration can't be read.
DEFAULT_SCRAPE_INTERVAL = 5.0


def _scrape_interval(url: str) -> float:
    """Return Prometheus' global scrape interval; the default when it can't be read."""
    try:
        return prom.scrape_interval(url)
    except prom.PromQLError:
        return DEFAULT_SCRAPE_INTERVAL


def _samples(result_type: str, result: Any) -> list[tuple[dict[str, str], float]]:
    """Turn an instant-query result into (labels without __name__, value) pairs."""
    if result_type == "scalar":
        return [({}, float(result[1]))]
    if result_type == "vector":
        return [
            (
                {k: v for k, v in s["metric"].items() if k != "__name__"},
                float(s["value"][1]),
            )
            for s in result
        ]
    return []


def _same_value(a: float, b: float, rel_tol: float, abs_tol: float) -> bool:
    """Compare two sample values with tolerance, treating NaN as equal to NaN."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)


#: Labels Prometheus attaches to every series of a target. Keeping them (sum by (job), sum
#: without (method, status_code)) changes no number, so an answer may keep them.
TARGET_LABELS = frozenset({"job", "instance"})


def _unique_on(samples: list, labels: Sequence[str]) -> bool:
    """Tell whether ``labels`` alone still tell every series of ``samples`` apart."""
    keys = [tuple(lb.get(k, "") for k in labels) for lb, _ in samples]
    return len(set(keys)) == len(keys)


def _result_type_problem(mine: str, expected: str) -> str | None:
    """Explain a result-type mismatch that value comparison can't (range vector, string)."""
    if mine == "matrix":
        return (
            "your query returns a range vector (a window of raw samples per series); "
            "wrap it in a function such as rate(…) to get one value per series"
        )
    if mine == "string" and expected != "string":
        return "your query returns a string literal, not numbers"
    return None


def _compare(
    mine: list,
    expected: list,
    match_on: Sequence[str] | None,
    require: Sequence[str],
    rel_tol: float,
    abs_tol: float,
) -> str | None:
    """Return what differs between two instant results (most telling first), or None."""
    mine_names = {k for labels, _ in mine for k in labels}
    exp_names = {k for labels, _ in expected for k in labels}
    for label in [*require, *(match_on or [])]:
        if mine and any(label not in labels for labels, _ in mine):
            return f"label {label} is missing from your result — keep it, e.g. sum by ({label}) (…)"
    label_note = ""
    if match_on is None:
        missing, extra = exp_names - mine_names, mine_names - exp_names
        common = sorted(exp_names & mine_names)
        if missing and mine and _unique_on(mine, common) and _unique_on(expected, common):
            # Aggregated away labels that told nothing apart (job, instance of one target).
            match_on, missing, extra = common, set(), set()
        if missing and mine:
            label_note = (
                f"label {_names(missing)} missing from your result — keep it with "
                f"by ({_names(missing)})"
            )
        elif extra:
            if extra <= TARGET_LABELS and _unique_on(mine, sorted(exp_names)):
                match_on = sorted(exp_names)  # the target's labels kept: still the same series
            else:
                label_note = (
                    f"your result has labels the expected one doesn't ({_names(extra)}) "
                    f"— aggregate them away, e.g. sum without ({_names(extra)}) (…)"
                )
    if match_on is not None:
        seen: set[frozenset] = set()
        for labels, _ in mine:
            k = frozenset({lb: labels.get(lb, "") for lb in match_on}.items())
            if k in seen:
                return (
                    f"several of your series share {_fmt_labels(dict(k))} — aggregate "
                    f"by ({_names(match_on)}) or narrow it with a label matcher"
                )
            seen.add(k)
    if len(mine) != len(expected):
        head = f"your query returns {len(mine)} series, the expected one returns {len(expected)}"
        if not mine:
            tail = "check the metric name and label matchers (try the query in the Prometheus UI)"
        elif label_note:
            tail = label_note
        elif len(mine) > len(expected):
            tail = "aggregate (sum/avg … by the labels you need) or narrow it with a matcher"
        else:
            tail = "your label matchers or aggregation are too narrow"
        return f"{head} — {tail}"
    if label_note:
        return label_note

    def key(labels: dict[str, str]) -> frozenset:
        """Return the identity of a series for matching: its labels (or the match_on ones)."""
        kept = labels if match_on is None else {k: labels.get(k, "") for k in match_on}
        return frozenset(kept.items())

    mine_by_key: dict[frozenset, float] = {}
    for labels, value in mine:
        mine_by_key[key(labels)] = value
    diffs = []
    for labels, value in expected:
        k = key(labels)
        if k not in mine_by_key:
            yours = next(iter(set(mine_by_key) - {key(lb) for lb, _ in expected}), None)
            also = f" (you return {_fmt_labels(dict(yours))} instead)" if yours else ""
            return f"the expected series {_fmt_labels(dict(k))} is not in your result{also}"
        if not _same_value(mine_by_key[k], value, rel_tol, abs_tol):
            diffs.append((dict(k), mine_by_key[k], value))
    if diffs:
        labels, got, want = diffs[0]
        where = f" for {_fmt_labels(labels)}" if labels else ""
        more = f" (and {len(diffs) - 1} more series)" if len(diffs) > 1 else ""
        return (
            f"values differ{where}: you got {got:.6g}, expected {want:.6g}"
            f"{_ratio_hint(got, want)}{more}"
        )
    return None


# --- Number ---------------------------------------------------------------------------------


@dataclass
class Number(Exercise):
    """A number the learner reads off the stack, checked against a reference query's value.

    Give ``query`` (must return one value) or a fixed ``value``. Live numbers
    drift between the learner's query and the check, hence ``rel_tol``.

    >>> ex = Number("01.scrape_interval", value=2.0, rel_tol=0)
    >>> ex.check(2, None)
    ✅ 01.scrape_interval: right — 2 (reference 2)
    """

    kind: ClassVar[str] = "number"
    what: ClassVar[str] = "a number, e.g. answer = 0.25"

    query: str | None = None
    value: float | None = None
    rel_tol: float = 0.05
    abs_tol: float = 0.0
    at: TimeArg = None

    def reference(self, stack: StackLike | str | None) -> float:
        """Return the reference answer."""
        if self.query is None:
            if self.value is None:
                raise ExerciseSetupError(f"{self.id}: give Number a query or a value.")
            return float(self.value)
        url = prometheus_url(stack)
        try:
            rtype, result = _instant(url, self.query, _eval_time(self.at))
        except prom.PromQLError as exc:
            raise ExerciseSetupError(f"{self.id}: reference query rejected: {exc.detail}") from None
        values = _samples(rtype, result)
        if len(values) != 1:
            raise ExerciseSetupError(
                f"{self.id}: the reference query returns {len(values)} values, not one — "
                f"is the stack up and scraping? Wait half a minute and re-run."
            )
        return values[0][1]

    def evaluate(self, answer: Any, stack: StackLike | str | None) -> str:
        """Check ``answer``; return a success message or raise ExerciseFailed."""
        mine = _as_number(answer)
        want = self.reference(stack)
        if _same_value(mine, want, self.rel_tol, self.abs_tol):
            return f"right — {mine:g} (reference {want:.6g})"
        direction = "too high" if mine > want else "too low"
        slack = f"{self.rel_tol:.0%}" if self.rel_tol else "the tolerance"
        raise self.fail(
            f"{mine:g} is {direction} (more than {slack} off the value the stack "
            f"gives right now){_ratio_hint(mine, want)}."
        )


def _as_number(answer: Any) -> float:
    """Return ``answer`` as a float, or fail saying how to write a number."""
    if isinstance(answer, bool):
        raise ExerciseFailed("write a number, not True/False.")
    if isinstance(answer, numbers.Real):
        return float(answer)
    if isinstance(answer, str):
        try:
            return float(answer.strip())
        except ValueError:
            raise ExerciseFailed(
                f"write the number itself, e.g. answer = 12.5 — {answer!r} is not a number."
            ) from None
    if hasattr(answer, "iloc"):
        raise ExerciseFailed(
            "that is a pandas table; pick the number out of it, e.g. answer = df['value'].iloc[0]."
        )
    raise ExerciseFailed(f"write a number, e.g. answer = 12.5 (got a {type(answer).__name__}).")


# --- prometheus_client metric definitions ---------------------------------------------------

# Labels whose values are unbounded: each value becomes a new time series.
_HIGH_CARDINALITY = {
    "path",
    "url",
    "user",
    "user_id",
    "id",
    "video_id",
    "request_id",
    "ip",
    "email",
    "session",
    "session_id",
    "filename",
}
_TYPE_ADVICE = {
    frozenset({"counter", "gauge"}): "a value that only goes up (requests served, errors) is "
    "a Counter; one that goes up and down is a Gauge",
    frozenset({"histogram", "summary"}): "a Summary's quantiles can't be aggregated across "
    "instances; a Histogram's buckets can",
}


@dataclass
class MetricDefinition(Exercise):
    """A ``prometheus_client`` metric object checked against a spec: type, name, labels, buckets.

    ``build`` makes the reference metric in a given registry (for ``solution()``).
    The answer is exposed through a throwaway registry and parsed back, so the
    name and type are the ones Prometheus would scrape.

    >>> from prometheus_client import CollectorRegistry, Histogram
    >>> ex = MetricDefinition("02.demo", type="histogram", name="demo_seconds", buckets=[.1, 1])
    >>> ex.check(Histogram("demo_seconds", "Demo.", buckets=[.1, 1], registry=CollectorRegistry()))
    ✅ 02.demo: right — histogram demo_seconds, labels: none, buckets: 0.1 1
    """

    kind: ClassVar[str] = "metric"
    what: ClassVar[str] = (
        "a prometheus_client metric, e.g. answer = Counter('…_total', 'Help "
        "text.', ['label'], registry=scratch)"
    )

    type: str = "counter"
    name: str = ""
    labelnames: Sequence[str] = ()
    buckets: Sequence[float] | None = None
    build: Callable[[Any], Any] | None = None

    def reference(self, stack: StackLike | str | None) -> Any:
        """Return the reference answer."""
        from prometheus_client import CollectorRegistry

        if self.build is None:
            raise ExerciseSetupError(f"{self.id}: no reference metric (build=) defined.")
        return self.build(CollectorRegistry())

    def evaluate(self, answer: Any, stack: StackLike | str | None) -> str:
        """Check ``answer``; return a success message or raise ExerciseFailed."""
        from prometheus_client.metrics import MetricWrapperBase

        if not isinstance(answer, MetricWrapperBase):
            raise self.fail(
                f"the answer should be a prometheus_client metric object such as "
                f"{self.type.capitalize()}(…), not a {type(answer).__name__}."
            )
        declared = describe_metric(answer)
        if declared.is_child:
            raise ExerciseFailed(
                "that is one labelled child (from .labels(…)); answer with the "
                "metric itself, the object Counter/Histogram(…) returned."
            )
        exposed_name, exposed_type = _exposed(answer)
        self._check_type(exposed_type)
        self._check_name(exposed_name)
        if not declared.help:
            raise ExerciseFailed(
                "give the metric a help text (the second argument): it becomes "
                "the # HELP line that tells others what it measures."
            )
        labels = declared.labels
        self._check_labels(labels)
        bucket_text = ""
        if self.buckets is not None:
            bounds = list(declared.buckets or ())
            self._check_buckets(bounds)
            bucket_text = ", buckets: " + " ".join(f"{b:g}" for b in bounds)
        return (
            f"right — {exposed_type} {self.name}, labels: "
            f"{', '.join(labels) or 'none'}{bucket_text}"
        )

    def _check_type(self, mine: str) -> None:
        """Fail when the metric type differs, saying why the right type fits."""
        if mine == self.type:
            return
        advice = _TYPE_ADVICE.get(frozenset({mine, self.type}), "")
        raise ExerciseFailed(
            f"you defined a {mine}, the exercise needs a {self.type}"
            + (f": {advice}." if advice else ".")
        )

    def _check_name(self, mine: str) -> None:
        """Fail when the exposed name differs (prefix, units, or just the name)."""
        want = self.name
        if self.type == "counter":
            # prometheus_client adds _total itself, so x and x_total expose the same counter.
            mine, want = mine.removesuffix("_total"), want.removesuffix("_total")
        if mine == want:
            return
        prefix = want.split("_", 1)[0] + "_"
        if want.startswith(prefix) and not mine.startswith(prefix) and want.endswith(mine):
            raise ExerciseFailed(
                f"start the name with the {prefix} prefix, like every metric "
                f"of this service: {self.name}."
            )
        if want.endswith("_seconds") and any(u in mine for u in ("_ms", "millisecond")):
            raise ExerciseFailed(
                f"Prometheus names use base units: seconds, not milliseconds — call it {self.name}."
            )
        raise ExerciseFailed(
            f"the metric should be called {self.name}; yours is exposed as {mine}."
        )

    def _check_labels(self, mine: tuple[str, ...]) -> None:
        """Fail on missing, extra or unbounded label names."""
        missing = set(self.labelnames) - set(mine)
        extra = set(mine) - set(self.labelnames)
        risky = extra & _HIGH_CARDINALITY
        if risky:
            raise ExerciseFailed(
                f"a label like {_names(risky)} has unbounded values, and "
                f"every value becomes its own time series — drop it "
                f"(label routes by their template instead)."
            )
        if missing:
            raise ExerciseFailed(
                f"label {_names(missing)} is missing: pass labelnames {list(self.labelnames)}."
            )
        if extra:
            raise ExerciseFailed(
                f"label {_names(extra)} is not part of this metric; the "
                f"labels are {list(self.labelnames) or 'none'}."
            )

    def _check_buckets(self, mine: list[float]) -> None:
        """Fail when the finite bucket boundaries differ from the spec."""
        want = sorted(float(b) for b in self.buckets or [])
        if len(mine) == len(want) and all(
            math.isclose(a, b) for a, b in zip(mine, want, strict=True)
        ):
            return
        from prometheus_client.metrics import Histogram

        if tuple(mine) == tuple(b for b in Histogram.DEFAULT_BUCKETS if b != math.inf):
            raise ExerciseFailed(
                "these are prometheus_client's default buckets; pass "
                "buckets=[…] with the boundaries the exercise gives."
            )
        if len(mine) == len(want) and all(
            math.isclose(a, b * 1000) for a, b in zip(mine, want, strict=True)
        ):
            raise ExerciseFailed(
                "the buckets look like milliseconds; Prometheus uses seconds (0.05, not 50)."
            )
        missing = [f"{b:g}" for b in want if not any(math.isclose(b, m) for m in mine)]
        extra = [f"{b:g}" for b in mine if not any(math.isclose(b, w) for w in want)]
        parts = ([f"missing {' '.join(missing)}"] if missing else []) + (
            [f"extra {' '.join(extra)}"] if extra else []
        )
        raise ExerciseFailed(f"the bucket boundaries differ: {'; '.join(parts)}.")


def _exposed(metric: Any) -> tuple[str, str]:
    """Return (family name, type) as the metric appears in /metrics exposition text."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    scratch = CollectorRegistry(auto_describe=False)
    scratch.register(metric)
    families = list(text_string_to_metric_families(generate_latest(scratch).decode()))
    if not families:
        raise ExerciseFailed("the metric exposes nothing at all.")
    return families[0].name, families[0].type


# --- alerting rules -------------------------------------------------------------------------

_COMPARISONS = {">": "<", "<": ">", ">=": "<=", "<=": ">=", "==": "==", "!=": "!="}


@dataclass
class AlertRule(Exercise):
    """A YAML alerting rule, validated by the real ``promtool``, then held to a spec.

    The answer may be one rule (``alert:``/``expr:``/``for:``), a list of rules,
    a group or a whole rules file. ``threshold``/``op`` are the expr's top-level
    comparison; ``for_`` and ``labels`` are compared as written in the rule;
    ``promtool_tests`` is an optional ``promtool test rules`` file body
    (``rule_files`` is filled in) that the answer, stripped of its annotations, must pass.

    >>> ex = AlertRule("04.demo", "alert: Demo\\nexpr: up == 0\\nfor: 1m", alert="Demo",
    ...                threshold=0, op="==", for_="1m")
    >>> ex.check("alert: Demo\\nexpr: up == 0\\nfor: 1m").ok
    True
    """

    kind: ClassVar[str] = "alert_rule"
    what: ClassVar[str] = (
        "a YAML alerting rule as a string, e.g. answer = '''alert: …\\nexpr: …\\nfor: 5m'''"
    )

    solution: str = ""
    alert: str = ""
    threshold: float | None = None
    op: str | None = None
    for_: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    promtool_tests: str | None = None
    scrape_interval: float = 5.0

    def reference(self, stack: StackLike | str | None) -> str:
        """Return the reference answer."""
        return self.solution

    def evaluate(self, answer: Any, stack: StackLike | str | None) -> str:
        """Check ``answer``; return a success message or raise ExerciseFailed."""
        if not isinstance(answer, str):
            raise self.fail("write the rule as a YAML string (triple quotes keep the indentation).")
        rules_file = _as_rules_file(answer)
        with tempfile.TemporaryDirectory(prefix="course-rule-") as tmp:
            path = Path(tmp) / "rules.yml"
            path.write_text(yaml.safe_dump(rules_file, sort_keys=False))
            ok, output = _promtool(["check", "rules", str(path)], tmp)
            if not ok:
                raise ExerciseFailed(f"promtool check rules rejects it:\n{output}")
            rule = self._find_rule(rules_file)
            self._check_spec(rule)
            if self.promtool_tests:
                tests = yaml.safe_load(self.promtool_tests)
                tests["rule_files"] = ["tested.yml"]
                # The rule tests are about when and with which labels an alert fires;
                # annotations (free text) are not part of the spec, so they are dropped.
                (Path(tmp) / "tested.yml").write_text(
                    yaml.safe_dump(_without_annotations(rules_file), sort_keys=False)
                )
                (Path(tmp) / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
                ok, output = _promtool(["test", "rules", "tests.yml"], tmp)
                if not ok:
                    raise ExerciseFailed(
                        f"promtool test rules: your rule does not fire as expected:\n{output}"
                    )
        tested = " and passes the rule tests" if self.promtool_tests else ""
        return f"right — promtool accepts {self.alert}{tested}"

    def _find_rule(self, rules_file: dict) -> dict:
        """Return the rule named ``self.alert`` or fail listing the names found."""
        rules = [r for g in rules_file.get("groups", []) for r in g.get("rules", []) or []]
        for rule in rules:
            if rule.get("alert") == self.alert:
                return rule
        names = [r.get("alert") or r.get("record") for r in rules]
        close = [n for n in names if n and n.lower() == self.alert.lower()]
        if close:
            raise ExerciseFailed(
                f"alert names are case-sensitive: call it {self.alert}, not {close[0]}."
            )
        raise ExerciseFailed(
            f"no alerting rule named {self.alert} (found: {', '.join(map(str, names)) or 'none'})."
        )

    def _check_spec(self, rule: dict) -> None:
        """Hold the rule to the spec: for, threshold, labels, then PromQL hints."""
        expr = str(rule.get("expr", ""))
        if self.for_ is not None:
            self._check_for(rule.get("for"))
        if self.threshold is not None or self.op is not None:
            self._check_threshold(expr)
        for key, want in self.labels.items():
            got = (rule.get("labels") or {}).get(key)
            if got is None:
                raise ExerciseFailed(
                    f"add labels: {{{key}: {want}}} — routing in Alertmanager matches on it."
                )
            if str(got) != str(want):
                raise ExerciseFailed(
                    f"label {key} is {got!r}; this alert should be {key}={want!r}."
                )
        expected_codes = {
            h.code for h in alert_hints(_expr_of(self.solution, self.alert), self.scrape_interval)
        }
        for hint in alert_hints(expr, self.scrape_interval):
            if hint.code not in expected_codes:
                raise ExerciseFailed(hint.message)

    def _check_for(self, got: Any) -> None:
        """Fail when ``for:`` is missing or not the expected duration."""
        if got is None:
            raise ExerciseFailed(
                f"add for: {self.for_} — without it the alert fires on the "
                f"first bad evaluation, even for a one-off blip."
            )
        if prom.duration_seconds(str(got)) != prom.duration_seconds(str(self.for_)):
            raise ExerciseFailed(
                f"for: {got} — the condition should hold for {self.for_} before the alert fires."
            )

    def _check_threshold(self, expr: str) -> None:
        """Fail when the top-level comparison has the wrong operator or number."""
        found = _comparison(pp.parse(expr))
        if found is None:
            raise ExerciseFailed(
                "the expr should end in a comparison with a number, e.g. "
                "… > 0.2, so it only returns series while the condition "
                "holds."
            )
        op, value = found
        if self.op is not None and op != self.op:
            raise ExerciseFailed(f"the comparison is {op}; this alert needs {self.op}.")
        if self.threshold is not None and not math.isclose(
            value, self.threshold, rel_tol=1e-9, abs_tol=1e-12
        ):
            raise ExerciseFailed(
                f"the threshold is {value:g}, it should be "
                f"{self.threshold:g}{_ratio_hint(value, self.threshold)}."
            )


def _as_rules_file(text: str) -> dict:
    """Parse a YAML rule, list of rules, group or rules file into a rules-file mapping."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ExerciseFailed(f"that is not valid YAML: {exc}") from None
    if isinstance(data, dict) and "groups" in data:
        return data
    if isinstance(data, dict) and "rules" in data:
        return {"groups": [{"name": "exercise", **data}]}
    if isinstance(data, dict) and ("alert" in data or "record" in data):
        data = [data]
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return {"groups": [{"name": "exercise", "rules": data}]}
    raise ExerciseFailed(
        "expected an alerting rule (alert:, expr:, for:, labels:) or a rules file with groups:."
    )


def _without_annotations(rules_file: dict) -> dict:
    """Return a copy of a rules file whose rules carry no annotations."""
    return {
        **rules_file,
        "groups": [
            {**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
            for g in rules_file.get("groups", [])
        ],
    }


def _expr_of(rule_text: str, alert: str) -> str:
    """Return the expr of alert ``alert`` in a reference rule text ("" if absent)."""
    rules_file = _as_rules_file(rule_text)
    for group in rules_file.get("groups", []):
        for rule in group.get("rules", []) or []:
            if rule.get("alert") == alert:
                return str(rule.get("expr", ""))
    return ""


def _promtool(args: list[str], cwd: str) -> tuple[bool, str]:
    """Run promtool; return (success, output with the temp directory stripped)."""
    try:
        proc = subprocess.run(
            ["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
        )
    except FileNotFoundError:
        raise ExerciseSetupError(
            "promtool is not installed (it ships with Prometheus: "
            "apt install prometheus, or brew install prometheus)."
        ) from None
    output = (proc.stdout + proc.stderr).replace(cwd + "/", "").strip()
    return proc.returncode == 0, output


def _constant(node) -> float | None:
    """Return the value of a constant expression (0.2, 1024 * 1024, -(1)), else None."""
    if isinstance(node, pp.NumberLiteral):
        return node.val
    if isinstance(node, pp.ParenExpr):
        return _constant(node.expr)
    if isinstance(node, pp.UnaryExpr):
        inner = _constant(node.expr)
        return None if inner is None else -inner
    if isinstance(node, pp.BinaryExpr):
        a, b = _constant(node.lhs), _constant(node.rhs)
        ops: dict[str, Callable[[float, float], float]] = {
            "+": operator.add,
            "-": operator.sub,
            "*": operator.mul,
            "/": lambda x, y: x / y if y else math.nan,
            "^": operator.pow,
        }
        if a is not None and b is not None and str(node.op) in ops:
            return ops[str(node.op)](a, b)
    return None


def _comparison(node) -> tuple[str, float] | None:
    """Return (operator, threshold) of an alert expr's top-level comparison, if any."""
    while isinstance(node, pp.ParenExpr):
        node = node.expr
    if not isinstance(node, pp.BinaryExpr):
        return None
    op = str(node.op)
    if op in _COMPARISONS:
        if (value := _constant(node.rhs)) is not None:
            return op, value
        if (value := _constant(node.lhs)) is not None:
            return _COMPARISONS[op], value
    if op in ("and", "unless", "or"):
        return _comparison(node.lhs)
    return None


# --- free-form ------------------------------------------------------------------------------


@dataclass
class Predicate(Exercise):
    """An oddball answer checked by a function ``test(answer, stack)``.

    ``test`` returns True/None to accept, False to reject with the nudge, or a
    string explaining what is wrong (it may also raise ExerciseFailed).
    ``solution_from_stack`` computes the reference when it depends on the stack.

    >>> ex = Predicate("01.pull_or_push", solution="pull",
    ...                test=lambda a, s: a == "pull" or "Who opens the connection?")
    >>> ex.check("pull").ok
    True
    """

    kind: ClassVar[str] = "predicate"

    solution: Any = None
    test: Callable[[Any, Any], bool | str | None] | None = None
    solution_from_stack: Callable[[Any], Any] | None = None
    expects: str = "your answer"

    @property
    # The other kinds' `what` is a ClassVar; a Predicate's depends on the instance, and
    # mypy has no way to say "a property here, a class attribute there".
    def what(self) -> str:  # type: ignore[override]
        """Return what to write, as given by ``expects``."""
        return self.expects

    def reference(self, stack: StackLike | str | None) -> Any:
        """Return the reference answer."""
        if self.solution_from_stack is not None:
            return self.solution_from_stack(stack)
        return self.solution

    def evaluate(self, answer: Any, stack: StackLike | str | None) -> str:
        """Check ``answer``; return a success message or raise ExerciseFailed."""
        if self.test is None:
            raise ExerciseSetupError(f"{self.id}: Predicate needs test=.")
        verdict = self.test(answer, stack)
        if verdict is None or verdict is True:
            return "right"
        if verdict is False:
            raise self.fail("not quite.")
        raise ExerciseFailed(str(verdict))

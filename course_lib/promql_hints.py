"""Spot the classic PromQL mistakes in a query and explain each in one line.

The query is parsed with ``promql-parser`` (the Rust PromQL parser) and the AST
is walked; nothing here pattern-matches the query text.

>>> [h.code for h in hints("histogram_quantile(0.99, rate(x_bucket[5m]))")]
['quantile-not-aggregated']
>>> hints("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))")
[]
>>> print(hints("rate(vrewcraft_http_requests_total[5s])")[0].message)  # doctest: +ELLIPSIS
[5s] spans only 1 scrape(s) at a 5s scrape interval ...

Metric types come from naming conventions (``_total``, ``_count``, ``_sum`` and
``_bucket`` are counters, anything else is a gauge) unless ``metric_types``
says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import promql_parser as pp

__all__ = ["CODES", "Hint", "hints", "alert_hints", "metric_kind"]

#: Every hint code, most specific first; ``hints()`` returns hints in this order.
CODES: dict[str, str] = {
    "syntax-error": "the query does not parse",
    "quantile-phi-out-of-range": "histogram_quantile's first argument is not in [0, 1]",
    "quantile-not-buckets": "histogram_quantile is fed something other than _bucket series",
    "quantile-drops-le": "histogram_quantile is fed an aggregation that dropped le",
    "quantile-not-aggregated": "histogram_quantile over buckets not aggregated by (le)",
    "bucket-without-le": "_bucket series aggregated without keeping le",
    "rate-of-sum": "rate/irate/increase applied to an aggregation (subquery)",
    "rate-of-gauge": "rate/irate/increase applied to a gauge",
    "delta-of-counter": "delta/deriv applied to a counter",
    "counter-without-rate": "a counter used raw, without rate/increase",
    "aggregated-quantile": "quantiles summed or averaged",
    "range-too-short": "range window shorter than about four scrape intervals",
    "irate-in-alert": "irate in an alerting expression",
}

COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
# Functions that need a counter's range; a bare counter inside their subquery is fine.
COUNTER_RANGE_FUNCS = frozenset({"rate", "irate", "increase", "resets"})
RATE_FUNCS = frozenset({"rate", "irate", "increase"})
GAUGE_RANGE_FUNCS = frozenset({"delta", "deriv", "idelta"})
# Asking "which series exist / when" of a counter is fine without rate.
SERIES_ONLY_FUNCS = frozenset({"absent", "absent_over_time", "present_over_time", "timestamp"})
SERIES_ONLY_AGGS = frozenset({"count", "group", "count_values"})
# These aggregations return input series unchanged (just fewer of them).
SELECTING_AGGS = frozenset({"topk", "bottomk", "limitk", "limit_ratio"})
NO_LABEL_FUNCS = frozenset({"absent", "absent_over_time", "vector", "scalar", "time"})
MIN_SCRAPES_PER_WINDOW = 4


@dataclass(frozen=True)
class Hint:
    """One recognised mistake: a stable ``code``, a one-line ``message`` and the sub-query.

    >>> Hint("range-too-short", "window too short", "rate(x_total[2s])").code
    'range-too-short'
    """

    code: str
    message: str
    expr: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.message


def metric_kind(name: str | None, metric_types: Mapping[str, str] | None = None) -> str | None:
    """Return "counter", "gauge" or None (unknown) for a metric name.

    >>> metric_kind("vrewcraft_http_requests_total"), metric_kind("vrewcraft_websocket_connections")
    ('counter', 'gauge')
    >>> metric_kind("jobs_done", {"jobs_done": "counter"})
    'counter'
    """
    if not name:
        return None
    types = {k: v.lower() for k, v in (metric_types or {}).items()}
    if name in types:
        declared = types[name]
        return (
            "gauge"
            if declared in ("gauge", "untyped", "unknown", "info", "stateset")
            else "counter"
        )
    for suffix in COUNTER_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and (
            types.get(base) in ("histogram", "summary", "counter") or base + "_total" in types
        ):
            return "counter"
    if name.endswith(COUNTER_SUFFIXES):
        return "counter"
    return "gauge"


def hints(
    query: str,
    scrape_interval: float = 5.0,
    *,
    for_alert: bool = False,
    metric_types: Mapping[str, str] | None = None,
) -> list[Hint]:
    """Return the mistakes found in ``query``, most specific first (empty list: none found).

    ``scrape_interval`` is in seconds; ``for_alert`` adds the checks that only
    matter in an alerting rule; ``metric_types`` maps metric names to
    "counter"/"gauge"/"histogram"/"summary" where names don't follow conventions.

    >>> [h.code for h in hints("rate(sum(x_total)[5m:])")]
    ['rate-of-sum']
    >>> [h.code for h in hints("irate(x_total[1m]) > 5", for_alert=True)]
    ['irate-in-alert']
    >>> hints("sum(rate(x_total[5m])")[0].code
    'syntax-error'
    """
    if not query or not query.strip():
        return [Hint("syntax-error", "The query is empty: write a PromQL expression such as up.")]
    try:
        tree = pp.parse(query)
    except ValueError as exc:
        return [Hint("syntax-error", f"PromQL syntax error: {exc}.", query)]
    found = _Checker(scrape_interval, for_alert, metric_types).run(tree)
    order = list(CODES)
    unique = list(dict.fromkeys(found))
    return sorted(unique, key=lambda h: order.index(h.code))


def alert_hints(query: str, scrape_interval: float = 5.0, **kwargs) -> list[Hint]:
    """Return ``hints(query, for_alert=True)``: the checks for an alert rule's ``expr``.

    >>> [h.code for h in alert_hints("irate(x_total[5m]) > 1")]
    ['irate-in-alert']
    """
    return hints(query, scrape_interval, for_alert=True, **kwargs)


# --- the shape of a query, for checks that ask for one ----------------------------------------


def functions_used(query: str) -> set[str]:
    """Return the names of the functions a query calls.

    >>> sorted(functions_used("sum(rate(x_total[1m])) / scalar(up)"))
    ['rate', 'scalar']
    """
    return {n.func.name for n in _walk(pp.parse(query)) if isinstance(n, pp.Call)}


def range_windows(query: str) -> set[float]:
    """Return the range windows of a query's range selectors and subqueries, in seconds.

    >>> sorted(range_windows("rate(x_total[1m]) / rate(y_total[60s])"))
    [60.0]
    """
    return {
        _seconds(n.range)
        for n in _walk(pp.parse(query))
        if isinstance(n, pp.MatrixSelector | pp.SubqueryExpr)
    }


def aggregations_used(query: str) -> set[str]:
    """Return the aggregation operators a query uses.

    >>> sorted(aggregations_used("sum by (le) (rate(x[5m])) / count(up)"))
    ['count', 'sum']
    """
    return {_op(n) for n in _walk(pp.parse(query)) if isinstance(n, pp.AggregateExpr)}


# --- AST helpers ---------------------------------------------------------------------------


def _children(node) -> list:
    """Return the sub-expressions of ``node`` in evaluation order."""
    if isinstance(node, pp.AggregateExpr):
        return [c for c in (node.param, node.expr) if isinstance(c, pp.Expr)]
    if isinstance(node, pp.Call):
        return list(node.args)
    if isinstance(node, pp.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, pp.ParenExpr | pp.UnaryExpr | pp.SubqueryExpr):
        return [node.expr]
    if isinstance(node, pp.MatrixSelector):
        return [node.vector_selector]
    return []


def _walk(node) -> Iterator:
    """Yield ``node`` and every node below it."""
    yield node
    for child in _children(node):
        yield from _walk(child)


def _text(node) -> str:
    """Return the query text of ``node``, formatted by the parser."""
    return node.prettify()


def _name(selector: pp.VectorSelector) -> str | None:
    """Return the metric name of a selector, also when written as {__name__="..."}."""
    if selector.name:
        return selector.name
    for m in selector.matchers.matchers:
        if m.name == "__name__" and m.op == pp.MatchOp.Equal:
            return m.value
    return None


def _op(node) -> str:
    """Return an aggregation's or binary operator's keyword, e.g. "sum" or "/"."""
    return str(node.op)


def _is_aggregating(node) -> bool:
    """Tell whether ``node`` is an aggregation that merges series (sum, avg, ...)."""
    return isinstance(node, pp.AggregateExpr) and _op(node) not in SELECTING_AGGS


def _is_scalar(node) -> bool:
    """Tell whether ``node`` evaluates to a scalar (a number, scalar(), time(), ...)."""
    if isinstance(node, pp.NumberLiteral):
        return True
    if isinstance(node, pp.ParenExpr | pp.UnaryExpr):
        return _is_scalar(node.expr)
    if isinstance(node, pp.Call):
        return node.func.return_type == pp.ValueType.Scalar
    if isinstance(node, pp.BinaryExpr):
        return _is_scalar(node.lhs) and _is_scalar(node.rhs)
    return False


def _series_arg(call: pp.Call):
    """Return the argument that carries a function's series (its first non-literal)."""
    for arg in call.args:
        if not isinstance(arg, pp.NumberLiteral | pp.StringLiteral):
            return arg
    return None


def _keeps_label(node, label: str) -> bool:
    """Tell whether the series ``node`` returns can still carry ``label``."""
    if isinstance(node, pp.VectorSelector | pp.MatrixSelector):
        return True
    if isinstance(node, pp.ParenExpr | pp.UnaryExpr | pp.SubqueryExpr):
        return _keeps_label(node.expr, label)
    if isinstance(node, pp.Call):
        name = node.func.name
        if name in NO_LABEL_FUNCS or (name == "histogram_quantile" and label == "le"):
            return False
        if name in ("label_replace", "label_join") and node.args[1].val == label:
            return True
        arg = _series_arg(node)
        return arg is not None and _keeps_label(arg, label)
    if isinstance(node, pp.AggregateExpr):
        op = _op(node)
        if op in SELECTING_AGGS:
            return _keeps_label(node.expr, label)
        if op == "count_values" and node.param is not None and node.param.val == label:
            return True
        mod = node.modifier
        if mod is None:
            return False
        if mod.type == pp.AggModifierType.By:
            return label in mod.labels
        return label not in mod.labels and _keeps_label(node.expr, label)
    if isinstance(node, pp.BinaryExpr):
        return _binary_keeps_label(node, label)
    return False


def _binary_keeps_label(node: pp.BinaryExpr, label: str) -> bool:
    """Apply Prometheus' vector-matching rules to decide whether ``label`` survives."""
    if _is_scalar(node.lhs):
        return _keeps_label(node.rhs, label)
    if _is_scalar(node.rhs):
        return _keeps_label(node.lhs, label)
    lhs, rhs = _keeps_label(node.lhs, label), _keeps_label(node.rhs, label)
    op = _op(node)
    if op in ("and", "unless"):
        return lhs
    if op == "or":
        return lhs or rhs
    mod = node.modifier
    if mod is None or mod.matching is None:
        return lhs
    grouped = label in (mod.group_labels or [])
    if mod.card == pp.VectorMatchCardinality.ManyToOne:
        return lhs or grouped
    if mod.card == pp.VectorMatchCardinality.OneToMany:
        return rhs or grouped
    # One-to-one matching keeps only the on(...) labels, or drops the ignoring(...) ones.
    if mod.matching.type == pp.LabelModifierType.Include:
        return label in mod.matching.labels
    return label not in mod.matching.labels and lhs


def _pins_le(selector: pp.VectorSelector) -> bool:
    """Tell whether a selector fixes one bucket with le="..." (the Apdex/SLO idiom)."""
    return any(m.name == "le" and m.op == pp.MatchOp.Equal for m in selector.matchers.matchers)


def _seconds(duration) -> float:
    """Return a parser duration (a timedelta) in seconds."""
    return duration.total_seconds()


def _fmt_seconds(seconds: float) -> str:
    """Format seconds the PromQL way, e.g. 20 -> "20s", 90 -> "90s", 300 -> "5m"."""
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


# --- the checks ----------------------------------------------------------------------------


class _Checker:
    """Walk one parsed query and collect hints; ancestors are kept as a stack."""

    def __init__(
        self, scrape_interval: float, for_alert: bool, metric_types: Mapping[str, str] | None
    ):
        self.scrape = float(scrape_interval)
        self.for_alert = for_alert
        self.types = metric_types
        self.found: list[Hint] = []

    def run(self, tree) -> list[Hint]:
        """Return the hints found in ``tree``."""
        self._visit(tree, [])
        return self.found

    def add(self, code: str, message: str, node) -> None:
        """Record a hint about ``node``."""
        self.found.append(Hint(code, message, _text(node)))

    def kind(self, selector: pp.VectorSelector) -> str | None:
        """Return counter, gauge or None for the metric a selector reads."""
        return metric_kind(_name(selector), self.types)

    def _visit(self, node, ancestors: list) -> None:
        """Check ``node`` by its type, then its children (with ``node`` as their ancestor)."""
        if isinstance(node, pp.Call):
            self._call(node, ancestors)
        elif isinstance(node, pp.AggregateExpr):
            self._aggregate(node, ancestors)
        elif isinstance(node, pp.VectorSelector):
            self._selector(node, ancestors)
        elif isinstance(node, pp.MatrixSelector) and ancestors:
            self._range(node, ancestors[-1])
        for child in _children(node):
            self._visit(child, [*ancestors, node])

    def _call(self, call: pp.Call, ancestors: list) -> None:
        """Check a function call: histogram_quantile, the rate family, delta/deriv, irate."""
        name = call.func.name
        if name == "histogram_quantile":
            self._quantile(call)
        elif name in RATE_FUNCS:
            self._rate(call)
        elif name in GAUGE_RANGE_FUNCS:
            arg = call.args[0]
            if isinstance(arg, pp.MatrixSelector) and self.kind(arg.vector_selector) == "counter":
                metric = _name(arg.vector_selector)
                self.add(
                    "delta-of-counter",
                    f"{name}() is for gauges and ignores counter resets; {metric} is a "
                    f"counter — use rate() or increase() instead.",
                    call,
                )
        if name == "irate" and self.for_alert:
            self.add(
                "irate-in-alert",
                "irate() sees only the last two samples, so an alert on it flaps with "
                "every spike — use rate() over a window (e.g. [5m]) in alerts.",
                call,
            )

    def _quantile(self, call: pp.Call) -> None:
        """Check what histogram_quantile is fed: phi, bucket series, le, aggregation."""
        phi, inner = call.args
        if isinstance(phi, pp.NumberLiteral) and not 0 <= phi.val <= 1:
            self.add(
                "quantile-phi-out-of-range",
                f"histogram_quantile takes a quantile between 0 and 1: write "
                f"{phi.val / 100:g}, not {phi.val:g}.",
                call,
            )
        selectors = [n for n in _walk(inner) if isinstance(n, pp.VectorSelector)]
        names = [n for n in (_name(s) for s in selectors) if n]
        types = {k: v.lower() for k, v in (self.types or {}).items()}
        native = [n for n in names if types.get(n) == "histogram"]
        if names and not native and not any(n.endswith("_bucket") for n in names):
            self.add(
                "quantile-not-buckets",
                f"histogram_quantile needs a histogram's _bucket series (with their le "
                f"label); {names[0]} is not one — use "
                f"{names[0].rsplit('_', 1)[0]}_bucket.",
                call,
            )
            return
        if not _keeps_label(inner, "le"):
            self.add(
                "quantile-drops-le",
                "The aggregation inside histogram_quantile drops the le label, so there "
                "are no buckets left and the result is empty — aggregate with sum by (le) "
                "(or by (le, route) to keep a label).",
                call,
            )
            return
        if not any(_is_aggregating(n) for n in _walk(inner)) and not native:
            self.add(
                "quantile-not-aggregated",
                f"histogram_quantile over un-aggregated buckets gives one quantile per "
                f"series (per route, status, instance…), not one for the service — "
                f"aggregate with sum by (le): histogram_quantile({phi.prettify()}, "
                f"sum by (le) ({inner.prettify()})).",
                call,
            )

    def _rate(self, call: pp.Call) -> None:
        """Check that rate/irate/increase read a counter, not a gauge or an aggregation."""
        name = call.func.name
        arg = call.args[0]
        if isinstance(arg, pp.MatrixSelector):
            if self.kind(arg.vector_selector) == "gauge":
                metric = _name(arg.vector_selector)
                self.add(
                    "rate-of-gauge",
                    f"{name}() is for counters, and {metric} is a gauge (its name "
                    f"doesn't end in _total) — use deriv() for a trend, delta() for a "
                    f"change or avg_over_time() to smooth it.",
                    call,
                )
            return
        if isinstance(arg, pp.SubqueryExpr):
            if any(_is_aggregating(n) for n in _walk(arg.expr)):
                self.add(
                    "rate-of-sum",
                    f"{name}() of a sum: the sum dips whenever one series resets, and "
                    f"{name}() reads each dip as a counter reset — take {name}() first, "
                    f"then aggregate: sum({name}(x_total[5m])).",
                    call,
                )
                return
            for sel in _walk(arg.expr):
                if isinstance(sel, pp.VectorSelector) and self.kind(sel) == "gauge":
                    self.add(
                        "rate-of-gauge",
                        f"{name}() is for counters, and {_name(sel)} is a gauge — use "
                        f"deriv() or delta() for gauges.",
                        call,
                    )
                    return

    def _aggregate(self, agg: pp.AggregateExpr, ancestors: list) -> None:
        """Check for averaged quantiles and for buckets summed without le."""
        op = _op(agg)
        if op in ("sum", "avg"):
            for n in _walk(agg.expr):
                quantile = (isinstance(n, pp.Call) and n.func.name == "histogram_quantile") or (
                    isinstance(n, pp.VectorSelector)
                    and any(m.name == "quantile" for m in n.matchers.matchers)
                )
                if quantile:
                    self.add(
                        "aggregated-quantile",
                        f"{op}() of quantiles is not a quantile of anything: aggregate "
                        f"the _bucket series with sum by (le) first, then call "
                        f"histogram_quantile once.",
                        agg,
                    )
                    break
        if not _is_aggregating(agg) or op in SERIES_ONLY_AGGS or _keeps_label(agg, "le"):
            return
        if not _keeps_label(agg.expr, "le"):
            return  # le was already gone before this aggregation
        if any(isinstance(a, pp.Call) and a.func.name == "histogram_quantile" for a in ancestors):
            return  # reported as quantile-drops-le, which says more
        buckets = [
            s
            for s in _walk(agg.expr)
            if isinstance(s, pp.VectorSelector)
            and (_name(s) or "").endswith("_bucket")
            and not _pins_le(s)
        ]
        if buckets:
            metric = _name(buckets[0]) or ""
            self.add(
                "bucket-without-le",
                f"{op}() without le adds the histogram buckets together, counting each "
                f"observation once per bucket — keep le ({op} by (le) …), pick one bucket "
                f'with le="…", or use {metric.removesuffix("_bucket")}_count for the '
                f"total.",
                agg,
            )

    def _selector(self, sel: pp.VectorSelector, ancestors: list) -> None:
        """Flag a counter read raw, outside rate/increase and series-only functions."""
        if ancestors and isinstance(ancestors[-1], pp.MatrixSelector):
            return
        if self.kind(sel) != "counter":
            return
        for i, a in enumerate(ancestors):
            if isinstance(a, pp.Call) and a.func.name in SERIES_ONLY_FUNCS:
                return
            if isinstance(a, pp.AggregateExpr) and _op(a) in SERIES_ONLY_AGGS:
                return
            # rate(x_total[5m:1m]) rates the subquery's samples: still a counter, still fine.
            if (
                isinstance(a, pp.SubqueryExpr)
                and i > 0
                and isinstance(ancestors[i - 1], pp.Call)
                and ancestors[i - 1].func.name in COUNTER_RANGE_FUNCS
            ):
                return
        metric = _name(sel)
        wrapped = _text(sel)  # keep the learner's label matchers in the suggestion
        self.add(
            "counter-without-rate",
            f"{metric} is a counter: its raw value is a running total since the process "
            f"started (and drops to 0 on a restart) — wrap it in rate(…) over a range "
            f"window for per-second (rate({wrapped}[1m]) is per second over the last "
            f"minute), or increase(…) for a count.",
            sel,
        )

    def _range(self, matrix: pp.MatrixSelector, parent) -> None:
        """Flag a range window shorter than MIN_SCRAPES_PER_WINDOW scrape intervals."""
        seconds = _seconds(matrix.range)
        if seconds >= MIN_SCRAPES_PER_WINDOW * self.scrape:
            return
        func = f"{parent.func.name}()" if isinstance(parent, pp.Call) else "the function"
        scrapes = int(seconds // self.scrape)
        minimum = _fmt_seconds(MIN_SCRAPES_PER_WINDOW * self.scrape)
        self.add(
            "range-too-short",
            f"[{_fmt_seconds(seconds)}] spans only {scrapes} scrape(s) at a "
            f"{_fmt_seconds(self.scrape)} scrape interval — {func} needs at least two "
            f"samples in the window, so it comes out empty or jumpy; use at least 4× the "
            f"scrape interval ([{minimum}] or more; $__rate_interval in Grafana).",
            matrix,
        )

"""Explain a query: its PromQL parse tree, every sub-expression evaluated on the stack.

``explain(stack, promql)`` parses the query with ``promql-parser``, evaluates
every node's sub-expression at the same instant (concurrently), and shows what
each step does to the set of series: result type, series count, the label
names that survive, a few values, and one line saying what the node does, with
its numbers ("sum by (le): adds the series up, keeping only le: 96 series → 8").

>>> at = stack.history_window().at(20 * 3600)  # 20:00 in the day of history
>>> query = "sum by (le) (rate(vrewcraft_thumbnail_duration_seconds_bucket[5m]))"
>>> print(explain(stack, query, at))
sum by (le) (rate(vrewcraft_thumbnail_duration_seconds_bucket[5m]))
│    instant vector · 8 series · {le} · {le="+Inf"} 15.67, {le="0.01"} 14.55, ... (+5 more)
│    adds the series up, keeping only le: 8 series → 8
└─ rate(vrewcraft_thumbnail_duration_seconds_bucket[5m])
   │    instant vector · 8 series · {instance, job, le} · {le="+Inf"} 15.67, ... (+5 more)
   │    per-second increase of each counter over [5m], resets handled: 8 series → 8
   └─ vrewcraft_thumbnail_duration_seconds_bucket[5m]
           range vector · 8 series · {instance, job, le} · 21 samples/series
           the raw samples of the last 5m of each series: 8 series, 21 samples each
(3 nodes, 4 queries at ... ms)

Range vectors (``x[5m]``, subqueries) can't be shown as one value per series,
so they are evaluated as their enclosing function needs them: the samples each
series has in the window (``count_over_time``), and the counter resets in it
(``resets``) when the function is rate, irate or increase. ``divergence()``
compares a learner's evaluated tree with a reference's and names the first node
where they part ways; the PromQL exercise checks append it to their hints.

The tree renders as plain HTML (no widget), so it survives export to HTML.
"""

from __future__ import annotations

import html
import math
import re
import time as _time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import promql_parser as pp

from course_lib import prom
from course_lib.promql_hints import hints as promql_hints

__all__ = ["Explanation", "Node", "divergence", "explain", "feedback"]

#: How many series' values a node shows.
SHOWN_SAMPLES = 3
#: Concurrent node queries; Prometheus runs up to 20 queries at once by default.
MAX_WORKERS = 8

COUNTER_RANGE_FUNCS = frozenset({"rate", "irate", "increase", "resets"})

# {range} is the window, {seconds} its length in seconds; "each series" reads per input series.
FUNCTION_TEXT: dict[str, str] = {
    "rate": "per-second increase of each counter over {range}, resets handled",
    "irate": "per-second increase between the last two samples in {range} of each counter",
    "increase": "increase of each counter over {range} (rate × {seconds}), resets handled",
    "resets": "counts the counter resets of each series in {range}",
    "changes": "counts how often each series' value changed in {range}",
    "delta": "change of each gauge between the start and end of {range}",
    "idelta": "change of each gauge between the last two samples in {range}",
    "deriv": "per-second slope of each gauge over {range} (linear regression)",
    "predict_linear": "extrapolates each gauge's trend over {range}",
    "avg_over_time": "average of each series' samples in {range}",
    "sum_over_time": "sum of each series' samples in {range}",
    "min_over_time": "smallest sample of each series in {range}",
    "max_over_time": "largest sample of each series in {range}",
    "count_over_time": "number of samples of each series in {range}",
    "last_over_time": "latest sample of each series in {range}",
    "quantile_over_time": "a quantile of each series' samples in {range}",
    "stddev_over_time": "standard deviation of each series' samples in {range}",
    "present_over_time": "1 for each series with a sample in {range}",
    "absent_over_time": "1 (without the series' labels) if nothing has a sample in {range}",
    "absent": "1 if the argument has no series at all, else nothing",
    "vector": "turns a scalar into one series without labels",
    "scalar": "turns a one-series vector into a scalar (NaN unless exactly one series)",
    "time": "the evaluation time in Unix seconds",
    "timestamp": "the timestamp of each series' sample",
    "label_replace": "rewrites a label of each series",
    "label_join": "joins label values into a new label",
    "clamp_min": "raises values below the floor to the floor",
    "clamp_max": "lowers values above the ceiling to the ceiling",
    "abs": "absolute value of each series",
    "round": "rounds each series' value",
    "sort": "sorts the series by value (only the table order changes)",
    "sort_desc": "sorts the series by value, largest first",
}

AGGREGATION_TEXT: dict[str, str] = {
    "sum": "adds the series up",
    "avg": "averages the series",
    "min": "takes the smallest value",
    "max": "takes the largest value",
    "count": "counts the series",
    "group": "one series of value 1",
    "stddev": "standard deviation across the series",
    "stdvar": "variance across the series",
    "topk": "keeps the {param} largest series",
    "bottomk": "keeps the {param} smallest series",
    "quantile": "the {param} quantile across the series",
    "count_values": "counts the series per value (into label {param})",
    "limitk": "keeps {param} of the series",
}

ARITHMETIC_TEXT = {
    "+": "adds",
    "-": "subtracts",
    "*": "multiplies",
    "/": "divides",
    "%": "takes the remainder of",
    "^": "raises to the power",
    "atan2": "takes atan2 of",
}
COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
SET_OPS = frozenset({"and", "or", "unless"})

RESULT_TYPES = {
    "vector": "instant vector",
    "matrix": "range vector",
    "scalar": "scalar",
    "string": "string",
}


# --- the data model -------------------------------------------------------------------------


@dataclass
class Node:
    """One sub-expression of the query and what it evaluated to.

    ``series`` is None for scalars and strings; ``labels`` are the label names
    on the node's result (``__name__`` left out); ``values`` holds every
    (labels, value) pair of an instant vector or scalar; for a range vector,
    ``samples_per_series`` and ``resets`` describe the window instead.
    """

    expr: str
    kind: str
    depth: int
    ast: Any = field(repr=False)
    children: list[Node] = field(default_factory=list, repr=False)
    query: str | None = None
    resets_query: str | None = None
    result_type: str = ""
    series: int | None = None
    labels: tuple[str, ...] = ()
    values: list[tuple[dict[str, str], float]] = field(default_factory=list, repr=False)
    samples_per_series: tuple[int, int] | None = None
    resets: int | None = None
    explanation: str = ""
    error: str = ""
    warnings: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[Node]:
        """Yield this node and every node below it, outermost first."""
        yield self
        for child in self.children:
            yield from child

    def sample_text(self, limit: int = SHOWN_SAMPLES) -> str:
        """Return a few values as text: '{route="/a"} 0.25, … (+9 more)'."""
        if self.result_type == "range vector" and self.samples_per_series:
            low, high = self.samples_per_series
            text = f"{low} samples/series" if low == high else f"{low}–{high} samples/series"
            if self.resets:
                text += f", {self.resets} reset(s)"
            return text
        shown = []
        for labels, value in self.values[:limit]:
            telling = _telling(labels, self.values)
            shown.append((f"{_fmt_labels(telling)} " if telling else "") + _fmt_value(value))
        more = len(self.values) - limit
        return ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")

    def facts(self) -> str:
        """Return the node's result in a few words: type, series, labels."""
        if self.error and not self.result_type:
            return "error"
        if self.series is None:
            return self.result_type
        labels = "{" + ", ".join(self.labels) + "}"
        return f"{self.result_type} · {self.series} series · {labels}"


@dataclass
class Explanation:
    """A query's evaluated parse tree; prints as a text tree, shows as HTML in notebooks."""

    query: str
    time: float
    root: Node
    elapsed: float
    queries: int

    @property
    def nodes(self) -> list[Node]:
        """Every node, outermost first (the order of the rendered rows)."""
        return list(self.root)

    def node(self, expr: str) -> Node:
        """Return the node whose sub-expression is ``expr`` (any spacing; first match).

        >>> at = stack.history_window().at(20 * 3600)
        >>> tree = explain(stack, "sum(rate(vrewcraft_http_requests_total[5m]))", at)
        >>> tree.node("rate( vrewcraft_http_requests_total[5m] )").labels
        ('instance', 'job', 'method', 'route', 'status_code')
        """
        wanted = _normalise(expr)
        for node in self.nodes:
            if node.expr == wanted:
                return node
        known = "\n  ".join(n.expr for n in self.nodes)
        raise KeyError(f"no node {wanted!r} in the tree of {self.query!r}; nodes:\n  {known}")

    def to_frame(self):
        """Return one row per node (depth, expr, type, series, labels, values, explanation)."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "depth": n.depth,
                    "expr": n.expr,
                    "type": n.result_type,
                    "series": n.series,
                    "labels": ", ".join(n.labels),
                    "values": n.sample_text(),
                    "explanation": n.explanation,
                    "problem": "; ".join(filter(None, [n.error, *n.warnings])),
                }
                for n in self.nodes
            ]
        )

    def __str__(self) -> str:
        lines = []
        for node, prefix, continuation in _tree_prefixes(self.root):
            lines.append(f"{prefix}{node.expr}")
            detail = node.facts()
            if node.result_type != "string":
                sample = node.sample_text()
                if sample:
                    detail += f" · {sample}"
            lines.append(f"{continuation}    {detail}")
            lines.append(f"{continuation}    {node.explanation}")
            for problem in filter(None, [node.error, *node.warnings]):
                lines.append(f"{continuation}    ⚠ {problem}")
        lines.append(
            f"({len(self.nodes)} nodes, {self.queries} queries at "
            f"{_fmt_time(self.time)}, {self.elapsed * 1000:.0f} ms)"
        )
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = []
        for node in self.nodes:
            problems = "".join(
                f'<div style="color:#b00020">⚠ {html.escape(p)}</div>'
                for p in filter(None, [node.error, *node.warnings])
            )
            indent = node.depth * 1.4
            marker = "└ " if node.depth else ""
            rows.append(
                "<tr>"
                f'<td style="text-align:left;padding-left:{indent:.1f}em;white-space:nowrap">'
                f"{marker}<code>{html.escape(node.expr)}</code></td>"
                f'<td style="text-align:left">{html.escape(node.result_type or "error")}</td>'
                f'<td style="text-align:right">{"" if node.series is None else node.series}</td>'
                f'<td style="text-align:left">{html.escape(", ".join(node.labels))}</td>'
                f'<td style="text-align:left"><code>{html.escape(node.sample_text())}</code></td>'
                f'<td style="text-align:left">{html.escape(node.explanation)}{problems}</td>'
                "</tr>"
            )
        head = "".join(
            f'<th style="text-align:left">{h}</th>'
            for h in ("node", "type", "series", "labels", "values", "what it does")
        )
        caption = (
            f"{len(self.nodes)} nodes evaluated at {_fmt_time(self.time)} "
            f"({self.queries} queries, {self.elapsed * 1000:.0f} ms)"
        )
        return (
            f'<table class="promql-explain"><caption style="text-align:left">'
            f"{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )


# --- explain ----------------------------------------------------------------------------------


def explain(
    stack: Any,
    promql: str,
    time: datetime | float | str | None = None,
    *,
    scrape_interval: float = 5.0,
) -> Explanation:
    """Parse ``promql``, evaluate every node on ``stack`` at ``time`` (None: now); return the tree.

    ``stack`` is anything with ``.prometheus_url``, or the URL itself.
    ``scrape_interval`` (seconds) tunes the hints about short windows.

    >>> at = stack.history_window().at(20 * 3600)  # 20:00 in the day of history
    >>> tree = explain(stack, "sum by (route) (rate(vrewcraft_http_requests_total[5m]))", at)
    >>> tree.root.labels, tree.root.explanation
    (('route',), 'adds the series up, keeping only route: 16 series → 9')
    """
    if not isinstance(promql, str) or not promql.strip():
        raise ValueError(f"explain needs a PromQL query string, e.g. 'up' (got {promql!r}).")
    try:
        ast = pp.parse(promql)
    except ValueError as exc:
        raise ValueError(
            f"PromQL syntax error in {promql!r}: {exc}. Fix the query (the Prometheus UI "
            f"shows the same message) and explain it again."
        ) from None
    url = _prometheus_url(stack)
    at = prom.to_datetime(time).timestamp() if time is not None else _time.time()
    started = _time.perf_counter()
    root = _build(ast, depth=0)
    count = _evaluate(url, root, at)
    for node in reversed(list(root)):  # children first: their facts feed the parent's text
        node.explanation = _describe(node)
    _attach_hints(root, promql, scrape_interval)
    return Explanation(_normalise_text(promql), at, root, _time.perf_counter() - started, count)


def _prometheus_url(stack: Any) -> str:
    """Return the Prometheus base URL of ``stack`` (anything with .prometheus_url, or a URL)."""
    if isinstance(stack, str):
        return stack.rstrip("/")
    url = getattr(stack, "prometheus_url", None)
    if not url:
        raise ValueError(
            f"explain needs the stack (or a Prometheus URL such as 'http://127.0.0.1:9090'), "
            f"got {type(stack).__name__}."
        )
    return str(url).rstrip("/")


def _normalise_text(text: str) -> str:
    """Return prettified PromQL on one line (the parser breaks long expressions)."""
    text = re.sub(r"\(\s*\n\s*", "(", text)
    text = re.sub(r"\s*\n\s*\)", ")", text)
    return re.sub(r"\n\s*", " ", text).strip()


def _normalise(expr: str) -> str:
    """Return ``expr`` formatted like the tree's nodes (parsed and prettified when it parses)."""
    try:
        return _normalise_text(pp.parse(expr).prettify())
    except ValueError:
        return _normalise_text(expr)


def _kind(ast: Any) -> str:
    """Return a node kind: selector, range, subquery, function, aggregation, binary, …"""
    return {
        pp.VectorSelector: "selector",
        pp.MatrixSelector: "range",
        pp.SubqueryExpr: "subquery",
        pp.Call: "function",
        pp.AggregateExpr: "aggregation",
        pp.BinaryExpr: "binary",
        pp.UnaryExpr: "negation",
        pp.NumberLiteral: "number",
        pp.StringLiteral: "string",
    }.get(type(ast), type(ast).__name__)


def _children(ast: Any) -> list:
    """Return the sub-expressions shown under ``ast`` (parentheses are skipped)."""
    if isinstance(ast, pp.AggregateExpr):
        return [c for c in (ast.param, ast.expr) if isinstance(c, pp.Expr)]
    if isinstance(ast, pp.Call):
        return list(ast.args)
    if isinstance(ast, pp.BinaryExpr):
        return [ast.lhs, ast.rhs]
    if isinstance(ast, pp.UnaryExpr | pp.SubqueryExpr):
        return [ast.expr]
    return []  # a MatrixSelector's vector selector is the same data: not a node of its own


def _unparen(ast: Any) -> Any:
    """Return ``ast`` without surrounding parentheses."""
    while isinstance(ast, pp.ParenExpr):
        ast = ast.expr
    return ast


def _build(ast: Any, depth: int, counter_func: bool = False) -> Node:
    """Turn the parser's tree into Nodes and decide which queries evaluate each one.

    ``counter_func`` says the parent is rate/irate/increase/resets: a range under
    it also gets its counter resets counted.
    """
    ast = _unparen(ast)
    node = Node(expr=_normalise_text(ast.prettify()), kind=_kind(ast), depth=depth, ast=ast)
    if node.kind in ("range", "subquery"):
        node.query = f"count_over_time({ast.prettify()})"
        if counter_func:
            node.resets_query = f"sum(resets({ast.prettify()}))"
    elif node.kind == "number":
        node.result_type, node.values = "scalar", [({}, float(ast.val))]
    elif node.kind == "string":
        node.result_type = "string"
    else:
        node.query = ast.prettify()
    rates = node.kind == "function" and ast.func.name in COUNTER_RANGE_FUNCS
    node.children = [_build(child, depth + 1, rates) for child in _children(ast)]
    return node


def _evaluate(url: str, root: Node, at: float) -> int:
    """Run every node's queries concurrently at ``at``; fill in the facts; return the count."""
    nodes = list(root)
    queries = list(dict.fromkeys(q for n in nodes for q in (n.query, n.resets_query) if q))
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, max(1, len(queries)))) as pool:
        answers = dict(zip(queries, pool.map(lambda q: _run(url, q, at), queries), strict=True))
    for node in nodes:
        if node.resets_query:
            result, _error = answers[node.resets_query]
            if result is not None:
                node.resets = int(float(result[1][0]["value"][1])) if result[1] else 0
        if node.query:
            result, error = answers[node.query]
            if error or result is None:
                node.error = error
            else:
                _fill(node, *result)
    return len(queries)


def _run(url: str, query: str, at: float) -> tuple[tuple[str, Any] | None, str]:
    """Evaluate one query; return ((type, result), "") or (None, Prometheus' error)."""
    try:
        return prom.query_raw(url, query, at), ""
    except prom.PrometheusUnreachable:
        raise
    except prom.PromQLError as exc:
        return None, exc.detail  # Prometheus' own words: the node shows which query


def _fill(node: Node, result_type: str, result: Any) -> None:
    """Record type, series, labels and values of a node's answer."""
    if node.kind in ("range", "subquery"):
        node.result_type = "range vector"
        counts = [int(float(s["value"][1])) for s in result]
        node.series = len(result)
        node.labels = _label_names(s["metric"] for s in result)
        node.values = [(_strip_name(s["metric"]), float(s["value"][1])) for s in result]
        node.samples_per_series = (min(counts), max(counts)) if counts else (0, 0)
        return
    node.result_type = RESULT_TYPES.get(result_type, result_type)
    if result_type == "scalar":
        node.values = [({}, float(result[1]))]
    elif result_type == "vector":
        node.series = len(result)
        node.labels = _label_names(s["metric"] for s in result)
        node.values = sorted(
            ((_strip_name(s["metric"]), float(s["value"][1])) for s in result),
            key=lambda lv: sorted(lv[0].items()),
        )


def _strip_name(labels: Mapping[str, str]) -> dict[str, str]:
    """Return the labels without ``__name__``."""
    return {k: v for k, v in labels.items() if k != "__name__"}


def _label_names(metrics) -> tuple[str, ...]:
    """Return the sorted label names used by any of ``metrics`` (no ``__name__``)."""
    return tuple(sorted({k for m in metrics for k in m if k != "__name__"}))


def _attach_hints(root: Node, promql: str, scrape_interval: float) -> None:
    """Show promql_hints' findings (un-aggregated quantiles, rate of a sum…) on their node."""
    by_expr: dict[str, Node] = {}
    for node in root:
        by_expr.setdefault(node.expr, node)
        if node.kind == "range":  # hints about x[5m] may name the inner selector
            by_expr.setdefault(_normalise_text(node.ast.vector_selector.prettify()), node)
    for hint in promql_hints(promql, scrape_interval):
        target = by_expr.get(_normalise_text(hint.expr), root)
        if hint.message not in target.warnings:
            target.warnings.append(hint.message)


# --- one line per node ----------------------------------------------------------------------


def _describe(node: Node) -> str:
    """Return the node's one-line explanation, with its numbers."""
    ast = node.ast
    if node.kind == "number":
        return f"the number {_fmt_value(float(ast.val))}"
    if node.kind == "string":
        return "a string argument"
    if node.kind == "selector":
        return _describe_selector(node)
    if node.kind in ("range", "subquery"):
        return _describe_range(node)
    if node.kind == "function":
        return _describe_call(node)
    if node.kind == "aggregation":
        return _describe_aggregation(node)
    if node.kind == "binary":
        return _describe_binary(node)
    if node.kind == "negation":
        return "negates each value"
    return ""


def _series_word(n: int | None) -> str:
    return "?" if n is None else f"{n} series"


def _describe_selector(node: Node) -> str:
    """Describe a vector selector: which metric, which matchers, how many series."""
    ast = node.ast
    matchers = [m for m in ast.matchers.matchers if m.name != "__name__"]
    where = ""
    if matchers:
        where = " with " + ", ".join(str(m) for m in matchers)
    name = ast.name or "every metric"
    text = f"selects the latest sample of {name}{where}: {_series_word(node.series)}"
    if node.series == 0 and not node.error:
        text += " (nothing matches at this time: check the name, matchers and time)"
    return text


def _describe_range(node: Node) -> str:
    """Describe a range: window length, samples per series, resets when a rate reads it."""
    ast = node.ast
    window = _fmt_duration(ast.range)
    if node.kind == "subquery":
        step = _fmt_duration(ast.step) if ast.step else "the evaluation interval"
        text = (
            f"evaluates {_normalise_text(ast.expr.prettify())} every {step} over the last {window}"
        )
    else:
        text = f"the raw samples of the last {window} of each series"
    if node.samples_per_series and node.series:
        low, high = node.samples_per_series
        text += (
            f": {_series_word(node.series)}, {low if low == high else f'{low}–{high}'} samples each"
        )
        if low < 2:
            text += " (rate-like functions need at least 2 samples per series: widen the window)"
    if node.series == 0 and not node.error:
        text += ": no series has samples in the window (check the name, matchers and time)"
    if node.resets:
        text += f"; {node.resets} counter reset(s) in the window" + (
            " — a sum dips whenever one of its counters restarts, and the rate reads "
            "each dip as a reset of the whole sum"
            if node.kind == "subquery"
            else ", which rate/increase correct for"
        )
    return text


def _describe_call(node: Node) -> str:
    """Describe a function call from FUNCTION_TEXT, with series in → series out."""
    ast = node.ast
    name = ast.func.name
    series_arg = next((c for c in node.children if c.kind not in ("number", "string")), None)
    if name == "histogram_quantile":
        phi = node.children[0].values[0][1] if node.children[0].values else float("nan")
        inner = node.children[1]
        groups = [lb for lb in node.labels]
        per = (
            f" (one per {', '.join(groups)})" if groups and node.series and node.series > 1 else ""
        )
        text = (
            f"estimates the {_fmt_value(phi)} quantile from the le buckets of each group: "
            f"{_series_word(inner.series)} → {node.series}{per}"
        )
        return text
    template = FUNCTION_TEXT.get(name, f"applies {name}() to each series")
    window = next((c.ast for c in node.children if c.kind in ("range", "subquery")), None)
    text = template.format(
        range=f"[{_fmt_duration(window.range)}]" if window is not None else "the window",
        seconds=f"{window.range.total_seconds():g}" if window is not None else "the window",
    )
    if series_arg is not None and series_arg.series is not None and node.series is not None:
        text += f": {_series_word(series_arg.series)} → {node.series}"
    elif node.series is not None:
        text += f": {_series_word(node.series)}"
    return text


def _describe_aggregation(node: Node) -> str:
    """Describe an aggregation: the operator, which labels it keeps, series in → out."""
    ast = node.ast
    op = str(ast.op)
    param = (
        node.children[0].values[0][1] if ast.param is not None and node.children[0].values else ""
    )
    if isinstance(ast.param, pp.StringLiteral):
        param = ast.param.val
    text = AGGREGATION_TEXT.get(op, f"aggregates with {op}").format(
        param=_fmt_value(param) if isinstance(param, float) else param
    )
    mod = ast.modifier
    if op in ("topk", "bottomk", "limitk"):
        keep = ""
    elif mod is None or (mod.type == pp.AggModifierType.By and not mod.labels):
        keep = " into one series (every label dropped)"
    elif mod.type == pp.AggModifierType.By:
        keep = f", keeping only {', '.join(mod.labels)}"
    else:
        keep = f", keeping every label but {', '.join(mod.labels)}"
    source = node.children[-1]
    return f"{text}{keep}: {_series_word(source.series)} → {node.series}"


def _describe_binary(node: Node) -> str:
    """Describe a binary operation; for vector/vector matches, say how many pairs matched."""
    ast = node.ast
    op = str(ast.op)
    left, right = node.children
    mod = ast.modifier
    vectors = left.series is not None and right.series is not None
    if not vectors:
        return _describe_scalar_binary(node, op, left, right)
    if op in COMPARISONS:
        if mod is not None and mod.return_bool:
            text = f"1 where the left value is {op} the right one, else 0"
        else:
            text = f"keeps the left series whose value is {op} the matching right one"
    elif op in SET_OPS:
        text = {
            "and": "keeps the left series that have a match on the right",
            "or": "the left series, plus right series with no match on the left",
            "unless": "keeps the left series that have no match on the right",
        }[op]
    else:
        text = f"{ARITHMETIC_TEXT.get(op, op)} the two sides"
    matching = _matching_text(mod)
    matched = _matched_pairs(left, right, mod)
    text += (
        f", matching {matching}: {left.series} left, {right.series} right, "
        f"{matched} matched → {node.series}"
    )
    no_match = matched == 0 and left.series and right.series and op not in ("or", "unless")
    if no_match and not node.error:  # Prometheus' own error (many-to-many…) says more
        node.error = (
            f"no series match: the left side has labels {{{', '.join(left.labels)}}}, "
            f"the right side {{{', '.join(right.labels)}}} — {matching} needs the same "
            f"values on both sides; aggregate both sides the same way (sum … / sum …) "
            f"or match with on(…)/ignoring(…)"
        )
    return text


def _describe_scalar_binary(node: Node, op: str, left: Node, right: Node) -> str:
    """Describe an operation between a vector and a number (or two numbers)."""
    vector, number = (left, right) if left.series is not None else (right, left)
    value = _fmt_value(number.values[0][1]) if number.values else number.expr
    if vector.series is None:
        return f"computes {left.expr} {op} {right.expr}"
    mod = node.ast.modifier
    if op in COMPARISONS and not (mod is not None and mod.return_bool):
        condition = f"{op} {value}" if vector is left else f"{value} {op} it"
        text = f"keeps the series whose value is {condition}"
    elif op in COMPARISONS:
        text = f"1 where the value is {op} {value}, else 0"
    else:
        shown = f"value {op} {value}" if vector is left else f"{value} {op} value"
        text = f"computes {shown} for each series"
    return f"{text}: {_series_word(vector.series)} → {node.series}"


def _matching_text(mod: Any) -> str:
    """Return how a binary operation pairs series: on all labels, on (x), ignoring (y)."""
    if mod is None or mod.matching is None:
        return "one-to-one on all labels"
    labels = ", ".join(mod.matching.labels)
    how = "on" if mod.matching.type == pp.LabelModifierType.Include else "ignoring"
    card = "one-to-one"
    if mod.card == pp.VectorMatchCardinality.ManyToOne:
        card = "many-to-one"
    elif mod.card == pp.VectorMatchCardinality.OneToMany:
        card = "one-to-many"
    return f"{card} {how} ({labels})"


def _signature(labels: Mapping[str, str], mod: Any) -> frozenset:
    """Return the label values a binary operation pairs series by."""
    if mod is not None and mod.matching is not None:
        names = set(mod.matching.labels)
        if mod.matching.type == pp.LabelModifierType.Include:
            return frozenset((k, labels.get(k, "")) for k in names)
        return frozenset((k, v) for k, v in labels.items() if k not in names)
    return frozenset(labels.items())


def _matched_pairs(left: Node, right: Node, mod: Any) -> int:
    """Count left series that find a partner on the right (Prometheus' matching rules)."""
    right_keys = {_signature(labels, mod) for labels, _ in right.values}
    return sum(1 for labels, _ in left.values if _signature(labels, mod) in right_keys)


# --- comparing two trees (exercise feedback) ------------------------------------------------


def divergence(
    stack: Any,
    answer: str,
    reference: str,
    time: datetime | float | str | None = None,
    *,
    rel_tol: float = 1e-6,
    abs_tol: float = 1e-9,
) -> str | None:
    """Evaluate both trees; name the first node (innermost first) where ``answer`` departs.

    Returns None when the trees agree everywhere they can be compared (or the
    answer doesn't parse: the syntax error says more).

    >>> rate = "rate(vrewcraft_http_requests_total[5m])"
    >>> at = stack.history_window().at(20 * 3600)
    >>> print(divergence(stack, f"sum({rate})", f"sum by (route) ({rate})", at))
    your `rate(...)` matches the reference's; then your `sum(...)` drops route, ... instead of 9
    """
    at = prom.to_datetime(time).timestamp() if time is not None else _time.time()
    try:
        mine = explain(stack, answer, at)
        ref = explain(stack, reference, at)
    except ValueError:
        return None
    tol = (rel_tol, abs_tol)
    found = _diverge(mine.root, ref.root, tol)
    if found is None:
        return None
    agreed, why = found
    if agreed is None:
        head, why = "", why.removeprefix("then ")
    else:
        head = f"your {_step(agreed)} matches the reference's; "
    failing = next((n for n in reversed(mine.nodes) if n.error), None)
    tail = (
        f"; at your {_step(failing)}: {failing.error}"
        if failing and failing.error not in why
        else ""
    )
    return f"{head}{why}{tail}"


def feedback(
    stack: Any, answer: str, reference: str, time: float, rel_tol: float, abs_tol: float
) -> str:
    """Return "\nWhere it goes wrong: …" for an exercise message, or "" (nothing to add).

    Exercise checks call this after their own result comparison; explaining is a
    bonus, so a query Prometheus rejects along the way leaves the message as it was.
    """
    try:
        note = divergence(stack, answer, reference, time, rel_tol=rel_tol, abs_tol=abs_tol)
    except prom.PromQLError:
        return ""
    return f"\nWhere it goes wrong: {note}." if note else ""


def _signature_of(node: Node) -> tuple:
    """Return what must be equal for two nodes to count as 'the same step'."""
    ast = node.ast
    if node.kind == "function":
        return ("function", ast.func.name)
    if node.kind == "aggregation":
        return ("aggregation", str(ast.op))
    if node.kind == "binary":
        return ("binary", str(ast.op))
    if node.kind in ("range", "subquery"):
        return (node.kind,)
    return (node.kind,)


def _same_result(a: Node, b: Node, tol: tuple[float, float]) -> str | None:
    """Say how node ``a`` differs from ``b`` ("returns 9 series instead of 1"), or None."""
    if a.kind == b.kind == "number":
        same = _close(a.values[0][1], b.values[0][1], *tol)
        return None if same else f"differs from the reference's {b.expr}"
    if a.error or b.error:
        if a.error == b.error:
            return None
        return f"fails: {a.error}" if a.error else "returns data where the reference's step fails"
    if a.result_type != b.result_type:
        return f"returns {_a(a.result_type)} where the reference's returns {_a(b.result_type)}"
    if a.result_type == "range vector":
        if a.series != b.series:
            return f"holds {a.series} series instead of {b.series}"
        windows = (_window_text(a.ast), _window_text(b.ast))
        if windows[0] != windows[1] or a.samples_per_series != b.samples_per_series:
            return (
                f"spans {windows[0]}, the reference's {windows[1]} "
                f"({_span(a.samples_per_series)} samples per series instead of "
                f"{_span(b.samples_per_series)})"
            )
        return None
    if set(a.labels) != set(b.labels):
        extra, missing = set(a.labels) - set(b.labels), set(b.labels) - set(a.labels)
        parts = []
        if extra:
            parts.append(f"keeps {', '.join(sorted(extra))}, which the reference drops")
        if missing:
            parts.append(f"drops {', '.join(sorted(missing))}, which the reference keeps")
        counts = f": {_series_word(a.series)} instead of {b.series}" if a.series != b.series else ""
        return f"{' and '.join(parts)}{counts}"
    if a.series != b.series:
        return f"returns {_series_word(a.series)} instead of {b.series}"
    theirs = {frozenset(lb.items()): v for lb, v in b.values}
    for labels, value in a.values:
        want = theirs.get(frozenset(labels.items()))
        shown = _fmt_labels(_telling(labels, a.values))
        if want is None:
            return f"returns {shown}, which the reference's result lacks"
        if not _close(value, want, *tol):
            where = f" for {shown}" if labels else ""
            return f"gives {_fmt_value(value)} instead of {_fmt_value(want)}{where}"
    return None


def _diverge(mine: Node, ref: Node, tol) -> tuple[Node | None, str] | None:
    """Return (last agreeing node, what differs) at the first divergence, innermost first."""
    if _signature_of(mine) == _signature_of(ref) and len(mine.children) == len(ref.children):
        agreed = None
        for my_child, ref_child in zip(mine.children, ref.children, strict=True):
            found = _diverge(my_child, ref_child, tol)
            if found is not None:
                return found
            if my_child.kind not in ("number", "string"):
                agreed = my_child
        why = _same_result(mine, ref, tol)
        if why is None:
            return None
        return agreed, f"then your {_step(mine)} {why}"
    # Different steps: if one tree only wraps the other, line up the inner parts first.
    for ref_child in ref.children:
        if _signature_of(ref_child) == _signature_of(mine) and not _diverge(mine, ref_child, tol):
            why = _same_result(mine, ref, tol)
            yours = f" (yours {why})" if why else ""
            return mine, f"the reference then applies {_step(ref)}, which yours doesn't{yours}"
    for my_child in mine.children:
        if _signature_of(my_child) == _signature_of(ref) and not _diverge(my_child, ref, tol):
            why = _same_result(mine, ref, tol)
            return my_child, f"then your {_step(mine)} is a step the reference doesn't take" + (
                f": it {why}" if why else ""
            )
    why = _same_result(mine, ref, tol)
    return None, f"your {_step(mine)} stands where the reference has {_step(ref)}" + (
        f": yours {why}" if why else ""
    )


def _a(noun: str) -> str:
    """Return the noun with its indefinite article: "an instant vector", "a scalar"."""
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def _window_text(ast: Any) -> str:
    """Return a range's or subquery's window as written: [5m] or [5m:1m]."""
    if isinstance(ast, pp.SubqueryExpr):
        step = _fmt_duration(ast.step) if ast.step else ""
        return f"[{_fmt_duration(ast.range)}:{step}]"
    return f"[{_fmt_duration(ast.range)}]"


def _step(node: Node, limit: int = 60) -> str:
    """Name a node for a message: its text, long arguments shortened (`sum by (route) (…)`)."""
    text = node.expr
    if len(text) > limit:
        for child in node.children:
            if len(child.expr) > 12:
                window = _window_text(child.ast) if child.kind in ("range", "subquery") else ""
                text = text.replace(child.expr, "…" + window, 1)
    return f"`{_short(text, limit)}`"


def _short(expr: str, limit: int = 60) -> str:
    """Shorten a long expression for a one-line message."""
    return expr if len(expr) <= limit else expr[: limit - 1] + "…"


def _span(pair: tuple[int, int] | None) -> str:
    if not pair:
        return "0"
    low, high = pair
    return str(low) if low == high else f"{low}–{high}"


# --- formatting ----------------------------------------------------------------------------


def _tree_prefixes(root: Node) -> Iterator[tuple[Node, str, str]]:
    """Yield (node, line prefix, continuation prefix) drawing ├─ └─ │ tree lines."""

    def walk(node: Node, prefix: str, last: bool, top: bool) -> Iterator:
        if top:
            yield node, "", "│" if node.children else " "
            child_prefix = ""
        else:
            branch = "└─ " if last else "├─ "
            yield (
                node,
                prefix + branch,
                prefix + ("   " if last else "│  ") + ("│" if node.children else " "),
            )
            child_prefix = prefix + ("   " if last else "│  ")
        for i, child in enumerate(node.children):
            yield from walk(child, child_prefix, i == len(node.children) - 1, False)

    yield from walk(root, "", True, True)


def _telling(labels: Mapping[str, str], values: list) -> dict[str, str]:
    """Return ``labels`` without those every series in ``values`` shares (job, instance…)."""
    if len(values) < 2:
        return dict(labels)
    return {k: v for k, v in labels.items() if len({lb.get(k) for lb, _ in values}) > 1}


def _fmt_labels(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _fmt_value(value: float) -> str:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return f"{value:.4g}"


def _fmt_duration(delta: Any) -> str:
    seconds = delta.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _fmt_time(at: float) -> str:
    return datetime.fromtimestamp(at, tz=prom.to_datetime(0).tzinfo).strftime(
        "%Y-%m-%d %H:%M:%S UTC"
    )


def _close(a: float, b: float, rel_tol: float, abs_tol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)

"""Exercises of notebook 03_promql_and_percentiles, checked on the day of history.

Each PromQL answer is evaluated next to the reference at a fixed offset into the
stack's day (the same numbers on every stack), with the seed's 15 s scrape
interval for the window checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import promql_parser as pp

from course_lib import history

from .core import ExerciseFailed, ExerciseSetupError, register
from .kinds import Predicate, PromQL

H = 3600
HTTP = "vrewcraft_http_requests_total"
HTTP_BUCKETS = "vrewcraft_http_request_duration_seconds_bucket"
THUMB_BUCKETS = "vrewcraft_thumbnail_duration_seconds_bucket"
THUMBS = "vrewcraft_thumbnail_requests_total"
HIT_GAUGE = "vrewcraft_thumbnail_cache_hit_ratio"


def _as_stack(stack: Any):
    """Return ``stack``, or the COURSE_* environment's stack for None."""
    if stack is None:
        from course_lib.config import StackConfig
        from course_lib.stack import Stack

        return Stack(StackConfig.from_env())
    if not hasattr(stack, "history_window"):
        raise ExerciseSetupError(
            "exercises on the day of history need the stack itself: check(…, answer, stack)."
        )
    return stack


def day_of(stack: Any):
    """Return the stack's day of history (``backfill.HistoryWindow``)."""
    return _as_stack(stack).history_window()


# --- the day's PromQL kind ---------------------------------------------------------------------


def _nodes(node) -> Iterator:
    """Yield ``node`` and every sub-expression below it."""
    yield node
    children: list = []
    if isinstance(node, pp.AggregateExpr):
        children = [c for c in (node.param, node.expr) if isinstance(c, pp.Expr)]
    elif isinstance(node, pp.Call):
        children = list(node.args)
    elif isinstance(node, pp.BinaryExpr):
        children = [node.lhs, node.rhs]
    elif isinstance(node, pp.ParenExpr | pp.UnaryExpr | pp.SubqueryExpr):
        children = [node.expr]
    elif isinstance(node, pp.MatrixSelector):
        children = [node.vector_selector]
    for child in children:
        yield from _nodes(child)


def _parsed(query: str):
    try:
        return pp.parse(query)
    except ValueError:
        return None


def uses_function(name: str) -> Callable[[str], bool]:
    """Return a test: does the query call function ``name``?"""

    def test(query: str) -> bool:
        tree = _parsed(query)
        return tree is not None and any(
            isinstance(n, pp.Call) and n.func.name == name for n in _nodes(tree)
        )

    return test


def reads_metric(metric: str) -> Callable[[str], bool]:
    """Return a test: does the query select ``metric``?"""

    def test(query: str) -> bool:
        tree = _parsed(query)
        return tree is not None and any(
            isinstance(n, pp.VectorSelector) and n.name == metric for n in _nodes(tree)
        )

    return test


@dataclass
class DayPromQL(PromQL):
    """A PromQL exercise on the day of history, evaluated ``offset`` seconds into the day.

    ``mistakes`` are (test, hint) pairs: when the answer's numbers are wrong and a
    test recognises the query, the learner gets that hint instead of a bare
    "values differ".

    >>> ex = DayPromQL("03.demo", "up", offset=12 * 3600)
    >>> ex.check("up", stack)                                  # doctest: +SKIP
    """

    offset: float = 0.0
    mistakes: tuple[tuple[Callable[[str], bool], str], ...] = ()
    scrape_interval: float | None = float(history.STEP)

    def evaluate(self, answer: Any, stack: Any) -> str:
        """Evaluate the answer at the fixed offset into this stack's day."""
        at = day_of(stack).at(self.offset)
        try:
            return PromQL.evaluate(replace(self, at=at), answer, stack)
        except ExerciseFailed:
            for test, hint in self.mistakes:
                if isinstance(answer, str) and test(answer):
                    raise ExerciseFailed(hint) from None
            raise


IRATE_HINT = (
    "irate() looks at the last two samples of the window only, so a dashboard panel of it "
    "jumps with every scrape and hides everything between its points: use rate(…[5m]), "
    "which averages the whole window."
)
GAUGE_RATIO_HINT = (
    "vrewcraft_thumbnail_cache_hit_ratio is the seed's in-process gauge: hits / lookups since "
    "the process started. It can't be windowed, so an incident barely moves it, and it "
    "restarts with the process. Divide rates of vrewcraft_thumbnail_requests_total instead."
)

# --- 03.api_p99: the service's p99, aggregated ---------------------------------------------------

register(
    DayPromQL(
        "03.api_p99",
        f"histogram_quantile(0.99, sum by (le) (rate({HTTP_BUCKETS}[5m])))",
        offset=14 * H + 20 * 60,
        nudge="Rate the _bucket series over 5m, add them up keeping only le, then ask "
        "histogram_quantile for 0.99.",
    )
)

# --- 03.route_rates: a dashboard panel of requests per second by route -------------------------

register(
    DayPromQL(
        "03.route_rates",
        f"sum by (route) (rate({HTTP}[5m]))",
        offset=20 * H,
        require_labels=["route"],
        mistakes=((uses_function("irate"), IRATE_HINT),),
        nudge="rate(…[5m]) of the request counter, summed keeping the route label.",
    )
)

# --- 03.hit_ratio: the cache hit ratio from counters during the incident -----------------------

register(
    DayPromQL(
        "03.hit_ratio",
        f'sum(rate({THUMBS}{{cache_status="hit"}}[5m])) / sum(rate({THUMBS}[5m]))',
        offset=19 * H + 45 * 60,
        mistakes=((reads_metric(HIT_GAUGE), GAUGE_RATIO_HINT),),
        nudge="Hits per second divided by lookups per second, both from "
        "vrewcraft_thumbnail_requests_total over 5m.",
    )
)

# --- 03.error_ratio: the share of 5xx responses ----------------------------------------------

register(
    DayPromQL(
        "03.error_ratio",
        f'sum(rate({HTTP}{{status_code=~"5.."}}[5m])) / sum(rate({HTTP}[5m]))',
        offset=14 * H + 20 * 60,
        nudge='Requests per second with status_code=~"5.." divided by all requests per '
        "second, each summed into one number before dividing.",
    )
)

# --- 03.incident_minutes: find the incident with a range query ---------------------------------

INCIDENT_QUERY = f"histogram_quantile(0.99, sum by (le) (rate({THUMB_BUCKETS}[5m])))"


def incident_minutes(stack: Any) -> int:
    """Return how many whole minutes of the day have the thumbnail p99 above 50 ms."""
    stack = _as_stack(stack)
    day = stack.history_window()
    df = stack.query_range(INCIDENT_QUERY, day.at(0), day.at(history.DAY - 60), step=60)
    return int((df["value"] > 0.05).sum())


def _check_minutes(answer: Any, stack: Any) -> bool | str:
    if isinstance(answer, bool) or not isinstance(answer, int | float):
        return "answer with a number of minutes, e.g. answer = 12."
    if math.isnan(answer):
        return "NaN is not a number of minutes; count the minutes whose p99 is above 0.05."
    want = incident_minutes(stack)
    if abs(answer - want) <= 1:
        return True
    event = history.event("thumbnail_incident")
    if answer == (event.end - event.start) / 60:
        return (
            "that is the scripted event's length from the table; measure it instead: the "
            "p99 over 5m windows lags the event, so count the minutes the query says."
        )
    if abs(answer / 60 - want) <= 1:
        return "that looks like seconds; the question asks for minutes."
    direction = "too many" if answer > want else "too few"
    return (
        f"{answer:g} minutes is {direction}: evaluate the p99 every minute over the whole day "
        "(query_range with step=60) and count the points above 0.05 s."
    )


register(
    Predicate(
        "03.incident_minutes",
        test=_check_minutes,
        solution_from_stack=incident_minutes,
        expects="a number of minutes, e.g. answer = 12",
        nudge="stack.query_range(the p99 query, day.at(0), day.at(history.DAY - 60), step=60), "
        "then count the values above 0.05.",
    )
)

"""Grafana's query macros, expanded the way Grafana does before a query reaches Prometheus.

Prometheus never sees ``$__rate_interval``: Grafana replaces it (and ``$__interval``,
``$__range``, template variables such as ``$route``) first. To run a dashboard's
queries without Grafana, do the same:

>>> ctx = QueryContext(start=0, end=24 * 3600, width_px=600, scrape_interval=2)
>>> ctx.interval, ctx.rate_interval, ctx.range
(120.0, 122.0, 86400)
>>> expand('rate(x{route=~"$route"}[$__rate_interval])', ctx, {"route": ["/api/videos"]})
'rate(x{route=~"/api/videos"}[2m2s])'

The rules (Grafana 11, Prometheus data source):

* ``$__interval`` = (end - start) / max data points, rounded to a "nice" interval by
  Grafana's table, never below the data source's scrape interval (``timeInterval``).
  Max data points is the panel's width in pixels. It is also the range query's step.
* ``$__rate_interval`` = max(``$__interval`` + scrape interval, 4 × scrape interval).
* ``$__range`` = end - start, in whole seconds.
* A multi-value or include-all variable becomes ``(a|b)``, each value regex-escaped;
  "All" becomes the variable's ``allValue`` (``.*`` here) when it has one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALL",
    "QueryContext",
    "expand",
    "format_duration",
    "round_interval",
    "variable_value",
]

#: The value Grafana shows as "All" for an include-all variable.
ALL = "$__all"

# Grafana's interval rounding (pkg/components/gtime, roundInterval): (upper bound, result) in ms.
_ROUNDING_MS = (
    (10, 1),
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1_500, 1_000),
    (3_500, 2_000),
    (7_500, 5_000),
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (750_000, 600_000),
    (1_050_000, 900_000),
    (1_500_000, 1_200_000),
    (2_700_000, 1_800_000),
    (5_400_000, 3_600_000),
    (9_000_000, 7_200_000),
    (16_200_000, 10_800_000),
    (32_400_000, 21_600_000),
    (86_400_000, 43_200_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
)


def round_interval(seconds: float) -> float:
    """Round an interval the way Grafana does (``roundInterval``); seconds in, seconds out.

    >>> round_interval(96), round_interval(36), round_interval(1.4)
    (120.0, 30.0, 1.0)
    """
    ms = seconds * 1000
    for upper, result in _ROUNDING_MS:
        if ms <= upper:
            return result / 1000
    return 31_536_000.0  # a year


def format_duration(seconds: float) -> str:
    """Format seconds as a PromQL duration, like Go's ``time.Duration.String()`` does.

    >>> format_duration(122), format_duration(8), format_duration(3600), format_duration(0.5)
    ('2m2s', '8s', '1h', '500ms')
    """
    ms = round(seconds * 1000)
    if ms % 1000:
        return f"{ms}ms"
    rest = ms // 1000
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


@dataclass(frozen=True)
class QueryContext:
    """The time range and panel size a query runs for; derives Grafana's intervals from them.

    ``start``/``end`` are Unix seconds, ``width_px`` the panel width in pixels (Grafana's
    max data points), ``scrape_interval`` the data source's ``timeInterval`` in seconds.
    """

    start: float
    end: float
    width_px: int = 600
    scrape_interval: float = 15.0

    def __post_init__(self) -> None:
        if not self.end > self.start:
            raise ValueError(
                f"time range ends ({self.end}) before it starts ({self.start}): "
                "give start < end (Unix seconds)."
            )
        if self.width_px <= 0 or self.scrape_interval <= 0:
            raise ValueError(
                f"width_px ({self.width_px}) and scrape_interval ({self.scrape_interval}) "
                "must be positive."
            )

    @property
    def interval(self) -> float:
        """Return ``$__interval`` in seconds (also the range query's step)."""
        raw = (self.end - self.start) / self.width_px
        if raw < self.scrape_interval:
            return self.scrape_interval
        return max(round_interval(raw), self.scrape_interval)

    @property
    def rate_interval(self) -> float:
        """Return ``$__rate_interval`` in seconds."""
        return max(self.interval + self.scrape_interval, 4 * self.scrape_interval)

    @property
    def range(self) -> int:
        """Return ``$__range`` in whole seconds."""
        return round(self.end - self.start)

    def aligned(self) -> tuple[float, float]:
        """Return (start, end) aligned down to the step, as Grafana sends range queries."""
        step = self.interval
        return math.floor(self.start / step) * step, math.floor(self.end / step) * step


def _regex_escape(value: str) -> str:
    """Escape regex metacharacters in a PromQL string (Grafana's prometheusSpecialRegexEscape)."""
    value = value.replace("\\", "\\\\\\\\")
    value = re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), value)
    return value.replace("'", "\\\\'")


def variable_value(value: str | Sequence[str], variable: Mapping[str, Any] | None = None) -> str:
    """Return what Grafana writes into a query for a variable's current value.

    >>> variable_value(["/api/videos", "/api/upload"], {"multi": True})
    '(/api/videos|/api/upload)'
    >>> variable_value("$__all", {"includeAll": True, "allValue": ".*"})
    '.*'
    >>> print(variable_value("/api/videos/{video_id}", {"multi": True}))
    /api/videos/\\\\{video_id\\\\}
    """
    variable = variable or {}
    values = [value] if isinstance(value, str) else list(value)
    if values == [ALL] or ALL in values:
        if variable.get("allValue"):
            return str(variable["allValue"])
        values = [str(option) for option in variable.get("options_values", [])]
        if not values:
            raise ValueError(
                f"variable {variable.get('name', '?')!r} is set to All but has neither an "
                "allValue nor a list of values: give it allValue or pass the values."
            )
    if not variable.get("multi") and not variable.get("includeAll"):
        return values[0].replace("\\", "\\\\").replace("'", "\\\\'")
    escaped = [_regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]")


def expand(
    expr: str,
    ctx: QueryContext,
    variables: Mapping[str, str | Sequence[str]] | None = None,
    definitions: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """Return ``expr`` with Grafana's macros and template variables replaced.

    ``variables`` maps a variable name to its current value(s) (``ALL`` for All);
    ``definitions`` maps it to the dashboard's variable model (multi, includeAll,
    allValue). An unknown ``$name`` is a ValueError: Grafana would send it to Prometheus
    as is, and Prometheus would reject the query.
    """
    variables = dict(variables or {})
    definitions = definitions or {}
    builtins = {
        "__rate_interval_ms": str(round(ctx.rate_interval * 1000)),
        "__rate_interval": format_duration(ctx.rate_interval),
        "__interval_ms": str(round(ctx.interval * 1000)),
        "__interval": format_duration(ctx.interval),
        "__range_ms": str(ctx.range * 1000),
        "__range_s": str(ctx.range),
        "__range": f"{ctx.range}s",
    }

    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name in builtins:
            return builtins[name]
        if name in variables:
            definition = {"name": name, **definitions.get(name, {})}
            return variable_value(variables[name], definition)
        known = sorted(set(builtins) | set(variables))
        raise ValueError(
            f"query {expr!r} uses ${name}, which is neither a Grafana macro nor a given "
            f"variable (known: {', '.join(known)}): pass variables={{{name!r}: ...}}."
        )

    return _VARIABLE.sub(replace, expr)

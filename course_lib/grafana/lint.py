"""Lint a Grafana dashboard file: the mistakes that make Grafana refuse it or mislead a reader.

Each rule returns plain sentences naming the panel and what to change:

>>> lint({"dashboard": {"uid": "x", "panels": []}})[0][:60]
'the file wraps the dashboard in {"dashboard": ...} (the HTTP'

Rules: no ``{"dashboard": ...}`` wrapper; a uid; no ``graph`` panels (Angular, removed in
Grafana 12: use ``timeseries``); no legacy panel ``alert`` (removed in Grafana 11: write
alert rules); every panel's data source is a provisioned uid or a template variable;
every query parses as PromQL once Grafana's macros are expanded; no two panels overlap
on the 24-column grid; every panel has a unit and a description.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import promql_parser

from .macros import ALL, QueryContext, expand

__all__ = ["lint", "lint_file", "panel_queries", "walk_panels"]

GRID_COLUMNS = 24
# Any context will do for parsing: only the syntax of the expanded query matters.
_PARSE_CONTEXT = QueryContext(start=0, end=3600, width_px=600, scrape_interval=15)


def walk_panels(board: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield every panel, including those nested in collapsed rows."""
    for panel in board.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []


def panel_queries(panel: Mapping[str, Any]) -> list[str]:
    """Return the PromQL expressions of a panel's visible targets."""
    return [t["expr"] for t in panel.get("targets") or [] if t.get("expr") and not t.get("hide")]


def _name(panel: Mapping[str, Any]) -> str:
    return f"panel {panel.get('id', '?')} {panel.get('title', '(no title)')!r}"


def _datasource_ok(ref: Any, uids: set[str], variables: set[str]) -> bool:
    if ref is None:
        return False
    uid = ref.get("uid") if isinstance(ref, Mapping) else ref
    if not isinstance(uid, str):
        return False
    return uid in uids or uid.lstrip("${").rstrip("}") in variables


def _overlaps(panels: list[dict[str, Any]]) -> Iterator[str]:
    cells: dict[tuple[int, int], dict[str, Any]] = {}
    for panel in panels:
        pos = panel.get("gridPos") or {}
        x, y, w, h = (pos.get(k) for k in "xywh")
        if not (
            isinstance(x, int) and isinstance(y, int) and isinstance(w, int) and isinstance(h, int)
        ) or (w <= 0 or h <= 0):
            yield f"{_name(panel)} has no usable gridPos (x, y, w, h): give it one."
            continue
        if x < 0 or x + w > GRID_COLUMNS:
            yield f"{_name(panel)} spans columns {x}..{x + w}; the grid has {GRID_COLUMNS}."
        reported = set()
        for cell in ((cx, cy) for cx in range(x, x + w) for cy in range(y, y + h)):
            other = cells.setdefault(cell, panel)
            if other is not panel and id(other) not in reported:
                reported.add(id(other))
                yield f"{_name(panel)} overlaps {_name(other)} at column {cell[0]}, row {cell[1]}."


def lint(
    board: Mapping[str, Any],
    datasources: Iterable[str] = ("vrewcraft-prometheus",),
) -> list[str]:
    """Return every problem found in a dashboard object (an empty list means clean)."""
    if set(board) == {"dashboard"} or ("dashboard" in board and "panels" not in board):
        return [
            'the file wraps the dashboard in {"dashboard": ...} (the HTTP API body); file '
            'provisioning needs the bare dashboard object: save what is inside "dashboard".'
        ]
    problems = []
    if not board.get("uid"):
        problems.append("the dashboard has no uid: set a fixed one so links and alerts survive.")
    uids = set(datasources)
    templating = (board.get("templating") or {}).get("list") or []
    variables = {v["name"]: v for v in templating if v.get("name")}
    values = {name: ALL if v.get("includeAll") else "x" for name, v in variables.items()}
    panels = [p for p in walk_panels(board) if p.get("type") != "row"]
    for panel in panels:
        name = _name(panel)
        if panel.get("type") == "graph":
            problems.append(
                f"{name} is a 'graph' panel (Angular, removed in Grafana 12): use 'timeseries'."
            )
        if "alert" in panel:
            problems.append(
                f"{name} has a legacy panel 'alert' (removed in Grafana 11): write it as a "
                "Prometheus alert rule instead."
            )
        if not _datasource_ok(panel.get("datasource"), uids, set(variables)):
            problems.append(
                f"{name} uses data source {panel.get('datasource')!r}, which is neither a "
                f"provisioned uid ({', '.join(sorted(uids))}) nor a template variable."
            )
        for target in panel.get("targets") or []:
            ref = target.get("datasource")
            if ref is not None and not _datasource_ok(ref, uids, set(variables)):
                problems.append(f"{name} target {target.get('refId')} uses data source {ref!r}.")
        if not panel_queries(panel):
            problems.append(f"{name} has no query.")
        for expr in panel_queries(panel):
            try:
                expanded = expand(expr, _PARSE_CONTEXT, values, variables)
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
                continue
            try:
                promql_parser.parse(expanded)
            except ValueError as exc:
                problems.append(f"{name}: query {expr!r} does not parse: {exc}")
        defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
        if not defaults.get("unit"):
            problems.append(
                f"{name} has no unit: set fieldConfig.defaults.unit (s, bytes, percentunit...)."
            )
        if not (panel.get("description") or "").strip():
            problems.append(f"{name} has no description: say what a bad value means.")
    problems.extend(_overlaps(panels))
    return problems


def lint_file(path: Path, datasources: Iterable[str] = ("vrewcraft-prometheus",)) -> list[str]:
    """Return the problems of the dashboard JSON file at ``path`` (unparsable JSON included)."""
    try:
        board = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return [f"{path} is not JSON ({exc}): no comments, no trailing commas."]
    return lint(board, datasources)

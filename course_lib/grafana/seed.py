"""The seed tutorial's dashboard file (part 3.3), exactly as published, for comparison.

It is kept to be taken apart, never provisioned: it is not JSON (a ``//`` comment),
it is wrapped in ``{"dashboard": ...}``, and its panels are the errata the course teaches.

>>> board = load()
>>> sorted(board), len(board["dashboard"]["panels"])
(['dashboard'], 7)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from .lint import panel_queries, walk_panels

__all__ = ["PATH", "load", "panel_table", "text"]

PATH = Path(__file__).with_name("seed_dashboard.jsonc")


def text() -> str:
    """Return the seed's file as published (comment line included)."""
    return PATH.read_text(encoding="utf-8")


def load() -> dict[str, Any]:
    """Return the seed's file parsed, after dropping its ``//`` comment lines."""
    lines = [line for line in text().splitlines() if not line.lstrip().startswith("//")]
    return json.loads("\n".join(lines))


def panel_table(board: dict[str, Any]) -> pd.DataFrame:
    """Return one row per panel: title, type, unit and queries (unwraps {"dashboard": ...})."""
    board = board.get("dashboard", board)
    rows = []
    for panel in walk_panels(board):
        unit = ((panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
        yaxes = panel.get("yaxes") or [{}]
        rows.append(
            {
                "title": panel.get("title"),
                "type": panel.get("type"),
                "unit": unit or yaxes[0].get("format") or "",
                "queries": len(panel_queries(panel)),
                "first query": (panel_queries(panel) or [""])[0],
            }
        )
    return pd.DataFrame(rows)

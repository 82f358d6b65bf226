"""The fault switch: cause incidents on purpose, from a notebook or curl.

``/admin/faults`` accepts and returns this JSON (every field optional on POST)::

    {
      "latency": {"/api/videos/{video_id}/thumbnail": 0.2, "*": 0.0},
      "error_ratio": 0.1,
      "error_routes": ["/api/videos"],
      "ffmpeg_broken": false,
      "flush_cache": true
    }

* ``latency``: extra seconds slept before handling, per route template; ``"*"`` applies
  to every ``/api`` route without an entry of its own.
* ``error_ratio``: share (0..1) of ``/api`` requests answered ``500`` with
  ``{"error": "injected_fault"}``; ``error_routes`` limits it to those templates
  (empty or missing: every ``/api`` route).
* ``ffmpeg_broken``: every ffmpeg job fails: ffprobe and ffmpeg command lines (probe,
  trim) get an invalid option, so they really fail; a thumbnail miss, decoded in-process
  with PyAV, fails with an injected error where decoding would start. Either way the
  failure is counted in ``vrewcraft_ffmpeg_errors_total`` (cache hits still work).
* ``flush_cache``: an action, not a state: empties the thumbnail cache once.

``GET`` shows the state (plus ``cache_flushes``, how many flushes happened), ``POST``
merges the given fields into it, ``PUT`` replaces it (missing fields reset),
``DELETE`` clears every fault. ``/metrics``, ``/healthz`` and ``/admin`` are never
affected, so monitoring keeps working during the incident.

>>> faults = FaultState()
>>> faults.update({"latency": {"*": 0.5}, "error_ratio": 0.25}, replace=False)
>>> faults.latency_for("/api/videos"), faults.error_ratio
(0.5, 0.25)
"""

from __future__ import annotations

import random
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

#: Extra latency of one route: bounded, so that the schema says what is accepted.
LatencySeconds = Annotated[float, Field(ge=0.0, le=30.0, allow_inf_nan=False)]


class FaultUpdate(BaseModel):
    """Body of POST/PUT /admin/faults (strict JSON types: "yes", 0 or "0.5" are refused)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    latency: dict[str, LatencySeconds] | None = Field(
        default=None, description="Extra seconds per route template; '*' = every /api route."
    )
    error_ratio: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Share of /api requests answered 500."
    )
    error_routes: list[str] | None = Field(
        default=None, description="Route templates the error ratio applies to (empty: all)."
    )
    ffmpeg_broken: bool | None = Field(default=None, description="Make every ffmpeg run fail.")
    flush_cache: bool = Field(default=False, description="Empty the thumbnail cache once.")


class FaultState:
    """The current faults of one service instance."""

    def __init__(self, seed: int | None = None) -> None:
        self.latency: dict[str, float] = {}
        self.error_ratio = 0.0
        self.error_routes: list[str] = []
        self.ffmpeg_broken = False
        self.cache_flushes = 0
        self._random = random.Random(seed)

    def update(self, body: dict[str, Any], replace: bool) -> None:
        """Apply a validated FaultUpdate body (merge, or replace when ``replace``)."""
        if replace:
            self.clear()
        if body.get("latency") is not None:
            self.latency.update(body["latency"])
            self.latency = {k: v for k, v in self.latency.items() if v > 0}
        if body.get("error_ratio") is not None:
            self.error_ratio = float(body["error_ratio"])
        if body.get("error_routes") is not None:
            self.error_routes = list(body["error_routes"])
        if body.get("ffmpeg_broken") is not None:
            self.ffmpeg_broken = bool(body["ffmpeg_broken"])

    def clear(self) -> None:
        """Remove every fault (the flush counter is history and stays)."""
        self.latency = {}
        self.error_ratio = 0.0
        self.error_routes = []
        self.ffmpeg_broken = False

    def latency_for(self, route: str) -> float:
        """Return the extra latency for one route template."""
        return self.latency.get(route, self.latency.get("*", 0.0))

    def should_fail(self, route: str) -> bool:
        """Decide (randomly, at error_ratio) whether this request gets an injected 500."""
        if self.error_ratio <= 0 or (self.error_routes and route not in self.error_routes):
            return False
        return self._random.random() < self.error_ratio

    def snapshot(self) -> dict[str, Any]:
        """Return the JSON shape shown by GET /admin/faults."""
        return {
            "latency": dict(self.latency),
            "error_ratio": self.error_ratio,
            "error_routes": list(self.error_routes),
            "ffmpeg_broken": self.ffmpeg_broken,
            "cache_flushes": self.cache_flushes,
        }

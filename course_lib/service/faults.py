"""The fault switch: cause incidents on purpose, from a notebook or curl.

``/admin/faults`` accepts and returns this JSON (every field optional on POST)::

    {
      "latency": {"/api/videos/{video_id}/thumbnail": 0.2, "*": 0.0},
      "error_ratio": 0.1,
      "error_routes": ["/api/videos"],
      "ffmpeg_broken": false,
      "cache_disabled": false,
      "memory_mb": 0,
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
* ``cache_disabled``: every thumbnail lookup bypasses the cache (a miss, and nothing
  is stored), so the hit ratio falls to 0 while every thumbnail is decoded again.
* ``memory_mb``: the process holds this many extra MiB of resident memory (a
  "leak"); setting it lower or clearing the faults frees it at once. Capped at
  ``MAX_MEMORY_MB`` and at half of the machine's available memory. Writing the memory
  takes about a second per GiB, during which the service answers nothing else.
* ``flush_cache``: an action, not a state: empties the thumbnail cache once.

``GET`` shows the state (plus ``cache_flushes``, how many flushes happened, and
``memory_held_mb``, the memory actually held), ``POST``
merges the given fields into it, ``PUT`` replaces it (missing fields reset),
``DELETE`` clears every fault. ``/metrics``, ``/healthz`` and ``/admin`` are never
affected, so monitoring keeps working during the incident.

>>> faults = FaultState()
>>> faults.update({"latency": {"*": 0.5}, "error_ratio": 0.25}, replace=False)
>>> faults.latency_for("/api/videos"), faults.error_ratio
(0.5, 0.25)
"""

from __future__ import annotations

import math
import mmap
import random
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict, Field, field_validator

#: The most memory the ``memory_mb`` fault may hold: enough to cross the HighMemoryUsage
#: alert's 1 GiB, small enough that a typo can't take the machine down.
MAX_MEMORY_MB = 2048
#: Memory is taken in chunks this large, each one written so its pages are resident
#: (a fresh, never-written allocation costs address space, not RAM).
_CHUNK_MB = 16


class FaultUpdate(BaseModel):
    """Body of POST/PUT /admin/faults."""

    model_config = ConfigDict(extra="forbid")

    latency: dict[str, float] | None = Field(
        default=None, description="Extra seconds per route template; '*' = every /api route."
    )
    error_ratio: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Share of /api requests answered 500."
    )
    error_routes: list[str] | None = Field(
        default=None, description="Route templates the error ratio applies to (empty: all)."
    )
    ffmpeg_broken: bool | None = Field(default=None, description="Make every ffmpeg run fail.")
    cache_disabled: bool | None = Field(
        default=None, description="Bypass the thumbnail cache: every lookup is a miss."
    )
    memory_mb: int | None = Field(
        default=None,
        ge=0,
        le=MAX_MEMORY_MB,
        description=f"Extra resident memory to hold, in MiB (at most {MAX_MEMORY_MB}).",
    )
    flush_cache: bool = Field(default=False, description="Empty the thumbnail cache once.")

    @field_validator("latency")
    @classmethod
    def _bounded_latency(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        """Refuse negative, non-finite or absurd (> 30 s) latencies."""
        for route, seconds in (value or {}).items():
            if not math.isfinite(seconds) or not 0.0 <= seconds <= 30.0:
                raise ValueError(f"latency for {route!r} must be between 0 and 30 seconds")
        return value

    @field_validator("memory_mb")
    @classmethod
    def _memory_available(cls, value: int | None) -> int | None:
        """Refuse to hold more than half of the memory the machine has available."""
        available_mb = psutil.virtual_memory().available // 2**20
        if value and value > available_mb // 2:
            raise ValueError(
                f"memory_mb={value} is more than half of the {available_mb} MiB this machine "
                f"has available; ask for at most {available_mb // 2}."
            )
        return value


class MemoryBallast:
    """Resident memory held on purpose, in chunks, until released.

    Each chunk is its own anonymous memory map, written so its pages are resident, and
    unmapped on release: the memory goes back to the OS at once. (Plain ``bytes`` of
    this size may come from the malloc heap once glibc has raised its mmap threshold,
    and freeing them would then not shrink the process.)

    >>> ballast = MemoryBallast()
    >>> ballast.resize(32); ballast.held_mb
    32
    >>> ballast.resize(0); ballast.held_mb
    0
    """

    def __init__(self) -> None:
        self._chunks: list[mmap.mmap] = []

    @property
    def held_mb(self) -> int:
        """Return how many MiB are held."""
        return len(self._chunks) * _CHUNK_MB

    def resize(self, mb: int) -> None:
        """Hold ``mb`` MiB (rounded up to whole chunks); freeing is immediate."""
        wanted = math.ceil(mb / _CHUNK_MB)
        while len(self._chunks) > wanted:
            self._chunks.pop().close()
        mib = b"\x5a" * 2**20
        while len(self._chunks) < wanted:
            chunk = mmap.mmap(-1, _CHUNK_MB * 2**20)
            for offset in range(0, len(chunk), len(mib)):
                chunk[offset : offset + len(mib)] = mib  # written, so resident
            self._chunks.append(chunk)


class FaultState:
    """The current faults of one service instance."""

    def __init__(self, seed: int | None = None) -> None:
        self.latency: dict[str, float] = {}
        self.error_ratio = 0.0
        self.error_routes: list[str] = []
        self.ffmpeg_broken = False
        self.cache_disabled = False
        self.memory = MemoryBallast()
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
        if body.get("cache_disabled") is not None:
            self.cache_disabled = bool(body["cache_disabled"])
        if body.get("memory_mb") is not None:
            self.memory.resize(int(body["memory_mb"]))

    def clear(self) -> None:
        """Remove every fault (the flush counter is history and stays)."""
        self.latency = {}
        self.error_ratio = 0.0
        self.error_routes = []
        self.ffmpeg_broken = False
        self.cache_disabled = False
        self.memory.resize(0)

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
            "cache_disabled": self.cache_disabled,
            "memory_mb": self.memory.held_mb,
            "cache_flushes": self.cache_flushes,
        }

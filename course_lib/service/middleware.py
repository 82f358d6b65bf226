"""HTTP metrics middleware: the Python twin of the seed's ``metricsMiddleware`` (part 2.4).

Fixes over the seed:

* ``route`` is the matched route's *template* (``/api/videos/{video_id}``), read from
  the ASGI scope after routing. Paths nothing matched all get ``route="<unmatched>"``,
  so a scanner probing 10,000 URLs adds one series, not 10,000.
* ``method`` is one of the standard methods or ``OTHER``: the method is client input too.
* Durations come from ``time.perf_counter()``, a monotonic clock (the seed used the wall clock).
* A handler that raises is still recorded, as status 500, before the error propagates.

It runs on every request, so it is written to be cheap: about 2.3 us of CPU per request
on its own, 1.4 of them the two ``prometheus_client`` updates
(``bench/middleware_breakdown.py``), and a few us in a whole app, where
prometheus-fastapi-instrumentator adds 8 times as much and starlette-exporter 16 times,
configured for the same metrics (``bench/instrumentors.py``). What makes the difference:

* a plain ASGI middleware, not ``BaseHTTPMiddleware``: no extra task and no response
  streaming through memory streams per request;
* the labelled children are looked up once per (method, route, status) and cached with
  their bound ``inc``/``observe``: ``.labels()`` validates and locks (~2 us), and the set
  of keys is bounded by design (methods folded, routes are the app's, statuses few);
* the cache is keyed by the route *object* (``id``), so the template string is worked
  out only the first time a route is seen, not on every request.

>>> route_label({"type": "http", "path": "/nope"})
'<unmatched>'
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import VrewCraftMetrics

UNMATCHED_ROUTE = "<unmatched>"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: A cached (counter inc, histogram observe, route object) for one label set. The route
#: object is kept so that its id, part of the cache key, can't be reused by another.
_Record = tuple[Callable[[], None], Callable[[float], None], Any]


def route_label(scope: Scope) -> str:
    """Return the route template the router matched, or ``<unmatched>``."""
    route: Any = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class PrometheusMiddleware:
    """Count and time every HTTP request by method, route template and status code."""

    def __init__(self, app: ASGIApp, metrics: VrewCraftMetrics) -> None:
        self.app = app
        self.requests = metrics.http_requests
        self.duration = metrics.http_request_duration
        # (method, id(route), status) -> record. Starlette routes define __eq__ without
        # __hash__, so they can't be keys themselves; their id can, while alive.
        self._records: dict[tuple[str, int, int], _Record] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # websockets and lifespan are measured elsewhere
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 500  # if the app raises before sending a response, that is what we say

        # A plain function returning send's awaitable, not a coroutine of its own: one
        # coroutine fewer per message, and the response start and body are 2 messages.
        def send_wrapper(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = perf_counter() - start
            method = scope["method"]
            if method not in KNOWN_METHODS:  # fold first: the key must stay bounded
                method = "OTHER"
            route = scope.get("route")  # set by the router; absent when nothing matched
            record = self._records.get((method, id(route), status))
            if record is None:
                record = self._record_for(method, route, status)
            record[0]()
            record[1](elapsed)

    def _record_for(self, method: str, route: Any, status: int) -> _Record:
        """Create (and cache) the labelled children of a label set seen for the first time."""
        labels = (method, route_label({"route": route}), str(status))
        record = (self.requests.labels(*labels).inc, self.duration.labels(*labels).observe, route)
        self._records[(method, id(route), status)] = record
        return record

"""Request guard: bounded bodies, bodies that stall time out, HEAD on every GET route.

A plain ASGI middleware in front of the router (inside the HTTP metrics middleware, so
everything it refuses is still counted under its route):

* A body bigger than ``max_body_bytes`` (JSON bodies: a trim, a fault update) is refused
  with 413 before any of it is read when ``Content-Length`` says so, and as soon as the
  running count passes the limit otherwise (chunked bodies). Paths in
  ``unlimited_paths`` (the upload, which enforces its own, larger limit while streaming to
  disk) are exempt from the size limit only.
* A client that stops sending its body for ``body_timeout`` seconds gets 408: a stalled
  upload can't hold a request (and its temporary file) forever.
* ``HEAD`` is served by the ``GET`` route (FastAPI only routes the methods a route
  declares); the server drops the body, the headers are those of the ``GET``.

Both errors are raised as HTTP exceptions from ``receive``, inside the route's handler,
so they get the service's JSON error shape like any other error.

>>> sorted(BODY_METHODS)
['DELETE', 'PATCH', 'POST', 'PUT']
"""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The rest of a refused body is never read: the connection can't carry another request.
CLOSE = {"Connection": "close"}


class RequestGuard:
    """Limit body size and body idle time; route HEAD to GET."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        body_timeout: float,
        unlimited_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.unlimited_paths = unlimited_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "HEAD":
            await self.app(scope, receive, _as_get(scope, send))
            return
        if method in BODY_METHODS:
            limit = None if scope["path"] in self.unlimited_paths else self.max_body_bytes
            receive = self._guarded(scope, receive, limit)
        await self.app(scope, receive, send)

    def _guarded(self, scope: Scope, receive: Receive, limit: int | None) -> Receive:
        """Return ``receive`` with the size limit and idle timeout applied."""
        declared = _content_length(scope)
        timeout = self.body_timeout
        received = 0

        async def guarded_receive() -> Message:
            nonlocal received
            if limit is not None and declared is not None and declared > limit:
                raise _too_large(limit)
            try:
                async with asyncio.timeout(timeout):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408,
                    f"the request body stalled: nothing received for {timeout:g} s",
                    headers=CLOSE,
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if limit is not None and received > limit:
                    raise HTTPException(413, f"the request body is over the limit of {limit} bytes")
            return message

        return guarded_receive


def _too_large(limit: int) -> HTTPException:
    """Return the 413 for a body over ``limit`` bytes."""
    return HTTPException(413, f"the request body is over the limit of {limit} bytes", headers=CLOSE)


def _as_get(scope: Scope, send: Send) -> Send:
    """Route a HEAD request as GET; return a ``send`` that says HEAD again in time."""
    scope["method"] = "GET"

    async def send_as_head(message: Message) -> None:
        if message["type"] == "http.response.start":
            # The server drops the body of a HEAD response: it must see HEAD by now.
            scope["method"] = "HEAD"
        await send(message)

    return send_as_head


def _content_length(scope: Scope) -> int | None:
    """Return the declared Content-Length, or None if absent or unreadable."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None

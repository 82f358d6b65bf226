"""How the service is served: uvicorn, with no way for a slow client to hold a connection.

uvicorn (0.54, h11) waits for a request's headers without a deadline: a client that
connects and sends half a request line is held forever (keep-alive's timer only runs
between requests, and any byte received cancels it). ``HeadTimeoutH11Protocol`` gives
every request ``head_timeout`` seconds from the connection (or the previous response)
to its complete headers, then answers 408 and closes. Bodies that stall are the
``RequestGuard``'s job (``guard.py``).

WebSocket upgrades run on uvicorn's ``websockets-sansio`` implementation (its default
for the future; the ``websockets`` one is deprecated). It never answers an upgrade whose
request line or a header line is longer than the websockets library's limits: the
connection hangs. The protocol checks those limits itself before handing the upgrade
over, and answers 400 at once.

>>> issubclass(head_timeout_protocol(1.0), HeadTimeoutH11Protocol)
True
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from websockets.http11 import MAX_LINE_LENGTH, MAX_NUM_HEADERS

from .settings import Settings

WS_IMPLEMENTATION = "websockets-sansio"
TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 32\r\n\r\nrequest headers took too long.\r\n"
)


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers."""

    head_timeout = 15.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers are in: the app's turn
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm()  # the next request on this keep-alive connection

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        """Answer 400 to an upgrade the WebSocket parser would silently choke on."""
        request_line = len(event.method) + len(event.target) + len(b"  HTTP/1.1")
        too_long = request_line > MAX_LINE_LENGTH or any(
            len(name) + len(value) + 2 > MAX_LINE_LENGTH for name, value in self.headers
        )
        if too_long or len(self.headers) > MAX_NUM_HEADERS:
            self.send_400_response(
                f"WebSocket upgrade refused: lines are limited to {MAX_LINE_LENGTH} bytes "
                f"and headers to {MAX_NUM_HEADERS}"
            )
            return
        super().handle_websocket_upgrade(event)

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.write(TIMEOUT_RESPONSE)
            self.transport.close()


def head_timeout_protocol(seconds: float) -> type[HeadTimeoutH11Protocol]:
    """Return the h11 protocol class with a ``seconds`` deadline for request headers."""
    return type("HeadTimeoutH11Protocol", (HeadTimeoutH11Protocol,), {"head_timeout": seconds})


def uvicorn_config(app: Any, host: str, port: int, settings: Settings, **options: Any) -> Any:
    """Return the uvicorn config the service runs with (CLI, tests and benchmark alike)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=head_timeout_protocol(settings.client_timeout_seconds),
        ws=WS_IMPLEMENTATION,
        lifespan="on",
        access_log=False,
        **options,
    )

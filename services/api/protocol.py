"""The HTTP/1.1 protocol the API is served with: uvicorn's httptools protocol plus deadlines on
receiving a request, so that a slow client cannot hold a connection open (slowloris).

uvicorn bounds the wait between the requests of a keep-alive connection, but not the time a
client takes to send one: headers sent a line at a time, or a body a byte at a time, held a
connection for as long as the client liked. Here a request's headers must be complete within
``RELAI_HEADER_TIMEOUT_S`` of its first byte (the first request's: of the connection opening),
and its body within ``RELAI_BODY_TIMEOUT_S`` of its headers, whatever the app does meanwhile.
Past either, the connection is closed; a 408 in the one JSON error shape comes first when no
answer is under way on it (never to a connection that sent nothing).

The timeouts are the served app's settings, read from its lifespan state (uvicorn hands each
connection the same dict), so that every worker process, and a test serving an app built from
its own settings, uses the app's values.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from services.api.hardening import SECURITY_HEADERS
from services.api.metrics import CONNECTIONS_REFUSED
from services.api.settings import ApiSettings
from services.api.state import lifespan_app_state

TIMEOUT_BODY = orjson.dumps(
    {"detail": "the request was not received in time", "code": "request_timeout"}
)
_HEADER_TIMEOUT = CONNECTIONS_REFUSED.labels("header_timeout")
_BODY_TIMEOUT = CONNECTIONS_REFUSED.labels("body_timeout")


class DeadlineProtocol(HttpToolsProtocol):
    """One timer per connection: armed for the headers when the connection opens and when a
    request begins, for the body when its headers are complete, disarmed when the request is
    complete (uvicorn's keep-alive timeout then bounds the wait for the next one)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._header_timeout_s, self._body_timeout_s = _timeouts(app_state)
        self._deadline: asyncio.TimerHandle | None = None
        self._receiving = False
        """A request has begun and is not yet complete."""

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        self._arm(self._header_timeout_s, body=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._receiving = True
        self._arm(self._header_timeout_s, body=False)

    def on_headers_complete(self) -> None:
        self._arm(self._body_timeout_s, body=True)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._receiving = False
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        # The connection is the WebSocket protocol's from here (pings bound it).
        self._disarm()
        super().handle_websocket_upgrade()

    def _arm(self, delay: float, *, body: bool) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(delay, self._expired, body)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, body: bool) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        (_BODY_TIMEOUT if body else _HEADER_TIMEOUT).inc()
        cycle: RequestResponseCycle | None = self.cycle
        if body:
            # This request's answer, unless the app has begun it or an earlier pipelined
            # request is still being answered. The app's own answer is then dropped, and its
            # next read says that the client left.
            answer = cycle is not None and not cycle.response_started and not self.pipeline
            if cycle is not None and answer:
                cycle.disconnected = True
                cycle.message_event.set()
        else:
            answer = self._receiving and (cycle is None or cycle.response_complete)
        if answer:
            self.transport.write(self._timeout_answer())
        self.transport.close()

    def _timeout_answer(self) -> bytes:
        headers = (
            *self.server_state.default_headers,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(TIMEOUT_BODY)).encode()),
            (b"connection", b"close"),
            *SECURITY_HEADERS,
        )
        lines = [
            b"HTTP/1.1 408 Request Timeout",
            *(name + b": " + value for name, value in headers),
        ]
        return b"\r\n".join(lines) + b"\r\n\r\n" + TIMEOUT_BODY


def _timeouts(app_state: dict[str, Any]) -> tuple[float, float]:
    """The header and body timeouts of the served app; the settings' defaults for an app
    without its lifespan state."""
    state = lifespan_app_state(app_state)
    if state is not None:
        return state.settings.header_timeout_s, state.settings.body_timeout_s
    fields = ApiSettings.model_fields
    return fields["header_timeout_s"].default, fields["body_timeout_s"].default

"""The HTTP server's own protocol: bounded request heads and the API's JSON error shape.

uvicorn bounds a request's body through the app (``BodyLimitMiddleware``), but not its
head: httptools buffers a header line that never ends for as long as the client sends it,
and no deadline applies before a request's head is complete (``timeout_keep_alive`` runs
only between requests). The protocols here add, on both of uvicorn's HTTP paths
(httptools and h11):

- a cap on the request head's bytes and on its header count (``HeadLimits``): past it the
  answer is a JSON 431 and the connection closes, so a connection holds at most the cap
  (plus one socket read) of an unfinished head;
- a deadline for a complete request head, counted from a connection's start and from
  the first byte of each later request: past it the connection gets a JSON 408 (or, when
  it sent nothing, is closed);
- the server's own refusals (a bad request line, a broken header, bad chunking) in the
  same ``{"error": {"code", "message"}}`` body as every other error.

A refusal is a lingering close: the answer is written, the write side shut, and what the
client still sends is read and dropped for a moment, so a client that is still sending
reads the status instead of a connection reset.

``ServiceConfig`` is uvicorn's ``Config`` with the limits attached, so they reach every
worker process (the config is what uvicorn hands each worker).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Any

import h11
import orjson
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from recsvc.config import HeadLimits

try:
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

LINGER_S = 2.0
"""How long a refused connection's further bytes are read and dropped before it closes."""

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
}
_CODES = {400: "bad_request", 408: "request_timeout", 431: "request_header_too_large"}
_HEAD_END = re.compile(rb"\n\r?\n")


class ServiceConfig(uvicorn.Config):
    """uvicorn's configuration with the request-head limits the protocols read."""

    def __init__(self, app: Any, *, head_limits: HeadLimits | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("http", HTTP_PROTOCOL)
        super().__init__(app, **kwargs)
        self.head_limits = head_limits or HeadLimits()


def _limits(config: uvicorn.Config) -> HeadLimits:
    limits = getattr(config, "head_limits", None)
    return limits if isinstance(limits, HeadLimits) else HeadLimits()


def refusal(status: int, message: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole HTTP response refusing a request: the JSON error body, connection closed."""
    body = orjson.dumps({"error": {"code": _CODES[status], "message": message}})
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])]
    lines += [name + b": " + value + b"\r\n" for name, value in default_headers]
    lines += [
        b"content-type: application/json\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"connection: close\r\n\r\n",
        body,
    ]
    return b"".join(lines)


class HeadRefusedError(Exception):
    """Raised inside a parser callback to stop parsing a head over its limits."""


class HeadGuard:
    """One connection's request-head accounting: bytes and headers of the head being
    read, its deadline, and the refusal once it is over a limit.

    ``open`` is whether the bytes arriving belong to a request head. Each chunk is
    checked before the parser sees it (``admit``); where a chunk holds the end of a head
    and the start of a body, only the bytes up to the limit are looked at, and the
    parser's complete head is measured exactly (``complete``).
    """

    def __init__(
        self,
        limits: HeadLimits,
        loop: asyncio.AbstractEventLoop,
        transport: asyncio.Transport,
        default_headers: list[tuple[bytes, bytes]],
    ) -> None:
        self.limits, self.loop, self.transport = limits, loop, transport
        self.default_headers = default_headers
        self.open = True
        self.received = 0
        self.headers = 0
        self.tail = b""
        self.refused: tuple[int, str] | None = None
        self.discarding = False
        self.timer: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        if self.timer is None and not self.discarding:
            self.timer = self.loop.call_later(self.limits.timeout_s, self._expired)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expired(self) -> None:
        self.timer = None
        if not self.open or self.transport.is_closing():
            return
        if self.received == 0 and self.headers == 0:
            self.transport.close()  # nothing sent: nobody to answer
            return
        self.refuse(408, f"request head not complete within {self.limits.timeout_s:g} s")

    def admit(self, data: bytes) -> bool:
        """Whether ``data`` may go to the parser; False: refused (answered and closing)."""
        if self.discarding:
            return False
        if not self.open:
            return True
        self.arm()
        room = self.limits.max_bytes - self.received
        if len(data) <= room:
            self.received += len(data)
            self.tail = (self.tail + data)[-3:]
            return True
        if _HEAD_END.search(self.tail + data[: max(room, 0)]) is not None:
            # The head ends within the limit; the rest of the chunk is the body.
            self.received = self.limits.max_bytes
            return True
        self.refuse(431, self._too_large())
        return False

    def _too_large(self) -> str:
        return f"request head over {self.limits.max_bytes:,} bytes"

    def header(self) -> None:
        """One more header line of the head being read."""
        self.headers += 1
        if self.headers > self.limits.max_count:
            self.refused = (431, f"more than {self.limits.max_count} request headers")
            raise HeadRefusedError(self.refused[1])

    def complete(self, size: int, count: int) -> None:
        """The head is complete: ``size`` bytes of target and headers, ``count`` headers."""
        self.cancel()
        self.open, self.received, self.headers, self.tail = False, 0, 0, b""
        if count > self.limits.max_count:
            self.refused = (431, f"more than {self.limits.max_count} request headers")
        elif size > self.limits.max_bytes:
            self.refused = (431, self._too_large())
        if self.refused is not None:
            raise HeadRefusedError(self.refused[1])

    def reopen(self) -> None:
        """The request's message is complete: what comes next is another head."""
        self.open, self.received, self.headers, self.tail = True, 0, 0, b""

    def refuse(self, status: int, message: str) -> None:
        """Answers ``status`` in the JSON shape, then closes the connection lingering."""
        self.cancel()
        self.open, self.discarding = False, True
        if self.transport.is_closing():
            return
        self.transport.write(refusal(status, message, self.default_headers))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:  # pragma: no cover - TLS transports cannot half-close
            self.transport.close()

    def refuse_pending(self, fallback: str) -> None:
        """Answers the refusal a parser callback raised, or a 400 for a parser error."""
        status, message = self.refused or (400, fallback)
        self.refuse(status, message)


def _head_size(target: bytes, headers: Iterable[tuple[bytes, bytes]]) -> int:
    return len(target) + sum(len(name) + len(value) + 4 for name, value in headers)


class _GuardedConnection(h11.Connection):
    """h11's connection, checking each complete request head against the guard."""

    guard: HeadGuard | None = None

    def next_event(self) -> Any:
        event = super().next_event()
        if isinstance(event, h11.Request) and self.guard is not None:
            try:
                self.guard.complete(_head_size(event.target, event.headers), len(event.headers))
            except HeadRefusedError as exc:
                raise h11.RemoteProtocolError(str(exc), error_status_hint=431) from exc
        return event


class JSONErrorsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with bounded request heads and JSON refusals."""

    guard: HeadGuard

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.head_limits = _limits(config)
        # h11's own cap on an incomplete head stays above ours, which answers first.
        self.conn = _GuardedConnection(
            h11.SERVER, max_incomplete_event_size=2 * self.head_limits.max_bytes + 1024
        )

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.guard = HeadGuard(
            self.head_limits, self.loop, transport, self.server_state.default_headers
        )
        assert isinstance(self.conn, _GuardedConnection)
        self.conn.guard = self.guard
        self.guard.arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # A head is being read while h11 waits for one, or holds one sent ahead.
        self.guard.open = self.conn.their_state in (h11.IDLE, h11.DONE)
        if self.guard.admit(data):
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        self.guard.refuse_pending(msg)


if HttpToolsProtocol is not None:

    class JSONErrorsHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with bounded request heads and JSON refusals."""

        guard: HeadGuard

        def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
            super().__init__(config, *args, **kwargs)
            self.head_limits = _limits(config)

        def connection_made(  # type: ignore[override]
            self, transport: asyncio.Transport
        ) -> None:
            super().connection_made(transport)
            self.guard = HeadGuard(
                self.head_limits, self.loop, transport, self.server_state.default_headers
            )
            self.guard.arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self.guard.cancel()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if not self.guard.admit(data):
                return
            self._unset_keepalive_if_required()
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
            except httptools.HttpParserError:
                if self.guard.refused is None:
                    self.logger.warning("Invalid HTTP request received.")
                self.guard.refuse_pending("Invalid HTTP request received.")

        def on_header(self, name: bytes, value: bytes) -> None:
            self.guard.header()
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self.guard.complete(_head_size(self.url, self.headers), len(self.headers))
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self.guard.reopen()

        def send_400_response(self, msg: str) -> None:
            self.guard.refuse_pending(msg)

    HTTP_PROTOCOL: type[H11Protocol] | type[HttpToolsProtocol] = JSONErrorsHttpToolsProtocol
else:  # pragma: no cover
    HTTP_PROTOCOL = JSONErrorsH11Protocol

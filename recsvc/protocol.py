"""The HTTP server's own refusals in the API's JSON error shape.

uvicorn answers a request it cannot parse (a bad request line, a broken header, bad
chunking) before the application sees it, with a plain-text 400. These protocol classes
give that 400 the same ``{"error": {"code", "message"}}`` body as every other error, so a
client parses one shape whatever refused it. Pass ``http=HTTP_PROTOCOL`` to uvicorn.
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


def _body(message: str) -> bytes:
    return orjson.dumps({"error": {"code": "bad_request", "message": message}})


def _raw_400(message: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    body = _body(message)
    lines = [b"HTTP/1.1 400 Bad Request\r\n"]
    lines += [name + b": " + value + b"\r\n" for name, value in default_headers]
    lines += [
        b"content-type: application/json\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"connection: close\r\n\r\n",
        body,
    ]
    return b"".join(lines)


class JSONErrorsH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        self.transport.write(_raw_400(msg, self.server_state.default_headers))
        self.transport.close()


if HttpToolsProtocol is not None:

    class JSONErrorsHttpToolsProtocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            self.transport.write(_raw_400(msg, self.server_state.default_headers))
            self.transport.close()

    HTTP_PROTOCOL: type[H11Protocol] | type[HttpToolsProtocol] = JSONErrorsHttpToolsProtocol
else:  # pragma: no cover
    HTTP_PROTOCOL = JSONErrorsH11Protocol

"""Through real HTTP: uvicorn on a port, as the cart widget and the e-mail generator call it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import orjson
import pytest

from recsvc.config import Settings
from tests.conftest import GROUP_A, uvicorn_server
from training.publish import ModelPayload, Publisher


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    with uvicorn_server(settings) as url:
        yield url


def test_cart_over_http_and_hot_swap(
    server: str, publisher: Publisher, block_model: ModelPayload
) -> None:
    with httpx.Client(base_url=server, timeout=5) as http:
        assert http.get("/readyz").status_code == 503
        v1 = publisher.publish(block_model)
        r = http.post("/v1/recommendations/cart", json={"items": ["A1", "A2"], "k": 3})
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert body["model_version"] == v1
        assert {s["item_id"] for s in body["cross_sell"]} <= set(GROUP_A) - {"A1", "A2"}
        v2 = publisher.publish(block_model)
        assert http.get("/readyz").json()["model_version"] == v2
        bad = http.post(
            "/v1/recommendations/cart",
            content=b"not json",
            headers={"content-type": "application/json"},
        )
        assert bad.status_code == 422 and "error" in bad.json()


def test_openapi_documents_the_routes(server: str) -> None:
    spec = httpx.get(f"{server}/openapi.json", timeout=5).json()
    for path in (
        "/v1/recommendations/cart",
        "/v1/recommendations/history",
        "/v1/items/{item_id}/similar",
        "/v1/model",
        "/healthz",
        "/readyz",
    ):
        assert path in spec["paths"]


def test_a_body_over_the_limit_gets_413_json_and_the_server_stays_small(
    server: str, published: str
) -> None:
    """No limit once let a 200 MB body in; 64 x 10 MB bodies grew a worker by 600 MiB."""
    big = b'{"items": ["A1"], "pad": "' + b"x" * (2 << 20) + b'"}'
    with httpx.Client(base_url=server, timeout=10) as http:
        declared = http.post(
            "/v1/recommendations/cart", content=big, headers={"content-type": "application/json"}
        )
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "payload_too_large"

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(big), 64 << 10):
                yield big[start : start + (64 << 10)]

        # Chunked (no Content-Length): refused as soon as it passes the limit.
        streamed = http.post(
            "/v1/recommendations/cart",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert streamed.status_code == 413
        assert streamed.json()["error"]["code"] == "payload_too_large"
    with httpx.Client(base_url=server, timeout=10) as http:
        small = http.post("/v1/recommendations/cart", json={"items": ["A1"], "k": 2})
        assert small.status_code == 200
        ok_chunked = http.post(
            "/v1/recommendations/cart",
            content=iter([b'{"items": ', b'["A1"], "k": 2}']),
            headers={"content-type": "application/json"},
        )
        assert ok_chunked.status_code == 200, ok_chunked.text


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"POST /v1/recommendations/cart HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nZZ\r\n",
    ],
)
def test_requests_the_http_server_cannot_parse_get_the_json_error_shape(
    server: str, raw: bytes
) -> None:
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(raw)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"content-type: application/json" in head.lower()
    assert orjson.loads(body)["error"]["code"] == "bad_request"

"""What the API refuses, and how: tokens checked before a body is read, bodies read
strictly (UTF-8, no duplicate keys, finite numbers), ids and catalog text without control
characters, dates as text, every method in ``Allow``, bad settings as a one-line exit 2,
and a 413 that HTTP clients which write before they read can see."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from recsvc.api.app import create_app
from recsvc.config import Settings
from tests.conftest import in_process, uvicorn_server

ADMIN = "strict-admin-token-0123456789"
INGEST = "strict-ingest-token-0123456789"
JSON = {"content-type": "application/json"}
CART = "/v1/recommendations/cart"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def api(settings: Settings, published: str) -> AsyncIterator[httpx.AsyncClient]:
    tokens = {"admin_token": SecretStr(ADMIN), "ingest_token": SecretStr(INGEST)}
    async with in_process(create_app(settings.model_copy(update=tokens))) as client:
        yield client


def error(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


# F3: the bearer check comes before the body.


@pytest.mark.parametrize(
    "body",
    [b'{"order_id": 1}', b'{"order_id": ', b"\xff\xfe", b"[" * 10_000, b"x" * (2 << 20)],
    ids=["invalid", "malformed", "not-utf8", "deep", "over-the-cap"],
)
async def test_an_event_without_the_token_is_401_whatever_its_body(
    api: httpx.AsyncClient, body: bytes
) -> None:
    r = await api.post("/v1/events/orders", content=body, headers=JSON)
    assert r.status_code == 401 and error(r)["code"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"
    r = await api.post(
        "/v1/events/orders", content=body, headers={**JSON, "authorization": f"Bearer {ADMIN}"}
    )
    assert r.status_code == 401, "the admin token is not the ingest token"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/admin/stock"),
        ("PATCH", "/v1/admin/items/A1"),
        ("PUT", "/v1/admin/catalog/items/A1"),
        ("POST", "/v1/admin/catalog"),
        ("DELETE", "/v1/admin/catalog/items/A1"),
        ("DELETE", "/v1/admin/customers/c1"),
        ("GET", "/v1/admin/audit?count=nonsense"),
    ],
)
async def test_admin_routes_without_the_token_are_401_before_validation(
    api: httpx.AsyncClient, method: str, path: str
) -> None:
    r = await api.request(method, path, content=b'{"items": 7', headers=JSON)
    assert r.status_code == 401 and error(r)["code"] == "unauthorized"
    assert "details" not in error(r)


async def test_a_disabled_api_is_403_before_the_body(settings: Settings) -> None:
    async with in_process(create_app(settings)) as client:
        r = await client.post("/v1/events/orders", content=b'{"order_id": 1}', headers=JSON)
    assert r.status_code == 403 and "RECSVC_INGEST_TOKEN" in error(r)["message"]


# F5: Allow lists every method of the path.


async def test_allow_lists_every_method_of_the_path(api: httpx.AsyncClient) -> None:
    r = await api.options("/v1/admin/catalog/items/A1")
    assert r.status_code == 405 and error(r)["code"] == "method_not_allowed"
    assert r.headers["allow"] == "DELETE, PUT"
    r = await api.get(CART)
    assert r.status_code == 405 and r.headers["allow"] == "POST"


# F6: dates are strings.


@pytest.mark.parametrize("when", [0, 99999999999999, 1.5, "99999999999999", True])
async def test_a_purchase_date_must_be_iso_text(api: httpx.AsyncClient, when: Any) -> None:
    body = {"purchases": [{"item_id": "A1", "purchased_at": when}]}
    r = await api.post("/v1/recommendations/history", json=body)
    assert r.status_code == 422, r.text
    assert error(r)["message"].startswith("body.purchases.0.purchased_at")
    event = {
        "order_id": "o-1",
        "customer_id": "c1",
        "items": [{"item_id": "A1"}],
        "purchased_at": when,
    }
    r = await api.post(
        "/v1/events/orders", json=event, headers={"authorization": f"Bearer {INGEST}"}
    )
    assert r.status_code == 422, r.text


async def test_a_purchase_date_as_text_is_served(api: httpx.AsyncClient) -> None:
    body = {"purchases": [{"item_id": "A1", "purchased_at": "2024-03-01T10:00:00+01:00"}]}
    r = await api.post("/v1/recommendations/history", json=body)
    assert r.status_code == 200, r.text


# F7: UTF-8 only, duplicate keys, ids, finite numbers, catalog text.


@pytest.mark.parametrize(
    "body",
    [
        b'\xef\xbb\xbf{"items": ["A1"]}',
        '{"items": ["A1"]}'.encode("utf-16"),
        '{"items": ["A1"]}'.encode("utf-16-le"),
        '{"items": ["A1"]}'.encode("utf-32"),
        b'{"items": ["A\xe9"]}',  # Latin-1, not UTF-8
    ],
    ids=["utf8-bom", "utf16", "utf16-no-bom", "utf32", "latin1"],
)
async def test_a_body_that_is_not_plain_utf8_is_400(api: httpx.AsyncClient, body: bytes) -> None:
    r = await api.post(CART, content=body, headers=JSON)
    assert r.status_code == 400, r.text
    assert error(r)["code"] == "bad_request" and "UTF-8" in error(r)["message"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"items": ["A1"], "items": ["B1"]}',
        b'{"items": ["A1"], "k": 3, "k" : 4}',
        b'{"items": [{"item_id": "A1", "item_id": "B1"}]}',
        b'{"items": ["A1"], "rules": {"pin": ["A2"], "pin": ["A3"]}}',
        b'{"items": ["A1"], "\\u0069tems": ["B1"]}',
    ],
    ids=["top", "spaced", "line", "nested", "escaped"],
)
async def test_a_duplicate_key_is_422(api: httpx.AsyncClient, body: bytes) -> None:
    r = await api.post(CART, content=body, headers=JSON)
    assert r.status_code == 422, r.text
    assert "duplicate key" in error(r)["message"]


async def test_a_duplicate_order_id_in_an_event_is_422(api: httpx.AsyncClient) -> None:
    body = (
        b'{"order_id": "o-1", "customer_id": "c1", "items": [{"item_id": "A1"}],'
        b' "purchased_at": "2024-03-01T10:00:00Z", "order_id": "o-2"}'
    )
    r = await api.post(
        "/v1/events/orders",
        content=body,
        headers={**JSON, "authorization": f"Bearer {INGEST}"},
    )
    assert r.status_code == 422 and "duplicate key 'order_id'" in error(r)["message"]


@pytest.mark.parametrize(
    "customer", ["a%00b", "a%C2%85b", "%C2%85", "a%E2%80%A8b", "a%E2%80%A9", "a%1Fb"]
)
async def test_ids_refuse_controls_and_line_separators(
    api: httpx.AsyncClient, customer: str
) -> None:
    r = await api.get(f"/v1/customers/{customer}/recommendations")
    assert r.status_code == 422, r.text
    r = await api.get(f"/v1/customers/{customer}/recommendations", params={"k": 3})
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("item", ["a\x00b", "a\x85b", "\x85", "a\u2028b", "a\u2029"])
async def test_cart_ids_refuse_controls_and_line_separators(
    api: httpx.AsyncClient, item: str
) -> None:
    r = await api.post(CART, json={"items": [item]})
    assert r.status_code == 422, r.text
    r = await api.post(CART, json={"items": [{"item_id": item, "quantity": 1}]})
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    "rules",
    [b'{"min_price": 1e999}', b'{"max_price": 1e400}', b'{"min_price": Infinity}',
     b'{"max_price": NaN}', b'{"min_price": -Infinity}'],
)  # fmt: skip
async def test_numbers_in_rules_are_finite(api: httpx.AsyncClient, rules: bytes) -> None:
    r = await api.post(CART, content=b'{"items": ["A1"], "rules": ' + rules + b"}", headers=JSON)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("field", ["title", "category", "brand", "image_url", "url"])
@pytest.mark.parametrize("text", ["a\x07b", "a\nb", "\x00", "a\x9bb", "a\u2028b"])
async def test_catalog_text_refuses_control_characters(
    api: httpx.AsyncClient, field: str, text: str
) -> None:
    auth = {"authorization": f"Bearer {ADMIN}"}
    r = await api.put("/v1/admin/catalog/items/A1", json={field: text}, headers=auth)
    assert r.status_code == 422, r.text
    r = await api.put("/v1/admin/catalog/items/A1", json={field: "Plain text é"}, headers=auth)
    assert r.status_code == 200, r.text


# F4: bad settings exit 2 with one line, naming the setting and never its value.


@pytest.mark.parametrize("command", [["recsvc", "serve"], ["training", "status"]])
@pytest.mark.parametrize("variable", ["RECSVC_ADMIN_TOKEN", "RECSVC_INGEST_TOKEN"])
def test_a_short_token_exits_2_naming_the_setting_not_the_token(
    command: list[str], variable: str, tmp_path: Path
) -> None:
    secret = "MyReusedPw2026!"
    env = {**os.environ, variable: secret, "RECSVC_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", *command],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert secret not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid settings: "), done.stderr
    assert f"{variable}: too short" in lines[0]


def test_a_setting_that_is_not_json_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "RECSVC_CORS_ORIGINS": "https://shop.example"}
    done = subprocess.run(
        [sys.executable, "-m", "recsvc", "serve"], env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == "error: invalid settings: RECSVC_CORS_ORIGINS: not valid JSON"


# F8: a body over the cap is a 413 that clients which write before they read can see.


@pytest.fixture
def small_cap(settings: Settings, published: str) -> Iterator[str]:
    with uvicorn_server(settings.model_copy(update={"max_body_bytes": 64 << 10})) as url:
        yield url


def _httpx_post(url: str, body: bytes) -> int:
    with httpx.Client(base_url=url, timeout=30) as client:
        return client.post(CART, content=body, headers=JSON).status_code


def _http_client_post(url: str, body: bytes) -> int:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", CART, body=body, headers=JSON)
        response = conn.getresponse()
        assert orjson.loads(response.read())["error"]["code"] == "payload_too_large"
        return response.status
    finally:
        conn.close()


@pytest.mark.parametrize("post", [_httpx_post, _http_client_post], ids=["httpx", "http.client"])
def test_an_over_cap_body_is_a_413_the_client_reads(small_cap: str, post: Any) -> None:
    body = orjson.dumps({"items": ["A1"], "pad": "x" * (8 << 20)})
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: post(small_cap, body), range(32)))
    assert statuses == [413] * 32


def test_an_over_cap_chunked_body_is_a_413_the_client_reads(small_cap: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(512):
            yield b"x" * 16384

    with httpx.Client(base_url=small_cap, timeout=30) as client:
        r = client.post(CART, content=chunks(), headers=JSON)
    assert r.status_code == 413 and error(r)["code"] == "payload_too_large"

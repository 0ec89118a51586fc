"""The cart route's fast lane: what it reads itself, what it passes on, and that both
lanes give the same answer (and the documented route's errors)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from recsvc.api.fast_lanes import read_cart
from recsvc.api.schemas import MAX_CART_ITEMS, MAX_QUANTITY

CART = "/v1/recommendations/cart"
PLAIN_TEXT_STATUS = 422
"""FastAPI reads a body declared as another type than JSON as no body at all."""


def test_the_widget_body_is_read_by_the_fast_lane() -> None:
    got = read_cart(b'{"items": ["A1", "A2", "A1"], "k": 4, "upsell_k": 2}')
    assert got is not None
    assert (got.lines, got.k, got.upsell_k) == ([("A1", 2), ("A2", 1)], 4, 2)
    lines = read_cart(b'{"items": [{"item_id": "A1", "quantity": 3}, {"item_id": "B 2"}]}')
    assert lines is not None
    assert (lines.lines, lines.k, lines.upsell_k) == ([("A1", 3), ("B 2", 1)], 10, None)
    big = [{"item_id": "A1", "quantity": MAX_QUANTITY}] * 2
    capped = read_cart(orjson.dumps({"items": big}))
    assert capped is not None and capped.lines == [("A1", MAX_QUANTITY)]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"items": []}',
        b'{"items": ["A1"], "k": 0}',
        b'{"items": ["A1"], "k": 101}',
        b'{"items": ["A1"], "k": 10.0}',  # valid, but read by pydantic's rule for integers
        b'{"items": ["A1"], "k": true}',
        b'{"items": ["A1"], "upsell_k": 21}',
        b'{"items": [85123]}',  # a numeric id: valid, converted by the documented route
        b'{"items": [""]}',
        b'{"items": ["   "]}',
        b'{"items": ["A\\u0001"]}',
        b'{"items": ["caf\\u00e9"]}',  # non-ASCII: valid, checked by the documented route
        b'{"items": ["A1"], "rules": {"max_per_category": 1}}',
        b'{"items": ["A1"], "upsell_band": {"min_ratio": 1.1, "max_ratio": 2}}',
        b'{"items": ["A1"], "extra": 1}',
        b'{"items": [{"item_id": "A1", "quantity": 0}]}',
        b'{"items": [{"item_id": "A1", "qty": 1}]}',
        b'{"items": [{"quantity": 1}]}',
        orjson.dumps({"items": ["A1"] * (MAX_CART_ITEMS + 1)}),
        orjson.dumps({"items": ["x" * 10_000]}),
    ],
)
def test_anything_else_goes_to_the_documented_route(body: bytes) -> None:
    assert read_cart(body) is None


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    """An answer without what differs per request."""
    return {k: v for k, v in body.items() if k != "recommendation_id"}


@pytest.mark.parametrize(
    "cart",
    [
        {"items": ["A1", "A2"], "k": 3},
        {"items": ["A1", {"item_id": "B1", "quantity": 4}], "k": 5, "upsell_k": 2},
        {"items": ["nope-1"], "k": 4, "upsell_k": 0},
        {"items": ["B1", "B2", "B1"]},
    ],
)
async def test_both_lanes_give_the_same_answer(
    api: httpx.AsyncClient, published: str, cart: dict[str, Any]
) -> None:
    fast = await api.post(CART, json=cart)
    # A whole number written as 10.0 is valid and left to the documented route.
    slow = await api.post(CART, json={**cart, "k": float(cart.get("k", 10))})
    assert read_cart(orjson.dumps(cart)) is not None
    assert read_cart(orjson.dumps({**cart, "k": float(cart.get("k", 10))})) is None
    assert fast.status_code == slow.status_code == 200, (fast.text, slow.text)
    assert _answer(fast.json()) == _answer(slow.json())
    assert fast.json()["recommendation_id"] != slow.json()["recommendation_id"]


async def test_passed_on_bodies_get_the_documented_errors(
    api: httpx.AsyncClient, published: str
) -> None:
    r = await api.post(CART, json={"items": [], "k": 3})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["loc"] == ["body", "items"]
    json_type = {"content-type": "application/json"}
    r = await api.post(CART, content=b'{"items": ["A1"', headers=json_type)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["type"] == "json_invalid"
    # Not declared as JSON: the documented route decides, as it did before the lane.
    text = {"content-type": "text/plain"}
    plain = await api.post(CART, content=b'{"items": ["A1"]}', headers=text)
    assert plain.status_code == PLAIN_TEXT_STATUS, plain.text
    r = await api.post(CART, json={"items": ["A1"], "k": 3, "rules": {"pin": ["A3"]}})
    assert r.status_code == 200 and r.json()["cross_sell"][0]["item_id"] == "A3"
    r = await api.post(CART, json={"items": [{"item_id": "A1", "quantity": 0}]})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["loc"][:3] == ["body", "items", 0]


CUSTOMER = "/v1/customers/c1-3/recommendations"


@pytest.mark.parametrize("k", [None, 3, 100])
async def test_a_stored_customer_gets_the_same_answer_from_both_lanes(
    api: httpx.AsyncClient, published: str, k: int | None
) -> None:
    query = {} if k is None else {"k": k}
    fast = await api.get(CUSTOMER, params=query)
    # exclude_purchased=true is the default, so this is the same question, passed on.
    slow = await api.get(CUSTOMER, params={**query, "exclude_purchased": "true"})
    assert fast.status_code == slow.status_code == 200, (fast.text, slow.text)
    assert _answer(fast.json()) == _answer(slow.json())
    assert len(fast.json()["recommendations"]) == (
        3 if k == 3 else len(slow.json()["recommendations"])
    )
    assert fast.json()["customer_id"] == "c1-3"


@pytest.mark.parametrize(
    ("query", "status"),
    [("k=0", 422), ("k=101", 422), ("k=010", 200), ("k=3&k=4", 200), ("exclude_purchased=no", 200)],
)
async def test_other_customer_queries_go_to_the_documented_route(
    api: httpx.AsyncClient, published: str, query: str, status: int
) -> None:
    r = await api.get(f"{CUSTOMER}?{query}")
    assert r.status_code == status, r.text
    if status == 422:
        assert r.json()["error"]["details"][0]["loc"] == ["query", "k"]


async def test_the_lanes_keep_the_route_templates_in_metrics(
    api: httpx.AsyncClient, published: str
) -> None:
    await api.get(CUSTOMER)
    await api.post(CART, json={"items": ["A1"]})
    text = (await api.get("/metrics")).text
    assert 'route="/v1/customers/{customer_id}/recommendations",status="200"' in text
    assert 'route="/v1/recommendations/cart",status="200"' in text
    assert 'route="unmatched"' not in text

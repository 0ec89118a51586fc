"""The API's behaviour, in-process over ASGI with the app's lifespan and a real Redis."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from recsvc.api.app import create_app
from recsvc.config import Settings
from tests.conftest import GROUP_A, GROUP_B, free_port, in_process
from training.publish import ModelPayload, Publisher

CART = "/v1/recommendations/cart"
HISTORY = "/v1/recommendations/history"


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["item_id"] for r in rows]


async def test_cart_suggests_complements_never_the_cart(
    api: httpx.AsyncClient, published: str
) -> None:
    r = await api.post(CART, json={"items": ["A1", {"item_id": "A2", "quantity": 3}], "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == published
    assert body["fallback"] is False
    got = ids(body["cross_sell"])
    assert len(got) == 3
    assert set(got) <= set(GROUP_A) - {"A1", "A2"}
    assert all(set(s["because"]) <= {"A1", "A2"} and s["because"] for s in body["cross_sell"])
    scores = [s["score"] for s in body["cross_sell"]]
    assert scores == sorted(scores, reverse=True)


async def test_repeated_lines_adding_up_past_the_quantity_limit_are_not_a_500(
    api: httpx.AsyncClient, published: str
) -> None:
    """Two lines of 600,000 each (each within the limit) once raised a 500."""
    lines = [{"item_id": "A1", "quantity": 600_000}, {"item_id": "A1", "quantity": 600_000}]
    r = await api.post("/v1/recommendations/cart", json={"items": lines, "k": 3})
    assert r.status_code == 200, r.text
    assert "A1" not in {s["item_id"] for s in r.json()["cross_sell"]}


async def test_unknown_items_are_ignored(api: httpx.AsyncClient, published: str) -> None:
    r = await api.post(CART, json={"items": ["B1", "no-such-item"], "k": 2})
    body = r.json()
    assert body["fallback"] is False
    assert set(ids(body["cross_sell"])) <= set(GROUP_B)


async def test_a_cart_of_unknown_items_gets_popular_items(
    api: httpx.AsyncClient, published: str, block_model: ModelPayload
) -> None:
    r = await api.post(CART, json={"items": ["nope-1", "nope-2"], "k": 4})
    body = r.json()
    assert r.status_code == 200 and body["fallback"] is True
    popular = [block_model.item_ids[i] for i in block_model.popular_indices[:4]]
    assert ids(body["cross_sell"]) == popular
    assert {s["source"] for s in body["cross_sell"]} == {"popular"}


async def test_history_excludes_purchases_and_weighs_recent_ones_more(
    api: httpx.AsyncClient, published: str
) -> None:
    old_b = {"item_id": "B1", "purchased_at": "2023-01-01T00:00:00Z"}
    new_a = {"item_id": "A1", "purchased_at": "2024-06-01T00:00:00Z"}
    r = await api.post(HISTORY, json={"purchases": [old_b, new_a], "k": 3})
    body = r.json()
    assert r.status_code == 200, r.text
    got = ids(body["recommendations"])
    assert "A1" not in got and "B1" not in got
    # B1 was bought 17 months before A1: A's group wins the top places.
    assert set(got) <= set(GROUP_A)
    swapped = [
        {**old_b, "purchased_at": "2024-06-01T00:00:00Z"},
        {**new_a, "purchased_at": "2023-01-01"},
    ]
    swapped_r = await api.post(HISTORY, json={"purchases": swapped, "k": 3})
    assert set(ids(swapped_r.json()["recommendations"])) <= set(GROUP_B)


async def test_history_can_include_repurchases(api: httpx.AsyncClient, published: str) -> None:
    r = await api.post(
        HISTORY, json={"purchases": [{"item_id": "A1"}], "k": 3, "exclude_purchased": False}
    )
    rows = r.json()["recommendations"]
    assert "A1" in ids(rows)
    assert next(s for s in rows if s["item_id"] == "A1")["source"] == "repurchase"


async def test_similar_items(api: httpx.AsyncClient, published: str) -> None:
    r = await api.get("/v1/items/A1/similar", params={"k": 2})
    body = r.json()
    assert r.status_code == 200
    assert body["item_id"] == "A1" and ids(body["similar"])[0] == "A2"
    assert len(body["similar"]) == 2
    missing = await api.get("/v1/items/nope/similar")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "unknown_item"


async def test_model_info_shows_version_counts_and_parameters(
    api: httpx.AsyncClient, published: str
) -> None:
    body = (await api.get("/v1/model")).json()
    assert body["model_version"] == published
    assert body["counts"]["items"] == 11
    assert body["params"]["neighbour_method"] == "ease"
    assert "trained_at" in body


async def test_a_new_model_is_served_at_once(
    api: httpx.AsyncClient, publisher: Publisher, block_model: ModelPayload
) -> None:
    first = publisher.publish(block_model)
    assert (await api.post(CART, json={"items": ["A1"]})).json()["model_version"] == first
    second = publisher.publish(block_model)
    assert (await api.post(CART, json={"items": ["A1"]})).json()["model_version"] == second
    publisher.rollback()
    assert (await api.get("/v1/model")).json()["model_version"] == first


async def test_health_and_readiness(
    api: httpx.AsyncClient, publisher: Publisher, block_model: ModelPayload
) -> None:
    assert (await api.get("/healthz")).status_code == 200
    not_ready = await api.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["error"]["code"] == "no_model"
    no_model = await api.post(CART, json={"items": ["A1"]})
    assert no_model.status_code == 503 and no_model.json()["error"]["code"] == "no_model"
    version = publisher.publish(block_model)
    ready = await api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model_version"] == version


@pytest.mark.parametrize(
    "body",
    [
        {"items": []},
        {"items": ["A1"] * 101},
        {"items": ["A1"], "k": 0},
        {"items": ["A1"], "k": 101},
        {"items": [""]},
        {"items": ["x" * 65]},
        {"items": ["bad\nid"]},
        {"items": [{"item_id": "A1", "quantity": 0}]},
        {"items": [{"quantity": 2}]},
        {"items": [7.5]},
        {"items": [True]},
        {"items": "A1"},
        {"items": ["A1"], "surprise": True},
        {},
        [],
    ],
)
async def test_bad_carts_get_422_with_a_json_error(
    api: httpx.AsyncClient, published: str, body: object
) -> None:
    r = await api.post(CART, json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request" and error["message"] and error["details"]


@pytest.mark.parametrize(
    "body",
    [
        {"purchases": []},
        {"purchases": [{"item_id": "A1", "purchased_at": "yesterday"}]},
        {"purchases": [{"item_id": "A1"}] * 501},
        {"purchases": [{"item_id": "A1"}], "exclude_purchased": "maybe"},
    ],
)
async def test_bad_histories_get_422(api: httpx.AsyncClient, published: str, body: object) -> None:
    r = await api.post(HISTORY, json=body)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"


async def test_malformed_json_and_bad_k_get_4xx(api: httpx.AsyncClient, published: str) -> None:
    r = await api.post(CART, content=b'{"items": [', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    r = await api.get("/v1/items/A1/similar", params={"k": "lots"})
    assert r.status_code == 422
    r = await api.get("/v1/nowhere")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await api.get(CART)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["allow"] == "POST"


async def test_redis_down_is_503_and_liveness_stays_up(tmp_path: object) -> None:
    dead = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_s=0.5)
    app = create_app(dead)
    async with in_process(app) as c:
        r = await c.post(CART, json={"items": ["A1"]})
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "store_unavailable"
        assert (await c.get("/readyz")).status_code == 503
        assert (await c.get("/healthz")).status_code == 200

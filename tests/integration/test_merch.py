"""Catalog, cross-sell and upsell slots, merchandising rules, reasons, live stock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import redis
import redis.asyncio as aioredis
from pydantic import SecretStr, ValidationError

from recsvc.answers.recommend import rank_cart
from recsvc.api.app import create_app
from recsvc.cli.main import main as recsvc_main
from recsvc.config import Settings
from recsvc.model import Layout
from recsvc.ranking import PriceBand, Rules, Seed, rank, upsell
from recsvc.ranking.rules import CatalogArrays, MerchRules, allowed_mask
from recsvc.store import ModelStore
from recsvc.store.cache import ByteBoundedCache
from tests.conftest import ADMIN_TOKEN, SHOP_CATALOG, in_process, redis_server, shop_purchases
from training.cli.main import main as train_main
from training.errors import EXIT_BAD_INPUT, InputError
from training.publish import ModelPayload, Publisher
from training.stages import catalog as cat


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of this module's own: its tests count the commands the server
    received, which another module's client (a watcher left running) would add to."""
    with redis_server(tmp_path_factory.mktemp("redis")) as (url, _):
        yield url


CART = "/v1/recommendations/cart"


# -- catalog --------------------------------------------------------------------------


def test_malformed_catalog_rows_are_counted_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(
        SHOP_CATALOG
        + ",No id,mugs,1.0,true,\n"
        + "X1,Bad price,mugs,abc,true,\n"
        + "X2,Bad flag,mugs,1.0,maybe,\n"
        + "M1,Duplicate,mugs,9.0,true,\n"
    )
    frame, report = cat.read_catalog(path)
    assert sorted(frame["item_id"]) == ["M1", "M2", "M3", "SP", "T1"]
    assert report.skipped == {
        "missing_item_id": 1,
        "bad_price": 1,
        "bad_available": 1,
        "duplicate_item_id": 1,
    }
    assert frame.set_index("item_id").loc["M1", "title"] == "Plain mug"


def test_a_catalog_without_required_columns_fails_before_anything_is_published(
    tmp_path: Path, settings: Settings, publisher: Publisher, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "catalog.csv"
    bad.write_text("item_id,title\nM1,Plain mug\n")
    with pytest.raises(InputError, match="category, price, available"):
        cat.read_catalog(bad)
    purchases = tmp_path / "p.parquet"
    shop_purchases().to_parquet(purchases)
    args = ["train", "--purchases", str(purchases), "--customer-col", "customer"]
    args += ["--item-col", "item", "--order-col", "order", "--catalog", str(bad), "--force"]
    assert train_main(args, settings) == EXIT_BAD_INPUT
    assert "lacks the column(s) category, price, available" in capsys.readouterr().err
    assert publisher.live_version() is None


def test_without_a_catalog_titles_and_prices_come_from_the_purchases() -> None:
    t = pd.to_datetime(["2024-01-01", "2024-05-01", "2024-05-02", "2024-05-03"], utc=True)
    frame = pd.DataFrame(
        {"item": ["a", "a", "a", "a"], "description": ["old", "new", "", "new"],
         "price": [100.0, 2.0, 3.0, 4.0], "timestamp": t}
    )  # fmt: skip
    derived = cat.from_purchases(frame).set_index("item_id")
    assert derived.loc["a", "title"] == "new"
    # The January sale is older than 90 days before the last one: not the current price.
    assert derived.loc["a", "price"] == 3.0


# -- pure ranking rules ----------------------------------------------------------------

ITEMS = ["a", "b", "c", "d", "e"]
POPULAR = np.array([4, 3, 2, 1, 0], dtype=np.int64)


def seed(item: str, neighbours: dict[str, float], counts: list[int] | None = None) -> Seed:
    idx = np.array([ITEMS.index(n) for n in neighbours], dtype=np.int64)
    scores = np.array(list(neighbours.values()), np.float32)
    cnt = np.array(counts, np.int64) if counts is not None else None
    return Seed(item, ITEMS.index(item), 1.0, idx, scores, cnt)


def test_rules_filter_diversify_boost_and_pin() -> None:
    s = [seed("a", {"b": 0.9, "c": 0.8, "d": 0.7, "e": 0.1}, [40, 30, 20, 1])]
    category = np.array([0, 1, 1, 2, 2], dtype=np.int64)
    allowed = np.array([True, True, True, False, True])
    out = rank(s, ITEMS, POPULAR, Rules(k=3, exclude={0}, allowed=allowed))
    assert [x.item_id for x in out.suggestions] == ["b", "c", "e"]  # d is not allowed
    assert out.suggestions[0].evidence == 40
    capped = rank(s, ITEMS, POPULAR, Rules(k=3, exclude={0}, category=category, max_per_category=1))
    # One per category: c and e lose to b and d, and the popular filler may not break it.
    assert [x.item_id for x in capped.suggestions] == ["b", "d"]
    boosted = rank(s, ITEMS, POPULAR, Rules(k=2, exclude={0}, boost={4: 100.0}))
    assert boosted.suggestions[0].item_id == "e" and boosted.suggestions[0].boosted
    pinned = rank(s, ITEMS, POPULAR, Rules(k=2, exclude={0}, pins=[3]))
    assert [(x.item_id, x.source) for x in pinned.suggestions] == [
        ("d", "pinned"),
        ("b", "neighbours"),
    ]
    # Popular filler obeys the rules too.
    filled = rank(
        [], ITEMS, POPULAR, Rules(k=2, allowed=np.array([True, False, True, True, False]))
    )
    assert [x.item_id for x in filled.suggestions] == ["d", "c"]


def test_upsell_stays_in_the_band_and_the_category_and_names_what_it_upgrades() -> None:
    price = np.array([10.0, 11.0, 25.0, 15.0, 19.0])
    category = np.array([0, 0, 0, 1, 0], dtype=np.int64)
    alts = seed("a", {"b": 0.9, "c": 0.8, "d": 0.7, "e": 0.5}, [5, 4, 3, 2])
    rules = Rules(k=3, exclude={0}, category=category)
    got = upsell([alts], ITEMS, POPULAR, price, rules, PriceBand(1.05, 2.0))
    # c is over 2x, d is another category: b and e remain, closest first.
    assert [(u.item_id, u.upgrades) for u in got] == [("b", "a"), ("e", "a")]
    assert got[0].price_difference == pytest.approx(1.0) and got[0].evidence == 5
    margin = np.array([0.0, 0.0, 0.0, 0.0, 5.0])
    by_margin = upsell([alts], ITEMS, POPULAR, price, rules, PriceBand(), margin)
    assert by_margin[0].item_id == "e"


def test_the_allowed_mask_applies_every_filter() -> None:
    arrays = CatalogArrays(
        price=np.array([1.0, 5.0, np.nan, 9.0]),
        available=np.array([True, True, True, False]),
        category=np.array([0, 1, -1, 0], dtype=np.int64),
        categories=["mugs", "tea"],
    )
    index = {k: i for i, k in enumerate("wxyz")}
    assert allowed_mask(arrays, index, MerchRules()).tolist() == [True, True, True, False]
    assert allowed_mask(arrays, index, MerchRules(available_only=False)).tolist() == [True] * 4
    rules = MerchRules(exclude_categories=["tea"], exclude_items=["w"])
    assert allowed_mask(arrays, index, rules).tolist() == [False, False, True, False]
    assert allowed_mask(arrays, index, MerchRules(only_categories=["tea"])).tolist() == [
        False, True, False, False
    ]  # fmt: skip
    priced = MerchRules(min_price=2.0, max_price=6.0, available_only=False)
    assert allowed_mask(arrays, index, priced).tolist() == [False, True, False, False]
    merged = MerchRules(max_per_category=2, exclude_items=["w"]).merged(
        MerchRules(exclude_items=["x"], max_per_category=1)
    )
    assert merged.exclude_items == ["w", "x"] and merged.max_per_category == 1


# -- through the API ------------------------------------------------------------------


def item_ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["item_id"] for r in rows]


async def test_cart_gets_complements_and_a_pricier_alternative_in_two_slots(
    shop: httpx.AsyncClient,
) -> None:
    r = await shop.post(CART, json={"items": ["M1"], "k": 2, "upsell_k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert item_ids(body["cross_sell"]) == ["T1", "SP"]
    first = body["cross_sell"][0]
    assert first["title"] == "Breakfast tea" and first["price"] == 3.0
    assert first["category"] == "tea"
    assert first["reason"] == "bought together with M1 in 80 orders"
    # M2 costs 1.6x M1 (in the band), M3 2.4x (not).
    assert [(u["item_id"], u["upgrades"]) for u in body["upsell"]] == [("M2", "M1")]
    assert body["upsell"][0]["price_difference"] == 3.0
    assert body["upsell"][0]["reason"].startswith("alternative to M1, +3.00")
    slots = item_ids(body["cross_sell"]) + item_ids(body["upsell"])
    assert len(slots) == len(set(slots)) and "M1" not in slots
    wide = await shop.post(
        CART, json={"items": ["M1"], "upsell_band": {"min_ratio": 1.05, "max_ratio": 3.0}}
    )
    assert set(item_ids(wide.json()["upsell"])) == {"M2", "M3"}


async def test_similar_items_are_full_suggestions_under_stock_and_rules(
    shop: httpx.AsyncClient,
) -> None:
    similar = "/v1/items/M1/similar"
    body = (await shop.get(similar, params={"k": 2})).json()
    assert item_ids(body["similar"]) == ["T1", "SP"] and body["item_id"] == "M1"
    first = body["similar"][0]
    assert first["title"] == "Breakfast tea" and first["price"] == 3.0 and first["position"] == 1
    assert first["reason"] == "bought together with M1 in 80 orders"
    assert first["source"] == "neighbours" and body["recommendation_id"]
    assert body["fallback"] is False and body["arm"] == "live"
    no_tea = (await shop.get(similar, params={"exclude_categories": "tea"})).json()
    assert "T1" not in item_ids(no_tea["similar"]) and "M1" not in item_ids(no_tea["similar"])
    cheap = (await shop.get(similar, params={"max_price": 2.0})).json()
    assert {s["price"] for s in cheap["similar"]} <= {1.0}
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    sold_out = await shop.patch("/v1/admin/items/T1", json={"available": False}, headers=auth)
    assert sold_out.status_code == 200, sold_out.text
    after = (await shop.get(similar, params={"k": 2})).json()
    assert "T1" not in item_ids(after["similar"])
    # Nothing fills the gap with best-sellers: similar means similar.
    assert all(s["source"] != "popular" for s in after["similar"])
    shown = (await shop.get(similar, params={"k": 2, "available_only": "false"})).json()
    assert "T1" in item_ids(shown["similar"])
    bad = await shop.get(similar, params={"max_per_category": 0})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"


async def test_request_rules_and_live_stock_change_the_next_answer(
    shop: httpx.AsyncClient,
) -> None:
    no_tea = await shop.post(
        CART, json={"items": ["M1"], "k": 2, "rules": {"exclude_categories": ["tea"]}}
    )
    assert "T1" not in item_ids(no_tea.json()["cross_sell"])
    denied = await shop.patch("/v1/admin/items/T1", json={"available": False})
    assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
    wrong = await shop.patch(
        "/v1/admin/items/T1", json={"available": False}, headers={"authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    ok = await shop.patch("/v1/admin/items/T1", json={"available": False}, headers=auth)
    assert ok.status_code == 200, ok.text
    after = (await shop.post(CART, json={"items": ["M1"], "k": 2})).json()
    assert "T1" not in item_ids(after["cross_sell"])
    # A new price moves M3 into M1's band at the next request.
    bulk = await shop.post(
        "/v1/admin/stock",
        json={"items": [{"item_id": "M3", "price": 9.5}, {"item_id": "nope", "available": True}]},
        headers=auth,
    )
    assert bulk.json()["updated"] == 1 and bulk.json()["unknown"] == ["nope"]
    moved = (await shop.post(CART, json={"items": ["M1"], "upsell_k": 3})).json()
    assert "M3" in item_ids(moved["upsell"])
    assert (
        await shop.patch("/v1/admin/items/zzz", json={"price": 1}, headers=auth)
    ).status_code == 404
    assert (await shop.patch("/v1/admin/items/M1", json={}, headers=auth)).status_code == 422


def _calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def test_after_a_stock_change_a_cart_stays_at_one_round_trip(
    shop: httpx.AsyncClient, client: redis.Redis
) -> None:
    """A stock change once made every later request reload the whole version."""
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    body = {"items": ["M1"], "k": 2}
    assert (await shop.post(CART, json=body)).status_code == 200
    ok = await shop.patch("/v1/admin/items/SP", json={"available": False}, headers=auth)
    assert ok.status_code == 200
    first = await shop.post(CART, json=body)  # loads the changed version once
    assert "SP" not in item_ids(first.json()["cross_sell"])
    before = _calls(client)
    for _ in range(5):
        assert (await shop.post(CART, json=body)).status_code == 200
    after = _calls(client)
    # Its lists are kept decoded for the live version: each cart is one fetch-script call
    # that reads only the pointer, the A/B test in force and the stock counter (three GETs
    # inside it); no lists, and no reload of the version (a reload is GETs and an HGETALL
    # of the stock).
    assert after.get("evalsha", 0) - before.get("evalsha", 0) == 5
    for command in ("hmget", "hgetall", "multi", "exec"):
        assert after.get(command, 0) == before.get(command, 0), command
    assert after.get("get", 0) - before.get("get", 0) == 3 * 5


async def test_kept_upsell_alternatives_stay_within_the_rules_cache_bound(
    redis_url: str,
    layout: Layout,
    settings: Settings,
    publisher: Publisher,
    shop_model: ModelPayload,
) -> None:
    """Each cart item's qualifying alternatives are kept per view; what a worker keeps
    is bounded (RECSVC_RULES_CACHE_BYTES) whatever the carts, and the answers are the
    same with a tiny bound as with the default."""
    publisher.publish(shop_model)
    carts = (["M1"], ["M2"], ["M1", "T1"], ["M1"], ["SP", "M2"])
    answers: list[list[list[tuple[str, str]]]] = []
    client = aioredis.Redis.from_url(redis_url)
    try:
        for bound in (16 << 20, 400):
            store = ModelStore(client, layout, mask_cache_bytes=bound)
            got: list[list[tuple[str, str]]] = []
            for items in carts:
                fetched = await store.lists(items, alternatives=True)
                answer = rank_cart(
                    fetched.view, settings, [(i, 1) for i in items], fetched.complements, 10,
                    None, fetched.alternatives, 2,
                )  # fmt: skip
                got.append([(u.item_id, u.upgrades) for u in answer.upsell])
            kept = fetched.view.upsell_lists
            assert kept.bytes <= bound
            assert len(kept) == 4 if bound > 400 else len(kept) <= 2  # M1, M2, T1, SP
            answers.append(got)
    finally:
        await client.aclose()
    assert answers[0] == answers[1]
    assert answers[0][0] == [("M2", "M1")]


async def test_the_admin_api_is_off_without_a_token(api: httpx.AsyncClient, published: str) -> None:
    r = await api.post("/v1/admin/stock", json={"items": [{"item_id": "A1", "available": False}]})
    assert r.status_code == 403 and "RECSVC_ADMIN_TOKEN" in r.json()["error"]["message"]


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
async def test_an_empty_admin_token_disables_the_admin_api(
    settings: Settings, published: str, blank: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RECSVC_ADMIN_TOKEN="" once let "Authorization: Bearer" (no token) through."""
    monkeypatch.setenv("RECSVC_ADMIN_TOKEN", blank)
    from_env = Settings(
        redis_url=settings.redis_url, key_prefix=settings.key_prefix, data_dir=settings.data_dir
    )
    assert from_env.admin_token is None
    app = create_app(from_env)
    async with in_process(app) as c:
        for auth in ("Bearer", "Bearer ", f"Bearer {blank}"):
            headers = {"authorization": auth}
            r = await c.patch("/v1/admin/items/A1", json={"available": False}, headers=headers)
            assert r.status_code == 403, (auth, r.status_code)
            stock = {"items": [{"item_id": "A1", "available": False}]}
            r = await c.post("/v1/admin/stock", json=stock, headers=headers)
            assert r.status_code == 403


def test_a_short_admin_token_refuses_to_start() -> None:
    with pytest.raises(ValidationError, match="too short"):
        Settings(admin_token=SecretStr("hunter2"))
    assert Settings(admin_token=SecretStr(f"  {ADMIN_TOKEN}  ")).admin_token == SecretStr(
        ADMIN_TOKEN
    )


def test_the_stock_command_changes_the_live_model(
    settings: Settings,
    publisher: Publisher,
    shop_model: ModelPayload,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    live = publisher.publish(shop_model)
    assert recsvc_main(["stock", "--item", "SP", "--unavailable"], settings) == 0
    sheet = tmp_path / "stock.csv"
    sheet.write_text("item_id,available,price\nM2,,7.5\nghost,false,\n")
    assert recsvc_main(["stock", "--file", str(sheet)], settings) == 0
    assert "unknown=1" in capsys.readouterr().out
    raw = publisher.client.hgetall(publisher.layout.stock(live))
    assert {k.decode() if isinstance(k, bytes) else k for k in raw} == {"SP", "M2"}
    sheet.write_text("item_id,price\nM2,cheap\n")
    assert recsvc_main(["stock", "--file", str(sheet)], settings) == 2
    assert "not a number" in capsys.readouterr().err


# -- bounds on what a request can make a worker hold ------------------------------------------


def test_the_byte_bounded_cache_keeps_the_most_recent_within_its_bound() -> None:
    cache: ByteBoundedCache[str, int] = ByteBoundedCache(max_bytes=100)
    for n in range(10):
        cache.put(f"k{n}", n, 30)
        assert cache.bytes <= 100
    assert len(cache) == 3 and cache.get("k9") == 9 and cache.get("k6") is None
    cache.get("k7")  # now the most recently used
    cache.put("k10", 10, 30)
    assert cache.get("k7") == 7 and cache.get("k8") is None
    cache.put("huge", -1, 101)  # alone over the bound: not kept, nothing evicted
    assert cache.get("huge") is None and len(cache) == 3


@pytest.mark.parametrize(
    "rules",
    [
        {"boost": {f"i{n}": 2.0 for n in range(201)}},
        {"exclude_items": ["x" * 65]},
        {"exclude_items": [f"i{n}" for n in range(1001)]},
        {"pin": [f"i{n}" for n in range(21)]},
        {"only_categories": ["c" * 129]},
        {"exclude_categories": [f"c{n}" for n in range(201)]},
        {"max_per_category": True},
        {"min_price": "3"},
    ],
)
async def test_every_list_and_map_in_rules_is_capped(
    api: httpx.AsyncClient, published: str, rules: dict[str, Any]
) -> None:
    r = await api.post(CART, json={"items": ["A1"], "rules": rules})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


async def test_masks_for_many_distinct_rules_stay_within_the_cache_bound(
    redis_url: str, layout: Layout, published: str
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    bound = 64 * 1024
    store = ModelStore(client, layout, mask_cache_bytes=bound)
    view = await store.live_view()
    for n in range(2000):
        view.allowed(MerchRules(exclude_items=[f"not-an-item-{n}", "A1"]))
        assert view.masks.bytes <= bound
    assert len(view.masks) > 0
    await client.aclose()


async def test_a_new_version_is_served_by_the_next_request_and_then_from_kept_lists(
    shop: httpx.AsyncClient, client: redis.Redis, publisher: Publisher, shop_model: ModelPayload
) -> None:
    body = {"items": ["M1", "T1"], "k": 2}
    first = (await shop.post(CART, json=body)).json()["model_version"]
    newer = publisher.publish(shop_model)
    assert newer != first
    before = _calls(client)
    assert (await shop.post(CART, json=body)).json()["model_version"] == newer
    middle = _calls(client)
    # The pointer read shows the switch; the lists then come from the new version.
    assert middle.get("evalsha", 0) - before.get("evalsha", 0) == 2
    assert middle.get("hmget", 0) > before.get("hmget", 0)
    for _ in range(3):
        assert (await shop.post(CART, json=body)).json()["model_version"] == newer
    after = _calls(client)
    assert after.get("evalsha", 0) - middle.get("evalsha", 0) == 3  # the pointer, only
    assert after.get("hmget", 0) == middle.get("hmget", 0)  # lists kept
    assert publisher.rollback() == first
    assert (await shop.post(CART, json=body)).json()["model_version"] == first

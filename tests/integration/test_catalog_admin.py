"""Between trainings: items added to the catalog are suggested beside their category's
best suggestion, items deleted are never suggested, and a customer's stored history is
erased on request from every version, for good, with an audit trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from recsvc.cli import main as cli
from recsvc.config import Settings
from recsvc.model import Layout
from tests.conftest import ADMIN_AUTH
from training.publish import ModelPayload, Publisher

CART = "/v1/recommendations/cart"


async def cross_sell(api: httpx.AsyncClient, items: list[str], k: int = 5) -> list[dict[str, Any]]:
    r = await api.post(CART, json={"items": items, "k": k, "upsell_k": 0})
    assert r.status_code == 200, r.text
    return list(r.json()["cross_sell"])


async def test_a_new_item_is_suggested_beside_its_categorys_best(
    shop: httpx.AsyncClient,
) -> None:
    before = await cross_sell(shop, ["T1"])
    mugs = [s["position"] for s in before if s["category"] == "mugs"]
    assert mugs, before  # tea's complements are mugs (the known answer of shop_purchases)
    r = await shop.put(
        "/v1/admin/catalog/items/M9",
        json={"title": "Speckled mug", "category": "mugs", "price": 9.5},
        headers=ADMIN_AUTH,
    )
    assert r.status_code == 200 and r.json()["new"] == ["M9"], r.text
    after = await cross_sell(shop, ["T1"])
    (new,) = [s for s in after if s["item_id"] == "M9"]
    assert new["position"] == mugs[0] + 1  # right after the best mug
    assert new["source"] == "new_in_category" and new["reason"] == "new in mugs"
    assert (new["title"], new["price"]) == ("Speckled mug", 9.5)
    assert len(await cross_sell(shop, ["T1"], k=3)) == 3  # placed within k, not past it
    # Only in answers about its category: a new kettle has no place beside tea's mugs.
    await shop.put("/v1/admin/catalog/items/K1", json={"category": "kettles"}, headers=ADMIN_AUTH)
    assert "K1" not in {s["item_id"] for s in await cross_sell(shop, ["T1"], k=10)}
    # An item the model knows has its facts updated, and is not "new".
    r = await shop.put(
        "/v1/admin/catalog/items/T1", json={"title": "Earl Grey"}, headers=ADMIN_AUTH
    )
    assert r.json()["new"] == []
    titles = {s["item_id"]: s["title"] for s in await cross_sell(shop, ["M1"])}
    assert titles.get("T1") == "Earl Grey"


async def test_new_items_survive_a_retrain_and_a_deleted_item_is_never_suggested(
    shop: httpx.AsyncClient, publisher: Publisher, shop_model: ModelPayload
) -> None:
    r = await shop.post(
        "/v1/admin/catalog",
        json={"items": [{"item_id": "M8", "category": "mugs", "title": "Tall mug"}]},
        headers=ADMIN_AUTH,
    )
    assert r.json() == {
        "model_version": r.json()["model_version"],
        "updated": ["M8"],
        "new": ["M8"],
    }
    publisher.publish(shop_model)  # the nightly retrain, whose data lacks M8
    assert "M8" in {s["item_id"] for s in await cross_sell(shop, ["T1"])}
    victim = (await cross_sell(shop, ["T1"]))[0]["item_id"]
    r = await shop.delete(f"/v1/admin/catalog/items/{victim}", headers=ADMIN_AUTH)
    assert r.status_code == 200 and r.json()["deleted"] == [victim]
    for cart in (["T1"], ["SP"], ["T1", "SP"], ["M1"]):
        assert victim not in {s["item_id"] for s in await cross_sell(shop, cart, k=10)}
    publisher.publish(shop_model)  # still deleted in the next version
    assert victim not in {s["item_id"] for s in await cross_sell(shop, ["T1"], k=10)}
    await shop.put(
        f"/v1/admin/catalog/items/{victim}", json={"available": True}, headers=ADMIN_AUTH
    )
    assert victim in {s["item_id"] for s in await cross_sell(shop, ["T1"], k=10)}


async def test_an_erased_customer_stays_erased_in_every_version_and_it_is_audited(
    shop: httpx.AsyncClient, publisher: Publisher, shop_model: ModelPayload
) -> None:
    publisher.publish(shop_model)  # live and previous both hold s1's history
    url = "/v1/customers/s1/recommendations?k=3"
    assert (await shop.get(url)).json()["fallback"] is False
    assert (await shop.delete("/v1/admin/customers/s1")).status_code == 401
    r = await shop.delete("/v1/admin/customers/s1", headers=ADMIN_AUTH)
    assert r.status_code == 200 and len(r.json()["versions"]) == 2, r.text
    assert (await shop.get(url)).json()["fallback"] is True  # popular items, no history
    assert (await shop.get("/readyz")).status_code == 200  # every manifest still holds
    assert publisher.rollback()  # the previous version has forgotten s1 too
    assert (await shop.get(url)).json()["fallback"] is True
    publisher.publish(shop_model)  # a retrain on data that still holds s1 stores nothing
    assert (await shop.get(url)).json()["fallback"] is True
    assert (await shop.get("/v1/customers/s2/recommendations")).json()["fallback"] is False
    audit = (await shop.get("/v1/admin/audit", headers=ADMIN_AUTH)).json()["entries"]
    erase = audit[0]
    assert (erase["action"], erase["ids"]) == ("erase_customer", ["s1"])
    assert erase["actor"].startswith("api ")
    at = datetime.fromisoformat(erase["at"])  # ISO 8601 in UTC, as people read it
    assert erase["at"].endswith("Z") and abs(datetime.now(UTC) - at) < timedelta(minutes=5)
    assert (await shop.get("/v1/admin/audit")).status_code == 401


def test_the_catalog_and_erase_commands(
    settings: Settings,
    publisher: Publisher,
    shop_model: ModelPayload,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publisher.publish(shop_model)
    items = tmp_path / "items.csv"
    items.write_text("item_id,title,category,price,available\nM7,Tiny mug,mugs,4.5,yes\n")
    assert cli.main(["catalog", "--file", str(items), "--delete", "SP"], settings) == 0
    assert "updated=1 new=1 deleted=1" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("item_id,price\nM7,cheap\n")
    assert cli.main(["catalog", "--file", str(bad)], settings) == 2
    assert "line 2" in capsys.readouterr().err
    assert cli.main(["erase", "--customer", "s3"], settings) == 0
    assert "customers=1" in capsys.readouterr().out
    assert cli.main(["erase"], settings) == 2
    import redis

    with redis.Redis.from_url(str(settings.redis_url)) as r:
        layout = Layout(settings.key_prefix)
        assert r.sismember(layout.erased, "s3") and r.sismember(layout.catalog_deleted, "SP")
        assert r.xlen(layout.audit) == 3  # put, delete, erase

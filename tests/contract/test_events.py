"""Live order events: the next answer knows the order before any retrain, a repeated
order id is ignored, a full stream is trimmed and counted, bad events are refused, and
``train --include-events`` folds the orders into the next model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from recsvc.api.app import create_app
from recsvc.config import Settings
from recsvc.model import Layout
from recsvc.store import backend as storage
from tests.conftest import (
    BOTH_BACKENDS,
    GROUP_A,
    GROUP_B,
    GROUPED_ARGS,
    grouped_purchases,
    in_process,
)
from training.cli.main import main as train_main
from training.publish import Publisher

INGEST = "ingest-token-0123456789abc"
AUTH = {"authorization": f"Bearer {INGEST}"}
EVENTS = "/v1/events/orders"


def order(order_id: str, customer: str, items: list[str], day: str = "2024-03-20") -> Any:
    return {
        "order_id": order_id,
        "customer_id": customer,
        "items": [{"item_id": i, "quantity": 1, "price": 2.5} for i in items],
        "purchased_at": f"{day}T10:00:00Z",
    }


@pytest.fixture
async def live(settings: Settings, published: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings.model_copy(update={"ingest_token": SecretStr(INGEST), "events_max": 1000})
    )
    async with in_process(app) as c:
        yield c


async def suggested(api: httpx.AsyncClient, customer: str) -> dict[str, Any]:
    r = await api.get(f"/v1/customers/{customer}/recommendations", params={"k": 4})
    assert r.status_code == 200, r.text
    return dict(r.json())


@BOTH_BACKENDS
async def test_an_order_event_changes_the_next_answer_once(
    live: httpx.AsyncClient, store_url: str, layout: Layout
) -> None:
    before = await suggested(live, "c0-1")  # an A-group customer: A items suggested
    learned = {s["item_id"] for s in before["recommendations"] if s["source"] == "neighbours"}
    assert learned and learned <= set(GROUP_A)
    r = await live.post(EVENTS, json=order("o-1", "c0-1", ["B1", "B2"]), headers=AUTH)
    assert r.status_code == 202 and r.json() == {
        "order_id": "o-1",
        "duplicate": False,
        "attributed_lines": 0,
        "unknown_recommendations": 0,
    }
    after = await suggested(live, "c0-1")
    got = after["recommendations"]
    assert {"B1", "B2"}.isdisjoint(s["item_id"] for s in got)  # bought now: excluded
    assert any(s["item_id"] in GROUP_B and "B1" in s["because"] + ["B2"] for s in got)
    assert got != before["recommendations"]
    again = await live.post(EVENTS, json=order("o-1", "c0-1", ["B3"]), headers=AUTH)
    assert again.status_code == 202 and again.json()["duplicate"] is True
    assert await suggested(live, "c0-1") == {**after, "recommendation_id": ANY}
    # A customer the model never saw gets suggestions from the order alone.
    assert (await suggested(live, "newcomer"))["fallback"] is True
    await live.post(EVENTS, json=order("o-2", "newcomer", ["A1"]), headers=AUTH)
    fresh = await suggested(live, "newcomer")
    assert fresh["fallback"] is False
    assert {s["item_id"] for s in fresh["recommendations"] if s["source"] == "neighbours"} <= set(
        GROUP_A
    )
    with storage.sync_connected(store_url, layout.cluster) as client:
        assert client.xlen(layout.events) == 2  # the duplicate was not appended
    metrics = (await live.get("/metrics")).text
    assert 'recsvc_events_total{result="duplicate"} 1.0' in metrics
    assert 'recsvc_events_total{result="accepted"} 2.0' in metrics


class _Any:
    def __eq__(self, other: object) -> bool:
        return True


ANY = _Any()


async def test_bad_events_are_refused_and_lose_nothing(live: httpx.AsyncClient) -> None:
    assert (await live.post(EVENTS, json=order("o-9", "c0-1", ["A1"]))).status_code == 401
    wrong = {"authorization": "Bearer admin-token-is-not-this-one"}
    assert (
        await live.post(EVENTS, json=order("o-9", "c0-1", ["A1"]), headers=wrong)
    ).status_code == 401
    for bad in (
        {**order("o-9", "c0-1", ["A1"]), "items": []},
        {**order("o-9", "c0-1", ["A1"]), "purchased_at": "yesterday"},
        {**order("o-9", "c0-1", ["A1"]), "surprise": 1},
        {k: v for k, v in order("o-9", "c0-1", ["A1"]).items() if k != "order_id"},
    ):
        r = await live.post(EVENTS, json=bad, headers=AUTH)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    # Nothing of the refused ones was recorded: o-9 is still new.
    r = await live.post(EVENTS, json=order("o-9", "c0-1", ["A1"]), headers=AUTH)
    assert r.json()["duplicate"] is False


@BOTH_BACKENDS
async def test_a_full_stream_is_trimmed_and_counted(
    live: httpx.AsyncClient, store_url: str, layout: Layout
) -> None:
    for n in range(1250):
        r = await live.post(EVENTS, json=order(f"bulk-{n}", f"c{n % 7}", ["A1"]), headers=AUTH)
        assert r.status_code == 202
    metrics = (await live.get("/metrics")).text
    (line,) = [x for x in metrics.splitlines() if x.startswith("recsvc_events_trimmed ")]
    trimmed = float(line.split()[1])
    with storage.sync_connected(store_url, layout.cluster) as client:
        kept = client.xlen(layout.events)
        added = int(client.get(layout.events_added) or 0)
    assert added == 1250 and 1000 <= kept < 1250 and trimmed == added - kept > 0


async def test_disabled_without_an_ingest_token(api: httpx.AsyncClient, published: str) -> None:
    r = await api.post(EVENTS, json=order("o-1", "c0-1", ["A1"]), headers=AUTH)
    assert r.status_code == 403 and "RECSVC_INGEST_TOKEN" in r.json()["error"]["message"]


@BOTH_BACKENDS
async def test_training_with_events_folds_the_orders_in(
    store_url: str, layout: Layout, tmp_path: Path
) -> None:
    settings = Settings(
        redis_url=store_url,
        redis_cluster=layout.cluster,
        key_prefix=layout.prefix,
        data_dir=tmp_path,
        refresh_interval_s=0,
        ingest_token=SecretStr(INGEST),
    )
    purchases = grouped_purchases()
    csv = tmp_path / "p.csv"
    purchases.to_csv(csv, index=False)
    assert train_main(["train", "--purchases", str(csv), *GROUPED_ARGS], settings) == 0
    app = create_app(settings)
    async with in_process(app) as api:
        first = purchases["order"].iloc[0]  # an order the file already holds
        known = order(first, "c0-0", ["I000"], "2024-04-28")
        assert (await api.post(EVENTS, json=known, headers=AUTH)).status_code == 202
        fresh = order("live-1", "shopper", ["I001", "I002"], "2024-04-29")
        assert (await api.post(EVENTS, json=fresh, headers=AUTH)).status_code == 202
    args = ["train", "--purchases", str(csv), *GROUPED_ARGS, "--include-events", "--force"]
    assert train_main(args, settings) == 0
    with storage.sync_connected(store_url, layout.cluster) as sync:
        client = Publisher(sync, layout)
        meta = client.meta(client.live_version() or "")
        live_version = client.live_version() or ""
    assert meta is not None
    # The new order's two lines joined the file's; the one the file held was not counted.
    assert meta["source"]["rows_read"] == len(purchases) + 2
    with storage.sync_connected(store_url, layout.cluster) as r:
        stored = r.hget(layout.field_key(live_version, "customers", "shopper"), "shopper")
    assert stored is not None and b"I001" in stored and b"I002" in stored


@BOTH_BACKENDS
async def test_a_post_purchase_export_finds_the_order_without_a_retrain(
    live: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    from recsvc.answers import export

    last_day = "2024-03-01"  # the block model's last purchase: the audiences' "today"
    for order_id, customer in (("e-1", "c0-1"), ("e-2", "newcomer")):
        r = await live.post(EVENTS, json=order(order_id, customer, ["B1"], last_day), headers=AUTH)
        assert r.status_code == 202
    out = tmp_path / "followup.jsonl"
    result = await export.run(settings, out, audience=export.Audience(0, 0))
    exported = {
        line.split('"customer_id":"')[1].split('"')[0] for line in out.read_text().splitlines()
    }
    # Bought "today" through live events only: c0-1 (stored, last bought earlier) and a
    # customer the model never saw; nobody else bought on the model's last day.
    assert {"c0-1", "newcomer"} <= exported and result.written == len(exported)


@BOTH_BACKENDS
async def test_erasing_a_customer_erases_what_their_events_added(
    live: httpx.AsyncClient, settings: Settings, store_url: str, layout: Layout
) -> None:
    from recsvc.store import ModelStore

    await live.post(EVENTS, json=order("p-1", "newcomer", ["A1"]), headers=AUTH)
    assert (await suggested(live, "newcomer"))["fallback"] is False

    async with storage.async_client(store_url, layout.cluster, 5.0, blocking=False) as conn:
        await ModelStore(conn, layout).admin.erase_customers(["newcomer"], "test")
    assert (await suggested(live, "newcomer"))["fallback"] is True
    with storage.sync_connected(store_url, layout.cluster) as client:
        assert not client.hexists(layout.event_histories, "newcomer")

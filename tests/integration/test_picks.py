"""Stored customers' picks (``recsvc.answers.picks``): ranked by the trainer, served with
one read, and the same answers as ranking online, rules and stock included."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr

from recsvc import model as lay
from recsvc.answers import picks
from recsvc.answers import recommend as rec
from recsvc.api.app import create_app
from recsvc.config import Settings
from recsvc.ranking.rules import MerchRules
from recsvc.store import CatalogAdmin, CustomerQuery, ModelStore
from recsvc.store import backend as storage
from tests.conftest import BOTH_BACKENDS, TEST_CONFIG, grouped_purchases, in_process
from training.engines.local import DEFAULT_PICKS, Stages, fit
from training.publish import ModelPayload, Publisher
from training.stages import catalog as cat

GROUPS, GROUP_SIZE = 8, 5


def catalog_file(path: Path) -> Path:
    """Each group of ``grouped_purchases`` a category, prices rising within it."""
    lines = ["item_id,title,category,price,available"]
    for item in range(GROUPS * GROUP_SIZE):
        g = item // GROUP_SIZE
        lines.append(f"I{item:03d},Item {item},group {g},{1 + item % GROUP_SIZE}.50,true")
    path.write_text("\n".join(lines) + "\n")
    return path


def picked_model(tmp: Path, n: int, mixed: bool = True) -> ModelPayload:
    """Grouped purchases with some orders across groups (so histories have candidates in
    many categories), a catalog, and picks of ``n`` per customer."""
    frame = grouped_purchases(orders=600, customers_per_group=8)
    if mixed:
        frame = frame.copy()
        frame.loc[frame.index % 7 == 0, "item"] = (
            frame["item"].iloc[::-1].to_numpy()[frame.index % 7 == 0]
        )
        frame = frame.drop_duplicates(["order", "item"])
    catalog, _ = cat.read_catalog(catalog_file(tmp / "catalog.csv"))
    config = replace(TEST_CONFIG, picks=replace(DEFAULT_PICKS, n=n))
    return fit(frame, config, Stages(io.StringIO()), catalog=catalog)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[ModelStore]:
    url = str(settings.redis_url)
    client = storage.async_client(url, settings.redis_cluster, 5.0, blocking=False)
    try:
        yield ModelStore(client, settings.layout)
    finally:
        await client.aclose()


RULES: Sequence[MerchRules | None] = (
    None,
    MerchRules(max_per_category=1),
    MerchRules(exclude_categories=["group 1", "group 2"]),
    MerchRules(only_categories=["group 3"]),
    MerchRules(min_price=3.0, pin=["I004"]),
    MerchRules(boost={"I007": 3.0}),
)


async def both_ways(
    store: ModelStore,
    settings: Settings,
    customers: list[str],
    k: int,
    rules: MerchRules | None,
) -> tuple[list[Any], list[Any], int]:
    """Every customer's rendered answer from the picks (where they answer) and ranked
    online, and how many the picks answered."""
    queries = [CustomerQuery(c) for c in customers]
    view, fetched = await store.customers(queries, picks.answering(settings, k, True, rules))
    online_view, online = await store.customers(queries)
    assert online_view.version == view.version
    from_picks, ranked, answered = [], [], 0
    for got, other in zip(fetched, online, strict=True):
        assert other.ranked is None
        if got.ranked is not None:
            answered += 1
            assert got.lists == []  # no list was read for it
        ranking = got.ranked or rec.rank_stored(
            view, settings, got.history, got.lists, k, True, rules
        )
        from_picks.append(rec.suggestions(view, ranking, stored=True))
        again = rec.rank_stored(view, settings, other.history, other.lists, k, True, rules)
        ranked.append(rec.suggestions(view, again, stored=True))
    return from_picks, ranked, answered


@BOTH_BACKENDS
@pytest.mark.parametrize("n", [picks.PICKS_PER_CUSTOMER, 4])
async def test_every_stored_customer_gets_from_the_picks_what_ranking_online_gives(
    n: int, settings: Settings, publisher: Publisher, store: ModelStore, tmp_path: Path
) -> None:
    model = picked_model(tmp_path, n)
    publisher.publish(model)
    customers = sorted(model.histories)
    assert len(customers) >= 60
    admin = CatalogAdmin(store)
    checked = answered = 0
    for step in ("as trained", "stock", "deleted and new"):
        if step == "stock":
            await admin.set_stock({"I001": {"available": False}, "I012": {"available": False}})
        elif step == "deleted and new":
            await admin.delete_items(["I020", "I033"], "test")
            await admin.put_items({"NEW1": {"title": "New", "category": "group 3"}}, "test")
        for rules in RULES:
            for k in (1, 5, 10):
                mine, online, used = await both_ways(store, settings, customers, k, rules)
                assert mine == online, (step, rules, k)
                checked += len(customers)
                answered += used
                if rules is not None and rules.boost:
                    assert used == 0  # a boost reorders what the picks may have cut
    assert checked == len(customers) * 3 * len(RULES) * 3
    # The picks answered most (all, with 50 a customer, but for the boost); with 4 a
    # customer, the filters leave too few for many, which are ranked online.
    share = answered / checked
    assert (share > 0.75) if n == picks.PICKS_PER_CUSTOMER else (0.05 < share < 0.75)


async def test_the_picks_follow_the_history_and_settings_they_were_made_with(
    settings: Settings, publisher: Publisher, store: ModelStore, tmp_path: Path
) -> None:
    model = picked_model(tmp_path, picks.PICKS_PER_CUSTOMER)
    version = publisher.publish(model)
    customer = sorted(model.histories)[0]
    query = [CustomerQuery(customer)]
    meta = publisher.meta(version)
    assert meta is not None
    assert meta["picks"] == {"n": 50, "half_life_days": 30.0, "because_limit": 3}
    assert meta["format"] == 3
    _, (got,) = await store.customers(query, picks.answering(settings, 10, True))
    assert got.ranked is not None and got.history is not None and got.history.picks
    # What the picks cannot tell is ranked online: purchased items included, another
    # half-life or because limit than the trainer's.
    _, (got,) = await store.customers(query, picks.answering(settings, 10, False))
    assert got.ranked is None and got.lists
    other = settings.model_copy(update={"history_half_life_days": 7.0})
    _, (got,) = await store.customers(query, picks.answering(other, 10, True))
    assert got.ranked is None
    other = settings.model_copy(update={"because_limit": 2})
    _, (got,) = await store.customers(query, picks.answering(other, 10, True))
    assert got.ranked is None
    # A version trained without picks is ranked online.
    publisher.publish(replace(model, picks=None))
    _, (got,) = await store.customers(query, picks.answering(settings, 10, True))
    assert got.ranked is None and got.history is not None and got.history.picks is None


async def test_live_events_an_erasure_and_the_metrics_over_http(
    settings: Settings, publisher: Publisher, tmp_path: Path
) -> None:
    model = picked_model(tmp_path, picks.PICKS_PER_CUSTOMER)
    publisher.publish(model)
    first, second = sorted(model.histories)[:2]
    token = "ingest-token-of-24-chars"
    admin = "admin-token-of-24-chars!"
    tokens = {"ingest_token": SecretStr(token), "admin_token": SecretStr(admin)}
    app = create_app(settings.model_copy(update=tokens))
    async with in_process(app) as api:
        before = (await api.get(f"/v1/customers/{first}/recommendations")).json()
        assert before["recommendations"]
        event = {
            "order_id": "ev-1",
            "customer_id": first,
            "items": [{"item_id": "I039"}],
            "purchased_at": "2024-05-01T10:00:00Z",
        }
        r = await api.post("/v1/events/orders", json=event, headers=auth(token))
        assert r.status_code in (200, 202), r.text
        after = (await api.get(f"/v1/customers/{first}/recommendations")).json()
        assert "I039" not in [s["item_id"] for s in after["recommendations"]]
        r = await api.delete(f"/v1/admin/customers/{second}", headers=auth(admin))
        assert r.status_code == 200, r.text
        erased = (await api.get(f"/v1/customers/{second}/recommendations")).json()
        assert erased["fallback"] is True
        metrics = (await api.get("/metrics")).text
    assert counted(metrics, "picks") >= 1
    assert counted(metrics, "events") >= 1


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def counted(metrics: str, path: str) -> float:
    line = f'recsvc_customer_answers_total{{path="{path}"}}'
    found = [ln for ln in metrics.splitlines() if ln.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


def test_a_stored_customers_scores_keep_about_three_digits_and_their_order() -> None:
    rng = np.random.default_rng(2)
    scores = np.sort(rng.lognormal(-3, 2, 1000).astype(np.float32))[::-1]
    kept = lay.score_precision(scores)
    assert lay.score_precision(kept) == kept  # rounding twice changes nothing
    assert np.allclose(kept, scores, rtol=2**-8 + 5e-3, atol=0)
    assert kept == sorted(kept, reverse=True)  # never reorders (ties may appear)
    assert lay.score_precision([1.0, 0.0, -2.5e-9]) == [1.0, 0.0, -2.5e-9]


def test_picks_pack_to_a_few_bytes_an_entry_and_back() -> None:
    rng = np.random.default_rng(1)
    n = 50
    indices = rng.choice(70_000, n, replace=False)
    scores = np.sort(rng.random(n).astype(np.float32))[::-1]
    because = [list(rng.choice(100, int(rng.integers(1, 4)), replace=False)) for _ in range(n)]
    evidence = rng.integers(0, 300, n)
    blob = lay.encode_picks(indices, scores, because, evidence, complete=False)
    got = lay.decode_picks(blob)
    assert got.indices.tolist() == indices.tolist()
    assert got.scores == lay.score_precision(scores)
    assert [got.because(e) for e in range(n)] == [[int(p) for p in b] for b in because]
    assert got.evidence == evidence.tolist() and not got.complete
    assert len(blob) < 10 * n
    empty = lay.decode_picks(lay.encode_picks([], [], [], [], complete=True))
    assert len(empty) == 0 and empty.complete
    history = lay.encode_history(["a"], [1], [1])
    assert lay.split_history(history + lay.PICKS_SEPARATOR + blob) == (history, blob)
    assert lay.decode_history(history + lay.PICKS_SEPARATOR + blob) == (["a"], [1], [1])
    for broken in (blob[:6] + bytes(len(blob)), blob[:3], blob[:-2] + b"\x01\x02"):
        with pytest.raises(ValueError, match="corrupt packed picks"):
            lay.decode_picks(broken)
    with pytest.raises(ValueError, match="differ in length"):
        lay.encode_picks([1], [1.0], [], [0], complete=True)

"""Stored histories, the batch endpoint, attribution ids and /metrics, on a real Redis."""

from __future__ import annotations

import io
import logging
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import orjson
import pandas as pd

from recsvc import model as lay
from recsvc.answers import recommend as rec
from recsvc.api.observability import JsonFormatter, _direct_writer
from recsvc.config import LOGGER, Settings
from recsvc.experiments.attribution import origin
from recsvc.ranking import SOURCE_POPULAR
from recsvc.store import StoredHistory
from tests.conftest import GROUP_A, GROUP_B, block_baskets
from training.evaluation import evaluate as ev
from training.publish import ModelPayload
from training.stages.histories import recent_items

BATCH = "/v1/recommendations/batch"


def test_recent_items_keeps_the_most_bought_and_latest_items_newest_first() -> None:
    t = pd.to_datetime(
        ["2024-01-01", "2024-01-03", "2024-01-02", "2024-01-05", "2023-11-01", "2023-11-02"],
        utc=True,
    )
    frame = pd.DataFrame(
        {
            "customer": ["u", "u", "u", "v", "u", "u"],
            "item": ["a", "b", "a", "a", "c", "c"],
            "order": ["o1", "o2", "o3", "o4", "o5", "o6"],
            "timestamp": t,
        }
    )

    def day(i: int) -> int:
        return int((t[i] - pd.Timestamp(0, tz="UTC")).days)

    # u bought a in two orders (latest Jan 2), b once (Jan 3), c twice two months before:
    # a weighs 2 x 0.5^(1/30), b 1, c about 2 x 0.5^(62/30) = 0.48.
    assert recent_items(frame, limit=1)["u"] == (["a"], [day(2)], [2])
    # Kept by weight, stored newest first, with the orders of each.
    assert recent_items(frame, limit=2)["u"] == (["b", "a"], [day(1), day(2)], [1, 2])
    assert recent_items(frame, limit=5)["u"][0] == ["b", "a", "c"]
    undated = recent_items(frame.drop(columns="timestamp"), limit=5)
    assert undated["v"] == (["a"], [-1], [1])


def test_a_stored_history_weighs_each_item_by_its_orders() -> None:
    history = StoredHistory(["a", "b"], [19000, 18970], [3, 1])
    weights = rec.stored_weights(history, 30.0)
    assert weights == {"a": 3.0, "b": 0.5}
    # Older trainers' histories and live events carry no counts: once each.
    assert lay.decode_history(lay.encode_history(["a"], [19000])) == (["a"], [19000], [1])
    blob = lay.encode_history(["a", "b"], [19000, 18970], [3, 1])
    assert StoredHistory.decode(blob) == history
    # Live events ahead of the stored history: an item in both adds up its orders.
    merged = StoredHistory(["b", "z"], [19001, 19001]).before(history, cap=3)
    assert merged == StoredHistory(
        ["b", "z", "a"], [19001, 19001, 19000], [2, 1, 3], merged=True
    )  # its picks, if any, no longer hold: ranked online


def test_the_trained_model_stores_every_customer(block_model: ModelPayload) -> None:
    customers = set(block_baskets()["customer"])
    assert set(block_model.histories) == customers
    items, days, _counts = block_model.histories["c0-0"]
    assert set(items) <= set(GROUP_A) and days == sorted(days, reverse=True)


async def test_a_stored_customer_gets_suggestions_without_sending_a_history(
    api: httpx.AsyncClient, published: str, block_model: ModelPayload
) -> None:
    bought = set(block_model.histories["c1-3"][0])
    r = await api.get("/v1/customers/c1-3/recommendations", params={"k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["customer_id"] == "c1-3" and body["fallback"] is False
    got = [s["item_id"] for s in body["recommendations"]]
    learned = [s["item_id"] for s in body["recommendations"] if s["source"] == "neighbours"]
    # Neighbours of what c1-3 bought are the B items it has not bought; the rest is filler.
    assert learned and set(learned) <= set(GROUP_B) - bought
    assert len(got) == 3 and not set(got) & bought
    again = await api.get(
        "/v1/customers/c1-3/recommendations", params={"k": 3, "exclude_purchased": "false"}
    )
    assert {s["source"] for s in again.json()["recommendations"]} >= {"repurchase"}


async def test_an_unknown_customer_gets_popular_items_flagged_as_fallback(
    api: httpx.AsyncClient, published: str, block_model: ModelPayload
) -> None:
    body = (await api.get("/v1/customers/nobody/recommendations", params={"k": 2})).json()
    assert body["fallback"] is True
    assert [s["item_id"] for s in body["recommendations"]] == [
        block_model.item_ids[i] for i in block_model.popular_indices[:2]
    ]


async def test_batch_keeps_request_order_and_isolates_bad_entries(
    api: httpx.AsyncClient, published: str
) -> None:
    entries = [
        {"customer_id": "c0-1"},
        {"items": ["B1"]},
        {"customer_id": "c0-1", "items": ["A1"]},  # both: this entry alone is refused
        {"customer_id": "nobody"},
        {"items": []},
        {"customer_id": "c1-2"},
    ]
    r = await api.post(BATCH, json={"requests": entries, "k": 2})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["index"] for x in results] == list(range(6))
    assert set(i["item_id"] for i in results[0]["recommendations"]) <= set(GROUP_A)
    assert set(i["item_id"] for i in results[1]["recommendations"]) <= set(GROUP_B)
    assert "exactly one" in results[2]["error"]["message"]
    assert results[3]["fallback"] is True and results[3]["customer_id"] == "nobody"
    assert results[4]["error"]["code"] == "invalid_request"
    assert set(i["item_id"] for i in results[5]["recommendations"]) <= set(GROUP_B)
    ids = {x["recommendation_id"] for x in results if "recommendation_id" in x}
    assert len(ids) == 4  # one per answered entry, all different
    too_many = await api.post(BATCH, json={"requests": [{"customer_id": "x"}] * 1001})
    assert too_many.status_code == 422


async def test_every_answer_carries_an_id_and_every_suggestion_its_position(
    api: httpx.AsyncClient, published: str
) -> None:
    first = (await api.post("/v1/recommendations/cart", json={"items": ["A1"], "k": 3})).json()
    second = (await api.post("/v1/recommendations/cart", json={"items": ["A1"], "k": 3})).json()
    assert re.fullmatch(r"[0-9a-f]{27}", first["recommendation_id"])
    assert first["recommendation_id"] != second["recommendation_id"]
    # It names its answer: the version and the arm, for attribution.
    named = origin(first["recommendation_id"])
    assert named is not None and (named.version, named.arm) == (published, "live")
    assert [s["position"] for s in first["cross_sell"]] == [1, 2, 3]


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_move_when_requests_are_served(
    api: httpx.AsyncClient, published: str
) -> None:
    before = (await api.get("/metrics")).text
    route = "/v1/recommendations/cart"
    await api.post(route, json={"items": ["A1"]})
    await api.post(route, json={"items": ["nope"]})  # a fallback answer
    await api.post(route, json={"items": []})  # a 422
    r = await api.get("/metrics", headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    after = r.text
    assert metric(after, "recsvc_responses_total", route=route, status="200") == (
        metric(before, "recsvc_responses_total", route=route, status="200") + 2
    )
    assert metric(after, "recsvc_responses_total", route=route, status="422") >= 1
    assert metric(after, "recsvc_request_duration_seconds_count", route=route) >= 3
    assert metric(after, "recsvc_fallback_answers_total") >= 1 + metric(
        before, "recsvc_fallback_answers_total"
    )
    assert metric(after, "recsvc_model_info", version=published) == 1.0
    assert metric(after, "recsvc_model_age_seconds") > 0


async def test_each_request_is_logged_as_json_with_its_request_id(
    api: httpx.AsyncClient, published: str
) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(LOGGER)
    handler = Keep()
    logger.addHandler(handler)
    try:
        r = await api.post(
            "/v1/recommendations/cart", json={"items": ["A1"]}, headers={"x-request-id": "req-42"}
        )
    finally:
        logger.removeHandler(handler)
    assert r.headers["x-request-id"] == "req-42"
    (line,) = [JsonFormatter().format(x) for x in records if x.getMessage() == "request"]
    entry = orjson.loads(line)
    assert entry["request_id"] == "req-42" and entry["status"] == 200
    assert entry["route"] == "/v1/recommendations/cart" and entry["duration_ms"] > 0


def test_the_direct_request_line_is_the_formatters_line() -> None:
    stream = io.StringIO()
    logger = logging.getLogger(f"recsvc-test-{id(stream)}")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fields = {"request_id": "r1", "method": "POST", "status": 200, "duration_ms": 0.5}
    write = _direct_writer(logger)
    assert write is not None
    write(fields)
    logger.info("request", extra={"fields": fields})
    direct, formatted = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert set(direct) == set(formatted) and direct.pop("time") <= formatted.pop("time")
    assert {**direct, "logger": "x"} == {**formatted, "logger": "x"}
    logger.addHandler(logging.NullHandler())  # another set-up: back to logging
    assert _direct_writer(logger) is None


def test_stored_weights_are_the_history_weights_of_the_same_days() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    history = StoredHistory(["a", "b", "c", "a"], [19000, 18970, -1, 18940])
    times = [None if d < 0 else epoch + timedelta(days=d) for d in history.days]
    expected = rec.history_weights(history.item_ids, times, 30.0)
    got = rec.stored_weights(history, 30.0)
    assert got.keys() == expected.keys()
    assert all(abs(got[k] - expected[k]) < 1e-12 for k in got)
    assert got["b"] == 0.5 and got["c"] == 1.0


def test_the_positive_part_of_a_list_is_every_positive_entry_and_only_those() -> None:
    from recsvc.model import encode_pairs
    from recsvc.store import ItemList

    best_first = ItemList.decode(encode_pairs([3, 1, 4, 2], [0.9, 0.5, -0.1, -0.7], [5, 4, 0, 0]))
    assert best_first.positive is not None
    assert best_first.positive.indices.tolist() == [3, 1]
    assert best_first.positive.counts.tolist() == [5, 4]
    assert np.shares_memory(best_first.positive.indices, best_first.indices)  # a view
    mixed = ItemList.decode(encode_pairs([3, 1, 4, 2], [0.9, -0.5, 0.3, -0.7]))
    assert mixed.positive is not None
    assert sorted(mixed.positive.indices.tolist()) == [3, 4]
    assert (mixed.positive.scores > 0).all()


def test_a_version_serving_best_sellers_ranks_customers_by_popularity(
    block_model: ModelPayload,
) -> None:
    """``serving.history_recipe = popular`` (the trainer found best-sellers beat the
    lists for customers): a stored customer gets the best-sellers not yet bought, marked
    popular, under the same rules; the model's recipe ranks from the lists."""
    serving = {**block_model.meta["serving"], "history_recipe": "popular"}
    popular_model = replace(block_model, meta={**block_model.meta, "serving": serving})
    history = StoredHistory([GROUP_A[0], GROUP_A[1]], [19_000, 19_001], [2, 1])
    answers = {}
    for name, payload in (("model", block_model), ("popular", popular_model)):
        view, lists = ev.served_view(payload)
        seeds = [lists[view.index[i]] for i in history.item_ids]
        answers[name] = (view, rec.rank_stored(view, Settings(), history, seeds, 5, True))
    view, best = answers["popular"]
    assert all(s.source == SOURCE_POPULAR for s in best.suggestions)
    expected = [view.item_ids[i] for i in view.popular if view.item_ids[i] not in history.item_ids]
    assert [s.item_id for s in best.suggestions] == expected[:5]
    _, model = answers["model"]
    assert any(s.source != SOURCE_POPULAR for s in model.suggestions)
    assert [s.item_id for s in model.suggestions] != [s.item_id for s in best.suggestions]

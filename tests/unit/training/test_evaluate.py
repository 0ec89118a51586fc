"""Evaluation metrics on tiny hand-computed cases, and the split never leaking test data."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest

from tests.conftest import grouped_purchases
from training.engines.local import Stages, TrainConfig
from training.errors import InputError
from training.evaluation import cases as holdout
from training.evaluation import evaluate as ev
from training.evaluation.assessment import assess
from training.stages import ingest


def test_cart_metrics_by_hand() -> None:
    cases = [
        holdout.CartCase([0], hidden=7),
        holdout.CartCase([1], hidden=9),
        holdout.CartCase([2], hidden=3),
    ]
    ranked = [[7, 1, 2], [4, 9, 5], [1, 2, 4]]  # hit at 1, hit at 2, miss
    m = ev.cart_metrics(ranked, cases)
    assert m["hr@1"] == pytest.approx(1 / 3)
    assert m["hr@10"] == pytest.approx(2 / 3)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 2) / 3)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3)) / 3)


def test_set_metrics_by_hand() -> None:
    ranked = [[1, 2, 3], [5, 6, 7]]
    targets = [frozenset({2, 9}), frozenset({8})]
    m = ev.set_metrics(ranked, targets)
    # Case 1: one of two targets found at position 2; case 2: nothing.
    assert m["recall@10"] == pytest.approx((1 / 2 + 0) / 2)
    ideal = 1 + 1 / math.log2(3)
    assert m["ndcg@10"] == pytest.approx((1 / math.log2(3) / ideal) / 2)
    # A customer with no scorable target is left out, not counted as a miss.
    assert ev.set_metrics([[1]], [frozenset()])["recall@10"] == 0.0


def frame() -> pd.DataFrame:
    t = pd.to_datetime(["2024-01-01", "2024-01-05", "2024-01-09", "2024-01-10"], utc=True)
    return pd.DataFrame(
        {"customer": ["u1", "u1", "u2", "u1"], "item": ["A", "B", "A", "C"],
         "order": ["o1", "o1", "o2", "o3"], "timestamp": t}
    )  # fmt: skip


def test_split_keeps_every_test_row_out_of_training() -> None:
    split = holdout.temporal_split(frame(), None, test_fraction=0.2)
    assert split.train["timestamp"].max() < split.cutoff <= split.test["timestamp"].min()
    assert len(split.train) + len(split.test) == 4
    # The last 20% of 9 days starts on Jan 8th, 04:48.
    assert set(split.test["order"]) == {"o2", "o3"}


def test_split_without_time_or_with_an_empty_side_is_refused() -> None:
    with pytest.raises(InputError, match="timestamp"):
        holdout.temporal_split(frame().drop(columns="timestamp"), None, 0.1)
    with pytest.raises(InputError, match="empty"):
        holdout.temporal_split(frame(), pd.Timestamp("2030-01-01", tz="UTC"), 0.1)


def test_history_cases_separate_new_items_from_repurchases() -> None:
    split = holdout.temporal_split(frame(), pd.Timestamp("2024-01-09", tz="UTC"), 0.1)
    items = pd.Series(["A", "B", "C"]).to_numpy()
    cases = holdout.build_cases(split, items, half_life_days=30)
    # u2 bought only after the cutoff; u1's later item C is new to them.
    assert len(cases.history) == 1
    (case,) = cases.history
    assert case.targets == frozenset({2}) and case.new_targets == frozenset({2})
    assert sorted(case.items) == [0, 1]


def test_a_catalog_of_ten_items_is_evaluated_with_every_baseline() -> None:
    """Fewer items than the 20 an answer ranks: every method still answers, no crash."""
    frame = grouped_purchases(groups=2, group_size=5, orders=200)
    config = TrainConfig(columns=ingest.Columns(customer="customer", item="item"))
    result = assess(frame, config, Stages(io.StringIO()))
    assert result.split["items_ranked"] == 10
    names = {r.name for r in result.results}
    assert {"recsvc (served)", "popularity", "ALS default, cosine"} <= names
    assert result.served().metrics["cart"]["hr@10"] > 0.5


def test_case_by_case_scores_average_to_the_reported_measures() -> None:
    frame = grouped_purchases().rename(
        columns={"customer": ingest.CUSTOMER, "item": ingest.ITEM, "order": ingest.ORDER,
                 "quantity": ingest.QUANTITY, "timestamp": ingest.TIMESTAMP,
                 "price": ingest.PRICE, "description": ingest.DESCRIPTION}
    )  # fmt: skip
    config = TrainConfig(columns=ingest.Columns(customer="customer", item="item"))
    result = assess(frame, config, Stages(io.StringIO()))
    for method in result.results:
        for key, scores in method.per_case.items():
            task, metric = key.split("/")
            if not scores.size:  # no case with a target: the measure reads 0
                assert method.metrics[task][metric] == 0.0
                continue
            assert scores.mean() == pytest.approx(method.metrics[task][metric]), (method, key)
    assert result.served().per_case["cart/hr@10"].size == result.split["cart_cases"]

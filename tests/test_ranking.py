from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from recsvc.ranking import (
    SOURCE_NEIGHBOURS,
    SOURCE_POPULAR,
    SOURCE_REPURCHASE,
    Rules,
    Seed,
    rank,
    recency_weights,
)

ITEMS = ["a", "b", "c", "d", "e", "f"]
POPULAR = np.array([5, 4, 3, 2, 1, 0], dtype=np.int64)


def seed(item: str, neighbours: dict[str, float], weight: float = 1.0) -> Seed:
    idx = np.array([ITEMS.index(n) for n in neighbours], dtype=np.int64)
    return Seed(
        item, ITEMS.index(item), weight, idx, np.array(list(neighbours.values()), np.float32)
    )


def test_scores_add_up_across_seeds_and_name_the_seeds_behind_them() -> None:
    seeds = [seed("a", {"c": 0.5, "d": 0.4}), seed("b", {"d": 0.3, "e": 0.6})]
    out = rank(seeds, ITEMS, POPULAR, Rules(k=3, exclude={0, 1}))
    assert [s.item_id for s in out.suggestions] == ["d", "e", "c"]
    assert out.suggestions[0].score == np.float32(0.4) + np.float32(0.3)
    assert out.suggestions[0].because == ("a", "b")  # a contributed more than b
    assert out.suggestions[1].because == ("b",)
    assert not out.fallback


def test_seed_weights_scale_their_contribution() -> None:
    seeds = [seed("a", {"c": 0.5}, weight=0.1), seed("b", {"d": 0.3}, weight=1.0)]
    out = rank(seeds, ITEMS, POPULAR, Rules(k=2, exclude={0, 1}))
    assert [s.item_id for s in out.suggestions] == ["d", "c"]


def test_never_suggests_an_excluded_item() -> None:
    seeds = [seed("a", {"b": 0.9, "c": 0.5}), seed("b", {"a": 0.9, "c": 0.1})]
    out = rank(seeds, ITEMS, POPULAR, Rules(k=5, exclude={0, 1}))
    ids = [s.item_id for s in out.suggestions]
    assert "a" not in ids and "b" not in ids
    assert ids[0] == "c"


def test_short_lists_are_filled_with_popular_items_marked_as_such() -> None:
    out = rank([seed("a", {"b": 0.9})], ITEMS, POPULAR, Rules(k=4, exclude={0}))
    assert [s.item_id for s in out.suggestions] == ["b", "f", "e", "d"]
    assert [s.source for s in out.suggestions] == [SOURCE_NEIGHBOURS] + [SOURCE_POPULAR] * 3
    assert not out.fallback


def test_no_known_seed_is_a_fallback_to_popular() -> None:
    out = rank([], ITEMS, POPULAR, Rules(k=2, exclude={5}))
    assert [s.item_id for s in out.suggestions] == ["e", "d"]
    assert out.fallback


def test_repurchase_weight_scores_the_seeds_themselves() -> None:
    seeds = [seed("a", {"c": 0.2}, weight=1.0)]
    out = rank(seeds, ITEMS, POPULAR, Rules(k=2, repurchase_weight=0.5))
    assert [(s.item_id, s.source) for s in out.suggestions] == [
        ("a", SOURCE_REPURCHASE),
        ("c", SOURCE_NEIGHBOURS),
    ]


def test_ties_break_by_index_so_answers_are_stable() -> None:
    seeds = [seed("a", {"e": 0.5, "c": 0.5, "d": 0.5})]
    first = rank(seeds, ITEMS, POPULAR, Rules(k=3, exclude={0}))
    assert [s.item_id for s in first.suggestions] == ["c", "d", "e"]


def test_because_is_limited() -> None:
    seeds = [seed(i, {"f": 0.1 * (n + 1)}) for n, i in enumerate("abcde")]
    out = rank(seeds, ITEMS, POPULAR, Rules(k=1, because_limit=2))
    assert out.suggestions[0].because == ("e", "d")


def test_recency_weights_halve_per_half_life_from_the_latest_purchase() -> None:
    now = datetime(2024, 5, 1, tzinfo=UTC)
    weights = recency_weights([now, now - timedelta(days=30), None, now - timedelta(days=60)], 30)
    assert weights == [1.0, 0.5, 1.0, 0.25]
    assert recency_weights([None, None], 30) == [1.0, 1.0]


def test_repurchase_bonus_ranks_every_bought_item_above_neighbour_evidence() -> None:
    seeds = [seed("a", {"c": 0.9}, weight=1.0), seed("b", {"c": 0.9}, weight=0.001)]
    rules = Rules(k=3, repurchase_weight=0.1, repurchase_bonus=10.0)
    out = rank(seeds, ITEMS, POPULAR, rules)
    assert [s.item_id for s in out.suggestions] == ["a", "b", "c"]

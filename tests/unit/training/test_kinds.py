"""Same kind of product or not, for upsell alternatives: categories, else titles."""

from __future__ import annotations

from typing import Any

import numpy as np

from training.neighbours.base import Neighbours
from training.stages.kinds import Kinds, same_kind_only, words


def test_title_words_are_letters_only_without_sizes_or_stop_words() -> None:
    assert words("AeroPress Go 350ml, travel set") == {"aeropress", "travel"}
    assert words("Hario V60 Ceramic Dripper 02") == {"hario", "ceramic", "dripper"}
    assert words("") == frozenset()


FACTS: list[dict[str, Any]] = [
    {"title": "Hario ceramic dripper", "category": None},  # 0
    {"title": "Hario glass dripper", "category": None},  # 1
    {"title": "Kalita wave dripper", "category": None},  # 2
    {"title": "Tea infuser", "category": None},  # 3
    {"title": "Coffee beans Brazil", "category": None},  # 4
    {"title": "Coffee beans Kenya", "category": None},  # 5
    {"title": "Burr grinder", "category": "Grinders"},  # 6
    {"title": "Hand grinder", "category": "Grinders"},  # 7
    {"title": "Milk jug", "category": "Jugs"},  # 8
    {"title": "Coffee scale", "category": None},  # 9
    {"title": "Coffee filters", "category": None},  # 10
    {"title": "Coffee mug", "category": None},  # 11
    {"title": "Coffee syrup", "category": None},  # 12
    {"title": "Coffee tin", "category": None},  # 13
    {"title": "Infuser", "category": None},  # 14
]


def test_categories_decide_where_both_items_have_one_else_distinctive_title_words() -> None:
    kinds = Kinds(FACTS)
    assert kinds.same(0, 1)  # two distinctive words in common: "hario", "dripper"
    assert not kinds.same(0, 2)  # one only ("dripper"): not evidence enough
    assert kinds.same(3, 14)  # every word of the shorter title: "infuser"
    assert not kinds.same(3, 4)  # tea infuser -> coffee beans: nothing in common
    assert not kinds.same(9, 10)  # "coffee" names half the shop: not distinctive
    assert kinds.same(6, 7) and not kinds.same(6, 8)  # categories, whatever the titles
    assert not kinds.same(7, 10)


def test_alternatives_of_another_kind_are_removed_the_rest_kept_in_order() -> None:
    indices = np.array([[1, 2, 3], [2, 0, -1], [3, 4, 0]] + [[-1, -1, -1]] * 12)
    scores = np.arange(45, dtype=np.float32).reshape(15, 3) + 1
    counts = np.full((15, 3), 5, dtype=np.uint32)
    kept, removed = same_kind_only(Neighbours(indices, scores, counts), FACTS)
    assert kept.indices[:3].tolist() == [[1, -1, -1], [0, -1, -1], [-1, -1, -1]]
    assert kept.scores[0].tolist() == [1.0, 0.0, 0.0] and kept.scores[1, 0] == 5.0
    assert kept.counts is not None and kept.counts[0].tolist() == [5, 0, 0]
    assert removed == 6

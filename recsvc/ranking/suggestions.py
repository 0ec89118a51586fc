"""What ranking takes and returns: a seed (one cart item's or past purchase's list), the
rules, the suggestions with their sources."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


FloatArray = npt.NDArray[np.floating[Any]]
"""Scores: float64 as the service keeps them (float32 as packed is accepted too)."""


BoolArray = npt.NDArray[np.bool_]


SOURCE_NEIGHBOURS = "neighbours"


SOURCE_REPURCHASE = "repurchase"


SOURCE_POPULAR = "popular"


SOURCE_PINNED = "pinned"


SOURCE_ALTERNATIVES = "alternatives"


SOURCE_NEW = "new_in_category"


NEW_ITEMS_PER_ANSWER = 2
"""At most this many items added since the last training join one answer (one per
category): enough to be seen, too few to push out what the model knows."""


@dataclass(slots=True)
class Seed:
    """One known item of a cart or history, its weight, and its neighbour list."""

    item_id: str
    index: int
    weight: float
    indices: IntArray
    scores: FloatArray
    counts: IntArray | None = None
    """Evidence per neighbour (orders bought together); None when not known."""
    positive_only: bool = False
    """Every weight is known positive (the caller dropped the rest)."""


@dataclass(slots=True)
class Suggestion:
    item_id: str
    score: float
    because: tuple[str, ...]
    source: str
    evidence: int = 0
    """The count behind the strongest ``because`` seed: orders bought together with it."""
    boosted: bool = False


@dataclass(frozen=True)
class Ranking:
    suggestions: tuple[Suggestion, ...]
    fallback: bool
    """True when nothing in the input was known and the answer is popular items only."""


@dataclass(slots=True)
class Rules:
    k: int = 10
    exclude: Collection[int] = field(default_factory=frozenset)
    """Item indices never to suggest (the cart itself, already bought items)."""
    repurchase_weight: float = 0.0
    """Scores a seed item itself by this times its weight: customers rebuy what they like."""
    repurchase_bonus: float = 0.0
    """Added to every seed item's own score (with a repurchase weight above 0): large enough,
    and everything bought before ranks above items with only neighbour evidence."""
    because_limit: int = 3
    negatives: bool = True
    """Whether negative weights (item i makes j less likely in the same order) count.
    They help a cart, which is one order; across a history of many orders they only
    measured as noise, so the history ranking leaves them out."""
    allowed: BoolArray | None = None
    """Per item: may it be suggested at all (in stock, passes the merchandising filters)."""
    category: IntArray | None = None
    """Per item: a category code (-1: none), for ``max_per_category``."""
    max_per_category: int | None = None
    boost: Mapping[int, float] = field(default_factory=dict)
    """Item index -> score factor, for a campaign; boosted suggestions are marked."""
    pins: Sequence[int] = ()
    """Item indices placed first, in this order, marked as pinned (when allowed)."""

"""Ranking: pure functions of neighbour lists, the cart or history, and the rules.

No I/O happens here, so every rule is tested without a server and the request path spends
its time in one vectorised pass. ``suggestions`` (what goes in and out), ``cart``,
``upsell``, ``recency`` and ``rules`` (merchandising rules as masks)."""

from recsvc.ranking.cart import FEW_SEEDS, SCAN_PER_ENTRY, place_new, rank, rank_ranked, room_for
from recsvc.ranking.recency import recency_weights
from recsvc.ranking.suggestions import (
    NEW_ITEMS_PER_ANSWER,
    SOURCE_ALTERNATIVES,
    SOURCE_NEIGHBOURS,
    SOURCE_NEW,
    SOURCE_PINNED,
    SOURCE_POPULAR,
    SOURCE_REPURCHASE,
    BoolArray,
    FloatArray,
    IntArray,
    Ranking,
    Rules,
    Seed,
    Suggestion,
)
from recsvc.ranking.upsell import PriceBand, Upsell, UpsellEntry, band_alternatives, upsell

__all__ = [
    "FEW_SEEDS",
    "NEW_ITEMS_PER_ANSWER",
    "SCAN_PER_ENTRY",
    "SOURCE_ALTERNATIVES",
    "SOURCE_NEIGHBOURS",
    "SOURCE_NEW",
    "SOURCE_PINNED",
    "SOURCE_POPULAR",
    "SOURCE_REPURCHASE",
    "BoolArray",
    "FloatArray",
    "IntArray",
    "PriceBand",
    "Ranking",
    "Rules",
    "Seed",
    "Suggestion",
    "Upsell",
    "UpsellEntry",
    "band_alternatives",
    "place_new",
    "rank",
    "rank_ranked",
    "recency_weights",
    "room_for",
    "upsell",
]

"""Co-occurrence, normalised as the grid says (cosine, Jaccard, conditional, counts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from training.evaluation import recommenders as recs
from training.evaluation.baselines.base import LISTS, Data, popularity
from training.neighbours.base import NeighbourInputs
from training.neighbours.cooccurrence import cosine_lists


def build_cooccurrence(data: Data, p: Mapping[str, Any]) -> recs.Recommender:
    inter = data.inter
    budget = NeighbourInputs(inter.order_item, memory_bytes=data.memory_bytes)
    nb = cosine_lists(inter.order_item, LISTS, budget.max_entries, str(p["normalisation"]))
    return recs.lists_recommender(
        "co-occurrence", recs.neighbours_matrix(nb, inter.n_items), popularity(inter)
    )

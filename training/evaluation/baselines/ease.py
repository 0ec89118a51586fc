"""EASE, with its lambda and a recency half-life tuned."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from training.evaluation import recommenders as recs
from training.evaluation.baselines.base import LISTS, Data, popularity
from training.neighbours.base import NeighbourInputs
from training.neighbours.ease import ease
from training.stages import matrices


def build_ease(data: Data, p: Mapping[str, Any]) -> recs.Recommender:
    inter = data.inter
    inputs = NeighbourInputs(
        inter.order_item,
        ease_lambda=float(p["lambda"]),
        order_weights=matrices.order_weights(inter, float(p["recency_half_life_days"])),
        negatives=LISTS // 2,
        memory_bytes=data.memory_bytes,
    )
    lists = ease(inputs, LISTS)
    return recs.lists_recommender(
        "EASE", recs.neighbours_matrix(lists, inter.n_items), popularity(inter)
    )

"""ALS factors, items ranked by cosine to the cart's or history's factors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from training.evaluation import recommenders as recs
from training.evaluation.baselines.base import Data, popularity
from training.stages import matrices
from training.stages.als import AlsParams, train_als


def build_als(data: Data, p: Mapping[str, Any]) -> recs.Recommender:
    confidence = matrices.weight(data.inter.customer_item, p["weighting"])
    factors = train_als(
        confidence,
        AlsParams(
            factors=int(p["factors"]),
            regularization=float(p["regularization"]),
            alpha=float(p["alpha"]),
            iterations=15,
        ),
    )
    return recs.factors_recommender("ALS, cosine", factors, popularity(data.inter))

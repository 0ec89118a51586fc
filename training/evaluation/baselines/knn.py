"""Item-kNN with BM25 weighting (implicit's BM25Recommender)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from implicit.nearest_neighbours import BM25Recommender
from implicit.utils import ParameterWarning
from threadpoolctl import threadpool_limits

from training.evaluation import recommenders as recs
from training.evaluation.baselines.base import Data, popularity


def build_knn(data: Data, p: Mapping[str, Any]) -> recs.Recommender:
    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        # implicit converts its own BM25 output (COO) and warns about it; not our input.
        warnings.simplefilter("ignore", ParameterWarning)
        knn = BM25Recommender(K=int(p["K"]), K1=float(p["K1"]), B=0.75)
        knn.fit(data.inter.customer_item, show_progress=False)
    return recs.lists_recommender("item-kNN BM25", knn.similarity, popularity(data.inter))

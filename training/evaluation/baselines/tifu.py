"""TIFU-KNN (Hu et al., 2020) for next purchases: a customer's time-decayed basket vector,
blended with its nearest customers'."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from training.evaluation import cases as holdout
from training.evaluation import recommenders as recs
from training.evaluation.baselines.base import NEXT_TASKS, Data, popularity
from training.stages import matrices
from training.stages.ingest import CUSTOMER, ITEM, ORDER, TIMESTAMP


def tifu_vectors(
    frame: pd.DataFrame, items: np.ndarray, group_size: int, r_basket: float, r_group: float
) -> tuple[np.ndarray, sp.csr_matrix]:
    """Each customer's TIFU vector (customers sorted, rows of a customers x items matrix).

    A customer's baskets, oldest first, are cut into groups of ``group_size`` counted from
    the newest (the oldest group may be short). Within a group, the basket j places from
    the group's newest weighs ``r_basket**j``; the group g places from the newest weighs
    ``r_group**g``; each group is averaged over its baskets and the groups over their
    number (Hu et al., "Modeling Personalized Item Frequency Information for
    Next-basket Recommendation", SIGIR 2020, eq. 2-4)."""
    index = pd.Index(np.asarray(items).astype(str))
    item = index.get_indexer(frame[ITEM].astype(str))
    cust, customers = matrices.codes_of(frame[CUSTOMER])
    nanos = frame[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
    lines = pd.DataFrame(
        {"c": cust, "o": matrices.codes_of(frame[ORDER], sort=False)[0], "i": item, "t": nanos}
    )
    lines = lines[lines["i"] >= 0]
    baskets = lines.groupby(["c", "o"], sort=False)["t"].max().reset_index()
    baskets = baskets.sort_values(["c", "t", "o"], kind="stable")
    n_of = baskets.groupby("c")["o"].transform("size").to_numpy()
    rank = baskets.groupby("c").cumcount().to_numpy()
    back = n_of - 1 - rank  # 0: the newest basket
    group, within = back // group_size, back % group_size
    groups = (n_of + group_size - 1) // group_size
    in_group = np.where(group == groups - 1, n_of - (groups - 1) * group_size, group_size)
    weight = r_basket**within / in_group * r_group**group / groups
    baskets = baskets.assign(w=weight)
    per_line = lines.drop_duplicates(["o", "i"]).merge(baskets[["o", "w"]], on="o")
    vectors = sp.csr_matrix(
        (per_line["w"].to_numpy(), (per_line["c"].to_numpy(), per_line["i"].to_numpy())),
        shape=(customers.size, len(items)),
    )
    vectors.sum_duplicates()
    return customers, vectors


def tifu_recommender(
    customers: np.ndarray, vectors: sp.csr_matrix, pop: np.ndarray, k: int, alpha: float
) -> recs.Recommender:
    """alpha x the customer's vector + (1 - alpha) x the mean of its ``k`` nearest customers'
    (Euclidean, as in the paper); ranked over the items either part holds, then popular."""
    popular = recs.Popular(pop)
    row_of = {str(c): n for n, c in enumerate(customers)}
    sq = np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel()
    vt = vectors.T.tocsr()
    kk = min(k, max(vectors.shape[0] - 1, 0))

    def history(case: holdout.HistoryCase, exclude: bool) -> list[int]:
        row = row_of.get(case.customer)
        skip = case.items if exclude else []
        if row is None:
            return popular.fill([], skip)
        mine = vectors[row]
        dots = np.asarray((mine @ vt).todense()).ravel()
        dist = sq + sq[row] - 2.0 * dots
        dist[row] = np.inf
        blend = alpha * mine
        if kk > 0 and alpha < 1.0:
            near = np.argpartition(dist, kk - 1)[:kk]
            mean = sp.csr_matrix(np.full((1, kk), 1.0 / kk)) @ vectors[near]
            blend = blend + (1.0 - alpha) * mean
        # Sparse throughout: the items either part holds, never a catalog-sized row.
        blend = sp.csr_matrix(blend)
        blend.sum_duplicates()
        return popular.fill(recs.ranked(blend.indices, blend.data, skip), skip)

    return recs.Recommender(
        "TIFU-KNN", lambda items: popular.fill([], items), history, tasks=NEXT_TASKS
    )


TIFU_BYTES_PER_LINE = 400
"""The pandas frames ``tifu_vectors`` builds, per purchase line: 123 bytes at their peak
on Online Retail (tracemalloc), with room for wider id columns."""


def build_tifu(data: Data, p: Mapping[str, Any]) -> recs.Recommender:
    customers, vectors = tifu_vectors(
        data.frame,
        data.inter.items,
        int(p["group_size"]),
        float(p["r_basket"]),
        float(p["r_group"]),
    )
    return tifu_recommender(
        customers, vectors, popularity(data.inter), int(p["k"]), float(p["alpha"])
    )

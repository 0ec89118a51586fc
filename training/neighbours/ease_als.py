"""EASE blended with ALS factor similarity (``als_weight``)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from training.neighbours.base import NeighbourInputs, Neighbours, blocks, sparse_top, unit_rows
from training.neighbours.ease import _local_ease, ease_weights
from training.neighbours.spec import Method


def ease_als(inputs: NeighbourInputs, top_n: int) -> Neighbours:
    """EASE weights plus ALS factor cosine among items ever bought in one order.

    ALS similarity is scaled to each row's strongest EASE weight and cubed, so it only
    separates confident pairs; it never introduces an item with no co-purchase evidence,
    because the factors of rarely bought items are close to random. Measured on Online
    Retail (README, "Choosing the neighbours"), this matches EASE alone and doubles ALS
    cosine alone on cart completion.
    """
    if inputs.item_factors is None:
        raise ValueError("ease-als needs item factors")
    unit = unit_rows(inputs.item_factors)
    x = inputs.weighted_orders()
    if inputs.ease_solver() == "dense":
        b = ease_weights(x, inputs.ease_lambda)
        scale = np.abs(b).max(axis=1, keepdims=True)
        binary = sp.csr_matrix(inputs.order_item, dtype=np.float32)
        together = (binary.T @ binary).tocsr()

        def block(lo: int, hi: int) -> np.ndarray:
            cos = np.maximum(unit[lo:hi] @ unit.T, 0.0)
            evidence = together[lo:hi].toarray() > 0
            return np.asarray(b[lo:hi] + inputs.als_weight * scale[lo:hi] * evidence * cos**3)

        return blocks(block, b.shape[0], top_n, inputs.negatives)
    # Local EASE: every weight sits on a co-occurring pair, so the blend adds ALS there.
    sparse_b = _local_ease(inputs, x)
    rows = np.repeat(np.arange(sparse_b.shape[0]), np.diff(sparse_b.indptr))
    cols = sparse_b.indices
    scale = np.zeros(sparse_b.shape[0], np.float64)
    np.maximum.at(scale, rows, np.abs(sparse_b.data))
    cos = np.empty(cols.size, np.float64)
    step = 1_000_000
    for lo in range(0, cols.size, step):
        hi = min(cols.size, lo + step)
        cos[lo:hi] = np.einsum("ij,ij->i", unit[rows[lo:hi]], unit[cols[lo:hi]])
    sparse_b.data = (
        sparse_b.data + inputs.als_weight * scale[rows] * np.maximum(cos, 0.0) ** 3
    ).astype(np.float32)
    return sparse_top(sparse_b, top_n, inputs.negatives)


METHOD = Method(
    "ease-als",
    ease_als,
    "EASE blended with ALS factor similarity",
    needs_factors=True,
    params=("ease_lambda", "ease_candidates", "als_weight", "negatives"),
)

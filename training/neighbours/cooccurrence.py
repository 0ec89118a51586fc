"""Co-occurrence: items bought in the same orders, normalised (cosine by default), each
order weighted by its recency."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from training.neighbours import gram
from training.neighbours.base import NeighbourInputs, Neighbours
from training.neighbours.spec import LOCAL, SPARK, Method


def cooccurrence(inputs: NeighbourInputs, top_n: int) -> Neighbours:
    """Orders holding both items over the geometric mean of orders holding each (cosine).

    Sparse, a block of item rows at a time: memory grows with the block and items x N.
    """
    return cosine_lists(inputs.weighted_orders(), top_n, inputs.max_entries)


NORMALISATIONS = ("cosine", "jaccard", "conditional", "counts")


def cosine_lists(
    x: sp.csr_matrix, top_n: int, max_entries: int, norm: str = "cosine"
) -> Neighbours:
    """Top-N of each item's co-occurrence counts over the rows of ``x``, normalised:
    cosine c_ij / sqrt(c_i c_j), Jaccard c_ij / (c_i + c_j - c_ij), conditional c_ij / c_i
    (how often j is in i's rows), or the raw counts. Blocked like every Gram product, so
    memory grows with the pairs, never items^2."""
    if norm not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {norm!r}")
    g = gram.Gram(x, max_entries)
    diag = np.maximum(g.diagonal(), 1e-12)
    inv = 1.0 / np.sqrt(diag)
    idx_parts, score_parts = [], []
    for lo, hi, block in g.blocks():
        rows, cols, vals = gram.entries(block, lo)
        if norm == "cosine":
            sc = vals * inv[rows] * inv[cols]
        elif norm == "jaccard":
            sc = vals / np.maximum(diag[rows] + diag[cols] - vals, 1e-12)
        elif norm == "conditional":
            sc = vals / diag[rows]
        else:
            sc = vals.astype(np.float64)
        idx, top = gram.top_per_row(rows, cols, sc, hi - lo, lo, top_n)
        idx_parts.append(idx)
        score_parts.append(top)
    return Neighbours(np.vstack(idx_parts), np.vstack(score_parts))


METHOD = Method(
    "cooccurrence",
    cooccurrence,
    "items bought in the same orders, cosine-normalised",
    engines=frozenset({LOCAL, SPARK}),
)

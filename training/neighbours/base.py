"""What every neighbour method shares: its inputs (``NeighbourInputs``), its output
(``Neighbours``, each item's top-N, best first), and the top-N of blocks of weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from training.neighbours import gram


@dataclass(frozen=True)
class Neighbours:
    """Row i: the neighbours of item i, best first; index -1 pads a short row."""

    indices: np.ndarray
    scores: np.ndarray
    counts: np.ndarray | None = None
    """Evidence per entry (orders bought together, customers shared); None: not counted."""

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        keep = self.indices[i] >= 0
        return self.indices[i][keep], self.scores[i][keep]

    def counts_row(self, i: int) -> np.ndarray:
        keep = self.indices[i] >= 0
        if self.counts is None:
            return np.zeros(int(keep.sum()), np.int64)
        return np.asarray(self.counts[i][keep])

    def with_counts(self, counts: np.ndarray) -> Neighbours:
        """The same lists with their evidence counts (``pair_counts``)."""
        return Neighbours(self.indices, self.scores, counts)


@dataclass(frozen=True)
class NeighbourInputs:
    order_item: sp.csr_matrix
    item_factors: np.ndarray | None = None
    ease_lambda: float = 20.0
    """EASE's L2 regularisation (``TrainConfig.ease_lambda``'s default)."""
    als_weight: float = 0.1
    """How much ALS factor similarity adds to EASE weights in the ``ease-als`` blend."""
    order_weights: np.ndarray | None = None
    """Per order row: how much that order counts (recency decay); None counts all alike."""
    negatives: int = 50
    """Also keep this many most negative weights per item (methods that learn them)."""
    memory_bytes: int = 2 << 30
    """What this stage may use on top of its inputs: picks EASE's solver and block sizes."""
    ease_candidates: int = 64
    """Local EASE: each item's regression runs over this many co-occurring items."""

    def weighted_orders(self) -> sp.csr_matrix:
        """Order rows scaled so that the Gram matrix X^T X weighs each order by its weight."""
        x = sp.csr_matrix(self.order_item, dtype=np.float32)
        if self.order_weights is None:
            return x
        return sp.csr_matrix(
            sp.diags(np.sqrt(self.order_weights).astype(np.float32)) @ x, dtype=np.float32
        )

    @property
    def max_entries(self) -> int:
        """Gram entries one block may hold: half of this stage's memory."""
        return max(100_000, self.memory_bytes // 2 // gram.BYTES_PER_ENTRY)

    def ease_solver(self) -> str:
        from training.neighbours.ease import ease_solver  # ease imports this module

        return ease_solver(self.order_item.shape[1], self.memory_bytes)


NeighbourMethod = Callable[[NeighbourInputs, int], Neighbours]


def top_n_dense(rows: np.ndarray, top_n: int, offset: int, negatives: int = 0) -> Neighbours:
    """Top-N of each row of a dense similarity block whose row r is item offset+r.

    With ``negatives``, the row also keeps that many most negative weights, after the
    positive ones: EASE learns that some items make others less likely in the same order,
    and a ranking that sums weights over a cart needs those too (measured on Online
    Retail: cart HR@10 0.324 with 50 positive weights only, 0.333 with 100 of each).
    """
    n_rows = rows.shape[0]
    rows = rows.copy()
    rows[np.arange(n_rows), np.arange(n_rows) + offset] = 0.0
    pos = extreme(rows, top_n, largest=True)
    if negatives <= 0:
        return pad(pos, top_n)
    neg = extreme(rows, negatives, largest=False)
    pos, neg = pad(pos, top_n), pad(neg, negatives)
    return Neighbours(np.hstack([pos.indices, neg.indices]), np.hstack([pos.scores, neg.scores]))


def extreme(rows: np.ndarray, n_keep: int, largest: bool) -> Neighbours:
    """The n largest positive (or most negative) entries per row; -1 pads the rest."""
    n_rows, n_cols = rows.shape
    signed = -rows if largest else rows
    n = min(n_keep, n_cols - 1)
    if n <= 0:
        return Neighbours(np.empty((n_rows, 0), np.int64), np.empty((n_rows, 0), np.float32))
    part = np.argpartition(signed, n - 1, axis=1)[:, :n]
    order = np.argsort(np.take_along_axis(signed, part, axis=1), axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    sc = np.take_along_axis(rows, idx, axis=1)
    # Zero is no evidence either way; a short row is padded.
    keep = sc > 0 if largest else sc < 0
    if not largest:
        # Most negative last: a list stays sorted best first from end to end.
        idx, sc, keep = idx[:, ::-1], sc[:, ::-1], keep[:, ::-1]
    idx = np.where(keep, idx, -1)
    sc = np.where(keep, sc, 0.0)
    return Neighbours(idx.astype(np.int64), sc.astype(np.float32))


def pad(nb: Neighbours, top_n: int) -> Neighbours:
    missing = top_n - nb.indices.shape[1]
    if missing <= 0:
        return nb
    n = nb.indices.shape[0]
    return Neighbours(
        np.hstack([nb.indices, np.full((n, missing), -1, np.int64)]),
        np.hstack([nb.scores, np.zeros((n, missing), np.float32)]),
    )


def blocks(
    similarity: Callable[[int, int], np.ndarray], n_items: int, top_n: int, negatives: int = 0
) -> Neighbours:
    parts = []
    block = max(1, min(n_items, 2_000_000 // max(n_items, 1)))
    for start in range(0, n_items, block):
        stop = min(n_items, start + block)
        parts.append(top_n_dense(similarity(start, stop), top_n, start, negatives))
    return Neighbours(np.vstack([p.indices for p in parts]), np.vstack([p.scores for p in parts]))


def sparse_top(b: sp.csr_matrix, top_n: int, negatives: int) -> Neighbours:
    """Top positive (and most negative) weights per row of a sparse weight matrix."""
    rows = np.repeat(np.arange(b.shape[0], dtype=np.int64), np.diff(b.indptr))
    cols = b.indices.astype(np.int64)
    vals = np.asarray(b.data, np.float64)
    keep = rows != cols
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    n = b.shape[0]
    pos_idx, pos_sc = gram.top_per_row(rows, cols, vals, n, 0, top_n)
    if negatives <= 0:
        return Neighbours(pos_idx, pos_sc)
    neg_idx, neg_sc = gram.top_per_row(rows, cols, vals, n, 0, negatives, largest=False)
    return Neighbours(np.hstack([pos_idx, neg_idx]), np.hstack([pos_sc, neg_sc]))


def unit_rows(factors: np.ndarray) -> np.ndarray:
    """Factor rows scaled to unit length (float32), for cosines by dot products."""
    f = factors.astype(np.float32)
    return np.asarray(f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12))

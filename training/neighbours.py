"""Stage 4: every item's top-N neighbours.

How neighbours are computed is one replaceable function of the matrices: methods share
the signature ``(inputs, top_n) -> Neighbours`` and are chosen by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


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

    def with_counts(self, evidence: sp.csr_matrix) -> Neighbours:
        """Looks each entry's count up in an items x items evidence matrix."""
        counts = np.zeros(self.indices.shape, np.int64)
        block = max(1, 2_000_000 // max(evidence.shape[1], 1))
        for lo in range(0, self.indices.shape[0], block):
            hi = min(lo + block, self.indices.shape[0])
            dense = evidence[lo:hi].toarray()
            idx = np.maximum(self.indices[lo:hi], 0)
            got = np.take_along_axis(dense, idx, axis=1)
            counts[lo:hi] = np.where(self.indices[lo:hi] >= 0, got, 0)
        return Neighbours(self.indices, self.scores, counts)


@dataclass(frozen=True)
class NeighbourInputs:
    order_item: sp.csr_matrix
    item_factors: np.ndarray | None = None
    ease_lambda: float = 50.0
    als_weight: float = 0.1
    """How much ALS factor similarity adds to EASE weights in the ``ease-als`` blend."""
    order_weights: np.ndarray | None = None
    """Per order row: how much that order counts (recency decay); None counts all alike."""
    negatives: int = 0
    """Also keep this many most negative weights per item (methods that learn them)."""

    def weighted_orders(self) -> sp.csr_matrix:
        """Order rows scaled so that the Gram matrix X^T X weighs each order by its weight."""
        x = self.order_item.astype(np.float64)
        if self.order_weights is None:
            return sp.csr_matrix(x)
        return sp.csr_matrix(sp.diags(np.sqrt(self.order_weights)) @ x)


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
    pos = _extreme(rows, top_n, largest=True)
    if negatives <= 0:
        return _pad(pos, top_n)
    neg = _extreme(rows, negatives, largest=False)
    pos, neg = _pad(pos, top_n), _pad(neg, negatives)
    return Neighbours(np.hstack([pos.indices, neg.indices]), np.hstack([pos.scores, neg.scores]))


def _extreme(rows: np.ndarray, n_keep: int, largest: bool) -> Neighbours:
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


def _pad(nb: Neighbours, top_n: int) -> Neighbours:
    missing = top_n - nb.indices.shape[1]
    if missing <= 0:
        return nb
    n = nb.indices.shape[0]
    return Neighbours(
        np.hstack([nb.indices, np.full((n, missing), -1, np.int64)]),
        np.hstack([nb.scores, np.zeros((n, missing), np.float32)]),
    )


def _blocks(
    similarity: Callable[[int, int], np.ndarray], n_items: int, top_n: int, negatives: int = 0
) -> Neighbours:
    parts = []
    block = max(1, min(n_items, 2_000_000 // max(n_items, 1)))
    for start in range(0, n_items, block):
        stop = min(n_items, start + block)
        parts.append(top_n_dense(similarity(start, stop), top_n, start, negatives))
    return Neighbours(np.vstack([p.indices for p in parts]), np.vstack([p.scores for p in parts]))


def als_cosine(inputs: NeighbourInputs, top_n: int) -> Neighbours:
    """Cosine similarity of ALS item factors (the textbook method)."""
    if inputs.item_factors is None:
        raise ValueError("als-cosine needs item factors")
    f = inputs.item_factors.astype(np.float32)
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    unit = f / np.maximum(norms, 1e-12)
    return _blocks(lambda a, b: unit[a:b] @ unit.T, f.shape[0], top_n)


def cooccurrence(inputs: NeighbourInputs, top_n: int) -> Neighbours:
    """Orders holding both items over the geometric mean of orders holding each (cosine)."""
    x = inputs.weighted_orders()
    co = (x.T @ x).tocsr()
    counts = co.diagonal()
    inv = 1.0 / np.sqrt(np.maximum(counts, 1.0))
    co = sp.diags(inv) @ co @ sp.diags(inv)
    co = co.tocsr()
    return _blocks(lambda a, b: co[a:b].toarray(), co.shape[0], top_n)


EASE_MAX_ITEMS = 25_000
"""EASE inverts a dense items x items matrix: past this it needs more memory than a node has."""


def ease_weights(order_item: sp.csr_matrix, lam: float) -> np.ndarray:
    """EASE^R (Steck 2019) on the order x item matrix: weights B with a zero diagonal.

    B[i, j] is how much having i in an order predicts j, learned jointly for all items, so
    summing rows of B over a cart scores what completes it. Orders, not customers, are the
    rows, because a cart widget asks what goes in the same order.
    """
    n = order_item.shape[1]
    if n > EASE_MAX_ITEMS:
        raise ValueError(f"EASE supports up to {EASE_MAX_ITEMS:,} items, got {n:,}")
    x = order_item.astype(np.float64)
    gram = (x.T @ x).toarray()
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return np.asarray(b, dtype=np.float32)


def ease(inputs: NeighbourInputs, top_n: int) -> Neighbours:
    b = ease_weights(inputs.weighted_orders(), inputs.ease_lambda)
    return _blocks(lambda lo, hi: b[lo:hi], b.shape[0], top_n, inputs.negatives)


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
    b = ease_weights(inputs.weighted_orders(), inputs.ease_lambda)
    scale = np.abs(b).max(axis=1, keepdims=True)
    f = inputs.item_factors.astype(np.float32)
    unit = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    x = inputs.order_item.astype(np.float32)
    together = (x.T @ x).tocsr()

    def block(lo: int, hi: int) -> np.ndarray:
        cos = np.maximum(unit[lo:hi] @ unit.T, 0.0)
        evidence = together[lo:hi].toarray() > 0
        return np.asarray(b[lo:hi] + inputs.als_weight * scale[lo:hi] * evidence * cos**3)

    return _blocks(block, b.shape[0], top_n, inputs.negatives)


def alternatives(
    customer_item: sp.csr_matrix,
    together: sp.csr_matrix,
    item_factors: np.ndarray,
    top_n: int,
    min_shared: int = 2,
    max_together: float = 0.05,
) -> Neighbours:
    """Items bought by the same customers but seldom in the same order: alternatives.

    Score: the mean of the customer-level cosine and the ALS factor cosine (both say
    "the same people buy these"), over pairs that at least ``min_shared`` customers
    bought and that share an order in at most ``max_together`` of the rarer item's
    orders (two items usually bought together complement each other, they are not
    alternatives). The count is the number of customers who bought both.

    Measured on Online Retail (train before 2011-11-09, top 10 per item, pairs seen in
    the following month): complements were bought in the same order 46% of the time and
    by the same customer in other orders only 32%; alternatives at a 5% cap 22% and 19%;
    at 20%, 37% and 27% (too close to complements); at 0%, 10% and 11% (substitutes, but
    rarely bought at all).
    """
    x = customer_item.copy()
    x.data = np.ones_like(x.data)
    x = sp.csr_matrix(x, dtype=np.float32)
    shared = (x.T @ x).tocsr()
    buyers = shared.diagonal()
    orders = together.diagonal()
    inv = 1.0 / np.sqrt(np.maximum(buyers, 1.0))
    f = item_factors.astype(np.float32)
    unit = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)

    def block(lo: int, hi: int) -> np.ndarray:
        s = shared[lo:hi].toarray()
        t = together[lo:hi].toarray()
        cos_customers = s * inv[lo:hi, None] * inv[None, :]
        cos_als = np.maximum(unit[lo:hi] @ unit.T, 0.0)
        rarer = np.maximum(np.minimum(orders[lo:hi, None], orders[None, :]), 1.0)
        ok = (s >= min_shared) & (t / rarer <= max_together)
        return np.where(ok, 0.5 * (cos_customers + cos_als), 0.0)

    nb = _blocks(block, shared.shape[0], top_n)
    return nb.with_counts(shared)


METHODS: dict[str, NeighbourMethod] = {
    "ease-als": ease_als,
    "ease": ease,
    "als-cosine": als_cosine,
    "cooccurrence": cooccurrence,
}
DEFAULT_METHOD = "ease-als"

"""Stage 4: every item's top-N neighbours.

How neighbours are computed is one replaceable function of the matrices: methods share
the signature ``(inputs, top_n) -> Neighbours`` and are chosen by name. Every method
works in item-row blocks (``training.neighbours.gram``) or per item, so memory grows with the
purchases and with items x N; EASE is exact where its items^2 matrices fit the stage's
memory and solved locally per item where they do not (``ease_solver``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

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
    ease_lambda: float = 50.0
    als_weight: float = 0.1
    """How much ALS factor similarity adds to EASE weights in the ``ease-als`` blend."""
    order_weights: np.ndarray | None = None
    """Per order row: how much that order counts (recency decay); None counts all alike."""
    negatives: int = 0
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
    unit = unit_rows(inputs.item_factors)
    return _blocks(lambda a, b: unit[a:b] @ unit.T, unit.shape[0], top_n)


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


DENSE_EASE_COPIES = 3
"""Dense EASE holds the Gram matrix, its inverse and the weights: three items^2 float64s."""


def dense_ease_bytes(n_items: int) -> int:
    return DENSE_EASE_COPIES * 8 * n_items * n_items


def ease_solver(n_items: int, memory_bytes: int) -> str:
    """ "dense" (exact EASE) while its items^2 matrices fit the memory, else "local".

    Measured on Online Retail (README, "Choosing the neighbours"), exact EASE scores a
    little higher than the local solver, so it stays wherever it fits.
    """
    return "dense" if dense_ease_bytes(n_items) <= memory_bytes else "local"


def ease_weights(order_item: sp.csr_matrix, lam: float) -> np.ndarray:
    """EASE^R (Steck 2019) on the order x item matrix: weights B with a zero diagonal.

    B[i, j] is how much having i in an order predicts j, learned jointly for all items, so
    summing rows of B over a cart scores what completes it. Orders, not customers, are the
    rows, because a cart widget asks what goes in the same order. Dense: small catalogs.
    """
    x = order_item.astype(np.float64)
    gram_matrix = (x.T @ x).toarray()
    gram_matrix[np.diag_indices_from(gram_matrix)] += lam
    p = np.linalg.inv(gram_matrix)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return np.asarray(b, dtype=np.float32)


def local_ease_weights(
    x: sp.csr_matrix,
    lam: float,
    candidates: int,
    max_entries: int,
    max_universe: int = 3_000,
    core: int = 10_000,
    min_orders: int = 3,
    core_bytes: int = 1 << 30,
) -> sp.csr_matrix:
    """EASE solved per item over its strongest co-occurring items: sparse B, rows predict.

    EASE's column j is a ridge regression of item j's orders on every other item's
    (B[:, j] = (G_{-j} + lam I)^-1 G_{-j, j}). Items that never share an order with j
    add little but their correlation with j's true regressors, so each column is solved
    over j's candidates only: its ``candidates`` largest co-occurrences and its
    ``candidates`` largest cosines (popular and specific partners), deduplicated.

    The candidates' Gram entries among themselves must be exact (a pruned Gram matrix is
    not positive definite, and its solves blow up), so targets are taken in groups that
    share candidates (sorted by their strongest partner), and each group's candidates'
    exact Gram block is computed from the data: at most ``max_universe`` items square.
    The ``core`` most bought items, in nearly every group, have their Gram block computed
    once; a group multiplies only its other items' columns. Items bought in fewer than
    ``min_orders`` orders are not predicted (one or two orders are no evidence): no list
    suggests them, though their own lists are built from the items they predict.
    Cost: linear in the catalog, items x candidates^3 flops for the solves.
    """
    g = gram.Gram(x, max_entries)
    n = g.n_items
    diag = g.diagonal()
    inv = 1.0 / np.sqrt(np.maximum(diag, 1e-12))
    width = 2 * candidates
    cand = np.full((n, width), -1, np.int64)
    for lo, hi, block in g.blocks():
        rows, cols, vals = gram.entries(block, lo)
        by_count, _ = gram.top_per_row(rows, cols, vals, hi - lo, lo, candidates)
        by_cos, _ = gram.top_per_row(rows, cols, vals * inv[rows] * inv[cols], hi - lo, lo,
                                     candidates)  # fmt: skip
        both = np.hstack([by_count, by_cos]).astype(np.int64)
        # Deduplicate each row: sort, blank repeats, keep -1 padding last.
        both = np.sort(np.where(both < 0, n, both), axis=1)
        dup = np.zeros_like(both, dtype=bool)
        dup[:, 1:] = both[:, 1:] == both[:, :-1]
        both[dup] = n
        both = np.sort(both, axis=1)
        cand[lo:hi] = np.where(both < n, both, -1)
    csc = sp.csc_matrix(x, dtype=np.float32)
    csr = sp.csr_matrix(x, dtype=np.float32)
    support = np.diff(csc.indptr)
    # The core block (float32) takes at most ``core_bytes``; built a slice at a time.
    core = min(core, n, int(np.sqrt(max(core_bytes, 0) / 4)))
    top = np.argsort(-support, kind="stable")[:core]
    in_core = np.full(n, -1, np.int64)
    in_core[top] = np.arange(top.size)
    core_gram = np.zeros((top.size, top.size), np.float32)
    core_cols = csc[:, top]
    for lo in range(0, top.size, 1_000):
        hi = min(top.size, lo + 1_000)
        core_gram[:, lo:hi] = (core_cols.T @ core_cols[:, lo:hi]).toarray()
    # Group targets that share their strongest partner, so their candidates overlap.
    lead = np.where(cand[:, 0] >= 0, cand[:, 0], np.arange(n))
    order = np.lexsort((np.arange(n), lead))
    order = order[(support[order] >= min_orders) & (cand[order, 0] >= 0)]
    n_targets = order.size
    out_rows: list[np.ndarray] = []
    out_cols: list[np.ndarray] = []
    out_vals: list[np.ndarray] = []
    start = 0
    while start < n_targets:
        # Grow the group while its candidates (and the targets) fit the universe.
        seen: set[int] = set()
        stop = start
        while stop < n_targets:
            j = int(order[stop])
            new = {int(c) for c in cand[j] if c >= 0} | {j}
            if stop > start and len(seen | new) > max_universe:
                break
            seen |= new
            stop += 1
        targets = order[start:stop]
        universe = np.array(sorted(seen), np.int64)
        c = cand[targets]
        valid = c >= 0
        safe = np.maximum(c, 0)
        gather = _GroupGram(csc, csr, universe, in_core, core_gram)
        a_mat = gather.square(safe)
        a_mat *= valid[:, :, None] & valid[:, None, :]
        ar = np.arange(width)
        a_mat[:, ar, ar] = np.where(valid, diag[safe] + lam, 1.0)
        rhs = gather.column(safe, targets.astype(np.int64))
        rhs = np.where(valid, rhs, 0.0).astype(np.float32)
        # Small systems, many of them: one BLAS thread beats a pool whose threads spin on
        # 128 x 128 matrices (measured: 17 ms against 1.1 s for 118 systems while another
        # process shared the two cores).
        with threadpool_limits(1, "blas"):
            w = np.linalg.solve(a_mat, rhs[:, :, None])[:, :, 0]
        t_of, a_of = np.nonzero(valid)
        out_rows.append(c[t_of, a_of])
        out_cols.append(targets[t_of].astype(np.int64))
        out_vals.append(w[t_of, a_of])
        start = stop
    b = sp.csr_matrix(
        (
            np.concatenate(out_vals).astype(np.float32),
            (np.concatenate(out_rows), np.concatenate(out_cols)),
        ),
        shape=(n, n),
    )
    b.sort_indices()
    return b


class _GroupGram:
    """Exact Gram entries among one group's universe of items.

    Pairs of core items are read from the precomputed core block; pairs with another
    item come from that item's Gram row over the universe, multiplied once per group.
    """

    def __init__(
        self,
        csc: sp.csc_matrix,
        csr: sp.csr_matrix,
        universe: np.ndarray,
        in_core: np.ndarray,
        core_gram: np.ndarray,
    ) -> None:
        self.in_core, self.core_gram = in_core, core_gram
        rest = universe[in_core[universe] < 0]
        self.where = np.full(in_core.size, -1, np.int64)
        self.where[rest] = np.arange(rest.size)
        self.upos = np.full(in_core.size, -1, np.int64)
        self.upos[universe] = np.arange(universe.size)
        self.block = np.zeros((0, universe.size), np.float32)
        if rest.size:
            # Only the orders holding a non-core item matter: multiply within those, so
            # no step costs the whole order count (millions) once per group.
            touched = np.unique(csc[:, rest].indices)
            local = sp.csc_matrix(csr[touched])
            self.block = (local[:, rest].T @ local[:, universe]).toarray().astype(np.float32)

    def square(self, cand: np.ndarray) -> np.ndarray:
        """G[cand[t, a], cand[t, b]] for every target t: shape (t, m, m), float32."""
        ca = self.in_core[cand]
        out = self.core_gram[np.maximum(ca, 0)[:, :, None], np.maximum(ca, 0)[:, None, :]]
        core = ca >= 0
        out *= core[:, :, None] & core[:, None, :]
        # A non-core item's whole row (and, by symmetry, column) comes from its block row.
        t_sel, a_sel = np.nonzero(~core)
        if t_sel.size:
            rows = self.block[self.where[cand[t_sel, a_sel]][:, None], self.upos[cand[t_sel]]]
            out[t_sel, a_sel, :] = rows
            out[t_sel, :, a_sel] = rows
        return np.asarray(out)

    def column(self, cand: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """G[cand[t, a], targets[t]]: shape (t, m)."""
        ca, ct = self.in_core[cand], self.in_core[targets][:, None]
        out = self.core_gram[np.maximum(ca, 0), np.maximum(ct, 0)] * ((ca >= 0) & (ct >= 0))
        ra, rt = self.where[cand], self.where[targets][:, None]
        rt_full = np.broadcast_to(rt, ra.shape)
        from_a = ra >= 0
        out[from_a] = self.block[
            ra[from_a], self.upos[np.broadcast_to(targets[:, None], ra.shape)[from_a]]
        ]
        from_t = ~from_a & (rt_full >= 0)
        out[from_t] = self.block[rt_full[from_t], self.upos[cand[from_t]]]
        return np.asarray(out)


def _local_ease(inputs: NeighbourInputs, x: sp.csr_matrix) -> sp.csr_matrix:
    """Local EASE with this stage's parameters: a quarter of its memory for the core."""
    return local_ease_weights(
        x,
        inputs.ease_lambda,
        inputs.ease_candidates,
        inputs.max_entries,
        core_bytes=inputs.memory_bytes // 4,
    )


def _sparse_top(b: sp.csr_matrix, top_n: int, negatives: int) -> Neighbours:
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


def ease(inputs: NeighbourInputs, top_n: int) -> Neighbours:
    """EASE: exact where it fits the memory, solved locally per item where it does not."""
    x = inputs.weighted_orders()
    if inputs.ease_solver() == "dense":
        b = ease_weights(x, inputs.ease_lambda)
        return _blocks(lambda lo, hi: b[lo:hi], b.shape[0], top_n, inputs.negatives)
    sparse_b = _local_ease(inputs, x)
    return _sparse_top(sparse_b, top_n, inputs.negatives)


def unit_rows(factors: np.ndarray) -> np.ndarray:
    """Factor rows scaled to unit length (float32), for cosines by dot products."""
    f = factors.astype(np.float32)
    return np.asarray(f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12))


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

        return _blocks(block, b.shape[0], top_n, inputs.negatives)
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
    return _sparse_top(sparse_b, top_n, inputs.negatives)


def pair_counts(x: sp.csr_matrix, indices: np.ndarray, max_entries: int) -> np.ndarray:
    """For each (item row, listed item): the entry of binary ``X^T X``, in row blocks.

    With ``x`` the order x item matrix, that is how many orders held both items: the
    evidence a published list carries.
    """
    counts = np.zeros(indices.shape, np.int64)
    for lo, hi, block in gram.Gram(gram.binary(x), max_entries).blocks(sort=True):
        idx = indices[lo:hi]
        rows = np.repeat(np.arange(lo, hi), idx.shape[1])
        got = gram.lookup(block, lo, rows, np.maximum(idx, 0).ravel()).reshape(idx.shape)
        counts[lo:hi] = np.where(idx >= 0, np.rint(got), 0).astype(np.int64)
    return counts


def alternatives(
    customer_item: sp.csr_matrix,
    order_item: sp.csr_matrix,
    item_factors: np.ndarray,
    top_n: int,
    min_shared: int = 2,
    max_together: float = 0.05,
    max_entries: int = gram.DEFAULT_MAX_ENTRIES,
    shortlist: int = 4,
    max_customer_items: int = 2_000,
) -> Neighbours:
    """Items bought by the same customers but seldom in the same order: alternatives.

    Score: the mean of the customer-level cosine and the ALS factor cosine (both say
    "the same people buy these"), over pairs that at least ``min_shared`` customers
    bought and that share an order in at most ``max_together`` of the rarer item's
    orders (two items usually bought together complement each other, they are not
    alternatives). The count is the number of customers who bought both. Sparse, in row
    blocks: the ALS cosine re-ranks each item's ``shortlist`` x ``top_n`` best pairs by
    customer cosine, so no items x items array is ever made. Customers with more than
    ``max_customer_items`` distinct items (resellers, wholesalers: the pairs they make
    grow with the square of their range and say nothing about one shopper's taste) are
    left out of the customer cosine.

    Measured on Online Retail (train before 2011-11-09, top 10 per item, pairs seen in
    the following month): complements were bought in the same order 46% of the time and
    by the same customer in other orders only 32%; alternatives at a 5% cap 22% and 19%;
    at 20%, 37% and 27% (too close to complements); at 0%, 10% and 11% (substitutes, but
    rarely bought at all).
    """
    cx = gram.binary(customer_item)
    broad = np.diff(cx.indptr) > max_customer_items
    if broad.any():
        cx = sp.csr_matrix(sp.diags((~broad).astype(np.float32)) @ cx)
        cx.eliminate_zeros()
    shared = gram.Gram(cx, max_entries)
    together = gram.Gram(gram.binary(order_item), max_entries)
    buyers = shared.diagonal()
    orders = together.diagonal()
    inv = 1.0 / np.sqrt(np.maximum(buyers, 1.0))
    unit = unit_rows(item_factors)
    n = shared.n_items
    idx_out = np.full((n, top_n), -1, np.int32)
    sc_out = np.zeros((n, top_n), np.float32)
    cnt_out = np.zeros((n, top_n), np.int64)
    cost = shared.cost + together.cost
    for lo, hi in gram.block_bounds(cost, max_entries):
        rows, cols, s = gram.entries(shared.rows(lo, hi), lo)
        keep = s >= min_shared
        rows, cols, s = rows[keep], cols[keep], s[keep]
        t = gram.lookup(together.rows(lo, hi, sort=True), lo, rows, cols)
        rarer = np.maximum(np.minimum(orders[rows], orders[cols]), 1.0)
        keep = t / rarer <= max_together
        rows, cols, s = rows[keep], cols[keep], s[keep]
        cos_c = s * inv[rows] * inv[cols]
        short, short_cos = gram.top_per_row(rows, cols, cos_c, hi - lo, lo, shortlist * top_n)
        r_local, k = np.nonzero(short >= 0)
        c = short[r_local, k].astype(np.int64)
        r = r_local + lo
        cos_rc = short_cos[r_local, k].astype(np.float64)
        cos_als = np.maximum(np.einsum("ij,ij->i", unit[r], unit[c]), 0.0)
        score = 0.5 * (cos_rc + cos_als)
        idx, sc = gram.top_per_row(r, c, score, hi - lo, lo, top_n)
        idx_out[lo:hi], sc_out[lo:hi] = idx, sc
        # Customers in common, recovered from the cosine of each kept pair.
        if r.size == 0:
            continue
        keys = r * n + c
        by_key = np.argsort(keys, kind="stable")
        keys, shared_n = keys[by_key], np.rint(cos_rc / (inv[r] * inv[c]))[by_key]
        want = np.repeat(np.arange(lo, hi), top_n) * n + np.maximum(idx, 0).ravel()
        pos = np.minimum(np.searchsorted(keys, want), keys.size - 1)
        got = np.where(keys[pos] == want, shared_n[pos], 0).reshape(idx.shape)
        cnt_out[lo:hi] = np.where(idx >= 0, got, 0)
    return Neighbours(idx_out, sc_out, cnt_out)


METHODS: dict[str, NeighbourMethod] = {
    "ease-als": ease_als,
    "ease": ease,
    "als-cosine": als_cosine,
    "cooccurrence": cooccurrence,
}
DEFAULT_METHOD = "ease"

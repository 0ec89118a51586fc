"""EASE (Steck, 2019): a closed-form item-item regression on the orders; exact where its
items^2 matrices fit the stage's memory, solved locally per item over its co-occurring
items where they do not (``ease_solver``)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from training.neighbours import gram
from training.neighbours.base import NeighbourInputs, Neighbours, blocks, sparse_top
from training.neighbours.spec import Method

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


def ease(inputs: NeighbourInputs, top_n: int) -> Neighbours:
    """EASE: exact where it fits the memory, solved locally per item where it does not."""
    x = inputs.weighted_orders()
    if inputs.ease_solver() == "dense":
        b = ease_weights(x, inputs.ease_lambda)
        return blocks(lambda lo, hi: b[lo:hi], b.shape[0], top_n, inputs.negatives)
    sparse_b = _local_ease(inputs, x)
    return sparse_top(sparse_b, top_n, inputs.negatives)


METHOD = Method(
    "ease",
    ease,
    "EASE item-item regression on the orders",
    params=("ease_lambda", "ease_candidates", "negatives"),
)

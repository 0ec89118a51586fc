"""Item x item products of sparse purchase matrices, one bounded block of item rows at a time.

Every item-item quantity the trainer needs (co-occurrence, shared customers, EASE's Gram
matrix, evidence counts) is a row of ``X^T X`` for some sparse ``X``. Computed whole,
it can hold up to items^2 entries; computed a block of rows at a time and reduced at once
to each row's top-N, memory stays at one block plus items x N.

A block's size is set from an exact upper bound on its entries (the sum over the rows of
``X`` that hold an item of their lengths) and a cap in entries that the memory budget
sets, so no block grows past its share of memory whatever the data looks like.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

BYTES_PER_ENTRY = 64
"""Peak bytes per Gram entry of a block, while it is multiplied, sorted and reduced."""

DEFAULT_MAX_ENTRIES = 8_000_000


def row_cost(x: sp.csr_matrix) -> np.ndarray:
    """Per item (column of ``x``): an upper bound on the entries of its row of ``X^T X``."""
    lengths = np.diff(x.indptr).astype(np.float64)
    return np.asarray(binary(x).T @ lengths).ravel()


def binary(x: sp.csr_matrix) -> sp.csr_matrix:
    """The same sparsity pattern with every entry 1 (presence, not weight or count)."""
    x = sp.csr_matrix(x)
    return sp.csr_matrix((np.ones(x.nnz, np.float32), x.indices, x.indptr), shape=x.shape)


def block_bounds(cost: np.ndarray, max_entries: int) -> list[tuple[int, int]]:
    """Consecutive item ranges whose summed cost stays under ``max_entries`` (one row at least)."""
    bounds: list[tuple[int, int]] = []
    n = cost.size
    cum = np.cumsum(cost)
    lo = 0
    while lo < n:
        base = cum[lo - 1] if lo else 0.0
        hi = int(np.searchsorted(cum, base + max_entries, side="right"))
        hi = min(max(hi, lo + 1), n)
        bounds.append((lo, hi))
        lo = hi
    return bounds


@dataclass
class Gram:
    """Rows of ``X^T X`` on demand, for a (rows x items) sparse ``X``."""

    x: sp.csr_matrix
    max_entries: int = DEFAULT_MAX_ENTRIES

    def __post_init__(self) -> None:
        self.x = sp.csr_matrix(self.x)
        self._csc = self.x.tocsc()
        self.cost = row_cost(self.x)

    @property
    def n_items(self) -> int:
        return int(self.x.shape[1])

    def diagonal(self) -> np.ndarray:
        sq = self.x.copy()
        sq.data = sq.data.astype(np.float64) ** 2
        return np.asarray(sq.sum(axis=0)).ravel()

    def rows(self, lo: int, hi: int, sort: bool = False) -> sp.csr_matrix:
        """Rows lo..hi-1 of ``X^T X``; ``sort`` orders each row's columns (for ``lookup``)."""
        block = sp.csr_matrix(self._csc[:, lo:hi].T @ self.x)
        if sort:
            block.sort_indices()
        return block

    def blocks(self, sort: bool = False) -> Iterator[tuple[int, int, sp.csr_matrix]]:
        for lo, hi in block_bounds(self.cost, self.max_entries):
            yield lo, hi, self.rows(lo, hi, sort)


def entries(block: sp.csr_matrix, offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A block's (global row, column, value) triples, diagonal left out."""
    rows = np.repeat(np.arange(block.shape[0], dtype=np.int64), np.diff(block.indptr)) + offset
    cols = block.indices.astype(np.int64)
    keep = rows != cols
    return rows[keep], cols[keep], np.asarray(block.data)[keep]


def lookup(block: sp.csr_matrix, offset: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Values of ``block`` (rows offset.. of a CSR with sorted indices) at (rows, cols);
    0 where absent."""
    n = block.shape[1]
    local = np.repeat(np.arange(block.shape[0], dtype=np.int64), np.diff(block.indptr))
    keys = local * n + block.indices.astype(np.int64)
    want = (rows.astype(np.int64) - offset) * n + cols.astype(np.int64)
    if keys.size == 0:
        return np.zeros(want.size, np.float64)
    pos = np.minimum(np.searchsorted(keys, want), keys.size - 1)
    found = keys[pos] == want
    return np.where(found, np.asarray(block.data, np.float64)[pos], 0.0)


def top_per_row(
    rows: np.ndarray,
    cols: np.ndarray,
    scores: np.ndarray,
    n_rows: int,
    offset: int,
    n_keep: int,
    largest: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row (rows offset..offset+n_rows-1): the ``n_keep`` best (col, score), best first.

    Largest keeps positive scores only, highest first; not largest keeps negative scores
    only, ordered so that the most negative comes last. -1 and 0 pad a short row.
    """
    idx = np.full((n_rows, n_keep), -1, np.int32)
    out = np.zeros((n_rows, n_keep), np.float32)
    if n_keep <= 0:
        return idx, out
    sel = scores > 0 if largest else scores < 0
    r, c, s = rows[sel] - offset, cols[sel], scores[sel]
    if r.size == 0:
        return idx, out
    if r.size > 1 and np.any(r[1:] < r[:-1]):
        order = np.argsort(r, kind="stable")
        r, c, s = r[order], c[order], s[order]
    bounds = np.searchsorted(r, np.arange(n_rows + 1))
    signed = -s if largest else s
    # One short sort per row: rows are a few hundred to a few thousand entries, and
    # argpartition over each beats one sort of the whole block several times over.
    for row in np.flatnonzero(np.diff(bounds)):
        lo, hi = bounds[row], bounds[row + 1]
        seg = signed[lo:hi]
        if hi - lo > n_keep:
            part = np.argpartition(seg, n_keep - 1)[:n_keep]
            best = part[np.argsort(seg[part], kind="stable")]
        else:
            best = np.argsort(seg, kind="stable")
        k = best.size
        if largest:
            idx[row, :k] = c[lo:hi][best]
            out[row, :k] = s[lo:hi][best]
        else:
            # Most negative last: lists stay sorted best first from end to end.
            idx[row, n_keep - k :] = c[lo:hi][best[::-1]]
            out[row, n_keep - k :] = s[lo:hi][best[::-1]]
    return idx, out

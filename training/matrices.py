"""Stage 2: purchase matrices (customer x item, order x item) as scipy.sparse CSR."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from implicit.nearest_neighbours import bm25_weight

from training.ingest import CUSTOMER, ITEM, ORDER, TIMESTAMP

Weighting = Literal["binary", "counts", "bm25"]
WEIGHTINGS: tuple[Weighting, ...] = ("binary", "counts", "bm25")


@dataclass(frozen=True)
class Interactions:
    items: np.ndarray
    """Item ids, sorted; row i of every item-indexed array is items[i]."""
    customers: np.ndarray
    customer_item: sp.csr_matrix
    """How many distinct orders each customer bought each item in."""
    order_item: sp.csr_matrix
    """1 where the order holds the item."""
    order_days: np.ndarray | None = None
    """Per order row: days before the latest order in the data (None without timestamps)."""

    @property
    def n_items(self) -> int:
        return int(self.items.size)


def build(frame: pd.DataFrame) -> Interactions:
    items, item_idx = np.unique(frame[ITEM].to_numpy(dtype=str), return_inverse=True)
    customers, cust_idx = np.unique(frame[CUSTOMER].to_numpy(dtype=str), return_inverse=True)
    orders, order_idx = np.unique(frame[ORDER].to_numpy(dtype=str), return_inverse=True)
    # Several lines of one item in one order count once.
    pairs = np.unique(np.stack([order_idx, item_idx, cust_idx], axis=1), axis=0)
    ones = np.ones(len(pairs), dtype=np.float32)
    order_item = sp.csr_matrix(
        (ones, (pairs[:, 0], pairs[:, 1])), shape=(orders.size, items.size), dtype=np.float32
    )
    order_item.data[:] = 1.0
    customer_item = sp.csr_matrix(
        (ones, (pairs[:, 2], pairs[:, 1])), shape=(customers.size, items.size), dtype=np.float32
    )
    customer_item.sum_duplicates()
    order_days = None
    if TIMESTAMP in frame:
        placed = frame.groupby(order_idx)[TIMESTAMP].max().sort_index()
        order_days = ((placed.max() - placed).dt.total_seconds() / 86400.0).to_numpy(np.float64)
    return Interactions(items, customers, customer_item, order_item, order_days)


def order_weights(inter: Interactions, half_life_days: float) -> np.ndarray | None:
    """Exponential decay of each order by its age; None when off or without timestamps.

    Shopping is seasonal: on Online Retail, orders of the last few months predict the next
    weeks better than the same orders a year ago (README, "Choosing the neighbours").
    """
    if half_life_days <= 0 or inter.order_days is None:
        return None
    return np.asarray(0.5 ** (inter.order_days / half_life_days), dtype=np.float64)


def weight(
    matrix: sp.csr_matrix, scheme: Weighting, k1: float = 100.0, b: float = 0.8
) -> sp.csr_matrix:
    """The confidence matrix ALS sees: presence, counts, or BM25-damped counts."""
    if scheme == "binary":
        out = matrix.copy()
        out.data = np.ones_like(out.data)
        return out.astype(np.float32)
    if scheme == "counts":
        return matrix.astype(np.float32)
    if scheme == "bm25":
        out = sp.csr_matrix(bm25_weight(matrix, K1=k1, B=b), dtype=np.float32)
        # implicit's idf, log(N) - log1p(df), turns negative for an item almost everyone
        # bought; a purchase must stay positive evidence.
        np.maximum(out.data, 1e-3, out=out.data)
        return out
    raise ValueError(f"unknown weighting {scheme!r}")


def popularity(inter: Interactions) -> np.ndarray:
    """Distinct customers per item: one wholesaler's bulk orders do not make an item popular."""
    binary = inter.customer_item.copy()
    binary.data = np.ones_like(binary.data)
    return np.asarray(binary.sum(axis=0)).ravel()

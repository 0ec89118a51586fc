"""Stage 2: purchase matrices (customer x item, order x item) as scipy.sparse CSR."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from implicit.nearest_neighbours import bm25_weight

from training.stages.ingest import CUSTOMER, ITEM, ORDER, TIMESTAMP

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


def codes_of(values: pd.Series, sort: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes 0..k-1 per row and the distinct ids (str) they stand for.

    Categoricals (what ``ingest.clean`` returns) are used as they are: no string is
    touched per row. With ``sort`` the ids come sorted, so item order is deterministic.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        cat = values.cat.remove_unused_categories()
        ids = np.asarray(cat.cat.categories.astype(str), dtype=object)
        codes = cat.cat.codes.to_numpy().astype(np.int64)
    else:
        raw, uniques = pd.factorize(values.astype(str), sort=False)
        ids, codes = np.asarray(uniques, dtype=object), raw.astype(np.int64)
    if sort and ids.size:
        order = np.argsort(ids.astype(str), kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        ids, codes = ids[order], rank[codes]
    return codes.astype(np.int32), ids.astype(str)


def build(frame: pd.DataFrame) -> Interactions:
    """Sparse matrices from integer codes: memory grows with lines, not with strings."""
    item_idx, items = codes_of(frame[ITEM])
    cust_idx, customers = codes_of(frame[CUSTOMER])
    order_idx, orders = codes_of(frame[ORDER], sort=False)
    n_orders, n_items = orders.size, items.size
    # Several lines of one item in one order count once.
    order_item = sp.csr_matrix(
        (np.ones(item_idx.size, np.float32), (order_idx, item_idx)),
        shape=(n_orders, n_items),
        dtype=np.float32,
    )
    order_item.sum_duplicates()
    order_item.data[:] = 1.0
    # An order belongs to one customer (its first line's, should an export disagree).
    order_customer = np.zeros(n_orders, np.int32)
    order_customer[order_idx[::-1]] = cust_idx[::-1]
    rows = np.repeat(order_customer, np.diff(order_item.indptr))
    customer_item = sp.csr_matrix(
        (np.ones(order_item.nnz, np.float32), (rows, order_item.indices)),
        shape=(customers.size, n_items),
        dtype=np.float32,
    )
    customer_item.sum_duplicates()
    order_days = None
    if TIMESTAMP in frame:
        nanos = frame[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
        placed = pd.Series(nanos).groupby(order_idx).max().sort_index().to_numpy()
        order_days = (placed.max() - placed).astype(np.float64) / 86_400e9
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

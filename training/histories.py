"""Stored histories: each customer's latest distinct items, for ``/v1/customers/{id}``.

The e-mail generator knows customer ids, not baskets, so the trainer publishes what each
customer bought lately: the latest ``limit`` distinct items with the day of their latest
purchase, newest first. Bounded per customer, so memory grows with customers, not lines,
and held as integer arrays (a million customers are a few arrays, not a million lists)
until the publisher encodes them a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd

from training.ingest import CUSTOMER, ITEM, TIMESTAMP
from training.matrices import codes_of

History = tuple[list[str], list[int]]
"""Item ids, newest first, and the day (since 1970-01-01, UTC) each was last bought."""

UNDATED = -1
"""The day stored when purchases carry no timestamp: all weigh alike."""


class Histories(Mapping[str, History]):
    """Customer id -> (items newest first, days), backed by CSR-like arrays."""

    def __init__(
        self,
        customers: np.ndarray,
        indptr: np.ndarray,
        items: np.ndarray,
        days: np.ndarray,
        item_ids: np.ndarray,
    ) -> None:
        order = np.argsort(customers.astype(str), kind="stable")
        self._customers = customers.astype(str)[order]
        self._rows = order
        self._indptr, self._items, self._days, self._item_ids = indptr, items, days, item_ids

    def __len__(self) -> int:
        return int(self._customers.size)

    def __iter__(self) -> Iterator[str]:
        return (str(c) for c in self._customers)

    def __getitem__(self, customer: str) -> History:
        pos = int(np.searchsorted(self._customers, customer))
        if pos >= self._customers.size or self._customers[pos] != customer:
            raise KeyError(customer)
        row = int(self._rows[pos])
        lo, hi = int(self._indptr[row]), int(self._indptr[row + 1])
        return [str(i) for i in self._item_ids[self._items[lo:hi]]], [
            int(d) for d in self._days[lo:hi]
        ]


EMPTY = Histories(np.array([], str), np.zeros(1, np.int64), np.array([], np.int32),
                  np.array([], np.int32), np.array([], str))  # fmt: skip


def recent_items(frame: pd.DataFrame, limit: int) -> Histories:
    if frame.empty or limit <= 0:
        return EMPTY
    cust, customers = codes_of(frame[CUSTOMER], sort=False)
    item, item_ids = codes_of(frame[ITEM])
    if TIMESTAMP in frame:
        nanos = frame[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
        days = np.floor_divide(nanos, 86_400 * 10**9)
    else:
        days = np.full(len(frame), UNDATED, np.int64)
    last = (
        pd.DataFrame({"c": cust, "i": item, "d": days})
        .groupby(["c", "i"], sort=False)["d"]
        .max()
        .reset_index()
    )
    # Newest first; ties by item id (codes are in sorted id order).
    last = last.sort_values(["c", "d", "i"], ascending=[True, False, True], kind="stable")
    last = last[last.groupby("c", sort=False).cumcount().to_numpy() < limit]
    c = last["c"].to_numpy()
    present = np.unique(c)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(c)[present])]).astype(np.int64)
    return Histories(
        customers[present],
        indptr,
        last["i"].to_numpy().astype(np.int32),
        last["d"].to_numpy().astype(np.int32),
        item_ids,
    )

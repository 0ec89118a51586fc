"""Stored histories: each customer's items that matter most, for ``/v1/customers/{id}``.

The e-mail generator knows customer ids, not baskets, so the trainer publishes what each
customer bought: at most ``limit`` distinct items, each with the day of its latest
purchase and the number of orders it was in, newest first. The items kept are those
bought most often and most lately (orders x a decay of the latest purchase's age, with the
service's default half-life). Chosen on Online Retail's validation window
(``benchmarks/history_choice.py``): the 50 latest items without counts scored below a
customer's own past purchases; the 100 heaviest with their orders above. Bounded per
customer, so memory grows with customers, not lines,
and held as integer arrays (a million customers are a few arrays, not a million lists)
until the publisher encodes them a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd

from training.stages.ingest import CUSTOMER, ITEM, ORDER, TIMESTAMP
from training.stages.matrices import codes_of

History = tuple[list[str], list[int], list[int]]
"""Item ids, newest first; the day (since 1970-01-01, UTC) each was last bought; the
orders each was bought in."""

SELECTION_HALF_LIFE_DAYS = 30.0
"""The decay choosing which items a history keeps (the service's default half-life)."""

UNDATED = -1
"""The day stored when purchases carry no timestamp: all weigh alike."""


class Histories(Mapping[str, History]):
    """Customer id -> (items newest first, days, counts), backed by CSR-like arrays."""

    def __init__(
        self,
        customers: np.ndarray,
        indptr: np.ndarray,
        items: np.ndarray,
        days: np.ndarray,
        item_ids: np.ndarray,
        counts: np.ndarray | None = None,
    ) -> None:
        order = np.argsort(customers.astype(str), kind="stable")
        self._customers = customers.astype(str)[order]
        self._rows = order
        self._indptr, self._items, self._days, self._item_ids = indptr, items, days, item_ids
        self._counts = np.ones(items.size, np.int32) if counts is None else counts

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
        return (
            [str(i) for i in self._item_ids[self._items[lo:hi]]],
            [int(d) for d in self._days[lo:hi]],
            [int(n) for n in self._counts[lo:hi]],
        )


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
    lines = pd.DataFrame({"c": cust, "i": item, "d": days})
    if ORDER in frame:
        lines["o"] = codes_of(frame[ORDER], sort=False)[0]
        per_item = lines.groupby(["c", "i"], sort=False).agg(d=("d", "max"), n=("o", "nunique"))
    else:
        per_item = lines.groupby(["c", "i"], sort=False).agg(d=("d", "max"), n=("d", "size"))
    last = per_item.reset_index()
    latest = last.groupby("c", sort=False)["d"].transform("max").to_numpy()
    age = (latest - last["d"].to_numpy()).astype(np.float64)
    last["w"] = last["n"].to_numpy() * 0.5 ** (age / SELECTION_HALF_LIFE_DAYS)
    # The ``limit`` heaviest items (ties: newer, then item id), then newest first.
    last = last.sort_values(
        ["c", "w", "d", "i"], ascending=[True, False, False, True], kind="stable"
    )
    last = last[last.groupby("c", sort=False).cumcount().to_numpy() < limit]
    last = last.sort_values(["c", "d", "i"], ascending=[True, False, True], kind="stable")
    c = last["c"].to_numpy()
    present = np.unique(c)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(c)[present])]).astype(np.int64)
    return Histories(
        customers[present],
        indptr,
        last["i"].to_numpy().astype(np.int32),
        last["d"].to_numpy().astype(np.int32),
        item_ids,
        last["n"].to_numpy().astype(np.int32),
    )

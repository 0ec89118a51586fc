"""Stored histories: each customer's latest distinct items, for ``/v1/customers/{id}``.

The e-mail generator knows customer ids, not baskets, so the trainer publishes what each
customer bought lately: the latest ``limit`` distinct items with the day of their latest
purchase, newest first. Bounded per customer, so memory grows with customers, not lines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.ingest import CUSTOMER, ITEM, TIMESTAMP

History = tuple[list[str], list[int]]
"""Item ids, newest first, and the day (since 1970-01-01, UTC) each was last bought."""

UNDATED = -1
"""The day stored when purchases carry no timestamp: all weigh alike."""


def recent_items(frame: pd.DataFrame, limit: int) -> dict[str, History]:
    if frame.empty or limit <= 0:
        return {}
    if TIMESTAMP in frame:
        days = (frame[TIMESTAMP] - pd.Timestamp(0, tz=frame[TIMESTAMP].dt.tz)).dt.days
    else:
        days = pd.Series(np.full(len(frame), UNDATED), index=frame.index)
    last = (
        pd.DataFrame({"c": frame[CUSTOMER].astype(str), "i": frame[ITEM].astype(str), "d": days})
        .groupby(["c", "i"], sort=False)["d"]
        .max()
        .reset_index()
        .sort_values(["c", "d", "i"], ascending=[True, False, True], kind="stable")
    )
    top = last.groupby("c", sort=False).head(limit)
    out: dict[str, History] = {}
    for customer, rows in top.groupby("c", sort=False):
        out[str(customer)] = (rows["i"].tolist(), [int(d) for d in rows["d"]])
    return out

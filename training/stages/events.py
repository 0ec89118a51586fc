"""Live order events (``POST /v1/events/orders``) as purchase lines for a training:
``train --include-events`` folds the orders the service heard about since the store's
last export into the next model, so an export that lags loses nothing."""

from __future__ import annotations

from typing import Any, cast

import pandas as pd
from pandas.api.types import union_categoricals

from recsvc import model as lay
from recsvc.store import backend as storage
from training.stages import ingest

CHUNK = 10_000


def read_events(client: storage.SyncClient, layout: lay.Layout) -> pd.DataFrame:
    """Every event on the stream, one row per order line, in the standard columns."""
    rows: list[dict[str, Any]] = []
    start = "-"
    while True:
        batch = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            client.xrange(layout.events, min=start, count=CHUNK),
        )
        for _, fields in batch:
            event = lay.decode_json(fields[b"event"])
            for line in event["items"]:
                rows.append(
                    {
                        ingest.CUSTOMER: event["customer_id"],
                        ingest.ITEM: line["item_id"],
                        ingest.ORDER: event["order_id"],
                        ingest.QUANTITY: float(line.get("quantity", 1)),
                        ingest.TIMESTAMP: event["purchased_at"],
                        ingest.PRICE: line.get("price"),
                    }
                )
        if len(batch) < CHUNK:
            break
        start = "(" + batch[-1][0].decode()
    return pd.DataFrame(rows)


def with_events(raw: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """The purchase lines read from the file, and the events' lines after them: only the
    columns the file has (a file without prices trains without them), and no order the
    file already holds (an export that caught up is not counted twice).

    Each column keeps the file's encoding: a dictionary-encoded column grows by the
    events' new values only, a numeric one (numeric ids, quantities) stays numeric, so
    20 million lines never turn into 20 million Python objects for a few new orders.
    """
    if events.empty:
        return raw
    events = events.reindex(columns=list(raw.columns))
    if ingest.ORDER in raw.columns:
        known = set(map(str, pd.unique(raw[ingest.ORDER].dropna())))
        events = events[~events[ingest.ORDER].astype(str).isin(known)]
    if events.empty:
        return raw
    columns: dict[str, Any] = {}
    for name in raw.columns:
        mine, theirs = raw[name], events[name]
        if isinstance(mine.dtype, pd.CategoricalDtype):
            merged = union_categoricals(
                [mine.array, pd.Categorical(theirs.astype(mine.cat.categories.dtype))],
                ignore_order=True,
            )
            columns[name] = pd.Series(merged)
            continue
        if name == ingest.TIMESTAMP:
            theirs = pd.to_datetime(theirs, utc=True)
            if getattr(mine.dt, "tz", None) is None:
                theirs = theirs.dt.tz_localize(None)
        elif pd.api.types.is_numeric_dtype(mine.dtype):
            theirs = pd.to_numeric(theirs, errors="coerce")
        columns[name] = pd.concat([mine, theirs], ignore_index=True)
    return pd.DataFrame(columns)
